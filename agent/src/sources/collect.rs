//! Running a host collector with a deadline.
//!
//! Each collector lives on its own OS thread (sysfs reads block in the kernel and cannot be cancelled).
//! The async side sends it a request and waits at most the collector's timeout. When the deadline passes,
//! the worker is abandoned: the file it is stuck on is quarantined, and the next collection runs on a fresh
//! worker that skips that file. A stuck thread is leaked until its syscall returns; their number is
//! capped so a badly broken machine cannot make the agent spawn threads without bound.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use collectors::HostCollector;
use collectors::HostReadings;
use collectors::sysfs::{OpenFiles, Quarantine, ReadFailure, ReadStats, ReadWatch, SysfsIo};
use config::CollectorSettings;
use tokio::sync::oneshot;

/// Stuck threads one collector may leave behind before it stops starting new workers.
pub const MAX_STUCK_THREADS: usize = 8;

pub use crate::model::evidence::{CollectError, Outcome};

type Reply = oneshot::Sender<(Result<HostReadings, CollectError>, ReadStats, Duration)>;

/// A request for one collection: when it started (readers time their rediscovery by it) and where to
/// send the result.
type Request = (Instant, Reply);

struct Worker {
    requests: SyncSender<Request>,
    watch: Arc<ReadWatch>,
}

/// Owns one collector's worker thread and its quarantine.
pub struct Supervisor {
    settings: CollectorSettings,
    sysfs_root: PathBuf,
    quarantine: Arc<Quarantine>,
    /// The open-files budget shared with every other collector.
    open_files: Arc<OpenFiles>,
    worker: Option<Worker>,
}

impl Supervisor {
    pub fn new(settings: CollectorSettings, sysfs_root: &Path, open_files: Arc<OpenFiles>) -> Self {
        Supervisor {
            settings,
            sysfs_root: sysfs_root.to_owned(),
            quarantine: Quarantine::new(),
            open_files,
            worker: None,
        }
    }

    pub fn settings(&self) -> &CollectorSettings {
        &self.settings
    }

    /// Threads of this collector still blocked in a syscall.
    pub fn stuck_threads(&self) -> usize {
        self.quarantine.stuck_threads()
    }

    /// Files skipped because a read of them hung and they have not come back.
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Runs one collection, waiting at most the configured timeout.
    pub async fn collect(&mut self) -> Outcome {
        let started = Instant::now();
        self.quarantine.refresh();
        let failed = |e: CollectError, stats: ReadStats| Outcome { result: Err(e), stats, duration: started.elapsed() };
        let (tx, rx) = oneshot::channel();
        let mut request = Some(tx);
        // A worker whose thread died (after a panic) is replaced once.
        for _ in 0..2 {
            if self.worker.is_none() {
                let stuck = self.quarantine.stuck_threads();
                if stuck >= MAX_STUCK_THREADS {
                    let mut stats = ReadStats::default();
                    stats.record(ReadFailure::Hung);
                    return failed(CollectError::TooManyStuck(stuck), stats);
                }
                self.worker = Some(self.spawn());
            }
            let worker = self.worker.as_ref().expect("worker was just ensured");
            match worker.requests.try_send((started, request.take().expect("request is sent once"))) {
                Ok(()) => break,
                Err(TrySendError::Disconnected((_, r)) | TrySendError::Full((_, r))) => {
                    request = Some(r);
                    self.worker = None;
                }
            }
        }
        if request.is_some() {
            return failed(CollectError::Panicked("worker thread could not be started".into()), ReadStats::default());
        }
        // `timeout` bounds each read, not the round: a round of many fast reads on a busy host may take
        // longer and is not hung. A round that never finishes without any read hanging (a bug, or a
        // starved machine) is cut off at `round_limit`.
        let timeout = self.settings.timeout;
        let round_limit = (timeout * 10).max(self.settings.interval);
        let watch = Arc::clone(&self.worker.as_ref().expect("worker is running").watch);
        let mut rx = rx;
        loop {
            let until_hung = watch
                .in_flight_since()
                .map_or(timeout, |since| (since + timeout).saturating_duration_since(Instant::now()));
            let wait = until_hung.max(Duration::from_millis(1)).min(round_limit.saturating_sub(started.elapsed()));
            match tokio::time::timeout(wait, &mut rx).await {
                Ok(Ok((result, stats, duration))) => return Outcome { result, stats, duration },
                Ok(Err(_)) => {
                    self.worker = None;
                    return failed(CollectError::Panicked("worker thread exited".into()), ReadStats::default());
                }
                Err(_) => {}
            }
            let hung = watch.in_flight_since().is_some_and(|since| since.elapsed() >= timeout);
            if !hung && started.elapsed() < round_limit {
                continue;
            }
            self.worker = None;
            let mut stats = ReadStats::default();
            stats.record(ReadFailure::Hung);
            return match watch.abandon(timeout) {
                Some(path) => {
                    tracing::warn!(
                        collector = self.settings.kind.name(),
                        path = %path.display(),
                        "read did not return within {timeout:?}; skipping the file until it answers or is replaced"
                    );
                    failed(CollectError::Hung { path: path.to_path_buf(), timeout }, stats)
                }
                None => {
                    tracing::warn!(
                        collector = self.settings.kind.name(),
                        "collection did not finish within {round_limit:?}"
                    );
                    failed(CollectError::TooSlow(round_limit), stats)
                }
            };
        }
    }

    fn spawn(&self) -> Worker {
        let (requests, inbox) = sync_channel::<Request>(1);
        let watch = ReadWatch::new(Arc::clone(&self.quarantine));
        let settings = self.settings.clone();
        let root = self.sysfs_root.clone();
        let thread_watch = Arc::clone(&watch);
        let open_files = Arc::clone(&self.open_files);
        let spawned = std::thread::Builder::new().name(format!("collect-{}", settings.kind.name())).spawn(move || {
            let mut io = SysfsIo::new(thread_watch)
                .with_open_files(open_files)
                .with_rediscover_every(settings.rediscover_interval);
            let mut collector = HostCollector::new(&settings, &root);
            // Ends when the supervisor drops the sender: after abandoning this worker, or at shutdown.
            while let Ok((requested, reply)) = inbox.recv() {
                io.begin(requested);
                let started = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(|| collector.collect(&mut io)));
                let stats = io.take_stats();
                let (result, panicked) = match result {
                    Ok(r) => (r.map_err(CollectError::from), false),
                    Err(p) => (Err(CollectError::Panicked(panic_message(&p))), true),
                };
                let _ = reply.send((result, stats, started.elapsed()));
                if panicked {
                    // The collector's state may be half-updated; let the supervisor start a fresh one.
                    break;
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(collector = self.settings.kind.name(), "cannot start worker thread: {e}");
        }
        Worker { requests, watch }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
