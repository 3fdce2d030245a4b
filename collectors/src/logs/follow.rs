//! Following one log file across rotation, like `tail -F`, without losing or repeating a line.
//!
//! The file is read with `pread` at our own offset, so nothing depends on the descriptor's position.
//! After each drain to end of file, the path is `stat`ed and compared with `fstat` of the open
//! descriptor (device, inode) to see what logrotate or the writer did:
//!
//! - rename (`create`): the path names a new inode. The old descriptor was drained first, so lines
//!   written just before the rename are read; then the new file is read from its beginning.
//! - `copytruncate`: the same inode is now shorter than our offset, or (if the writer appended past
//!   our offset before we looked) the last bytes we read are no longer there; reading restarts at 0.
//!   Lines written between our last read and the copy are in the copy only: inherent to copytruncate.
//! - deletion: the old descriptor is drained, then closed (so the disk space is freed), and polls
//!   return nothing until the path reappears, which is then read from its beginning.
//!
//! - replacement by a symbolic link, a FIFO or a device: the old file is drained, then nothing is read
//!   (an error each poll, which the agent reports once) until a regular file is back at the path. A
//!   link is never followed, also not at start: configure the file it points to.
//!
//! Lines a writer appends to the old file after we switched away from it are not seen; logrotate's
//! `postrotate` signal normally makes the writer reopen before that matters.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::lines::{Line, LineSplitter};

/// Bytes read per syscall.
const CHUNK: usize = 64 * 1024;
/// File switches in one poll. Each needs a new inode at the path, so this only bounds a pathological
/// writer; the remaining switches happen at the next poll.
const MAX_SWITCHES_PER_POLL: u32 = 8;
/// Bytes before the read offset remembered to recognise a file rewritten from the start. Log lines
/// carry timestamps and counters, so 32 bytes at the same place rarely repeat.
const FINGERPRINT: usize = 32;

/// Where to start reading a file that exists when following begins. A file that appears later (or a
/// new file after rotation) is always read from its beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Only lines appended after following began.
    #[default]
    End,
    /// Every line of the file.
    Beginning,
    /// Up to `bytes` before the end, from the first line that starts in that range.
    Lookback { bytes: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOptions {
    pub start: StartAt,
    /// Longer lines are cut to this length and flagged [`Line::truncated`].
    pub max_line_bytes: usize,
    /// Most bytes read by one [`Follower::poll`]; the rest waits for the next poll.
    pub max_bytes_per_poll: usize,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions { start: StartAt::End, max_line_bytes: 16 * 1024, max_bytes_per_poll: 4 * 1024 * 1024 }
    }
}

/// What one poll did, for the agent's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollStats {
    /// Lines appended to the output.
    pub lines: u64,
    /// Of those, lines cut at the maximum line length.
    pub cut_lines: u64,
    /// Bytes read from files.
    pub bytes: u64,
    /// Switches to a new file at the path (rename rotation, or re-creation after deletion).
    pub rotations: u64,
    /// Times the followed file shrank below the read offset (copytruncate).
    pub truncations: u64,
    /// The byte budget ran out before the end of the file: poll again soon.
    pub more_pending: bool,
}

/// Identity of a file: a new inode at the path means the file was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(m: &Metadata) -> FileId {
        FileId { dev: m.dev(), ino: m.ino() }
    }
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    id: FileId,
    offset: u64,
    /// The last bytes read, ending at `offset`.
    tail: Vec<u8>,
}

impl OpenFile {
    fn remember(&mut self, read: &[u8]) {
        if read.len() >= FINGERPRINT {
            self.tail.clear();
            self.tail.extend_from_slice(&read[read.len() - FINGERPRINT..]);
        } else {
            self.tail.extend_from_slice(read);
            let excess = self.tail.len().saturating_sub(FINGERPRINT);
            self.tail.drain(..excess);
        }
    }

