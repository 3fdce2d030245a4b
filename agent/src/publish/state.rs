//! What the agent knows right now. Collection tasks publish into it; scrapes and pages read a consistent
//! snapshot without ever touching the hardware.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use collectors::HostReadings;
use collectors::sysfs::{OpenFiles, ReadFailure, ReadStats};
use config::CollectorKind;

use crate::effects::actions::{ActionsMode, ThrottleView};
use crate::effects::faults::{Faults, FaultsView};
use crate::effects::journal::Severity;
use crate::model::DeviceView;
use crate::model::evidence::{HostEvidence, Outcome};

/// The latest state of one collector.
#[derive(Debug, Clone, Default)]
pub struct CollectorStatus {
    /// The latest readings; None before the first collection and after a failed one (absent, not stale).
    pub readings: Option<Arc<HostReadings>>,
    /// Whether the last collection completed with every file read (a quarantined file counts as failure).
    pub success: bool,
    pub duration: Option<Duration>,
    pub last_success_unix: Option<f64>,
    /// Failed reads since start, by reason.
    pub read_errors: ReadStats,
    pub stuck_threads: usize,
    /// Why the last collection failed.
    pub error: Option<String>,
    pub collections: u64,
    /// Whether a collection ever returned readings.
    pub ever_read: bool,
    /// Failed rounds since the last one that returned readings.
    pub consecutive_failures: u32,
    /// When the collection loop last completed a round (monotonic), for /-/healthy.
    pub progress: Option<Instant>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Failed rounds after which a collector that never returned readings no longer holds up readiness.
pub const READY_AFTER_FAILURES: u32 = 3;

/// One consistent view of everything collected.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Bumped on every change; caches key on it.
    pub generation: u64,
    pub collectors: BTreeMap<CollectorKind, CollectorStatus>,
    /// Every device with its readings, conditions and state, as of the last evaluation.
    pub devices: Arc<Vec<DeviceView>>,
    /// Events recorded, by device ("" for host-wide) and severity.
    pub event_counts: Arc<Vec<(String, Severity, u64)>>,
    /// Events recorded since start that the journal does not hold (accel_events_dropped_total).
    pub events_dropped: u64,
    /// Throttle state of every device that has a throttle ladder.
    pub throttle: Arc<Vec<ThrottleView>>,
    pub reload: ReloadStatus,
    /// SpiNNaker boards and machines, as of the last BMP and spalloc poll.
    pub spinnaker: Arc<crate::model::spinnaker::SpinnakerSnapshot>,
    /// Why the actions thread stopped, once it has: nothing is written, restored or reconnected any more.
    pub actions_stopped: Option<Arc<str>>,
    /// The actions mode in force: published by the actions thread once the machine is in line with it
    /// (after a reload that turns actions off, once the originals are back).
    pub actions_mode: ActionsMode,
    /// Attribute files the collectors held open after the last collection, and their budget.
    pub open_files: OpenFilesView,
    /// The agent's own trouble, as of the last decision round (at most a second old).
    pub faults: FaultsView,
    /// Control requests refused since start, by reason (accel_control_refused_total); every reason from
    /// 0, published before anything listens.
    pub control_refused: Arc<BTreeMap<&'static str, u64>>,
    /// The HTTP connection cap and what was closed for it, as of the last collection.
    pub http_connections: HttpConnectionsView,
    /// Sources of evidence failing now (collectors, BMPs, spalloc servers, probes, logs), as the owner
    /// last judged them.
    pub sources_failing: Arc<Vec<crate::model::source_health::SourceFailing>>,
    /// Every configured maintenance window, open or not, as of the last decision round that changed one.
    pub windows: Arc<Vec<crate::model::window_set::WindowView>>,
}

/// accel_sysfs_open_files and its limit, as of the last collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenFilesView {
    pub open: usize,
    pub limit: usize,
}

/// Which cap made the HTTP server close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnCap {
    /// `[http] max_connections`, as the descriptor budget left it.
    Total,
    /// `[http] max_connections_per_address`.
    Address,
    /// The queue of logins waiting for bcrypt (answered 429).
    AuthQueue,
}

