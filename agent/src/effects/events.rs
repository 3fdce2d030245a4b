//! What happened: condition changes (and later actions and probe streaks) as events, recorded in the
//! journal and counted for accel_events_total.
//!
//! A journal that cannot be opened (an unwritable state directory when run by hand, a damaged file) must
//! not stop the agent from monitoring: events are then counted and logged but not kept, the reason is
//! reported (in `/health`, status and the log), and the journal is tried again with backoff and at each
//! reload until it opens.
//!
//! Queries run on the journal's read-only connection of their lane (the TCP API or the control socket),
//! and an answer's memory is bounded: each at most [`MAX_ANSWER_BYTES`], and a lane's answers in flight
//! together at most a few of those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::effects::journal::{Event, EventFilter, Journal, JournalError, Lane, Severity, kind};
use crate::model::health::Impact;
use crate::model::{ConditionChange, Status};

/// Why a reload's attempt to open the journal did not.
#[derive(Debug, thiserror::Error)]
enum OpenAttemptError {
    #[error(transparent)]
    Journal(JournalError),
    #[error("the attempt failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The largest body one events answer may have; past it the answer holds fewer events than asked and
/// says so. 10,000 events of a few hundred bytes each fit.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;
/// Answers of [`MAX_ANSWER_BYTES`] that may be built or waiting to be sent at once on the TCP listener:
/// their memory, and no more, is what a flood of queries can take.
const HTTP_ANSWERS_IN_FLIGHT: usize = 4;
/// The same on the control socket, a budget of its own so that the network never holds agentctl up.
const CONTROL_ANSWERS_IN_FLIGHT: usize = 2;
/// How long a query waits for room before it is turned away as busy.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The first retry of a journal that would not open comes after this, then twice as long each time.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts: a full disk that frees up is noticed within this.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// How long a reload waits for its attempt to open the journal.
const RELOAD_ATTEMPT: Duration = Duration::from_secs(2);

/// How long to wait before attempt `attempt` (2 for the first retry) to open the journal.
pub fn retry_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(2).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// An events answer: the JSON array, its memory counted against its lane's budget until it is dropped
/// (once sent).
#[derive(Debug)]
pub struct EventsAnswer {
    pub body: Bytes,
    pub events: usize,
    /// More events matched than fit into [`MAX_ANSWER_BYTES`].
    pub truncated: bool,
}

/// A body holding its share of the lane's budget.
struct Budgeted {
    body: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

/// Kilobytes, the unit of the answer budgets, rounded up.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

pub struct Events {
    /// None until the journal opens; [`Events::keep_opening`] keeps trying.
    journal: ArcSwapOption<Journal>,
    /// (device or "", severity) -> events recorded, plus the journal's totals once it is open.
    counts: Mutex<Counts>,
    /// Why there is no journal, for the landing page and the API.
    unavailable: Mutex<Option<String>>,
    /// Where the journal is; None for an agent run without one.
    state_dir: Option<PathBuf>,
    /// Held by an attempt to open the journal, so that two attempts never both open one.
    opening: Mutex<()>,
    /// The answer bytes (in KiB) that may be in flight on the TCP listener, and on the control socket.
    http_budget: Arc<Semaphore>,
    control_budget: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Counts {
    recorded: BTreeMap<(String, Severity), u64>,
    /// Recorded while there was no journal: never stored.
    not_kept: u64,
}

impl Events {
    /// Opens the journal under `state_dir`; on failure, runs without one (see [`Events::keep_opening`]).
    pub fn open(state_dir: &Path) -> Events {
        let events = Events { state_dir: Some(state_dir.to_owned()), ..Events::without_journal(String::new()) };
        if let Err(e) = events.try_open() {
            tracing::warn!(
                "event journal unavailable, events are counted and logged but not kept until it opens: {e} \
                 (run as root, or give a directory this user can write with --state-dir)"
            );
        }
        events
    }

    pub fn without_journal(reason: String) -> Events {
        let budget = |answers: usize| Arc::new(Semaphore::new(answers * kib(MAX_ANSWER_BYTES)));
        Events {
            journal: ArcSwapOption::empty(),
            counts: Mutex::new(Counts::default()),
            unavailable: Mutex::new(Some(reason)),
            state_dir: None,
            opening: Mutex::new(()),
            http_budget: budget(HTTP_ANSWERS_IN_FLIGHT),
            control_budget: budget(CONTROL_ANSWERS_IN_FLIGHT),
        }
    }

