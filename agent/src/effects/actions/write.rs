//! The only code that writes to the machine: every write to a canonical target opened beneath the sysfs
//! root without following symlinks ([`beneath`](super::beneath)), made and read back through that one
//! descriptor.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::beneath::{Access, BeneathError, SysfsRoot, Target};

/// Values longer than this are not sysfs attribute values.
pub const MAX_VALUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Beneath(#[from] BeneathError),
    #[error("{}: the firmware locked this limit (ENODATA); not trying again", path.display())]
    Locked { path: PathBuf },
    #[error("{}: writing {value:?} failed: {source}", path.display())]
    Write { path: PathBuf, value: String, source: std::io::Error },
    #[error("{}: wrote {wrote:?} but it reads back {read:?}; the write did not stick", path.display())]
    DidNotStick { path: PathBuf, wrote: String, read: String },
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: cannot save the original values: {source}", path.display())]
    Save { path: PathBuf, source: std::io::Error },
    #[error("{}: refusing to write {value:?}: not a single line of at most {MAX_VALUE} printable characters", path.display())]
    BadValue { path: PathBuf, value: String },
}

impl WriteError {
    pub fn is_locked(&self) -> bool {
        matches!(self, WriteError::Locked { .. })
    }
}

/// Whether `value` can be an attribute value: one short line of printable text.
pub fn plausible_value(value: &str) -> bool {
    value.len() <= MAX_VALUE && value.chars().all(|c| !c.is_control())
}

/// The first line of what `file` holds, read from its start.
fn first_line(file: &File, path: PathBuf) -> Result<String, WriteError> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // pread from 0: the descriptor may just have been written; sysfs shows the attribute afresh.
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(WriteError::Read { path, source }),
        }
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// Reads a target's current value (its first line, trimmed).
pub fn read_value(root: &SysfsRoot, target: &Target) -> Result<String, WriteError> {
    let mut file = root.open_target(target, Access::Read)?;
    let mut s = String::new();
    // Attributes are one short line; a larger file is not one, and is not read whole.
    (&mut file)
        .take(64 * 1024)
        .read_to_string(&mut s)
        .map_err(|source| WriteError::Read { path: root.display(target), source })?;
    Ok(s.lines().next().unwrap_or("").trim().to_owned())
}

/// Replaces the file's content with `value` and a newline in one write at offset 0 (sysfs takes a store
/// in one call; a regular file is truncated first so no old tail remains).
fn store(file: &File, root: &SysfsRoot, target: &Target, value: &str) -> Result<(), WriteError> {
    let path = root.display(target);
    if !plausible_value(value) {
        return Err(WriteError::BadValue { path, value: value.chars().take(64).collect() });
    }
    let line = format!("{value}\n");
    let written = file.set_len(0).and_then(|()| file.write_at(line.as_bytes(), 0));
    match written {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(WriteError::Write {
            path,
            value: value.to_owned(),
            source: std::io::Error::other(format!("short write: {n} of {} bytes", line.len())),
        }),
        Err(source) if source.raw_os_error() == Some(libc::ENODATA) => Err(WriteError::Locked { path }),
        Err(source) => Err(WriteError::Write { path, value: value.to_owned(), source }),
    }
}

/// Writes `value` and reads it back through the same descriptor. Numbers that read back within 0.5%
/// count as stuck: drivers round power limits to their granularity.
pub fn write_verified(root: &SysfsRoot, target: &Target, value: &str) -> Result<(), WriteError> {
    let file = root.open_target(target, Access::ReadWrite)?;
    store(&file, root, target, value)?;
    let read = first_line(&file, root.display(target))?;
    let same = read == value
        || match (read.parse::<f64>(), value.parse::<f64>()) {
            (Ok(r), Ok(v)) => (r - v).abs() <= v.abs() * 0.005,
            _ => false,
        };
    if same {
        Ok(())
    } else {
        Err(WriteError::DidNotStick { path: root.display(target), wrote: value.to_owned(), read })
    }
}

/// Writes a write-only attribute (hard_reset, reset, unbind, remove): there is nothing to read back;
/// whether it worked shows in the device coming back.
pub fn write_once(root: &SysfsRoot, target: &Target, value: &str) -> Result<(), WriteError> {
    let file = root.open_target(target, Access::Write)?;
    store(&file, root, target, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::actions::beneath::Mechanism;

    #[test]
    fn writes_are_read_back_through_the_same_descriptor() {
        for mechanism in [Mechanism::Openat2, Mechanism::Walk] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("devices/x")).unwrap();
            std::fs::write(dir.path().join("devices/x/cur_state"), "10\n").unwrap();
            let root = SysfsRoot::open_with(dir.path(), mechanism).unwrap();
            let t = root.resolve("devices/x/cur_state").unwrap();
            write_verified(&root, &t, "3").unwrap();
            assert_eq!(read_value(&root, &t).unwrap(), "3");
            assert_eq!(std::fs::read_to_string(dir.path().join("devices/x/cur_state")).unwrap(), "3\n", "no old tail");
            write_once(&root, &t, "1").unwrap();
            assert_eq!(read_value(&root, &t).unwrap(), "1");
            let e = write_verified(&root, &t, "2\n0").unwrap_err();
            assert!(matches!(e, WriteError::BadValue { .. }), "{e}");
            assert_eq!(read_value(&root, &t).unwrap(), "1", "a bad value is not written");
        }
    }
}
