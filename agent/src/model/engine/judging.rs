//! Judging a device: each condition's evidence gathered (the trackers fed at the time passed in) and its verdict applied.

use std::time::{Instant, SystemTime};

use collectors::probes::ReadingKind;
use config::device::ThrottleMetric;

use super::device::*;
use crate::model::conditions::{
    self, BmpFlags, BoardManagement, DataStaleEvidence, Hottest, LivenessProbe, LogErrorsEvidence, LogErrorsVerdict,
    OfflineEvidence, OverheatingEvidence, SdkErrorEvidence, Verdict,
};
use crate::model::health::{ConditionKind, Impact, Status};
use crate::model::power::{Judged, PowerEvidence, power_anomaly};
use crate::model::view::{ConditionChange, ProbeState};

impl Device {
    /// Runs the rules; returns the changed conditions as events for the journal.
    pub(super) fn reevaluate(&mut self, now: Instant, wall: SystemTime) -> Vec<ConditionChange> {
        let changed = self.evaluate(now, wall);
        let id = &self.config.id;
        changed
            .into_iter()
            .filter_map(|kind| self.learnt.conditions.iter().find(|c| c.kind == kind).cloned())
            .map(|condition| ConditionChange { device: id.clone(), condition })
            .collect()
    }

    /// Runs the rules: gathers each condition's evidence (feeding the threshold trackers the values seen
    /// at `now`), judges it and applies the verdict. Returns the conditions whose status changed, in the
    /// order judged.
    pub(super) fn evaluate(&mut self, now: Instant, wall: SystemTime) -> Vec<ConditionKind> {
        let mut changed = Vec::new();
        let overheating = conditions::overheating(self.overheating_evidence(now));
        self.apply(ConditionKind::Overheating, Some(overheating), wall, &mut changed);
        let (status, reason, message) = power_anomaly(self.power_evidence(now));
        let power = Verdict { status, impact: Impact::Degraded, reason: reason.into(), message };
        self.apply(ConditionKind::PowerAnomaly, Some(power), wall, &mut changed);
        let offline = conditions::offline(self.offline_evidence());
        self.apply(ConditionKind::Offline, offline, wall, &mut changed);
        if let Some(LogErrorsVerdict { verdict, latches }) = conditions::log_errors(self.log_errors_evidence()) {
            let c = self.condition(ConditionKind::LogErrors);
            c.latched = c.latched || latches;
            self.apply(ConditionKind::LogErrors, Some(verdict), wall, &mut changed);
        }
        let sdk_error = conditions::sdk_error(self.sdk_error_evidence());
        self.apply(ConditionKind::SdkError, sdk_error, wall, &mut changed);
        let data_stale = conditions::data_stale(self.data_stale_evidence(now));
        self.apply(ConditionKind::DataStale, data_stale, wall, &mut changed);
        let diagnostic = self.learnt.diagnostics.verdict();
        self.apply(ConditionKind::DiagnosticFailed, diagnostic, wall, &mut changed);
        changed
    }

    /// Applies a verdict (None: no evidence speaks to the condition, which stays as it is) and records the
    /// condition in `changed` when its status changed.
    pub(super) fn apply(
        &mut self,
        kind: ConditionKind,
        verdict: Option<Verdict>,
        wall: SystemTime,
        changed: &mut Vec<ConditionKind>,
    ) {
        let Some(Verdict { status, impact, reason, message }) = verdict else { return };
        // Only a declared condition is judged (DiagnosticFailed is not declared by every device).
        let Some(condition) = self.learnt.conditions.iter_mut().find(|c| c.kind == kind) else { return };
        if condition.set(status, impact, &reason, message, wall) {
            changed.push(kind);
        }
    }

