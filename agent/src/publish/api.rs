//! JSON shapes of the read API (/health, /api/v1/status, /api/v1/devices). The agent serializes these
//! types and agentctl and `accel-agent npd` deserialize the same ones (unknown fields are ignored, so an
//! agent that adds one still answers an older agentctl); the shapes are documented in docs/api.md and only
//! grow (fields are added, never renamed or removed).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::effects::faults::{AgentFault, FaultsView};
use crate::effects::journal::MAX_QUERY_LIMIT;
use crate::model::history::DeviceHistoryView;
use crate::model::{ConditionKind, DeviceView, State, Status};
use crate::policy::mode::ActionsMode;
use crate::policy::reconnect::Circuit;

/// /health: every device's state, and the worst of them.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// unhealthy if any device is, else degraded, else unknown, else healthy (maintenance is ignored);
    /// at least degraded while the event journal is.
    pub status: State,
    /// Why the event journal is not a complete record; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_degraded: Option<String>,
    pub devices: Vec<DeviceHealth>,
}

#[derive(Debug, Serialize)]
pub struct DeviceHealth {
    pub id: String,
    pub kind: Cow<'static, str>,
    pub state: State,
    /// The conditions that are true, with their reason (and the reconnect circuit, while it is open).
    pub failing: Vec<Failing>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Failing {
    pub condition: FailingCondition,
    pub reason: String,
    pub message: String,
}

/// What a `failing` entry names: one of the device's conditions, or its reconnect circuit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FailingCondition {
    Condition(ConditionKind),
    Circuit(ReconnectCircuit),
    /// A name from a newer agent, shown as it is.
    Other(String),
}

/// The one name of the reconnect circuit in `failing`: "ReconnectCircuit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconnectCircuit {
    ReconnectCircuit,
}

impl FailingCondition {
    pub fn name(&self) -> &str {
        match self {
            FailingCondition::Condition(k) => k.name(),
            FailingCondition::Circuit(ReconnectCircuit::ReconnectCircuit) => "ReconnectCircuit",
            FailingCondition::Other(name) => name,
        }
    }
}

pub fn health(devices: &[DeviceView], journal_degraded: Option<String>) -> HealthReport {
    let rank = |s: State| match s {
        State::Unhealthy => 4,
        State::Degraded => 3,
        State::Unknown => 2,
        State::Healthy | State::Maintenance => 1,
    };
    let status = devices
        .iter()
        .map(|d| d.state)
        .max_by_key(|s| rank(*s))
        .map_or(State::Healthy, |s| if s == State::Maintenance { State::Healthy } else { s });
    // Evidence that cannot be kept is a problem of the agent's own: at least degraded.
    let status = match (&journal_degraded, status) {
        (Some(_), State::Healthy | State::Unknown) => State::Degraded,
        (_, s) => s,
    };
    HealthReport {
        status,
        journal_degraded,
        devices: devices
            .iter()
            .map(|d| DeviceHealth { id: d.id.clone(), kind: d.kind.clone(), state: d.state, failing: failing(d) })
            .collect(),
    }
}

/// /api/v1/status (control socket): what `agentctl status` shows, one entry per device with its key
/// readings, and the agent's own health.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// As in /health: the worst device state (maintenance counts as healthy).
    pub status: State,
    pub agent: AgentStatus,
    pub devices: Vec<DeviceStatus>,
    /// Sources of evidence failing now (collector, bmp, spalloc, probe, log), with since and reason.
    pub sources_failing: Vec<crate::model::source_health::SourceFailing>,
    /// Every configured maintenance window: whether it is open (and until when), and its next start.
    pub maintenance_windows: Vec<crate::model::window_set::WindowView>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: Cow<'static, str>,
    pub revision: Cow<'static, str>,
    pub uptime_seconds: f64,
    pub ready: bool,
    /// "enabled", "dry-run" or "disabled".
    pub actions: ActionsMode,
    /// Collectors whose last round failed, with why.
    pub collectors_failing: Vec<CollectorFailing>,
    /// Why the event journal is unavailable, if it is.
    pub journal_unavailable: Option<String>,
    /// Why the journal is not a complete record (unavailable, failing to store, events lost), if so.
    pub journal_degraded: Option<String>,
    /// Why the actions worker stopped, once it has: nothing is throttled, restored or reconnected.
    pub actions_stopped: Option<String>,
    /// The agent's own trouble: what it could not do for want of descriptors, memory, processes or disk.
    pub faults: AgentFaults,
    /// The device plugins' registrations and pod attribution; absent while `[kubernetes]` is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletStatus>,
}

