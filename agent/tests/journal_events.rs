//! The event journal through its public API: what goes in comes out, filtered and ordered as asked, and
//! survives restarts and retention as documented.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::effects::journal::{
    Event, EventFilter, Journal, JournalError, JournalOptions, Retention, SCHEMA_VERSION, Severity, UnsafeFile, kind,
};

/// 2026-11-23T22:00:00.123Z
const BASE_MS: u64 = 1_795_471_200_123;

fn at(offset_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(BASE_MS + offset_ms)
}

const DAY: Duration = Duration::from_secs(24 * 3600);

fn no_retention() -> JournalOptions {
    JournalOptions { retention: None, ..JournalOptions::default() }
}

fn open(dir: &tempfile::TempDir) -> Journal {
    Journal::open_with(Journal::path_in(dir.path()), no_retention()).unwrap()
}

fn store(journal: &Journal, events: impl IntoIterator<Item = Event>) {
    let writer = journal.writer();
    for e in events {
        assert!(writer.record(e), "queue has room");
    }
    writer.flush_blocking().unwrap();
}

fn all(journal: &Journal) -> Vec<Event> {
    journal.query(&EventFilter::default()).unwrap()
}

fn messages(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

/// A small history over two devices and the host, one event per second.
fn history() -> Vec<Event> {
    vec![
        Event::new(at(0), Severity::Info, kind::ACTION, "agent started"),
        Event::new(at(1000), Severity::Warning, kind::CONDITION_SET, "loihi0 hot").on_device("loihi0"),
        Event::new(at(2000), Severity::Critical, kind::PROBE_FAILING, "loihi1 probe failing").on_device("loihi1"),
        Event::new(at(3000), Severity::Info, kind::CONDITION_CLEARED, "loihi0 cool").on_device("loihi0"),
        Event::new(at(4000), Severity::Fatal, kind::CONDITION_SET, "loihi1 gone").on_device("loihi1"),
        Event::new(at(5000), Severity::Warning, kind::PROBE_FAILING, "loihi0 probe failing").on_device("loihi0"),
    ]
}

#[test]
fn journal_events_round_trip_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    let sent = vec![
        Event::new(at(0), Severity::Warning, kind::CONDITION_SET, "temperature 97 °C ≥ 95 °C").on_device("loihi0"),
        Event::new(at(1), Severity::Fatal, kind::ACTION, "host: power cycle requested\nsecond line"),
    ];
    store(&journal, sent.clone());

    let got = all(&journal);
    let expected: Vec<Event> = sent.into_iter().zip([1, 2]).rev().map(|(e, id)| Event { id, ..e }).collect();
    assert_eq!(got, expected, "ids assigned in order, newest first, every field intact");
}

#[test]
fn journal_time_is_kept_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(&journal, [Event::new(at(0) + Duration::from_micros(999), Severity::Info, kind::ACTION, "x")]);
    assert_eq!(all(&journal)[0].time, at(0));
}

#[test]
fn journal_filters_select_by_time_device_severity_and_kind_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(&journal, history());
    let query = |filter: EventFilter| messages(&journal.query(&filter).unwrap()).join(" | ");

    assert_eq!(
        query(EventFilter::default()),
        "loihi0 probe failing | loihi1 gone | loihi0 cool | loihi1 probe failing | loihi0 hot | agent started"
    );
    assert_eq!(
        query(EventFilter { since: Some(at(3000)), ..Default::default() }),
        "loihi0 probe failing | loihi1 gone | loihi0 cool",
        "since is inclusive"
    );
    assert_eq!(
        query(EventFilter { device: Some("loihi0".into()), ..Default::default() }),
        "loihi0 probe failing | loihi0 cool | loihi0 hot"
    );
    assert_eq!(
        query(EventFilter { min_severity: Some(Severity::Critical), ..Default::default() }),
        "loihi1 gone | loihi1 probe failing"
    );
    assert_eq!(
        query(EventFilter { min_severity: Some(Severity::Warning), ..Default::default() }),
        "loihi0 probe failing | loihi1 gone | loihi1 probe failing | loihi0 hot"
    );
    assert_eq!(
        query(EventFilter { kind: Some(kind::PROBE_FAILING.into()), ..Default::default() }),
        "loihi0 probe failing | loihi1 probe failing"
    );
    assert_eq!(query(EventFilter { limit: 2, ..Default::default() }), "loihi0 probe failing | loihi1 gone");
    assert_eq!(
        query(EventFilter {
            since: Some(at(1000)),
            device: Some("loihi0".into()),
            min_severity: Some(Severity::Warning),
            kind: Some(kind::CONDITION_SET.into()),
            limit: 10,
        }),
        "loihi0 hot"
    );
    assert_eq!(query(EventFilter { device: Some("loihi9".into()), ..Default::default() }), "");
}

