//! The owner's view of its sources: from every collector round, SpiNNaker poll, probe result and log note
//! it keeps which sources are failing (model::source_health), and applies each transition once: one WARN
//! log line when a source starts failing, one INFO line when it recovers, a journal event for each, and
//! the list published for `/api/v1/status`, `agentctl diagnose` and the landing page.

use std::time::SystemTime;

use config::{CollectorKind, EventSeverity};

use crate::effects::events::Events;
use crate::effects::journal::{Event, Severity, kind};
use crate::model::engine::ProbeResult;
use crate::model::evidence::{LogNote, LogNoteKind};
use crate::model::source_health::{SourceHealth, SourceId, SourceKind, Transition};
use crate::model::spinnaker::SpinnakerSnapshot;
use crate::publish::state::AgentState;

#[derive(Default)]
pub struct SourceWatch {
    health: SourceHealth,
}

impl SourceWatch {
    /// A collector's round, as `AgentState::record` judged it (a hung file counts as failing): why it
    /// failed, or None.
    pub fn collector(&mut self, kind: CollectorKind, failing: Option<String>, events: &Events, now: SystemTime) {
        let id = SourceId { kind: SourceKind::Collector, name: kind.name().to_owned() };
        let t = self.health.observe(id, failing, now);
        apply(t, events, now);
    }

    /// A reload: collectors no longer enabled are no longer sources.
    pub fn collectors_enabled(&mut self, enabled: &[CollectorKind]) {
        self.health.forget(SourceKind::Collector, |name| enabled.iter().any(|k| k.name() == name));
    }

    pub fn spinnaker(&mut self, snap: &SpinnakerSnapshot, events: &Events, now: SystemTime) {
        for t in self.health.observe_spinnaker(snap, now) {
            apply(Some(t), events, now);
        }
    }

    /// A probe's run. One the agent could not start (its own trouble) says nothing about the source.
    pub fn probe(&mut self, device: &str, result: &ProbeResult, events: &Events, now: SystemTime) {
        if result.not_run.is_some() {
            return;
        }
        let id = SourceId { kind: SourceKind::Probe, name: format!("{device}/{}", result.probe) };
        let outcome = (!result.success).then(|| format!("{} {}", result.status, result.message).trim().to_owned());
        // The probe's failing streak is journalled by the engine already (probe_failing); its end is not.
        match self.health.observe(id, outcome, now) {
            Some(Transition::Failing { id, reason }) => log_failing(&id, &reason),
            t => apply(t, events, now),
        }
    }

    /// A log source's note about itself (not a regular file any more, and back). The follower logs and
    /// journals these itself (log_source); here they only make the list.
    pub fn log(&mut self, device: &str, note: &LogNote, now: SystemTime) {
        if note.about != LogNoteKind::Source {
            return;
        }
        let id = SourceId { kind: SourceKind::Log, name: format!("{device}/{}", note.source) };
        let outcome = match note.severity {
            EventSeverity::Info => None,
            _ => Some(note.message.clone()),
        };
        let _ = self.health.observe(id, outcome, now);
    }

    /// After a reload: probes and logs of devices that are gone are no longer sources.
    pub fn devices(&mut self, exists: impl Fn(&str) -> bool) {
        let of_device = |name: &str| exists(name.split_once('/').map_or(name, |(device, _)| device));
        self.health.forget(SourceKind::Probe, of_device);
        self.health.forget(SourceKind::Log, of_device);
    }

    pub fn publish(&self, state: &AgentState) {
        state.publish_sources_failing(self.health.failing());
    }
}

fn log_failing(id: &SourceId, reason: &str) {
    tracing::warn!(source = id.kind.name(), name = %id.name, "{id} failing: {reason}");
}

fn apply(t: Option<Transition>, events: &Events, now: SystemTime) {
    let (id, event) = match t {
        None => return,
        Some(Transition::Failing { id, reason }) => {
            log_failing(&id, &reason);
            let event = Event::new(now, Severity::Warning, kind::SOURCE_FAILING, format!("{id} failing: {reason}"));
            (id, event)
        }
        Some(Transition::Recovered { id, since }) => {
            let after = now.duration_since(since).unwrap_or_default();
            let after = humantime::format_duration(std::time::Duration::from_secs(after.as_secs()));
            tracing::info!(source = id.kind.name(), name = %id.name, "{id} recovered after {after}");
            let event =
                Event::new(now, Severity::Info, kind::SOURCE_RECOVERED, format!("{id} recovered after {after}"));
            (id, event)
        }
    };
    events.record(match device_of(&id) {
        Some(device) => event.on_device(device),
        None => event,
    });
}

/// The device a source belongs to: a board's BMP, a device's probe or log.
fn device_of(id: &SourceId) -> Option<&str> {
    match id.kind {
        SourceKind::Bmp => Some(&id.name),
        SourceKind::Probe | SourceKind::Log => id.name.split_once('/').map(|(device, _)| device),
        SourceKind::Collector | SourceKind::Spalloc => None,
    }
}
