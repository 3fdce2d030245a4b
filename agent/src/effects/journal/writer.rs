//! The writer thread: the one connection that writes, fed over a bounded channel so that recording an event
//! never waits for the disk.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::event::{Event, Severity, unix_ms};
use super::{JournalError, Retention};

pub(super) enum Command {
    Record(Event),
    Flush(oneshot::Sender<Result<(), JournalError>>),
    Retain {
        max_age: Duration,
        max_rows: u64,
        now: SystemTime,
        reply: oneshot::Sender<Result<u64, JournalError>>,
    },
    /// Stops accepting commands; everything already queued is still written.
    Shutdown,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) path: PathBuf,
    dropped: AtomicU64,
    /// Set when the journal is dropped; a Shutdown command may not fit into a full queue.
    closed: AtomicBool,
    /// The events counted in `dropped`, by device ("" host-wide) and severity, so that counts of stored
    /// events can be told from counts of recorded ones.
    lost_by: std::sync::Mutex<BTreeMap<(String, Severity), u64>>,
    /// Why the last commit failed, until one succeeds.
    failing: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn lose(&self, events: &[Event]) {
        self.dropped.fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut by = self.lost_by.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in events {
            *by.entry((e.device.clone().unwrap_or_default(), e.severity)).or_default() += 1;
        }
    }

    fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    }
}

/// A cheap, cloneable handle for recording events from anywhere, including async tasks.
///
/// Handles stop working (every event is dropped) once the [`super::Journal`] they came from is closed or
/// dropped.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalWriter").field("path", &self.shared.path).field("dropped", &self.dropped()).finish()
    }
}

impl JournalWriter {
    pub(super) fn new(tx: mpsc::Sender<Command>, path: PathBuf) -> JournalWriter {
        JournalWriter {
            tx,
            shared: Arc::new(Shared {
                path,
                dropped: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                lost_by: Default::default(),
                failing: Default::default(),
            }),
        }
    }

    /// Queues `event` to be stored and returns at once; the event's `id` is ignored and assigned on commit.
    ///
    /// Returns false when the event was dropped instead: the queue was full (the disk cannot keep up with
    /// a storm of events, and the agent must not stall on it) or the journal is closed. Dropped events are
    /// counted in [`JournalWriter::dropped`].
    pub fn record(&self, event: Event) -> bool {
        if self.shared.closed.load(Ordering::Relaxed) {
            self.shared.lose(std::slice::from_ref(&event));
            return false;
        }
        match self.tx.try_send(Command::Record(event)) {
            Ok(()) => true,
            Err(e) => {
                if let Command::Record(event) = e.into_inner() {
                    self.shared.lose(std::slice::from_ref(&event));
                }
                false
            }
        }
    }

