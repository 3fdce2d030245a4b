//! Reading the kernel ring buffer through /dev/kmsg without blocking.
//!
//! /dev/kmsg is record-oriented: each `read()` returns exactly one record (header line plus its
//! continuation lines), `EAGAIN` when there is none (the descriptor is `O_NONBLOCK`), and `EPIPE` when
//! the ring buffer overwrote records we had not read yet; the next read then returns the oldest record
//! still there. A reader starts at the oldest record; `lseek(SEEK_END)` moves it past the last one.
//!
//! So that tests need neither root nor a character device, any other file at the path is read as a
//! stream of records: lines are split on newlines and a line starting with a space belongs to the
//! record before it. A record's continuation lines must arrive in the same poll as its header there.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{KmsgRecord, parse_record};
use crate::logs::error::LogError;

/// Larger than the longest record the kernel hands out (CONSOLE_EXT_LOG_MAX, 8 KiB): a smaller buffer
/// makes the kernel fail the read with EINVAL and skip the record.
const RECORD_BUF: usize = 16 * 1024;
/// A line longer than this in a regular file is not a kmsg record; dropped to bound memory.
const MAX_FILE_LINE: usize = RECORD_BUF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsgOptions {
    /// Read the whole ring buffer first instead of only records logged after opening.
    pub from_beginning: bool,
    /// Most records returned by one poll (character device), or records' worth of bytes (regular file).
    pub max_records_per_poll: usize,
}

impl Default for KmsgOptions {
    fn default() -> Self {
        KmsgOptions { from_beginning: false, max_records_per_poll: 10_000 }
    }
}

/// What one poll did, for the agent's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KmsgStats {
    pub records: u64,
    /// Records that could not be parsed, skipped.
    pub malformed: u64,
    /// Times the kernel reported records lost to ring buffer overwrite (EPIPE).
    pub overwritten: u64,
    /// The per-poll limit was reached: poll again soon.
    pub more_pending: bool,
}

/// A non-blocking reader of /dev/kmsg (or a regular file of records, for tests).
#[derive(Debug)]
pub struct KmsgReader {
    path: PathBuf,
    file: File,
    char_device: bool,
    max_records: usize,
    buf: Vec<u8>,
    /// Regular-file mode: bytes of an unfinished line.
    carry: Vec<u8>,
}

impl KmsgReader {
    pub fn open(path: impl Into<PathBuf>, opts: KmsgOptions) -> Result<KmsgReader, LogError> {
        let path = path.into();
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|source| LogError::Open { path: path.clone(), source })?;
        let meta = file.metadata().map_err(|source| LogError::Stat { path: path.clone(), source })?;
        if !opts.from_beginning {
            file.seek(SeekFrom::End(0)).map_err(|source| LogError::Seek { path: path.clone(), source })?;
        }
        Ok(KmsgReader {
            char_device: meta.file_type().is_char_device(),
            max_records: opts.max_records_per_poll.max(1),
            buf: vec![0; RECORD_BUF],
            carry: Vec::new(),
            file,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the records logged since the last poll to `out`. Malformed records are counted and skipped.
    pub fn poll(&mut self, out: &mut Vec<KmsgRecord>) -> Result<KmsgStats, LogError> {
        let mut stats = KmsgStats::default();
        if self.char_device {
            self.poll_device(out, &mut stats)?
        } else {
            self.poll_file(out, &mut stats)?
        }
        Ok(stats)
    }

    fn poll_device(&mut self, out: &mut Vec<KmsgRecord>, stats: &mut KmsgStats) -> Result<(), LogError> {
        let mut seen = 0;
        loop {
            if seen == self.max_records {
                stats.more_pending = true;
                return Ok(());
            }
            match (&self.file).read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    seen += 1;
                    add(&self.buf[..n], out, stats);
                }
                Err(e) => match classify(&e) {
                    ReadOutcome::Drained => return Ok(()),
                    ReadOutcome::Overwritten => stats.overwritten += 1,
                    ReadOutcome::SkippedRecord => stats.malformed += 1,
                    ReadOutcome::Retry => {}
                    ReadOutcome::Failed => return Err(LogError::Read { path: self.path.clone(), source: e }),
                },
            }
        }
    }

