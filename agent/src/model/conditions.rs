//! The conditions, one small pure function each: named evidence in, a verdict out. No clock, no I/O and
//! no engine state: what depends on time (a threshold tracker's level, how long the sources have been
//! silent) is worked out by the engine at the time it passes in, when it gathers the evidence. The engine
//! then applies each verdict to the device's condition and records what changed. PowerAnomaly's function
//! lives with energy per inference in `power`.

use std::borrow::Cow;
use std::time::Duration;

use super::health::{Impact, Level, Status};
use super::spinnaker::BoardReading;

/// What a condition's evidence says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    /// How bad the condition is for the device's state while true.
    pub impact: Impact,
    /// Machine-readable cause, e.g. "TemperatureAboveCritical"; a log rule's name when a rule set it.
    pub reason: Cow<'static, str>,
    /// For a human: what was seen.
    pub message: String,
}

/// The hottest temperature a device reads, and where its warning and critical trackers put it (after
/// hysteresis and the minimum duration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hottest<'a> {
    pub sensor: &'a str,
    pub celsius: f64,
    pub warn: Level,
    pub crit: Level,
}

/// What Overheating is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverheatingEvidence<'a> {
    /// None while no sensor reads a temperature.
    pub hottest: Option<Hottest<'a>>,
    /// The configured thresholds, for the message.
    pub warn_celsius: f64,
    pub crit_celsius: f64,
}

/// Overheating. Set by the hottest sensor's critical tracker going above (unhealthy) or, below that, its
/// warning tracker (degraded); cleared when both trackers are below again (the trackers hold a level
/// against noise: hysteresis and minimum duration). Unknown while no sensor reads a temperature.
pub fn overheating(e: OverheatingEvidence<'_>) -> Verdict {
    let Some(h) = e.hottest else {
        return Verdict {
            status: Status::Unknown,
            impact: Impact::Degraded,
            reason: "NoTemperature".into(),
            message: "no temperature reading".to_owned(),
        };
    };
    let at = format!("{} at {:.1} °C", h.sensor, h.celsius);
    match (h.warn, h.crit) {
        (_, Level::Above) => Verdict {
            status: Status::True,
            impact: Impact::Unhealthy,
            reason: "TemperatureAboveCritical".into(),
            message: format!("{at}, above the critical {:.1} °C", e.crit_celsius),
        },
        (Level::Above, _) => Verdict {
            status: Status::True,
            impact: Impact::Degraded,
            reason: "TemperatureAboveWarning".into(),
            message: format!("{at}, above the warning {:.1} °C", e.warn_celsius),
        },
        _ => {
            Verdict { status: Status::False, impact: Impact::Degraded, reason: "TemperatureNormal".into(), message: at }
        }
    }
}

/// The driver's word on an accel class device bound by PCI address.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverStatus {
    /// As the driver writes it (habanalabs: "operational", "In reset", "Needs reset", "Disabled").
    pub status: String,
    /// Whether that status means the device works.
    pub operational: bool,
}

/// A liveness probe that has run at least once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LivenessProbe<'a> {
    pub name: &'a str,
    /// Its last run succeeded.
    pub success: bool,
    pub consecutive_failures: u32,
    /// Failures in a row that make the device offline.
    pub offline_after: u32,
    /// Its last run's message.
    pub message: &'a str,
}

/// What Offline is judged on: every source that can tell whether the device answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfflineEvidence<'a> {
    pub driver: Option<&'a DriverStatus>,
    /// The device's liveness probes that have run, in config order.
    pub probes: Vec<LivenessProbe<'a>>,
    /// A SpiNNaker board's last poll of its BMP and SC&MP.
    pub board: Option<&'a BoardReading>,
    /// The SDK's `online` reading from a probe (0: offline).
    pub sdk_online: Option<f64>,
}

/// One source's word on whether the device is offline.
struct Finding {
    offline: bool,
    reason: &'static str,
    message: String,
}

