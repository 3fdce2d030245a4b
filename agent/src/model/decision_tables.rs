//! Table-driven tests of the model's decisions with an injected clock: every condition (set, hold, clear
//! with hysteresis, latch, set-healthy), the throttle policy and the reconnect policy. Each row is a name,
//! the evidence with the second it arrives, and what a user would see afterwards (the condition's status
//! and reason and the device's state, the throttle level asked for, the reconnect step and the circuit).
//! No row reads a clock: time is what the row says.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use collectors::fault::AgentFault;
use collectors::logs::Signal;
use collectors::probes::ReadingKind;

use super::engine::{DeviceEngine, LogUpdate, ProbeResult, ProbeState};
use super::evidence::HostEvidence;
use super::health::{ConditionKind, State, Status};
use crate::policy::reconnect::{Circuit, Decision};

const S: Duration = Duration::from_secs(1);

/// Evidence about device "d0", as its sources would send it.
#[derive(Debug, Clone, Copy)]
enum Ev {
    /// The status probe answers "fine" with a temperature.
    Temp(f64),
    /// The status probe answers "fine" with the device's power.
    Watts(f64),
    /// The status probe answers "fine" with its energy and inference counters, read together.
    Work { joules: f64, inferences: f64 },
    /// The probe answers "fine" with no reading.
    ProbeOk,
    /// The probe gives no verdict (timed out).
    ProbeFails,
    /// The agent could not start the probe: it is out of file descriptors (EMFILE).
    ProbeNotRun,
    /// The status tool says the device has a problem (exit 1).
    SdkProblem,
    /// The status tool reports the device offline (`online` 0).
    SdkSaysOffline,
    /// The log follower read lines, none matching.
    LogQuiet,
    /// A log rule set its condition.
    LogSet { rule: &'static str, condition: &'static str },
    /// A log rule cleared its condition (quiet period over, or a clear pattern).
    LogCleared { rule: &'static str, condition: &'static str },
    /// A host collector round (no bound chip answers in these tests).
    HostRound,
    /// `agentctl set-healthy d0`.
    SetHealthy,
    /// The agent's own reads of host files start (true) or stop (false) failing for want of descriptors.
    AgentCannotRead(bool),
}

/// A clock the test drives: second `t` of the row, monotonic and wall.
struct Clock {
    mono: Instant,
    wall: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock { mono: Instant::now(), wall: SystemTime::UNIX_EPOCH + 1_700_000_000 * S }
    }

    fn at(&self, t: u64) -> (Instant, SystemTime) {
        (self.mono + t as u32 * S, self.wall + t as u32 * S)
    }
}

fn result(status: ProbeState, readings: Vec<(ReadingKind, f64)>) -> ProbeResult {
    let answered = matches!(status, ProbeState::Ok | ProbeState::Problem);
    ProbeResult {
        probe: "sdk".into(),
        status,
        success: answered,
        sdk_problem: status == ProbeState::Problem,
        duration: Duration::from_millis(20),
        message: if answered { String::new() } else { "timed out".into() },
        readings,
        not_run: None,
    }
}

fn log(signals: Vec<Signal>) -> LogUpdate {
    LogUpdate { source: "log:/var/log/d0.log".into(), lines: 10, matches: Vec::new(), signals }
}

fn feed(e: &mut DeviceEngine, ev: Ev, now: Instant, wall: SystemTime) {
    let ok = |readings| result(ProbeState::Ok, readings);
    match ev {
        Ev::Temp(v) => drop(e.apply_probe("d0", ok(vec![(ReadingKind::Temperature, v)]), now, wall)),
        Ev::Watts(v) => drop(e.apply_probe("d0", ok(vec![(ReadingKind::Power, v)]), now, wall)),
        Ev::Work { joules, inferences } => {
            let readings = vec![(ReadingKind::Energy, joules), (ReadingKind::Inferences, inferences)];
            drop(e.apply_probe("d0", ok(readings), now, wall));
        }
        Ev::ProbeOk => drop(e.apply_probe("d0", ok(Vec::new()), now, wall)),
        Ev::ProbeFails => drop(e.apply_probe("d0", result(ProbeState::Failed, Vec::new()), now, wall)),
        Ev::ProbeNotRun => {
            let not_run = ProbeResult {
                message: "spawning sdk-status: Too many open files (os error 24)".into(),
                not_run: Some(AgentFault::Descriptors),
                ..result(ProbeState::Failed, Vec::new())
            };
            drop(e.apply_probe("d0", not_run, now, wall));
        }
        Ev::SdkProblem => drop(e.apply_probe("d0", result(ProbeState::Problem, Vec::new()), now, wall)),
        Ev::SdkSaysOffline => drop(e.apply_probe("d0", ok(vec![(ReadingKind::Online, 0.0)]), now, wall)),
        Ev::LogQuiet => drop(e.apply_log("d0", log(Vec::new()), now, wall)),
        Ev::LogSet { rule, condition } => {
            let set =
                Signal::ConditionSet { rule: Arc::from(rule), condition: Arc::from(condition), count_in_window: 5 };
            drop(e.apply_log("d0", log(vec![set]), now, wall));
        }
        Ev::LogCleared { rule, condition } => {
            let cleared = Signal::ConditionCleared {
                rule: Arc::from(rule),
                condition: Arc::from(condition),
                reason: collectors::logs::ClearReason::Quiet,
            };
            drop(e.apply_log("d0", log(vec![cleared]), now, wall));
        }
        Ev::HostRound => drop(e.evaluate(&HostEvidence::default(), now, wall)),
        Ev::SetHealthy => drop(e.set_healthy("d0", now, wall).expect("d0 exists")),
        Ev::AgentCannotRead(failing) => e.set_agent_cannot_read(failing),
    }
}

