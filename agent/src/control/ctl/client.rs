//! A small blocking HTTP/1.1 client for the control socket: one request per connection, every step with a
//! deadline, and connection failures told apart so agentctl can say what to do about them.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// Replies are JSON documents or a bundle; anything larger is not from the agent.
const MAX_REPLY: u64 = 256 * 1024 * 1024;

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
    #[error("unexpected reply from {}: {message}", socket.display())]
    Protocol { socket: PathBuf, message: String },
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
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let socket = self.socket.clone();
        let mut stream = UnixStream::connect(&socket).map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                ClientError::Denied { group: socket_group(&socket), socket: socket.clone() }
            }
            _ => ClientError::Unreachable { socket: socket.clone(), source },
        })?;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ClientError::Timeout { socket: socket.clone(), timeout }
            }
            _ => ClientError::Protocol { socket: socket.clone(), message: e.to_string() },
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let request = [head.as_bytes(), body.as_bytes()].concat();
        if let Err(e) = stream.write_all(&request) {
            // The agent may answer (e.g. 403) and close before reading everything; its answer still counts.
            if e.kind() != std::io::ErrorKind::BrokenPipe && e.kind() != std::io::ErrorKind::ConnectionReset {
                return Err(io(e));
            }
        }
        let mut raw = Vec::new();
        stream.take(MAX_REPLY).read_to_end(&mut raw).map_err(io)?;
        parse(&raw).map_err(|message| ClientError::Protocol { socket, message })
    }
}

/// Splits status, headers and body; the agent sends Content-Length (or closes after the body).
fn parse(raw: &[u8]) -> Result<Reply, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no complete HTTP header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "header is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut body = raw[end + 4..].to_vec();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("content-length") {
            let len: usize = value.trim().parse().map_err(|_| format!("bad Content-Length {value:?}"))?;
            if body.len() < len {
                return Err(format!("reply cut short: {} of {len} bytes", body.len()));
            }
            body.truncate(len);
        }
    }
    Ok(Reply { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_split_and_short_ones_refused() {
        let r = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}").unwrap_err().contains("cut short"));
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn a_missing_socket_is_unreachable() {
        let c = Client { socket: PathBuf::from("/nonexistent/agent.sock") };
        let e = c.request("GET", "/api/v1/status", None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }));
        assert!(e.to_string().contains("systemctl status accel-agent"), "{e}");
    }
}