    /// Whether the file was cut and written again since the last read (copytruncate): shorter than our
    /// offset, or grown but without the bytes we read last. Only looked at when there is something new,
    /// so an idle poll costs no extra read.
    fn was_truncated(&self, path: &Path, size: u64) -> Result<bool, LogError> {
        if size < self.offset {
            return Ok(true);
        }
        if size == self.offset || self.tail.is_empty() {
            return Ok(false);
        }
        let mut now = [0u8; FINGERPRINT];
        let now = &mut now[..self.tail.len()];
        match self.file.read_exact_at(now, self.offset - self.tail.len() as u64) {
            Ok(()) => Ok(now != self.tail.as_slice()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
            Err(source) => Err(LogError::Read { path: path.to_owned(), source }),
        }
    }
}

/// Follows the file at one path. See the module documentation for rotation handling.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    max_bytes_per_poll: usize,
    open: Option<OpenFile>,
    splitter: LineSplitter,
    buf: Vec<u8>,
    /// Whether some file was followed already, so the next one to appear is a rotation.
    followed: bool,
}

impl Follower {
    /// Starts following `path`. A missing file is not an error: it is read from its beginning once it
    /// appears. Other failures to open (permissions, not a regular file) are.
    pub fn new(path: impl Into<PathBuf>, opts: FollowOptions) -> Result<Follower, LogError> {
        let path = path.into();
        let mut follower = Follower {
            open: None,
            splitter: LineSplitter::new(opts.max_line_bytes),
            buf: vec![0; CHUNK.min(opts.max_bytes_per_poll.max(1))],
            max_bytes_per_poll: opts.max_bytes_per_poll.max(1),
            followed: false,
            path,
        };
        let Some((mut open, meta)) = open_regular(&follower.path)? else {
            return Ok(follower);
        };
        let start = match opts.start {
            StartAt::Beginning => 0,
            StartAt::End => meta.len(),
            StartAt::Lookback { bytes } => meta.len().saturating_sub(bytes),
        };
        if start > 0 {
            // Read from the byte before the start and drop through the next newline: if that byte is
            // the newline, nothing of the range is lost; otherwise the start is inside a line.
            open.offset = start - 1;
            follower.splitter.skip_to_next_line();
        }
        follower.open = Some(open);
        follower.followed = true;
        Ok(follower)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a file is open (false while waiting for a missing file to appear).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Appends the complete lines written since the last poll to `out`. Never blocks on a regular file;
    /// reads at most `max_bytes_per_poll` bytes. On an error, lines already appended to `out` are valid
    /// and will not be returned again; the next poll retries what failed.
    pub fn poll(&mut self, out: &mut Vec<Line>) -> Result<PollStats, LogError> {
        let before = out.len();
        let mut stats = PollStats::default();
        let mut budget = self.max_bytes_per_poll;
        let mut switches = 0;
        loop {
            let Some(open) = self.open.as_mut() else {
                if switches == MAX_SWITCHES_PER_POLL {
                    stats.more_pending = true;
                    break;
                }
                let Some((open, _)) = open_regular(&self.path)? else { break };
                switches += 1;
                if self.followed {
                    stats.rotations += 1;
                }
                self.followed = true;
                self.open = Some(open);
                continue;
            };
            let size = fstat(&self.path, &open.file)?.len();
            if open.was_truncated(&self.path, size)? {
                stats.truncations += 1;
                self.splitter.finish(out);
                open.offset = 0;
                open.tail.clear();
            }
            if !drain(&self.path, open, &mut self.buf, &mut budget, &mut stats, &mut self.splitter, out)? {
                stats.more_pending = true;
                break;
            }
            // lstat: a link put at the path is a replacement (refused when opened), not the same file.
            match std::fs::symlink_metadata(&self.path) {
                Ok(m) if FileId::of(&m) == open.id => break,
                // Renamed away and replaced, or deleted and re-created: the old file is drained.
                Ok(_) => {
                    self.splitter.finish(out);
                    self.open = None;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.splitter.finish(out);
                    self.open = None;
                    break;
                }
                Err(source) => return Err(LogError::Stat { path: self.path.clone(), source }),
            }
        }
        let new = &out[before..];
        stats.lines = new.len() as u64;
        stats.cut_lines = new.iter().filter(|l| l.truncated).count() as u64;
        Ok(stats)
    }
}

/// Reads `open` to its end or until the budget is spent. Returns whether the end was reached.
fn drain(
    path: &Path,
    open: &mut OpenFile,
    buf: &mut [u8],
    budget: &mut usize,
    stats: &mut PollStats,
    splitter: &mut LineSplitter,
    out: &mut Vec<Line>,
) -> Result<bool, LogError> {
    loop {
        if *budget == 0 {
            return Ok(fstat(path, &open.file)?.len() <= open.offset);
        }
        let want = buf.len().min(*budget);
        match open.file.read_at(&mut buf[..want], open.offset) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                open.offset += n as u64;
                open.remember(&buf[..n]);
                *budget -= n;
                stats.bytes += n as u64;
                splitter.push(&buf[..n], out);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(LogError::Read { path: path.to_owned(), source }),
        }
    }
}