    /// The hottest sensor, fed to the warning and critical trackers at `now`.
    pub(super) fn overheating_evidence(&mut self, now: Instant) -> OverheatingEvidence<'_> {
        let learnt = &mut self.learnt;
        if let Some(h) = learnt.readings.max_temperature() {
            Throttle::observe(&mut learnt.throttle, ThrottleMetric::Temperature, h.value, now);
        }
        let hottest = learnt.readings.max_temperature().map(|h| Hottest {
            sensor: &h.sensor,
            celsius: h.value,
            warn: learnt.trackers.warn.observe(h.value, now),
            crit: learnt.trackers.crit.observe(h.value, now),
        });
        let t = &self.thresholds;
        OverheatingEvidence { hottest, warn_celsius: t.temperature_warn, crit_celsius: t.temperature_crit }
    }

    /// The device's total power and its latest energy per inference, each fed to its tracker at `now`
    /// when a maximum is configured.
    pub(super) fn power_evidence(&mut self, now: Instant) -> PowerEvidence {
        let learnt = &mut self.learnt;
        let watts: Option<f64> = (!learnt.readings.power_watts.is_empty())
            .then(|| learnt.readings.power_watts.iter().map(|r| r.value).sum());
        if let Some(w) = watts {
            Throttle::observe(&mut learnt.throttle, ThrottleMetric::Power, w, now);
        }
        let power = match (&mut learnt.trackers.power, watts) {
            (Some(tracker), Some(w)) => {
                Some(Judged { value: w, max: tracker.threshold, level: tracker.observe(w, now) })
            }
            _ => None,
        };
        let per_inference = match (learnt.energy_per_inference, learnt.trackers.epi.as_mut()) {
            (Some(epi), Some(tracker)) => {
                Some(Judged { value: epi, max: tracker.threshold, level: tracker.observe(epi, now) })
            }
            _ => None,
        };
        PowerEvidence { watts, power, per_inference }
    }

    /// The driver's status, the liveness probes that have run, the board's BMP and the SDK's `online`.
    pub(super) fn offline_evidence(&self) -> OfflineEvidence<'_> {
        let probes = self.learnt.probes.iter().filter(|p| p.liveness && p.status != ProbeState::Pending);
        let probes = probes.map(|p| LivenessProbe {
            name: &p.name,
            success: p.success,
            consecutive_failures: p.consecutive_failures,
            offline_after: self.offline_after(&p.name),
            message: &p.message,
        });
        OfflineEvidence {
            driver: self.learnt.driver_status.as_ref(),
            probes: probes.collect(),
            board: self.learnt.board.as_ref(),
            sdk_online: self.probe_value(ReadingKind::Online),
        }
    }

    pub(super) fn log_errors_evidence(&self) -> LogErrorsEvidence<'_> {
        LogErrorsEvidence {
            has_logs: self.learnt.has_logs,
            set_by_rule: self.learnt.log_conditions.get(&ConditionKind::LogErrors),
        }
    }

    /// A log rule's SdkError, the status tool's last verdict, the board's BMP flags and spalloc's word.
    pub(super) fn sdk_error_evidence(&self) -> SdkErrorEvidence<'_> {
        let board = self.learnt.board.as_ref().map(|b| BoardManagement {
            flags: b.status.as_ref().map(|s| BmpFlags { warning: s.warning, shutdown: s.shutdown }),
            dead_in_spalloc: b.dead_in_spalloc,
        });
        SdkErrorEvidence {
            set_by_rule: self.learnt.log_conditions.get(&ConditionKind::SdkError),
            sdk: self.learnt.sdk_report.as_ref(),
            board,
            is_true: self.status(ConditionKind::SdkError) == Some(Status::True),
        }
    }

    /// How long the device's host sources have been silent at `now`.
    pub(super) fn data_stale_evidence(&self, now: Instant) -> DataStaleEvidence {
        let has_host_sources = self.inputs.any();
        let since = self.learnt.last_reading.unwrap_or(self.learnt.created);
        DataStaleEvidence {
            has_host_sources,
            ever_read: self.learnt.last_reading.is_some(),
            silent_for: now.duration_since(since),
            stale_after: self.thresholds.stale_after,
            agent_cannot_read: self.learnt.agent_cannot_read,
        }
    }
}
