//! Config reload without a restart: on SIGHUP, on a change of the config file, and on `agentctl reload`.
//!
//! A reload stops the loops of the old config (collectors, probes, the log thread, hooks) and starts those
//! of the new one on the same state: the device engine, the collectors' counters, the journal and the
//! actions thread (with its throttle bookkeeping and saved originals) carry over. The reload is answered
//! only once the actions thread has put the machine in line with the new config (throttles released when
//! actions go off or to dry run, moved when a ladder's files moved). A config that does not load is
//! rejected with its FILE:LINE:COL errors and the old one keeps running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use config::Config;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::cli::Cli;
use crate::app::loading::{ConfigLoadError, ConfigSource};
use crate::control::{Live, ReloadRequest};
use crate::effects::actions::{Actions, ActionsMode, RECONFIGURE_TIMEOUT};
use crate::effects::events::Events;
use crate::effects::journal::{Event, Severity, kind};
use crate::model::evidence::{AgentNews, Evidence, EvidenceTx};
use crate::publish::state::AgentState;
use crate::sources::logwatch::{LogHandle, LogSources, LogThread};
use crate::sources::schedule;

/// How long the old loops get to stop before the new ones start regardless.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Editors write a file in several steps; wait for them to finish before reading it.
const SETTLE: Duration = Duration::from_millis(300);

/// Everything shared by all generations of loops.
pub struct Shared {
    pub state: Arc<AgentState>,
    pub events: Arc<Events>,
    pub actions: Actions,
    /// To the device model's owner, which outlives every generation.
    pub evidence: EvidenceTx,
    pub dry_run: bool,
}

/// The loops of one config.
pub struct Generation {
    pub config: Arc<Config>,
    token: CancellationToken,
    tasks: JoinSet<()>,
    log_thread: Option<LogThread>,
    pub logs: LogHandle,
}

impl Generation {
    pub fn start(
        config: Arc<Config>,
        previous_logs: LogSources,
        shared: &Shared,
        shutdown: &CancellationToken,
    ) -> Self {
        let token = shutdown.child_token();
        let mut tasks = JoinSet::new();
        let budget = crate::app::fdlimit::apply(crate::app::fdlimit::Wanted::from_config(&config));
        shared.state.open_files.set_limit(budget.open_files);
        let per_address = usize::try_from(config.http.max_connections_per_address).unwrap_or(usize::MAX);
        shared.state.http_connections.set_caps(budget.http_connections, per_address);
        let running = schedule::spawn_loops(
            &config,
            &shared.evidence,
            previous_logs,
            schedule::Carried {
                open_files: Arc::clone(&shared.state.open_files),
                scp: shared.state.snapshot().spinnaker.scp,
            },
            &token,
            &mut tasks,
        );
        let active = shared.actions.active();
        crate::app::hooks::spawn(
            if active { config.actions.hooks.clone() } else { Vec::new() },
            config.actions.enabled && !(shared.dry_run || config.actions.dry_run),
            Arc::clone(&shared.state),
            Arc::clone(&shared.events),
            token.clone(),
        );
        crate::kube::spawn(
            &config,
            crate::kube::Context {
                state: Arc::clone(&shared.state),
                events: Arc::clone(&shared.events),
                evidence: shared.evidence.clone(),
            },
            &token,
            &mut tasks,
        );
        Generation { config, token, tasks, log_thread: running.log_thread, logs: running.logs }
    }

    /// Stops this generation's loops; returns its log sources for the next one.
    pub async fn stop(mut self) -> LogSources {
        self.token.cancel();
        let tasks = &mut self.tasks;
        if tokio::time::timeout(STOP_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("some loops of the old config did not stop within {STOP_TIMEOUT:?}");
        }
        let logs = self.logs;
        match self.log_thread.take() {
            Some(thread) => {
                let recent = logs.clone();
                tokio::task::spawn_blocking(move || thread.join(&logs)).await.unwrap_or_else(|_| recent.into_sources())
            }
            None => logs.into_sources(),
        }
    }
}

/// Settings a running agent cannot change: they need a restart.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push("listen");
    }
    if old.socket != new.socket {
        out.push("socket");
    }
    if old.state_dir != new.state_dir {
        out.push("state_dir");
    }
    if old.control != new.control {
        out.push("control.group");
    }
    out
}

/// How long reading and checking the new config may take. The read itself cannot hang on a FIFO or a
/// device (those are refused), but a file on a stalled network filesystem could.
const LOAD_DEADLINE: Duration = Duration::from_secs(5);

/// Reads and checks the config again (with the command line's overrides) on a blocking thread, within
/// [`LOAD_DEADLINE`]. Errors leave out every value of the file: they go to the log, the journal and the
/// control socket.
async fn load(cli: &Cli) -> Result<Config, ReloadError> {
    let cli = cli.clone();
    let read = tokio::task::spawn_blocking(move || crate::app::loading::load_config(&cli));
    // The same lookup as at start: --config, else the default file if present, else nothing to reload.
    match tokio::time::timeout(LOAD_DEADLINE, read).await {
        Err(_) => Err(ReloadError::Slow(LOAD_DEADLINE)),
        Ok(Err(e)) => Err(ReloadError::Task(e)),
        Ok(Ok(Ok((_, ConfigSource::Embedded)))) => Err(ReloadError::Embedded),
        Ok(Ok(Ok((config, _)))) => Ok(config),
        Ok(Ok(Err(e))) => Err(ReloadError::Invalid(e)),
    }
}

