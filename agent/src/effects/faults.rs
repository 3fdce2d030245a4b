//! The agent's own trouble, counted and shown: `accel_agent_faults_total{kind}`, status, diagnose, the
//! log and the journal.
//!
//! A fault is never evidence about a device (the model leaves a device's evidence as it was when a probe
//! could not be run; see `collectors::fault`), so it must be loud where the agent is concerned instead:
//! a person has to learn that the agent could not do its job, and why.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub use collectors::fault::AgentFault;

use crate::effects::events::Events;
use crate::effects::journal::{Event, Severity, kind};

/// Faults of one kind closer together than this are one streak: the first is logged and journalled, the
/// rest are counted. A flood that lasts ten minutes is one WARN line, not ten thousand.
pub const STREAK_GAP: Duration = Duration::from_secs(60);

/// One fault: what could not be done, for want of what, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    pub fault: AgentFault,
    /// What the agent could not do, e.g. "probe sdk of loihi0".
    pub what: String,
    pub at: SystemTime,
}

/// What status and diagnose show.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultsView {
    /// Faults since start, by kind, every kind present.
    pub counts: Vec<(AgentFault, u64)>,
    /// The most recent fault.
    pub last: Option<FaultRecord>,
}

impl Default for FaultsView {
    /// Every kind at 0, so that `accel_agent_faults_total` is there from the first scrape.
    fn default() -> FaultsView {
        FaultsView { counts: AgentFault::ALL.iter().map(|f| (*f, 0)).collect(), last: None }
    }
}

impl FaultsView {
    /// The last fault, while it is recent enough to still matter (within one streak gap of `now`).
    pub fn current(&self, now: SystemTime) -> Option<&FaultRecord> {
        self.last.as_ref().filter(|r| now.duration_since(r.at).unwrap_or_default() < STREAK_GAP)
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    counts: [AtomicU64; AgentFault::ALL.len()],
    last: Mutex<Option<FaultRecord>>,
    /// When each kind's current streak last saw a fault.
    streaks: Mutex<[Option<SystemTime>; AgentFault::ALL.len()]>,
}

fn index(fault: AgentFault) -> usize {
    AgentFault::ALL.iter().position(|f| *f == fault).unwrap_or(0)
}

impl Faults {
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Counts a fault; the first of a streak is logged at WARN and journalled as an `agent_fault` event.
    pub fn record(&self, fault: AgentFault, what: &str, events: &Events, wall: SystemTime) {
        self.counts[index(fault)].fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(FaultRecord { fault, what: what.to_owned(), at: wall });
        let starts_streak = {
            let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
            let previous = streaks[index(fault)].replace(wall);
            previous.is_none_or(|p| wall.duration_since(p).unwrap_or_default() >= STREAK_GAP)
        };
        if !starts_streak {
            tracing::debug!(kind = fault.label(), "agent fault: {what} not done: {fault}");
            return;
        }
        let message = format!(
            "the agent is {fault}: {what} not done; this is the agent's own trouble, not the device's, so no \
             condition or action follows (further ones are counted in accel_agent_faults_total)"
        );
        tracing::warn!(kind = fault.label(), "{message}");
        events.record(Event::new(wall, Severity::Warning, kind::AGENT_FAULT, message));
    }

    pub fn view(&self) -> FaultsView {
        FaultsView {
            counts: AgentFault::ALL.iter().map(|f| (*f, self.counts[index(*f)].load(Ordering::Relaxed))).collect(),
            last: self.last.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_is_journalled_once_and_every_fault_counted() {
        let events = Events::without_journal("test".into());
        let faults = Faults::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for s in 0..30 {
            faults.record(AgentFault::Descriptors, "probe sdk of d0", &events, t0 + Duration::from_secs(s));
        }
        // A minute of quiet, then a new streak.
        faults.record(AgentFault::Descriptors, "hook page of d0", &events, t0 + Duration::from_secs(29 + 60));
        faults.record(AgentFault::Memory, "probe sdk of d0", &events, t0 + Duration::from_secs(90));
        let view = faults.view();
        let count = |k| view.counts.iter().find(|(f, _)| *f == k).map(|(_, n)| *n);
        assert_eq!(count(AgentFault::Descriptors), Some(31));
        assert_eq!(count(AgentFault::Memory), Some(1));
        assert_eq!(count(AgentFault::Disk), Some(0), "every kind is shown");
        let warnings: u64 = events.counts().iter().filter(|(_, s, _)| *s == Severity::Warning).map(|(_, _, n)| n).sum();
        assert_eq!(warnings, 3, "two descriptor streaks and one memory streak");
        let last = view.last.clone().expect("a last fault");
        assert_eq!((last.fault, last.what.as_str()), (AgentFault::Memory, "probe sdk of d0"));
        assert!(view.current(last.at + Duration::from_secs(59)).is_some());
        assert!(view.current(last.at + STREAK_GAP).is_none(), "an old fault is history, not current");
    }
}
