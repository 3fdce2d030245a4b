//! The event journal: a durable history of what happened (condition changes, actions, probe failure
//! streaks), in SQLite at `<state_dir>/events.db`.
//!
//! Writes never block the async runtime: [`JournalWriter::record`] hands the event to a dedicated writer
//! thread over a bounded queue and drops it (counting the drop) when the queue is full. The writer commits
//! queued events in batches; a committed event survives SIGKILL and power loss (WAL, `synchronous=FULL`).
//! Queries run on a separate read-only connection and block: async callers wrap them in
//! `tokio::task::spawn_blocking`.

mod event;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use rusqlite::types::Value;
use tokio::sync::mpsc;

pub use event::{Event, Severity, UnknownSeverity, kind};
pub(crate) use event::{rfc3339_utc_ms, unix_ms};
pub use schema::{SCHEMA_VERSION, UnsafeFile};
pub use writer::JournalWriter;

use event::from_unix_ms;
use schema::classify;

/// The journal's file name inside the state directory.
pub const FILE_NAME: &str = "events.db";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the state directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing the event journal file {}: it {what}; the agent never follows or shares one there (remove it)",
        path.display()
    )]
    Unsafe { path: PathBuf, what: UnsafeFile },
    #[error("cannot inspect {} before opening the event journal: {source}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the event journal {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the event journal {} is corrupt or not an SQLite database: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("{} is an SQLite database but not an accel-agent event journal", path.display())]
    Foreign { path: PathBuf },
    #[error(
        "the event journal {} has schema version {found}, newer than the {known} this agent understands \
         (written by a newer accel-agent)",
        path.display()
    )]
    SchemaTooNew { path: PathBuf, found: i64, known: i64 },
    #[error("cannot upgrade the event journal {} from schema version {from}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        from: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the event journal {} cannot use WAL mode (got {mode:?}); is it on a network filesystem?", path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("event journal {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("event journal {}: events could not be stored: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    #[error("cannot encode an event of the journal {} as JSON: {source}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the writer of the event journal {} has stopped", path.display())]
    WriterStopped { path: PathBuf },
    #[error("the event journal {} is closed", path.display())]
    Closed { path: PathBuf },
    #[error("cannot start the writer thread of the event journal {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl JournalError {
    /// The database file (or, for [`JournalError::CreateDir`], the directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            JournalError::CreateDir { path, .. }
            | JournalError::Open { path, .. }
            | JournalError::Unsafe { path, .. }
            | JournalError::Inspect { path, .. }
            | JournalError::Corrupt { path, .. }
            | JournalError::Foreign { path }
            | JournalError::SchemaTooNew { path, .. }
            | JournalError::Migrate { path, .. }
            | JournalError::NoWal { path, .. }
            | JournalError::Sql { path, .. }
            | JournalError::Write { path, .. }
            | JournalError::Encode { path, .. }
            | JournalError::WriterStopped { path }
            | JournalError::Closed { path }
            | JournalError::Spawn { path, .. } => path,
        }
    }
}

/// Periodic retention run by the writer thread, against the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are deleted.
    pub max_age: Duration,
    /// At most this many events of each retention class are kept, the newest (see
    /// [`writer::delete_expired`]).
    pub max_rows: u64,
    /// Retention runs when the journal opens and after every this many stored events.
    pub every_inserts: u64,
}

impl Default for Retention {
    /// 30 days and 100 000 events: a month of history for postmortems in well under 100 MB.
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(30 * 24 * 3600), max_rows: 100_000, every_inserts: 1000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Events that may wait for the writer thread; beyond this, [`JournalWriter::record`] drops.
    pub queue_capacity: usize,
    /// Most events committed in one transaction.
    pub max_batch: usize,
    /// None: only explicit [`Journal::retain`] calls delete events.
    pub retention: Option<Retention>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { queue_capacity: 4096, max_batch: 512, retention: Some(Retention::default()) }
    }
}

/// The largest `limit` a query may ask for (`/api/v1/events`, `agentctl events`): beyond it, a query is
/// refused rather than answered in part, so that no answer is silently shorter than asked.
pub const MAX_QUERY_LIMIT: usize = 10_000;

