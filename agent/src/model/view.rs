//! What the device model shows: readings, probe and log state, and the per-device view the API,
//! the metrics and the landing page are built from. The view is also the wire type: the agent serializes
//! it and agentctl deserializes the very same struct, so the two cannot drift apart.

use std::borrow::Cow;
use std::time::SystemTime;

use collectors::fault::AgentFault;
use serde::{Deserialize, Serialize};

use super::health::{Condition, State};
use super::unix_time::opt_unix;

/// A reading of one sensor of a device, in base units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: String,
    pub value: f64,
}

/// A threshold the hardware itself declares (hwmon temp*_max/_crit, thermal trip points) or the config sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdReading {
    pub sensor: String,
    pub level: String,
    pub value: f64,
}

/// Everything read for a device in the latest evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Readings {
    pub temperature_celsius: Vec<Reading>,
    pub temperature_threshold_celsius: Vec<ThresholdReading>,
    pub power_watts: Vec<Reading>,
    pub energy_joules: Vec<Reading>,
    pub voltage_volts: Vec<Reading>,
    pub current_amperes: Vec<Reading>,
    pub fan_rpm: Vec<Reading>,
    /// The driver's power cap, when it publishes one (habanalabs max_power).
    pub power_limit_watts: Option<f64>,
}

impl Readings {
    pub fn is_empty(&self) -> bool {
        self.temperature_celsius.is_empty()
            && self.power_watts.is_empty()
            && self.energy_joules.is_empty()
            && self.voltage_volts.is_empty()
            && self.current_amperes.is_empty()
            && self.fan_rpm.is_empty()
    }

    pub fn max_temperature(&self) -> Option<&Reading> {
        self.temperature_celsius.iter().max_by(|a, b| a.value.total_cmp(&b.value))
    }
}

/// The latest result of one probe, as the engine keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeView {
    pub name: String,
    /// Whether its failures mean the device is offline.
    pub liveness: bool,
    pub status: ProbeState,
    pub success: bool,
    pub duration_seconds: f64,
    #[serde(with = "opt_unix")]
    pub last_success: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub message: String,
    /// The last time it was due, the agent could not run it for want of its own resources (then the
    /// fields above are from the run before): shown, never judged.
    pub not_run: Option<AgentFault>,
}

/// Where a probe stands: not run yet, or the verdict of its last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    /// Not run yet since the agent started.
    Pending,
    /// The tool ran and said the device is fine (exit 0), or the address answered.
    Ok,
    /// The tool ran and said the device has a problem (exit 1).
    Problem,
    /// The tool gave no verdict (timed out, could not start, killed, another exit code).
    Failed,
    /// A network check got no answer.
    Unreachable,
    /// The tool ran and could not tell (exit 2); also what agentctl reads a state it does not know as
    /// (serde's `other` must be the last variant).
    #[serde(other)]
    Unknown,
}

impl ProbeState {
    /// The name in the API, the device page and events.
    pub fn name(self) -> &'static str {
        match self {
            ProbeState::Pending => "pending",
            ProbeState::Ok => "ok",
            ProbeState::Problem => "problem",
            ProbeState::Unknown => "unknown",
            ProbeState::Failed => "failed",
            ProbeState::Unreachable => "unreachable",
        }
    }
}

impl std::fmt::Display for ProbeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One probe run, as the probe task reports it.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub probe: String,
    pub status: ProbeState,
    pub success: bool,
    /// The tool ran and said the device has a problem (exit 1): SdkError.
    pub sdk_problem: bool,
    pub duration: std::time::Duration,
    pub message: String,
    /// Readings in base units: temperature, power, energy, inferences, utilization, online.
    pub readings: Vec<(collectors::probes::ReadingKind, f64)>,
    /// The probe was never run: the agent is out of a resource of its own. Then nothing above is
    /// evidence about the device, and the model keeps what it knew.
    pub not_run: Option<AgentFault>,
}

/// What one log source of a device produced since the last update.
#[derive(Debug, Clone)]
pub struct LogUpdate {
    pub source: String,
    /// Lines read from this source so far.
    pub lines: u64,
    /// Matches per rule so far.
    pub matches: Vec<(String, u64)>,
    pub signals: Vec<collectors::logs::Signal>,
}

/// What an operator (and the JSON API) sees of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    /// The kind's name (config's `DeviceKind`); a string so that agentctl reads kinds it does not know.
    pub kind: Cow<'static, str>,
    pub model: String,
    pub driver: String,
    pub pci_address: String,
    pub firmware: String,
    pub state: State,
    pub up: Option<bool>,
    pub conditions: Vec<Condition>,
    pub readings: Readings,
    /// Where the readings come from, e.g. "hwmon:loihi", "power_supply:loihi2".
    pub sources: Vec<String>,
    /// Found by discovery rather than declared in the config.
    pub discovered: bool,
    /// The driver or hwmon chip name discovery found the device by, as the kernel wrote it (it may hold
    /// spaces or other characters an id cannot: the id has them as `_`). Absent for declared devices.
    pub discovered_name: Option<String>,
    pub probes: Vec<ProbeView>,
    pub utilization_ratio: Option<f64>,
    pub inferences_total: Option<f64>,
    /// Energy used between the last two probe results divided by the inferences completed between them.
    pub energy_per_inference_joules: Option<f64>,
    /// Lines read per log source.
    pub log_lines: Vec<(String, u64)>,
    /// Matches per log rule (every configured rule, from 0).
    pub log_matches: Vec<(String, u64)>,
    /// In maintenance: by an operator (`maintenance_manual`), by an open maintenance window
    /// (`maintenance_windows`), or both.
    pub maintenance: bool,
    /// An operator put the device in maintenance (`agentctl maintenance ID on`).
    pub maintenance_manual: bool,
    /// When the operator's maintenance ends by itself (absent: none, or until turned off).
    #[serde(with = "opt_unix")]
    pub maintenance_until: Option<SystemTime>,
    /// The open maintenance windows that cover the device, with their ends.
    pub maintenance_windows: Vec<super::window_set::WindowHold>,
    /// Why the device is in maintenance when the agent put it there (an exclusive diagnostic running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_reason: Option<String>,
    /// A throttle level an operator holds the device at (`agentctl throttle`).
    pub manual_throttle: Option<super::operator::ManualThrottle>,
    /// The reconnect circuit, when the device has a reconnect ladder.
    pub circuit: Option<crate::policy::reconnect::Circuit>,
    /// The ladder gave up: a person has to look at the hardware.
    pub needs_hardware_inspection: bool,
    /// (step, result, attempts) with result "recovered" or "failed".
    pub reconnect_attempts: Vec<(String, String, u64)>,
    /// The thresholds this device is judged by (config over profile), in Celsius.
    pub temperature_warn_celsius: f64,
    pub temperature_crit_celsius: f64,
    /// What kubelet knows of the device (absent while `[kubernetes]` is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<super::kubelet::KubeletView>,
    /// Each configured diagnostic: where it stands and its last result (absent when none is configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<super::diagnostics::DiagnosticView>,
}

/// A condition change, for the event journal and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionChange {
    pub device: String,
    pub condition: Condition,
}
