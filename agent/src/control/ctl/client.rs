//! The control socket's client: one HTTP/1.1 request per connection with hyper's client (through the
//! collectors crate's shared exchange), the whole of it within a deadline, and connection failures told
//! apart so agentctl can say what to do about them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use collectors::http;
use http_body_util::Full;
use hyper::{Method, Request, header};
use thiserror::Error;
use tokio::net::UnixStream;

/// Replies are JSON documents or a bundle; anything larger is not from the agent.
const MAX_REPLY: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "accel-agent is not running, or not with this socket: cannot connect to {}: {source}\n\
         check `systemctl status accel-agent`, or pass --socket PATH",
        socket.display()
    )]
    Unreachable { socket: PathBuf, source: std::io::Error },
    #[error("permission denied on {}: {}", socket.display(), denied_hint(group.as_deref()))]
    Denied { socket: PathBuf, group: Option<String> },
    #[error("accel-agent did not answer on {} within {timeout:?}", socket.display())]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("unexpected reply from {}: {source}", socket.display())]
    Protocol { socket: PathBuf, source: ProtocolError },
    #[error("cannot start the request's runtime: {source}")]
    Runtime { source: std::io::Error },
}

/// What was wrong with a request or its reply, once connected.
#[derive(Debug, Error)]
pub enum ProtocolError {
    #[error("cannot form the request: {0}")]
    Request(#[source] hyper::http::Error),
    #[error(transparent)]
    Exchange(#[from] http::ExchangeError),
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    pub socket: PathBuf,
}

/// The name of the group owning the socket: the group to join. None when that is root's group (the agent
/// gives the socket to its control group only when the group exists) or the socket cannot be looked at.
fn socket_group(socket: &Path) -> Option<String> {
    let gid = std::fs::metadata(socket).ok()?.gid();
    if gid == 0 {
        return None;
    }
    let name = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten().map(|g| g.name);
    Some(name.unwrap_or_else(|| gid.to_string()))
}

/// What to do about a refused connection or change: join the control group, or use sudo where there is
/// none to join.
pub fn denied_hint(group: Option<&str>) -> String {
    match group {
        Some(g) => format!("join the group {g} (`sudo usermod -aG {g} $USER`, then log in again) or use sudo"),
        None => "use sudo. Only root may use this agent's control socket: the agent gives the socket to its \
                 control group (`[control] group`, default accel-agent) only when that group exists; create it \
                 with `sudo groupadd --system accel-agent`, restart the agent, and join the group to use \
                 agentctl without sudo"
            .to_owned(),
    }
}

impl Client {
    /// One request on its own connection, all of it (connect, send, the whole reply) within `timeout`.
    /// The signature is the one agentctl's verbs and `accel-agent npd` call; each call runs on its own
    /// current-thread runtime, so callers stay synchronous.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let socket = self.socket.clone();
        let protocol = |source| ClientError::Protocol { socket: socket.clone(), source };
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| protocol(ProtocolError::Request(e.into())))?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "agent")
            .header(header::CONNECTION, "close")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .map_err(|e| protocol(ProtocolError::Request(e)))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| ClientError::Runtime { source })?;
        let exchange = async {
            let stream = UnixStream::connect(&socket).await.map_err(|source| match source.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    ClientError::Denied { group: socket_group(&socket), socket: socket.clone() }
                }
                _ => ClientError::Unreachable { socket: socket.clone(), source },
            })?;
            http::exchange(stream, request, MAX_REPLY).await.map_err(|e| protocol(ProtocolError::Exchange(e)))
        };
        let reply = runtime
            .block_on(async { tokio::time::timeout(timeout, exchange).await })
            .map_err(|_| ClientError::Timeout { socket: socket.clone(), timeout })??;
        Ok(Reply { status: reply.status.as_u16(), body: reply.body.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_is_unreachable() {
        let c = Client { socket: PathBuf::from("/nonexistent/agent.sock") };
        let e = c.request("GET", "/api/v1/status", None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }));
        assert!(e.to_string().contains("systemctl status accel-agent"), "{e}");
    }

    /// A Unix socket in a temp dir, and a thread that accepts one connection and hands it to `serve`.
    fn peer(serve: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static) -> (tempfile::TempDir, Client) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || serve(listener.accept().unwrap().0));
        (dir, Client { socket })
    }

    #[test]
    fn a_peer_that_accepts_and_never_answers_is_held_to_the_deadline() {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (_dir, c) = peer(move |s| {
            let _ = held.recv();
            drop(s);
        });
        let started = std::time::Instant::now();
        let e = c.request("GET", "/api/v1/status", None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("did not answer") && e.to_string().contains("within 300ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        drop(release);
    }

    #[test]
    fn a_chunked_reply_is_read_and_one_cut_short_is_a_protocol_error() {
        use std::io::{Read, Write};
        let answer = |reply: &'static [u8]| {
            move |mut s: std::os::unix::net::UnixStream| {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
            }
        };
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n";
        let (_dir, c) = peer(answer(chunked));
        let r = c.request("GET", "/api/v1/devices/x", None, Duration::from_secs(5)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
        let (_dir, c) = peer(answer(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}"));
        let e = c.request("GET", "/api/v1/status", None, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, ClientError::Protocol { .. }), "{e}");
        assert!(e.to_string().starts_with("unexpected reply from "), "{e}");
    }
}