#[test]
fn journal_newest_first_orders_by_event_time_not_by_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(
        &journal,
        [
            Event::new(at(2000), Severity::Info, kind::ACTION, "late"),
            Event::new(at(1000), Severity::Info, kind::ACTION, "early, reported late"),
            Event::new(at(2000), Severity::Info, kind::ACTION, "late, same time"),
        ],
    );
    assert_eq!(messages(&all(&journal)), ["late, same time", "late", "early, reported late"]);
}

#[test]
fn journal_the_default_limit_is_1000() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(&journal, (0..1005).map(|i| Event::new(at(i), Severity::Info, kind::ACTION, format!("{i}"))));
    let got = all(&journal);
    assert_eq!(got.len(), 1000);
    assert_eq!(got[0].message, "1004");
    assert_eq!(got[999].message, "5");
}

#[test]
fn journal_retention_by_age_deletes_events_older_than_max_age_before_now() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(&journal, history());
    // Events are one second apart; with now = at(5000) and a 2.5 s age limit, at(2500) is the cutoff.
    let deleted = journal.retain(Duration::from_millis(2500), u64::MAX, at(5000)).unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(messages(&all(&journal)), ["loihi0 probe failing", "loihi1 gone", "loihi0 cool"]);

    assert_eq!(journal.retain(Duration::from_millis(2500), u64::MAX, at(5000)).unwrap(), 0, "idempotent");
    assert_eq!(journal.retain(Duration::MAX, u64::MAX, at(5000)).unwrap(), 0, "an unbounded age deletes nothing");
}

#[test]
fn journal_retention_by_row_count_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(&journal, history());
    // Per retention class: the one `action` event is the audit trail's, kept apart from the other five.
    assert_eq!(journal.retain(365 * DAY, 2, at(5000)).unwrap(), 3);
    assert_eq!(messages(&all(&journal)), ["loihi0 probe failing", "loihi1 gone", "agent started"]);
    assert_eq!(journal.retain(365 * DAY, 0, at(5000)).unwrap(), 3);
    assert!(all(&journal).is_empty());
}

#[test]
fn journal_retention_applies_to_events_recorded_before_it_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    let writer = journal.writer();
    for e in history() {
        assert!(writer.record(e));
    }
    assert_eq!(journal.retain(365 * DAY, 1, at(5000)).unwrap(), 4);
    assert_eq!(messages(&all(&journal)), ["loihi0 probe failing", "agent started"]);
}

#[test]
fn journal_the_writer_applies_periodic_retention() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention { max_age: DAY, max_rows: 3, every_inserts: 1 };
    let options = JournalOptions { retention: Some(retention), ..JournalOptions::default() };
    let journal = Journal::open_with(Journal::path_in(dir.path()), options).unwrap();
    // The periodic run uses the wall clock: two days ago is expired whatever the test's speed.
    let now = SystemTime::now();
    let stale = Event::new(now - 2 * DAY, Severity::Critical, kind::CONDITION_SET, "stale");
    let fresh =
        (0..5).map(|i| Event::new(now - Duration::from_secs(60 - i), Severity::Info, kind::ACTION, format!("{i}")));
    store(&journal, std::iter::once(stale).chain(fresh));
    assert_eq!(messages(&all(&journal)), ["4", "3", "2"]);
}

#[test]
fn journal_reopening_keeps_events_counts_and_never_reuses_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let journal = Journal::open_with(&path, no_retention()).unwrap();
    store(&journal, history());
    let before = all(&journal);
    journal.close().unwrap();

    let journal = Journal::open_with(&path, no_retention()).unwrap();
    assert_eq!(all(&journal), before);
    assert_eq!(journal.retain(DAY, 0, at(5000)).unwrap(), 6);
    store(&journal, [Event::new(at(6000), Severity::Info, kind::ACTION, "after restart")]);
    assert_eq!(all(&journal)[0].id, 7, "ids continue after the newest rows were deleted");
    journal.close().unwrap();

    let journal = Journal::open_with(&path, no_retention()).unwrap();
    assert_eq!(messages(&all(&journal)), ["after restart"]);
    assert_eq!(journal.counts_by_device_severity().unwrap().iter().map(|c| c.2).sum::<u64>(), 7);
}

#[test]
fn journal_counts_by_device_and_severity_are_counters_across_retention_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let journal = Journal::open_with(&path, no_retention()).unwrap();
    store(&journal, history());
    store(&journal, [Event::new(at(6000), Severity::Warning, kind::CONDITION_SET, "again").on_device("loihi0")]);
    let expected = vec![
        (None, Severity::Info, 1),
        (Some("loihi0".to_string()), Severity::Info, 1),
        (Some("loihi0".to_string()), Severity::Warning, 3),
        (Some("loihi1".to_string()), Severity::Critical, 1),
        (Some("loihi1".to_string()), Severity::Fatal, 1),
    ];
    assert_eq!(journal.counts_by_device_severity().unwrap(), expected);

    journal.retain(DAY, 0, at(6000)).unwrap();
    journal.close().unwrap();
    let journal = Journal::open_with(&path, no_retention()).unwrap();
    assert_eq!(journal.counts_by_device_severity().unwrap(), expected, "retention and restart keep totals");
}

