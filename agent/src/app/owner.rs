//! The one owner of the device model: it takes evidence in arrival order, lets the model decide, and
//! applies the decisions (journal, actions, published state) in one place.
//!
//! Decisions run whenever evidence arrives, and on a timer for the time-based rules (reconnect backoff,
//! throttle hold, maintenance and manual-throttle expiry), so they never wait for some host collector's
//! tick: a device whose only evidence is a probe is reconnected as promptly as one with a hwmon chip.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::device::ReconnectStep;
use config::{CollectorKind, EventSeverity};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::app::diagnostic_effects;
use crate::app::source_watch::SourceWatch;
use crate::effects::actions::{Actions, ActionsMode, ActionsStatus};
use crate::effects::diagnostics::DiagnosticsRunner;
use crate::effects::events::Events;
use crate::effects::faults::AgentFault;
use crate::effects::journal::{Event, Severity, kind};
use crate::model::evidence::{
    AgentNews, CollectorRound, Evidence, EvidenceRx, EvidenceTx, HostEvidence, LogNote, LogNoteKind,
};
use crate::model::history::MarkKind;
use crate::model::operator::Expired;
use crate::model::window_set::WindowChange;
use crate::model::{ConditionChange, DeviceEngine};
use crate::policy::reconnect::Decision;
use crate::publish::state::AgentState;

/// How often the time-based rules are looked at when no evidence arrives.
pub const DECIDE_EVERY: Duration = Duration::from_secs(1);

/// Where the decisions go.
pub struct Effects {
    pub state: Arc<AgentState>,
    pub events: Arc<Events>,
    pub actions: Actions,
}

#[cfg(test)]
/// Runs until `shutdown`: applies each batch of evidence, then decides once. Diagnostics stay queued
/// (none runs) without a runner; see [`run_with`].
pub async fn run(engine: DeviceEngine, evidence: EvidenceRx, effects: Effects, shutdown: CancellationToken) {
    run_with(engine, evidence, effects, None, shutdown).await;
}

