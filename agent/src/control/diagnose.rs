//! `agentctl diagnose`: every check run now, each finding with the runbook step it replaces and what to do.

use serde::{Deserialize, Serialize};

use crate::effects::faults::AgentFault;
use crate::model::source_health::SourceKind;
use crate::model::{ConditionKind, DeviceView, State, Status};
use crate::policy::mode::ActionsMode;
use crate::publish::api::StatusReport;
use crate::publish::state::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Critical,
}

impl Level {
    /// The name in the answer and in agentctl's text.
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Finding {
    pub level: Level,
    /// Absent for findings about the agent or the host.
    pub device: Option<String>,
    /// What was checked, e.g. "condition Overheating", "collector hwmon".
    pub check: String,
    pub finding: String,
    /// The manual runbook step this check does instead.
    pub replaces: String,
    pub action: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// The worst device state, as in status.
    pub status: State,
    pub devices: usize,
    pub probes_run: usize,
    /// Most severe first.
    pub findings: Vec<Finding>,
}

/// The manual step each condition's check replaces, by device kind where the runbooks differ.
fn replaces(kind: ConditionKind, device_kind: &str) -> &'static str {
    match (kind, device_kind) {
        (ConditionKind::Overheating, "spinnaker-board") => "read the board temperatures from the BMP by hand",
        (ConditionKind::Overheating, _) => "run `sensors` and compare with the board's limits",
        (ConditionKind::Offline, "photonic") => "`photon-debug --list-devices` and ping the card",
        (ConditionKind::Offline, "spinnaker-board") => "ping the board and its BMP",
        (ConditionKind::Offline, "loihi") => "ping the host and check the NxSDK board status",
        (ConditionKind::Offline, _) => "ping the device and run the vendor status tool",
        (ConditionKind::SdkError, _) => "run the vendor status CLI and read its output",
        (ConditionKind::LogErrors, _) => "grep the device log for errors",
        (ConditionKind::PowerAnomaly, _) => "read power and energy counters and work out energy per inference",
        (ConditionKind::DataStale, _) => "cat the sysfs files and check the driver is loaded (lsmod, dmesg)",
        (ConditionKind::DiagnosticFailed, _) => "run `agentctl diagnose --level 3 ID` again once the remedy ran",
    }
}

fn condition_action(d: &DeviceView, kind: ConditionKind, latched: bool, throttle: Option<(usize, usize)>) -> String {
    let id = &d.id;
    let mut action = match kind {
        ConditionKind::Overheating => match throttle {
            Some((level, max)) => format!(
                "throttling is at level {level} of {max}; check fans and airflow, or hold a level: `agentctl throttle {id} {} --for 30m`",
                (level + 1).min(max)
            ),
            None => "check fans and airflow and reduce the load; add a throttle ladder to act automatically".into(),
        },
        ConditionKind::Offline => match d.circuit {
            Some(_) => format!("check power and the link, then `agentctl reconnect {id}`"),
            None => "check power and the link; add a reconnect ladder to recover automatically".into(),
        },
        _ => crate::model::health::next_step(kind).to_owned(),
    };
    if latched {
        action.push_str(&format!("; the condition is latched: once fixed, `agentctl set-healthy {id}`"));
    }
    action
}

/// One finding for each reason the device is in maintenance: the windows that hold it, and an operator's.
fn maintenance_findings(d: &crate::model::DeviceView, findings: &mut Vec<Finding>) {
    let windows = d.maintenance_windows.iter().map(|w| {
        let action = "none: the window ends by itself ([[maintenance.window]] in the config sets when)";
        (format!("in {w}: no automatic actions"), action.to_owned())
    });
    let manual = d.maintenance_manual.then(|| {
        let until = d.maintenance_until.map_or("until turned off".to_owned(), |t| format!("for {} more", remaining(t)));
        let action = format!("`agentctl maintenance {} off` when the work is done", d.id);
        (format!("in maintenance {until}: no automatic actions"), action)
    });
    for (finding, action) in windows.chain(manual) {
        findings.push(Finding {
            level: Level::Info,
            device: Some(d.id.clone()),
            check: "maintenance".into(),
            finding,
            replaces: "keep track of maintenance windows".into(),
            action,
        });
    }
}

pub fn diagnose(snap: &Snapshot, status: &StatusReport, config: &config::Config, probes_run: usize) -> Report {
    let mut findings = Vec::new();
    for d in snap.devices.iter() {
        let throttle = snap.throttle.iter().find(|t| t.device == d.id).map(|t| (t.level, t.max_level));
        device_findings(d, throttle, &mut findings);
    }
    source_findings(status, config, &mut findings);
    agent_findings(status, config, snap.devices.is_empty(), &mut findings);
    findings.sort_by(|a, b| b.level.cmp(&a.level).then_with(|| a.device.cmp(&b.device)));
    Report { status: status.status, devices: snap.devices.len(), probes_run, findings }
}

