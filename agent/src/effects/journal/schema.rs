//! Opening the database file: the state directory, pragmas, the schema version and migrations.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::JournalError;

/// Schema migrations; entry `i` takes the database from version `i` to `i + 1` (SQLite's `user_version`).
/// Append only: a released entry never changes.
const MIGRATIONS: &[&str] = &[
    // Version 1. AUTOINCREMENT so that ids are never reused after retention deletes the newest rows:
    // consumers remember ids. `event_counts` holds totals that retention does not decrease, so
    // `accel_events_total` stays a counter across restarts.
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        device TEXT,
        severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical', 'fatal')),
        kind TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_time ON events (time_ms);
    CREATE INDEX events_device_time ON events (device, time_ms);
    CREATE TABLE event_counts (
        device TEXT,
        severity TEXT NOT NULL,
        total INTEGER NOT NULL
    );",
    // Version 2. Retention keeps each class of kinds (log matches, the audit trail, refusals, the rest)
    // separately, and `kind=` queries are common: both find a kind's newest events through this index.
    "CREATE INDEX events_kind_time ON events (kind, time_ms);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a statement waits for another connection's lock: another agent migrating the same file, or
/// a backup tool reading it. Long enough for those, short enough that a wedged peer surfaces as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the connection all writes go through, creating the directory and the file if missing and bringing
/// the schema up to date.
pub(super) fn open_writer(path: &Path) -> Result<Connection, JournalError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|source| JournalError::CreateDir { path: dir.to_owned(), source })?;
    }
    let real = real_path(path)?;
    refuse_unsafe_files(&real)?;
    // Without SQLITE_OPEN_URI, a path that happens to start with "file:" is still just a path.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let mut conn = Connection::open_with_flags(&real, flags)
        .map_err(|source| JournalError::Open { path: path.to_owned(), source })?;
    let sql = |e| classify(path, e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    limit_page_cache(&conn, path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0)).map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::NoWal { path: path.to_owned(), mode });
    }
    // WAL with synchronous=NORMAL already keeps every committed transaction across a SIGKILL: the commit is
    // in the WAL file in the page cache, which outlives the process. FULL additionally fsyncs the WAL on
    // each commit, so commits also survive power loss and kernel panics. The events written just before a
    // node dies (a fatal hardware error, then a hard reset) are the ones most worth keeping, and the cost is
    // one fsync per batch on the writer thread, off the async runtime.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
    // A damaged file is reported at open, where the caller can decide to move it aside, rather than at
    // some later write. quick_check reads every page once; the journal is kept small by retention.
    let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(sql)?;
    if check != "ok" {
        return Err(JournalError::Corrupt { path: path.to_owned(), detail: check });
    }
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Opens a connection for queries. SQLite enforces read-only, so a query bug cannot damage the journal; in
/// WAL mode it reads a consistent snapshot without waiting for the writer.
pub(super) fn open_reader(path: &Path) -> Result<Connection, JournalError> {
    let real = real_path(path)?;
    refuse_unsafe_files(&real)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(&real, flags)
        .map_err(|source| JournalError::Open { path: path.to_owned(), source })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| classify(path, e))?;
    limit_page_cache(&conn, path)?;
    Ok(conn)
}

/// `path` with its directory resolved. `SQLITE_OPEN_NOFOLLOW` refuses a symlink in any component of the
/// path, and the directories above the state directory (`/var/lib` on a host that moved it to another
/// disk) are the administrator's, not something a state-directory user can plant: only the file names in
/// the state directory itself must not be links.
fn real_path(path: &Path) -> Result<std::path::PathBuf, JournalError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(path.to_owned());
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let dir = std::fs::canonicalize(dir).map_err(|source| JournalError::Inspect { path: dir.to_owned(), source })?;
    Ok(dir.join(name))
}

/// The files SQLite opens beside the database: the write-ahead log, its shared-memory index, and the
/// rollback journal (used only while switching to WAL).
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Refuses a database, or a companion of it, that is not a plain file of its own: whoever can write the
/// state directory could plant a symlink or a hard link there to make the agent (root) create or write a
/// file elsewhere. SQLite's `SQLITE_OPEN_NOFOLLOW` refuses a symlink anywhere in the database path, and
/// its unix VFS opens every file with `O_NOFOLLOW`; checking first names the file and what is wrong with it,
/// and covers hard links, which neither does.
fn refuse_unsafe_files(path: &Path) -> Result<(), JournalError> {
    let mut files = vec![path.to_owned()];
    files.extend(COMPANIONS.iter().map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    }));
    for file in files {
        let meta = match std::fs::symlink_metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(JournalError::Inspect { path: file, source }),
        };
        let unsafe_kind = if meta.file_type().is_symlink() {
            Some(UnsafeFile::Symlink)
        } else if !meta.file_type().is_file() {
            Some(UnsafeFile::NotRegular)
        } else if meta.nlink() > 1 {
            Some(UnsafeFile::HardLinked { links: meta.nlink() })
        } else {
            None
        };
        if let Some(what) = unsafe_kind {
            return Err(JournalError::Unsafe { path: file, what });
        }
    }
    Ok(())
}

