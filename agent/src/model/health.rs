//! Named conditions set and cleared by evidence, and the overall state derived from them.
//!
//! Every function takes the current time as a parameter: the rules are about durations, and tests (and
//! the engine) drive the clock explicitly.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

// The tracker is a pure state machine shared with the throttle ladder; the conditions name its levels.
pub use crate::policy::threshold::{Level, ThresholdTracker};

/// The conditions every device declares, exported as 0/1 from the first scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionKind {
    Overheating,
    Offline,
    SdkError,
    LogErrors,
    PowerAnomaly,
    DataStale,
    /// A level 2 or 3 diagnostic failed; declared only by devices that have one (not in `ALL`).
    DiagnosticFailed,
}

impl ConditionKind {
    pub const ALL: [ConditionKind; 6] = [
        ConditionKind::Overheating,
        ConditionKind::Offline,
        ConditionKind::SdkError,
        ConditionKind::LogErrors,
        ConditionKind::PowerAnomaly,
        ConditionKind::DataStale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConditionKind::Overheating => "Overheating",
            ConditionKind::Offline => "Offline",
            ConditionKind::SdkError => "SdkError",
            ConditionKind::LogErrors => "LogErrors",
            ConditionKind::PowerAnomaly => "PowerAnomaly",
            ConditionKind::DataStale => "DataStale",
            ConditionKind::DiagnosticFailed => "DiagnosticFailed",
        }
    }

    pub fn parse(s: &str) -> Option<ConditionKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    True,
    False,
    /// No evidence either way yet (no reading, no probe result); also a status agentctl does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// How bad a true condition is for the device's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    #[default]
    Degraded,
    Unhealthy,
}

/// One condition of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: ConditionKind,
    pub status: Status,
    /// Machine-readable cause, e.g. "TemperatureAboveCritical", "ProbeFailing".
    pub reason: String,
    /// For a human: what was seen.
    pub message: String,
    /// When the status last changed.
    #[serde(with = "super::unix_time::unix")]
    pub since: SystemTime,
    pub impact: Impact,
    /// Set by a latching rule: evidence clearing does not clear it, only `set-healthy` does.
    pub latched: bool,
    /// The status before the last change (Unknown at first), so "first evidence" can be told apart from
    /// a real change. Not on the wire: read back as Unknown.
    #[serde(skip)]
    pub previous: Status,
}

impl Condition {
    pub fn unknown(kind: ConditionKind, now: SystemTime) -> Condition {
        Condition {
            kind,
            status: Status::Unknown,
            reason: "NoData".into(),
            message: "no evidence yet".into(),
            since: now,
            impact: Impact::Degraded,
            latched: false,
            previous: Status::Unknown,
        }
    }

    /// Whether the last change was only the first evidence that all is well (unknown -> false).
    pub fn first_evidence_ok(&self) -> bool {
        self.previous == Status::Unknown && self.status == Status::False
    }

    /// Applies new evidence. Returns true when the status changed (an event worth recording).
    pub fn set(&mut self, status: Status, impact: Impact, reason: &str, message: String, now: SystemTime) -> bool {
        if self.latched && status != Status::True {
            // Only an operator clears a latched condition.
            return false;
        }
        let changed = self.status != status || (status == Status::True && self.impact != impact);
        if changed {
            self.since = now;
            self.previous = self.status;
        }
        self.status = status;
        self.impact = impact;
        if self.reason != reason {
            self.reason = reason.to_owned();
        }
        self.message = message;
        changed
    }
}

/// The device's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Healthy,
    Degraded,
    Unhealthy,
    Unknown,
    Maintenance,
}

impl State {
    pub const ALL: [State; 5] = [State::Healthy, State::Degraded, State::Unhealthy, State::Unknown, State::Maintenance];

    pub fn name(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Unhealthy => "unhealthy",
            State::Unknown => "unknown",
            State::Maintenance => "maintenance",
        }
    }

    /// Exit code convention of `scan` and `agentctl`: 0 healthy, 1 degraded, 2 unhealthy.
    pub fn exit_code(self) -> u8 {
        match self {
            State::Healthy | State::Maintenance => 0,
            State::Degraded | State::Unknown => 1,
            State::Unhealthy => 2,
        }
    }
}

/// Unhealthy if any true condition is unhealthy-impact, else degraded if any is true; unknown when
/// nothing is known at all (every condition unknown), healthy otherwise.
pub fn derive_state(conditions: &[Condition], maintenance: bool) -> State {
    if maintenance {
        return State::Maintenance;
    }
    let true_ones = conditions.iter().filter(|c| c.status == Status::True);
    match true_ones.map(|c| c.impact).max() {
        Some(Impact::Unhealthy) => State::Unhealthy,
        Some(Impact::Degraded) => State::Degraded,
        None if conditions.iter().all(|c| c.status == Status::Unknown) => State::Unknown,
        None => State::Healthy,
    }
}

/// What an operator does about a condition, in runbook order.
pub fn next_step(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::Overheating => "check cooling and airflow; reduce the load or throttle the device",
        ConditionKind::Offline => "check power and the link; reconnect or reset the device",
        ConditionKind::SdkError => "run the vendor status tool by hand and read the SDK's log",
        ConditionKind::LogErrors => "read the device log around the matching lines",
        ConditionKind::PowerAnomaly => "compare power with the workload; look for runaway or stuck jobs",
        ConditionKind::DataStale => "check that the driver is loaded and its sysfs files are readable",
        ConditionKind::DiagnosticFailed => {
            "read the diagnostic's output (agentctl device ID); run its remedy or replace the part"
        }
    }
}

/// A device whose reconnect circuit is open, or whose ladder gave up, needs a person even when it answers
/// again: it is at least degraded until it is reconnected or an operator runs `set-healthy`.
pub fn with_circuit(state: State, circuit_open: bool) -> State {
    match state {
        State::Healthy | State::Unknown if circuit_open => State::Degraded,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_worst_true_condition() {
        let now = SystemTime::now();
        let mut cs: Vec<Condition> = ConditionKind::ALL.iter().map(|k| Condition::unknown(*k, now)).collect();
        assert_eq!(derive_state(&cs, false), State::Unknown);
        for c in cs.iter_mut() {
            c.set(Status::False, Impact::Degraded, "Ok", String::new(), now);
        }
        assert_eq!(derive_state(&cs, false), State::Healthy);
        cs[3].set(Status::True, Impact::Degraded, "LogErrorBurst", "5 errors in 1m".into(), now);
        assert_eq!(derive_state(&cs, false), State::Degraded);
        cs[0].set(Status::True, Impact::Unhealthy, "TemperatureAboveCritical", "96 °C".into(), now);
        assert_eq!(derive_state(&cs, false), State::Unhealthy);
        assert_eq!(derive_state(&cs, true), State::Maintenance);
    }

    #[test]
    fn a_latched_condition_ignores_clearing_evidence() {
        let now = SystemTime::now();
        let mut c = Condition::unknown(ConditionKind::LogErrors, now);
        assert!(c.set(Status::True, Impact::Degraded, "Rule", "AER fatal".into(), now));
        c.latched = true;
        assert!(!c.set(Status::False, Impact::Degraded, "Quiet", String::new(), now));
        assert_eq!(c.status, Status::True);
        c.latched = false;
        assert!(c.set(Status::False, Impact::Degraded, "ClearedByOperator", String::new(), now));
    }
}