/// A device's own findings: its true conditions, its reconnect ladder, failing probes, maintenance and a
/// manual throttle.
fn device_findings(d: &DeviceView, throttle: Option<(usize, usize)>, findings: &mut Vec<Finding>) {
    for c in d.conditions.iter().filter(|c| c.status == Status::True) {
        let level = match c.impact {
            crate::model::health::Impact::Unhealthy => Level::Critical,
            crate::model::health::Impact::Degraded => Level::Warning,
        };
        findings.push(Finding {
            level,
            device: Some(d.id.clone()),
            check: format!("condition {}", c.kind.name()),
            finding: format!("{}: {}", c.reason, c.message),
            replaces: replaces(c.kind, &d.kind).to_owned(),
            action: condition_action(d, c.kind, c.latched, throttle),
        });
    }
    if d.needs_hardware_inspection {
        findings.push(Finding {
            level: Level::Critical,
            device: Some(d.id.clone()),
            check: "reconnect ladder".into(),
            finding: "automatic reconnects gave up after repeated failures (NeedsHardwareInspection)".into(),
            replaces: "escalate to hardware inspection after repeated failed resets".into(),
            action: format!("inspect the hardware, then `agentctl set-healthy {}` to re-arm the ladder", d.id),
        });
    } else if d.circuit == Some(crate::policy::reconnect::Circuit::Open) {
        findings.push(Finding {
            level: Level::Warning,
            device: Some(d.id.clone()),
            check: "reconnect circuit".into(),
            finding: "the reconnect circuit is open: automatic attempts pause for the cooldown".into(),
            replaces: "decide by hand whether another reset is worth it".into(),
            action: format!("wait for the half-open try, or `agentctl reconnect {}` now", d.id),
        });
    }
    for p in d.probes.iter().filter(|p| !p.success && p.status != crate::model::engine::ProbeState::Pending) {
        findings.push(Finding {
            level: Level::Warning,
            device: Some(d.id.clone()),
            check: format!("probe {}", p.name),
            finding: format!("{} {}", p.status, p.message).trim().to_owned(),
            replaces: "run the status command or ping by hand".into(),
            action: "run the probe's command by hand to see its output; check its path and timeout".into(),
        });
    }
    maintenance_findings(d, findings);
    if let Some(m) = d.manual_throttle {
        findings.push(Finding {
            level: Level::Info,
            device: Some(d.id.clone()),
            check: "manual throttle".into(),
            finding: format!("held at throttle level {} by an operator", m.level),
            replaces: "remember to undo a manual throttle".into(),
            action: format!("`agentctl unthrottle {}` to hand it back to automatic control", d.id),
        });
    }
}

/// Findings about the sources of evidence and kubelet, which concern no one device.
fn source_findings(status: &StatusReport, config: &config::Config, findings: &mut Vec<Finding>) {
    for f in &status.sources_failing {
        // A failing probe is a finding of its device already (above), with what it said.
        if f.source == SourceKind::Probe {
            continue;
        }
        let (replaces, action) = source_runbook(f.source);
        findings.push(Finding {
            level: Level::Warning,
            device: None,
            check: format!("source {} {}", f.source.name(), f.name),
            finding: format!("failing for {}: {}", since(f.since), f.reason),
            replaces: replaces.into(),
            action: action.into(),
        });
    }
    if let Some(k) = &status.agent.kubelet {
        for r in k.resources.iter().filter(|r| !r.registered) {
            findings.push(Finding {
                level: Level::Warning,
                device: None,
                check: format!("kubelet registration {}", r.resource),
                finding: format!(
                    "the device plugin for {} is not registered with kubelet: {}; kubelet neither allocates \
                     these devices nor learns their health",
                    r.resource,
                    r.error.as_deref().unwrap_or("not tried yet")
                ),
                replaces: "check `kubectl describe node` for the extended resource".into(),
                action: format!(
                    "check that kubelet runs and that {} is mounted into the agent (journalctl -u kubelet)",
                    config.kubernetes.device_plugin_dir.display()
                ),
            });
        }
        if let Some(why) = &k.pod_resources_error {
            findings.push(Finding {
                level: Level::Warning,
                device: None,
                check: "kubelet pod-resources".into(),
                finding: format!("which pod holds each device is not known: {why}"),
                replaces: "find the pod on a device with kubectl and crictl".into(),
                action: format!(
                    "check that {} exists and is mounted into the agent",
                    config.kubernetes.pod_resources_socket.display()
                ),
            });
        }
    }
}