/// `agent.kubelet` in /api/v1/status.
#[derive(Debug, Serialize, Deserialize)]
pub struct KubeletStatus {
    pub resources: Vec<KubeletResource>,
    /// Why kubelet's pod-resources API could not be read, while it cannot.
    pub pod_resources_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KubeletResource {
    pub resource: String,
    pub registered: bool,
    /// Why it is not registered, while it is not.
    pub error: Option<String>,
    pub devices: Vec<String>,
}

impl KubeletStatus {
    /// From the device views: None while no device has a kubelet part (`[kubernetes]` off).
    pub fn of(devices: &[DeviceView]) -> Option<KubeletStatus> {
        let mut resources: Vec<KubeletResource> = Vec::new();
        let mut pod_resources_error = None;
        let mut any = false;
        for d in devices {
            let Some(k) = &d.kubernetes else { continue };
            any = true;
            pod_resources_error = pod_resources_error.or_else(|| k.pods_error.clone());
            let Some(r) = &k.resource else { continue };
            match resources.iter_mut().find(|x| &x.resource == r) {
                Some(x) => x.devices.push(d.id.clone()),
                None => resources.push(KubeletResource {
                    resource: r.clone(),
                    registered: k.registered,
                    error: k.registration_error.clone(),
                    devices: vec![d.id.clone()],
                }),
            }
        }
        resources.sort_by(|a, b| a.resource.cmp(&b.resource));
        any.then_some(KubeletStatus { resources, pod_resources_error })
    }
}

/// `agent.faults` in /api/v1/status: counts since start by kind, and the latest fault while it is recent
/// (within a minute); none of it is evidence about a device.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentFaults {
    /// By label, so the keys are in label order as before kinds were typed.
    pub counts: std::collections::BTreeMap<Cow<'static, str>, u64>,
    pub current: Option<CurrentFault>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CurrentFault {
    pub kind: AgentFault,
    /// e.g. "out of file descriptors".
    pub reason: Cow<'static, str>,
    /// What could not be done, e.g. "probe sdk of loihi0".
    pub what: String,
    pub time_unix: f64,
}

impl AgentFaults {
    pub fn of(view: &FaultsView, now: std::time::SystemTime) -> AgentFaults {
        AgentFaults {
            counts: view.counts.iter().map(|(f, n)| (f.label().into(), *n)).collect(),
            current: view.current(now).map(|r| CurrentFault {
                kind: r.fault,
                reason: r.fault.describe().into(),
                what: r.what.clone(),
                time_unix: r.at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            }),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CollectorFailing {
    pub collector: Cow<'static, str>,
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub id: String,
    pub kind: Cow<'static, str>,
    pub state: State,
    pub up: Option<bool>,
    /// The hottest sensor.
    pub temperature_celsius: Option<f64>,
    /// Summed over the device's power sensors.
    pub power_watts: Option<f64>,
    /// Present for devices with a throttle ladder.
    pub throttle_level: Option<usize>,
    pub throttle_max_level: Option<usize>,
    pub manual_throttle: Option<crate::model::operator::ManualThrottle>,
    pub circuit: Option<crate::policy::reconnect::Circuit>,
    pub needs_hardware_inspection: bool,
    pub maintenance: bool,
    /// The open maintenance windows that hold the device, by name.
    pub maintenance_windows: Vec<String>,
    pub failing: Vec<Failing>,
    /// The hottest sensor over the last 15 minutes, oldest first, one value per 20 s (null where nothing
    /// was read): the landing page's sparkline.
    pub temperature_recent_celsius: Vec<Option<f64>>,
    /// The containers kubelet says hold the device, as "namespace/pod (container c)"; empty while none
    /// does or `[kubernetes]` is off.
    pub pods: Vec<String>,
}

pub fn status(snap: &crate::publish::state::Snapshot, agent: AgentStatus) -> StatusReport {
    let throttle = |id: &str| snap.throttle.iter().find(|t| t.device == id);
    let devices = snap
        .devices
        .iter()
        .map(|d| DeviceStatus {
            id: d.id.clone(),
            kind: d.kind.clone(),
            state: d.state,
            up: d.up,
            temperature_celsius: d.readings.max_temperature().map(|r| r.value),
            power_watts: (!d.readings.power_watts.is_empty())
                .then(|| d.readings.power_watts.iter().map(|r| r.value).sum()),
            throttle_level: throttle(&d.id).map(|t| t.level),
            throttle_max_level: throttle(&d.id).map(|t| t.max_level),
            manual_throttle: d.manual_throttle,
            circuit: d.circuit,
            needs_hardware_inspection: d.needs_hardware_inspection,
            maintenance: d.maintenance,
            maintenance_windows: d.maintenance_windows.iter().map(|w| w.name.clone()).collect(),
            failing: failing(d),
            temperature_recent_celsius: Vec::new(),
            pods: d.kubernetes.iter().flat_map(|k| k.pods.iter().map(|p| p.to_string())).collect(),
        })
        .collect();
    StatusReport {
        status: health(&snap.devices, agent.journal_degraded.clone()).status,
        agent,
        devices,
        sources_failing: snap.sources_failing.to_vec(),
        maintenance_windows: snap.windows.to_vec(),
    }
}

/// The device's true conditions, and its reconnect circuit when that is what keeps it from healthy.
fn failing(d: &DeviceView) -> Vec<Failing> {
    let mut out: Vec<Failing> = d
        .conditions
        .iter()
        .filter(|c| c.status == Status::True)
        .map(|c| Failing {
            condition: FailingCondition::Condition(c.kind),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    let circuit = if d.needs_hardware_inspection {
        Some(("NeedsHardwareInspection", "the reconnect ladder failed repeatedly; automatic reconnects stopped"))
    } else if d.circuit == Some(Circuit::Open) {
        Some(("CircuitOpen", "reconnects failed; the circuit waits out its cooldown"))
    } else {
        None
    };
    if let Some((reason, message)) = circuit {
        out.push(Failing {
            condition: FailingCondition::Circuit(ReconnectCircuit::ReconnectCircuit),
            reason: reason.to_owned(),
            message: message.to_owned(),
        });
    }
    out
}

/// /api/v1/devices/{id}: the device view plus its latest events (newest first, at most 20). The agent
/// serializes a borrowed view straight from the snapshot; agentctl reads an owned one.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceDetail<'a> {
    #[serde(flatten)]
    pub device: Cow<'a, DeviceView>,
    pub events: Vec<crate::effects::journal::Event>,
}

#[derive(Debug, Serialize)]
pub struct UnknownDevice {
    pub error: String,
    pub known: Vec<String>,
}

pub fn unknown_device(id: &str, devices: &[DeviceView]) -> UnknownDevice {
    UnknownDevice { error: format!("no device {id:?}"), known: devices.iter().map(|d| d.id.clone()).collect() }
}

/// /api/v1/devices/{id}/history: the device's recent readings and changes, with the thresholds its
/// temperature is judged by.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryReport {
    pub device: String,
    /// What the agent keeps ([history] span), and the resolution of its samples (poll_interval).
    pub span_seconds: f64,
    pub resolution_seconds: f64,
    /// The window of this answer: from `since_unix` to `now_unix`.
    pub since_unix: f64,
    pub now_unix: f64,
    pub temperature_warn_celsius: f64,
    pub temperature_crit_celsius: f64,
    #[serde(flatten)]
    pub history: DeviceHistoryView,
}

/// How far back the landing page's sparkline reaches, and how many points it has.
pub const RECENT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
pub const RECENT_POINTS: usize = 45;

/// A history query the agent cannot answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HistoryQueryError {
    #[error("since={0}: not a duration; write e.g. 15m, 1h")]
    Since(String),
    #[error("unknown parameter {0:?}; use since")]
    Unknown(String),
}

/// Parses /api/v1/devices/{id}/history?since=15m: how far back (None: all that is kept).
pub fn history_since(query: &str) -> Result<Option<std::time::Duration>, HistoryQueryError> {
    let mut since = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "since" => since = Some(humantime::parse_duration(&v).map_err(|_| HistoryQueryError::Since(v))?),
            other => return Err(HistoryQueryError::Unknown(other.to_owned())),
        }
    }
    Ok(since)
}

/// An events query the agent refuses.
#[derive(Debug, thiserror::Error)]
pub enum EventQueryError {
    #[error("since={value}: {source}; write e.g. 30m, 2h, 1d")]
    Since { value: String, source: humantime::DurationError },
    #[error("severity={value}: {source}")]
    Severity { value: String, source: crate::effects::journal::UnknownSeverity },
    #[error("limit={0}: not a number")]
    Limit(String),
    #[error("limit={0}: at most {MAX_QUERY_LIMIT}; narrow the query with since, device, severity or kind")]
    TooMany(String),
    #[error("unknown parameter {0:?}; use since, device, severity, kind, limit")]
    Unknown(String),
}

/// Parses /api/v1/events?since=1h&device=ID&severity=warning&kind=condition_set&limit=100.
pub fn event_filter(query: &str) -> Result<crate::effects::journal::EventFilter, EventQueryError> {
    let mut f = crate::effects::journal::EventFilter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "since" => {
                let d = humantime::parse_duration(&v).map_err(|source| EventQueryError::Since { value: v, source })?;
                f.since = std::time::SystemTime::now().checked_sub(d);
            }
            "device" => f.device = Some(v),
            "severity" => {
                f.min_severity = Some(v.parse().map_err(|source| EventQueryError::Severity { value: v, source })?);
            }
            "kind" => f.kind = Some(v),
            "limit" => {
                f.limit = v.parse().map_err(|_| EventQueryError::Limit(v.clone()))?;
                // Refused rather than cut short: an answer is never silently shorter than asked.
                if f.limit > MAX_QUERY_LIMIT {
                    return Err(EventQueryError::TooMany(v));
                }
            }
            other => return Err(EventQueryError::Unknown(other.to_owned())),
        }
    }
    Ok(f)
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // Both hex digits must exist: indexes i+1 and i+2.
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::journal::Severity;

    #[test]
    fn event_filters_from_query_strings() {
        let f = event_filter("device=loihi0&severity=warning&limit=5&kind=condition_set").unwrap();
        assert_eq!(f.device.as_deref(), Some("loihi0"));
        assert_eq!(f.min_severity, Some(Severity::Warning));
        assert_eq!(f.limit, 5);
        assert!(event_filter("since=2h").unwrap().since.is_some());
        assert!(event_filter("since=soon").unwrap_err().to_string().contains("since=soon"));
        assert!(event_filter("colour=red").unwrap_err().to_string().contains("unknown parameter"));
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(history_since("since=15m"), Ok(Some(std::time::Duration::from_secs(900))));
        assert_eq!(history_since(""), Ok(None));
        assert_eq!(history_since("since=soon"), Err(HistoryQueryError::Since("soon".into())));
        assert_eq!(history_since("device=x"), Err(HistoryQueryError::Unknown("device".into())));
        assert_eq!(event_filter("limit=10000").unwrap().limit, 10_000, "the maximum itself is allowed");
        let err = event_filter("limit=100000000").unwrap_err().to_string();
        assert!(err.starts_with("limit=100000000: at most 10000;"), "{err}");
    }
}
