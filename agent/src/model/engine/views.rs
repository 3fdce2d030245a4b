//! What each device looks like, for the published snapshot.

use std::time::SystemTime;

use collectors::probes::ReadingKind;

use super::device::*;
use super::state::*;
use crate::model::health::{ConditionKind, Status, derive_state, with_circuit};
use crate::model::view::DeviceView;
use crate::model::window_set::WindowHold;
use crate::policy::reconnect::Circuit;

impl DeviceEngine {
    /// What each device looks like at `wall` (manual maintenance that has ended by then no longer counts,
    /// even before `expire_overrides` has removed it; a maintenance window counts while open at `wall`).
    pub fn views(&self, wall: SystemTime) -> Vec<DeviceView> {
        let windows = self.windows.at(wall);
        self.devices
            .iter()
            .map(|d| DeviceView {
                kubernetes: self.kubelet.view(&d.config),
                ..d.view(wall, windows.holds(&d.config.id))
            })
            .collect()
    }
}

impl Device {
    /// The device at `wall`, held in maintenance by its manual override and by the windows `holds`.
    pub(super) fn view(&self, wall: SystemTime, holds: Vec<WindowHold>) -> DeviceView {
        let manual = self.learnt.overrides.in_maintenance(wall);
        let exclusive = self.learnt.diagnostics.exclusive_running();
        let maintenance = manual || exclusive.is_some() || !holds.is_empty();
        DeviceView {
            id: self.config.id.clone(),
            kind: self.config.kind.name().into(),
            model: self.config.model.clone().unwrap_or_default(),
            driver: self.learnt.driver.clone().unwrap_or_default(),
            pci_address: self.config.pci_address.clone().unwrap_or_default(),
            firmware: self.learnt.board.as_ref().and_then(|b| b.firmware.clone()).unwrap_or_default(),
            state: with_circuit(
                derive_state(&self.learnt.conditions, maintenance),
                self.learnt.reconnect.as_ref().is_some_and(|r| r.escalated || r.circuit == Circuit::Open),
            ),
            up: match (self.status(ConditionKind::Offline), &self.learnt.driver_status) {
                (Some(Status::True), _) => Some(false),
                (Some(Status::False), _) => Some(true),
                (_, Some(driver)) => Some(driver.operational),
                _ => (!self.learnt.sources.is_empty()).then_some(true),
            },
            discovered: self.discovered,
            discovered_name: self.discovered_name.clone(),
            probes: self.learnt.probes.clone(),
            utilization_ratio: self.probe_value(ReadingKind::Utilization),
            inferences_total: self.probe_value(ReadingKind::Inferences),
            energy_per_inference_joules: self.learnt.energy_per_inference,
            log_lines: self.learnt.log_lines.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            log_matches: self.learnt.log_matches.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            maintenance,
            maintenance_manual: manual,
            maintenance_until: self.learnt.overrides.maintenance_until().filter(|_| manual),
            maintenance_windows: holds,
            maintenance_reason: exclusive.map(|name| format!("diagnostic {name} running")),
            diagnostics: self.learnt.diagnostics.views(),
            manual_throttle: self.learnt.overrides.throttle,
            circuit: self.learnt.reconnect.as_ref().map(|r| r.circuit),
            needs_hardware_inspection: self.learnt.reconnect.as_ref().is_some_and(|r| r.escalated),
            reconnect_attempts: self
                .learnt
                .reconnect_attempts
                .iter()
                .map(|((s, r), n)| (s.name().to_owned(), (*r).to_owned(), *n))
                .collect(),
            temperature_warn_celsius: self.thresholds.temperature_warn,
            temperature_crit_celsius: self.thresholds.temperature_crit,
            kubernetes: None,
            conditions: self.learnt.conditions.clone(),
            readings: self.learnt.readings.clone(),
            // Host sources bound from sysfs and the BMP, then the device's probes and logs: a photonic card
            // read only through its vendor tool still says where its readings come from.
            sources: self
                .learnt
                .sources
                .iter()
                .cloned()
                .chain(self.learnt.probes.iter().map(|p| format!("probe:{}", p.name)))
                .chain(self.log_paths.iter().cloned())
                .collect(),
        }
    }
}
