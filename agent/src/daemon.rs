//! The daemon's lifecycle: load config, start collection loops and the HTTP endpoint, stop on SIGTERM or
//! SIGINT within two seconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use config::Config;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::cli::Cli;
use crate::events::Events;
use crate::http::{self, Http};
use crate::schedule;
use crate::state::AgentState;

/// Where the config came from, for the startup log line.
#[derive(Debug)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

/// Loads the config named on the command line, or the default file if present, or the embedded default;
/// then applies command-line overrides.
pub fn load_config(cli: &Cli) -> anyhow::Result<(Config, ConfigSource)> {
    let default_file = Path::new(config::DEFAULT_CONFIG_PATH);
    let (mut config, source) = match &cli.config {
        Some(path) => (config::load_file(path)?, ConfigSource::File(path.clone())),
        None if default_file.exists() => (config::load_file(default_file)?, ConfigSource::File(default_file.into())),
        None => (Config::default(), ConfigSource::Embedded),
    };
    if let Some(v) = cli.listen {
        config.listen = v;
    }
    if let Some(v) = &cli.sysfs_root {
        config.sysfs_root = v.clone();
    }
    if let Some(v) = &cli.state_dir {
        config.state_dir = v.clone();
    }
    if let Some(v) = &cli.socket {
        config.socket = v.clone();
    }
    Ok((config, source))
}

/// Raises the open-file soft limit to the hard limit: attribute files are kept open between reads, and a
/// host with many sensors needs more than the usual 1024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::debug!("could not raise RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// One malloc arena instead of glibc's default of one per thread and core: the agent's threads allocate
/// little and briefly, and per-thread arenas cost it a third of its resident memory in fragmentation
/// (13.8 -> 10.6 MB peak on the large benchmark tree). Must run before any thread is started.
pub fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

pub async fn run(config: Config, source: ConfigSource, dry_run: bool) -> anyhow::Result<()> {
    raise_fd_limit();
    let settings = schedule::enabled(&config);
    let state = AgentState::new(settings.iter().map(|s| (s.kind, s.interval, s.timeout)));
    let listener = http::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        version = crate::exposition::VERSION,
        revision = crate::exposition::REVISION,
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
    let actions = Actions::start(&config, dry_run, Arc::clone(&events));
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    schedule::spawn_loops(&config, &config.sysfs_root, &state, &events, &actions, &shutdown, &mut tasks);
    crate::actions::hooks::spawn(
        if actions.active { config.actions.hooks.clone() } else { Vec::new() },
        config.actions.enabled && !(dry_run || config.actions.dry_run),
        Arc::clone(&state),
        Arc::clone(&events),
        shutdown.clone(),
    );
    let notifier = crate::sdnotify::spawn(Arc::clone(&state), shutdown.clone());
    let http = Http::new(Arc::clone(&state), Arc::clone(&events));
    let server = tokio::spawn(http::serve(listener, http, shutdown.clone()));

    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{which} received, shutting down");
    if let Some(n) = &notifier {
        n.notify("STOPPING=1");
    }
    shutdown.cancel();
    // Collection loops stop at their next await; workers blocked in the kernel are left behind and end
    // with the process.
    let _ =
        tokio::time::timeout(Duration::from_millis(500), async { while tasks.join_next().await.is_some() {} }).await;
    let _ = tokio::time::timeout(Duration::from_millis(700), server).await;
    // Throttled devices get their original limits back before the agent goes.
    let restoring = actions.clone();
    let _ = tokio::task::spawn_blocking(move || restoring.restore_all(Duration::from_millis(600))).await;
    // Events of the last moments are the ones an incident review wants.
    let _ = tokio::time::timeout(Duration::from_millis(300), events.flush()).await;
    tracing::info!("stopped");
    Ok(())
}