/// Offline, unhealthy. Asked in this order: the driver's status, the liveness probes (failing
/// `offline_after` times in a row says offline, a success says online), a SpiNNaker board's BMP (not
/// answering, or answering while the board's SC&MP does not, says offline), the SDK's `online` reading.
/// Any source saying offline sets it, the first one giving the reason; otherwise the first saying online
/// clears it. None when no source says either.
pub fn offline(e: OfflineEvidence<'_>) -> Option<Verdict> {
    let driver = e.driver.map(|d| Finding {
        offline: !d.operational,
        reason: if d.operational { "DriverStatusOperational" } else { "DriverStatusNotOperational" },
        message: format!("driver status: {}", d.status),
    });
    let probes = e.probes.iter().filter_map(|p| {
        if p.consecutive_failures >= p.offline_after {
            let message = format!("probe {} failed {} times: {}", p.name, p.consecutive_failures, p.message);
            Some(Finding { offline: true, reason: "ProbeFailing", message })
        } else if p.success {
            Some(Finding { offline: false, reason: "ProbeSucceeding", message: format!("probe {} succeeded", p.name) })
        } else {
            None
        }
    });
    let board = e.board.map(|b| match (b.bmp_alive, &b.scamp) {
        (false, _) => Finding {
            offline: true,
            reason: "BmpNotAnswering",
            message: format!("the frame's BMP does not answer: {}", b.error.as_deref().unwrap_or("no answer")),
        },
        (true, Some(Err(why))) => Finding {
            offline: true,
            reason: "BoardNotBooted",
            message: format!("the BMP answers but the board's SC&MP does not: {why}"),
        },
        (true, _) => Finding {
            offline: false,
            reason: "BmpAnswering",
            message: "the frame's BMP answers for the board".to_owned(),
        },
    });
    let sdk = e.sdk_online.map(|online| {
        if online == 0.0 {
            let message = "the SDK reports the device offline".to_owned();
            Finding { offline: true, reason: "SdkReportsOffline", message }
        } else {
            let message = "the SDK reports the device online".to_owned();
            Finding { offline: false, reason: "SdkReportsOnline", message }
        }
    });
    let findings: Vec<Finding> = driver.into_iter().chain(probes).chain(board).chain(sdk).collect();
    let first_offline = findings.iter().position(|f| f.offline).unwrap_or(0);
    let f = findings.into_iter().nth(first_offline)?;
    Some(Verdict {
        status: if f.offline { Status::True } else { Status::False },
        impact: Impact::Unhealthy,
        reason: f.reason.into(),
        message: f.message,
    })
}

/// A condition set by a log rule, until the rule clears it (or, latched, an operator does).
#[derive(Debug, Clone, PartialEq)]
pub struct LogCondition {
    pub rule: String,
    pub message: String,
    pub latched: bool,
    pub impact: Impact,
}

/// What LogErrors is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogErrorsEvidence<'a> {
    /// A log source of the device has reported (until then LogErrors is not judged).
    pub has_logs: bool,
    /// The LogErrors condition a log rule set, while it is set.
    pub set_by_rule: Option<&'a LogCondition>,
}

/// LogErrors' verdict, and whether the rule that set it latches.
#[derive(Debug, Clone, PartialEq)]
pub struct LogErrorsVerdict {
    pub verdict: Verdict,
    /// Set by a latching rule: the condition holds until an operator runs `set-healthy`.
    pub latches: bool,
}

/// LogErrors. Set by a log rule's matching lines (the rule's name is the reason, its severity gives the
/// impact); cleared when the rule clears its condition (quiet period or clear pattern), unless the rule
/// latches. None until a log source of the device has reported.
pub fn log_errors(e: LogErrorsEvidence<'_>) -> Option<LogErrorsVerdict> {
    if !e.has_logs {
        return None;
    }
    Some(match e.set_by_rule {
        Some(c) => LogErrorsVerdict {
            verdict: Verdict {
                status: Status::True,
                impact: c.impact,
                reason: c.rule.clone().into(),
                message: c.message.clone(),
            },
            latches: c.latched,
        },
        None => LogErrorsVerdict {
            verdict: Verdict {
                status: Status::False,
                impact: Impact::Degraded,
                reason: "NoMatchingLines".into(),
                message: "no error lines".to_owned(),
            },
            latches: false,
        },
    })
}

