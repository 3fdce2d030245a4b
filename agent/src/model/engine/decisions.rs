//! What the ladders want done now: reconnect steps and throttle levels (applied by the actions thread).

use std::time::{Instant, SystemTime};

use config::device::ThrottleMetric;

use super::device::*;
use super::state::*;
use crate::model::health::{ConditionKind, Status, ThresholdTracker};

impl DeviceEngine {
    /// What the reconnect ladders want done now, for devices not in maintenance.
    pub fn reconnect_decisions(
        &mut self,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(String, crate::policy::reconnect::Decision)> {
        use crate::policy::reconnect::Decision;
        let mut out = Vec::new();
        let windows = self.windows.at(wall);
        for (i, d) in self.devices.iter_mut().enumerate() {
            let Some(cfg) = d.config.reconnect.clone() else { continue };
            if d.in_maintenance(wall) || windows.covers(&d.config.id) {
                continue;
            }
            let offline =
                d.learnt.conditions.iter().any(|c| c.kind == ConditionKind::Offline && c.status == Status::True);
            let controller = d.learnt.reconnect.get_or_insert_with(|| reconnect_controller(&cfg, i));
            if let Some(decision) = controller.tick(offline, now) {
                let (step, result) = match decision {
                    Decision::Failed { step } | Decision::Opened { step } | Decision::Escalate { step } => {
                        (Some(step), "failed")
                    }
                    Decision::Recovered { step } => (Some(step), "recovered"),
                    Decision::Attempt { .. } => (None, ""),
                };
                if let Some(step) = step {
                    *d.learnt.reconnect_attempts.entry((step, result)).or_default() += 1;
                }
                out.push((d.config.id.clone(), decision));
            }
        }
        out
    }

    /// The throttle level each throttled device should have now, where it differs from what is applied.
    /// An operator's level wins; when it is released the device goes back to 0 and the controller
    /// starts afresh.
    pub fn throttle_requests(
        &mut self,
        applied: impl Fn(&str) -> usize,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let windows = self.windows.at(wall);
        for d in &mut self.devices {
            if d.config.throttle.is_none() {
                continue;
            }
            let current = applied(&d.config.id);
            if let Some(manual) = d.learnt.overrides.throttle {
                if current != manual.level && d.learnt.overrides.throttle_requested != Some(manual.level) {
                    d.learnt.overrides.throttle_requested = Some(manual.level);
                    out.push((d.config.id.clone(), manual.level));
                }
                continue;
            }
            d.learnt.overrides.throttle_requested = None;
            let in_maintenance = d.in_maintenance(wall) || windows.covers(&d.config.id);
            let Some(throttle) = d.learnt.throttle.as_mut() else { continue };
            if std::mem::take(&mut d.learnt.overrides.throttle_released) {
                throttle.ladder.restart(now);
                if current != 0 {
                    out.push((d.config.id.clone(), 0));
                }
                continue;
            }
            if in_maintenance {
                continue;
            }
            // Only on a value read now: a metric that is gone asks nothing.
            let readings = &d.learnt.readings;
            let zone = match (&throttle.judge, throttle.metric) {
                (_, ThrottleMetric::Power) if readings.power_watts.is_empty() => None,
                (_, ThrottleMetric::Temperature) if readings.max_temperature().is_none() => None,
                (ThrottleJudge::Warn, _) => d.learnt.trackers.warn.zone(),
                (ThrottleJudge::Power, _) => d.learnt.trackers.power.as_ref().and_then(ThresholdTracker::zone),
                (ThrottleJudge::Own(tracker), _) => tracker.zone(),
            };
            if let Some(level) = zone.and_then(|zone| throttle.ladder.next(zone, current, now)) {
                out.push((d.config.id.clone(), level));
            }
        }
        out
    }
}
