//! The event journal against hostile neighbours, on the real agent: a flood of huge event queries, a flood
//! of refused control requests, symlinks planted in the state directory, and a journal that could not be
//! opened at start.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs.cooling_device(0, "Processor", 0, 10);
    fs
}

/// One device with a one-level throttle ladder (so that `agentctl throttle` makes an `action` event),
/// control group 4242.
const CONFIG: &str = r#"
poll_interval = "100ms"
[actions]
enabled = true
[discovery]
enabled = false
[control]
group = "4242"
[[device]]
id = "loihi0"
kind = "loihi"
[device.throttle]
threshold = 80.0
hysteresis = 5.0
hold = "1s"
[[device.throttle.level]]
cooling_device = { device = "cooling_device0", state = 2 }
"#;

/// Starts the agent on `fs` with [`CONFIG`] and the given state directory; returns the agent and the
/// directory holding its config.
fn start(fs: &FakeSysfs, state: tempfile::TempDir) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let agent =
        Agent::start_in(state, &["--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()]);
    (agent, dir)
}

fn socket(agent: &Agent) -> PathBuf {
    agent.state_dir.path().join("agent.sock")
}

/// Runs agentctl as root; returns the exit code, stdout and stderr.
fn ctl(agent: &Agent, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(CTL).arg("--socket").arg(socket(agent)).args(args).output().expect("run agentctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn health(agent: &Agent) -> Value {
    serde_json::from_str(&agent.get("/health").body).expect("/health is JSON")
}

fn events(agent: &Agent, query: &str) -> Vec<Value> {
    let r = agent.get(&format!("/api/v1/events?{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<Vec<Value>>(&r.body).expect("events are a JSON array")
}

/// The agent's resident memory in KiB, from /proc/PID/status.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes `n` events into the journal of a running agent, as a long history would hold them.
fn fill_journal(state_dir: &Path, n: usize) {
    let mut db = rusqlite::Connection::open(state_dir.join("events.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO events (time_ms, device, severity, kind, message) VALUES (?1, 'loihi0', 'warning', 'probe_failing', ?2)")
            .unwrap();
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let filler = "x".repeat(180);
        for i in 0..n {
            insert
                .execute(rusqlite::params![now_ms - 3_600_000 + i as i64, format!("probe failing {i}: {filler}")])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Item 3 of issue 23: `limit` has a documented maximum, and 20 clients asking for huge answers at once
/// neither make the agent's memory grow without bound nor hold up `/metrics` or `agentctl`.
#[test]
fn huge_event_queries_are_bounded_and_hold_up_neither_metrics_nor_agentctl() {
    let fs = host();
    let (agent, _cfg) = start(&fs, tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap());
    agent.wait_ready();
    fill_journal(agent.state_dir.path(), 100_000);
    let pid = agent.child.id();
    let baseline = rss_kib(pid).expect("VmRSS of the agent");

    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (stop, max_rss) = (Arc::clone(&stop), Arc::clone(&max_rss));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    max_rss.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let addr = agent.addr;
    let flood: Vec<_> = (0..20)
        .map(|i| {
            let stop = Arc::clone(&stop);
            // Half ask for the issue's absurd limit, half for the largest one allowed.
            let limit = if i % 2 == 0 { 100_000_000 } else { 10_000 };
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r =
                        common::http_get(addr, &format!("/api/v1/events?limit={limit}"), &[], Duration::from_secs(60));
                    let n = r.body.matches("\"id\": ").count();
                    answers.push((limit, r.status, n, r.body.chars().take(200).collect::<String>()));
                }
                answers
            })
        })
        .collect();
    // While the flood runs: scrapes and agentctl answer promptly.
    let mut slowest_scrape = Duration::ZERO;
    let mut slowest_ctl = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let r = common::http_get(addr, "/metrics", &[], Duration::from_secs(10));
        assert_eq!(r.status, 200);
        slowest_scrape = slowest_scrape.max(r.elapsed);
        let started = Instant::now();
        let (code, out, err) = ctl(&agent, &["events", "--limit", "5"]);
        assert_eq!(code, 0, "{out}{err}");
        slowest_ctl = slowest_ctl.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<_> = flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
    sampler.join().unwrap();
    let peak = max_rss.load(Ordering::Relaxed);
    eprintln!(
        "{} answers; RSS {baseline} KiB before, {peak} KiB at most; slowest scrape {slowest_scrape:?}, \
         slowest agentctl events {slowest_ctl:?}",
        answers.len()
    );

    assert!(slowest_scrape < Duration::from_secs(1), "/metrics took {slowest_scrape:?} during the flood");
    assert!(slowest_ctl < Duration::from_secs(2), "agentctl events took {slowest_ctl:?} during the flood");
    assert!(peak < 100 * 1024, "the agent grew to {peak} KiB (from {baseline} KiB)");
    assert!(answers.iter().any(|a| a.0 == 10_000), "the flood got answers");
    for (limit, status, n, head) in &answers {
        match limit {
            100_000_000 => {
                assert_eq!(*status, 400, "{head}");
                assert!(head.contains("limit=100000000") && head.contains("at most 10000"), "{head}");
            }
            _ => match status {
                200 => assert_eq!(*n, 10_000, "the largest limit is answered in full: {head}"),
                // Shedding load is allowed, saying so.
                503 => assert!(head.contains("busy"), "{head}"),
                other => panic!("unexpected {other}: {head}"),
            },
        }
    }
    assert!(answers.iter().any(|a| a.0 == 10_000 && a.1 == 200), "the largest limit is served");
    let (code, _, err) = ctl(&agent, &["events", "--limit", "100000000"]);
    assert_eq!(code, 64, "agentctl refuses a limit above the maximum as a usage error: {err}");
    assert!(err.contains("10000"), "{err}");
}

/// The python3 flood: as uid/gid 65534, for `secs` seconds, POSTs a change and GETs the matched log lines
/// on one keep-alive connection after another; prints how many 403s each got.
fn refused_flood(sock: &Path, secs: f64) -> (u64, u64) {
    let script = format!(
        r#"
import http.client, socket, time
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect({sock:?})
change = logs = 0
end = time.time() + {secs}
while time.time() < end:
    c = C("agent")
    for _ in range(200):
        c.request("POST", "/api/v1/devices/loihi0/maintenance", body=b"{{}}", headers={{"Content-Type": "application/json"}})
        r = c.getresponse(); r.read()
        if r.status == 403: change += 1
        c.request("GET", "/api/v1/logs/recent")
        r = c.getresponse(); r.read()
        if r.status == 403: logs += 1
    c.close()
print(change, logs)
"#,
        sock = sock.to_str().unwrap()
    );
    let out = Command::new("python3").args(["-c", &script]).uid(65534).gid(65534).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = text.split_whitespace().map(|n| n.parse::<u64>().expect("counts"));
    match (counts.next(), counts.next()) {
        (Some(change), Some(logs)) => (change, logs),
        _ => panic!("the flood failed: {text} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// How many refusals one `control_refused` event stands for: "refused N more ..." summaries say, every
/// other event is one.
fn refusals_in(message: &str) -> u64 {
    let mut words = message.split_whitespace();
    match (words.next(), words.next().and_then(|n| n.parse::<u64>().ok()), words.next()) {
        (Some("refused"), Some(n), Some("more")) => n,
        _ => 1,
    }
}

/// Item 6 of issue 23: a flood of refused control requests leaves a few events whose counts add up to
/// every refusal, a bounded amount of log, and the operator and action events in place.
#[test]
#[cfg_attr(any(not(is_root), not(has_python3)), ignore = "needs root (to connect as another uid) and python3")]
fn a_flood_of_refused_requests_is_a_few_counted_events_and_the_audit_trail_stays() {
    assert!(nix::unistd::getuid().is_root(), "this test connects as another uid, which needs root");
    common::require_tool("python3");
    let fs = host();
    let (agent, _cfg) = start(&fs, tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap());
    agent.wait_ready();
    let (code, out, err) = ctl(&agent, &["throttle", "loihi0", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = ctl(&agent, &["maintenance", "loihi0", "on"]);
    assert_eq!(code, 0, "{out}{err}");
    let action = events(&agent, "kind=action");
    assert!(!action.is_empty(), "the throttle is an action event");
    assert!(events(&agent, "kind=operator").iter().any(|e| e["message"].as_str().unwrap().contains("maintenance on")));
    // A socket opened up by mistake, reachable by anyone.
    std::fs::set_permissions(agent.state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(socket(&agent), std::fs::Permissions::from_mode(0o666)).unwrap();
    while agent.stderr.try_recv().is_ok() {}

    let (change, logs) = refused_flood(&socket(&agent), 3.0);
    let sent = change + logs;
    eprintln!("refused {change} changes and {logs} log reads");
    assert!(change > 500 && logs > 500, "a flood: {change} {logs}");

    // Every refusal is counted, at once, in the metric.
    let refused = |reason: &str| agent.metric("accel_control_refused_total", &[("reason", reason)]).unwrap_or(0.0);
    agent.wait_for("the refusals counted", || refused("change") + refused("logs") == sent as f64);
    assert_eq!((refused("change"), refused("logs")), (change as f64, logs as f64));
    // The journal's counts add up once the last interval's summary is written.
    let deadline = Instant::now() + Duration::from_secs(30);
    let journaled = loop {
        let refusals = events(&agent, "kind=control_refused&limit=10000");
        let total: u64 = refusals.iter().map(|e| refusals_in(e["message"].as_str().unwrap())).sum();
        if total == sent || Instant::now() > deadline {
            break refusals;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let messages: Vec<&str> = journaled.iter().map(|e| e["message"].as_str().unwrap()).collect();
    let total: u64 = messages.iter().map(|m| refusals_in(m)).sum();
    assert_eq!(total, sent, "the events' counts add up to the refusals: {messages:#?}");
    assert!(
        messages.len() <= 12,
        "{} control_refused events for one uid: {:#?}",
        messages.len(),
        &messages[..12.min(messages.len())]
    );
    assert!(messages.iter().all(|m| m.contains("uid 65534")), "{messages:#?}");
    // The log grew by a few lines, not one per refusal.
    let log: Vec<String> = std::iter::from_fn(|| agent.stderr.try_recv().ok()).collect();
    let bytes: usize = log.iter().map(|l| l.len() + 1).sum();
    let refusal_lines = log.iter().filter(|l| l.contains("refused")).count();
    eprintln!("{} control_refused events, {refusal_lines} log lines about refusals, {bytes} log bytes", messages.len());
    assert!(refusal_lines <= 12, "{refusal_lines} log lines about refusals");
    assert!(bytes < 16 * 1024, "the log grew by {bytes} bytes during the flood");
    // The audit trail is intact.
    assert_eq!(events(&agent, "kind=action"), action);
    assert!(events(&agent, "kind=operator").iter().any(|e| e["message"].as_str().unwrap().contains("maintenance on")));
}

/// What a planted file holds, to show it was neither written nor replaced.
fn fingerprint(path: &Path) -> (Vec<u8>, i64, u64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (std::fs::read(path).unwrap(), m.mtime_nsec() + m.mtime() * 1_000_000_000, m.ino())
}

/// Item 7 of issue 23: a symlink at `events.db`, or at its `-wal` or `-shm`, is not followed: the journal
/// is unavailable, saying why, and the file it points at is neither created nor modified.
#[test]
fn a_symlink_at_the_journal_or_its_wal_or_shm_is_refused_and_its_target_left_alone() {
    let fs = host();
    let elsewhere = tempfile::tempdir().unwrap();

    // A dangling symlink: following it would create a file of the attacker's choosing.
    let state = tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap();
    let target = elsewhere.path().join("created.db");
    std::os::unix::fs::symlink(&target, state.path().join("events.db")).unwrap();
    let (agent, _cfg) = start(&fs, state);
    agent.wait_ready();
    let h = health(&agent);
    assert_eq!(h["status"], "degraded", "{h}");
    let why = h["journal_degraded"].as_str().unwrap_or_default();
    assert!(why.contains("events.db") && why.contains("symbolic link"), "{h}");
    let (code, out, err) = ctl(&agent, &["maintenance", "loihi0", "on"]);
    assert_eq!(code, 0, "monitoring and changes go on without a journal: {out}{err}");
    drop(agent);
    let created: Vec<_> = std::fs::read_dir(elsewhere.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(created.is_empty(), "nothing was created through the symlink: {created:?}");

    // Symlinks to existing files, at the database and at each of its companions.
    for planted in ["events.db", "events.db-wal", "events.db-shm"] {
        let state = tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap();
        let victim = elsewhere.path().join(format!("victim-{planted}"));
        std::fs::write(&victim, b"precious, not a journal\n").unwrap();
        let before = fingerprint(&victim);
        std::os::unix::fs::symlink(&victim, state.path().join(planted)).unwrap();
        let (agent, _cfg) = start(&fs, state);
        agent.wait_ready();
        let h = health(&agent);
        let why = h["journal_degraded"].as_str().unwrap_or_default();
        assert!(why.contains(planted) && why.contains("symbolic link"), "{planted}: {h}");
        let (code, out, err) = ctl(&agent, &["maintenance", "loihi0", "on"]);
        assert_eq!(code, 0, "{out}{err}");
        let meta = std::fs::symlink_metadata(agent.state_dir.path().join(planted)).unwrap();
        assert!(meta.file_type().is_symlink(), "{planted}: the symlink itself is left for the operator");
        // Stopped first: nothing written at shutdown (a checkpoint) either.
        drop(agent);
        assert_eq!(fingerprint(&victim), before, "{planted}: the file it points at is unchanged");
        let beside: Vec<_> = std::fs::read_dir(elsewhere.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("victim-{planted}-")))
            .collect();
        assert!(beside.is_empty(), "{planted}: no -wal or -shm created beside the target: {beside:?}");
    }
}

/// A directory where the journal should be: opening fails whoever runs the agent, and removing it is
/// what an operator would do.
fn blocked_state_dir() -> tempfile::TempDir {
    let state = tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap();
    std::fs::create_dir(state.path().join("events.db")).unwrap();
    std::fs::write(state.path().join("events.db/in-the-way"), "x").unwrap();
    state
}

fn journal_degraded(agent: &Agent) -> Option<String> {
    health(agent)["journal_degraded"].as_str().map(str::to_owned)
}

/// Once the journal opens: /health no longer degraded for it, and a change is stored and served.
fn assert_storing_again(agent: &Agent) {
    let h = health(agent);
    assert_eq!(h["status"], "healthy", "{h}");
    let (code, out, err) = ctl(agent, &["maintenance", "loihi0", "on"]);
    assert_eq!(code, 0, "{out}{err}");
    let stored = events(agent, "kind=operator");
    assert!(stored.iter().any(|e| e["message"].as_str().unwrap().contains("maintenance on")), "{stored:?}");
    let (_, out, _) = ctl(agent, &["status"]);
    assert!(!out.contains("journal"), "agentctl status no longer mentions the journal: {out}");
}

/// Item 9 of issue 23: a journal that could not be opened at start is tried again, with backoff, and
/// opens once the obstacle is gone.
#[test]
fn a_journal_that_failed_to_open_is_retried_with_backoff_and_then_stores_events() {
    let fs = host();
    let (agent, _cfg) = start(&fs, blocked_state_dir());
    agent.wait_ready();
    let why = journal_degraded(&agent).expect("the journal is unavailable");
    assert!(why.contains("unavailable") && why.contains("events.db"), "{why}");
    std::fs::remove_dir_all(agent.state_dir.path().join("events.db")).unwrap();
    let removed = Instant::now();
    agent.wait_for("the journal opened", || journal_degraded(&agent).is_none());
    eprintln!("opened {:?} after the obstacle went", removed.elapsed());
    // Attempts come 5 s after the failure at start, then 10 s after that: on a slow host the obstacle may
    // go just after the first retry failed, so the bound is the second.
    assert!(removed.elapsed() < Duration::from_secs(16), "a retry comes within seconds: {:?}", removed.elapsed());
    assert_storing_again(&agent);
}

/// Item 9 of issue 23: a reload tries the journal again at once, without waiting out the backoff.
#[test]
fn a_reload_tries_a_failed_journal_again_at_once() {
    let fs = host();
    let (agent, _cfg) = start(&fs, blocked_state_dir());
    agent.wait_ready();
    assert!(journal_degraded(&agent).is_some());
    // Wait for the first retry to fail too: the next is then 10 s away.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = agent.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
            panic!("no failed retry of the journal was logged");
        });
        if line.contains("event journal still unavailable") {
            break;
        }
    }
    std::fs::remove_dir_all(agent.state_dir.path().join("events.db")).unwrap();
    let started = Instant::now();
    let (code, out, err) = ctl(&agent, &["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while journal_degraded(&agent).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(journal_degraded(&agent), None, "the reload opened the journal");
    eprintln!("opened {:?} after the reload", started.elapsed());
    assert_storing_again(&agent);
}
