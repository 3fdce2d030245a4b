//! What happened: condition changes (and later actions and probe streaks) as events, recorded in the
//! journal and counted for accel_events_total.
//!
//! A journal that cannot be opened (an unwritable state directory when run by hand, a damaged file) must
//! not stop the agent from monitoring: events are then counted and logged but not kept, and the reason is
//! reported once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use crate::effects::journal::{Event, EventFilter, Journal, JournalError, JournalWriter, Severity, kind};
use crate::model::health::Impact;
use crate::model::{ConditionChange, Status};

pub struct Events {
    journal: Option<Arc<Journal>>,
    writer: Option<JournalWriter>,
    /// (device or "", severity) -> events since the journal began (or since start without one).
    counts: Mutex<BTreeMap<(String, Severity), u64>>,
    /// Why there is no journal, for the landing page and the API.
    pub unavailable: Option<String>,
}

impl Events {
    /// Opens the journal under `state_dir`; on failure, runs without one.
    pub fn open(state_dir: &Path) -> Events {
        match Journal::open(Journal::path_in(state_dir)) {
            Ok(journal) => {
                let mut counts = BTreeMap::new();
                match journal.counts_by_device_severity() {
                    Ok(rows) => {
                        for (device, severity, n) in rows {
                            counts.insert((device.unwrap_or_default(), severity), n);
                        }
                    }
                    Err(e) => tracing::warn!("cannot read event counts: {e}"),
                }
                let writer = journal.writer();
                Events {
                    journal: Some(Arc::new(journal)),
                    writer: Some(writer),
                    counts: Mutex::new(counts),
                    unavailable: None,
                }
            }
            Err(e) => {
                tracing::warn!(
                    "event journal unavailable, events are counted and logged but not kept: {e} \
                     (run as root, or give a directory this user can write with --state-dir)"
                );
                Events::without_journal(e.to_string())
            }
        }
    }

    pub fn without_journal(reason: String) -> Events {
        Events { journal: None, writer: None, counts: Mutex::new(BTreeMap::new()), unavailable: Some(reason) }
    }

    /// Journals and counts an event. Its message passes through the one redaction every output uses: a
    /// command line quoted in it (a hook's, a vendor tool's) keeps its program and arguments but not its
    /// secrets. Critical and fatal ones also go to the daemon log at ERROR: an operator reading
    /// `journalctl -u accel-agent` must see them, not only the WARN lines before them.
    pub fn record(&self, mut event: Event) {
        event.message = config::redact::redact_text(&event.message);
        if event.severity >= Severity::Critical {
            let device = event.device.as_deref().unwrap_or("");
            tracing::error!(device, kind = %event.kind, severity = event.severity.as_str(), "{}", event.message);
        }
        let key = (event.device.clone().unwrap_or_default(), event.severity);
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
        if let Some(w) = &self.writer
            && !w.record(event)
        {
            tracing::debug!("event dropped: the journal's queue is full");
        }
    }

    /// Records a device's condition change: set is a warning (critical if it makes the device
    /// unhealthy), cleared is info.
    pub fn condition_changed(&self, change: &ConditionChange, now: SystemTime) {
        let c = &change.condition;
        let (severity, kind, verb) = match (c.status, c.impact) {
            (Status::True, Impact::Unhealthy) => (Severity::Critical, kind::CONDITION_SET, "set"),
            (Status::True, Impact::Degraded) => (Severity::Warning, kind::CONDITION_SET, "set"),
            (Status::False, _) => (Severity::Info, kind::CONDITION_CLEARED, "cleared"),
            // Unknown after known: the evidence went away; worth a line, not an alarm.
            (Status::Unknown, _) => (Severity::Info, kind::CONDITION_CLEARED, "unknown"),
        };
        // Every start turns unknown conditions false, one per device and condition; that is not news
        // (not an event, and not worth a log line each at the default level).
        let news = !c.first_evidence_ok();
        match c.status {
            _ if !news => tracing::debug!(
                device = %change.device, condition = c.kind.name(), reason = %c.reason, status = ?c.status, "{}", c.message
            ),
            // A critical one is logged at ERROR by `record`, once.
            Status::True if severity >= Severity::Critical => {}
            Status::True => {
                tracing::warn!(device = %change.device, condition = c.kind.name(), reason = %c.reason, "{}", c.message)
            }
            _ => tracing::info!(
                device = %change.device, condition = c.kind.name(), reason = %c.reason, status = ?c.status, "{}", c.message
            ),
        }
        if !news {
            return;
        }
        let message = format!("{} {verb} ({}): {}", c.kind.name(), c.reason, c.message);
        self.record(Event::new(now, severity, kind, message).on_device(&change.device));
    }

    /// Events matching `filter`, newest first. Runs the query on a blocking thread.
    pub async fn query(&self, filter: EventFilter) -> Result<Vec<Event>, QueryError> {
        let Some(journal) = self.journal.clone() else {
            return Err(QueryError::Unavailable(self.unavailable.clone().unwrap_or_default()));
        };
        // Read your writes: an event recorded just before the query must be in its answer.
        self.flush().await;
        tokio::task::spawn_blocking(move || journal.query(&filter))
            .await
            .map_err(|e| QueryError::Task(e.to_string()))?
            .map_err(QueryError::Journal)
    }

    /// Events stored in the journal, by device ("" for host-wide events) and severity: recorded minus
    /// those that were not stored (queue full, failed commit). Without a journal, the events recorded
    /// (all of which [`dropped`](Self::dropped) counts as not kept).
    pub fn counts(&self) -> Vec<(String, Severity, u64)> {
        let lost = self.writer.as_ref().map(JournalWriter::dropped_by).unwrap_or_default();
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, n)| (k.0.clone(), k.1, n.saturating_sub(lost.get(k).copied().unwrap_or(0))))
            .collect()
    }

    /// Events recorded since start that the journal does not hold: all of them without a journal.
    pub fn dropped(&self) -> u64 {
        match &self.writer {
            Some(w) => w.dropped(),
            None => self.counts.lock().unwrap_or_else(PoisonError::into_inner).values().sum(),
        }
    }

    /// Why the journal is not a complete record, if it is not: unavailable, failing to store now, or
    /// having lost events since start.
    pub fn degraded(&self) -> Option<String> {
        if let Some(why) = &self.unavailable {
            return Some(format!("unavailable: {why}"));
        }
        let w = self.writer.as_ref()?;
        let dropped = w.dropped();
        match (w.failing(), dropped) {
            (Some(why), n) => Some(format!("{why}; {n} event(s) not stored since start")),
            (None, 0) => None,
            (None, n) => {
                Some(format!("incomplete: {n} event(s) not stored since start (queue full or a failed write)"))
            }
        }
    }

    /// Waits until every event recorded so far is committed (shutdown, tests).
    pub async fn flush(&self) {
        if let Some(w) = &self.writer
            && let Err(e) = w.flush().await
        {
            tracing::warn!("flushing the event journal failed: {e}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the event journal is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("query task failed: {0}")]
    Task(String),
}