/// Findings about the agent itself: its journal, resources and actions, and a host with no devices.
fn agent_findings(status: &StatusReport, config: &config::Config, no_devices: bool, findings: &mut Vec<Finding>) {
    if let Some(why) = &status.agent.journal_unavailable {
        findings.push(Finding {
            level: Level::Warning,
            device: None,
            check: "event journal".into(),
            finding: format!("events are not kept: {why}"),
            replaces: "keep notes of what happened".into(),
            action: format!("make {} writable by the agent", config.state_dir.display()),
        });
    }
    if let Some(f) = &status.agent.faults.current {
        let count = status.agent.faults.counts.get(f.kind.label()).copied().unwrap_or(0);
        findings.push(Finding {
            level: Level::Critical,
            device: None,
            check: "agent resources".into(),
            finding: format!(
                "the agent is {}: {} not done ({count} time(s) since start); devices are judged on their last \
                 evidence meanwhile, and nothing is set or reset for it",
                f.reason, f.what
            ),
            replaces: "notice that the monitoring itself is broken".into(),
            action: match f.kind {
                AgentFault::Descriptors => {
                    "look for a connection flood (`ss -tn state established '( sport = :9860 )'`); raise \
                                  LimitNOFILE in the unit or lower [collectors] max_open_files"
                        .into()
                }
                AgentFault::Disk => format!("free space under {}", config.state_dir.display()),
                _ => "check the host's memory and process limits (journalctl -u accel-agent)".into(),
            },
        });
    }
    if let Some(why) = &status.agent.actions_stopped {
        findings.push(Finding {
            level: Level::Critical,
            device: None,
            check: "actions".into(),
            finding: format!("the actions worker stopped ({why}): nothing is throttled, restored or reconnected"),
            replaces: "echo into sysfs to throttle, reset cards by hand".into(),
            action: "systemctl restart accel-agent; report the panic in the log (journalctl -u accel-agent)".into(),
        });
    }
    let ladders = config.devices.iter().filter(|d| d.throttle.is_some() || d.reconnect.is_some()).count();
    if ladders > 0 && status.agent.actions == ActionsMode::Disabled {
        findings.push(Finding {
            level: Level::Info,
            device: None,
            check: "actions".into(),
            finding: format!("{ladders} device(s) have throttle or reconnect ladders but actions are disabled"),
            replaces: "echo into sysfs to throttle, reset cards by hand".into(),
            action: "set [actions] enabled = true (try dry_run = true first) and `agentctl reload`".into(),
        });
    }
    if no_devices {
        findings.push(Finding {
            level: Level::Info,
            device: None,
            check: "devices".into(),
            finding: "no devices: none declared and none found by discovery".into(),
            replaces: "list the accelerators by hand (lspci, ls /sys/class/accel)".into(),
            action: "declare devices with [[device]] (see /usr/share/doc/accel-agent/examples)".into(),
        });
    }
}

/// The manual step a failing source's check replaces, and what to do about it.
fn source_runbook(kind: SourceKind) -> (&'static str, &'static str) {
    match kind {
        SourceKind::Collector => (
            "read sysfs by hand when a tool shows nothing",
            "journalctl -u accel-agent for the read errors; check the files named there",
        ),
        SourceKind::Bmp => (
            "ping the board's BMP and read its sensors by hand",
            "check the frame's power and the BMP's network link (ping the bmp address in [[spinnaker.machine.frame]]); \
             the board's readings stay absent until it answers",
        ),
        SourceKind::Spalloc => (
            "log in to the spalloc service by hand and list the machines",
            "if the login is refused, check the user and password in the machine's spalloc_credentials_file (or \
             spalloc_credentials_env): the agent reads them again at the next poll; if the certificate does not \
             verify, its spalloc_ca_file; otherwise that the server answers at its spalloc address from this host",
        ),
        SourceKind::Probe => (
            "run the status command or ping by hand",
            "run the probe's command by hand to see its output; check its path and timeout",
        ),
        SourceKind::Log => (
            "tail the device log by hand",
            "point the log's path at the regular file itself (not a symbolic link, FIFO or device)",
        ),
    }
}

/// "5m 3s" since `t`, for humans.
fn since(t: std::time::SystemTime) -> String {
    let secs = std::time::SystemTime::now().duration_since(t).map_or(0, |d| d.as_secs());
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// "1h 59m" until `t`, for humans.
pub fn remaining(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::SystemTime::now()).map_or(0, |d| d.as_secs());
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}