    /// One attempt to open the journal, unless it is open; on success events are stored from now on.
    /// Blocks on disk I/O.
    fn try_open(&self) -> Result<(), JournalError> {
        let Some(state_dir) = &self.state_dir else { return Ok(()) };
        let _attempt = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if self.journal.load().is_some() {
            return Ok(());
        }
        match Journal::open(Journal::path_in(state_dir)) {
            Ok(journal) => {
                let totals = journal.counts_by_device_severity();
                // Under the counts lock, so that an event is either counted as not kept or stored.
                let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
                match totals {
                    Ok(rows) => {
                        for (device, severity, n) in rows {
                            *counts.recorded.entry((device.unwrap_or_default(), severity)).or_default() += n;
                        }
                    }
                    Err(e) => tracing::warn!("cannot read event counts: {e}"),
                }
                self.journal.store(Some(Arc::new(journal)));
                *self.unavailable.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Ok(())
            }
            Err(e) => {
                *self.unavailable.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Tries again to open a journal that would not open (a full disk, an unwritable or blocked state
    /// directory), with backoff from [`FIRST_RETRY`] up to [`MAX_RETRY`]; returns once it is open, or at
    /// `shutdown`. A reload tries at once as well ([`Events::retry_now`]).
    pub async fn keep_opening(self: Arc<Self>, shutdown: CancellationToken) {
        let mut attempt = 1;
        while self.state_dir.is_some() && self.journal.load().is_none() {
            attempt += 1;
            tokio::select! {
                _ = tokio::time::sleep(retry_delay(attempt)) => {}
                _ = shutdown.cancelled() => return,
            }
            match self.attempt().await {
                Ok(true) => {
                    let lost = self.dropped();
                    tracing::info!(
                        "event journal opened at attempt {attempt}; {lost} event(s) recorded before were not kept"
                    );
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "event journal still unavailable (attempt {attempt}): {e}; next attempt in {:?} or at a reload",
                    retry_delay(attempt + 1)
                ),
            }
        }
    }

    /// Tries to open the journal now, if it is not open (a reload: the operator may have fixed the cause).
    /// Returns once the attempt is done, or after [`RELOAD_ATTEMPT`] (a stalled disk must not hold the
    /// reload up; the attempt then finishes on its own).
    pub async fn retry_now(self: &Arc<Self>) {
        if self.state_dir.is_none() || self.journal.load().is_some() {
            return;
        }
        match tokio::time::timeout(RELOAD_ATTEMPT, self.attempt()).await {
            Ok(Ok(true)) => tracing::info!("event journal opened at a reload"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("event journal still unavailable at a reload: {e}"),
            Err(_) => tracing::warn!("opening the event journal took longer than {RELOAD_ATTEMPT:?} at a reload"),
        }
    }

    /// One attempt on a blocking thread: Ok(true) if it opened the journal, Ok(false) if it was open.
    async fn attempt(self: &Arc<Self>) -> Result<bool, OpenAttemptError> {
        if self.journal.load().is_some() {
            return Ok(false);
        }
        let me = Arc::clone(self);
        match tokio::task::spawn_blocking(move || me.try_open()).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(OpenAttemptError::Journal(e)),
            Err(e) => Err(OpenAttemptError::Task(e)),
        }
    }

    /// Why there is no journal, if there is none.
    pub fn unavailable(&self) -> Option<String> {
        self.unavailable.lock().unwrap_or_else(PoisonError::into_inner).clone()
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
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.recorded.entry(key).or_default() += 1;
        match self.journal.load().as_ref() {
            Some(journal) => {
                if !journal.record(event) {
                    tracing::debug!("event dropped: the journal's queue is full");
                }
            }
            None => counts.not_kept += 1,
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

    /// Events matching `filter`, newest first, on the connection of `lane`. Runs the query on a blocking
    /// thread. For small answers (a device's latest events, the bundle's); the API uses
    /// [`Events::query_json`].
    pub async fn query(&self, lane: Lane, filter: EventFilter) -> Result<Vec<Event>, QueryError> {
        let journal = self.for_query().await?;
        tokio::task::spawn_blocking(move || journal.query_on(lane, &filter))
            .await
            .map_err(|e| QueryError::Task(e.to_string()))?
            .map_err(QueryError::Journal)
    }

    /// Events matching `filter`, newest first, as the JSON array the API serves: at most
    /// [`MAX_ANSWER_BYTES`], and with the lane's other answers in flight at most its budget; a query
    /// that finds no room within [`QUEUE_WAIT`] is [`QueryError::Busy`].
    pub async fn query_json(&self, lane: Lane, filter: EventFilter) -> Result<EventsAnswer, QueryError> {
        let budget = Arc::clone(match lane {
            Lane::Http => &self.http_budget,
            Lane::Control => &self.control_budget,
        });
        let wanted = u32::try_from(kib(MAX_ANSWER_BYTES)).unwrap_or(u32::MAX);
        let mut permit = tokio::time::timeout(QUEUE_WAIT, budget.acquire_many_owned(wanted))
            .await
            .map_err(|_| QueryError::Busy)?
            .map_err(|_| QueryError::Busy)?;
        let journal = self.for_query().await?;
        let page = tokio::task::spawn_blocking(move || journal.query_json(lane, &filter, MAX_ANSWER_BYTES))
            .await
            .map_err(|e| QueryError::Task(e.to_string()))?
            .map_err(QueryError::Journal)?;
        // Keep what the body takes until it is sent; give the rest back now.
        let held = permit.split(kib(page.body.len()).min(permit.num_permits())).unwrap_or(permit);
        let body = Bytes::from_owner(Budgeted { body: page.body, _permit: held });
        Ok(EventsAnswer { body, events: page.events, truncated: page.truncated })
    }

    /// The journal, with everything recorded so far committed (read your writes: an event recorded just
    /// before a query is in its answer).
    async fn for_query(&self) -> Result<Arc<Journal>, QueryError> {
        let Some(journal) = self.journal.load_full() else {
            return Err(QueryError::Unavailable(self.unavailable().unwrap_or_default()));
        };
        if let Err(e) = journal.writer().flush().await {
            tracing::warn!("flushing the event journal failed: {e}");
        }
        Ok(journal)
    }

    /// Events stored in the journal, by device ("" for host-wide events) and severity: recorded minus
    /// those the journal lost (queue full, failed commit). Events recorded while there was no journal are
    /// included, as they were before it opened: alerts on these counts keep working without a journal,
    /// and the counts never go down when it opens. [`dropped`](Self::dropped) counts them as not kept.
    pub fn counts(&self) -> Vec<(String, Severity, u64)> {
        let lost = self.journal.load().as_ref().map(|j| j.writer().dropped_by()).unwrap_or_default();
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .recorded
            .iter()
            .map(|(k, n)| (k.0.clone(), k.1, n.saturating_sub(lost.get(k).copied().unwrap_or(0))))
            .collect()
    }

    /// Events recorded since start that the journal does not hold.
    pub fn dropped(&self) -> u64 {
        let not_kept = self.counts.lock().unwrap_or_else(PoisonError::into_inner).not_kept;
        not_kept + self.journal.load().as_ref().map_or(0, |j| j.dropped())
    }

    /// Why the journal is not a complete record, if it is not: unavailable, failing to store now, or
    /// having lost events since start.
    pub fn degraded(&self) -> Option<String> {
        if let Some(why) = self.unavailable() {
            return Some(format!("unavailable: {why}"));
        }
        let journal = self.journal.load_full()?;
        let dropped = self.dropped();
        match (journal.writer().failing(), dropped) {
            (Some(why), n) => Some(format!("{why}; {n} event(s) not stored since start")),
            (None, 0) => None,
            (None, n) => Some(format!(
                "incomplete: {n} event(s) not stored since start (journal not yet open, queue full or a failed write)"
            )),
        }
    }

    /// Waits until every event recorded so far is committed (shutdown, tests).
    pub async fn flush(&self) {
        if let Some(journal) = self.journal.load_full()
            && let Err(e) = journal.writer().flush().await
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
    #[error("busy: too many event queries at once; ask again shortly")]
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_5_s_doubling_up_to_5_min() {
        let delays: Vec<u64> = (2..=10).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY, "no overflow however long it fails");
    }
}
