//! Reading sysfs attribute files cheaply and safely.
//!
//! Attribute files that change between polls are opened once and re-read with `pread(fd, buf, 0)`: sysfs
//! regenerates the value on every read at offset 0, so this costs one syscall per value instead of three
//! (open/read/close). How many stay open is bounded by an [`OpenFiles`] budget shared by all collectors;
//! beyond it a file is opened per read. Attributes that change only on hot-plug or a driver reload
//! (limits, labels) are read at discovery and hold no descriptor. Every potentially blocking syscall is
//! reported to a [`ReadWatch`] so that a hung one can be identified and quarantined by the supervisor.
//! Failures are classified and counted, never turned into a zero.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::watch::ReadWatch;

/// Largest attribute value read. sysfs attributes are at most one page.
const ATTR_BUF: usize = 4096;

/// Why a value is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadFailure {
    /// ENODATA: a disabled channel, or firmware that has nothing to report.
    NoData,
    /// EAGAIN: the driver could not get a reading right now.
    Again,
    /// ENODEV: the device is not operational (habanalabs answers this for every read while in reset).
    NoDevice,
    /// EINVAL: the driver rejects the read in its current mode.
    Invalid,
    /// ENOENT: the file or its directory vanished (hot-unplug between listing and reading).
    NotFound,
    /// EACCES/EPERM.
    Permission,
    /// A directory (or other non-file) where an attribute file belongs.
    NotAFile,
    /// The file is quarantined because a read of it hung.
    Hung,
    /// The content is not what the attribute's format says.
    Parse,
    /// A number outside the physical bounds of its unit (see `plausible`).
    Implausible,
    /// Any other I/O error.
    Io,
    /// EMFILE/ENFILE: the agent is out of file descriptors. The agent's own trouble, never the device's:
    /// the model keeps what it last read (see `collectors::fault`).
    NoDescriptors,
    /// A file name no metric name can be made from: not UTF-8, or nothing left once cleaned (`temp1_-`).
    /// The file is skipped.
    BadName,
    /// A file whose name cleans to the same series as another's (`temp4_foo-bar` beside `temp4_foo_bar`):
    /// one is exported, the other skipped and counted (see docs/metrics.md for which wins).
    NameConflict,
}

impl ReadFailure {
    pub const ALL: [ReadFailure; 14] = [
        ReadFailure::NoData,
        ReadFailure::Again,
        ReadFailure::NoDevice,
        ReadFailure::Invalid,
        ReadFailure::NotFound,
        ReadFailure::Permission,
        ReadFailure::NotAFile,
        ReadFailure::Hung,
        ReadFailure::Parse,
        ReadFailure::Implausible,
        ReadFailure::Io,
        ReadFailure::BadName,
        ReadFailure::NameConflict,
        ReadFailure::NoDescriptors,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            ReadFailure::NoData => "enodata",
            ReadFailure::Again => "eagain",
            ReadFailure::NoDevice => "enodev",
            ReadFailure::Invalid => "einval",
            ReadFailure::NotFound => "enoent",
            ReadFailure::Permission => "permission",
            ReadFailure::NotAFile => "not_a_file",
            ReadFailure::Hung => "hung",
            ReadFailure::Parse => "parse",
            ReadFailure::Implausible => "implausible",
            ReadFailure::Io => "io",
            ReadFailure::BadName => "bad_name",
            ReadFailure::NameConflict => "name_conflict",
            ReadFailure::NoDescriptors => "emfile",
        }
    }

    /// Conditions drivers report in normal operation: counted, logged at debug level only.
    pub fn is_expected(self) -> bool {
        matches!(
            self,
            ReadFailure::NoData
                | ReadFailure::Again
                | ReadFailure::NoDevice
                | ReadFailure::Invalid
                | ReadFailure::NotFound
        )
    }

    pub fn from_io(e: &io::Error) -> ReadFailure {
        match e.raw_os_error() {
            Some(libc::ENODATA) => ReadFailure::NoData,
            Some(libc::EAGAIN) => ReadFailure::Again,
            Some(libc::ENODEV) | Some(libc::ENXIO) => ReadFailure::NoDevice,
            Some(libc::EINVAL) => ReadFailure::Invalid,
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => ReadFailure::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) => ReadFailure::Permission,
            Some(libc::EISDIR) => ReadFailure::NotAFile,
            Some(libc::EMFILE) | Some(libc::ENFILE) => ReadFailure::NoDescriptors,
            _ => ReadFailure::Io,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadFailure::NoData => "no data (ENODATA)",
            ReadFailure::Again => "try again (EAGAIN)",
            ReadFailure::NoDevice => "device not operational (ENODEV)",
            ReadFailure::Invalid => "invalid in the current mode (EINVAL)",
            ReadFailure::NotFound => "vanished (ENOENT)",
            ReadFailure::Permission => "permission denied",
            ReadFailure::NotAFile => "not a regular file",
            ReadFailure::Hung => "quarantined: an earlier read hung",
            ReadFailure::Parse => "unparsable value",
            ReadFailure::Implausible => "value outside the physical bounds of its unit",
            ReadFailure::Io => "I/O error",
            ReadFailure::BadName => "file name cannot be a metric name",
            ReadFailure::NameConflict => "file name cleans to the same series as another file's",
            ReadFailure::NoDescriptors => "the agent is out of file descriptors",
        })
    }
}

