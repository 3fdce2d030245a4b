//! Knowing which file a collector is stuck on.
//!
//! A read from a hung driver (or a FIFO standing in for one) blocks its thread in the kernel and cannot be
//! cancelled. The supervisor therefore abandons the worker thread after the deadline and starts a fresh one;
//! to keep the fresh one from blocking on the same file, every potentially blocking syscall is bracketed by
//! [`ReadWatch::begin`]/[`ReadWatch::end`], so the supervisor can see the path and quarantine it. The
//! quarantine lifts when the stuck syscall finally returns, or when the file at that path is replaced.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Identity of the file that hung, so a replaced file at the same path is not held against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        // stat() does not open the file, so it neither blocks on a FIFO nor calls into a driver.
        std::fs::metadata(path).ok().map(|m| FileId { dev: m.dev(), ino: m.ino() })
    }
}

/// Paths whose reads are known to hang, shared by all worker generations of one collector.
#[derive(Debug, Default)]
pub struct Quarantine {
    entries: Mutex<HashMap<PathBuf, Option<FileId>>>,
    /// Worker threads still blocked in a syscall. They cannot be killed; this makes them visible.
    stuck_threads: AtomicUsize,
    /// Bumped whenever an entry is lifted, so readers know to look at the file again.
    releases: AtomicU64,
}

impl Quarantine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether `path` must not be touched. A quarantined path whose file was replaced is released.
    pub fn holds(&self, path: &Path) -> bool {
        let mut entries = lock(&self.entries);
        let Some(id) = entries.get(path).copied() else {
            return false;
        };
        match (id, FileId::of(path)) {
            (Some(old), Some(now)) if old != now => {
                entries.remove(path);
                self.releases.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => true,
        }
    }

    /// Lifts entries whose file was replaced (or removed). Called once per round by the supervisor; a
    /// stat per quarantined path, so cheap.
    pub fn refresh(&self) {
        let mut entries = lock(&self.entries);
        let before = entries.len();
        entries.retain(|path, id| match (*id, FileId::of(path)) {
            (Some(old), Some(now)) => old == now,
            (None, Some(_)) => true,
            (_, None) => false,
        });
        if entries.len() != before {
            self.releases.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many entries have been lifted so far.
    pub fn releases(&self) -> u64 {
        self.releases.load(Ordering::Relaxed)
    }

    pub fn stuck_threads(&self) -> usize {
        self.stuck_threads.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&self, path: &Path) {
        lock(&self.entries).insert(path.to_owned(), FileId::of(path));
        self.stuck_threads.fetch_add(1, Ordering::Relaxed);
    }

    fn release(&self, path: &Path) {
        lock(&self.entries).remove(path);
        // Each stuck thread releases at most once (ReadWatch clears its `quarantined` first); saturate
        // anyway, so a bug here can never wrap the count and stop the collector for good.
        let _ = self.stuck_threads.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.releases.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct InFlight {
    path: Arc<Path>,
    since: Instant,
}

#[derive(Debug, Default)]
struct WatchState {
    current: Option<InFlight>,
    /// Set by the supervisor when it gave up on this worker; its remaining reads fail fast.
    abandoned: bool,
    /// The path this worker was quarantined for, released when that read returns.
    quarantined: Option<Arc<Path>>,
}

/// The in-flight marker of one worker thread.
#[derive(Debug)]
pub struct ReadWatch {
    state: Mutex<WatchState>,
    quarantine: Arc<Quarantine>,
}

impl ReadWatch {
    pub fn new(quarantine: Arc<Quarantine>) -> Arc<Self> {
        Arc::new(ReadWatch { state: Mutex::new(WatchState::default()), quarantine })
    }

    pub fn quarantine(&self) -> &Arc<Quarantine> {
        &self.quarantine
    }

    /// Marks the start of a blocking syscall on `path`. Returns false if the worker was abandoned: the
    /// caller then skips the syscall, so an abandoned worker finishes its round quickly.
    pub fn begin(&self, path: &Arc<Path>) -> bool {
        let mut state = lock(&self.state);
        if state.abandoned {
            return false;
        }
        state.current = Some(InFlight { path: Arc::clone(path), since: Instant::now() });
        true
    }

    pub fn end(&self) {
        let mut state = lock(&self.state);
        let Some(done) = state.current.take() else { return };
        if state.quarantined.as_ref().is_some_and(|q| Arc::ptr_eq(q, &done.path)) {
            // The read that hung came back: the file may be read again, and this thread is free.
            state.quarantined = None;
            self.quarantine.release(&done.path);
        }
    }

    pub fn is_abandoned(&self) -> bool {
        lock(&self.state).abandoned
    }

    /// When the syscall in progress started, if one is.
    pub fn in_flight_since(&self) -> Option<Instant> {
        lock(&self.state).current.as_ref().map(|c| c.since)
    }

    /// Gives up on this worker. If a syscall has been in progress for at least `hung_after`, its file is
    /// quarantined and returned; a worker that is merely slow quarantines nothing.
    pub fn abandon(&self, hung_after: Duration) -> Option<Arc<Path>> {
        let mut state = lock(&self.state);
        state.abandoned = true;
        let current = state.current.as_ref()?;
        if current.since.elapsed() < hung_after {
            return None;
        }
        let path = Arc::clone(&current.path);
        self.quarantine.add(&path);
        state.quarantined = Some(Arc::clone(&path));
        Some(path)
    }
}

/// A poisoned lock here only means another thread panicked between two assignments; the data is still
/// a consistent map, so carry on rather than spread the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str) -> Arc<Path> {
        let p: Arc<Path> = dir.path().join(name).into();
        std::fs::write(&p, "1\n").unwrap();
        p
    }

    #[test]
    fn a_hung_read_is_quarantined_until_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "temp1_input");
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        assert!(w.begin(&p));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(w.abandon(Duration::from_millis(1)).as_deref(), Some(&*p));
        assert!(q.holds(&p));
        assert_eq!(q.stuck_threads(), 1);
        w.end();
        assert!(!q.holds(&p));
        assert_eq!(q.stuck_threads(), 0);
    }

    #[test]
    fn an_abandoned_worker_releases_once_and_then_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (file(&dir, "temp1_input"), file(&dir, "temp2_input"));
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        assert!(w.begin(&p1));
        w.abandon(Duration::ZERO);
        w.end();
        // Further reads of the abandoned worker neither happen nor touch the count.
        assert!(!w.begin(&p2));
        w.end();
        w.end();
        assert_eq!(q.stuck_threads(), 0);
    }

    #[test]
    fn a_slow_worker_is_abandoned_without_blaming_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "temp1_input");
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        assert!(w.begin(&p));
        assert_eq!(w.abandon(Duration::from_secs(60)), None, "the read in progress is recent");
        w.end();
        assert!(q.is_empty());
        assert_eq!(q.stuck_threads(), 0);
        let w = ReadWatch::new(q.clone());
        assert_eq!(w.abandon(Duration::ZERO), None, "between reads: nothing to blame");
    }

    #[test]
    fn a_replaced_file_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "temp1_input");
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        assert!(w.begin(&p));
        w.abandon(Duration::ZERO);
        std::fs::remove_file(&p).unwrap();
        std::fs::write(dir.path().join("other"), "keep the old inode number busy").unwrap();
        std::fs::write(&p, "2\n").unwrap();
        q.refresh();
        assert_eq!(q.releases(), 1);
        assert!(!q.holds(&p), "a new file at the path is not the one that hung");
        // The thread is still stuck on the old file until its syscall returns.
        assert_eq!(q.stuck_threads(), 1);
    }
}
