//! A spalloc v1 client: newline-delimited JSON over TCP (port 22244).
//!
//! The connection is opened on first use and dropped after any error that may leave it mid-reply, so the
//! next call starts clean; the agent keeps one client per server and simply calls it every poll.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout_at};

/// The port spalloc-server listens on.
pub const SPALLOC_PORT: u16 = 22244;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpallocOptions {
    /// Name resolution and TCP connect, together.
    pub connect_timeout: Duration,
    /// One request: sending it and reading lines until its reply, notifications included.
    pub request_timeout: Duration,
    /// Longest line accepted. list_jobs on a busy 1,200-board machine is tens of kilobytes; the cap only
    /// stops a broken server from growing the agent without bound.
    pub max_line: usize,
}

impl Default for SpallocOptions {
    fn default() -> SpallocOptions {
        SpallocOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_line: 8 << 20,
        }
    }
}

/// A machine as list_machines describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Machine {
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub width: u32,
    pub height: u32,
    /// [x, y, z] of each dead board.
    #[serde(default)]
    pub dead_boards: Vec<[u32; 3]>,
    /// [x, y, z, link] of each dead link.
    #[serde(default)]
    pub dead_links: Vec<[u32; 4]>,
}

/// A job's state; numbers this client does not know are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "u64")]
pub enum JobState {
    Unknown,
    Queued,
    Power,
    Ready,
    Destroyed,
    Other(u64),
}

impl From<u64> for JobState {
    fn from(n: u64) -> JobState {
        match n {
            0 => JobState::Unknown,
            1 => JobState::Queued,
            2 => JobState::Power,
            3 => JobState::Ready,
            4 => JobState::Destroyed,
            n => JobState::Other(n),
        }
    }
}

impl JobState {
    /// A bounded label value: numbers this client does not know are "unknown" too.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Unknown | JobState::Other(_) => "unknown",
            JobState::Queued => "queued",
            JobState::Power => "power",
            JobState::Ready => "ready",
            JobState::Destroyed => "destroyed",
        }
    }
}

/// A job as list_jobs describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Job {
    pub job_id: u64,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub start_time: Option<f64>,
    #[serde(default)]
    pub keepalive: Option<f64>,
    pub state: JobState,
    #[serde(default)]
    pub power: Option<bool>,
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    #[serde(default)]
    pub allocated_machine_name: Option<String>,
    /// [x, y, z] of each allocated board, once allocated.
    #[serde(default)]
    pub boards: Option<Vec<[u32; 3]>>,
    #[serde(default)]
    pub keepalivehost: Option<String>,
}

impl JobState {
    /// The states a job listed by a server can be in. spalloc-server's `list_jobs` lists only live jobs
    /// (spalloc_server/controller.py drops a job from its table the moment it is destroyed, and jobs start
    /// queued), and the Java service's `GET jobs?deleted=false` leaves destroyed jobs out likewise.
    pub const LISTED: [JobState; 3] = [JobState::Queued, JobState::Power, JobState::Ready];
}

impl Job {
    /// The machines this job belongs to for counting: the machine it was allocated, or while it waits
    /// unallocated, every machine the server queues it on. spalloc-server (job_queue.py `_enqueue_job`)
    /// queues a job on the machine its `machine` keyword names, or else on every machine whose tags
    /// include all of the job's `tags` (`["default"]` when the job gave none). The server also skips a
    /// machine that could never fit the request; that size check is not repeated here.
    pub fn machines<'a>(&'a self, machines: &'a [Machine]) -> Vec<&'a str> {
        if let Some(m) = &self.allocated_machine_name {
            return vec![m.as_str()];
        }
        if let Some(name) = self.kwargs.get("machine").and_then(Value::as_str) {
            return vec![name];
        }
        let tags: Vec<&str> = match self.kwargs.get("tags").and_then(Value::as_array) {
            Some(tags) => tags.iter().filter_map(Value::as_str).collect(),
            None => vec!["default"],
        };
        machines
            .iter()
            .filter(|m| tags.iter().all(|t| m.tags.iter().any(|mt| mt == t)))
            .map(|m| m.name.as_str())
            .collect()
    }
}

/// Why a spalloc call failed; every variant names the server.
#[derive(Debug, thiserror::Error)]
pub enum SpallocError {
    #[error("spalloc {server}: resolving: {source}")]
    Resolve { server: String, source: io::Error },
    #[error("spalloc {server}: resolving: no addresses")]
    NoAddress { server: String },
    #[error("spalloc {server}: connecting to {addr}: {source}")]
    Connect { server: String, addr: SocketAddr, source: io::Error },
    #[error("spalloc {server}: not connected within {timeout:?}")]
    ConnectTimeout { server: String, timeout: Duration },
    #[error("spalloc {server}: {command}: {source}")]
    Io { server: String, command: String, source: io::Error },
    #[error("spalloc {server}: {command}: no reply within {timeout:?}")]
    Timeout { server: String, command: String, timeout: Duration },
    #[error("spalloc {server}: {command}: connection closed by the server")]
    Closed { server: String, command: String },
    #[error("spalloc {server}: {command}: a line longer than {limit} bytes")]
    LineTooLong { server: String, command: String, limit: usize },
    #[error("spalloc {server}: {command}: malformed reply: {reason}")]
    Malformed { server: String, command: String, reason: String },
    #[error("spalloc {server}: {command}: server raised: {message}")]
    Exception { server: String, command: String, message: String },
}