/// The status tool's last verdict on the device: its probe ran and said the device is fine or has a
/// problem (exit 1). A probe that gave no verdict (failed, timed out) leaves the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct SdkReport {
    pub probe: String,
    pub problem: bool,
    pub message: String,
}

/// A SpiNNaker BMP's warning and shutdown flags from its ADC block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BmpFlags {
    pub warning: u32,
    pub shutdown: u32,
}

/// What a SpiNNaker board's management layer says about it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoardManagement {
    /// None when the BMP's ADC block was not read.
    pub flags: Option<BmpFlags>,
    /// spalloc lists the board among its machine's dead boards; None when spalloc was not asked.
    pub dead_in_spalloc: Option<bool>,
}

/// What SdkError is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SdkErrorEvidence<'a> {
    /// The SdkError condition a log rule set (e.g. calibration drift in the vendor's log), while set.
    pub set_by_rule: Option<&'a LogCondition>,
    pub sdk: Option<&'a SdkReport>,
    pub board: Option<BoardManagement>,
    /// SdkError is true now.
    pub is_true: bool,
}

/// SdkError, degraded unless said otherwise, from the first source that speaks to it:
/// - a log rule's SdkError condition sets it (the rule's name is the reason);
/// - else the status tool's last verdict: a problem (exit 1) sets it, a clean run clears it;
/// - else a SpiNNaker board's management layer: BMP shutdown flags set it (unhealthy: the BMP switched
///   the board off for a reading past a limit in its EEPROM), then BMP warning flags, then spalloc
///   listing the board as dead; spalloc listing it alive, or no flags when spalloc was not asked,
///   clears it;
/// - else, on a device nothing else reports SDK errors for, an SdkError a log rule set ends with the
///   rule's condition (quiet period, clear pattern, or set-healthy for a latched rule); without this it
///   would stay true for ever, though set-healthy says it cleared it.
///
/// None when nothing speaks to it.
pub fn sdk_error(e: SdkErrorEvidence<'_>) -> Option<Verdict> {
    if let Some(c) = e.set_by_rule {
        return Some(Verdict {
            status: Status::True,
            impact: Impact::Degraded,
            reason: c.rule.clone().into(),
            message: c.message.clone(),
        });
    }
    match (e.sdk, e.board) {
        (Some(sdk), _) => {
            let message = match sdk.message.as_str() {
                "" => format!("probe {}", sdk.probe),
                m => format!("probe {}: {m}", sdk.probe),
            };
            Some(Verdict {
                status: if sdk.problem { Status::True } else { Status::False },
                impact: Impact::Degraded,
                reason: if sdk.problem { "SdkReportsProblem" } else { "SdkOk" }.into(),
                message,
            })
        }
        (None, Some(board)) => board_management(board),
        (None, None) if e.is_true => Some(Verdict {
            status: Status::False,
            impact: Impact::Degraded,
            reason: "NoMatchingLines".into(),
            message: "no matching lines".to_owned(),
        }),
        (None, None) => None,
    }
}

