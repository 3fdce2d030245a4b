//! An operator's changes: maintenance, a held throttle level, a reconnect now, and "I have looked at it".

use std::time::{Instant, SystemTime};

use config::device::ReconnectStep;

use super::device::*;
use super::state::*;
use crate::model::operator::{Expired, ManualThrottle, OperatorError, ThrottleOverride};
use crate::model::view::ConditionChange;

impl DeviceEngine {
    /// Puts a device in maintenance (until `until`, or until turned off) or takes it out.
    pub fn set_maintenance(&mut self, device: &str, on: bool, until: Option<SystemTime>) -> Result<(), OperatorError> {
        self.device_mut(device)?.learnt.overrides.maintenance = on.then_some(until);
        Ok(())
    }

    /// Holds a device at a throttle level chosen by an operator (`None` releases it: back to level 0,
    /// then automatic throttling resumes). Returns the device's highest level.
    pub fn set_manual_throttle(
        &mut self,
        device: &str,
        level: Option<usize>,
        until: Option<SystemTime>,
    ) -> Result<usize, OperatorError> {
        let d = self.device_mut(device)?;
        let id = d.config.id.clone();
        let max = d.config.throttle.as_ref().ok_or(OperatorError::NoThrottleLadder { id: id.clone() })?.levels.len();
        match level {
            Some(level) if level > max => return Err(OperatorError::LevelOutOfRange { id, level, max }),
            Some(level) => {
                d.learnt.overrides.throttle = Some(ManualThrottle { level, until });
                d.learnt.overrides.throttle_released = false;
                d.learnt.overrides.throttle_requested = None;
            }
            None => {
                d.learnt.overrides.throttle = None;
                d.learnt.overrides.throttle_released = true;
            }
        }
        Ok(max)
    }

    /// The device's manual-throttle state, to put back with [`DeviceEngine::restore_throttle_override`].
    pub fn throttle_override(&mut self, device: &str) -> Result<ThrottleOverride, OperatorError> {
        Ok(self.device_mut(device)?.learnt.overrides.throttle_override())
    }

    /// Puts back a manual-throttle state after applying an operator's change to it failed.
    pub fn restore_throttle_override(&mut self, device: &str, saved: ThrottleOverride) {
        if let Ok(d) = self.device_mut(device) {
            d.learnt.overrides.restore_throttle(saved);
        }
    }

    /// Starts the device's reconnect ladder now, from its mildest step, whatever its circuit says (an
    /// operator asked). Returns the step to run.
    pub fn manual_reconnect(&mut self, device: &str, now: Instant) -> Result<ReconnectStep, OperatorError> {
        let d = self.device_mut(device)?;
        let id = d.config.id.clone();
        let cfg = d.config.reconnect.clone().filter(|r| !r.steps.is_empty());
        let cfg = cfg.ok_or(OperatorError::NoReconnectLadder { id: id.clone() })?;
        let controller = d.learnt.reconnect.get_or_insert_with(|| reconnect_controller(&cfg, 0));
        controller.start_manual(now).ok_or(OperatorError::NoReconnectLadder { id })
    }

    /// A reconnect step the agent could not start (its own trouble): not an attempt (see
    /// `ReconnectController::not_run`).
    pub fn reconnect_not_run(&mut self, device: &str, step: ReconnectStep, now: Instant) {
        let device = self.devices.iter_mut().find(|d| d.config.id == device);
        if let Some(c) = device.and_then(|d| d.learnt.reconnect.as_mut()) {
            c.not_run(step, now);
        }
    }

    /// The operator's "I have looked at it": clears latched conditions and a reconnect ladder that gave up,
    /// then re-evaluates. Returns what was cleared and the condition changes.
    pub fn set_healthy(
        &mut self,
        device: &str,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(Vec<String>, Vec<ConditionChange>), OperatorError> {
        let d = self.device_mut(device)?;
        let mut cleared = Vec::new();
        d.learnt.log_conditions.retain(|condition, c| {
            if c.latched {
                cleared.push(format!("{} (log rule {})", condition.name(), c.rule));
            }
            !c.latched
        });
        for c in d.learnt.conditions.iter_mut().filter(|c| c.latched) {
            c.latched = false;
        }
        cleared.extend(d.learnt.diagnostics.acknowledge());
        if let Some(r) = &mut d.learnt.reconnect
            && (r.escalated || r.circuit != crate::policy::reconnect::Circuit::Closed)
        {
            r.clear();
            cleared.push("reconnect circuit (closed again)".to_owned());
        }
        Ok((cleared, d.reevaluate(now, wall)))
    }

    /// Ends manual maintenance and manual throttles that have run out.
    pub fn expire_overrides(&mut self, wall: SystemTime) -> Vec<(String, Expired)> {
        let mut out = Vec::new();
        for d in &mut self.devices {
            for e in d.learnt.overrides.expire(wall) {
                out.push((d.config.id.clone(), e));
            }
        }
        out
    }
}