/// A failed read with the file it concerns.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {failure}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    pub failure: ReadFailure,
}

/// Failure counts of one collection, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    counts: [u64; ReadFailure::ALL.len()],
}

impl ReadStats {
    pub fn record(&mut self, f: ReadFailure) {
        self.counts[f.index()] += 1;
    }

    pub fn get(&self, f: ReadFailure) -> u64 {
        self.counts[f.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn add(&mut self, other: &ReadStats) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (ReadFailure, u64)> + '_ {
        ReadFailure::ALL.iter().map(|f| (*f, self.counts[f.index()]))
    }
}

/// How many attribute files all collectors together may keep open, and how many they do. Shared by every
/// collector's worker; a file beyond the budget is opened per read instead.
#[derive(Debug)]
pub struct OpenFiles {
    limit: AtomicUsize,
    open: AtomicUsize,
}

impl OpenFiles {
    pub fn new(limit: usize) -> Arc<OpenFiles> {
        Arc::new(OpenFiles { limit: AtomicUsize::new(limit), open: AtomicUsize::new(0) })
    }

    /// Attribute files currently held open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// A new budget (after a reload). Files already open stay open until their collector re-discovers.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    fn take(self: &Arc<Self>) -> Option<OpenSlot> {
        let limit = self.limit();
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(OpenSlot(Arc::clone(self)))
    }
}

