//! The control socket file: created with its final mode and group before anyone can connect, replacing a
//! stale one left by a crash but never a live one, and removed at shutdown only if it is still ours.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("another accel-agent is serving the control socket {path}; stop it or give this one another --socket")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; remove it or choose another --socket")]
    NotASocket { path: PathBuf },
    #[error(
        "cannot create the control socket {path}: {source} (run as root, or give a path this user can write with --socket)"
    )]
    Io { path: PathBuf, source: std::io::Error },
}

/// A bound control socket. Dropping it does not remove the file; [`ControlSocket::remove`] does.
#[derive(Debug)]
pub struct ControlSocket {
    pub listener: tokio::net::UnixListener,
    pub path: PathBuf,
    /// (device, inode) of the file we created, so shutdown never removes a successor's socket.
    identity: (u64, u64),
}

/// Binds `path` with mode 0660 and group `gid`. The socket is bound under a temporary name and renamed
/// into place, so no client ever sees it with looser permissions, and a stale file is replaced atomically.
/// Must be called within a tokio runtime.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<ControlSocket, SocketError> {
    let io = |source| SocketError::Io { path: path.to_owned(), source };
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => return Err(SocketError::NotASocket { path: path.to_owned() }),
        // A socket that accepts a connection has a live agent behind it; one that refuses is left over.
        Ok(_) if std::os::unix::net::UnixStream::connect(path).is_ok() => {
            return Err(SocketError::InUse { path: path.to_owned() });
        }
        _ => {}
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "agent.sock".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(io)?;
    let prepared = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))?;
        if let Some(gid) = gid {
            // Not being allowed to hand the socket to the group (not root) leaves it to the owner alone:
            // stricter, never looser.
            if let Err(e) = std::os::unix::fs::chown(&tmp, None, Some(gid)) {
                tracing::warn!("cannot give the control socket to group {gid}: {e}; only its owner can use it");
            }
        }
        std::fs::rename(&tmp, path)?;
        listener.set_nonblocking(true)?;
        std::fs::metadata(path)
    })();
    let meta = match prepared {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
    };
    let listener = tokio::net::UnixListener::from_std(listener).map_err(io)?;
    Ok(ControlSocket { listener, path: path.to_owned(), identity: (meta.dev(), meta.ino()) })
}

impl ControlSocket {
    /// Removes the socket file if it is still the one this agent created.
    pub fn remove(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn created_0660_stale_replaced_live_and_foreign_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/agent.sock");
        let s = bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(bind(&path, None), Err(SocketError::InUse { .. })), "a live socket is not taken over");
        drop(s);
        // The listener is gone but the file remains, as after a crash.
        assert!(path.exists());
        let again = bind(&path, None).unwrap();
        again.remove();
        assert!(!path.exists());

        let regular = dir.path().join("file.sock");
        std::fs::write(&regular, "keep me").unwrap();
        assert!(matches!(bind(&regular, None), Err(SocketError::NotASocket { .. })));
        assert_eq!(std::fs::read_to_string(&regular).unwrap(), "keep me");
    }

    #[tokio::test]
    async fn shutdown_leaves_a_successors_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let old = bind(&path, None).unwrap();
        std::fs::remove_file(&path).unwrap();
        let _new = bind(&path, None).unwrap();
        old.remove();
        assert!(path.exists(), "the new agent's socket stays");
    }
}