/// Why a file in the state directory is not used as (part of) the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeFile {
    Symlink,
    NotRegular,
    HardLinked { links: u64 },
}

impl std::fmt::Display for UnsafeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsafeFile::Symlink => f.write_str("is a symbolic link"),
            UnsafeFile::NotRegular => f.write_str("is not a regular file"),
            UnsafeFile::HardLinked { links } => write!(f, "is a hard link ({links} names for one file)"),
        }
    }
}

/// Each connection's page cache may grow to 2 MiB by default, and the open-time `quick_check` reads every
/// page: on a host with a large journal both connections would keep megabytes of pages the agent rarely
/// reads again (writes append; queries are occasional and the kernel's page cache serves them). 256 KiB
/// each keeps the resident memory of an agent with a year of events close to that of a new one.
fn limit_page_cache(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    conn.pragma_update(None, "cache_size", -256).map_err(|e| classify(path, e))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    // IMMEDIATE takes the write lock before reading the version, so two agents opening a new file at the
    // same time cannot both run the same migration.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| classify(path, e))?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| classify(path, e))?;
    if found > SCHEMA_VERSION {
        return Err(JournalError::SchemaTooNew { path: path.to_owned(), found, known: SCHEMA_VERSION });
    }
    if found < 0 {
        return Err(JournalError::Foreign { path: path.to_owned() });
    }
    if found == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if tables > 0 {
            return Err(JournalError::Foreign { path: path.to_owned() });
        }
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let failed = |source| JournalError::Migrate { path: path.to_owned(), from: found, source };
    for (from, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(step).map_err(failed)?;
        tx.pragma_update(None, "user_version", from as i64 + 1).map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

/// Maps an SQLite error to the journal error for `path`, telling corruption apart so the caller can act on it.
pub(super) fn classify(path: &Path, e: rusqlite::Error) -> JournalError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            JournalError::Corrupt { path: path.to_owned(), detail: e.to_string() }
        }
        _ => JournalError::Sql { path: path.to_owned(), source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_odd_files_in_place_of_the_journal_or_its_companions_are_refused_untouched() {
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("victim");
        for name in ["events.db", "events.db-wal", "events.db-shm", "events.db-journal"] {
            for plant in ["symlink", "dangling", "hardlink", "dir"] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("events.db");
                let planted = dir.path().join(name);
                std::fs::write(&victim, "precious").unwrap();
                let expected = match plant {
                    "symlink" => {
                        std::os::unix::fs::symlink(&victim, &planted).unwrap();
                        UnsafeFile::Symlink
                    }
                    "dangling" => {
                        std::os::unix::fs::symlink(elsewhere.path().join("absent"), &planted).unwrap();
                        UnsafeFile::Symlink
                    }
                    "hardlink" => {
                        // On one filesystem: a second name for a file in the state directory.
                        let other = dir.path().join("other");
                        std::fs::write(&other, "precious").unwrap();
                        std::fs::hard_link(&other, &planted).unwrap();
                        UnsafeFile::HardLinked { links: 2 }
                    }
                    _ => {
                        std::fs::create_dir(&planted).unwrap();
                        UnsafeFile::NotRegular
                    }
                };
                for result in [open_writer(&path).map(drop), open_reader(&path).map(drop)] {
                    match result {
                        Err(JournalError::Unsafe { path: p, what }) => {
                            assert_eq!(what, expected, "{name} {plant}");
                            assert!(p.ends_with(name), "{name} {plant}: names {}", p.display());
                        }
                        other => panic!("{name} {plant}: {other:?}"),
                    }
                }
                assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "{name} {plant}");
                assert!(!elsewhere.path().join("absent").exists(), "{name} {plant}");
                let err = open_writer(&path).unwrap_err().to_string();
                assert!(err.contains(name) && err.contains(&expected.to_string()), "{err}");
            }
        }
    }

    #[test]
    fn a_symlinked_directory_above_the_journal_is_followed() {
        // The directories above the state directory are the administrator's: /var/lib moved to another
        // disk and linked back must not lose the journal.
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let linked = links.path().join("state");
        std::os::unix::fs::symlink(real.path(), &linked).unwrap();
        drop(open_writer(&linked.join("events.db")).unwrap());
        assert!(real.path().join("events.db").is_file());
    }

    #[test]
    fn both_connections_keep_a_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let kib = |c: &Connection| c.pragma_query_value(None, "cache_size", |r| r.get::<_, i64>(0)).unwrap();
        let writer = open_writer(&path).unwrap();
        assert_eq!(kib(&writer), -256, "negative: KiB, not pages");
        assert_eq!(kib(&open_reader(&path).unwrap()), -256);
    }
}
