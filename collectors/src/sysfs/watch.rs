//! Knowing which file a collector is stuck on.
//!
//! A read from a hung driver (or a FIFO standing in for one) blocks its thread in the kernel and cannot be
//! cancelled. The supervisor therefore abandons the worker thread after the deadline and starts a fresh one;
//! to keep the fresh one from blocking on the same file, every potentially blocking syscall runs inside
//! [`ReadWatch::watch`], so the supervisor can see the path and quarantine it. The quarantine lifts when
//! the stuck syscall finally returns, or when the file at that path is replaced.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// What the supervisor keeps about an abandoned worker: the syscall it blamed, by sequence number, so
/// that the worker releases the quarantine when that very syscall returns.
#[derive(Debug, Default)]
struct Blamed {
    seq: u64,
    path: Option<Arc<Path>>,
}

/// The in-flight marker of one worker thread.
///
/// Every read of every collection goes through [`watch`](Self::watch), so marking one is a few atomic
/// stores rather than a lock, a reference count and an allocation-sized copy: the worker publishes the
/// address and length of the path it is about to read, and only a supervisor that gives up on the worker
/// copies it (see `abandon` for why that copy is sound).
#[derive(Debug)]
pub struct ReadWatch {
    /// When the syscall in flight started, in nanoseconds after `epoch`, plus one; 0 between syscalls.
    since: AtomicU64,
    /// Numbers the worker's syscalls; written by the worker only.
    seq: AtomicU64,
    /// The bytes of the path of the syscall in flight, borrowed from the worker's [`watch`](Self::watch).
    path_addr: AtomicUsize,
    path_len: AtomicUsize,
    /// Set by the supervisor when it gave up on this worker; its remaining reads fail fast.
    abandoned: AtomicBool,
    /// Held by the supervisor while it copies the path, and by an abandoned worker when a syscall returns.
    blamed: Mutex<Blamed>,
    epoch: Instant,
    quarantine: Arc<Quarantine>,
}

impl ReadWatch {
    pub fn new(quarantine: Arc<Quarantine>) -> Arc<Self> {
        Arc::new(ReadWatch {
            since: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            path_addr: AtomicUsize::new(0),
            path_len: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
            blamed: Mutex::new(Blamed::default()),
            epoch: Instant::now(),
            quarantine,
        })
    }

    pub fn quarantine(&self) -> &Arc<Quarantine> {
        &self.quarantine
    }

    /// Runs `syscall`, a potentially blocking operation on `path`, marked as in flight. Returns None without
    /// running it if the worker was abandoned, so an abandoned worker finishes its round quickly.
    pub fn watch<T>(&self, path: &Path, syscall: impl FnOnce() -> T) -> Option<T> {
        if self.abandoned.load(Ordering::Acquire) {
            return None;
        }
        let bytes = path.as_os_str().as_bytes();
        let seq = self.seq.load(Ordering::Relaxed) + 1;
        self.seq.store(seq, Ordering::Relaxed);
        self.path_addr.store(bytes.as_ptr() as usize, Ordering::Relaxed);
        self.path_len.store(bytes.len(), Ordering::Relaxed);
        // SeqCst, like the clearing store and the `abandoned` loads below, which `abandon` pairs with.
        self.since.store(self.ticks() + 1, Ordering::SeqCst);
        // Checked again once marked: a supervisor giving up at this moment either sees the syscall in
        // flight (and may blame it) or is seen here, and then the syscall does not start.
        let out = if self.abandoned.load(Ordering::SeqCst) { None } else { Some(syscall()) };
        self.since.store(0, Ordering::SeqCst);
        if self.abandoned.load(Ordering::SeqCst) {
            // The supervisor gave up on this worker, maybe while this syscall hung. Taking the lock waits
            // until it has finished copying `path`, which stays borrowed until this function returns.
            let mut blamed = lock(&self.blamed);
            if blamed.seq == seq
                && let Some(path) = blamed.path.take()
            {
                // The read that hung came back: the file may be read again, and this thread is free.
                self.quarantine.release(&path);
            }
        }
        out
    }

