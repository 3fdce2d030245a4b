//! Runs the real accel-agent binary and talks to it over real HTTP.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

pub const BIN: &str = env!("CARGO_BIN_EXE_accel-agent");

/// A running agent; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
    /// The agent's own state directory (journal), removed with the agent.
    pub state_dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent on an ephemeral port with the given extra arguments, and waits until it logs
    /// its address.
    pub fn start(args: &[&str]) -> Agent {
        Agent::start_in(tempfile::Builder::new().prefix("agent-state-").tempdir().expect("state dir"), args)
    }

    /// Starts the agent with a given state directory (to restart it on the same journal and originals).
    pub fn start_in(state_dir: tempfile::TempDir, args: &[&str]) -> Agent {
        Agent::start_with(state_dir, args, |_| {})
    }

    /// Starts the agent with extra variables in its environment (credentials its children must not see).
    pub fn start_with_env(state_dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Agent {
        Agent::start_with(state_dir, args, |cmd| {
            cmd.envs(env.iter().copied());
        })
    }

    /// As [`Agent::start_in`], with `prepare` adjusting the command first (e.g. a `pre_exec` that lowers
    /// the child's limits).
    pub fn start_with(state_dir: tempfile::TempDir, args: &[&str], prepare: impl FnOnce(&mut Command)) -> Agent {
        let state = state_dir.path().to_str().expect("utf-8 temp path").to_owned();
        let socket = format!("{state}/agent.sock");
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"])
            .args(["--state-dir", &state, "--socket", &socket])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        prepare(&mut cmd);
        let mut child = cmd.spawn().expect("start accel-agent");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("accel-agent did not log its listen address");
            };
            if let Some(addr) = json_field(&line, "listen") {
                return Agent { child, addr: addr.parse().expect("listen address"), stderr: rx, state_dir };
            }
        }
    }

    /// Starts the agent on a sysfs tree with a config file written from `toml`.
    pub fn with_config(sysfs: &Path, toml: &str) -> (Agent, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("agent.toml");
        std::fs::write(&cfg, toml).expect("write config");
        let agent = Agent::start(&[
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--sysfs-root",
            sysfs.to_str().expect("utf-8 path"),
        ]);
        (agent, dir)
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.addr, path, &[], Duration::from_secs(5))
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http_get(self.addr, path, headers, Duration::from_secs(5))
    }

    /// Polls /-/ready until it answers 200.
    pub fn wait_ready(&self) {
        self.wait_for("ready", || self.get("/-/ready").status == 200);
    }

    /// Polls `cond` every 20 ms for up to 20 s.
    pub fn wait_for(&self, what: &str, cond: impl FnMut() -> bool) {
        wait(what, 20, cond);
    }

    /// The journal's events for `query` ("device=loihi0&kind=operator"), as the API answers them.
    pub fn events(&self, query: &str) -> String {
        self.get(&format!("/api/v1/events?{query}")).body
    }

    /// The value of one sample in the current scrape.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        parse_metrics(&self.get("/metrics").body).into_iter().find(|s| s.is(name, labels)).map(|s| s.value)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_field(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = line.find(&pat)? + pat.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The body's bytes as received (after de-chunking), e.g. gzip data.
    pub raw: Vec<u8>,
    pub elapsed: Duration,
}

/// Longest body a test reads (a bundle, a big scrape).
const MAX_BODY: usize = 256 << 20;

/// A GET with a deadline, through the agent's own HTTP exchange (hyper's client); panics on failure, as
/// a test should.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Response {
    let started = Instant::now();
    let s = TcpStream::connect_timeout(&addr, timeout).expect("connect");
    get_on(s, started, addr, path, headers, timeout)
}

/// [`http_get`] on a connection already made (e.g. from a chosen source address); `started` is when
/// the connecting began, for [`Response::elapsed`].
pub fn get_on(
    s: TcpStream,
    started: Instant,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Response {
    s.set_nonblocking(true).expect("non-blocking socket");
    let request = request("GET", &addr.to_string(), path, headers, "");
    let connect = async { tokio::net::TcpStream::from_std(s).map_err(|e| format!("connect: {e}")) };
    send(connect, request, timeout, started).expect("a response within the deadline")
}

/// A request with `Connection: close` and the given headers.
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> hyper::Request<Full<Bytes>> {
    let mut r = hyper::Request::builder().method(method).uri(path).header("host", host).header("connection", "close");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(Bytes::from(body.to_owned()))).expect("a well-formed request")
}

