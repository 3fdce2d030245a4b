//! The agent against hostile input and noisy neighbours on its control socket and config file: a FIFO at
//! the config path, a reload of a file with a secret in it, absurd durations, a flood of idle connections
//! from an unprivileged user, and who may read matched log lines.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, raise_nofile};

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs
}

fn config(logs: &Path) -> String {
    format!(
        "poll_interval = \"100ms\"\n[discovery]\nenabled = false\n[control]\ngroup = \"4242\"\n\
         [[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n[[device.log]]\npath = \"{}/loihi0.log\"\n\
         [[device.log.rule]]\nname = \"dma\"\npattern = \"DMA\"\n",
        logs.display()
    )
}

fn socket(agent: &Agent) -> PathBuf {
    agent.state_dir.path().join("agent.sock")
}

fn ctl(agent: &Agent, args: &[&str], ids: Option<(u32, u32)>) -> (i32, String, String) {
    let mut cmd = Command::new(CTL);
    cmd.arg("--socket").arg(socket(agent)).args(args);
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("run agentctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `cond` for up to 20 s.
fn wait(what: &str, cond: impl FnMut() -> bool) {
    common::wait(what, 20, cond);
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[test]
fn a_fifo_at_the_config_path_is_refused_and_sigterm_still_stops_the_agent_within_2s() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (mut agent, cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let path = cfg.path().join("agent.toml");
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let started = Instant::now();
    let (code, _, stderr) = ctl(&agent, &["reload"], None);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is a FIFO, not a regular file"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(2), "the reload answered at once: {:?}", started.elapsed());
    assert_eq!(agent.metric("accel_config_last_reload_successful", &[]), Some(0.0));

    // SIGHUP and the file watch both try the FIFO again; SIGTERM right behind them ends the agent.
    agent.signal(libc::SIGHUP);
    agent.signal(libc::SIGTERM);
    let started = Instant::now();
    loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "still running 2 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rejected_reload_names_file_line_column_and_key_never_the_value_and_says_it_once() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let path = cfg.path().join("agent.toml");
    let bad =
        config(logs.path()) + "[[device.probe]]\nname = \"sdk\"\ncommand = [\"x\"]\ninterval = \"--api-key s3cr3t\"\n";
    std::fs::write(&path, &bad).unwrap();
    let line = bad.lines().position(|l| l.starts_with("interval")).unwrap() + 1;
    let (code, _, stderr) = ctl(&agent, &["reload"], None);
    assert_eq!(code, 1, "{stderr}");
    let at = format!("agent.toml:{line}:12: device[0].probe[0].interval: invalid duration");
    assert!(stderr.contains(&at), "{stderr}");
    assert_eq!(stderr.matches(&at).count(), 1, "printed once: {stderr}");
    assert!(!stderr.contains("s3cr3t") && !stderr.contains("api-key"), "{stderr}");
    let events = agent.get("/api/v1/events").body;
    assert!(events.contains("config reload rejected") && events.contains(&at), "{events}");
    assert!(!events.contains("s3cr3t"), "{events}");
    // The daemon log too.
    let mut log = String::new();
    while let Ok(l) = agent.stderr.recv_timeout(Duration::from_millis(200)) {
        log.push_str(&l);
    }
    assert!(log.contains("config reload rejected") && !log.contains("s3cr3t"), "{log}");
}

#[test]
fn absurd_hold_durations_are_a_clear_400() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let sock = socket(&agent);
    let (code, body) =
        common::socket_request(&sock, "POST", "/api/v1/devices/loihi0/maintenance", r#"{"for":"300000000000y"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("too long: at most 366 days"), "{body}");
    let (code, body) = common::socket_request(&sock, "POST", "/api/v1/devices/loihi0/maintenance", r#"{"for":"2h"}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(common::socket_request(&sock, "GET", "/api/v1/status", "").0, 200, "the handler that refused is alive");
}

/// Runs `python3` as uid/gid 65534 holding `n` idle connections to `sock` until its stdin closes; returns
/// once they are all open.
fn idle_connections_as_nobody(sock: &Path, n: usize) -> std::process::Child {
    let script = format!(
        "import socket,sys\ncs=[]\nfor _ in range({n}):\n    s=socket.socket(socket.AF_UNIX)\n    s.connect({sock:?})\n    cs.append(s)\n\
         print('open',flush=True)\nsys.stdin.read()\n",
        sock = sock.to_str().unwrap()
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 5];
    out.read_exact(&mut buf).expect("python3 opened its connections");
    assert_eq!(&buf, b"open\n");
    child
}

#[test]
#[cfg_attr(any(not(is_root), not(has_python3)), ignore = "needs root (to connect as another uid) and python3")]
fn an_unprivileged_flood_of_idle_connections_does_not_lock_root_or_the_group_out() {
    assert!(nix::unistd::getuid().is_root(), "this test connects as another uid, which needs root");
    common::require_tool("python3");
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let sock = socket(&agent);
    // A socket opened up by mistake, reachable by anyone.
    std::fs::set_permissions(agent.state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut flood = idle_connections_as_nobody(&sock, 200);
    for who in [None, Some((65534, 4242))] {
        let started = Instant::now();
        let (code, _, stderr) = ctl(&agent, &["status"], who);
        assert_eq!(code, 0, "{who:?}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(2), "{who:?}: {:?}", started.elapsed());
    }
    drop(flood.stdin.take());
    let _ = flood.wait();
}

/// A GET on the control socket from another uid and gid (python3, as agentctl has no raw verb).
fn get_as(sock: &Path, path: &str, (uid, gid): (u32, u32)) -> (u16, String) {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_UNIX)\ns.connect({sock:?})\n\
         s.sendall(b'GET {path} HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n')\n\
         d=b''\nwhile True:\n    c=s.recv(65536)\n    if not c: break\n    d+=c\nprint(d.decode('utf-8','replace'))\n",
        sock = sock.to_str().unwrap()
    );
    let out = Command::new("python3").args(["-c", &script]).uid(uid).gid(gid).output().expect("python3");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no reply: {raw}"));
    (code, raw)
}

#[test]
#[cfg_attr(any(not(is_root), not(has_python3)), ignore = "needs root (to connect as another uid) and python3")]
fn matched_log_lines_and_the_bundle_are_for_root_and_the_control_group_only() {
    assert!(nix::unistd::getuid().is_root(), "this test connects as another uid, which needs root");
    common::require_tool("python3");
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("loihi0.log"), "").unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let sock = socket(&agent);
    std::fs::set_permissions(agent.state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(logs.path().join("loihi0.log")).unwrap();
    writeln!(f, "DMA secret-looking line").unwrap();
    wait("the line matched", || {
        common::socket_request(&sock, "GET", "/api/v1/logs/recent", "").1.contains("secret-looking")
    });
    let (code, body) = get_as(&sock, "/api/v1/logs/recent", (65534, 65534));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not authorised") && !body.contains("secret-looking"), "{body}");
    let (code, body) = get_as(&sock, "/api/v1/logs/recent", (65534, 4242));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("secret-looking"), "{body}");
    let (code, body) = get_as(&sock, "/api/v1/bundle", (65534, 65534));
    assert_eq!(code, 403, "{body}");
    // The refusal is on record, naming the peer.
    let events = agent.get("/api/v1/events?kind=control_refused").body;
    assert!(events.contains("refused GET /api/v1/logs/recent from uid 65534"), "{events}");
}

fn untar(file: &Path) -> Vec<(String, String)> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = String::new();
        entry.read_to_string(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

#[test]
fn secrets_in_command_lines_reach_no_event_log_line_or_bundle() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let extra = r#"
[[device.probe]]
name = "db"
command = ["/bin/sh", "-c", "exit 0", "-p", "s3cr3t-p", "-H", "X-Auth-Token: s3cr3t-hdr", "--bearer", "s3cr3t-b"]
[actions]
enabled = true
[[actions.hook]]
on = ["maintenance"]
command = ["/bin/echo", "--token", "s3cr3t-t", "--api-key=s3cr3t-k", "Authorization: Bearer s3cr3t-a"]
"#;
    let (agent, _cfg) = Agent::with_config(fs.root(), &(config(logs.path()) + extra));
    agent.wait_ready();
    let (code, _, stderr) = ctl(&agent, &["maintenance", "loihi0", "on"], None);
    assert_eq!(code, 0, "{stderr}");
    wait("the hook ran", || agent.get("/api/v1/events?kind=action").body.contains("hook ran"));
    let events = agent.get("/api/v1/events").body;
    assert!(
        events.contains("echo --token <redacted> --api-key=<redacted> Authorization: Bearer <redacted>"),
        "{events}"
    );

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("b.tar.gz");
    let (code, _, stderr) = ctl(&agent, &["bundle", "-o", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stderr}");
    let entries = untar(&file);
    assert!(entries.iter().any(|(n, d)| n.ends_with("config.toml") && d.contains("\"--bearer\",\n")), "{entries:?}");
    let mut log = String::new();
    while let Ok(l) = agent.stderr.recv_timeout(Duration::from_millis(300)) {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(log.contains("maintenance on"), "the daemon log was read: {log}");
    let api = ["/api/v1/events", "/api/v1/status", "/api/v1/devices/loihi0"].map(|p| agent.get(p).body);
    let places = entries.iter().map(|(n, d)| (n.as_str(), d.as_str())).chain([("daemon log", log.as_str())]);
    for (place, text) in places.chain(api.iter().map(|b| ("api", b.as_str()))) {
        assert!(!text.contains("s3cr3t"), "{place} leaks a secret:\n{text}");
    }
}

#[test]
fn a_log_replaced_by_a_symlink_or_fifo_is_not_read_and_says_so_once() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("loihi0.log");
    std::fs::write(&log, "").unwrap();
    let secret = logs.path().join("shadow");
    std::fs::write(&secret, "root:DMA-SECRET-HASH:19000::::::\n").unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let sock = socket(&agent);
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    wait("the warning", || agent.get("/api/v1/events?kind=log_source").body.contains("is a symbolic link"));
    std::thread::sleep(Duration::from_millis(1500));
    let events = agent.get("/api/v1/events?kind=log_source").body;
    assert_eq!(events.matches("\"log_source\"").count(), 1, "said once: {events}");
    assert!(events.contains("\"warning\""), "{events}");
    assert!(!common::socket_request(&sock, "GET", "/api/v1/logs/recent", "").1.contains("SECRET"));
    assert_eq!(agent.metric("accel_log_matches_total", &[("device", "loihi0"), ("rule", "dma")]), Some(0.0));

    // A FIFO in its place: refused as well, and nothing hangs.
    std::fs::remove_file(&log).unwrap();
    mkfifo(&log);
    wait("the FIFO warning", || agent.get("/api/v1/events?kind=log_source").body.contains("not a regular file"));
    // A regular file back: read again, and said so.
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, "DMA after\n").unwrap();
    wait("read again", || {
        agent.metric("accel_log_matches_total", &[("device", "loihi0"), ("rule", "dma")]) == Some(1.0)
    });
    assert!(agent.get("/api/v1/events?kind=log_source").body.contains("is a regular file again"));
}

#[test]
fn a_flood_of_matching_lines_is_counted_in_full_and_journaled_as_bursts() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("loihi0.log");
    std::fs::write(&log, "").unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..5000 {
        writeln!(f, "DMA error {i}").unwrap();
    }
    let d = [("device", "loihi0"), ("rule", "dma")];
    wait("every line counted", || agent.metric("accel_log_matches_total", &d) == Some(5000.0));
    let events = agent.get("/api/v1/events?kind=log_match").body;
    let n = events.matches("\"log_match\"").count();
    assert!((1..=2).contains(&n), "one event for the burst (two if it spanned a poll window): {events}");
}

#[test]
fn a_journal_that_cannot_store_is_shown_degraded_everywhere_and_its_losses_counted() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    assert!(!agent.get("/health").body.contains("journal_degraded"), "a healthy journal is not mentioned");
    let stored_before = agent.metric("accel_events_total", &[("device", "loihi0"), ("severity", "info")]);
    // The disk refuses writes (full, or the file made immutable), as SQLite reports it.
    let db = rusqlite::Connection::open(agent.state_dir.path().join("events.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();
    let (code, _, stderr) = ctl(&agent, &["maintenance", "loihi0", "on"], None);
    assert_eq!(code, 0, "{stderr}");
    wait("the loss counted", || agent.metric("accel_events_dropped_total", &[]).is_some_and(|n| n >= 1.0));
    let health = agent.get("/health");
    assert_eq!(health.status, 200, "degraded, not unhealthy: {}", health.body);
    let v: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(v["status"], "degraded", "{v}");
    assert!(v["journal_degraded"].as_str().unwrap().contains("database or disk is full"), "{v}");
    let (_, out, _) = ctl(&agent, &["status"], None);
    assert!(out.contains("event journal degraded: cannot store events in"), "{out}");
    let events = agent.get("/api/v1/events");
    assert_eq!(events.status, 200);
    let note = events.headers.get("x-accel-journal-incomplete").cloned().unwrap_or_default();
    assert!(note.contains("not stored since start"), "{:?}", events.headers);
    assert!(!events.body.contains("maintenance on"), "the lost event is not in the journal");
    assert_eq!(
        agent.metric("accel_events_total", &[("device", "loihi0"), ("severity", "info")]),
        stored_before,
        "accel_events_total counts what was stored"
    );
    // Writes work again: the journal is no longer failing, but it stays incomplete since start.
    db.execute_batch("DROP TRIGGER refuse").unwrap();
    ctl(&agent, &["maintenance", "loihi0", "off"], None);
    wait("stored again", || agent.get("/api/v1/events?kind=operator").body.contains("maintenance off"));
    let health = agent.get("/health").body;
    assert!(!health.contains("database or disk is full") && health.contains("incomplete"), "{health}");
}

#[test]
fn a_scrape_answers_within_a_second_with_10000_idle_connections_open() {
    const IDLE: usize = 10_000;
    let limit = raise_nofile(IDLE as u64 + 512);
    assert!(limit >= IDLE as u64 + 512, "RLIMIT_NOFILE's hard limit ({limit}) is too low for {IDLE} connections");
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path()));
    agent.wait_ready();
    let started = Instant::now();
    // Opened from several threads: a connect beyond the kernel's backlog waits for a SYN retry.
    let addr = agent.addr;
    let openers: Vec<_> = (0..10)
        .map(|t| {
            std::thread::spawn(move || {
                (0..IDLE / 10)
                    .map(|i| {
                        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                            .unwrap_or_else(|e| panic!("connection {t}/{i}: {e}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let idle: Vec<std::net::TcpStream> = openers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(idle.len(), IDLE);
    eprintln!("{IDLE} idle connections opened in {:?}", started.elapsed());
    for _ in 0..3 {
        let r = agent.get("/metrics");
        assert_eq!(r.status, 200);
        assert!(r.elapsed < Duration::from_secs(1), "a scrape took {:?} behind {IDLE} idle connections", r.elapsed);
    }
    drop(idle);
}