/// SdkError from a SpiNNaker board's BMP flags and spalloc's dead-board list.
fn board_management(b: BoardManagement) -> Option<Verdict> {
    Some(match (b.flags, b.dead_in_spalloc) {
        (Some(BmpFlags { shutdown, .. }), _) if shutdown != 0 => Verdict {
            status: Status::True,
            impact: Impact::Unhealthy,
            reason: "BmpShutdown".into(),
            message: format!("the BMP shut the board down: shutdown flags {shutdown:#010x}"),
        },
        (Some(BmpFlags { warning, .. }), _) if warning != 0 => Verdict {
            status: Status::True,
            impact: Impact::Degraded,
            reason: "BmpWarning".into(),
            message: format!("the BMP reports warning flags {warning:#010x}"),
        },
        (_, Some(true)) => Verdict {
            status: Status::True,
            impact: Impact::Degraded,
            reason: "SpallocListsDead".into(),
            message: "spalloc lists the board as dead: no job can use it".to_owned(),
        },
        (_, Some(false)) => Verdict {
            status: Status::False,
            impact: Impact::Degraded,
            reason: "SpallocListsAlive".into(),
            message: "no BMP flags, and spalloc does not list the board as dead".to_owned(),
        },
        (Some(_), None) => Verdict {
            status: Status::False,
            impact: Impact::Degraded,
            reason: "BmpFlagsClear".into(),
            message: "no BMP warning or shutdown flags".to_owned(),
        },
        (None, None) => return None,
    })
}

/// What DataStale is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataStaleEvidence {
    /// The device is bound to host sources (hwmon, thermal zone, power supply, accel, BMP); a device
    /// with none is judged by its probes instead.
    pub has_host_sources: bool,
    /// A reading has come from those sources since the device was created.
    pub ever_read: bool,
    /// Time since the last reading, or since the device was created when none has come.
    pub silent_for: Duration,
    pub stale_after: Duration,
    /// The agent's own reads are failing (out of descriptors): silence is then its trouble, not the
    /// device's, and the condition stays as it was.
    pub agent_cannot_read: bool,
}