impl ConnCap {
    pub const ALL: [ConnCap; 3] = [ConnCap::Total, ConnCap::Address, ConnCap::AuthQueue];
    /// The caps an idle connection can be shed for.
    pub const SHEDDABLE: [ConnCap; 2] = [ConnCap::Total, ConnCap::Address];

    pub fn label(self) -> &'static str {
        match self {
            ConnCap::Total => "total",
            ConnCap::Address => "address",
            ConnCap::AuthQueue => "auth_queue",
        }
    }
}

/// The HTTP server's connection caps, set at start and on every reload (from `[http]` and the descriptor
/// budget), and the connections it closed for them.
#[derive(Debug)]
pub struct HttpConnections {
    max_total: AtomicUsize,
    max_per_address: AtomicUsize,
    /// New connections closed unserved, by cap.
    refused: [AtomicU64; 3],
    /// Idle connections closed to make room for a new one, by cap.
    shed: [AtomicU64; 3],
}

impl HttpConnections {
    fn new() -> Self {
        HttpConnections {
            max_total: AtomicUsize::new(config::DEFAULT_HTTP_MAX_CONNECTIONS as usize),
            max_per_address: AtomicUsize::new(config::DEFAULT_HTTP_MAX_CONNECTIONS_PER_ADDRESS as usize),
            refused: Default::default(),
            shed: Default::default(),
        }
    }

    pub fn set_caps(&self, total: usize, per_address: usize) {
        self.max_total.store(total.max(1), Ordering::Relaxed);
        self.max_per_address.store(per_address.max(1), Ordering::Relaxed);
    }

    /// (total, per address).
    pub fn caps(&self) -> (usize, usize) {
        (self.max_total.load(Ordering::Relaxed), self.max_per_address.load(Ordering::Relaxed))
    }