    /// [`dropped`](Self::dropped) by device ("" host-wide) and severity.
    pub fn dropped_by(&self) -> BTreeMap<(String, Severity), u64> {
        self.shared.lost_by.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Why events cannot be stored right now (the last commit failed: disk full, file immutable), until a
    /// commit succeeds again.
    pub fn failing(&self) -> Option<String> {
        self.shared.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Events that were recorded but will never be stored, since the journal was opened: dropped because
    /// the queue was full or the journal closed, or lost because their transaction failed. Shared by all
    /// clones of this handle.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Returns once every event accepted by `record` (through any handle) before this call is committed.
    /// Fails if some of them could not be stored since the previous flush, or if the writer has stopped.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let (reply, done) = oneshot::channel();
        self.tx.send(Command::Flush(reply)).await.map_err(|_| self.stopped())?;
        done.await.map_err(|_| self.stopped())?
    }

    /// [`JournalWriter::flush`] for threads outside the async runtime (tests, `spawn_blocking`). Panics when
    /// called from async code, like every blocking tokio channel operation.
    pub fn flush_blocking(&self) -> Result<(), JournalError> {
        let (reply, done) = oneshot::channel();
        self.tx.blocking_send(Command::Flush(reply)).map_err(|_| self.stopped())?;
        done.blocking_recv().map_err(|_| self.stopped())?
    }

    pub(super) fn retain_blocking(
        &self,
        max_age: Duration,
        max_rows: u64,
        now: SystemTime,
    ) -> Result<u64, JournalError> {
        let (reply, done) = oneshot::channel();
        let command = Command::Retain { max_age, max_rows, now, reply };
        self.tx.blocking_send(command).map_err(|_| self.stopped())?;
        done.blocking_recv().map_err(|_| self.stopped())?
    }

    /// Waits for room in the queue, so the writer is sure to see it.
    pub(super) fn shutdown_blocking(&self) {
        let _ = self.tx.blocking_send(Command::Shutdown);
    }

    /// For `Drop`, which must not block. When the queue is full, the writer sees the flag after its
    /// current batch instead.
    pub(super) fn shutdown_nowait(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let _ = self.tx.try_send(Command::Shutdown);
    }

    fn stopped(&self) -> JournalError {
        JournalError::WriterStopped { path: self.shared.path.clone() }
    }
}

/// Starts the writer thread; it ends when the channel is closed and drained.
pub(super) fn spawn(
    conn: Connection,
    handle: &JournalWriter,
    rx: mpsc::Receiver<Command>,
    max_batch: usize,
    retention: Option<Retention>,
) -> std::io::Result<JoinHandle<()>> {
    let thread = WriterThread {
        conn,
        shared: Arc::clone(&handle.shared),
        max_batch: max_batch.max(1),
        retention,
        inserted_since_retention: 0,
        unreported_failure: None,
    };
    std::thread::Builder::new().name("journal-writer".into()).spawn(move || thread.run(rx))
}

struct WriterThread {
    conn: Connection,
    shared: Arc<Shared>,
    max_batch: usize,
    retention: Option<Retention>,
    inserted_since_retention: u64,
    /// The latest failed commit, until a flush reports it.
    unreported_failure: Option<Arc<rusqlite::Error>>,
}

impl WriterThread {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // An agent that restarts often may never reach `every_inserts` within one run.
        if self.retention.is_some() {
            self.retain_periodically(true);
        }
        let mut pending = Vec::with_capacity(self.max_batch);
        let mut waiters = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            // Take whatever else is already queued, so that a burst costs one transaction (and one fsync).
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(command) = next.take() {
                taken += 1;
                match command {
                    Command::Record(event) => pending.push(event),
                    Command::Flush(reply) => waiters.push(reply),
                    Command::Retain { max_age, max_rows, now, reply } => {
                        // Events queued before the request are subject to it.
                        self.commit(&mut pending);
                        let result = delete_expired(&mut self.conn, max_age, max_rows, now)
                            .map_err(|e| super::schema::classify(&self.shared.path, e));
                        let _ = reply.send(result);
                    }
                    Command::Shutdown => rx.close(),
                }
                if taken < self.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(&mut pending);
            self.answer(&mut waiters);
            if self.shared.closed.load(Ordering::Relaxed) {
                rx.close();
            }
        }
    }

    fn commit(&mut self, pending: &mut Vec<Event>) {
        if pending.is_empty() {
            return;
        }
        match insert(&mut self.conn, pending) {
            Ok(()) => {
                self.shared.set_failing(None);
                self.inserted_since_retention += pending.len() as u64;
                self.retain_periodically(false);
            }
            Err(e) => {
                tracing::error!(path = %self.shared.path.display(), "cannot store {} event(s): {e}", pending.len());
                self.shared.set_failing(Some(format!("cannot store events in {}: {e}", self.shared.path.display())));
                self.shared.lose(pending);
                self.unreported_failure = Some(Arc::new(e));
            }
        }
        pending.clear();
    }

    fn answer(&mut self, waiters: &mut Vec<oneshot::Sender<Result<(), JournalError>>>) {
        if waiters.is_empty() {
            return;
        }
        let failure = self.unreported_failure.take();
        for reply in waiters.drain(..) {
            let result = match &failure {
                Some(e) => Err(JournalError::Write { path: self.shared.path.clone(), source: Arc::clone(e) }),
                None => Ok(()),
            };
            let _ = reply.send(result);
        }
    }

    fn retain_periodically(&mut self, force: bool) {
        let Some(r) = self.retention else { return };
        if !force && self.inserted_since_retention < r.every_inserts {
            return;
        }
        self.inserted_since_retention = 0;
        match delete_expired(&mut self.conn, r.max_age, r.max_rows, SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(path = %self.shared.path.display(), "retention deleted {n} event(s)"),
            // Not fatal: the journal grows until a later run succeeds.
            Err(e) => tracing::warn!(path = %self.shared.path.display(), "event retention failed: {e}"),
        }
    }
}

fn insert(conn: &mut Connection, events: &[Event]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (time_ms, device, severity, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut counts: BTreeMap<(Option<&str>, Severity), i64> = BTreeMap::new();
        for e in events {
            insert.execute(params![unix_ms(e.time), e.device, e.severity, e.kind, e.message])?;
            *counts.entry((e.device.as_deref(), e.severity)).or_default() += 1;
        }
        // `IS` rather than `=` so that host-wide events (NULL device) find their row.
        let mut bump =
            tx.prepare_cached("UPDATE event_counts SET total = total + ?3 WHERE device IS ?1 AND severity = ?2")?;
        let mut add = tx.prepare_cached("INSERT INTO event_counts (device, severity, total) VALUES (?1, ?2, ?3)")?;
        for ((device, severity), n) in counts {
            if bump.execute(params![device, severity, n])? == 0 {
                add.execute(params![device, severity, n])?;
            }
        }
    }
    tx.commit()
}

