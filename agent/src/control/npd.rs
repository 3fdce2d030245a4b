//! `accel-agent npd --condition TYPE`: one check in node-problem-detector's custom-plugin protocol, so that
//! Kubernetes sees the agent's device states as NodeConditions.
//!
//! The protocol: exit 0 when the condition is false (OK), 1 when it is true (a problem), 2 when it cannot
//! be told (the agent is down, slow or still starting); stdout is one line that becomes the condition's
//! message, which NPD cuts at `max_output_length` (80 bytes by default), so it is kept within that here.
//! agentctl's own exit codes (0 healthy, 1 degraded, 2 unhealthy) would be misread by NPD, hence this mode.
//!
//! The answer comes from the agent's snapshot over the control socket (a read: no group membership needed,
//! only access to the socket file), within one overall deadline shorter than NPD's own timeout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;

use crate::control::ctl::client::{Client, ClientError};
use crate::model::{ConditionKind, State};
use crate::publish::api::{DeviceStatus, FailingCondition, StatusReport};

/// NPD's default `max_output_length`.
pub const MAX_MESSAGE: usize = 80;

/// The NodeConditions this mode can answer; each is one rule in the custom-plugin-monitor config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeCondition {
    /// A device is unhealthy (offline, critically hot, fatal log errors, SDK error).
    #[value(name = "AcceleratorUnhealthy")]
    Unhealthy,
    /// A device is degraded, or its state is unknown (not yet read, or its data went stale).
    #[value(name = "AcceleratorDegraded")]
    Degraded,
    /// A device's Overheating condition is true (above its warning or critical temperature).
    #[value(name = "AcceleratorOverheating")]
    Overheating,
    /// A device's reconnects gave up: a person has to look at the hardware.
    #[value(name = "AcceleratorNeedsInspection")]
    NeedsInspection,
}

impl NodeCondition {
    pub fn name(self) -> &'static str {
        match self {
            NodeCondition::Unhealthy => "AcceleratorUnhealthy",
            NodeCondition::Degraded => "AcceleratorDegraded",
            NodeCondition::Overheating => "AcceleratorOverheating",
            NodeCondition::NeedsInspection => "AcceleratorNeedsInspection",
        }
    }

    /// Why the device counts as having this problem, or `None` if it does not.
    fn problem(self, d: &DeviceStatus) -> Option<String> {
        // Maintenance: a person is working on the device; it must not taint or drain the node.
        if d.state == State::Maintenance || d.maintenance {
            return None;
        }
        let failing: Vec<&FailingCondition> = d.failing.iter().map(|f| &f.condition).collect();
        let state = d.state.name();
        match self {
            NodeCondition::Unhealthy | NodeCondition::Degraded => {
                let wanted: &[State] = if self == NodeCondition::Unhealthy {
                    &[State::Unhealthy]
                } else {
                    &[State::Degraded, State::Unknown]
                };
                wanted.contains(&d.state).then(|| {
                    let names: Vec<&str> = failing.iter().map(|c| c.name()).collect();
                    if names.is_empty() { state.to_owned() } else { format!("{state} {}", names.join("+")) }
                })
            }
            NodeCondition::Overheating => failing
                .contains(&&FailingCondition::Condition(ConditionKind::Overheating))
                .then(|| d.temperature_celsius.map_or_else(|| "overheating".to_owned(), |t| format!("{t:.1}C"))),
            NodeCondition::NeedsInspection => d.needs_hardware_inspection.then(|| "reconnects gave up".to_owned()),
        }
    }

    fn ok_message(self, devices: usize) -> String {
        let what = match self {
            NodeCondition::Unhealthy => "none unhealthy",
            NodeCondition::Degraded => "none degraded",
            NodeCondition::Overheating => "none overheating",
            NodeCondition::NeedsInspection => "none needs inspection",
        };
        format!("{devices} accelerator device(s), {what}")
    }
}

/// NPD's plugin exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok = 0,
    Problem = 1,
    Unknown = 2,
}

/// What the check prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub verdict: Verdict,
    pub message: String,
}

