//! JSON shapes of the read API (/health, /api/v1/devices). agentctl shows the same data; the shapes are
//! documented in docs/api.md and only grow (fields are added, never renamed or removed).

use serde::Serialize;

use crate::devices::{DeviceView, State, Status};

/// /health: every device's state, and the worst of them.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// unhealthy if any device is, else degraded, else unknown, else healthy (maintenance is ignored).
    pub status: State,
    pub devices: Vec<DeviceHealth>,
}

#[derive(Debug, Serialize)]
pub struct DeviceHealth {
    pub id: String,
    pub kind: &'static str,
    pub state: State,
    /// The conditions that are true, with their reason.
    pub failing: Vec<Failing>,
}

#[derive(Debug, Serialize)]
pub struct Failing {
    pub condition: &'static str,
    pub reason: String,
    pub message: String,
}

pub fn health(devices: &[DeviceView]) -> HealthReport {
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
    HealthReport {
        status,
        devices: devices
            .iter()
            .map(|d| DeviceHealth {
                id: d.id.clone(),
                kind: d.kind,
                state: d.state,
                failing: d
                    .conditions
                    .iter()
                    .filter(|c| c.status == Status::True)
                    .map(|c| Failing { condition: c.kind.name(), reason: c.reason.clone(), message: c.message.clone() })
                    .collect(),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize)]
pub struct UnknownDevice {
    pub error: String,
    pub known: Vec<String>,
}

pub fn unknown_device(id: &str, devices: &[DeviceView]) -> UnknownDevice {
    UnknownDevice { error: format!("no device {id:?}"), known: devices.iter().map(|d| d.id.clone()).collect() }
}