/// Opens a regular file for reading; `None` if it does not exist.
fn open_regular(path: &Path) -> Result<Option<(OpenFile, Metadata)>, LogError> {
    // O_NONBLOCK: opening a FIFO put at the path must not block the worker; it is rejected below.
    // O_NOFOLLOW: a symbolic link at the path is refused, never read (ELOOP).
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(LogError::Symlink { path: path.to_owned() }),
        Err(source) => return Err(LogError::Open { path: path.to_owned(), source }),
    };
    let meta = fstat(path, &file)?;
    if !meta.is_file() {
        return Err(LogError::NotAFile { path: path.to_owned() });
    }
    Ok(Some((OpenFile { file, id: FileId::of(&meta), offset: 0, tail: Vec::with_capacity(FINGERPRINT) }, meta)))
}

fn fstat(path: &Path, file: &File) -> Result<Metadata, LogError> {
    file.metadata().map_err(|source| LogError::Stat { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_fifo_at_the_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = Follower::new(&p, FollowOptions::default()).unwrap_err();
        assert!(matches!(err, LogError::NotAFile { .. }), "{err}");
        assert_eq!(err.path(), p);
    }

    #[test]
    fn a_log_replaced_by_a_symlink_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let secret = dir.path().join("shadow");
        std::fs::write(&secret, "root:SECRET-HASH:19000::::::\n").unwrap();
        let mut w = std::fs::File::create(&p).unwrap();
        let mut f = Follower::new(&p, FollowOptions { start: StartAt::Beginning, ..Default::default() }).unwrap();
        writeln!(w, "last line").unwrap();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&secret, &p).unwrap();
        let mut out = Vec::new();
        let err = f.poll(&mut out).unwrap_err();
        assert!(matches!(err, LogError::Symlink { .. }), "{err}");
        assert_eq!(
            out,
            [Line { text: "last line".into(), truncated: false }],
            "the old file is drained, the link not read"
        );
        assert!(f.poll(&mut out).is_err(), "and not on the next poll either");
        assert_eq!(out.len(), 1);
        // A link at the start is refused too.
        assert!(matches!(Follower::new(&p, FollowOptions::default()).unwrap_err(), LogError::Symlink { .. }));
        // A regular file back at the path is followed again, from its beginning.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "back\n").unwrap();
        f.poll(&mut out).unwrap();
        assert_eq!(out.last().unwrap().text, "back");
    }

    #[test]
    fn a_log_replaced_by_a_fifo_is_not_read_and_nothing_blocks() {
        // A device node is the same case (not a regular file) but needs root to create; the check is
        // on the opened descriptor's type, whatever it is.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "").unwrap();
        let mut f = Follower::new(&p, FollowOptions::default()).unwrap();
        std::fs::remove_file(&p).unwrap();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        let err = f.poll(&mut out).unwrap_err();
        assert!(matches!(err, LogError::NotAFile { .. }), "{err}");
        assert!(out.is_empty() && started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_directory_at_the_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Follower::new(dir.path().join("log"), FollowOptions::default()).unwrap();
        std::fs::create_dir(dir.path().join("log")).unwrap();
        let err = f.poll(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("log: not a regular file"), "{err}");
        std::fs::remove_dir(dir.path().join("log")).unwrap();
        let mut w = std::fs::File::create(dir.path().join("log")).unwrap();
        writeln!(w, "back").unwrap();
        let mut out = Vec::new();
        f.poll(&mut out).unwrap();
        assert_eq!(out, [Line { text: "back".into(), truncated: false }]);
    }
}