/// One row of a condition table: evidence at seconds, then what the user sees.
struct Case<'a> {
    name: &'static str,
    events: &'a [(u64, Ev)],
    status: Status,
    reason: &'static str,
    state: State,
}

/// Runs every row on a fresh engine and checks the condition as `agentctl status` would show it.
fn check(kind: ConditionKind, config: &str, cases: &[Case<'_>]) {
    let cfg = config::parse_str(config, "t.toml").expect("the table's config is valid");
    for case in cases {
        let clock = Clock::new();
        let (now, wall) = clock.at(0);
        let mut e = DeviceEngine::new(&cfg, now, wall);
        let mut last = 0;
        for &(t, ev) in case.events {
            let (now, wall) = clock.at(t);
            feed(&mut e, ev, now, wall);
            last = t;
        }
        let view = e.views(clock.at(last).1).remove(0);
        let c = view.conditions.iter().find(|c| c.kind == kind).expect("every kind is shown");
        assert_eq!(
            (c.status, c.reason.as_str(), view.state),
            (case.status, case.reason, case.state),
            "{}: {} ({})",
            kind.name(),
            case.name,
            c.message
        );
    }
}

const PROBE: &str = "[[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\n";

#[test]
fn overheating() {
    let config = format!(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [device.thresholds]\ntemperature_warn = 80.0\ntemperature_crit = 95.0\nhysteresis = 5.0\nmin_duration = \"10s\"\n{PROBE}"
    );
    use Ev::Temp;
    let (t, f) = (Status::True, Status::False);
    check(
        ConditionKind::Overheating,
        &config,
        &[
            Case {
                name: "below warn",
                events: &[(0, Temp(70.0))],
                status: f,
                reason: "TemperatureNormal",
                state: State::Healthy,
            },
            Case {
                name: "hold: above warn for less than min_duration",
                events: &[(0, Temp(85.0)), (9, Temp(85.0))],
                status: f,
                reason: "TemperatureNormal",
                state: State::Healthy,
            },
            Case {
                name: "set: above warn for min_duration",
                events: &[(0, Temp(85.0)), (10, Temp(85.0))],
                status: t,
                reason: "TemperatureAboveWarning",
                state: State::Degraded,
            },
            Case {
                name: "set: above crit for min_duration is unhealthy",
                events: &[(0, Temp(99.0)), (10, Temp(99.0))],
                status: t,
                reason: "TemperatureAboveCritical",
                state: State::Unhealthy,
            },
            Case {
                // The timer's rounds bring no new evidence; the held value still sets the condition.
                name: "set: above warn for min_duration, seen out by timer rounds",
                events: &[(0, Temp(85.0)), (5, Ev::HostRound), (10, Ev::HostRound)],
                status: t,
                reason: "TemperatureAboveWarning",
                state: State::Degraded,
            },
            Case {
                name: "clear: below warn - hysteresis for min_duration, seen out by timer rounds",
                events: &[
                    (0, Temp(85.0)),
                    (10, Temp(85.0)),
                    (20, Temp(74.0)),
                    (21, Ev::HostRound),
                    (30, Ev::HostRound),
                ],
                status: f,
                reason: "TemperatureNormal",
                state: State::Healthy,
            },
            Case {
                name: "a spike shorter than min_duration changes nothing",
                events: &[(0, Temp(85.0)), (5, Temp(70.0)), (10, Temp(85.0))],
                status: f,
                reason: "TemperatureNormal",
                state: State::Healthy,
            },
            Case {
                name: "hysteresis: below warn but above warn - hysteresis stays set",
                events: &[(0, Temp(85.0)), (10, Temp(85.0)), (20, Temp(77.0)), (40, Temp(77.0))],
                status: t,
                reason: "TemperatureAboveWarning",
                state: State::Degraded,
            },
            Case {
                name: "hysteresis: below warn - hysteresis for less than min_duration stays set",
                events: &[(0, Temp(85.0)), (10, Temp(85.0)), (20, Temp(74.0)), (29, Temp(74.0))],
                status: t,
                reason: "TemperatureAboveWarning",
                state: State::Degraded,
            },
            Case {
                name: "clear: below warn - hysteresis for min_duration",
                events: &[(0, Temp(85.0)), (10, Temp(85.0)), (20, Temp(74.0)), (30, Temp(74.0))],
                status: f,
                reason: "TemperatureNormal",
                state: State::Healthy,
            },
            Case {
                name: "from critical back to warning below crit - hysteresis",
                events: &[(0, Temp(99.0)), (10, Temp(99.0)), (20, Temp(89.0)), (30, Temp(89.0))],
                status: t,
                reason: "TemperatureAboveWarning",
                state: State::Degraded,
            },
            Case {
                name: "set-healthy does not clear what the sensor still shows",
                events: &[(0, Temp(85.0)), (10, Temp(85.0)), (11, Ev::SetHealthy)],
                status: t,
                reason: "TemperatureAboveWarning",
                state: State::Degraded,
            },
        ],
    );
}

#[test]
fn offline() {
    let config = format!("[[device]]\nid = \"d0\"\nkind = \"generic\"\n{PROBE}offline_after = 2\n");
    use Ev::{ProbeFails, ProbeNotRun, ProbeOk};
    let (t, f) = (Status::True, Status::False);
    check(
        ConditionKind::Offline,
        &config,
        &[
            Case {
                name: "the probe answers",
                events: &[(0, ProbeOk)],
                status: f,
                reason: "ProbeSucceeding",
                state: State::Healthy,
            },
            Case {
                name: "hold: fewer failures in a row than offline_after",
                events: &[(0, ProbeOk), (1, ProbeFails)],
                status: f,
                reason: "ProbeSucceeding",
                state: State::Healthy,
            },
            Case {
                name: "set: offline_after failures in a row",
                events: &[(0, ProbeOk), (1, ProbeFails), (2, ProbeFails)],
                status: t,
                reason: "ProbeFailing",
                state: State::Unhealthy,
            },
            Case {
                name: "a success between failures starts the count again",
                events: &[(0, ProbeFails), (1, ProbeOk), (2, ProbeFails)],
                status: f,
                reason: "ProbeSucceeding",
                state: State::Healthy,
            },
            Case {
                name: "clear: the probe answers again",
                events: &[(0, ProbeFails), (1, ProbeFails), (2, ProbeOk)],
                status: f,
                reason: "ProbeSucceeding",
                state: State::Healthy,
            },
            Case {
                name: "set: the SDK reports the device offline",
                events: &[(0, ProbeOk), (1, Ev::SdkSaysOffline)],
                status: t,
                reason: "SdkReportsOffline",
                state: State::Unhealthy,
            },
            Case {
                name: "set-healthy does not clear a probe that still fails",
                events: &[(0, ProbeFails), (1, ProbeFails), (2, Ev::SetHealthy)],
                status: t,
                reason: "ProbeFailing",
                state: State::Unhealthy,
            },
            Case {
                name: "the agent's own trouble: probes it cannot start never set Offline",
                events: &[(0, ProbeOk), (1, ProbeNotRun), (2, ProbeNotRun), (3, ProbeNotRun), (4, ProbeNotRun)],
                status: f,
                reason: "ProbeSucceeding",
                state: State::Healthy,
            },
            Case {
                name: "the agent's own trouble from the start: the device stays unknown, not offline",
                events: &[(0, ProbeNotRun), (1, ProbeNotRun), (2, ProbeNotRun)],
                status: Status::Unknown,
                reason: "NoData",
                state: State::Unknown,
            },
            Case {
                name: "a probe not run neither counts as a failure nor ends a failure streak",
                events: &[(0, ProbeOk), (1, ProbeFails), (2, ProbeNotRun), (3, ProbeFails)],
                status: t,
                reason: "ProbeFailing",
                state: State::Unhealthy,
            },
            Case {
                name: "a probe not run does not clear an Offline the device earned",
                events: &[(0, ProbeFails), (1, ProbeFails), (2, ProbeNotRun)],
                status: t,
                reason: "ProbeFailing",
                state: State::Unhealthy,
            },
        ],
    );
}

#[test]
fn sdk_error() {
    let config = format!(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n{PROBE}\
         [[device.log]]\npath = \"/var/log/d0.log\"\n\
         [[device.log.rule]]\nname = \"drift\"\npattern = \"calibration drift\"\naction = \"SdkError\"\nlatch = true\n"
    );
    let drift = Ev::LogSet { rule: "drift", condition: "SdkError" };
    let (t, f) = (Status::True, Status::False);
    check(
        ConditionKind::SdkError,
        &config,
        &[
            Case {
                name: "the tool says fine",
                events: &[(0, Ev::ProbeOk)],
                status: f,
                reason: "SdkOk",
                state: State::Healthy,
            },
            Case {
                name: "set: the tool reports a problem",
                events: &[(0, Ev::SdkProblem)],
                status: t,
                reason: "SdkReportsProblem",
                state: State::Degraded,
            },
            Case {
                name: "clear: the tool says fine again",
                events: &[(0, Ev::SdkProblem), (5, Ev::ProbeOk)],
                status: f,
                reason: "SdkOk",
                state: State::Healthy,
            },
            Case {
                name: "set: a log rule reports an SDK error",
                events: &[(0, Ev::ProbeOk), (1, drift)],
                status: t,
                reason: "drift",
                state: State::Degraded,
            },
            Case {
                name: "the tool saying fine does not clear a log rule's error",
                events: &[(0, Ev::ProbeOk), (1, drift), (2, Ev::ProbeOk)],
                status: t,
                reason: "drift",
                state: State::Degraded,
            },
            Case {
                name: "set-healthy clears the latched log rule's error",
                events: &[(0, Ev::ProbeOk), (1, drift), (2, Ev::SetHealthy)],
                status: f,
                reason: "SdkOk",
                state: State::Healthy,
            },
            Case {
                name: "set-healthy clears the latched log rule's error when no tool reports on it",
                events: &[(1, drift), (2, Ev::SetHealthy)],
                status: f,
                reason: "NoMatchingLines",
                state: State::Healthy,
            },
            Case {
                name: "clear: the log rule clears it when no tool reports on it",
                events: &[(1, drift), (300, Ev::LogCleared { rule: "drift", condition: "SdkError" })],
                status: f,
                reason: "NoMatchingLines",
                state: State::Healthy,
            },
            Case {
                name: "set-healthy does not clear what the tool still reports",
                events: &[(0, Ev::SdkProblem), (1, Ev::SetHealthy)],
                status: t,
                reason: "SdkReportsProblem",
                state: State::Degraded,
            },
        ],
    );
}

#[test]
fn log_errors() {
    let config = "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [[device.log]]\npath = \"/var/log/d0.log\"\n\
         [[device.log.rule]]\nname = \"err\"\npattern = \"error\"\naction = \"LogErrors\"\n\
         [[device.log.rule]]\nname = \"fatal\"\npattern = \"fatal\"\naction = \"LogErrors\"\nseverity = \"critical\"\nlatch = true\n";
    let err = Ev::LogSet { rule: "err", condition: "LogErrors" };
    let err_quiet = Ev::LogCleared { rule: "err", condition: "LogErrors" };
    let fatal = Ev::LogSet { rule: "fatal", condition: "LogErrors" };
    let fatal_quiet = Ev::LogCleared { rule: "fatal", condition: "LogErrors" };
    let (t, f) = (Status::True, Status::False);
    check(
        ConditionKind::LogErrors,
        config,
        &[
            Case {
                name: "lines read, none matching",
                events: &[(0, Ev::LogQuiet)],
                status: f,
                reason: "NoMatchingLines",
                state: State::Healthy,
            },
            Case {
                name: "set: a burst of error lines",
                events: &[(0, err)],
                status: t,
                reason: "err",
                state: State::Degraded,
            },
            Case {
                name: "set: a critical rule makes the device unhealthy",
                events: &[(0, fatal)],
                status: t,
                reason: "fatal",
                state: State::Unhealthy,
            },
            Case {
                name: "hold: more quiet lines do not clear it",
                events: &[(0, err), (30, Ev::LogQuiet)],
                status: t,
                reason: "err",
                state: State::Degraded,
            },
            Case {
                name: "clear: the rule's quiet period passed",
                events: &[(0, err), (300, err_quiet)],
                status: f,
                reason: "NoMatchingLines",
                state: State::Healthy,
            },
            Case {
                name: "latch: stays set when its rule clears",
                events: &[(0, fatal), (300, fatal_quiet)],
                status: t,
                reason: "fatal",
                state: State::Unhealthy,
            },
            Case {
                name: "set-healthy clears a latched one",
                events: &[(0, fatal), (300, fatal_quiet), (301, Ev::SetHealthy)],
                status: f,
                reason: "NoMatchingLines",
                state: State::Healthy,
            },
            Case {
                name: "set-healthy leaves an unlatched one whose burst goes on",
                events: &[(0, err), (1, Ev::SetHealthy)],
                status: t,
                reason: "err",
                state: State::Degraded,
            },
        ],
    );
}

#[test]
fn power_anomaly() {
    let config = format!(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [device.thresholds]\npower_max = 100.0\nenergy_per_inference_max = 0.005\nhysteresis = 5.0\nmin_duration = \"10s\"\n{PROBE}"
    );
    use Ev::Watts;
    let work = |joules, inferences| Ev::Work { joules, inferences };
    let (t, f) = (Status::True, Status::False);
    check(
        ConditionKind::PowerAnomaly,
        &config,
        &[
            Case {
                name: "below power_max",
                events: &[(0, Watts(90.0))],
                status: f,
                reason: "PowerNormal",
                state: State::Healthy,
            },
            Case {
                name: "hold: above power_max for less than min_duration",
                events: &[(0, Watts(120.0)), (9, Watts(120.0))],
                status: f,
                reason: "PowerNormal",
                state: State::Healthy,
            },
            Case {
                name: "set: above power_max for min_duration",
                events: &[(0, Watts(120.0)), (10, Watts(120.0))],
                status: t,
                reason: "PowerAboveMaximum",
                state: State::Degraded,
            },
            Case {
                name: "hysteresis: below power_max but above power_max - hysteresis stays set",
                events: &[(0, Watts(120.0)), (10, Watts(120.0)), (20, Watts(97.0)), (40, Watts(97.0))],
                status: t,
                reason: "PowerAboveMaximum",
                state: State::Degraded,
            },
            Case {
                name: "clear: below power_max - hysteresis for min_duration",
                events: &[(0, Watts(120.0)), (10, Watts(120.0)), (20, Watts(94.0)), (30, Watts(94.0))],
                status: f,
                reason: "PowerNormal",
                state: State::Healthy,
            },
            Case {
                name: "set: energy per inference above its maximum for min_duration",
                events: &[(0, work(100.0, 1000.0)), (10, work(106.0, 2000.0)), (20, work(112.0, 3000.0))],
                status: t,
                reason: "EnergyPerInferenceAboveMaximum",
                state: State::Degraded,
            },
            Case {
                name: "energy per inference within its maximum",
                events: &[(0, work(100.0, 1000.0)), (10, work(104.0, 2000.0)), (20, work(108.0, 3000.0))],
                status: f,
                reason: "EnergyPerInferenceNormal",
                state: State::Healthy,
            },
            Case {
                name: "set-healthy does not clear what the sensor still shows",
                events: &[(0, Watts(120.0)), (10, Watts(120.0)), (11, Ev::SetHealthy)],
                status: t,
                reason: "PowerAboveMaximum",
                state: State::Degraded,
            },
        ],
    );
}

#[test]
fn data_stale() {
    // A device bound to a chip that never answers; its probe's readings count as readings.
    let config = format!(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\nhwmon = \"accel_chip\"\n\
         [device.thresholds]\nstale_after = \"30s\"\n{PROBE}"
    );
    use Ev::HostRound;
    check(
        ConditionKind::DataStale,
        &config,
        &[
            Case {
                name: "no reading yet",
                events: &[(10, HostRound)],
                status: Status::Unknown,
                reason: "WaitingForFirstReading",
                state: State::Unknown,
            },
            Case {
                name: "hold: no reading for exactly stale_after",
                events: &[(30, HostRound)],
                status: Status::Unknown,
                reason: "WaitingForFirstReading",
                state: State::Unknown,
            },
            Case {
                name: "set: no reading for longer than stale_after",
                events: &[(31, HostRound)],
                status: Status::True,
                reason: "NoFreshReadings",
                state: State::Degraded,
            },
            Case {
                name: "clear: a reading arrives",
                events: &[(31, HostRound), (32, Ev::Temp(50.0)), (33, HostRound)],
                status: Status::False,
                reason: "ReadingsFresh",
                state: State::Healthy,
            },
            Case {
                name: "the agent's own trouble: silent past stale_after while the agent cannot read sets nothing",
                events: &[(10, Ev::AgentCannotRead(true)), (31, HostRound), (60, HostRound)],
                status: Status::Unknown,
                reason: "NoData",
                state: State::Unknown,
            },
            Case {
                name: "set: the agent reads again and the device is still silent",
                events: &[
                    (10, Ev::AgentCannotRead(true)),
                    (31, HostRound),
                    (32, Ev::AgentCannotRead(false)),
                    (33, HostRound),
                ],
                status: Status::True,
                reason: "NoFreshReadings",
                state: State::Degraded,
            },
            Case {
                name: "set-healthy does not clear it while nothing is read",
                events: &[(31, HostRound), (32, Ev::SetHealthy)],
                status: Status::True,
                reason: "NoFreshReadings",
                state: State::Degraded,
            },
        ],
    );
}

/// One row of the throttle table: the hottest reading at seconds, with the level applied then, and the
/// level the policy asks for (None: no change).
struct ThrottleCase {
    name: &'static str,
    steps: &'static [(u64, f64, usize, Option<usize>)],
}

#[test]
fn throttle_policy() {
    // Threshold 80, hysteresis 5, hold 10 s, three levels; the device's own thresholds are out of the way.
    let cfg = config::parse_str(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [device.thresholds]\ntemperature_warn = 150.0\ntemperature_crit = 160.0\n\
         [[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\n\
         [device.throttle]\nthreshold = 80.0\nhysteresis = 5.0\nhold = \"10s\"\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 2 }\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 3 }\n",
        "t.toml",
    )
    .expect("valid");
    let cases = [
        ThrottleCase { name: "below the threshold: nothing", steps: &[(0, 70.0, 0, None), (30, 70.0, 0, None)] },
        ThrottleCase {
            name: "hold: above the threshold for less than hold",
            steps: &[(0, 85.0, 0, None), (9, 85.0, 0, None)],
        },
        ThrottleCase {
            name: "up: one level after hold",
            steps: &[(0, 85.0, 0, None), (9, 85.0, 0, None), (10, 85.0, 0, Some(1))],
        },
        ThrottleCase {
            name: "up: each level waits its own hold",
            steps: &[(0, 85.0, 0, None), (10, 85.0, 0, Some(1)), (15, 85.0, 1, None), (20, 85.0, 1, Some(2))],
        },
        ThrottleCase {
            name: "max: never beyond the last level",
            steps: &[
                (0, 99.0, 0, None),
                (10, 99.0, 0, Some(1)),
                (20, 99.0, 1, Some(2)),
                (30, 99.0, 2, Some(3)),
                (40, 99.0, 3, None),
                (60, 99.0, 3, None),
            ],
        },
        ThrottleCase {
            name: "hold: inside the hysteresis band the level stays",
            steps: &[(0, 77.0, 2, None), (20, 77.0, 2, None), (40, 79.0, 2, None)],
        },
        ThrottleCase {
            name: "down: one level per hold below threshold - hysteresis",
            steps: &[(0, 74.0, 2, None), (10, 74.0, 2, Some(1)), (20, 74.0, 1, Some(0)), (30, 74.0, 0, None)],
        },
        ThrottleCase {
            name: "a write that did not take is asked again after hold",
            steps: &[(0, 85.0, 0, None), (10, 85.0, 0, Some(1)), (15, 85.0, 0, None), (20, 85.0, 0, Some(1))],
        },
        ThrottleCase {
            name: "a dip into the band restarts the hold",
            steps: &[
                (0, 85.0, 0, None),
                (8, 78.0, 0, None),
                (12, 85.0, 0, None),
                (21, 85.0, 0, None),
                (22, 85.0, 0, Some(1)),
            ],
        },
    ];
    for case in &cases {
        let clock = Clock::new();
        let (now, wall) = clock.at(0);
        let mut e = DeviceEngine::new(&cfg, now, wall);
        for &(t, celsius, applied, want) in case.steps {
            let (now, wall) = clock.at(t);
            feed(&mut e, Ev::Temp(celsius), now, wall);
            let got = e.throttle_requests(|_| applied, now, wall);
            let want: Vec<(String, usize)> = want.map(|l| ("d0".to_owned(), l)).into_iter().collect();
            assert_eq!(got, want, "{} at {t}s ({celsius} °C, level {applied} applied)", case.name);
        }
    }
}

/// With no threshold, hysteresis or hold of its own, the throttle steps on the Overheating judgement
/// itself: each row is the hottest reading at seconds, the level applied then, the level asked for, and
/// Overheating's status after it. The first step comes as Overheating sets; a dip into the band changes
/// neither; below the band for min_duration, Overheating clears as the ladder steps down.
#[test]
fn throttle_policy_on_the_overheating_judgement() {
    let cfg = config::parse_str(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [device.thresholds]\ntemperature_warn = 80.0\ntemperature_crit = 95.0\nhysteresis = 5.0\nmin_duration = \"10s\"\n\
         [[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\n\
         [device.throttle]\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 2 }\n",
        "t.toml",
    )
    .expect("valid");
    use Status::{False, True};
    let rows: &[(u64, f64, usize, Option<usize>, Status)] = &[
        (0, 70.0, 0, None, False),
        (1, 85.0, 0, None, False),
        (10, 85.0, 0, None, False),
        (11, 85.0, 0, Some(1), True),
        (16, 78.0, 1, None, True),
        (30, 79.0, 1, None, True),
        (31, 74.0, 1, None, True),
        (41, 74.0, 1, Some(0), False),
        (60, 70.0, 0, None, False),
    ];
    let clock = Clock::new();
    let (now, wall) = clock.at(0);
    let mut e = DeviceEngine::new(&cfg, now, wall);
    for &(t, celsius, applied, want, overheating) in rows {
        let (now, wall) = clock.at(t);
        feed(&mut e, Ev::Temp(celsius), now, wall);
        let asked = e.throttle_requests(|_| applied, now, wall).first().map(|(_, level)| *level);
        let view = e.views(wall).remove(0);
        let c = view.conditions.iter().find(|c| c.kind == ConditionKind::Overheating).expect("shown");
        assert_eq!((asked, c.status), (want, overheating), "{celsius} °C at {t}s, level {applied} applied");
    }
}

#[test]
fn throttle_policy_on_power_and_under_an_operator() {
    let cfg = config::parse_str(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\n\
         [device.throttle]\nmetric = \"power\"\nthreshold = 200.0\nhysteresis = 20.0\nhold = \"0s\"\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 2 }\n",
        "t.toml",
    )
    .expect("valid");
    let clock = Clock::new();
    let (now, wall) = clock.at(0);
    let mut e = DeviceEngine::new(&cfg, now, wall);
    let d0 = |l: usize| vec![("d0".to_owned(), l)];
    // Power, not temperature, is watched: a hot reading alone asks nothing.
    feed(&mut e, Ev::Temp(120.0), now, wall);
    assert_eq!(e.throttle_requests(|_| 0, now, wall), vec![], "temperature is not the metric");
    let (now, wall) = clock.at(1);
    feed(&mut e, Ev::Watts(250.0), now, wall);
    assert_eq!(e.throttle_requests(|_| 0, now, wall), d0(1), "hold 0s: at the first reading above");
    // An operator's level wins, and is asked once.
    e.set_manual_throttle("d0", Some(2), None).expect("d0 has a ladder");
    let (now, wall) = clock.at(2);
    assert_eq!(e.throttle_requests(|_| 1, now, wall), d0(2), "the operator's level");
    assert_eq!(e.throttle_requests(|_| 1, now, wall), vec![], "asked once, not at every evaluation");
    // Released: back to 0 once, then automatic control again.
    e.set_manual_throttle("d0", None, None).expect("d0 has a ladder");
    let (now, wall) = clock.at(3);
    assert_eq!(e.throttle_requests(|_| 2, now, wall), d0(0), "released: back to level 0");
    let (now, wall) = clock.at(4);
    assert_eq!(e.throttle_requests(|_| 0, now, wall), d0(1), "automatic again: still above 200 W");
}

/// One row of the reconnect table: at second t the device is offline or answers (None: no news), then
/// the policy's decision ("" for none) and the circuit as `agentctl status` shows it.
struct ReconnectCase<'a> {
    name: &'static str,
    steps: &'a [(u64, Option<bool>, &'static str, Circuit)],
}

