//! An async SCP client: one UDP socket for every BMP and board, many requests in flight at once.
//!
//! A receive task reads every datagram and hands it to the request waiting on its (source address, seq);
//! anything else is counted and dropped. Each request keeps its seq across retries, as rig and spinnman
//! do, so a reply to an earlier try that arrives during a later one still answers the request.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::scp::{Command, ReturnCode, ScpReply, ScpRequest};
use super::table::{LINGER, Lookup, Table};

/// Larger than any SCP packet (256 data bytes + headers); longer datagrams are not SCP and get truncated.
const RECV_BUF: usize = 2048;

/// Room for a few thousand replies: a whole 1,200-board poll's worth even if the receive task stalls.
const DEFAULT_RECV_BUFFER: usize = 4 << 20;

/// Replies queued for one request before more count as duplicates; only retryable error replies can
/// queue at all, since a final one ends the request.
const REPLY_QUEUE: usize = 4;

/// How long to wait per try and how often to try, as in the public clients (rig: 0.5 s, 5 tries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub timeout: Duration,
    pub attempts: u32,
    /// Added to each try's timeout for BMP_POWER on: the BMP replies only once the supplies are up.
    pub power_on_extra: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { timeout: Duration::from_millis(500), attempts: 5, power_on_extra: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The longest a call with this per-try timeout can take.
    pub fn budget(&self, per_try: Duration) -> Duration {
        per_try.saturating_mul(self.attempts.max(1))
    }
}

/// How to set up a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    pub policy: RetryPolicy,
    /// Local address of the one socket; IPv4 any-address by default, since BMPs are IPv4 devices.
    pub bind: SocketAddr,
    /// First seq used for each address. None picks one from the clock and pid, so that after a restart
    /// stragglers addressed to the previous process are not taken as answers.
    pub first_seq: Option<u16>,
    /// SO_RCVBUF asked for. Replies to a whole poll arrive in bursts on one socket; what does not fit is
    /// dropped by the kernel and costs a retry. The kernel caps it at net.core.rmem_max; None keeps the
    /// system default.
    pub recv_buffer: Option<usize>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            policy: RetryPolicy::default(),
            bind: (Ipv4Addr::UNSPECIFIED, 0).into(),
            first_seq: None,
            recv_buffer: Some(DEFAULT_RECV_BUFFER),
        }
    }
}

/// Counters since the client was created. Every datagram received lands in exactly one of replies,
/// malformed (too short), foreign or late_or_duplicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScpStats {
    /// Datagrams sent, first tries and resends.
    pub sent: u64,
    /// Resends: tries after the first.
    pub retries: u64,
    /// Tries that saw no reply within their timeout.
    pub timeouts: u64,
    /// Replies matched to a request in flight (including error replies).
    pub replies: u64,
    /// Matched replies with a return code other than OK, retryable or not.
    pub error_replies: u64,
    /// Datagrams too short to be SCP, and replies whose payload the command could not decode.
    pub malformed: u64,
    /// From an address or with a seq no request of ours used recently.
    pub foreign: u64,
    /// Ours, but after the request gave up or was already answered.
    pub late_or_duplicate: u64,
}

/// Counters of several clients (or of one client and those before it) added up.
impl std::ops::Add for ScpStats {
    type Output = ScpStats;

    fn add(self, o: ScpStats) -> ScpStats {
        ScpStats {
            sent: self.sent + o.sent,
            retries: self.retries + o.retries,
            timeouts: self.timeouts + o.timeouts,
            replies: self.replies + o.replies,
            error_replies: self.error_replies + o.error_replies,
            malformed: self.malformed + o.malformed,
            foreign: self.foreign + o.foreign,
            late_or_duplicate: self.late_or_duplicate + o.late_or_duplicate,
        }
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    retries: AtomicU64,
    timeouts: AtomicU64,
    replies: AtomicU64,
    error_replies: AtomicU64,
    malformed: AtomicU64,
    foreign: AtomicU64,
    late_or_duplicate: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> ScpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ScpStats {
            sent: get(&self.sent),
            retries: get(&self.retries),
            timeouts: get(&self.timeouts),
            replies: get(&self.replies),
            error_replies: get(&self.error_replies),
            malformed: get(&self.malformed),
            foreign: get(&self.foreign),
            late_or_duplicate: get(&self.late_or_duplicate),
        }
    }
}

