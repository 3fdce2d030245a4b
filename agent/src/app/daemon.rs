//! The daemon's lifecycle: load config, start collection loops and the HTTP endpoint, stop on SIGTERM or
//! SIGINT within two seconds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use anyhow::Context;
use config::Config;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::cli::Cli;
use crate::app::loading::ConfigSource;
use crate::app::owner::{self, ActionsLink, Effects};
use crate::app::reload::{self, Generation, Shared};
use crate::control::peer::Authorizer;
use crate::control::{self, Control, ReloadRequest};
use crate::effects::actions::Actions;
use crate::effects::diagnostics::DiagnosticsRunner;
use crate::effects::events::Events;
use crate::model::DeviceEngine;
use crate::publish::http::{self, Http};
use crate::publish::state::AgentState;
use crate::publish::webconfig::WebConfig;
use crate::sources::logwatch::LogSources;
use crate::sources::schedule;

/// Allocator tuning for a long-running daemon whose big allocations are short-lived. Must run before any
/// thread is started.
/// - One malloc arena instead of glibc's default of one per thread and core: the agent's threads allocate
///   little and briefly, and per-thread arenas cost it a third of its resident memory in fragmentation
///   (13.8 -> 10.6 MB peak on the large benchmark tree).
/// - Blocks of 64 KiB and more (an encoded scrape, a family's samples) are mapped and unmapped on their
///   own. glibc's default threshold rises to the largest block freed, after which each encode's buffers
///   were carved from the heap and left holes the next round could not always reuse; with a fixed
///   threshold the heap holds only small, long-lived things (0.4-0.5 MiB less resident memory on the
///   benchmark tree, at no measurable CPU cost: docs/performance.md).
pub fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Runs until SIGTERM or SIGINT, or until `stop` is cancelled (the demo does when its output is gone).
pub async fn run(cli: Cli, config: Config, source: ConfigSource, stop: CancellationToken) -> anyhow::Result<()> {
    let dry_run = cli.dry_run;
    // First of all: a SIGTERM that arrives while the agent starts (systemd stopping it, a test done with
    // it) must take the orderly path that restores throttled devices, not the default action that kills.
    let mut signals = Signals::install()?;
    // Before anything listens: a broken web config must not leave the endpoint open or half set up.
    let web = Arc::new(match cli.web_config.as_deref() {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    });
    let settings = schedule::enabled(&config);
    let state = AgentState::new(settings.iter().map(|s| (s.kind, s.interval, s.timeout)));
    state.history.configure(crate::model::history::HistoryLimits::of(&config), std::time::SystemTime::now());
    // Pre-initialised before anything listens, so that every scrape has every reason, from 0.
    state.publish_control_refused(crate::control::refusals::Refusals::default().totals());
    let listener = http::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (choose another address with --listen)", config.listen))?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        version = crate::publish::exposition::VERSION,
        revision = crate::publish::exposition::REVISION,
        config = ?source,
        sysfs_root = %config.sysfs_root.display(),
        listen = %local,
        collectors = ?settings.iter().map(|s| s.kind.name()).collect::<Vec<_>>(),
        "accel-agent started"
    );

    let state_dir = config.state_dir.clone();
    let events = Arc::new(
        tokio::task::spawn_blocking(move || Events::open(&state_dir))
            .await
            .unwrap_or_else(|e| Events::without_journal(format!("opening the journal failed: {e}"))),
    );
    let (evidence, evidence_rx) = crate::model::evidence::channel();
    let actions = Actions::start(
        &config,
        dry_run,
        Arc::clone(&events),
        Arc::new(ActionsLink { state: Arc::clone(&state), events: Arc::clone(&events), evidence: evidence.clone() }),
    );
    // The control socket is bound before collection starts, so that by the time the agent says it is
    // ready (/-/ready, READY=1 after the first collection) agentctl can connect; connections wait in the
    // backlog until the control server below serves them.
    let (auth, control_socket) = bind_control_socket(&config);
    let shutdown = CancellationToken::new();
    // A journal that would not open (a full disk, a blocked state directory) is tried again until it does.
    tokio::spawn(Arc::clone(&events).keep_opening(shutdown.clone()));
    let engine = DeviceEngine::new(&config, Instant::now(), SystemTime::now());
    let effects = Effects { state: Arc::clone(&state), events: Arc::clone(&events), actions: actions.clone() };
    let runner = DiagnosticsRunner::new(evidence.clone(), shutdown.clone());
    let owner = tokio::spawn(owner::run_with(engine, evidence_rx, effects, Some(runner), shutdown.clone()));
    let shared =
        Shared { state: Arc::clone(&state), events: Arc::clone(&events), actions: actions.clone(), evidence, dry_run };
    let config = Arc::new(config);
    let generation = Generation::start(Arc::clone(&config), LogSources::default(), &shared, &shutdown);
    let notifier = crate::app::sdnotify::spawn(Arc::clone(&state), shutdown.clone());
    let http = Http::new(Arc::clone(&state), Arc::clone(&events));
    let server = tokio::spawn(http::serve(listener, Arc::clone(&http), web, shutdown.clone()));

    let config_path = match &source {
        ConfigSource::File(p) => Some(p.clone()),
        ConfigSource::Embedded => None,
    };
    let (reload_tx, mut reloads) = mpsc::channel::<ReloadRequest>(8);
    let _watcher = reload::watch(config_path.clone(), reload_tx.clone());
    let control = Arc::new(Control {
        http,
        state: Arc::clone(&state),
        events: Arc::clone(&events),
        actions: actions.clone(),
        live: ArcSwap::from_pointee(reload::live(&generation, config_path.clone(), &shared.evidence)),
        auth: auth.clone(),
        reload: reload_tx,
        refusals: Default::default(),
    });
    let control_server = control_socket.map(|socket| {
        tracing::info!(socket = %config.socket.display(), group = %auth.group, "control socket ready");
        tokio::spawn(control::serve(socket, Arc::clone(&control), shutdown.clone()))
    });

    let mut current = Some(generation);
    let which = {
        let reloading = Reloading { cli: &cli, shared: &shared, shutdown: &shutdown, control: &control, config_path };
        reloading.until_stopped(&mut signals, &stop, &mut reloads, &mut current).await
    };
    tracing::info!("{which} received, shutting down");
    if let Some(n) = &notifier {
        n.notify("STOPPING=1");
    }
    shutdown.cancel();
    wind_down(current, server, owner, control_server).await;
    restore_and_flush(&actions, &events).await;
    tracing::info!("stopped");
    Ok(())
}

