//! Diagnostics as the engine queues, starts and records them.

use std::time::{Instant, SystemTime};

use super::device::*;
use super::state::*;
use crate::model::diagnostics::{Decision, Report, RequestError, RunView};
use crate::model::health::Status;
use crate::model::view::ConditionChange;

impl DeviceEngine {
    /// Queues an operator's diagnostics of level `level` and below, of one device or of every device.
    /// Returns the run's id, to poll with [`DeviceEngine::diagnostic_run`].
    pub fn request_diagnostics(&mut self, level: u8, device: Option<&str>) -> Result<u64, RequestError> {
        if let Some(id) = device {
            self.device_mut(id)?;
        }
        let devices = self.devices.iter_mut().filter(|d| device.is_none_or(|id| d.config.id == id));
        self.diagnostics.request(level, device, devices.map(|d| (d.config.id.as_str(), &mut d.learnt.diagnostics)))
    }

    /// Where an operator's diagnostics run stands.
    pub fn diagnostic_run(&self, id: u64) -> Option<RunView> {
        let devices = &self.devices;
        self.diagnostics.run(id, |dev| devices.iter().find(|d| d.config.id == dev).map(|d| &d.learnt.diagnostics))
    }

    /// Queues the diagnostics that run when a condition of this round set (`on = [...]`), within their
    /// cooldown counted at `now`. Returns (device, diagnostic, condition) for each one queued.
    pub fn diagnostics_on_changes(
        &mut self,
        changes: &[ConditionChange],
        now: Instant,
    ) -> Vec<(String, String, &'static str)> {
        let mut out = Vec::new();
        for change in changes.iter().filter(|c| c.condition.status == Status::True) {
            let Some(d) = self.devices.iter_mut().find(|d| d.config.id == change.device) else { continue };
            let condition = change.condition.kind.name();
            for name in self.diagnostics.on_condition(&mut d.learnt.diagnostics, condition, now) {
                out.push((change.device.clone(), name, condition));
            }
        }
        out
    }

    /// Queues the diagnostics that run in a maintenance window open at `wall` over their device, once per
    /// occurrence of the window. Returns (device, diagnostic, window) for each one queued.
    pub fn diagnostics_in_windows(&mut self, wall: SystemTime) -> Vec<(String, String, std::sync::Arc<str>)> {
        let open = self.windows.at(wall);
        let mut out = Vec::new();
        for d in self.devices.iter_mut().filter(|d| !d.learnt.diagnostics.is_empty()) {
            for window in open.open_for(&d.config.id) {
                for name in self.diagnostics.in_window(&mut d.learnt.diagnostics, &window.name, window.started) {
                    out.push((d.config.id.clone(), name, std::sync::Arc::clone(&window.name)));
                }
            }
        }
        out
    }

    /// The queued diagnostics to start (or refuse) now. `throttled` is the throttle level applied to a
    /// device: a device throttled, reconnecting or held by a pod is busy for a diagnostic that requires
    /// an idle one.
    pub fn diagnostic_decisions(&mut self, throttled: impl Fn(&str) -> usize, wall: SystemTime) -> Vec<Decision> {
        let kubelet = &self.kubelet;
        let devices = self.devices.iter_mut().map(|d| {
            let busy = busy_reason(d, kubelet, throttled(&d.config.id));
            (&d.config, &mut d.learnt.diagnostics, busy)
        });
        self.diagnostics.decide(devices, wall)
    }

    /// The level of a device's diagnostic, while the device declares it.
    pub fn diagnostic_level(&self, device: &str, name: &str) -> Option<u8> {
        let d = self.devices.iter().find(|d| d.config.id == device)?;
        d.config.diagnostics.iter().find(|c| c.name == name).map(|c| c.level)
    }

    /// Records a finished diagnostic and judges its device again (DiagnosticFailed).
    pub fn diagnostic_finished(&mut self, report: &Report, now: Instant, wall: SystemTime) -> Vec<ConditionChange> {
        let Some(d) = self.devices.iter_mut().find(|d| d.config.id == report.device) else { return Vec::new() };
        if !self.diagnostics.finished(&mut d.learnt.diagnostics, report, wall) {
            return Vec::new();
        }
        d.reevaluate(now, wall)
    }
}

/// Why a device is not idle for a diagnostic that requires it: a pod holds it, a throttle is applied or
/// held, a reconnect step is in progress.
pub(super) fn busy_reason(
    d: &Device,
    kubelet: &crate::model::kubelet::KubeletModel,
    throttled: usize,
) -> Option<String> {
    if let Some(p) = kubelet.holders(&d.config.id).first() {
        return Some(format!("pod {}/{} holds the device", p.namespace, p.pod));
    }
    let level = d.learnt.overrides.throttle.map_or(throttled, |m| m.level.max(throttled));
    if level > 0 {
        return Some(format!("the device is throttled at level {level}"));
    }
    let reconnecting = d.learnt.reconnect.as_ref().and_then(|r| r.in_progress());
    reconnecting.map(|step| format!("a reconnect ({step}) is in progress"))
}