/// Sends `request` on the stream `connect` makes (TCP, TLS, a Unix socket), on a runtime of its own, all
/// within `timeout`; `Err` says which step failed.
pub fn send<S>(
    connect: impl Future<Output = Result<S, String>>,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    started: Instant,
) -> Result<Response, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let reply = runtime.block_on(async {
        let exchange = async {
            let stream = connect.await?;
            collectors::http::exchange(stream, request, MAX_BODY).await.map_err(|e| format!("no HTTP response: {e}"))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no response within {timeout:?}"))?
    })?;
    let headers: HashMap<String, String> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Ok(Response {
        status: reply.status.as_u16(),
        headers,
        body: String::from_utf8_lossy(&reply.body).into_owned(),
        raw: reply.body.to_vec(),
        elapsed: started.elapsed(),
    })
}

/// One request on the agent's control socket; returns the status code and the body.
pub fn socket_request(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = request(method, "agent", path, &[("content-type", "application/json")], body);
    let connect = async { tokio::net::UnixStream::connect(sock).await.map_err(|e| format!("connect: {e}")) };
    let r = send(connect, request, Duration::from_secs(5), Instant::now()).expect("a reply on the control socket");
    (r.status, r.body)
}

/// One sample of a text-format scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    pub fn is(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// Parses Prometheus text format (0.0.4 or OpenMetrics) samples; comments are skipped.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n.to_owned(), parse_labels(rest.strip_suffix('}').expect("closing brace"))),
            None => (series.to_owned(), Vec::new()),
        };
        out.push(Sample { name, labels, value });
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value starts with a quote in {s:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// Polls `cond` every 20 ms until it holds; fails the test naming `what` after `secs` seconds.
pub fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// `promtool check metrics` of a scrape: whether it passed, and what it reported (stdout and stderr).
pub fn promtool_check(body: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().expect("stdin piped").write_all(body.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

/// Fails the test unless the external program `name` is on PATH.
///
/// A test that needs one is compiled ignored when it is missing, e.g.
/// `#[cfg_attr(not(has_promtool), ignore = "promtool is not installed")]` (build.rs sets the cfgs, see
/// sim/external_tools.rs), so the summary counts it as ignored. A test that runs anyway (under
/// ACCEL_REQUIRE_EXTERNAL, with --include-ignored, or after the tool was removed) fails here, saying what
/// is missing, instead of passing without doing its work.
pub fn require_tool(name: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file())).unwrap_or(false);
    assert!(found, "{name} is not installed (not on PATH), and this test needs it");
}

/// The status and headers of a raw HTTP/1.1 response whose head has all arrived (parsed by httparse, as
/// hyper parses it); `None` while it has not, or if `raw` is not one. For connections a test opens by
/// hand (floods), where [`send`] does not fit.
pub fn http_head(raw: &[u8]) -> Option<(u16, HashMap<String, String>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    if !response.parse(raw).ok()?.is_complete() {
        return None;
    }
    let fields = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    Some((response.code?, fields))
}

/// Config sections that turn every host collector off (for devices whose only evidence is a probe).
pub fn host_collectors_off() -> String {
    ["hwmon", "thermal_zone", "cooling_device", "power_supply", "powercap", "pci_aer", "accel", "resources"]
        .iter()
        .map(|c| format!("[collectors.{c}]\nenabled = false\n"))
        .collect()
}

/// Runs agentctl against the agent's control socket; returns the exit code, stdout and stderr.
pub fn agentctl(agent: &Agent, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agentctl"))
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(args)
        .output()
        .expect("run agentctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file in a .tar.gz (a bundle) as (name, text).
pub fn untar(file: &Path) -> Vec<(String, String)> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).expect("open the archive"));
    let mut archive = tar::Archive::new(gz);
    let mut out = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        let name = entry.path().expect("an entry name").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("an entry's data");
        out.push((name, String::from_utf8_lossy(&data).into_owned()));
    }
    out
}

/// Raises this process's open-file soft limit to at least `want` (up to the hard limit); returns it.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    lim.rlim_cur
}

/// Runs chromium headless on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`), letting the page's
/// timers and fetches run for `budget_ms` of virtual time; killed if it takes longer than a minute.
pub fn chromium(profile: &Path, url: &str, mode: &str, budget_ms: u64) -> String {
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium {mode} {url}: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {mode} {url} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("stdout reader")
}

/// The inner HTML of the element `<tag id="id" ...>...</tag>` (first match; tables here do not nest).
pub fn element<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let open = format!("<{tag} id=\"{id}\"");
    let start = dom.find(&open).unwrap_or_else(|| panic!("no {open} in the page"));
    let body = &dom[start..];
    let end = body.find(&format!("</{tag}>")).expect("closing tag");
    &body[..end]
}