impl SpallocError {
    pub fn server(&self) -> &str {
        match self {
            SpallocError::Resolve { server, .. }
            | SpallocError::NoAddress { server }
            | SpallocError::Connect { server, .. }
            | SpallocError::ConnectTimeout { server, .. }
            | SpallocError::Io { server, .. }
            | SpallocError::Timeout { server, .. }
            | SpallocError::Closed { server, .. }
            | SpallocError::LineTooLong { server, .. }
            | SpallocError::Malformed { server, .. }
            | SpallocError::Exception { server, .. } => server,
        }
    }
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A client of one spalloc server.
pub struct SpallocClient {
    server: String,
    options: SpallocOptions,
    conn: Option<Connection>,
    server_version: Option<String>,
    notifications_skipped: u64,
}

impl std::fmt::Debug for SpallocClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpallocClient")
            .field("server", &self.server)
            .field("connected", &self.conn.is_some())
            .field("server_version", &self.server_version)
            .finish()
    }
}

impl SpallocClient {
    /// `server` is `host:port`; nothing is resolved or connected until the first call.
    pub fn new(server: impl Into<String>, options: SpallocOptions) -> SpallocClient {
        SpallocClient { server: server.into(), options, conn: None, server_version: None, notifications_skipped: 0 }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// What the server answered to "version" on the current or last connection.
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    /// Notification lines skipped while waiting for replies, over the client's life.
    pub fn notifications_skipped(&self) -> u64 {
        self.notifications_skipped
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Connects if not connected, and says "version" first as the protocol asks.
    pub async fn connect(&mut self) -> Result<(), SpallocError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let stream = self.open().await?;
        let (read, writer) = stream.into_split();
        self.conn = Some(Connection { reader: BufReader::new(read), writer });
        let version = self.exchange("version", json!({})).await?;
        self.server_version = Some(match version {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(())
    }

    async fn open(&self) -> Result<TcpStream, SpallocError> {
        let server = || self.server.clone();
        let timeout = self.options.connect_timeout;
        let deadline = Instant::now() + timeout;
        let timed_out = || SpallocError::ConnectTimeout { server: server(), timeout };
        let addrs: Vec<SocketAddr> = timeout_at(deadline, tokio::net::lookup_host(self.server.as_str()))
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| SpallocError::Resolve { server: server(), source })?
            .collect();
        let mut last = SpallocError::NoAddress { server: server() };
        for addr in addrs {
            match timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Requests are single small lines; waiting to coalesce them only adds latency.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Ok(Err(source)) => last = SpallocError::Connect { server: server(), addr, source },
                Err(_) => return Err(timed_out()),
            }
        }
        Err(last)
    }

    pub async fn version(&mut self) -> Result<String, SpallocError> {
        match self.call("version", json!({})).await? {
            Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    }

    pub async fn list_machines(&mut self) -> Result<Vec<Machine>, SpallocError> {
        let value = self.call("list_machines", json!({})).await?;
        self.decode("list_machines", value)
    }

    pub async fn list_jobs(&mut self) -> Result<Vec<Job>, SpallocError> {
        let value = self.call("list_jobs", json!({})).await?;
        self.decode("list_jobs", value)
    }

    /// Any command with keyword arguments (e.g. where_is), returning the raw "return" value.
    pub async fn call(&mut self, command: &str, kwargs: Value) -> Result<Value, SpallocError> {
        self.connect().await?;
        self.exchange(command, kwargs).await
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, command: &str, value: Value) -> Result<T, SpallocError> {
        serde_json::from_value(value).map_err(|e| SpallocError::Malformed {
            server: self.server.clone(),
            command: command.to_owned(),
            reason: e.to_string(),
        })
    }

    /// One request and its reply on the open connection; any failure but a server exception leaves the
    /// stream in an unknown place, so the connection goes with it.
    async fn exchange(&mut self, command: &str, kwargs: Value) -> Result<Value, SpallocError> {
        let result = self.exchange_inner(command, kwargs).await;
        if matches!(result, Err(ref e) if !matches!(e, SpallocError::Exception { .. })) {
            self.conn = None;
        }
        result
    }

    async fn exchange_inner(&mut self, command: &str, kwargs: Value) -> Result<Value, SpallocError> {
        let timeout = self.options.request_timeout;
        let max_line = self.options.max_line;
        let server = self.server.clone();
        let err_closed = || SpallocError::Closed { server: server.clone(), command: command.to_owned() };
        let Some(conn) = self.conn.as_mut() else {
            return Err(err_closed());
        };
        let mut skipped = 0;
        let work = async {
            let mut line = serde_json::to_vec(&json!({"command": command, "args": [], "kwargs": kwargs}))
                .map_err(|e| malformed(&server, command, format!("encoding the request: {e}")))?;
            line.push(b'\n');
            let io = |source| SpallocError::Io { server: server.clone(), command: command.to_owned(), source };
            conn.writer.write_all(&line).await.map_err(io)?;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let limit = u64::try_from(max_line).unwrap_or(u64::MAX).saturating_add(1);
                let n = (&mut conn.reader).take(limit).read_until(b'\n', &mut buf).await.map_err(io)?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    if buf.len() > max_line {
                        return Err(SpallocError::LineTooLong {
                            server: server.clone(),
                            command: command.to_owned(),
                            limit: max_line,
                        });
                    }
                    return Err(err_closed());
                }
                match classify(&buf) {
                    Ok(Line::Return(v)) => return Ok(v),
                    Ok(Line::Exception(message)) => {
                        return Err(SpallocError::Exception {
                            server: server.clone(),
                            command: command.to_owned(),
                            message,
                        });
                    }
                    Ok(Line::Notification) => skipped += 1,
                    Ok(Line::Blank) => {}
                    Err(reason) => return Err(malformed(&server, command, reason.to_string())),
                }
            }
        };
        let result = timeout_at(Instant::now() + timeout, work).await.unwrap_or_else(|_| {
            Err(SpallocError::Timeout { server: server.clone(), command: command.to_owned(), timeout })
        });
        self.notifications_skipped += skipped;
        result
    }
}