#[test]
fn journal_json_has_the_documented_shape() {
    let event = Event {
        id: 1,
        time: at(0),
        device: Some("loihi0".into()),
        severity: Severity::Warning,
        kind: kind::CONDITION_SET.into(),
        message: "temperature \"high\"".into(),
    };
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(
        json,
        r#"{"id":1,"time":"2026-11-23T22:00:00.123Z","time_unix_ms":1795471200123,"device":"loihi0","severity":"warning","kind":"condition_set","message":"temperature \"high\""}"#
    );
    assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);

    let host = Event { id: 2, device: None, severity: Severity::Fatal, ..event };
    let json = serde_json::to_value(&host).unwrap();
    assert_eq!(json["device"], serde_json::Value::Null);
    assert_eq!(json["severity"], "fatal");
    assert_eq!(serde_json::from_value::<Event>(json).unwrap(), host);
}

#[test]
fn journal_stored_events_serialize_with_their_assigned_id() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    store(&journal, [Event::new(at(0), Severity::Critical, kind::PROBE_FAILING, "3 failures").on_device("loihi1")]);
    let json = serde_json::to_string(&all(&journal)).unwrap();
    assert_eq!(
        json,
        r#"[{"id":1,"time":"2026-11-23T22:00:00.123Z","time_unix_ms":1795471200123,"device":"loihi1","severity":"critical","kind":"probe_failing","message":"3 failures"}]"#
    );
}

#[test]
fn journal_a_full_queue_drops_and_counts_while_the_disk_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let options = JournalOptions { queue_capacity: 8, max_batch: 8, retention: None };
    let journal = Journal::open_with(&path, options).unwrap();
    let writer = journal.writer();

    // Another process holding the write lock stands in for a disk that does not answer: the writer thread
    // takes at most one batch and then waits, so the queue fills.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let recorded = 1000;
    let accepted = (0..recorded)
        .filter(|i| writer.record(Event::new(at(*i), Severity::Info, kind::ACTION, format!("{i}"))))
        .count() as u64;
    assert!(writer.dropped() >= recorded - 16, "at most queue + one batch accepted; dropped {}", writer.dropped());
    assert_eq!(accepted + writer.dropped(), recorded);
    blocker.execute_batch("ROLLBACK").unwrap();

    writer.flush_blocking().unwrap();
    let stored = journal.query(&EventFilter { limit: 2000, ..Default::default() }).unwrap().len() as u64;
    assert_eq!(stored + journal.dropped(), recorded, "every accepted event is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_async_callers_record_flush_and_query_via_spawn_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(open(&dir));
    let writer = journal.writer();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let e = Event::new(at(t * 100 + i), Severity::Info, kind::ACTION, "from a task")
                        .on_device(format!("dev{t}"));
                    assert!(writer.record(e));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    writer.flush().await.unwrap();
    let reader = Arc::clone(&journal);
    let events = tokio::task::spawn_blocking(move || {
        reader.query(&EventFilter { device: Some("dev2".into()), ..Default::default() })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(events.len(), 25);
    assert!(events.iter().all(|e| e.device.as_deref() == Some("dev2")));
}

#[test]
fn journal_the_state_directory_is_created_private_to_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("var/lib/accel-agent");
    let journal = Journal::open(Journal::path_in(&state)).unwrap();
    assert_eq!(journal.path(), state.join("events.db"));
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    // The umask may remove bits but never adds any.
    assert_eq!(mode & !0o750, 0, "mode {mode:o}");
    assert!(state.join("events.db").exists());
}

#[test]
fn journal_a_corrupt_file_is_an_error_naming_it_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let garbage = b"this is not an SQLite database, just some bytes that happen to be here".repeat(100);
    std::fs::write(&path, &garbage).unwrap();

    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the caller decides what to do with it");
}

#[test]
fn journal_a_damaged_page_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let journal = Journal::open_with(&path, no_retention()).unwrap();
    store(&journal, (0..2000).map(|i| Event::new(at(i), Severity::Info, kind::ACTION, "x".repeat(100))));
    journal.close().unwrap();
    // Overwrite a page in the middle of the file (inside the events table); the header stays valid.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    bytes[mid..mid + 4096].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();

    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn journal_an_unopenable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = Journal::path_in(dir.path());
    std::fs::create_dir(&path).unwrap();
    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::Unsafe { what: UnsafeFile::NotRegular, .. }), "{err:?}");
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert!(err.to_string().contains("is not a regular file"), "{err}");
}