    fn poll_file(&mut self, out: &mut Vec<KmsgRecord>, stats: &mut KmsgStats) -> Result<(), LogError> {
        let mut budget = self.max_records.saturating_mul(256);
        loop {
            if budget == 0 {
                stats.more_pending = true;
                break;
            }
            let want = self.buf.len().min(budget);
            match (&self.file).read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    budget -= n;
                    self.carry.extend_from_slice(&self.buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(source) => return Err(LogError::Read { path: self.path.clone(), source }),
            }
        }
        let complete = self.carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut start = None;
        let mut pos = 0;
        for line in self.carry[..complete].split_inclusive(|&b| b == b'\n') {
            if line.first() != Some(&b' ') {
                if let Some(s) = start {
                    add(&self.carry[s..pos], out, stats);
                }
                start = Some(pos);
            } else if start.is_none() {
                // A continuation whose header came in an earlier poll.
                stats.malformed += 1;
            }
            pos += line.len();
        }
        if let Some(s) = start {
            add(&self.carry[s..complete], out, stats);
        }
        self.carry.drain(..complete);
        if self.carry.len() > MAX_FILE_LINE {
            self.carry.clear();
            stats.malformed += 1;
        }
        Ok(())
    }
}

fn add(record: &[u8], out: &mut Vec<KmsgRecord>, stats: &mut KmsgStats) {
    match parse_record(record) {
        Ok(r) => {
            stats.records += 1;
            out.push(r);
        }
        Err(why) => {
            stats.malformed += 1;
            tracing::debug!(record = %String::from_utf8_lossy(record).trim_end(), "kmsg: skipped: {why}");
        }
    }
}

/// What a failed read of /dev/kmsg means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOutcome {
    /// EAGAIN: no record right now.
    Drained,
    /// EPIPE: records were overwritten before we read them; reading continues at the oldest one left.
    Overwritten,
    /// EINVAL: the record did not fit the buffer; the kernel moved past it.
    SkippedRecord,
    /// EINTR.
    Retry,
    Failed,
}

fn classify(e: &io::Error) -> ReadOutcome {
    match e.raw_os_error() {
        Some(libc::EAGAIN) => ReadOutcome::Drained,
        Some(libc::EPIPE) => ReadOutcome::Overwritten,
        Some(libc::EINVAL) => ReadOutcome::SkippedRecord,
        Some(libc::EINTR) => ReadOutcome::Retry,
        _ => ReadOutcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_errnos_are_classified() {
        let c = |errno| classify(&io::Error::from_raw_os_error(errno));
        assert_eq!(c(libc::EAGAIN), ReadOutcome::Drained);
        assert_eq!(c(libc::EPIPE), ReadOutcome::Overwritten);
        assert_eq!(c(libc::EINVAL), ReadOutcome::SkippedRecord);
        assert_eq!(c(libc::EINTR), ReadOutcome::Retry);
        assert_eq!(c(libc::EIO), ReadOutcome::Failed);
    }

    #[test]
    fn real_dev_kmsg_opens_and_polls_when_readable() {
        // Only where the test may read the kernel log (root, or dmesg_restrict=0): then the
        // character-device path must not block and must not report errors.
        let Ok(mut r) = KmsgReader::open("/dev/kmsg", KmsgOptions { from_beginning: true, max_records_per_poll: 50 })
        else {
            return;
        };
        assert!(r.char_device);
        let mut out = Vec::new();
        let Ok(stats) = r.poll(&mut out) else { return };
        assert_eq!(stats.records as usize, out.len());
        assert!(out.len() <= 50);
        assert!(out.windows(2).all(|w| w[0].seq < w[1].seq), "records come in sequence order");
    }
}
