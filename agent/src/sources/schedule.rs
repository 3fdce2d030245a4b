//! One collection loop per enabled collector, each on its own interval.

use std::path::Path;
use std::sync::Arc;

use collectors::spinnaker::ScpStats;
use collectors::sysfs::OpenFiles;
use config::{CollectorKind, Config};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::model::evidence::{CollectorRound, Evidence, EvidenceTx};
use crate::sources::collect::Supervisor;
use crate::sources::logwatch::{LogHandle, LogSources, LogThread};

/// The enabled collectors with their interval and timeout, in report order.
pub fn enabled(config: &Config) -> Vec<config::CollectorSettings> {
    CollectorKind::ALL.iter().map(|k| config.collector(*k)).filter(|s| s.enabled).collect()
}

/// What the loops of one config take over from the previous: the attribute files' budget, shared by
/// every collector, and the SCP counters (a reload is not a counter reset).
pub struct Carried {
    pub open_files: Arc<OpenFiles>,
    pub scp: ScpStats,
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
    carried: Carried,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Running {
    let sysfs_root: &Path = &config.sysfs_root;
    crate::sources::probing::spawn(config, evidence, shutdown, tasks);
    crate::sources::spinnaker::spawn(config, evidence, carried.scp, shutdown, tasks);
    let (logs, log_thread) = crate::sources::logwatch::spawn(config, previous_logs, evidence, shutdown);
    for settings in enabled(config) {
        let evidence = evidence.clone();
        let mut supervisor = Supervisor::new(settings, sysfs_root, Arc::clone(&carried.open_files));
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let kind = supervisor.settings().kind;
            let mut ticks = tokio::time::interval(supervisor.settings().interval);
            // After a slow round, wait a full interval rather than firing a burst of catch-up rounds.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = shutdown.cancelled() => break,
                }
                let outcome = tokio::select! {
                    o = supervisor.collect() => o,
                    _ = shutdown.cancelled() => break,
                };
                let (stuck_threads, quarantined) = (supervisor.stuck_threads(), supervisor.quarantined());
                evidence.send(Evidence::Collected(CollectorRound { kind, outcome, stuck_threads, quarantined }));
            }
        });
    }
    Running { logs, log_thread }
}