#[test]
fn journal_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    Journal::open(&path).unwrap().close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    drop(conn);

    let err = Journal::open(&path).unwrap_err();
    match &err {
        JournalError::SchemaTooNew { found, known, .. } => {
            assert_eq!((*found, *known), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn journal_an_empty_database_of_version_zero_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 0; VACUUM;").unwrap();
    drop(conn);

    let journal = Journal::open_with(&path, no_retention()).unwrap();
    store(&journal, history());
    assert_eq!(all(&journal).len(), 6);
    journal.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn journal_another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE inventory (item TEXT); INSERT INTO inventory VALUES ('gpu');").unwrap();
    drop(conn);

    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::Foreign { .. }), "{err:?}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).unwrap();
    assert_eq!(tables, 1, "no journal tables were added");
}

#[test]
fn journal_writers_drop_events_once_their_journal_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    let writer = journal.writer();
    store(&journal, [Event::new(at(0), Severity::Info, kind::ACTION, "before")]);
    drop(journal);
    assert!(!writer.record(Event::new(at(1), Severity::Info, kind::ACTION, "after")));
    assert_eq!(writer.dropped(), 1);

    let journal = open(&dir);
    assert_eq!(messages(&all(&journal)), ["before"]);
}

#[test]
fn journal_and_writer_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Journal>();
    shareable::<agent::effects::journal::JournalWriter>();
}

#[test]
fn journal_a_flood_of_log_matches_does_not_push_out_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir);
    let audit = [
        Event::new(at(1), Severity::Info, kind::OPERATOR, "maintenance on (by uid 0, pid 1)"),
        Event::new(at(2), Severity::Warning, kind::ACTION, "throttle level 1"),
        Event::new(at(3), Severity::Warning, kind::CONDITION_SET, "Overheating set"),
    ];
    let flood = (0..500).map(|i| Event::new(at(10 + i), Severity::Warning, kind::LOG_MATCH, format!("match {i}")));
    store(&journal, audit.into_iter().chain(flood));
    assert_eq!(journal.retain(365 * DAY, 100, at(5000)).unwrap(), 400, "log matches beyond their 100 go");
    let left = all(&journal);
    assert_eq!(left.iter().filter(|e| e.kind == kind::LOG_MATCH).count(), 100);
    assert_eq!(messages(&left)[..1], ["match 499"], "the newest matches stay");
    let kept: Vec<&str> = left.iter().filter(|e| e.kind != kind::LOG_MATCH).map(|e| e.kind.as_str()).collect();
    assert_eq!(kept, [kind::CONDITION_SET, kind::ACTION, kind::OPERATOR], "every audit event stays");
}

#[test]
fn journal_a_failing_write_is_reported_until_a_write_succeeds_and_its_events_counted_by_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let journal = Journal::open_with(&path, no_retention()).unwrap();
    let writer = journal.writer();
    // A disk that refuses writes (full, or the file made immutable), as SQLite reports it.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    for i in 0..3 {
        writer.record(Event::new(at(i), Severity::Critical, kind::CONDITION_SET, "lost").on_device("loihi0"));
    }
    assert!(writer.flush_blocking().is_err());
    assert_eq!(writer.dropped(), 3);
    assert_eq!(writer.dropped_by().get(&("loihi0".to_owned(), Severity::Critical)), Some(&3));
    let why = writer.failing().expect("failing while writes fail");
    assert!(why.contains("database or disk is full") && why.contains("events.db"), "{why}");
    other.execute_batch("DROP TRIGGER refuse").unwrap();
    writer.record(Event::new(at(9), Severity::Info, kind::ACTION, "stored"));
    writer.flush_blocking().unwrap();
    assert_eq!(writer.failing(), None, "a write that succeeds ends the failure");
    assert_eq!(writer.dropped(), 3, "what was lost stays counted");
}

#[test]
fn journal_close_folds_the_wal_into_the_file_even_after_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_in(dir.path());
    let journal = Journal::open_with(&path, no_retention()).unwrap();
    store(&journal, (0..10).map(|i| Event::new(at(i), Severity::Info, kind::ACTION, format!("e{i}"))));
    // Queries open the read-only connection's view of the WAL; it must not outlive the writer.
    assert_eq!(journal.query(&EventFilter::default()).unwrap().len(), 10);
    journal.close().unwrap();
    let wal = dir.path().join(format!("{}-wal", path.file_name().unwrap().to_str().unwrap()));
    assert!(!wal.exists(), "{} is left behind: the events live only there until the next open", wal.display());
    assert_eq!(Journal::open(&path).unwrap().query(&EventFilter::default()).unwrap().len(), 10);
}