/// Which read-only connection a query runs on. Each has its own, so that a burst of queries from the
/// network never makes `agentctl` (or the bundle) wait behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The TCP listener's API.
    Http,
    /// The control socket: agentctl, the bundle.
    Control,
}

impl Lane {
    const ALL: [Lane; 2] = [Lane::Http, Lane::Control];

    fn index(self) -> usize {
        match self {
            Lane::Http => 0,
            Lane::Control => 1,
        }
    }
}

/// A query's answer as the JSON array `/api/v1/events` serves, built row by row so that it never takes
/// more than the byte budget it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonEvents {
    /// A pretty-printed JSON array, as `serde_json::to_vec_pretty` writes it, and a newline.
    pub body: Vec<u8>,
    /// Events in `body`.
    pub events: usize,
    /// True when more events matched but the next would have taken `body` over the budget.
    pub truncated: bool,
}

/// Which events [`Journal::query`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    pub device: Option<String>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
    pub kind: Option<String>,
    /// Most events returned (default 1000).
    pub limit: usize,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter { since: None, device: None, min_severity: None, kind: None, limit: 1000 }
    }
}

/// An open journal. Closing (or dropping) it stops the writer thread; [`JournalWriter`] handles then drop
/// whatever they record.
pub struct Journal {
    path: PathBuf,
    /// One per [`Lane`], indexed by [`Lane::index`]; None once [`close`](Journal::close) has closed them.
    readers: [Mutex<Option<Connection>>; 2],
    writer: JournalWriter,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).field("writer", &self.writer).finish()
    }
}