/// Why an SCP call failed; every variant names the socket address it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    #[error("binding the SCP socket to {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("{addr}: sending {cmd}: {source}")]
    Send { addr: SocketAddr, cmd: Command, source: io::Error },
    #[error("{addr}: no reply to {cmd} after {attempts} tries of {per_try:?}")]
    Timeout { addr: SocketAddr, cmd: Command, attempts: u32, per_try: Duration },
    #[error("{addr}: {cmd} failed with return code {rc} after {attempts} tries")]
    ReturnCode { addr: SocketAddr, cmd: Command, rc: ReturnCode, attempts: u32 },
    #[error("{addr}: malformed reply to {cmd}: {reason}")]
    Malformed { addr: SocketAddr, cmd: Command, reason: String },
    #[error("{addr}: {what}")]
    InvalidRequest { addr: SocketAddr, what: String },
    #[error("{addr}: all 65536 sequence numbers are in flight")]
    Busy { addr: SocketAddr },
    #[error("{addr}: the client's receive task has stopped")]
    Closed { addr: SocketAddr },
    #[error("{addr}: board {board} not polled: the poll's deadline passed")]
    Deadline { addr: SocketAddr, board: u8 },
    #[error("{addr}: board {board} not polled: the frame did not answer board {probe}")]
    FrameUnreachable { addr: SocketAddr, board: u8, probe: u8 },
    #[error("{addr}: board {board}: poll task failed: {reason}")]
    Internal { addr: SocketAddr, board: u8, reason: String },
}

impl ScpError {
    pub fn addr(&self) -> SocketAddr {
        match self {
            ScpError::Bind { addr, .. }
            | ScpError::Send { addr, .. }
            | ScpError::Timeout { addr, .. }
            | ScpError::ReturnCode { addr, .. }
            | ScpError::Malformed { addr, .. }
            | ScpError::InvalidRequest { addr, .. }
            | ScpError::Busy { addr }
            | ScpError::Closed { addr }
            | ScpError::Deadline { addr, .. }
            | ScpError::FrameUnreachable { addr, .. }
            | ScpError::Internal { addr, .. } => *addr,
        }
    }

    /// No answer at all, as opposed to an answer that said no.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ScpError::Timeout { .. })
    }
}

type Waiter = mpsc::Sender<ScpReply>;

struct Inner {
    socket: UdpSocket,
    table: Mutex<Table<Waiter>>,
    counters: Counters,
    policy: RetryPolicy,
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table<Waiter>> {
        // The table's invariants hold between any two statements, so a panic elsewhere while holding the
        // lock leaves nothing half-done worth refusing to read.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dispatch(&self, buf: &[u8], from: SocketAddr) {
        let (rc, seq) = match ScpReply::peek(buf) {
            Ok(v) => v,
            Err(e) => {
                bump(&self.counters.malformed);
                tracing::debug!(%from, "scp: dropped datagram: {e}");
                return;
            }
        };
        let now = Instant::now();
        let mut table = self.table();
        let waiter = match table.lookup(from, seq, now) {
            Lookup::Pending(w) => w.clone(),
            Lookup::Finished => {
                bump(&self.counters.late_or_duplicate);
                return;
            }
            Lookup::Unknown => {
                bump(&self.counters.foreign);
                tracing::debug!(%from, seq, "scp: dropped reply matching no request");
                return;
            }
        };
        // A final answer ends the request here, under the lock, so that a duplicate right behind it is
        // already classified as one.
        if !rc.is_retryable() {
            table.finish(from, seq, now);
        }
        drop(table);
        let reply = ScpReply { rc, seq, payload: buf[super::scp::HEADER_LEN..].to_vec() };
        match waiter.try_send(reply) {
            Ok(()) => {
                bump(&self.counters.replies);
                if !rc.is_ok() {
                    bump(&self.counters.error_replies);
                }
            }
            Err(_) => bump(&self.counters.late_or_duplicate),
        }
    }
}

/// Ends a request's registration however the call ends, cancellation included.
struct Registration<'a> {
    inner: &'a Inner,
    addr: SocketAddr,
    seq: u16,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.inner.table().finish(self.addr, self.seq, Instant::now());
    }
}

struct Shared {
    inner: Arc<Inner>,
    receiver: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// An SCP client; cheap to clone, all clones share the socket, the counters and the receive task, which
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct ScpClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ScpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScpClient").field("local", &self.local_addr()).field("policy", &self.policy()).finish()
    }
}

impl ScpClient {
    /// Binds the IPv4 any-address with `policy`. Must be called within a tokio runtime.
    pub async fn new(policy: RetryPolicy) -> Result<ScpClient, ScpError> {
        ScpClient::with_options(ClientOptions { policy, ..ClientOptions::default() }).await
    }

