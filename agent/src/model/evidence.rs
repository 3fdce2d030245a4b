//! What sources tell the one owner of the device model. Sources (host collectors, probes, log followers,
//! SpiNNaker pollers, the control socket) send evidence and never lock the model; the owner applies it in
//! arrival order and then decides (see `app::owner`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use collectors::HostReadings;
use collectors::sysfs::ReadStats;
use config::{CollectorKind, EventSeverity};
use tokio::sync::{mpsc, oneshot};

use super::engine::{ConditionChange, DeviceEngine, LogUpdate, ProbeResult};
use super::spinnaker::{BoardReading, SpinnakerSnapshot};

/// The host collectors' latest readings and the SpiNNaker pollers' latest boards: what devices bind.
/// It holds the published values themselves (shared, not copied), so the engine can keep the evidence it
/// last bound and tell, by identity, whether anything was published since.
#[derive(Debug, Default, Clone)]
pub struct HostEvidence {
    pub readings: BTreeMap<CollectorKind, Arc<HostReadings>>,
    pub spinnaker: Option<Arc<SpinnakerSnapshot>>,
}

impl HostEvidence {
    pub fn readings(&self, kind: CollectorKind) -> Option<&HostReadings> {
        self.readings.get(&kind).map(|r| &**r)
    }

    /// The board bound to `device`, by device id.
    pub fn board(&self, device: &str) -> Option<&BoardReading> {
        self.spinnaker.as_ref()?.boards.get(device)
    }

    /// Whether `kind`'s readings are the same publication in both, or absent in both.
    pub fn same_readings(&self, other: &HostEvidence, kind: CollectorKind) -> bool {
        same_publication(self.readings.get(&kind), other.readings.get(&kind))
    }

    /// Whether the SpiNNaker boards are the same poll in both.
    pub fn same_boards(&self, other: &HostEvidence) -> bool {
        same_publication(self.spinnaker.as_ref(), other.spinnaker.as_ref())
    }
}

/// The same publication (compared by identity, which is sound because both sides hold it alive), or
/// absent in both.
fn same_publication<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// An operator's request or a reload, run on the owner in order with the evidence; returns the condition
/// changes it caused (they are journalled like any other).
pub type Command = Box<dyn FnOnce(&mut DeviceEngine, Instant, SystemTime) -> Vec<ConditionChange> + Send>;

pub enum Evidence {
    /// A host collector's round: what it read (inside the outcome) and how the round went.
    Collected(CollectorRound),
    /// A SpiNNaker poll: every board and machine.
    Spinnaker(Arc<SpinnakerSnapshot>),
    /// A reload: the collectors now enabled, with their interval and timeout (the others' readings go).
    Collectors(Vec<(CollectorKind, Duration, Duration)>),
    Probe {
        device: String,
        result: ProbeResult,
    },
    /// What a device's log source read (None: no new lines or signals), and what it noted for the journal.
    Log {
        device: String,
        update: Option<LogUpdate>,
        notes: Vec<LogNote>,
    },
    Command(Command),
    /// Answered once everything sent before it has been decided and published.
    Flush(oneshot::Sender<()>),
}

/// Something a log source notes for the journal: a burst of matches of an `event` rule, or the source
/// becoming unreadable and readable again.
#[derive(Debug, Clone, PartialEq)]
pub struct LogNote {
    /// The log source it is about (its path, or "kmsg").
    pub source: String,
    pub severity: EventSeverity,
    pub about: LogNoteKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogNoteKind {
    /// Matches of a rule (the first of a burst, then one per window with the count).
    Match,
    /// The source is not a regular file any more, or is again.
    Source,
}

/// One host collector round, as its loop reports it.
#[derive(Debug)]
pub struct CollectorRound {
    pub kind: CollectorKind,
    pub outcome: Outcome,
    /// Worker threads stuck in the kernel after the round, and files skipped for an earlier hung read.
    pub stuck_threads: usize,
    pub quarantined: usize,
}

/// The sending side, one clone per source. Unbounded so that the log thread (not async) never blocks;
/// every source sends at most once per round of its own interval.
#[derive(Clone)]
pub struct EvidenceTx(mpsc::UnboundedSender<Evidence>);

pub type EvidenceRx = mpsc::UnboundedReceiver<Evidence>;

pub fn channel() -> (EvidenceTx, EvidenceRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    (EvidenceTx(tx), rx)
}

impl EvidenceTx {
    /// Sends evidence; false once the owner has stopped (shutdown).
    pub fn send(&self, evidence: Evidence) -> bool {
        self.0.send(evidence).is_ok()
    }

    /// Runs `f` on the model and waits until its effects are decided and published; None at shutdown.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DeviceEngine, Instant, SystemTime) -> (T, Vec<ConditionChange>) + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let command: Command = Box::new(move |engine, now, wall| {
            let (value, changes) = f(engine, now, wall);
            let _ = reply.send(value);
            changes
        });
        if !self.send(Evidence::Command(command)) {
            return None;
        }
        let value = answer.await.ok()?;
        self.flush().await;
        Some(value)
    }

    /// Waits until everything sent so far has been decided and published.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.send(Evidence::Flush(done)) {
            let _ = wait.await;
        }
    }
}

/// What one collection produced.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<HostReadings, CollectError>,
    /// Failed reads of this collection, by reason.
    pub stats: ReadStats,
    pub duration: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CollectError {
    #[error("{0}")]
    Read(#[from] collectors::sysfs::ReadError),
    #[error("a read of {} did not return within {timeout:?}; the file is skipped until it answers or is replaced", path.display())]
    Hung { path: PathBuf, timeout: Duration },
    #[error("the collection did not finish within {0:?} although no single read hung")]
    TooSlow(Duration),
    #[error("{0} reads are hung in the kernel; not starting another worker until one returns")]
    TooManyStuck(usize),
    #[error("collector panicked: {0}")]
    Panicked(String),
}
