//! One collection loop per enabled collector, each on its own interval.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use config::{CollectorKind, Config};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::effects::actions::Actions;
use crate::effects::actions::reconnect::Decision;
use crate::effects::journal::{Event, Severity, kind};
use crate::model::DeviceEngine;
use crate::model::events::Events;
use crate::model::operator::Expired;
use crate::publish::state::AgentState;
use crate::sources::collect::Supervisor;
use crate::sources::logwatch::{LogHandle, LogSources, LogThread};

/// The enabled collectors with their interval and timeout, in report order.
pub fn enabled(config: &Config) -> Vec<config::CollectorSettings> {
    CollectorKind::ALL.iter().map(|k| config.collector(*k)).filter(|s| s.enabled).collect()
}

/// The log thread of running loops: its handle for the control socket, and the thread to join on reload.
pub struct Running {
    pub logs: LogHandle,
    pub log_thread: Option<LogThread>,
}

/// Starts the collection, probe and log loops of one config; they stop when `shutdown` is cancelled. The
/// engine outlives them (a reload starts new loops on the same engine), and so do the log sources.
#[allow(clippy::too_many_arguments)]
pub fn spawn_loops(
    config: &Config,
    engine: &Arc<Mutex<DeviceEngine>>,
    previous_logs: LogSources,
    state: &Arc<AgentState>,
    events: &Arc<Events>,
    actions: &Actions,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Running {
    let sysfs_root: &Path = &config.sysfs_root;
    evaluate_devices(engine, state, events, actions);
    crate::sources::probing::spawn(config, engine, state, events, shutdown, tasks);
    crate::sources::spinnaker::spawn(config, engine, state, events, actions, shutdown, tasks);
    let (logs, log_thread) = crate::sources::logwatch::spawn(config, previous_logs, engine, state, events, shutdown);
    for settings in enabled(config) {
        let engine = Arc::clone(engine);
        let events = Arc::clone(events);
        let actions = actions.clone();
        let mut supervisor = Supervisor::new(settings, sysfs_root);
        let state = Arc::clone(state);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let kind = supervisor.settings().kind;
            let mut ticks = tokio::time::interval(supervisor.settings().interval);
            // After a slow round, wait a full interval rather than firing a burst of catch-up rounds.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut last_success: Option<bool> = None;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = shutdown.cancelled() => break,
                }
                let outcome = tokio::select! {
                    o = supervisor.collect() => o,
                    _ = shutdown.cancelled() => break,
                };
                state.record(kind, outcome, supervisor.stuck_threads(), supervisor.quarantined());
                evaluate_devices(&engine, &state, &events, &actions);
                // Log changes, not every failed round: a collector failing every 5 s is one line.
                let snap = state.snapshot();
                if let Some(c) = snap.collectors.get(&kind) {
                    match (c.success, last_success) {
                        (false, Some(true) | None) => {
                            tracing::warn!(
                                collector = kind.name(),
                                "collector failing: {}",
                                c.error.as_deref().unwrap_or("unknown")
                            )
                        }
                        (true, Some(false)) => tracing::info!(collector = kind.name(), "collector recovered"),
                        _ => {}
                    }
                    last_success = Some(c.success);
                }
            }
        });
    }
    Running { logs, log_thread }
}

fn reconnect_decision(device: &str, decision: Decision, actions: &Actions, events: &Events, now: SystemTime) {
    let (severity, message) = match decision {
        Decision::Attempt { step } => {
            actions.reconnect(device, &step);
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

/// Re-evaluates every device against the latest snapshot and publishes the result. Cheap (no I/O), so it
/// runs after every collection, and after an operator's change.
pub fn evaluate_devices(engine: &Mutex<DeviceEngine>, state: &AgentState, events: &Events, actions: &Actions) {
    let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
    if !engine.has_work() {
        return;
    }
    let now = SystemTime::now();
    for (device, expired) in engine.expire_overrides(now) {
        let message = match expired {
            Expired::Maintenance => "maintenance ended (its time ran out)".to_owned(),
            Expired::Throttle { level } => {
                format!("manual throttle at level {level} ended (its time ran out); automatic throttling resumes")
            }
        };
        events.record(Event::new(now, Severity::Info, kind::OPERATOR, message).on_device(&device));
    }
    let changes = engine.evaluate(&state.snapshot(), Instant::now(), now);
    for change in &changes {
        events.condition_changed(change, now);
    }
    if actions.active() {
        // Decided here, applied in order on the actions thread: the async side never writes.
        for (device, level) in engine.throttle_requests(|d| actions.level(d), Instant::now()) {
            actions.set_level(&device, level);
        }
        for (device, decision) in engine.reconnect_decisions(Instant::now(), now) {
            reconnect_decision(&device, decision, actions, events, now);
        }
    }
    state.publish_devices(engine.views(), events.counts());
    state.publish_throttle(actions.views());
}