    pub fn count_refused(&self, cap: ConnCap) {
        self.refused[cap as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_shed(&self, cap: ConnCap, n: usize) {
        self.shed[cap as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn view(&self) -> HttpConnectionsView {
        HttpConnectionsView {
            limit: self.max_total.load(Ordering::Relaxed),
            refused: std::array::from_fn(|i| self.refused[i].load(Ordering::Relaxed)),
            shed: std::array::from_fn(|i| self.shed[i].load(Ordering::Relaxed)),
        }
    }
}

/// accel_http_connections_limit and the refused and shed counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpConnectionsView {
    pub limit: usize,
    refused: [u64; 3],
    shed: [u64; 3],
}

impl HttpConnectionsView {
    pub fn refused(&self, cap: ConnCap) -> u64 {
        self.refused[cap as usize]
    }

    pub fn shed(&self, cap: ConnCap) -> u64 {
        self.shed[cap as usize]
    }
}

/// The outcome of the last config load, for accel_config_last_reload_*.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReloadStatus {
    pub successful: bool,
    pub success_unix: f64,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Snapshot {
    /// Ready once every enabled collector has returned readings once. A collector that has failed
    /// [`READY_AFTER_FAILURES`] rounds in a row counts too: its failure is then a fact worth scraping,
    /// and an agent that never turned ready would not be scraped at all.
    pub fn ready(&self) -> bool {
        self.collectors.values().all(|c| c.ever_read || c.consecutive_failures >= READY_AFTER_FAILURES)
    }

    /// Collectors whose loops have not completed a round in time.
    pub fn stalled(&self, now: Instant, started: Instant) -> Vec<CollectorKind> {
        self.collectors
            .iter()
            .filter(|(_, c)| {
                // A round takes at most interval + timeout; allow two of them plus slack for a busy host.
                let limit = 2 * (c.interval + c.timeout) + Duration::from_secs(5);
                now.duration_since(c.progress.unwrap_or(started)) > limit
            })
            .map(|(k, _)| *k)
            .collect()
    }

    pub fn readings(&self, kind: CollectorKind) -> Option<&HostReadings> {
        self.collectors.get(&kind)?.readings.as_deref()
    }

    /// What devices bind: the collectors' latest readings and the SpiNNaker boards.
    pub fn host(&self) -> HostEvidence {
        HostEvidence {
            readings: self.collectors.iter().filter_map(|(k, c)| Some((*k, c.readings.clone()?))).collect(),
            spinnaker: Some(Arc::clone(&self.spinnaker)),
        }
    }
}

/// Shared, lock-free for readers.
#[derive(Debug)]
pub struct AgentState {
    snapshot: ArcSwap<Snapshot>,
    pub started: Instant,
    /// Attribute files the collectors keep open, against their budget (set at start and on reload).
    pub open_files: Arc<OpenFiles>,
    /// The agent's own trouble (out of descriptors, memory, processes, disk), counted apart from any
    /// device's: whoever meets it records it here.
    pub faults: Faults,
    /// The HTTP server's connection caps (set at start and on reload) and what it closed for them.
    pub http_connections: Arc<HttpConnections>,
    /// Each device's recent readings and changes: the owner writes it in its decision round, the
    /// pages and the history API read it.
    pub history: Arc<crate::model::history::History>,
}

impl AgentState {
    pub fn new(collectors: impl IntoIterator<Item = (CollectorKind, Duration, Duration)>) -> Arc<Self> {
        let mut snap = Snapshot::default();
        for (kind, interval, timeout) in collectors {
            snap.collectors.insert(kind, CollectorStatus { interval, timeout, ..Default::default() });
        }
        // The config read at startup is the first successful load.
        snap.reload = ReloadStatus { successful: true, success_unix: unix_now() };
        Arc::new(AgentState {
            snapshot: ArcSwap::from_pointee(snap),
            started: Instant::now(),
            open_files: OpenFiles::new(config::DEFAULT_MAX_OPEN_FILES as usize),
            faults: Faults::new(),
            http_connections: Arc::new(HttpConnections::new()),
            history: Arc::new(crate::model::history::History::default()),
        })
    }

    /// After a reload: collectors still enabled keep their history and counters, with the new interval and
    /// timeout; newly enabled ones start empty; disabled ones go.
    pub fn configure_collectors(&self, collectors: &[(CollectorKind, Duration, Duration)]) {
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            snap.collectors.retain(|k, _| collectors.iter().any(|(c, _, _)| c == k));
            for (kind, interval, timeout) in collectors {
                // A collector enabled just now has made no progress yet, and is not late either.
                let c = snap
                    .collectors
                    .entry(*kind)
                    .or_insert_with(|| CollectorStatus { progress: Some(Instant::now()), ..Default::default() });
                (c.interval, c.timeout) = (*interval, *timeout);
            }
            snap
        });
    }

    /// Records the outcome of a reload.
    pub fn record_reload(&self, successful: bool) {
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            snap.reload.successful = successful;
            if successful {
                snap.reload.success_unix = unix_now();
            }
            snap
        });
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Publishes the devices as the engine last evaluated them, with the event counts so far.
    pub fn publish_devices(
        &self,
        views: Vec<DeviceView>,
        event_counts: Vec<(String, Severity, u64)>,
        events_dropped: u64,
    ) {
        self.publish(Some(Arc::new(views)), Arc::new(event_counts), events_dropped);
    }