fn malformed(server: &str, command: &str, reason: String) -> SpallocError {
    SpallocError::Malformed { server: server.to_owned(), command: command.to_owned(), reason }
}

#[derive(Debug)]
enum Line {
    Return(Value),
    Exception(String),
    Notification,
    Blank,
}

/// A line that is neither a reply nor a notification, with enough of it to recognise in a log.
#[derive(Debug, thiserror::Error)]
enum BadLine {
    #[error("not JSON ({source}): {excerpt}")]
    NotJson { source: serde_json::Error, excerpt: String },
    #[error("not a JSON object: {0}")]
    NotObject(String),
    #[error("neither a reply nor a notification: {0}")]
    Neither(String),
}

fn classify(line: &[u8]) -> Result<Line, BadLine> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Line::Blank);
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|source| BadLine::NotJson { source, excerpt: excerpt(line) })?;
    let Value::Object(mut obj) = value else {
        return Err(BadLine::NotObject(excerpt(line)));
    };
    if let Some(v) = obj.remove("return") {
        return Ok(Line::Return(v));
    }
    if let Some(v) = obj.remove("exception") {
        return Ok(Line::Exception(match v {
            Value::String(s) => s,
            other => other.to_string(),
        }));
    }
    if obj.contains_key("jobs_changed") || obj.contains_key("machines_changed") {
        return Ok(Line::Notification);
    }
    Err(BadLine::Neither(excerpt(line)))
}

/// Enough of a bad line to recognise it in a log, without pasting megabytes.
fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]);
    let text = text.trim_end();
    if line.len() > MAX { format!("{text}...") } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified() {
        assert!(matches!(classify(b"{\"return\": 3}\n"), Ok(Line::Return(Value::Number(_)))));
        assert!(matches!(classify(b"{\"exception\": \"no\"}\n"), Ok(Line::Exception(m)) if m == "no"));
        assert!(matches!(classify(b"{\"jobs_changed\": [1]}\n"), Ok(Line::Notification)));
        assert!(matches!(classify(b"{\"machines_changed\": [\"m\"]}\n"), Ok(Line::Notification)));
        assert!(matches!(classify(b"  \r\n"), Ok(Line::Blank)));
        assert!(classify(b"[1]\n").unwrap_err().to_string().contains("not a JSON object"));
        assert!(classify(b"{\"other\": 1}\n").unwrap_err().to_string().contains("neither"));
        assert!(classify(b"\xff\xfe\n").unwrap_err().to_string().contains("not JSON"));
    }

    #[test]
    fn job_states_keep_unknown_numbers() {
        let states: Vec<JobState> = serde_json::from_str("[0,1,2,3,4,9]").unwrap();
        assert_eq!(
            states,
            [
                JobState::Unknown,
                JobState::Queued,
                JobState::Power,
                JobState::Ready,
                JobState::Destroyed,
                JobState::Other(9)
            ]
        );
        assert_eq!(JobState::Other(9).as_str(), "unknown");
    }

    #[test]
    fn a_real_shaped_job_decodes() {
        let job: Job = serde_json::from_value(json!({
            "job_id": 7, "owner": "alice", "start_time": 1.5e9, "keepalive": 60.0, "state": 3, "power": true,
            "args": [1], "kwargs": {"tags": null}, "allocated_machine_name": "m", "boards": [[0, 0, 1]],
            "keepalivehost": "10.0.0.1"
        }))
        .unwrap();
        assert_eq!(job.state, JobState::Ready);
        assert_eq!(job.boards, Some(vec![[0, 0, 1]]));
        assert_eq!(job.owner.as_deref(), Some("alice"));
    }
}