    fn ticks(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// When the syscall in progress started, if one is.
    pub fn in_flight_since(&self) -> Option<Instant> {
        match self.since.load(Ordering::Acquire) {
            0 => None,
            t => Some(self.epoch + Duration::from_nanos(t - 1)),
        }
    }

    /// Gives up on this worker. If a syscall has been in progress for at least `hung_after`, its file is
    /// quarantined and returned; a worker that is merely slow quarantines nothing.
    pub fn abandon(&self, hung_after: Duration) -> Option<Arc<Path>> {
        let mut blamed = lock(&self.blamed);
        self.abandoned.store(true, Ordering::SeqCst);
        let since = self.since.load(Ordering::SeqCst);
        if since == 0 || (self.epoch + Duration::from_nanos(since - 1)).elapsed() < hung_after {
            return None;
        }
        // Why the path's bytes are alive: `since` is stored and cleared only with SeqCst, so the load above
        // read the start of a syscall whose clearing store comes later in the single total order, and so
        // does the worker's load of `abandoned` that follows it; that load, coming after the store of true
        // above, reads true, and the worker then waits for `blamed`, held here, before its `watch` returns
        // and ends the borrow of the path. The address and length were stored before `since` (which the
        // load acquired), and the next syscall cannot overwrite them before that wait.
        let (addr, len) = (self.path_addr.load(Ordering::Relaxed), self.path_len.load(Ordering::Relaxed));
        // SAFETY: see above; the bytes were a `Path`'s and are unchanged.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
        let path: Arc<Path> = Path::new(OsStr::from_bytes(bytes)).into();
        self.quarantine.add(&path);
        *blamed = Blamed { seq: self.seq.load(Ordering::Relaxed), path: Some(Arc::clone(&path)) };
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
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    fn file(dir: &tempfile::TempDir, name: &str) -> Arc<Path> {
        let p: Arc<Path> = dir.path().join(name).into();
        std::fs::write(&p, "1\n").unwrap();
        p
    }

    /// A worker thread blocked in a "syscall" on `path` until the returned sender sends (or is dropped).
    fn blocked(w: &Arc<ReadWatch>, path: &Arc<Path>) -> (mpsc::Sender<()>, JoinHandle<Option<()>>) {
        let (tx, rx) = mpsc::channel::<()>();
        let (w2, p2) = (Arc::clone(w), Arc::clone(path));
        let worker = std::thread::spawn(move || w2.watch(&p2, || rx.recv().unwrap_or(())));
        while w.in_flight_since().is_none() {
            std::thread::yield_now();
        }
        (tx, worker)
    }

    #[test]
    fn a_hung_read_is_quarantined_until_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "temp1_input");
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        let (unblock, worker) = blocked(&w, &p);
        std::thread::sleep(Duration::from_millis(5));
        assert!(w.in_flight_since().is_some_and(|t| t.elapsed() >= Duration::from_millis(5)));
        assert_eq!(w.abandon(Duration::from_millis(1)).as_deref(), Some(&*p));
        assert!(q.holds(&p));
        assert_eq!(q.stuck_threads(), 1);
        unblock.send(()).unwrap();
        assert_eq!(worker.join().unwrap(), Some(()), "the syscall that was running completes");
        assert!(!q.holds(&p));
        assert_eq!(q.stuck_threads(), 0);
        assert_eq!(w.in_flight_since(), None);
    }

    #[test]
    fn an_abandoned_worker_releases_once_and_then_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (file(&dir, "temp1_input"), file(&dir, "temp2_input"));
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        let (unblock, worker) = blocked(&w, &p1);
        assert_eq!(w.abandon(Duration::ZERO).as_deref(), Some(&*p1));
        drop(unblock);
        worker.join().unwrap();
        assert_eq!(q.stuck_threads(), 0);
        // Further reads of the abandoned worker neither happen nor touch the count.
        assert_eq!(w.watch(&p2, || panic!("an abandoned worker must not read")), None::<()>);
        assert!(w.is_abandoned());
        assert_eq!(q.stuck_threads(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn a_slow_worker_is_abandoned_without_blaming_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "temp1_input");
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        let (unblock, worker) = blocked(&w, &p);
        assert_eq!(w.abandon(Duration::from_secs(60)), None, "the read in progress is recent");
        drop(unblock);
        worker.join().unwrap();
        assert!(q.is_empty());
        assert_eq!(q.stuck_threads(), 0);
        let w = ReadWatch::new(q.clone());
        assert_eq!(w.watch(&p, || 7), Some(7));
        assert_eq!(w.abandon(Duration::ZERO), None, "between reads: nothing to blame");
    }

    #[test]
    fn a_replaced_file_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "temp1_input");
        let q = Quarantine::new();
        let w = ReadWatch::new(q.clone());
        let (unblock, worker) = blocked(&w, &p);
        w.abandon(Duration::ZERO);
        std::fs::remove_file(&p).unwrap();
        std::fs::write(dir.path().join("other"), "keep the old inode number busy").unwrap();
        std::fs::write(&p, "2\n").unwrap();
        q.refresh();
        assert_eq!(q.releases(), 1);
        assert!(!q.holds(&p), "a new file at the path is not the one that hung");
        // The thread is still stuck on the old file until its syscall returns.
        assert_eq!(q.stuck_threads(), 1);
        drop(unblock);
        worker.join().unwrap();
        assert_eq!(q.stuck_threads(), 0);
    }

    /// Abandoning races with a worker that finishes syscall after syscall on paths that are freed as soon
    /// as each returns: whatever the supervisor blames must be one of those paths, intact.
    #[test]
    fn abandoning_a_busy_worker_blames_an_intact_path_or_none() {
        let q = Quarantine::new();
        let mut blamed_any = 0;
        for round in 0..200 {
            let w = ReadWatch::new(q.clone());
            let w2 = Arc::clone(&w);
            let worker = std::thread::spawn(move || {
                for i in 0.. {
                    let path = PathBuf::from(format!("/sys/class/hwmon/hwmon{round}/temp{i}_input"));
                    // Most of the worker's time is inside the "syscall", so most abandons blame one.
                    let syscall = || (0..2000u64).fold(i, |a, b| std::hint::black_box(a ^ b));
                    if w2.watch(&path, syscall).is_none() {
                        break;
                    }
                }
            });
            std::thread::sleep(Duration::from_micros(50));
            if let Some(blamed) = w.abandon(Duration::ZERO) {
                let s = blamed.to_str().expect("UTF-8");
                let prefix = format!("/sys/class/hwmon/hwmon{round}/temp");
                let n = s.strip_prefix(&prefix).and_then(|r| r.strip_suffix("_input")).expect("intact");
                assert!(n.parse::<u64>().is_ok(), "{s}");
                blamed_any += 1;
            }
            worker.join().unwrap();
            assert_eq!(q.stuck_threads(), 0, "every blamed syscall returned and released");
        }
        assert!(blamed_any > 0, "the race was exercised");
    }
}