/// DataStale, degraded. Set when the device's host sources have been silent for longer than
/// `stale_after` (counted from its creation when they never spoke); cleared by a fresh reading; unknown
/// until the first reading. None for a device with no host sources.
pub fn data_stale(e: DataStaleEvidence) -> Option<Verdict> {
    if !e.has_host_sources || e.agent_cannot_read {
        return None;
    }
    let secs = e.silent_for.as_secs();
    Some(if e.silent_for > e.stale_after {
        Verdict {
            status: Status::True,
            impact: Impact::Degraded,
            reason: "NoFreshReadings".into(),
            message: format!("no reading from its sources for {secs}s"),
        }
    } else if e.ever_read {
        Verdict {
            status: Status::False,
            impact: Impact::Degraded,
            reason: "ReadingsFresh".into(),
            message: format!("last reading {secs}s ago"),
        }
    } else {
        Verdict {
            status: Status::Unknown,
            impact: Impact::Degraded,
            reason: "WaitingForFirstReading".into(),
            message: "no reading yet".to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a user reads of a verdict: (status, impact, reason, message).
    fn seen(v: Option<Verdict>) -> Option<(Status, Impact, String, String)> {
        v.map(|v| (v.status, v.impact, v.reason.into_owned(), v.message))
    }

    fn row(status: Status, impact: Impact, reason: &str, message: &str) -> Option<(Status, Impact, String, String)> {
        Some((status, impact, reason.to_owned(), message.to_owned()))
    }

    #[test]
    fn overheating_names_the_hottest_sensor_and_the_threshold_it_crossed() {
        let hot = |warn, crit| Some(Hottest { sensor: "die", celsius: 91.3, warn, crit });
        let ev = |hottest| OverheatingEvidence { hottest, warn_celsius: 80.0, crit_celsius: 90.0 };
        let (below, above) = (Level::Below, Level::Above);
        let cases = [
            (ev(None), row(Status::Unknown, Impact::Degraded, "NoTemperature", "no temperature reading")),
            (ev(hot(below, below)), row(Status::False, Impact::Degraded, "TemperatureNormal", "die at 91.3 °C")),
            (
                ev(hot(above, below)),
                row(
                    Status::True,
                    Impact::Degraded,
                    "TemperatureAboveWarning",
                    "die at 91.3 °C, above the warning 80.0 °C",
                ),
            ),
            (
                ev(hot(above, above)),
                row(
                    Status::True,
                    Impact::Unhealthy,
                    "TemperatureAboveCritical",
                    "die at 91.3 °C, above the critical 90.0 °C",
                ),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(seen(Some(overheating(e))), want, "{e:?}");
        }
    }

    #[test]
    fn offline_is_set_by_any_source_saying_so_and_cleared_by_the_first_saying_online() {
        let driver = |status: &str, operational| DriverStatus { status: status.to_owned(), operational };
        let (down, up) = (driver("In reset", false), driver("operational", true));
        let probe = |success, consecutive_failures| LivenessProbe {
            name: "sdk",
            success,
            consecutive_failures,
            offline_after: 3,
            message: "timed out",
        };
        let dead_bmp = BoardReading { error: Some("timeout".to_owned()), ..Default::default() };
        let unbooted = BoardReading {
            bmp_alive: true,
            scamp: Some(Err(crate::model::spinnaker::ScampError::Scp("no reply".to_owned()))),
            ..Default::default()
        };
        let cases = [
            (OfflineEvidence::default(), None),
            (
                OfflineEvidence { driver: Some(&down), ..Default::default() },
                row(Status::True, Impact::Unhealthy, "DriverStatusNotOperational", "driver status: In reset"),
            ),
            // Two failures of three: the probe says neither; the driver's word clears it.
            (
                OfflineEvidence { driver: Some(&up), probes: vec![probe(false, 2)], ..Default::default() },
                row(Status::False, Impact::Unhealthy, "DriverStatusOperational", "driver status: operational"),
            ),
            // A source saying offline wins over one saying online before it.
            (
                OfflineEvidence { driver: Some(&up), probes: vec![probe(false, 3)], ..Default::default() },
                row(Status::True, Impact::Unhealthy, "ProbeFailing", "probe sdk failed 3 times: timed out"),
            ),
            (
                OfflineEvidence { probes: vec![probe(true, 0)], sdk_online: Some(1.0), ..Default::default() },
                row(Status::False, Impact::Unhealthy, "ProbeSucceeding", "probe sdk succeeded"),
            ),
            (
                OfflineEvidence { board: Some(&dead_bmp), ..Default::default() },
                row(Status::True, Impact::Unhealthy, "BmpNotAnswering", "the frame's BMP does not answer: timeout"),
            ),
            (
                OfflineEvidence { board: Some(&unbooted), sdk_online: Some(0.0), ..Default::default() },
                row(
                    Status::True,
                    Impact::Unhealthy,
                    "BoardNotBooted",
                    "the BMP answers but the board's SC&MP does not: no reply",
                ),
            ),
            (
                OfflineEvidence { probes: vec![probe(true, 0)], sdk_online: Some(0.0), ..Default::default() },
                row(Status::True, Impact::Unhealthy, "SdkReportsOffline", "the SDK reports the device offline"),
            ),
        ];
        for (e, want) in cases {
            let shown = format!("{e:?}");
            assert_eq!(seen(offline(e)), want, "{shown}");
        }
    }

    fn rule(name: &str, latched: bool, impact: Impact) -> LogCondition {
        LogCondition { rule: name.to_owned(), message: format!("log rule {name}: 5 matching line(s)"), latched, impact }
    }

    #[test]
    fn log_errors_follows_its_rule_and_says_whether_it_latches() {
        let aer = rule("aer_fatal", true, Impact::Unhealthy);
        let see =
            |e: LogErrorsEvidence<'_>| log_errors(e).map(|v| (seen(Some(v.verdict)).expect("a verdict"), v.latches));
        let quiet = row(Status::False, Impact::Degraded, "NoMatchingLines", "no error lines").map(|r| (r, false));
        let set = row(Status::True, Impact::Unhealthy, "aer_fatal", "log rule aer_fatal: 5 matching line(s)");
        assert_eq!(see(LogErrorsEvidence { has_logs: false, set_by_rule: None }), None);
        assert_eq!(see(LogErrorsEvidence { has_logs: true, set_by_rule: None }), quiet);
        assert_eq!(see(LogErrorsEvidence { has_logs: true, set_by_rule: Some(&aer) }), set.map(|r| (r, true)));
    }

    #[test]
    fn sdk_error_takes_the_first_source_that_speaks() {
        let drift = rule("calibration_drift", false, Impact::Unhealthy);
        let report =
            |problem, message: &str| SdkReport { probe: "sdk".to_owned(), problem, message: message.to_owned() };
        let (problem, fine) = (report(true, "laser bias out of range"), report(false, ""));
        let board = |warning, shutdown, dead_in_spalloc| BoardManagement {
            flags: Some(BmpFlags { warning, shutdown }),
            dead_in_spalloc,
        };
        let ev = |set_by_rule, sdk, board, is_true| SdkErrorEvidence { set_by_rule, sdk, board, is_true };
        let cases = [
            (ev(None, None, None, false), None),
            // A rule's condition wins over a clean status tool, and is degraded whatever the rule's severity.
            (
                ev(Some(&drift), Some(&fine), None, false),
                row(
                    Status::True,
                    Impact::Degraded,
                    "calibration_drift",
                    "log rule calibration_drift: 5 matching line(s)",
                ),
            ),
            (
                ev(None, Some(&problem), Some(board(0, 0x10, None)), false),
                row(Status::True, Impact::Degraded, "SdkReportsProblem", "probe sdk: laser bias out of range"),
            ),
            (ev(None, Some(&fine), None, true), row(Status::False, Impact::Degraded, "SdkOk", "probe sdk")),
            (
                ev(None, None, Some(board(0x1, 0x10, Some(true))), false),
                row(
                    Status::True,
                    Impact::Unhealthy,
                    "BmpShutdown",
                    "the BMP shut the board down: shutdown flags 0x00000010",
                ),
            ),
            (
                ev(None, None, Some(board(0x1, 0, Some(true))), false),
                row(Status::True, Impact::Degraded, "BmpWarning", "the BMP reports warning flags 0x00000001"),
            ),
            (
                ev(None, None, Some(board(0, 0, Some(true))), false),
                row(
                    Status::True,
                    Impact::Degraded,
                    "SpallocListsDead",
                    "spalloc lists the board as dead: no job can use it",
                ),
            ),
            (
                ev(None, None, Some(board(0, 0, None)), true),
                row(Status::False, Impact::Degraded, "BmpFlagsClear", "no BMP warning or shutdown flags"),
            ),
            // A board whose BMP flags were not read and spalloc not asked says nothing.
            (ev(None, None, Some(BoardManagement { flags: None, dead_in_spalloc: None }), true), None),
            // The rule's condition ended on a device with no other source: SdkError ends with it.
            (ev(None, None, None, true), row(Status::False, Impact::Degraded, "NoMatchingLines", "no matching lines")),
        ];
        for (e, want) in cases {
            assert_eq!(seen(sdk_error(e)), want, "{e:?}");
        }
    }

    #[test]
    fn data_stale_counts_the_silence_of_the_host_sources() {
        const S: Duration = Duration::from_secs(1);
        let ev = |has_host_sources, ever_read, silent: u32| DataStaleEvidence {
            agent_cannot_read: false,
            has_host_sources,
            ever_read,
            silent_for: silent * S,
            stale_after: 30 * S,
        };
        let cases = [
            (ev(false, false, 100), None),
            (ev(true, false, 5), row(Status::Unknown, Impact::Degraded, "WaitingForFirstReading", "no reading yet")),
            (ev(true, true, 30), row(Status::False, Impact::Degraded, "ReadingsFresh", "last reading 30s ago")),
            (
                ev(true, true, 31),
                row(Status::True, Impact::Degraded, "NoFreshReadings", "no reading from its sources for 31s"),
            ),
            (
                ev(true, false, 45),
                row(Status::True, Impact::Degraded, "NoFreshReadings", "no reading from its sources for 45s"),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(seen(data_stale(e)), want, "{e:?}");
        }
    }
}