impl Answer {
    fn new(verdict: Verdict, message: impl Into<String>) -> Answer {
        Answer { verdict, message: one_line(&message.into(), MAX_MESSAGE) }
    }
}

/// Judges one condition from the agent's /api/v1/status reply.
pub fn judge(condition: NodeCondition, status: &StatusReport) -> Answer {
    if !status.agent.ready {
        return Answer::new(Verdict::Unknown, "accel-agent is starting: first collection not done yet");
    }
    let devices = &status.devices;
    let problems: Vec<(&str, String)> =
        devices.iter().filter_map(|d| Some((d.id.as_str(), condition.problem(d)?))).collect();
    if problems.is_empty() {
        return Answer::new(Verdict::Ok, condition.ok_message(devices.len()));
    }
    // As many devices as fit, then how many more: the message must stay within NPD's limit.
    let mut message = format!("{} of {}:", problems.len(), devices.len());
    for (i, (id, why)) in problems.iter().enumerate() {
        let item = format!(" {id} {why}{}", if i + 1 < problems.len() { "," } else { "" });
        // Shown when this item does not fit: the ones not named (this one too, unless it is the first).
        let more = format!(" +{} more", problems.len() - i - usize::from(i == 0));
        let room = if i + 1 < problems.len() { MAX_MESSAGE.saturating_sub(more.len()) } else { MAX_MESSAGE };
        if message.len() + item.len() > room {
            // The first device is always named, cut if it must be: a count alone says too little.
            if i == 0 {
                message.push_str(&one_line(item.trim_end_matches(','), room - message.len()));
            }
            if i > 0 || problems.len() > 1 {
                message.push_str(&more);
            }
            break;
        }
        message.push_str(&item);
    }
    Answer::new(Verdict::Problem, message)
}