/// As [`run`], handing the diagnostics the model starts to `diagnostics`.
pub async fn run_with(
    mut engine: DeviceEngine,
    mut evidence: EvidenceRx,
    effects: Effects,
    diagnostics: Option<DiagnosticsRunner>,
    shutdown: CancellationToken,
) {
    // What devices bind: the latest round of each collector and the latest SpiNNaker poll, as they arrived.
    let mut host = HostEvidence::default();
    // Collectors whose last round could not read for want of the agent's own descriptors.
    let mut cannot_read: BTreeSet<CollectorKind> = BTreeSet::new();
    let mut sources = SourceWatch::default();
    let mut ticks = tokio::time::interval(DECIDE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            e = evidence.recv() => match e {
                Some(e) => batch.push(e),
                None => break,
            },
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        while let Ok(e) = evidence.try_recv() {
            batch.push(e);
        }
        // Readings are looked at by evaluating; what else arrived changed the model by itself.
        let quiet = batch.iter().all(|e| {
            matches!(e, Evidence::Collected(_) | Evidence::Spinnaker(_) | Evidence::Collectors(_) | Evidence::Flush(_))
        });
        let mut changes = Vec::new();
        let mut flushed = Vec::new();
        let mut commanded = false;
        for e in batch {
            let (now, wall) = (Instant::now(), SystemTime::now());
            match e {
                Evidence::Collected(round) => {
                    let kind = round.kind;
                    let (fault, failing) = collected(round, &mut host, &effects, wall);
                    sources.collector(kind, failing, &effects.events, wall);
                    if fault {
                        cannot_read.insert(kind)
                    } else {
                        cannot_read.remove(&kind)
                    };
                    engine.set_agent_cannot_read(!cannot_read.is_empty());
                }
                Evidence::Spinnaker(boards) => {
                    sources.spinnaker(&boards, &effects.events, wall);
                    effects.state.publish_spinnaker(Arc::clone(&boards));
                    host.spinnaker = Some(boards);
                }
                Evidence::Collectors(enabled) => {
                    effects.state.configure_collectors(&enabled);
                    sources.collectors_enabled(&enabled.iter().map(|(k, _, _)| *k).collect::<Vec<_>>());
                    host.readings.retain(|kind, _| enabled.iter().any(|(k, _, _)| k == kind));
                }
                Evidence::Probe { device, result } => {
                    changes.extend(probe_result(&mut engine, &mut sources, &effects, &device, result, (now, wall)));
                }
                Evidence::Log { device, update, notes } => {
                    for note in notes {
                        sources.log(&device, &note, wall);
                        effects.events.record(log_note(note, wall).on_device(&device));
                    }
                    if let Some(update) = update {
                        changes.extend(engine.apply_log(&device, update, now, wall));
                    }
                }
                Evidence::Command(command) => {
                    changes.extend(command(&mut engine, now, wall));
                    commanded = true;
                }
                Evidence::Diagnostic(report) => {
                    let level = engine.diagnostic_level(&report.device, &report.name);
                    diagnostic_effects::report(&report, level, &effects.state, &effects.events, wall);
                    changes.extend(engine.diagnostic_finished(&report, now, wall));
                }
                Evidence::Agent(news) => publish_news(news, &effects.state),
                Evidence::Flush(done) => flushed.push(done),
            }
        }
        let round = Round { quiet, now: Instant::now(), wall: SystemTime::now() };
        decide(&mut engine, &host, changes, &effects, diagnostics.as_ref(), round);
        if commanded {
            // A reload may have removed devices, and with them their probes and logs.
            let snap = effects.state.snapshot();
            sources.devices(|id| snap.devices.iter().any(|d| d.id == id));
        }
        sources.publish(&effects.state);
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Re-evaluates every device against the latest snapshot, journals what changed, hands throttle and
/// reconnect intents to the actions thread and publishes the result. Cheap (no I/O). `quiet` means nothing
/// but the timer or newly published readings woke it: then the devices' views are republished only if the
/// round changed something (a device bound new readings, a condition, an intent), since building them for
/// every device on every round is most of what a host with many devices (a SpiNNaker machine of 1,200
/// boards, whose devices no host collector's round concerns) would otherwise spend.
pub fn decide(
    engine: &mut DeviceEngine,
    host: &HostEvidence,
    mut changes: Vec<ConditionChange>,
    effects: &Effects,
    diagnostics: Option<&DiagnosticsRunner>,
    round: Round,
) {
    let Round { quiet, now, wall } = round;
    let Effects { state, events, actions } = effects;
    // Throttle levels first, so that this round's history samples carry the level in force.
    state.history.throttle_levels(wall, actions.views().iter().map(|t| (t.device.as_str(), t.level)));
    let mut moved = !quiet || !changes.is_empty();
    moved |= window_changes(engine, events, wall);
    if engine.has_work() {
        for (device, expired) in engine.expire_overrides(wall) {
            moved = true;
            let message = match expired {
                Expired::Maintenance => "maintenance ended (its time ran out)".to_owned(),
                Expired::Throttle { level } => {
                    format!("manual throttle at level {level} ended (its time ran out); automatic throttling resumes")
                }
            };
            events.record(Event::new(wall, Severity::Info, kind::OPERATOR, message).on_device(&device));
        }
        let evaluation = engine.evaluate(host, now, wall);
        moved |= evaluation.rebound > 0;
        changes.extend(evaluation.changes);
    }
    for change in &changes {
        events.condition_changed(change, wall);
        state.history.condition(wall, change);
    }
    moved |= !changes.is_empty();
    // Before the actions: an exclusive diagnostic started now puts its device in maintenance, so no
    // throttle or reconnect starts on it this round.
    if let Some(runner) = diagnostics {
        diagnostic_effects::queued_on_condition(engine.diagnostics_on_changes(&changes, now), events, wall);
        diagnostic_effects::queued_in_window(engine.diagnostics_in_windows(wall), events, wall);
        let decisions = engine.diagnostic_decisions(|d| actions.level(d), wall);
        moved |= !decisions.is_empty();
        diagnostic_effects::apply(decisions, runner, events, wall);
    }
    if actions.active() {
        // Decided here, applied in order on the actions thread: the async side never writes.
        for (device, level) in engine.throttle_requests(|d| actions.level(d), now, wall) {
            actions.set_level(&device, level);
            moved = true;
        }
        for (device, decision) in engine.reconnect_decisions(now, wall) {
            state.history.mark(wall, &device, MarkKind::Reconnect, &reconnect_mark(&decision));
            reconnect_decision(&device, decision, actions, events, wall);
            moved = true;
        }
    }
    if moved {
        state.publish_windows(engine.window_views(wall));
        let views = engine.views(wall);
        state.history.sample(wall, &views);
        state.publish_devices(views, events.counts(), events.dropped());
    } else {
        // Events recorded elsewhere (the actions thread, hooks) still show in accel_events_total at once.
        state.publish_event_counts(events.counts(), events.dropped());
    }
    state.publish_throttle(actions.views());
}

/// Journals each maintenance window that opened or closed, once per device it covers. Returns whether
/// one did: the devices' views change with it.
fn window_changes(engine: &mut DeviceEngine, events: &Events, wall: SystemTime) -> bool {
    let changes = engine.window_changes(wall);
    for change in &changes {
        let (devices, message) = match change {
            WindowChange::Opened { name, devices, until_local, .. } => {
                (devices, format!("maintenance window {name} opened, until {until_local}: automatic actions suspended"))
            }
            WindowChange::Closed { name, devices } => (devices, format!("maintenance window {name} closed")),
        };
        for device in engine.window_devices(devices) {
            let event = Event::new(wall, Severity::Info, kind::MAINTENANCE_WINDOW, message.clone());
            events.record(event.on_device(&device));
        }
    }
    !changes.is_empty()
}

/// Applies a probe's result: the agent's own fault is counted as such, a failing source noted, and a
/// failure streak's start journalled. Returns the condition changes.
fn probe_result(
    engine: &mut DeviceEngine,
    sources: &mut SourceWatch,
    effects: &Effects,
    device: &str,
    result: crate::model::engine::ProbeResult,
    (now, wall): (Instant, SystemTime),
) -> Vec<ConditionChange> {
    if let Some(fault) = result.not_run {
        let what = format!("probe {} of {device}", result.probe);
        effects.state.faults.record(fault, &what, &effects.events, wall);
    }
    sources.probe(device, &result, &effects.events, wall);
    let applied = engine.apply_probe(device, result, now, wall);
    if let Some(message) = applied.failing {
        let event = Event::new(wall, Severity::Warning, kind::PROBE_FAILING, message);
        effects.events.record(event.on_device(device));
    }
    applied.changes
}

/// When a round of decisions is taken, and whether only the timer or readings woke it (see [`decide`]).
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub quiet: bool,
    pub now: Instant,
    pub wall: SystemTime,
}

/// Publishes a collector's round and keeps its readings (absent after a failed round, never stale) for
/// the devices to bind. Returns whether the round was the agent's own trouble, and why it failed (None: it
/// did not), for the failing sources (which log a collector that starts or stops failing once, not once
/// per round). A round whose reads failed for want of the agent's own descriptors is published as read
/// (the metrics show what could be read) but is no evidence about the devices: they keep the readings
/// they had, and the fault is the agent's.
fn collected(
    round: CollectorRound,
    host: &mut HostEvidence,
    effects: &Effects,
    wall: SystemTime,
) -> (bool, Option<String>) {
    let CollectorRound { kind, outcome, stuck_threads, quarantined } = round;
    let state = &effects.state;
    let fault = outcome.agent_fault();
    let readings = state.record(kind, outcome, stuck_threads, quarantined);
    if fault {
        let what = format!("reading the {} collector's files", kind.name());
        state.faults.record(AgentFault::Descriptors, &what, &effects.events, wall);
    } else {
        match readings {
            Some(readings) => host.readings.insert(kind, readings),
            None => host.readings.remove(&kind),
        };
    }
    let snap = state.snapshot();
    let failing = match snap.collectors.get(&kind) {
        Some(c) if !c.success => Some(c.error.clone().unwrap_or_else(|| "failed".to_owned())),
        _ => None,
    };
    (fault, failing)
}

fn publish_news(news: AgentNews, state: &AgentState) {
    match news {
        AgentNews::Reloaded { successful } => state.record_reload(successful),
        AgentNews::ActionsMode(mode) => state.publish_actions_mode(mode),
        AgentNews::ActionsStopped(why) => state.publish_actions_stopped(why),
        AgentNews::ControlRefused(totals) => state.publish_control_refused(totals),
    }
}

/// What the actions thread tells the rest of the agent goes to the owner, which publishes it; a reconnect
/// step it could not start is counted as the agent's fault and told to the model, so that the ladder
/// neither counts it as an attempt nor escalates for it.
pub struct ActionsLink {
    pub state: Arc<AgentState>,
    pub events: Arc<Events>,
    pub evidence: EvidenceTx,
}

impl ActionsStatus for ActionsLink {
    fn publish_actions_mode(&self, mode: ActionsMode) {
        self.evidence.send(Evidence::Agent(AgentNews::ActionsMode(mode)));
    }

    fn publish_actions_stopped(&self, why: String) {
        self.evidence.send(Evidence::Agent(AgentNews::ActionsStopped(why)));
    }

    fn actions_stopped(&self) -> Option<String> {
        self.state.snapshot().actions_stopped.as_deref().map(str::to_owned)
    }

    fn step_not_run(&self, device: &str, step: ReconnectStep, fault: AgentFault) {
        let wall = SystemTime::now();
        self.state.faults.record(fault, &format!("reconnect step {step} of {device}"), &self.events, wall);
        let device = device.to_owned();
        self.evidence.send(Evidence::Command(Box::new(move |engine, now, _| {
            engine.reconnect_not_run(&device, step, now);
            Vec::new()
        })));
    }
}

/// The journal event of a log source's note.
fn log_note(note: LogNote, wall: SystemTime) -> Event {
    let severity = match note.severity {
        EventSeverity::Info => Severity::Info,
        EventSeverity::Warning => Severity::Warning,
        EventSeverity::Critical => Severity::Critical,
        EventSeverity::Fatal => Severity::Fatal,
    };
    let kind = match note.about {
        LogNoteKind::Match => kind::LOG_MATCH,
        LogNoteKind::Source => kind::LOG_SOURCE,
    };
    Event::new(wall, severity, kind, note.message)
}

/// A reconnect decision as the device's history marks it.
fn reconnect_mark(decision: &Decision) -> String {
    match decision {
        Decision::Attempt { step } => format!("reconnect: trying {step}"),
        Decision::Failed { step } => format!("reconnect {step} failed"),
        Decision::Recovered { step } => format!("back online after reconnect {step}"),
        Decision::Opened { step } => format!("reconnect {step} failed; circuit opened"),
        Decision::Escalate { step } => format!("reconnect {step} failed; reconnects gave up"),
    }
}

fn reconnect_decision(device: &str, decision: Decision, actions: &Actions, events: &Events, now: SystemTime) {
    let (severity, message) = match decision {
        Decision::Attempt { step } => {
            actions.reconnect(device, step);
            return;
        }
        Decision::Failed { step } => (Severity::Warning, format!("still offline after reconnect step {step}")),
        Decision::Recovered { step } => (Severity::Info, format!("back online after reconnect step {step}")),
        Decision::Opened { step } => {
            (Severity::Critical, format!("still offline after reconnect step {step}; the reconnect circuit opened"))
        }
        Decision::Escalate { step } => (
            Severity::Critical,
            format!(
                "NeedsHardwareInspection: still offline after reconnect step {step}; the ladder failed repeatedly and automatic reconnects stopped"
            ),
        ),
    };
    events.record(Event::new(now, severity, kind::ACTION, message).on_device(device));
}
