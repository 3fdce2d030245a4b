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
    /// A symbolic link at the log path. A log replaced by a link (to /etc/shadow, say) must not be read
    /// as if rotated: whoever can write the log directory could make the agent quote any file it can read.
    #[error("{}: is a symbolic link; not followed (configure the file it points to)", path.display())]
    Symlink { path: PathBuf },
}

impl LogError {
    pub fn path(&self) -> &std::path::Path {
        match self {
            LogError::Open { path, .. }
            | LogError::Stat { path, .. }
            | LogError::Read { path, .. }
            | LogError::Seek { path, .. }
            | LogError::NotAFile { path }
            | LogError::Symlink { path } => path,
        }
    }
}
