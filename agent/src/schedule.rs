//! One collection loop per enabled collector, each on its own interval.

use std::path::Path;
use std::sync::Arc;

use config::{CollectorKind, Config};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::collect::Supervisor;
use crate::state::AgentState;

/// The enabled collectors with their interval and timeout, in report order.
pub fn enabled(config: &Config) -> Vec<config::CollectorSettings> {
    CollectorKind::ALL.iter().map(|k| config.collector(*k)).filter(|s| s.enabled).collect()
}

/// Starts the collection loops; they stop when `shutdown` is cancelled.
pub fn spawn_loops(
    config: &Config,
    sysfs_root: &Path,
    state: &Arc<AgentState>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    for settings in enabled(config) {
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
}