/// Why a reload left the running config in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the config took longer than {}s; the read was abandoned", .0.as_secs())]
    Slow(Duration),
    #[error("reading the config failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("no config file to reload: the agent runs on the embedded default")]
    Embedded,
    #[error(transparent)]
    Invalid(ConfigLoadError),
    #[error("the agent is shutting down")]
    ShuttingDown,
}

/// Loads the config again and, if it is valid, switches `current` to it. Cancel-safe for shutdown: if the
/// future is dropped while the old loops are being stopped, `current` is left empty and the shutdown
/// token stops whatever is still running.
pub async fn reload(
    cli: &Cli,
    current: &mut Option<Generation>,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> Result<String, ReloadError> {
    let loaded = load(cli).await;
    let now = SystemTime::now();
    let new = match loaded {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("config reload rejected, keeping the running config:\n{e}");
            shared.evidence.send(Evidence::Agent(AgentNews::Reloaded { successful: false }));
            shared.evidence.flush().await;
            let message = format!("config reload rejected, the running config is kept: {e}");
            shared.events.record(Event::new(now, Severity::Warning, kind::OPERATOR, message));
            return Err(e);
        }
    };
    let Some(old) = current.take() else {
        return Err(ReloadError::ShuttingDown);
    };
    let restart = needs_restart(&old.config, &new);
    let logs = old.stop().await;
    let config = Arc::new(new);
    let reconfigured = Arc::clone(&config);
    let decides = ActionsMode::of(config.actions.enabled, shared.dry_run || config.actions.dry_run).decides();
    let ended = shared
        .evidence
        .run(move |engine, now, wall| {
            engine.reconfigure(&reconfigured, now, wall);
            let ended = if decides { Vec::new() } else { engine.end_manual_throttles() };
            (ended, Vec::new())
        })
        .await
        .unwrap_or_default();
    for device in ended {
        let message = "manual throttle ended: actions are disabled by the reloaded config".to_owned();
        shared.events.record(Event::new(now, Severity::Info, kind::OPERATOR, message).on_device(&device));
    }
    let new = config;
    shared.state.history.configure(crate::model::history::HistoryLimits::of(&new), SystemTime::now());
    // Asked before the new loops start (their hooks follow the mode asked for), waited for after: the
    // answer to the reload comes once the machine is in line with the new config (a throttle released
    // when actions go off, moved when its target moved), while collection goes on.
    let applying = shared.actions.reconfigure(&new, shared.dry_run);
    let settings = schedule::enabled(&new);
    let collectors: Vec<_> = settings.iter().map(|s| (s.kind, s.interval, s.timeout)).collect();
    shared.evidence.send(Evidence::Collectors(collectors));
    let generation = Generation::start(new, logs, shared, shutdown);
    shared.evidence.send(Evidence::Agent(AgentNews::Reloaded { successful: true }));
    let mut message = format!("config reloaded: {} device(s) declared", generation.config.devices.len());
    *current = Some(generation);
    let actions = match applying {
        Ok(pending) => pending.wait(RECONFIGURE_TIMEOUT).await,
        Err(e) => Err(e),
    };
    // Decided and published now, so that status right after the answer shows the levels in force.
    shared.evidence.flush().await;
    match actions {
        Ok(done) => message.push_str(&format!("; {done}")),
        Err(e) => {
            tracing::error!("actions after the reload: {e}");
            message.push_str(&format!("; actions: {e}"));
        }
    }
    if !restart.is_empty() {
        message.push_str(&format!("; {} change(s) take effect at the next restart", restart.join(", ")));
    }
    tracing::info!("{message}");
    shared.events.record(Event::new(now, Severity::Info, kind::OPERATOR, message.clone()));
    Ok(message)
}

/// Watches the config file and asks for a reload when it changes. The directory is watched, not the file:
/// editors and config management replace files by renaming, which a watch on the file itself misses.
pub fn watch(path: Option<PathBuf>, reloads: mpsc::Sender<ReloadRequest>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let path = path?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    let name = path.file_name()?.to_owned();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
            && event.paths.iter().any(|p| p.file_name() == Some(&name))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch {} for changes; reload with SIGHUP or agentctl reload: {e}", path.display());
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!("cannot watch {} for changes; reload with SIGHUP or agentctl reload: {e}", dir.display());
        return None;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // One reload for a burst of events.
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let (reply, _) = tokio::sync::oneshot::channel();
            if reloads.send(reply).await.is_err() {
                break;
            }
        }
    });
    Some(watcher)
}

/// What the control socket sees of a generation.
pub fn live(generation: &Generation, config_path: Option<PathBuf>, evidence: &EvidenceTx) -> Live {
    Live {
        config: Arc::clone(&generation.config),
        config_path,
        evidence: evidence.clone(),
        logs: generation.logs.clone(),
    }
}