    pub async fn with_options(options: ClientOptions) -> Result<ScpClient, ScpError> {
        let bind = |source| ScpError::Bind { addr: options.bind, source };
        let socket = UdpSocket::bind(options.bind).await.map_err(bind)?;
        if let Some(size) = options.recv_buffer {
            // Best effort: a smaller buffer than asked only means more retries under load.
            let sock = socket2::SockRef::from(&socket);
            if let Err(e) = sock.set_recv_buffer_size(size) {
                tracing::debug!("scp: SO_RCVBUF {size}: {e}");
            }
        }
        let first_seq = options.first_seq.unwrap_or_else(seed_seq);
        let inner = Arc::new(Inner {
            socket,
            table: Mutex::new(Table::new(first_seq, LINGER)),
            counters: Counters::default(),
            policy: options.policy,
        });
        let receiver = tokio::spawn(receive(Arc::clone(&inner)));
        Ok(ScpClient { shared: Arc::new(Shared { inner, receiver }) })
    }

    fn inner(&self) -> &Inner {
        &self.shared.inner
    }

    /// The socket's local address; None only if the OS cannot say.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner().socket.local_addr().ok()
    }

    pub fn policy(&self) -> RetryPolicy {
        self.inner().policy
    }

    pub fn stats(&self) -> ScpStats {
        self.inner().counters.snapshot()
    }

    /// The socket's receive buffer as the kernel granted it.
    pub fn recv_buffer(&self) -> Option<usize> {
        socket2::SockRef::from(&self.inner().socket).recv_buffer_size().ok()
    }

    /// Requests waiting for a reply right now.
    pub fn in_flight(&self) -> usize {
        self.inner().table().in_flight()
    }

    /// For decoders above this layer: a matched reply whose payload made no sense.
    pub(crate) fn count_malformed(&self) {
        bump(&self.inner().counters.malformed);
    }

    /// Sends `req` to `addr` with the policy's per-try timeout; see [`ScpClient::call_with_timeout`].
    pub async fn call(&self, addr: SocketAddr, req: &ScpRequest) -> Result<ScpReply, ScpError> {
        self.call_with_timeout(addr, req, self.policy().timeout).await
    }

    /// Sends `req` and waits up to `per_try` for the reply, resending up to the policy's attempts on no
    /// reply or a retryable return code. Returns only OK replies; the whole call ends within
    /// `attempts x per_try`.
    pub async fn call_with_timeout(
        &self,
        addr: SocketAddr,
        req: &ScpRequest,
        per_try: Duration,
    ) -> Result<ScpReply, ScpError> {
        let inner = self.inner();
        let attempts = inner.policy.attempts.max(1);
        let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
        let seq = inner.table().allocate(addr, tx, Instant::now()).ok_or(ScpError::Busy { addr })?;
        let _registration = Registration { inner, addr, seq };
        let packet = req.encode(seq);
        let cmd = req.cmd;
        let mut last_rc = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                bump(&inner.counters.retries);
            }
            inner.socket.send_to(&packet, addr).await.map_err(|source| ScpError::Send { addr, cmd, source })?;
            bump(&inner.counters.sent);
            last_rc = None;
            match timeout_at(Instant::now() + per_try, rx.recv()).await {
                Err(_) => bump(&inner.counters.timeouts),
                // The sender lives in the table until this call's registration ends.
                Ok(None) => return Err(ScpError::Closed { addr }),
                Ok(Some(reply)) if reply.rc.is_ok() => return Ok(reply),
                Ok(Some(reply)) if reply.rc.is_retryable() => last_rc = Some(reply.rc),
                Ok(Some(reply)) => {
                    return Err(ScpError::ReturnCode { addr, cmd, rc: reply.rc, attempts: attempt + 1 });
                }
            }
        }
        Err(match last_rc {
            Some(rc) => ScpError::ReturnCode { addr, cmd, rc, attempts },
            None => ScpError::Timeout { addr, cmd, attempts, per_try },
        })
    }
}

async fn receive(inner: Arc<Inner>) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        match inner.socket.recv_from(&mut buf).await {
            Ok((n, from)) => inner.dispatch(&buf[..n], from),
            Err(e) => {
                // Errors on an unconnected UDP socket are transient (an ICMP report, a full buffer); the
                // pause keeps a persistent one from spinning a core.
                tracing::debug!("scp: receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn seed_seq() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id().rotate_left(16)) as u16
}
