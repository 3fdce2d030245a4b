//! What can go wrong talking to kubelet; every error names the socket it concerns.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The connect error names the socket.
    #[error("{source}")]
    Connect { source: kubelet_api::uds::ConnectError },
    #[error("{} did not answer within {timeout:?}", path.display())]
    Deadline { path: PathBuf, timeout: Duration },
    #[error("{} refused the call: {} ({})", path.display(), status.message(), status.code())]
    Call { path: PathBuf, status: tonic::Status },
    #[error("cannot create the plugin socket {}: {source}", path.display())]
    Bind { path: PathBuf, source: std::io::Error },
}
