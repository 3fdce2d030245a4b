//! A committed event survives the process being killed mid-write.
//!
//! The test re-executes its own binary as the writer: `journal_child_writer` does nothing in a normal run and
//! writes until killed when the environment variable names a database.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use agent::effects::journal::{Event, EventFilter, Journal, Severity, kind};

const CHILD_DB: &str = "ACCEL_JOURNAL_DURABILITY_DB";
/// Commits the parent waits for before killing the child.
const KILL_AFTER: usize = 300;
/// Stops a child whose parent vanished without killing it; far more than the parent ever waits for.
const CHILD_MAX_ROUNDS: u64 = 1_000_000;
/// Events per round; only the last is flushed explicitly, so a kill often lands inside a batch.
const EVENTS_PER_ROUND: u64 = 3;

#[test]
fn journal_child_writer() {
    let Some(db) = std::env::var_os(CHILD_DB) else { return };
    let journal = Journal::open(&db).expect("child opens the journal");
    let writer = journal.writer();
    let mut out = std::io::stdout().lock();
    for round in 0..CHILD_MAX_ROUNDS {
        for i in 0..EVENTS_PER_ROUND {
            let n = round * EVENTS_PER_ROUND + i;
            let time = UNIX_EPOCH + Duration::from_secs(1_795_471_200) + Duration::from_millis(n);
            writer.record(
                Event::new(time, Severity::Warning, kind::CONDITION_SET, format!("event {n}")).on_device("loihi0"),
            );
        }
        writer.flush_blocking().expect("flush");
        // Read back through the journal's read-only connection: what it sees is committed.
        let newest = journal.query(&EventFilter { limit: 1, ..Default::default() }).expect("query");
        let Some(newest) = newest.first() else { panic!("nothing committed after a flush") };
        // A closed pipe means the parent is gone; stop quietly.
        if writeln!(out, "committed {} {}", newest.id, newest.message).and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_writer(db: &Path) -> KillOnDrop {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["journal_child_writer", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DB, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("re-execute the test binary as the writer");
    KillOnDrop(child)
}

#[test]
fn journal_events_committed_before_sigkill_are_all_present() {
    let dir = tempfile::tempdir().unwrap();
    let db = Journal::path_in(dir.path());
    let mut child = spawn_writer(&db);
    let stdout = child.0.stdout.take().unwrap();

    // id -> message of every event the child saw committed.
    let mut committed: HashMap<i64, String> = HashMap::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("committed ") else { continue };
        let (id, message) = rest.split_once(' ').unwrap();
        committed.insert(id.parse().unwrap(), message.to_owned());
        if !killed && committed.len() >= KILL_AFTER {
            child.0.kill().unwrap();
            killed = true;
        }
        // Lines already in the pipe after the kill were committed too; reading stops at end of pipe.
    }
    let status = child.0.wait().unwrap();
    assert!(killed, "the child stopped after {} commits, before it was killed: {status:?}", committed.len());
    assert_eq!(status.signal(), Some(libc::SIGKILL), "the child died of SIGKILL, not on its own");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);

    let journal = Journal::open(&db).unwrap();
    let stored: HashMap<i64, String> = journal
        .query(&EventFilter { limit: usize::MAX, ..Default::default() })
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.message))
        .collect();
    let mut missing: Vec<_> = committed.iter().filter(|(id, msg)| stored.get(id) != Some(msg)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} of {} committed events lost, e.g. {:?}",
        missing.len(),
        committed.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!("{} events reported committed, {} stored after SIGKILL", committed.len(), stored.len());

    let writer = journal.writer();
    assert!(writer.record(Event::new(
        UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        Severity::Info,
        kind::ACTION,
        "after the kill"
    )));
    writer.flush_blocking().unwrap();
    let newest = journal.query(&EventFilter { limit: 1, ..Default::default() }).unwrap();
    assert_eq!(newest[0].message, "after the kill");
    assert!(newest[0].id > *committed.keys().max().unwrap());
}
