//! A device log followed across rotation: error bursts set LogErrors, a recovery line clears it, event
//! rules are counted and journaled, and every rule's counter exists from the first scrape.

mod common;

use std::io::Write;
use std::path::Path;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn error_bursts_set_log_errors_and_a_recovery_line_clears_it() {
    let fs = FakeSysfs::new();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("device-photon0.log");
    append(&log, &["old line before the agent started: error (must not count)"]);
    let cfg = format!(
        r#"
poll_interval = "100ms"
[[device]]
id = "photon0"
kind = "photonic"
[[device.log]]
path = "{dir}/device-{{id}}.log"
[[device.log.rule]]
name = "error-burst"
pattern = "(?i)\\berror\\b"
action = "LogErrors"
count = 3
window = "1m"
clear_pattern = "link recovered"
[[device.log.rule]]
name = "reset"
pattern = "device reset"
severity = "info"
"#,
        dir = logs.path().display()
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let d = ("device", "photon0");
    agent.wait_for("rule counters", || {
        agent.metric("accel_log_matches_total", &[d, ("rule", "error-burst")]) == Some(0.0)
    });
    assert_eq!(agent.metric("accel_log_matches_total", &[d, ("rule", "reset")]), Some(0.0));
    assert_eq!(agent.metric("accel_device_condition", &[d, ("condition", "LogErrors")]), Some(0.0));

    // Two errors: under the threshold of three.
    append(&log, &["tile 3: ERROR laser drift", "ok", "tile 4: error again"]);
    agent.wait_for("two matches", || {
        agent.metric("accel_log_matches_total", &[d, ("rule", "error-burst")]) == Some(2.0)
    });
    assert_eq!(agent.metric("accel_device_condition", &[d, ("condition", "LogErrors")]), Some(0.0));

    // Rotation by rename: the old file is drained, the new one read from its start; nothing lost or doubled.
    std::fs::rename(&log, logs.path().join("device-photon0.log.1")).unwrap();
    append(&log, &["after rotation: error three", "device reset requested"]);
    agent.wait_for("LogErrors", || {
        agent.metric("accel_device_condition", &[d, ("condition", "LogErrors")]) == Some(1.0)
    });
    assert_eq!(agent.metric("accel_log_matches_total", &[d, ("rule", "error-burst")]), Some(3.0));
    agent.wait_for("event rule", || agent.metric("accel_log_matches_total", &[d, ("rule", "reset")]) == Some(1.0));
    assert_eq!(agent.metric("accel_device_health", &[d, ("state", "degraded")]), Some(1.0));
    let source = logs.path().join("device-photon0.log").display().to_string();
    assert_eq!(agent.metric("accel_log_lines_total", &[d, ("source", &source)]), Some(5.0));

    append(&log, &["link recovered"]);
    agent.wait_for("cleared", || agent.metric("accel_device_condition", &[d, ("condition", "LogErrors")]) == Some(0.0));
    let events = agent.get("/api/v1/events?device=photon0").body;
    assert!(events.contains("LogErrors set (error-burst)"), "{events}");
    assert!(events.contains("LogErrors cleared"), "{events}");
    assert!(events.contains("log rule reset matched"), "{events}");
}

/// A GET on the control socket (`/api/v1/logs/recent` is served only there): the reply's body.
fn socket_get(agent: &Agent, path: &str) -> String {
    common::socket_request(&agent.state_dir.path().join("agent.sock"), "GET", path, "").1
}

/// Regression: a reload with the same config emptied the recent log matches (and so the bundle's) while
/// LogErrors was still set.
#[test]
fn a_reload_keeps_the_recent_log_matches() {
    let fs = FakeSysfs::new();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("photon0.log");
    append(&log, &["start"]);
    let cfg = format!(
        r#"
poll_interval = "100ms"
[[device]]
id = "photon0"
kind = "photonic"
[[device.log]]
path = "{log}"
[[device.log.rule]]
name = "error-burst"
pattern = "(?i)\\berror\\b"
action = "LogErrors"
count = 2
window = "1m"
"#,
        log = log.display()
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let d = ("device", "photon0");
    agent.wait_for("rule counters", || {
        agent.metric("accel_log_matches_total", &[d, ("rule", "error-burst")]) == Some(0.0)
    });
    append(&log, &["tile 1: ERROR laser drift", "tile 2: error again"]);
    agent.wait_for("LogErrors", || {
        agent.metric("accel_device_condition", &[d, ("condition", "LogErrors")]) == Some(1.0)
    });
    let before = socket_get(&agent, "/api/v1/logs/recent");
    assert!(before.contains("tile 1: ERROR laser drift") && before.contains("tile 2: error again"), "{before}");

    agent.signal(libc::SIGHUP);
    agent.wait_for("the reload", || agent.get("/api/v1/events?kind=operator").body.contains("config reloaded"));
    let after = socket_get(&agent, "/api/v1/logs/recent");
    assert!(after.contains("tile 1: ERROR laser drift") && after.contains("tile 2: error again"), "{after}");
    assert_eq!(agent.metric("accel_device_condition", &[d, ("condition", "LogErrors")]), Some(1.0));
}