/// Retention classes, as SQL conditions: each keeps its own newest `max_rows`, so that no kind of event can
/// push another class out. The audit trail (what operators and the actions layer did) is a class of its
/// own; a flood of matching log lines or of refused control requests pushes out only older events of its
/// own class, and neither can push out condition and probe events.
fn retention_classes() -> [String; 4] {
    use super::kind::{ACTION, CONTROL_REFUSED, LOG_MATCH, OPERATOR};
    [
        format!("kind = '{LOG_MATCH}'"),
        format!("kind IN ('{OPERATOR}', '{ACTION}')"),
        format!("kind = '{CONTROL_REFUSED}'"),
        format!("kind NOT IN ('{LOG_MATCH}', '{OPERATOR}', '{ACTION}', '{CONTROL_REFUSED}')"),
    ]
}

/// Deletes events older than `now - max_age`, then, in each retention class, the oldest beyond its newest
/// `max_rows`. Returns how many were deleted. Totals in `event_counts` are left alone: they count events
/// ever stored.
pub(super) fn delete_expired(
    conn: &mut Connection,
    max_age: Duration,
    max_rows: u64,
    now: SystemTime,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = 0;
    // No cutoff when `now - max_age` is before what SystemTime can express: nothing is that old.
    if let Some(cutoff) = now.checked_sub(max_age) {
        deleted += tx.execute("DELETE FROM events WHERE time_ms < ?1", [unix_ms(cutoff)])?;
    }
    let keep = i64::try_from(max_rows).unwrap_or(i64::MAX);
    for class in retention_classes() {
        // The conditions are built from our own constants, so splicing them into the SQL is safe.
        deleted += tx.execute(
            &format!(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {class} \
                 ORDER BY time_ms DESC, id DESC LIMIT -1 OFFSET ?1)"
            ),
            [keep],
        )?;
    }
    tx.commit()?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_each_class_apart_so_no_flood_pushes_the_audit_trail_out() {
        use super::super::kind;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::schema::open_writer(&dir.path().join("events.db")).unwrap();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut events = Vec::new();
        let mut t = 0;
        let mut add = |kind: &str, n: usize, events: &mut Vec<Event>| {
            for i in 0..n {
                t += 1;
                events.push(Event::new(
                    base + Duration::from_millis(t),
                    Severity::Warning,
                    kind,
                    format!("{kind} {i}"),
                ));
            }
        };
        // The audit trail first, then floods of every other class, each far beyond the limit.
        add(kind::OPERATOR, 3, &mut events);
        add(kind::ACTION, 4, &mut events);
        add(kind::CONDITION_SET, 5, &mut events);
        add(kind::CONTROL_REFUSED, 500, &mut events);
        add(kind::LOG_MATCH, 500, &mut events);
        add(kind::PROBE_FAILING, 500, &mut events);
        insert(&mut conn, &events).unwrap();
        let deleted = delete_expired(&mut conn, Duration::from_secs(3600), 10, base).unwrap();
        let count = |cond: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM events WHERE {cond}"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!(count("kind IN ('operator', 'action')"), 7, "the audit trail is all there");
        assert_eq!(count("kind = 'control_refused'"), 10);
        assert_eq!(count("kind = 'log_match'"), 10);
        assert_eq!(count("kind IN ('condition_set', 'probe_failing')"), 10, "the rest share a class");
        assert_eq!(deleted, 490 + 490 + 495);
        let newest: String = conn
            .query_row("SELECT message FROM events WHERE kind = 'control_refused' ORDER BY id DESC LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(newest, "control_refused 499", "the newest of a class are the ones kept");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        // Nobody serves this receiver, as if the writer were stuck on a slow disk.
        let (tx, _rx) = mpsc::channel(2);
        let writer = JournalWriter::new(tx, PathBuf::from("/nonexistent/events.db"));
        let accepted: Vec<bool> = (0..5)
            .map(|i| writer.record(Event::new(SystemTime::UNIX_EPOCH, Severity::Info, "test", format!("{i}"))))
            .collect();
        assert_eq!(accepted, [true, true, false, false, false]);
        assert_eq!(writer.dropped(), 3);
        assert_eq!(writer.clone().dropped(), 3, "clones share the counter");
    }

    #[test]
    fn a_closed_journal_drops_and_reports_the_writer_stopped() {
        let (tx, rx) = mpsc::channel(2);
        drop(rx);
        let writer = JournalWriter::new(tx, PathBuf::from("/var/lib/accel-agent/events.db"));
        assert!(!writer.record(Event::new(SystemTime::UNIX_EPOCH, Severity::Fatal, "test", "late")));
        assert_eq!(writer.dropped(), 1);
        let err = writer.flush_blocking().unwrap_err();
        assert!(matches!(err, JournalError::WriterStopped { .. }));
        assert!(err.to_string().contains("/var/lib/accel-agent/events.db"), "{err}");
    }
}
