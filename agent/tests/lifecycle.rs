//! Starting, stopping and configuring the real binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, BIN};

fn small_tree() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("board"), Some("devices/platform/board.0")).attr("temp1_input", "45000");
    fs
}

fn stops_within_two_seconds_on(sig: i32) {
    let fs = small_tree();
    let mut agent = Agent::start(&["--sysfs-root", fs.root().to_str().unwrap()]);
    agent.wait_ready();
    let sent = Instant::now();
    agent.signal(sig);
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(2), "still running 2 s after signal {sig}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "clean exit after signal {sig}: {status:?}");
    eprintln!("stopped {:?} after signal {sig}", sent.elapsed());
}

#[test]
fn sigterm_stops_the_agent_within_two_seconds() {
    stops_within_two_seconds_on(libc::SIGTERM);
}

#[test]
fn sigint_stops_the_agent_within_two_seconds() {
    stops_within_two_seconds_on(libc::SIGINT);
}

#[test]
fn sigterm_while_a_read_hangs_still_stops_in_time() {
    let fs = small_tree();
    fs.fifo("devices/platform/board.0/hwmon/hwmon0/temp2_input");
    let (mut agent, _cfg) = Agent::with_config(fs.root(), "[collectors.hwmon]\ntimeout = \"5s\"\n");
    // The first hwmon round is blocked on the FIFO for up to 5 s; the others finish.
    agent.wait_for("other collectors", || {
        agent.get("/metrics").body.contains("accel_collector_success{collector=\"pci_aer\"} 1")
    });
    let sent = Instant::now();
    agent.signal(libc::SIGTERM);
    while agent.child.try_wait().unwrap().is_none() {
        assert!(sent.elapsed() < Duration::from_secs(2), "a blocked reader held up shutdown");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn check_config_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\n[collectors.hwmon]\nintervall = \"5s\"\n").unwrap();
    let out = Command::new(BIN).args(["check-config", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let file = bad.display().to_string();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with(&format!("{file}:1:10: listen: ")), "{stderr}");
    assert!(
        lines[1].starts_with(&format!(
            "{file}:3:1: collectors.hwmon.intervall: unknown key `intervall` (did you mean `interval`?)"
        )),
        "{stderr}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "poll_interval = \"10s\"\n[collectors.pci_aer]\nenabled = false\n").unwrap();
    let out = Command::new(BIN).args(["check-config", good.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bad_config_at_start_exits_nonzero_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("agent.toml");
    std::fs::write(&bad, "poll_interval = \"fast\"\n").unwrap();
    let out = Command::new(BIN).args(["--config", bad.to_str().unwrap(), "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The daemon's log never quotes the file (it may hold a token); check-config does.
    assert!(stderr.contains(&format!("{}:1:17: poll_interval: invalid duration \"…\"", bad.display())), "{stderr}");
    assert!(stderr.contains(&format!("`accel-agent check-config {}` shows them", bad.display())), "{stderr}");
    assert!(!stderr.contains("fast"), "{stderr}");
}

#[test]
fn disabled_collectors_are_not_run_and_ready_waits_for_the_rest() {
    let fs = small_tree();
    let (agent, _cfg) = Agent::with_config(fs.root(), "[collectors.pci_aer]\nenabled = false\n");
    agent.wait_ready();
    let body = agent.get("/metrics").body;
    assert!(body.contains("accel_collector_success{collector=\"hwmon\"} 1"));
    assert!(!body.contains("collector=\"pci_aer\""), "a disabled collector reports nothing");
    assert_eq!(agent.get("/-/healthy").status, 200);
}

#[test]
fn man_page_and_completions_come_from_the_cli_definitions() {
    let man = Command::new(BIN).arg("man").output().unwrap();
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH accel-agent 8"), "{man}");
    for word in ["check\\-config", "scan", "\\-\\-sysfs\\-root", "\\-\\-dry\\-run"] {
        assert!(man.contains(word), "man page lacks {word}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("check-config") && text.contains("sysfs-root"), "{shell}: {text}");
    }
}