/// The signals that end or reload the agent, installed first of all.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?,
        })
    }
}

/// Who may use the control socket, and the socket, bound (None: it could not be; the metrics endpoint is
/// the agent's first job, and it goes on without agentctl).
fn bind_control_socket(config: &Config) -> (Authorizer, Option<control::socket::ControlSocket>) {
    let auth = Authorizer::resolve(&config.control.group);
    if auth.gid.is_none() {
        tracing::warn!(group = %auth.group, "control group not found on this host: only root may change things with agentctl");
    }
    match control::socket::bind(&config.socket, auth.gid) {
        Ok(socket) => (auth, Some(socket)),
        Err(e) => {
            tracing::error!("{e}; agentctl will not reach this agent");
            (auth, None)
        }
    }
}

/// What a reload needs, for the time the agent runs.
struct Reloading<'a> {
    cli: &'a Cli,
    shared: &'a Shared,
    shutdown: &'a CancellationToken,
    control: &'a Control,
    config_path: Option<std::path::PathBuf>,
}

impl Reloading<'_> {
    /// Reloads on SIGHUP, a changed file or agentctl, until a signal or `stop` ends the agent; returns
    /// what ended it. The reload runs inside the select, so a signal that ends the agent is seen whatever
    /// the reload is doing (reading a file, stopping the old loops).
    async fn until_stopped(
        &self,
        signals: &mut Signals,
        stop: &CancellationToken,
        reloads: &mut mpsc::Receiver<ReloadRequest>,
        current: &mut Option<Generation>,
    ) -> &'static str {
        loop {
            let reply = tokio::select! {
                _ = signals.term.recv() => break "SIGTERM",
                _ = signals.int.recv() => break "SIGINT",
                _ = stop.cancelled() => break "stop request",
                _ = signals.hup.recv() => {
                    tracing::info!("SIGHUP received, reloading the config");
                    None
                }
                r = reloads.recv() => r,
            };
            let outcome = tokio::select! {
                _ = signals.term.recv() => break "SIGTERM",
                _ = signals.int.recv() => break "SIGINT",
                outcome = async {
                    // The operator may have fixed what kept the journal from opening: try it now, not after the
                    // backoff, and before the reload, so that its event is kept.
                    self.shared.events.retry_now().await;
                    reload::reload(self.cli, current, self.shared, self.shutdown).await
                } => outcome,
            };
            if let Some(generation) = current.as_ref() {
                self.control.live.store(Arc::new(reload::live(
                    generation,
                    self.config_path.clone(),
                    &self.shared.evidence,
                )));
            }
            if let Some(reply) = reply {
                let _ = reply.send(outcome.map_err(Into::into));
            }
        }
    }
}

/// Stops the collection loops and both servers within one budget. Collection loops stop at their next
/// await; workers blocked in the kernel are left behind and end with the process.
async fn wind_down(
    current: Option<Generation>,
    server: tokio::task::JoinHandle<()>,
    owner: tokio::task::JoinHandle<()>,
    control_server: Option<tokio::task::JoinHandle<()>>,
) {
    let _ = tokio::time::timeout(Duration::from_millis(700), async {
        tokio::join!(
            tokio::time::timeout(Duration::from_millis(500), async {
                if let Some(generation) = current {
                    generation.stop().await;
                }
            }),
            server,
            owner,
            async {
                if let Some(c) = control_server {
                    let _ = c.await;
                }
            }
        )
    })
    .await;
}

/// Throttled devices get their original limits back before the agent goes, and the events of the last
/// moments, the ones an incident review wants, reach the journal.
async fn restore_and_flush(actions: &Actions, events: &Events) {
    let restoring = actions.clone();
    let _ = tokio::task::spawn_blocking(move || restoring.restore_all(Duration::from_millis(600))).await;
    let _ = tokio::time::timeout(Duration::from_millis(300), events.flush()).await;
}