impl Journal {
    /// The journal's path inside a state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Opens (creating if missing, with its directory at mode 0750) the journal at `path` with default
    /// options. See [`Journal::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Journal, JournalError> {
        Journal::open_with(path, JournalOptions::default())
    }

    /// Opens the journal at `path`, migrating an older schema. A corrupt file, another application's
    /// database or a newer schema is an error naming the path; the file is left as it is, for the caller to
    /// decide (for instance, to move it aside). Blocks on disk I/O.
    pub fn open_with(path: impl AsRef<Path>, options: JournalOptions) -> Result<Journal, JournalError> {
        let path = path.as_ref().to_owned();
        let conn = schema::open_writer(&path)?;
        // After the writer, which has created the file and switched it to WAL.
        let readers = [schema::open_reader(&path)?, schema::open_reader(&path)?].map(|c| Mutex::new(Some(c)));
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let writer = JournalWriter::new(tx, path.clone());
        let thread = writer::spawn(conn, &writer, rx, options.max_batch, options.retention)
            .map_err(|source| JournalError::Spawn { path: path.clone(), source })?;
        Ok(Journal { path, readers, writer, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle for recording events; clone it freely.
    pub fn writer(&self) -> JournalWriter {
        self.writer.clone()
    }

    /// See [`JournalWriter::dropped`].
    pub fn dropped(&self) -> u64 {
        self.writer.dropped()
    }

    /// Queues `event` to be stored; see [`JournalWriter::record`].
    pub fn record(&self, event: Event) -> bool {
        self.writer.record(event)
    }

    /// Events matching `filter`, newest first (by time, then by id), on the control lane. Blocks on disk
    /// I/O; from async code, call it inside `spawn_blocking`. Sees every event committed before the call.
    pub fn query(&self, filter: &EventFilter) -> Result<Vec<Event>, JournalError> {
        self.query_on(Lane::Control, filter)
    }

    /// [`Journal::query`] on the connection of `lane`.
    pub fn query_on(&self, lane: Lane, filter: &EventFilter) -> Result<Vec<Event>, JournalError> {
        let mut events = Vec::new();
        self.each_event(lane, filter, |e| {
            events.push(e);
            Ok(true)
        })?;
        Ok(events)
    }

    /// Events matching `filter`, newest first, as the JSON array the API serves, with at most `max_bytes`
    /// in the body (at least `[]`): a query costs this much memory however large the events or `limit`.
    pub fn query_json(&self, lane: Lane, filter: &EventFilter, max_bytes: usize) -> Result<JsonEvents, JournalError> {
        let mut out = JsonEvents { body: b"[".to_vec(), events: 0, truncated: false };
        let mut one = Vec::new();
        self.each_event(lane, filter, |e| {
            one.clear();
            serde_json::to_writer_pretty(&mut one, &e)
                .map_err(|source| JournalError::Encode { path: self.path.clone(), source })?;
            // Inside the array every line is indented two more spaces; JSON strings hold no raw newline,
            // so every newline is a line break of the layout.
            let lines = one.iter().filter(|b| **b == b'\n').count();
            // ",\n  " or "\n  " before it, and "\n]\n" to close the array.
            let needed = 4 + one.len() + 2 * lines + 3;
            if out.body.len() + needed > max_bytes {
                out.truncated = true;
                return Ok(false);
            }
            out.body.extend_from_slice(if out.events == 0 { b"\n  " } else { b",\n  " });
            for &b in &one {
                out.body.push(b);
                if b == b'\n' {
                    out.body.extend_from_slice(b"  ");
                }
            }
            out.events += 1;
            Ok(true)
        })?;
        out.body.extend_from_slice(if out.events == 0 { b"]\n" } else { b"\n]\n" });
        Ok(out)
    }

    /// Calls `each` with every event matching `filter`, newest first, until it returns false or an error.
    fn each_event(
        &self,
        lane: Lane,
        filter: &EventFilter,
        mut each: impl FnMut(Event) -> Result<bool, JournalError>,
    ) -> Result<(), JournalError> {
        let mut sql = String::from("SELECT id, time_ms, device, severity, kind, message FROM events");
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(since) = filter.since {
            conditions.push("time_ms >= ?".into());
            values.push(Value::Integer(unix_ms(since)));
        }
        if let Some(device) = &filter.device {
            conditions.push("device = ?".into());
            values.push(Value::Text(device.clone()));
        }
        if let Some(min) = filter.min_severity {
            // Severities are stored as text, whose order is not theirs; list the admitted names instead.
            // They are our own constants, so splicing them into the SQL is safe.
            let names: Vec<String> =
                Severity::ALL.iter().filter(|s| **s >= min).map(|s| format!("'{}'", s.as_str())).collect();
            conditions.push(format!("severity IN ({})", names.join(", ")));
        }
        if let Some(kind) = &filter.kind {
            conditions.push("kind = ?".into());
            values.push(Value::Text(kind.clone()));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY time_ms DESC, id DESC LIMIT ?");
        values.push(Value::Integer(i64::try_from(filter.limit).unwrap_or(i64::MAX)));

        let reader = self.readers[lane.index()].lock().unwrap_or_else(PoisonError::into_inner);
        let conn = reader.as_ref().ok_or_else(|| JournalError::Closed { path: self.path.clone() })?;
        let sql_err = |e| classify(&self.path, e);
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut rows = stmt
            .query_map(rusqlite::params_from_iter(values), |row| {
                Ok(Event {
                    id: row.get(0)?,
                    time: from_unix_ms(row.get(1)?),
                    device: row.get(2)?,
                    severity: row.get(3)?,
                    kind: row.get(4)?,
                    message: row.get(5)?,
                })
            })
            .map_err(sql_err)?;
        // Row by row: the caller decides when it has enough, and nothing more is read.
        for row in rows.by_ref() {
            if !each(row.map_err(sql_err)?)? {
                break;
            }
        }
        Ok(())
    }

    /// Events ever stored, by device (None: host-wide) and severity, for `accel_events_total`. These totals
    /// survive restarts and are not decreased by retention, so they behave as Prometheus counters. Events
    /// dropped before being stored are not included (see [`JournalWriter::dropped`]). Blocks on disk I/O.
    pub fn counts_by_device_severity(&self) -> Result<Vec<(Option<String>, Severity, u64)>, JournalError> {
        let reader = self.readers[Lane::Control.index()].lock().unwrap_or_else(PoisonError::into_inner);
        let conn = reader.as_ref().ok_or_else(|| JournalError::Closed { path: self.path.clone() })?;
        let sql_err = |e| classify(&self.path, e);
        let mut stmt = conn.prepare_cached("SELECT device, severity, total FROM event_counts").map_err(sql_err)?;
        let rows = stmt
            .query_map([], |row| {
                let total: i64 = row.get(2)?;
                // Totals only ever grow from zero; clamping guards against a hand-edited file.
                Ok((row.get(0)?, row.get(1)?, total.max(0) as u64))
            })
            .map_err(sql_err)?;
        let mut counts = rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)?;
        counts.sort();
        Ok(counts)
    }

    /// Deletes events older than `now - max_age`, then the oldest beyond the newest `max_rows`, and returns
    /// how many were deleted. Runs on the writer thread after everything recorded before the call, so
    /// writes never contend. `now` is explicit so that callers (and tests) decide what time it is.
    /// Blocks; from async code, call it inside `spawn_blocking`.
    pub fn retain(&self, max_age: Duration, max_rows: u64, now: SystemTime) -> Result<u64, JournalError> {
        self.writer.retain_blocking(max_age, max_rows, now)
    }

    /// Stores everything recorded so far, stops the writer thread and closes the database. Blocks; from
    /// async code, call it inside `spawn_blocking`.
    pub fn close(mut self) -> Result<(), JournalError> {
        // The reader first: the last connection to close checkpoints the WAL into the database file and
        // removes it, and a read-only connection cannot, so the writer must be that last one.
        for lane in Lane::ALL {
            drop(self.readers[lane.index()].lock().unwrap_or_else(PoisonError::into_inner).take());
        }
        let flushed = self.writer.flush_blocking();
        self.writer.shutdown_blocking();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            return Err(JournalError::WriterStopped { path: self.path.clone() });
        }
        flushed
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // No join: dropping must not block an async task. The writer finishes what is queued and exits.
        if self.thread.is_some() {
            self.writer.shutdown_nowait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with(n: usize, message_len: usize) -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions { retention: None, ..JournalOptions::default() };
        let journal = Journal::open_with(Journal::path_in(dir.path()), options).unwrap();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..n {
            let message = format!("{i:05} {}", "m".repeat(message_len));
            let event = Event::new(base + Duration::from_secs(i as u64), Severity::Info, kind::ACTION, message);
            assert!(journal.record(event.on_device("loihi0")));
        }
        journal.writer().flush_blocking().unwrap();
        (dir, journal)
    }

    #[test]
    fn json_answers_are_what_serde_json_writes_for_the_events() {
        let (_dir, journal) = journal_with(3, 10);
        for lane in Lane::ALL {
            let filter = EventFilter::default();
            let events = journal.query_on(lane, &filter).unwrap();
            let mut expected = serde_json::to_vec_pretty(&events).unwrap();
            expected.push(b'\n');
            let answer = journal.query_json(lane, &filter, MAX_QUERY_LIMIT * 1000).unwrap();
            assert_eq!(String::from_utf8(answer.body).unwrap(), String::from_utf8(expected).unwrap());
            assert_eq!((answer.events, answer.truncated), (3, false));
        }
        let none = EventFilter { device: Some("nothing".into()), ..EventFilter::default() };
        let empty = journal.query_json(Lane::Http, &none, 100).unwrap();
        assert_eq!((empty.body.as_slice(), empty.events, empty.truncated), (&b"[]\n"[..], 0, false));
    }

    #[test]
    fn json_answers_stop_at_their_byte_budget_newest_first() {
        let (_dir, journal) = journal_with(200, 1000);
        let answer = journal.query_json(Lane::Http, &EventFilter::default(), 20_000).unwrap();
        assert!(answer.body.len() <= 20_000, "{} bytes", answer.body.len());
        assert!(answer.truncated);
        let events: Vec<serde_json::Value> = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(events.len(), answer.events);
        assert!((15..20).contains(&answer.events), "about 1.1 kB each: {}", answer.events);
        assert!(events[0]["message"].as_str().unwrap().starts_with("00199 "), "newest first");
        // Too small for even one event: an empty array, still valid JSON, and said to be cut short.
        let tiny = journal.query_json(Lane::Control, &EventFilter::default(), 100).unwrap();
        assert_eq!((tiny.body.as_slice(), tiny.events, tiny.truncated), (&b"[]\n"[..], 0, true));
    }
}
