//! Failures of log sources, each with the file it concerns.

use std::io;
use std::path::PathBuf;

/// What went wrong with a log file or /dev/kmsg. A file that does not exist (yet, or after deletion) is
/// not an error: the reader waits for it.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{}: open: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: stat: {source}", path.display())]
    Stat { path: PathBuf, source: io::Error },
    #[error("{}: read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: seek: {source}", path.display())]
    Seek { path: PathBuf, source: io::Error },
    /// A directory, FIFO or device where a log file belongs: reading it could block or never end.
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
}

impl LogError {
    pub fn path(&self) -> &std::path::Path {
        match self {
            LogError::Open { path, .. }
            | LogError::Stat { path, .. }
            | LogError::Read { path, .. }
            | LogError::Seek { path, .. }
            | LogError::NotAFile { path } => path,
        }
    }
}
