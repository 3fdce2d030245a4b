//! gRPC over Unix sockets: a client channel to a socket path, with a connect deadline.

use std::path::Path;
use std::time::Duration;

use kubelet_api::uds::Channel;

use super::error::KubeletError;

/// A connection to the gRPC server on the Unix socket `path`, made within `timeout`.
pub async fn connect(path: &Path, timeout: Duration) -> Result<Channel, KubeletError> {
    match tokio::time::timeout(timeout, kubelet_api::uds::connect(path)).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(source)) => Err(KubeletError::Connect { source }),
        Err(_) => Err(KubeletError::Deadline { path: path.to_owned(), timeout }),
    }
}

/// Runs `call` with the deadline `timeout`, mapping a gRPC error or the deadline to [`KubeletError`].
pub async fn within<T>(
    path: &Path,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, KubeletError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status))
            if status.code() == tonic::Code::DeadlineExceeded || status.code() == tonic::Code::Cancelled =>
        {
            Err(KubeletError::Deadline { path: path.to_owned(), timeout })
        }
        Ok(Err(status)) => Err(KubeletError::Call { path: path.to_owned(), status }),
        Err(_) => Err(KubeletError::Deadline { path: path.to_owned(), timeout }),
    }
}

/// What tells one socket file from another at the same path: a new file may reuse the inode number,
/// not also its change time.
pub type FileId = (u64, i64, i64);

/// The identity of the file at `path`, if there is one.
pub fn inode(path: &Path) -> Option<FileId> {
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).ok().map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
    }
}
