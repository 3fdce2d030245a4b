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
use super::spinnaker::SpinnakerSnapshot;
use crate::policy::mode::ActionsMode;

pub use super::host::HostEvidence;

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
    /// A diagnostic is over (passed, failed, or could not start).
    Diagnostic(super::diagnostics::Report),
    /// News of the agent itself, which the owner publishes with everything else.
    Agent(AgentNews),
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

/// What the rest of the agent tells the owner about the agent itself.
#[derive(Debug)]
pub enum AgentNews {
    /// A reload was tried: whether the new config took.
    Reloaded { successful: bool },
    /// The actions worker's mode in force, once the machine is in line with it.
    ActionsMode(ActionsMode),
    /// The actions worker stopped, and why: nothing is throttled, restored or reconnected any more.
    ActionsStopped(String),
    /// Control requests refused since start, by reason.
    ControlRefused(BTreeMap<&'static str, u64>),
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

impl Outcome {
    /// Reads of this round failed for want of the agent's own descriptors: the round says nothing about
    /// the devices (what could not be read is the agent's trouble, not theirs).
    pub fn agent_fault(&self) -> bool {
        use collectors::sysfs::ReadFailure;
        self.stats.get(ReadFailure::NoDescriptors) > 0
            || matches!(&self.result, Err(CollectError::Read(e)) if e.failure == ReadFailure::NoDescriptors)
    }
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