/// One unit of the budget, given back when the attribute is dropped.
#[derive(Debug)]
struct OpenSlot(Arc<OpenFiles>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An attribute file, kept open for re-reading when the budget allows.
#[derive(Debug)]
pub struct Attr {
    path: Arc<Path>,
    handle: Handle,
}

#[derive(Debug)]
enum Handle {
    /// Open for re-reading, counted against the budget (the slot is given back on drop).
    Kept { file: File, _slot: OpenSlot },
    /// Opened for one read (a static attribute at discovery); closed when the `Attr` is dropped.
    Transient(File),
    /// Beyond the open-files budget, or the process ran out of descriptors at discovery: the file is
    /// re-opened on each read, slower but still correct.
    Reopen,
}

impl Attr {
    pub fn path(&self) -> &Arc<Path> {
        &self.path
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// How often a reader re-discovers unless told otherwise.
pub const DEFAULT_REDISCOVER: Duration = Duration::from_secs(60);

/// The I/O context of one collector's worker thread: its watch, its scratch buffer, its failure counts,
/// the open-files budget, and the time the current collection started (passed in by the worker).
pub struct SysfsIo {
    watch: Arc<ReadWatch>,
    open_files: Arc<OpenFiles>,
    rediscover_every: Duration,
    /// When the current collection started; None until the first [`begin`](Self::begin).
    now: Option<Instant>,
    buf: Box<[u8; ATTR_BUF]>,
    stats: ReadStats,
    /// (path, reason) pairs already logged: a broken sensor read every 5 s must not flood the journal.
    logged: HashSet<(Arc<Path>, ReadFailure)>,
    /// The quarantine's release count when last looked at.
    seen_releases: u64,
}

impl SysfsIo {
    pub fn new(watch: Arc<ReadWatch>) -> Self {
        let seen_releases = watch.quarantine().releases();
        SysfsIo {
            watch,
            open_files: OpenFiles::new(usize::MAX),
            rediscover_every: DEFAULT_REDISCOVER,
            now: None,
            buf: Box::new([0; ATTR_BUF]),
            stats: ReadStats::default(),
            logged: HashSet::new(),
            seen_releases,
        }
    }

    /// Shares an open-files budget with other collectors (the default is unbounded).
    pub fn with_open_files(mut self, budget: Arc<OpenFiles>) -> Self {
        self.open_files = budget;
        self
    }

    /// How often readers re-discover their objects and re-read static attributes.
    pub fn with_rediscover_every(mut self, every: Duration) -> Self {
        self.rediscover_every = every;
        self
    }

    /// Starts a collection at `now`.
    pub fn begin(&mut self, now: Instant) {
        self.now = Some(now);
    }

    /// When the current collection started, if the worker said.
    pub fn now(&self) -> Option<Instant> {
        self.now
    }

    pub fn rediscover_every(&self) -> Duration {
        self.rediscover_every
    }

    /// Whether a quarantined file was lifted since the last call: readers then re-discover, to pick the
    /// file up again.
    pub fn quarantine_lifted(&mut self) -> bool {
        let now = self.watch.quarantine().releases();
        std::mem::replace(&mut self.seen_releases, now) != now
    }

    /// Returns and resets the failure counts of the collection that just finished.
    pub fn take_stats(&mut self) -> ReadStats {
        std::mem::take(&mut self.stats)
    }

    /// Counts a failure and logs it the first time it is seen for this path.
    pub fn fail(&mut self, path: &Arc<Path>, failure: ReadFailure) -> ReadFailure {
        if self.watch.is_abandoned() {
            // Nobody will see this round's results; do not log on its behalf.
            return failure;
        }
        self.stats.record(failure);
        if self.logged.len() < 10_000 && self.logged.insert((Arc::clone(path), failure)) {
            if failure.is_expected() {
                tracing::debug!(path = %path.display(), "sysfs read: {failure}");
            } else {
                tracing::warn!(path = %path.display(), "sysfs read: {failure}");
            }
        }
        failure
    }

    fn guarded<T>(&self, path: &Arc<Path>, f: impl FnOnce() -> io::Result<T>) -> Result<T, ReadFailure> {
        if self.watch.quarantine().holds(path) {
            return Err(ReadFailure::Hung);
        }
        watched(&self.watch, path, f)
    }

    /// Opens an attribute file for repeated reads.
    pub fn open(&mut self, path: impl Into<Arc<Path>>) -> Result<Attr, ReadFailure> {
        let path = path.into();
        if self.watch.quarantine().holds(&path) {
            return Err(self.fail(&path, ReadFailure::Hung));
        }
        let Some(opened) = self.watch.watch(&path, || File::open(&path)) else {
            return Err(ReadFailure::Hung);
        };
        match opened {
            // Over the budget the descriptor is closed again: opening checked that the file is there.
            Ok(file) => {
                let handle = match self.open_files.take() {
                    Some(slot) => Handle::Kept { file, _slot: slot },
                    None => Handle::Reopen,
                };
                Ok(Attr { path, handle })
            }
            // Out of descriptors: degrade to open-per-read instead of losing the sensor.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                Ok(Attr { path, handle: Handle::Reopen })
            }
            Err(e) => Err(self.fail(&path, ReadFailure::from_io(&e))),
        }
    }

    /// Reads the attribute into the scratch buffer; returns the length.
    fn read_into_buf(&mut self, attr: &Attr) -> Result<usize, ReadFailure> {
        let buf = &mut self.buf[..];
        let n = match &attr.handle {
            Handle::Kept { file, .. } | Handle::Transient(file) => {
                watched(&self.watch, &attr.path, || file.read_at(buf, 0))
            }
            Handle::Reopen => watched(&self.watch, &attr.path, || File::open(&attr.path)?.read_at(buf, 0)),
        };
        n.map_err(|f| self.fail(&attr.path, f))
    }

    /// Reads a value that must be UTF-8 (numbers, states), trimmed.
    pub fn read<'a>(&'a mut self, attr: &Attr) -> Result<&'a str, ReadFailure> {
        let n = self.read_into_buf(attr)?;
        if std::str::from_utf8(&self.buf[..n]).is_err() {
            return Err(self.fail(&attr.path, ReadFailure::Parse));
        }
        Ok(std::str::from_utf8(&self.buf[..n]).unwrap_or_default().trim())
    }

    /// Reads free text (labels, model names); invalid UTF-8 is replaced, not rejected.
    pub fn read_text(&mut self, attr: &Attr) -> Result<String, ReadFailure> {
        let n = self.read_into_buf(attr)?;
        Ok(String::from_utf8_lossy(&self.buf[..n]).trim().to_owned())
    }

    /// Reads a numeric attribute. Only the first line counts: a value rewritten in place can leave a
    /// longer old value's tail after the newline.
    pub fn read_f64(&mut self, attr: &Attr) -> Option<f64> {
        let text = self.read(attr).ok()?;
        match parse_number(text) {
            Some(v) => Some(v),
            None => {
                let path = Arc::clone(&attr.path);
                self.fail(&path, ReadFailure::Parse);
                None
            }
        }
    }

    /// Opens, reads and closes a file whose content does not change (names, labels, types).
    pub fn read_once(&mut self, path: &Path) -> Result<String, ReadFailure> {
        let attr = self.transient(path)?;
        self.read_text(&attr)
    }

    /// Opens, reads and closes a numeric attribute that changes only on hot-plug or a driver reload
    /// (limits such as `temp1_crit`, `max_energy_range_uj`): read at discovery, it holds no descriptor.
    pub fn read_once_f64(&mut self, path: &Path) -> Option<f64> {
        let attr = self.transient(path).ok()?;
        self.read_f64(&attr)
    }

    /// An attribute opened outside the budget, closed when dropped.
    fn transient(&mut self, path: &Path) -> Result<Attr, ReadFailure> {
        let arc: Arc<Path> = path.into();
        match self.guarded(&arc, || File::open(&arc)) {
            Ok(file) => Ok(Attr { path: arc, handle: Handle::Transient(file) }),
            Err(f) => Err(self.fail(&arc, f)),
        }
    }

    /// Like [`read_once`](Self::read_once) but a missing file is not a failure: many attributes are optional.
    pub fn read_optional(&mut self, path: &Path) -> Option<String> {
        let arc: Arc<Path> = path.into();
        match self.guarded(&arc, || File::open(&arc)) {
            Ok(file) => self.read_text(&Attr { path: arc, handle: Handle::Transient(file) }).ok(),
            Err(ReadFailure::NotFound) => None,
            Err(f) => {
                self.fail(&arc, f);
                None
            }
        }
    }

    /// Lists a directory. Entries are sorted by name for deterministic output.
    pub fn list_dir(&mut self, path: &Path) -> Result<Vec<DirEntry>, ReadFailure> {
        let arc: Arc<Path> = path.into();
        match self.list(&arc) {
            Ok(listed) => Ok(self.count_bad_names(listed)),
            Err(f) => Err(self.fail(&arc, f)),
        }
    }

    /// Like [`list_dir`](Self::list_dir), but a directory that does not exist is `None`, not a failure:
    /// a kernel without a class simply has no such devices.
    pub fn list_dir_optional(&mut self, path: &Path) -> Result<Option<Vec<DirEntry>>, ReadFailure> {
        let arc: Arc<Path> = path.into();
        match self.list(&arc) {
            Ok(listed) => Ok(Some(self.count_bad_names(listed))),
            Err(ReadFailure::NotFound) => Ok(None),
            Err(f) => Err(self.fail(&arc, f)),
        }
    }

    /// Counts the entries [`list`](Self::list) left out because their names are not UTF-8.
    fn count_bad_names(&mut self, (listed, bad): (Vec<DirEntry>, Vec<PathBuf>)) -> Vec<DirEntry> {
        for path in bad {
            self.fail(&Arc::from(path), ReadFailure::BadName);
        }
        listed
    }

    /// The entries of a directory, sorted, and the paths of those left out: a name that is not UTF-8 is
    /// no kernel attribute's and could not become a metric or label name.
    fn list(&self, path: &Arc<Path>) -> Result<(Vec<DirEntry>, Vec<PathBuf>), ReadFailure> {
        let (mut listed, bad) = self.guarded(path, || {
            let (mut out, mut bad) = (Vec::new(), Vec::new());
            for entry in std::fs::read_dir(path)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    bad.push(entry.path());
                    continue;
                };
                let kind = match entry.file_type() {
                    Ok(t) if t.is_symlink() => EntryKind::Symlink,
                    Ok(t) if t.is_dir() => EntryKind::Dir,
                    Ok(t) if t.is_file() => EntryKind::File,
                    _ => EntryKind::Other,
                };
                out.push(DirEntry { name, kind });
            }
            Ok((out, bad))
        })?;
        listed.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        Ok((listed, bad))
    }
}