fn said(d: &Decision) -> String {
    match d {
        Decision::Attempt { step } => format!("attempt {step}"),
        Decision::Failed { step } => format!("failed {step}"),
        Decision::Recovered { step } => format!("recovered {step}"),
        Decision::Opened { step } => format!("opened {step}"),
        Decision::Escalate { step } => format!("escalate {step}"),
    }
}

#[test]
fn reconnect_policy() {
    // Two steps; two failed attempts open the circuit for 30 s; the second opening needs a person.
    let cfg = config::parse_str(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\npci_address = \"0000:3b:00.0\"\n\
         [device.thresholds]\nstale_after = \"1h\"\n\
         [[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\noffline_after = 1\n\
         [device.reconnect]\nsteps = [\"vendor\", \"function_reset\"]\ncommand = [\"vendor-reconnect\", \"{id}\"]\n\
         max_failures = 2\nbackoff_initial = \"2s\"\nbackoff_max = \"4s\"\ncooldown = \"30s\"\nsettle = \"5s\"\nescalate_after = 2\n",
        "t.toml",
    )
    .expect("valid");
    use Circuit::{Closed, HalfOpen, Open};
    let (down, up) = (Some(true), Some(false));
    let cases = [
        ReconnectCase { name: "online: nothing to do", steps: &[(0, up, "", Closed), (60, up, "", Closed)] },
        ReconnectCase {
            name: "the mildest step first, and the device comes back",
            steps: &[(0, down, "attempt vendor", Closed), (1, down, "", Closed), (3, up, "recovered vendor", Closed)],
        },
        ReconnectCase {
            name: "steps in order, after settle and a backoff",
            steps: &[
                (0, down, "attempt vendor", Closed),
                (4, down, "", Closed),
                (5, down, "failed vendor", Closed),
                (6, down, "", Closed),
                (8, down, "attempt function_reset", Closed),
                (9, up, "recovered function_reset", Closed),
            ],
        },
        ReconnectCase {
            name: "max_failures failed attempts open the circuit; half-open after cooldown; then escalate",
            steps: &[
                (0, down, "attempt vendor", Closed),
                (5, down, "failed vendor", Closed),
                (8, down, "attempt function_reset", Closed),
                (13, down, "opened function_reset", Open),
                (20, down, "", Open),
                (42, down, "", Open),
                (43, down, "attempt vendor", HalfOpen),
                (48, down, "escalate vendor", Open),
                (100, down, "", Open),
                (200, up, "", Open),
            ],
        },
        ReconnectCase {
            name: "the half-open try succeeds: the circuit closes",
            steps: &[
                (0, down, "attempt vendor", Closed),
                (5, down, "failed vendor", Closed),
                (8, down, "attempt function_reset", Closed),
                (13, down, "opened function_reset", Open),
                (43, down, "attempt vendor", HalfOpen),
                (45, up, "recovered vendor", Closed),
            ],
        },
        ReconnectCase {
            name: "back on its own while backing off: the next outage starts from the mildest step",
            steps: &[
                (0, down, "attempt vendor", Closed),
                (5, down, "failed vendor", Closed),
                (6, up, "", Closed),
                (7, down, "attempt vendor", Closed),
            ],
        },
    ];
    for case in &cases {
        let clock = Clock::new();
        let (now, wall) = clock.at(0);
        let mut e = DeviceEngine::new(&cfg, now, wall);
        for &(t, offline, want, circuit) in case.steps {
            let (now, wall) = clock.at(t);
            match offline {
                Some(true) => feed(&mut e, Ev::ProbeFails, now, wall),
                Some(false) => feed(&mut e, Ev::ProbeOk, now, wall),
                None => {}
            }
            let got: Vec<String> = e.reconnect_decisions(now, wall).iter().map(|(_, d)| said(d)).collect();
            let view = e.views(wall).remove(0);
            assert_eq!((got.join(", ").as_str(), view.circuit), (want, Some(circuit)), "{} at {t}s", case.name);
        }
    }
    // The agent's own trouble never starts the ladder: a minute of probes it could not start (out of
    // descriptors) after the device last answered.
    let clock = Clock::new();
    let mut e = DeviceEngine::new(&cfg, clock.at(0).0, clock.at(0).1);
    feed(&mut e, Ev::ProbeOk, clock.at(0).0, clock.at(0).1);
    for t in 1..=60 {
        let (now, wall) = clock.at(t);
        feed(&mut e, Ev::ProbeNotRun, now, wall);
        assert_eq!(e.reconnect_decisions(now, wall), vec![], "no reconnect at {t}s on the agent's own trouble");
    }
    let view = e.views(clock.at(60).1).remove(0);
    assert_eq!((view.state, view.circuit), (State::Healthy, Some(Closed)), "judged on what it last said");
    assert_eq!(view.probes[0].not_run, Some(AgentFault::Descriptors), "shown as not run");
    // What the operator sees after the ladder gave up: degraded, needs inspection, until set-healthy.
    let clock = Clock::new();
    let mut e = DeviceEngine::new(&cfg, clock.at(0).0, clock.at(0).1);
    for t in 0..=60 {
        let (now, wall) = clock.at(t);
        feed(&mut e, if t < 50 { Ev::ProbeFails } else { Ev::ProbeOk }, now, wall);
        e.reconnect_decisions(now, wall);
    }
    let view = e.views(clock.at(60).1).remove(0);
    assert_eq!((view.state, view.needs_hardware_inspection), (State::Degraded, true), "answers, but gave up");
    let (now, wall) = clock.at(61);
    let (cleared, _) = e.set_healthy("d0", now, wall).expect("d0 exists");
    assert_eq!(cleared, vec!["reconnect circuit (closed again)".to_owned()]);
    let view = e.views(wall).remove(0);
    assert_eq!((view.state, view.circuit, view.needs_hardware_inspection), (State::Healthy, Some(Closed), false));
}
