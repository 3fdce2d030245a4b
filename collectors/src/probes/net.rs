//! Reachability probes: the runbooks' "ping the board", over TCP connect or a UDP exchange.
//!
//! One deadline covers the whole probe, name resolution included: a resolver that hangs is as much a
//! failure to reach the board as a board that does not answer.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use crate::fault::AgentFault;

/// Largest reply read. Any datagram counts as an answer, so its content does not matter.
const REPLY_BUF: usize = 2048;

/// Where to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    /// `host:port`, resolved at every run: a board's address may change with DHCP.
    HostPort(String),
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target::Addr(addr)
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Target {
        match s.parse() {
            Ok(addr) => Target::Addr(addr),
            Err(_) => Target::HostPort(s.to_owned()),
        }
    }
}

impl From<String> for Target {
    fn from(s: String) -> Target {
        Target::from(s.as_str())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => addr.fmt(f),
            Target::HostPort(s) => f.write_str(s),
        }
    }
}

/// The result of one reachability probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOutcome {
    pub ok: bool,
    pub duration: Duration,
    /// Why the target counts as unreachable, naming it.
    pub error: Option<String>,
    /// The check was never made because the agent itself is out of a resource (no socket could be
    /// opened): then the outcome says nothing about the target.
    pub fault: Option<AgentFault>,
}

impl NetOutcome {
    fn from_result(result: Result<(), NetError>, started: Instant) -> NetOutcome {
        NetOutcome {
            ok: result.is_ok(),
            duration: started.elapsed(),
            fault: result.as_ref().err().and_then(NetError::agent_fault),
            error: result.err().map(|e| e.to_string()),
        }
    }
}

impl NetError {
    /// Opening the socket failed for want of the agent's own resources. Only errors from our side of the
    /// exchange: a name that does not resolve or a peer that refuses is about the target.
    fn agent_fault(&self) -> Option<AgentFault> {
        match self {
            NetError::Connect { source, .. } | NetError::Udp { source, .. } => AgentFault::of(source),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum NetError {
    #[error("resolving {target}: {source}")]
    Resolve { target: String, source: io::Error },
    #[error("resolving {target}: no addresses")]
    NoAddress { target: String },
    #[error("resolving {target}: no answer within {timeout:?}")]
    ResolveTimeout { target: String, timeout: Duration },
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("{target}: no connection within {timeout:?}")]
    ConnectTimeout { target: String, timeout: Duration },
    #[error("{op} {addr}: {source}")]
    Udp { op: &'static str, addr: SocketAddr, source: io::Error },
    #[error("{addr}: no reply within {timeout:?}")]
    NoReply { addr: SocketAddr, timeout: Duration },
}

/// Resolves `target` before `deadline`, keeping the resolver's order.
async fn resolve(target: &Target, deadline: Instant, timeout: Duration) -> Result<Vec<SocketAddr>, NetError> {
    let name = match target {
        Target::Addr(addr) => return Ok(vec![*addr]),
        Target::HostPort(name) => name,
    };
    // getaddrinfo cannot be cancelled: on timeout its blocking thread finishes in the background, but the
    // probe answers at its deadline.
    let addrs = timeout_at(deadline, tokio::net::lookup_host(name.as_str()))
        .await
        .map_err(|_| NetError::ResolveTimeout { target: name.clone(), timeout })?
        .map_err(|source| NetError::Resolve { target: name.clone(), source })?
        .collect::<Vec<_>>();
    if addrs.is_empty() {
        return Err(NetError::NoAddress { target: name.clone() });
    }
    Ok(addrs)
}

/// Reachable when a TCP connection completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    pub target: Target,
    pub timeout: Duration,
}

impl TcpProbe {
    pub fn new(target: impl Into<Target>, timeout: Duration) -> TcpProbe {
        TcpProbe { target: target.into(), timeout }
    }

    pub async fn run(&self) -> NetOutcome {
        let started = Instant::now();
        NetOutcome::from_result(self.connect(started + self.timeout).await, started)
    }

    async fn connect(&self, deadline: Instant) -> Result<(), NetError> {
        let addrs = resolve(&self.target, deadline, self.timeout).await?;
        let mut last = None;
        // A name with IPv6 and IPv4 addresses may answer on only one of them.
        for addr in addrs {
            match timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => return Ok(()),
                Ok(Err(source)) => last = Some(NetError::Connect { addr, source }),
                Err(_) => break,
            }
        }
        Err(last.unwrap_or(NetError::ConnectTimeout { target: self.target.to_string(), timeout: self.timeout }))
    }
}

/// Reachable when a datagram comes back, or, for targets that do not answer, when no ICMP error does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpProbe {
    pub target: Target,
    pub payload: Vec<u8>,
    /// Whether the target answers the payload. Without an answer to wait for, an ok result takes the
    /// whole timeout: only the absence of "port unreachable" within it says anything.
    pub expect_reply: bool,
    pub timeout: Duration,
}

impl UdpProbe {
    pub fn new(target: impl Into<Target>, payload: Vec<u8>, expect_reply: bool, timeout: Duration) -> UdpProbe {
        UdpProbe { target: target.into(), payload, expect_reply, timeout }
    }

    pub async fn run(&self) -> NetOutcome {
        let started = Instant::now();
        NetOutcome::from_result(self.exchange(started + self.timeout).await, started)
    }

    async fn exchange(&self, deadline: Instant) -> Result<(), NetError> {
        // Without a handshake there is no way to tell which address works; the resolver's first choice it is.
        let addr = resolve(&self.target, deadline, self.timeout).await?[0];
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let udp = |op, source| NetError::Udp { op, addr, source };
        let socket = UdpSocket::bind(local).await.map_err(|e| udp("binding for", e))?;
        // Connected, so that the kernel delivers only the target's datagrams and reports its ICMP errors.
        socket.connect(addr).await.map_err(|e| udp("connecting to", e))?;
        socket.send(&self.payload).await.map_err(|e| udp("sending to", e))?;
        let mut buf = [0u8; REPLY_BUF];
        match timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(udp("receiving from", e)),
            Err(_) if self.expect_reply => Err(NetError::NoReply { addr, timeout: self.timeout }),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_addresses_and_keep_names() {
        assert_eq!(Target::from("127.0.0.1:80"), Target::Addr(([127, 0, 0, 1], 80).into()));
        assert_eq!(Target::from("[::1]:80").to_string(), "[::1]:80");
        assert_eq!(Target::from("board0.local:5000"), Target::HostPort("board0.local:5000".to_owned()));
    }
}