/// Brackets one blocking syscall with the watch. An attribute that is already open is not re-checked
/// against the quarantine: it was opened by this worker generation, after the quarantine was set.
fn watched<T>(watch: &ReadWatch, path: &Path, f: impl FnOnce() -> io::Result<T>) -> Result<T, ReadFailure> {
    match watch.watch(path, f) {
        None => Err(ReadFailure::Hung),
        Some(r) => r.map_err(|e| ReadFailure::from_io(&e)),
    }
}

/// Parses a sysfs number: an integer or a decimal, possibly negative.
pub fn parse_number(text: &str) -> Option<f64> {
    let first = text.lines().next()?.trim();
    if first.is_empty() {
        return None;
    }
    if let Ok(i) = first.parse::<i64>() {
        return Some(i as f64);
    }
    // u64 counters beyond i64 (energy_uj on long-running hosts can be large).
    if let Ok(u) = first.parse::<u64>() {
        return Some(u as f64);
    }
    first.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Orders "hwmon2" before "hwmon10".
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head.to_owned(), tail.parse::<u64>().ok())
    };
    let (ha, na) = split(a);
    let (hb, nb) = split(b);
    ha.cmp(&hb).then(na.cmp(&nb)).then(a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::watch::Quarantine;

    fn io() -> SysfsIo {
        SysfsIo::new(ReadWatch::new(Quarantine::new()))
    }

    #[test]
    fn numbers_parse_like_the_kernel_writes_them() {
        assert_eq!(parse_number("45000\n"), Some(45000.0));
        assert_eq!(parse_number("  -5000  \n"), Some(-5000.0));
        assert_eq!(parse_number("18446744073709551615"), Some(18446744073709551615.0));
        assert_eq!(parse_number("1.5"), Some(1.5));
        assert_eq!(parse_number("5\n00000\n"), Some(5.0), "only the first line counts");
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("N/A"), None);
        assert_eq!(parse_number("inf"), None);
    }

    #[test]
    fn reread_sees_in_place_updates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("temp1_input");
        std::fs::write(&p, "40000\n").unwrap();
        let mut io = io();
        let a = io.open(p.as_path()).unwrap();
        assert_eq!(io.read_f64(&a), Some(40000.0));
        std::fs::write(&p, "41000 \n").unwrap();
        assert_eq!(io.read_f64(&a), Some(41000.0));
    }

    #[test]
    fn failures_are_classified_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut io = io();
        assert_eq!(io.open(dir.path().join("missing").as_path()).unwrap_err(), ReadFailure::NotFound);
        std::fs::create_dir(dir.path().join("temp1_input")).unwrap();
        let a = io.open(dir.path().join("temp1_input").as_path()).unwrap();
        assert_eq!(io.read(&a).unwrap_err(), ReadFailure::NotAFile);
        std::fs::write(dir.path().join("bad"), "garbage\n").unwrap();
        let b = io.open(dir.path().join("bad").as_path()).unwrap();
        assert_eq!(io.read_f64(&b), None);
        let stats = io.take_stats();
        assert_eq!(stats.get(ReadFailure::NotFound), 1);
        assert_eq!(stats.get(ReadFailure::NotAFile), 1);
        assert_eq!(stats.get(ReadFailure::Parse), 1);
        assert_eq!(stats.total(), 3);
        assert_eq!(io.take_stats().total(), 0);
    }

    #[test]
    fn errno_classification() {
        let f = |e| ReadFailure::from_io(&io::Error::from_raw_os_error(e));
        assert_eq!(f(libc::ENODATA), ReadFailure::NoData);
        assert_eq!(f(libc::EAGAIN), ReadFailure::Again);
        assert_eq!(f(libc::ENODEV), ReadFailure::NoDevice);
        assert_eq!(f(libc::EINVAL), ReadFailure::Invalid);
        assert!(f(libc::ENODATA).is_expected());
        assert!(!f(libc::EIO).is_expected());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["hwmon10", "hwmon2", "hwmon1", "thermal_zone0"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["hwmon1", "hwmon2", "hwmon10", "thermal_zone0"]);
    }
}