    /// One snapshot update for the devices (when given) and the event counts.
    fn publish(&self, views: Option<Arc<Vec<DeviceView>>>, counts: Arc<Vec<(String, Severity, u64)>>, dropped: u64) {
        let faults = self.faults.view();
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            if let Some(views) = &views {
                snap.devices = Arc::clone(views);
            }
            snap.event_counts = Arc::clone(&counts);
            snap.events_dropped = dropped;
            snap.faults = faults.clone();
            snap
        });
    }

    /// Publishes the event counts (and the agent's faults) alone, when they changed.
    pub fn publish_event_counts(&self, event_counts: Vec<(String, Severity, u64)>, events_dropped: u64) {
        let snap = self.snapshot();
        if *snap.event_counts == event_counts
            && snap.events_dropped == events_dropped
            && snap.faults == self.faults.view()
        {
            return;
        }
        self.publish(None, Arc::new(event_counts), events_dropped);
    }

    /// Publishes the totals of refused control requests, when they changed.
    pub fn publish_control_refused(&self, totals: BTreeMap<&'static str, u64>) {
        self.publish_part(totals, |s| &s.control_refused, |s| &mut s.control_refused);
    }

    /// Publishes the failing sources, when they changed.
    pub fn publish_sources_failing(&self, failing: Vec<crate::model::source_health::SourceFailing>) {
        self.publish_part(failing, |s| &s.sources_failing, |s| &mut s.sources_failing);
    }

    /// Publishes the maintenance windows, when they changed.
    pub fn publish_windows(&self, windows: Vec<crate::model::window_set::WindowView>) {
        self.publish_part(windows, |s| &s.windows, |s| &mut s.windows);
    }

    /// Replaces one part of the snapshot (`get` reads it, `set` the same field to write), unless it holds
    /// `value` already: then neither it nor the generation moves, so caches keyed on it stay valid.
    fn publish_part<T: PartialEq>(
        &self,
        value: T,
        get: fn(&Snapshot) -> &Arc<T>,
        set: fn(&mut Snapshot) -> &mut Arc<T>,
    ) {
        if **get(&self.snapshot()) == value {
            return;
        }
        let value = Arc::new(value);
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            *set(&mut snap) = Arc::clone(&value);
            snap
        });
    }

    /// Publishes a SpiNNaker poll.
    pub fn publish_spinnaker(&self, spinnaker: Arc<crate::model::spinnaker::SpinnakerSnapshot>) {
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            snap.spinnaker = Arc::clone(&spinnaker);
            snap
        });
    }

    /// Publishes the actions mode in force.
    pub fn publish_actions_mode(&self, mode: ActionsMode) {
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            snap.actions_mode = mode;
            snap
        });
    }

    /// Publishes that the actions thread stopped, and why.
    pub fn publish_actions_stopped(&self, why: String) {
        let why: Arc<str> = Arc::from(why);
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            snap.actions_stopped = Some(Arc::clone(&why));
            snap
        });
    }

    /// Publishes the throttle state (changed by the actions thread, published after each evaluation).
    pub fn publish_throttle(&self, views: Vec<ThrottleView>) {
        if *self.snapshot().throttle == views {
            return;
        }
        let views = Arc::new(views);
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            snap.throttle = Arc::clone(&views);
            snap
        });
    }

    /// Publishes the outcome of one collection and returns the readings published (none after a failed
    /// one). `quarantined` files count as unread: the collector is not successful while any of its files
    /// hangs.
    pub fn record(
        &self,
        kind: CollectorKind,
        outcome: Outcome,
        stuck_threads: usize,
        quarantined: usize,
    ) -> Option<Arc<HostReadings>> {
        let now_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let hung_files = outcome.stats.get(ReadFailure::Hung);
        let (readings, error) = match outcome.result {
            Ok(r) => (Some(Arc::new(r)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let skipped = (hung_files as usize).max(quarantined);
        let success = readings.is_some() && skipped == 0;
        let error = error.or_else(|| (skipped > 0).then(|| format!("{skipped} file(s) skipped: an earlier read hung")));
        self.snapshot.rcu(|old| {
            let mut snap = Snapshot::clone(old);
            snap.generation += 1;
            let c = snap.collectors.entry(kind).or_default();
            c.readings = readings.clone();
            c.success = success;
            c.duration = Some(outcome.duration);
            if success {
                c.last_success_unix = Some(now_unix);
            }
            c.read_errors.add(&outcome.stats);
            c.stuck_threads = stuck_threads;
            snap.open_files = OpenFilesView { open: self.open_files.open(), limit: self.open_files.limit() };
            snap.http_connections = self.http_connections.view();
            c.error = error.clone();
            c.collections += 1;
            if readings.is_some() {
                c.ever_read = true;
                c.consecutive_failures = 0;
            } else {
                c.consecutive_failures += 1;
            }
            c.progress = Some(Instant::now());
            snap
        });
        readings
    }
}
