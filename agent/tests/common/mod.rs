//! Runs the real accel-agent binary and talks to it over real HTTP.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}");
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

/// A minimal HTTP/1.1 GET with a deadline; enough for a test and free of client-library behaviour.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Response {
    let started = Instant::now();
    let s = TcpStream::connect_timeout(&addr, timeout).expect("connect");
    get_on(s, started, addr, path, headers, timeout)
}

/// [`http_get`] on a connection already made (e.g. from a chosen source address); `started` is when
/// the connecting began, for [`Response::elapsed`].
pub fn get_on(
    mut s: TcpStream,
    started: Instant,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Response {
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.set_write_timeout(Some(timeout)).expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response within the deadline");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        raw: body,
        elapsed: started.elapsed(),
    }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        let data = &s[eol + 2..];
        out.extend_from_slice(&data[..n]);
        s = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
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

/// Parses a raw HTTP/1.1 response as [`http_get`] does; `None` if `raw` is not one (e.g. from a TLS
/// client, which reads the bytes itself).
pub fn parse_http_response(raw: &[u8], started: Instant) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok())?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        raw: body,
        elapsed: started.elapsed(),
    })
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
