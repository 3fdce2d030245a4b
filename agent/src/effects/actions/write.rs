//! The only code that writes to the machine: confined to configured files under the sysfs root, every
//! write read back, the original value saved on disk before the first write.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: resolves to {}, outside the sysfs root {}; refusing to write", path.display(), target.display(), root.display())]
    Escape { path: PathBuf, target: PathBuf, root: PathBuf },
    #[error("{}: cannot resolve: {source}", path.display())]
    Resolve { path: PathBuf, source: std::io::Error },
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
}

impl WriteError {
    pub fn is_locked(&self) -> bool {
        matches!(self, WriteError::Locked { .. })
    }
}

/// Resolves `rel` under `root`, following symlinks, and refuses anything that ends up outside it.
pub fn confine(root: &Path, rel: &str) -> Result<PathBuf, WriteError> {
    let joined = root.join(rel);
    let root_real =
        std::fs::canonicalize(root).map_err(|source| WriteError::Resolve { path: root.to_owned(), source })?;
    let target =
        std::fs::canonicalize(&joined).map_err(|source| WriteError::Resolve { path: joined.clone(), source })?;
    if !target.starts_with(&root_real) {
        return Err(WriteError::Escape { path: joined, target, root: root_real });
    }
    Ok(target)
}

pub fn read_value(path: &Path) -> Result<String, WriteError> {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|source| WriteError::Read { path: path.to_owned(), source })?;
    Ok(s.lines().next().unwrap_or("").trim().to_owned())
}

/// Writes `value` and reads it back. Numbers that read back within 0.5% count as stuck: drivers round
/// power limits to their granularity.
pub fn write_verified(path: &Path, value: &str) -> Result<(), WriteError> {
    let written = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()));
    if let Err(source) = written {
        if source.raw_os_error() == Some(libc::ENODATA) {
            return Err(WriteError::Locked { path: path.to_owned() });
        }
        return Err(WriteError::Write { path: path.to_owned(), value: value.to_owned(), source });
    }
    let read = read_value(path)?;
    let same = read == value
        || match (read.parse::<f64>(), value.parse::<f64>()) {
            (Ok(r), Ok(v)) => (r - v).abs() <= v.abs() * 0.005,
            _ => false,
        };
    if same { Ok(()) } else { Err(WriteError::DidNotStick { path: path.to_owned(), wrote: value.to_owned(), read }) }
}

/// Writes a write-only attribute (hard_reset, reset, unbind, remove): there is nothing to read back;
/// whether it worked shows in the device coming back.
pub fn write_once(path: &Path, value: &str) -> Result<(), WriteError> {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
        .map_err(|source| WriteError::Write { path: path.to_owned(), value: value.to_owned(), source })
}

/// The value a file had before the agent first wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Original {
    pub device: String,
    pub value: String,
}

/// Originals kept on disk, so a crash while throttled is undone at the next start.
#[derive(Debug)]
pub struct Originals {
    file: PathBuf,
    pub entries: BTreeMap<PathBuf, Original>,
}

pub const ORIGINALS_FILE: &str = "originals.json";

impl Originals {
    /// Loads what a previous run left (empty if nothing).
    pub fn load(state_dir: &Path) -> Result<Originals, WriteError> {
        let file = state_dir.join(ORIGINALS_FILE);
        let entries = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| WriteError::Save {
                path: file.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(WriteError::Save { path: file, source }),
        };
        Ok(Originals { file, entries })
    }

    /// Remembers `path`'s current value unless it is already remembered, durably, before any write.
    pub fn save_first(&mut self, path: &Path, device: &str) -> Result<(), WriteError> {
        if self.entries.contains_key(path) {
            return Ok(());
        }
        let value = read_value(path)?;
        self.entries.insert(path.to_owned(), Original { device: device.to_owned(), value });
        self.persist()
    }

    pub fn forget(&mut self, path: &Path) -> Result<(), WriteError> {
        if self.entries.remove(path).is_some() {
            self.persist()?;
        }
        Ok(())
    }

    /// Write to a temporary file, fsync, rename over: a crash leaves the old or the new file, never half.
    fn persist(&self) -> Result<(), WriteError> {
        let err = |source| WriteError::Save { path: self.file.clone(), source };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self.file.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(&self.entries).map_err(|e| err(std::io::Error::other(e)))?;
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, &self.file).map_err(err)?;
        if let Some(dir) = self.file.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "x").unwrap();
        std::fs::create_dir_all(root.path().join("class/thermal")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("class/thermal/cooling_device0")).unwrap();
        let e = confine(root.path(), "class/thermal/cooling_device0/passwd").unwrap_err();
        assert!(matches!(e, WriteError::Escape { .. }), "{e}");
        std::fs::write(root.path().join("class/thermal/x"), "0\n").unwrap();
        assert!(confine(root.path(), "class/thermal/x").is_ok());
    }

    #[test]
    fn writes_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cur_state");
        std::fs::write(&p, "0\n").unwrap();
        write_verified(&p, "3").unwrap();
        assert_eq!(read_value(&p).unwrap(), "3");
    }

    #[test]
    fn originals_survive_a_restart_and_are_kept_once() {
        let state = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("power1_cap");
        std::fs::write(&p, "300000000\n").unwrap();
        let mut o = Originals::load(state.path()).unwrap();
        o.save_first(&p, "gaudi0").unwrap();
        std::fs::write(&p, "150000000\n").unwrap();
        o.save_first(&p, "gaudi0").unwrap();
        let again = Originals::load(state.path()).unwrap();
        assert_eq!(again.entries[&p], Original { device: "gaudi0".into(), value: "300000000".into() });
    }
}
