//! One collection loop per enabled collector, each on its own interval.

use std::path::Path;
use std::sync::Arc;

use config::{CollectorKind, Config};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::effects::events::Events;
use crate::model::evidence::{Evidence, EvidenceTx};
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

/// Starts the collection, probe and log loops of one config; they stop when `shutdown` is cancelled. Each
/// sends its evidence to the model's owner, which outlives them (a reload starts new loops that send to
/// the same owner), and so do the log sources.
pub fn spawn_loops(
    config: &Config,
    evidence: &EvidenceTx,
    previous_logs: LogSources,
    state: &Arc<AgentState>,
    events: &Arc<Events>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Running {
    let sysfs_root: &Path = &config.sysfs_root;
    evidence.send(Evidence::Readings);
    crate::sources::probing::spawn(config, evidence, events, shutdown, tasks);
    crate::sources::spinnaker::spawn(config, evidence, state, shutdown, tasks);
    let (logs, log_thread) = crate::sources::logwatch::spawn(config, previous_logs, evidence, events, shutdown);
    for settings in enabled(config) {
        let evidence = evidence.clone();
        let mut supervisor = Supervisor::new(settings, sysfs_root, Arc::clone(&state.open_files));
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
                evidence.send(Evidence::Readings);
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
