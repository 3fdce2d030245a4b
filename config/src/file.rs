//! Reading a file the agent was told to trust (its config, a web config, a certificate) without letting
//! the file hang or exhaust it: only a regular file, opened without blocking, of bounded size.
//!
//! A FIFO at the config path would block `read` until a writer appears (and `open` too, without
//! `O_NONBLOCK`); `/dev/zero` behind a symlink never ends. Both are refused after `fstat` on the opened
//! descriptor, so a file swapped between a check and the read cannot slip through.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest config file the agent reads (a machine of many SpiNNaker boards stays far below).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: is a {kind}, not a regular file; refusing to read it", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: is larger than {limit} bytes; refusing to read it", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
}

impl ReadError {
    /// What went wrong, without the path (for messages that name the file already).
    pub fn reason(&self) -> String {
        match self {
            ReadError::Io { source, .. } => source.to_string(),
            ReadError::NotRegular { kind, .. } => format!("is a {kind}, not a regular file; refusing to read it"),
            ReadError::TooLarge { limit, .. } => format!("is larger than {limit} bytes; refusing to read it"),
            ReadError::NotUtf8 { .. } => "is not UTF-8 text".to_owned(),
        }
    }
}

/// The bytes of the regular file at `path` (symlinks followed), at most `limit` of them.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io { path: path.to_owned(), source };
    // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "FIFO"
        } else if ft.is_char_device() {
            "character device"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_dir() {
            "directory"
        } else {
            "special file"
        };
        return Err(ReadError::NotRegular { path: path.to_owned(), kind });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { path: path.to_owned(), limit });
    }
    // The size can grow after fstat (a file being appended to): read no more than the limit allows.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { path: path.to_owned(), limit });
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| ReadError::NotUtf8 { path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(read_text_bounded(&p, 100).unwrap(), "listen = \"127.0.0.1:1\"\n");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let start = Instant::now();
        let err = read_bounded(&p, MAX_CONFIG_BYTES).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(err.to_string(), format!("{}: is a FIFO, not a regular file; refusing to read it", p.display()));
    }

    #[test]
    fn dev_zero_behind_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let err = read_bounded(&p, MAX_CONFIG_BYTES).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "character device", .. }), "{err}");
        let d = dir.path().join("dir");
        std::fs::create_dir(&d).unwrap();
        assert!(matches!(read_bounded(&d, 10).unwrap_err(), ReadError::NotRegular { kind: "directory", .. }));
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        std::fs::write(&p, vec![b'#'; 101]).unwrap();
        let err = read_bounded(&p, 100).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: is larger than 100 bytes; refusing to read it", p.display()));
        assert_eq!(read_bounded(&p, 101).unwrap().len(), 101);
    }
}