/// One line of at most `max` bytes, cut at a character boundary.
pub fn one_line(s: &str, max: usize) -> String {
    let line: String = s.split(['\r', '\n']).filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("; ");
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

/// Asks the agent on `socket`, all within `timeout` (the client's deadline covers the whole exchange,
/// however the agent drips its reply).
pub fn check(condition: NodeCondition, socket: PathBuf, timeout: Duration) -> Answer {
    let shown = socket.display().to_string();
    let reply = match (Client { socket }).request("GET", "/api/v1/status", None, timeout) {
        Ok(reply) => reply,
        Err(ClientError::Unreachable { .. }) => {
            return Answer::new(Verdict::Unknown, format!("accel-agent not running at {shown}"));
        }
        Err(ClientError::Denied { .. }) => {
            return Answer::new(Verdict::Unknown, format!("permission denied on {shown}"));
        }
        Err(ClientError::Timeout { .. }) => {
            return Answer::new(
                Verdict::Unknown,
                format!("accel-agent did not answer within {}", humantime::format_duration(timeout)),
            );
        }
        Err(e) => return Answer::new(Verdict::Unknown, e.to_string()),
    };
    if reply.status != 200 {
        return Answer::new(Verdict::Unknown, format!("accel-agent answered HTTP {}", reply.status));
    }
    match serde_json::from_slice::<StatusReport>(&reply.body) {
        Ok(v) => judge(condition, &v),
        Err(e) => Answer::new(Verdict::Unknown, format!("unreadable reply from accel-agent: {e}")),
    }
}

/// Runs the check, prints its line and exits with its code.
pub fn run(condition: NodeCondition, socket: PathBuf, timeout: Duration) -> ExitCode {
    let answer = check(condition, socket, timeout);
    use std::io::Write;
    // A closed stdout changes nothing about the verdict.
    let _ = writeln!(std::io::stdout().lock(), "{}", answer.message);
    ExitCode::from(answer.verdict as u8)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::publish::api::{AgentFaults, AgentStatus, Failing};

    /// A device of /api/v1/status, its state and conditions named as on the wire.
    fn device(id: &str, state: &str, failing: &[&str]) -> DeviceStatus {
        let state: State = serde_json::from_value(json!(state)).unwrap();
        let failing = failing.iter().map(|c| Failing {
            condition: serde_json::from_value(json!(c)).unwrap(),
            reason: String::new(),
            message: String::new(),
        });
        DeviceStatus {
            id: id.to_owned(),
            kind: "loihi".into(),
            state,
            up: Some(true),
            temperature_celsius: Some(86.04),
            power_watts: None,
            throttle_level: None,
            throttle_max_level: None,
            manual_throttle: None,
            circuit: None,
            needs_hardware_inspection: false,
            maintenance: state == State::Maintenance,
            maintenance_windows: Vec::new(),
            failing: failing.collect(),
            temperature_recent_celsius: Vec::new(),
            pods: Vec::new(),
        }
    }

    fn status(devices: Vec<DeviceStatus>) -> StatusReport {
        let agent = AgentStatus {
            version: "test".into(),
            revision: "test".into(),
            uptime_seconds: 1.0,
            ready: true,
            actions: crate::policy::mode::ActionsMode::Disabled,
            collectors_failing: Vec::new(),
            journal_unavailable: None,
            journal_degraded: None,
            actions_stopped: None,
            faults: AgentFaults { counts: Default::default(), current: None },
            kubelet: None,
        };
        StatusReport {
            status: State::Healthy,
            agent,
            devices,
            sources_failing: Vec::new(),
            maintenance_windows: Vec::new(),
        }
    }

    #[test]
    fn each_condition_reads_its_own_evidence() {
        let s = status(vec![
            device("loihi0", "degraded", &["Overheating"]),
            device("photon1", "unhealthy", &["Offline"]),
            device("hl0", "maintenance", &["Offline"]),
            device("photon0", "healthy", &[]),
        ]);
        let a = judge(NodeCondition::Unhealthy, &s);
        assert_eq!((a.verdict, a.message.as_str()), (Verdict::Problem, "1 of 4: photon1 unhealthy Offline"));
        let a = judge(NodeCondition::Degraded, &s);
        assert_eq!((a.verdict, a.message.as_str()), (Verdict::Problem, "1 of 4: loihi0 degraded Overheating"));
        let a = judge(NodeCondition::Overheating, &s);
        assert_eq!((a.verdict, a.message.as_str()), (Verdict::Problem, "1 of 4: loihi0 86.0C"));
        let a = judge(NodeCondition::NeedsInspection, &s);
        assert_eq!((a.verdict, a.message.as_str()), (Verdict::Ok, "4 accelerator device(s), none needs inspection"));
    }

    #[test]
    fn many_problems_still_fit_in_eighty_bytes() {
        let devices: Vec<DeviceStatus> = (0..40)
            .map(|i| {
                device(&format!("spinnaker-machine-with-a-long-name-b{i}"), "unhealthy", &["Offline", "DataStale"])
            })
            .collect();
        let a = judge(NodeCondition::Unhealthy, &status(devices));
        assert_eq!(a.verdict, Verdict::Problem);
        assert!(a.message.len() <= MAX_MESSAGE, "{} bytes: {}", a.message.len(), a.message);
        assert_eq!(a.message, "40 of 40: spinnaker-machine-with-a-long-name-b0 unhealthy Offline+DataS +39 more");
        assert!(a.message.ends_with(" +39 more"), "{}", a.message);
        let devices: Vec<DeviceStatus> = (0..3).map(|i| device(&format!("b{i}"), "unhealthy", &["Offline"])).collect();
        let a = judge(NodeCondition::Unhealthy, &status(devices));
        assert_eq!(a.message, "3 of 3: b0 unhealthy Offline, b1 unhealthy Offline, b2 unhealthy Offline");
    }

    #[test]
    fn a_starting_agent_is_unknown_and_lines_are_cut_at_char_boundaries() {
        let mut starting = status(Vec::new());
        starting.agent.ready = false;
        let a = judge(NodeCondition::Unhealthy, &starting);
        assert_eq!(a.verdict, Verdict::Unknown);
        assert_eq!(one_line("a\nb\n", 80), "a; b");
        assert_eq!(one_line(&"é".repeat(50), 80), "é".repeat(40));
        assert_eq!(one_line(&"é".repeat(50), 79), "é".repeat(39));
    }
}
