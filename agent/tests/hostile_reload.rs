//! A reload while a throttle is held (issue 23, item 8): the hardware, the answers and the status must
//! agree with the config in force. Turning actions off or to dry run gives every throttled file its
//! original value back before the new mode is reported; a throttle step moved to another file restores
//! the old file and applies the level in force to the new one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");
const COOLING0: &str = "devices/virtual/thermal/cooling_device0/cur_state";
const COOLING1: &str = "devices/virtual/thermal/cooling_device1/cur_state";

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    // Cool: only the operator's hold throttles.
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs.cooling_device(0, "Processor", 0, 10);
    fs.cooling_device(1, "Fan", 0, 10);
    fs
}

/// One device with a one-level ladder on `cooling` (a cooling device's name).
fn config(actions: &str, cooling: &str) -> String {
    format!(
        r#"
poll_interval = "100ms"
[actions]
{actions}
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
[device.throttle]
threshold = 200.0
[[device.throttle.level]]
cooling_device = {{ device = "{cooling}", state = 2 }}
"#
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl(agent: &Agent, args: &[&str]) -> Run {
    let out = Command::new(CTL)
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(args)
        .output()
        .expect("run agentctl");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ctl_json(agent: &Agent, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = ctl(agent, &all);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {} {}", r.stdout, r.stderr));
    (r.code, v)
}

fn read(fs: &FakeSysfs, rel: &str) -> String {
    std::fs::read_to_string(fs.path(rel)).expect("read a sysfs file").trim().to_owned()
}

/// Starts the agent with actions on and holds loihi0 at level 1 (cooling_device0 = 2).
fn throttled(fs: &FakeSysfs) -> (Agent, tempfile::TempDir, PathBuf) {
    let (agent, dir) = Agent::with_config(fs.root(), &config("enabled = true", "cooling_device0"));
    agent.wait_ready();
    let (code, v) = ctl_json(&agent, &["throttle", "loihi0", "1", "--for", "30m"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(read(fs, COOLING0), "2", "the hold is written before it is answered");
    let path = dir.path().join("agent.toml");
    (agent, dir, path)
}

/// Writes the new config and reloads through the control socket; the answer comes once it is in force.
fn reload(agent: &Agent, path: &Path, toml: &str) -> String {
    std::fs::write(path, toml).expect("write the config");
    let (code, v) = ctl_json(agent, &["reload"]);
    assert_eq!(code, 0, "{v}");
    v["message"].as_str().expect("a message").to_owned()
}

fn status(agent: &Agent) -> Value {
    ctl_json(agent, &["status"]).1
}

fn action_events(agent: &Agent) -> Vec<String> {
    let (_, ev) = ctl_json(agent, &["events", "--kind", "action"]);
    ev.as_array().expect("a list").iter().map(|e| e["message"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn turning_actions_off_while_throttled_restores_the_original_first() {
    let fs = host();
    let (agent, _dir, path) = throttled(&fs);
    let message = reload(&agent, &path, &config("enabled = false", "cooling_device0"));

    assert_eq!(read(&fs, COOLING0), "0", "the original is back once the reload is answered");
    assert!(message.contains("actions disabled"), "the reload says the new mode: {message}");
    let s = status(&agent);
    assert_eq!(s["agent"]["actions"], "disabled", "{s}");
    assert_eq!(s["devices"][0]["throttle_level"], 0, "{s}");
    let api: Value = serde_json::from_str(&agent.get("/api/v1/status").body).expect("status JSON");
    assert_eq!(api["agent"]["actions"], "disabled");
    let text = ctl(&agent, &["status"]).stdout;
    assert!(text.contains("actions disabled"), "{text}");
    let landing = agent.get("/").body;
    assert!(landing.contains("actions disabled") && !landing.contains("actions enabled"), "{landing}");
    let events = action_events(&agent);
    assert!(
        events.iter().any(|m| m.contains("throttle level 1 -> 0") && m.contains("cooling_device0/cur_state = 0")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|m| m.starts_with("actions disabled (was enabled); original values restored for loihi0")),
        "{events:?}"
    );
    let originals = std::fs::read_to_string(agent.state_dir.path().join("originals.json")).expect("originals file");
    let originals: Value = serde_json::from_str(&originals).expect("originals JSON");
    assert_eq!(originals["count"], 0, "nothing left to restore: {originals}");
    // The operator's hold ended with it: nothing shows a level that nothing applies.
    assert_eq!(s["devices"][0]["manual_throttle"], Value::Null, "{s}");
    assert!(!text.contains("(manual)"), "{text}");
    let (_, ops) = ctl_json(&agent, &["events", "--kind", "operator"]);
    assert!(ops.to_string().contains("manual throttle ended: actions are disabled"), "{ops}");
}

#[test]
fn switching_to_dry_run_while_throttled_restores_the_original_and_writes_nothing_after() {
    let fs = host();
    let (agent, _dir, path) = throttled(&fs);
    let message = reload(&agent, &path, &config("enabled = true\ndry_run = true", "cooling_device0"));

    assert_eq!(read(&fs, COOLING0), "0", "the original is back once the reload is answered");
    assert!(message.contains("actions dry-run"), "the reload says the new mode: {message}");
    let s = status(&agent);
    assert_eq!(s["agent"]["actions"], "dry-run", "{s}");
    let landing = agent.get("/").body;
    assert!(landing.contains("actions dry-run"), "{landing}");

    // From now on nothing is written, and every answer says so.
    let (code, v) = ctl_json(&agent, &["unthrottle", "loihi0"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("dry run"), "{v}");
    assert_eq!(read(&fs, COOLING0), "0");
    let (code, v) = ctl_json(&agent, &["throttle", "loihi0", "1", "--for", "30m"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("dry run"), "{v}");
    assert_eq!(read(&fs, COOLING0), "0", "a dry run writes nothing");
    assert_eq!(status(&agent)["devices"][0]["throttle_level"], 1, "the level that would be applied");
    let events = action_events(&agent);
    assert!(events.iter().any(|m| m.starts_with("dry run: throttle level 0 -> 1: would write")), "{events:?}");
    assert!(
        events.iter().any(|m| m.starts_with("actions dry-run (was enabled); original values restored for loihi0")),
        "{events:?}"
    );
}

#[test]
fn a_retargeted_throttle_restores_the_old_file_and_throttles_the_new_one() {
    let fs = host();
    let (agent, _dir, path) = throttled(&fs);
    reload(&agent, &path, &config("enabled = true", "cooling_device1"));

    assert_eq!(read(&fs, COOLING0), "0", "the old target has its original back");
    assert_eq!(read(&fs, COOLING1), "2", "the level held applies to the new target");
    let s = status(&agent);
    assert_eq!(s["devices"][0]["throttle_level"], 1, "{s}");
    assert_eq!(s["devices"][0]["manual_throttle"]["level"], 1, "{s}");
    let text = ctl(&agent, &["status"]).stdout;
    assert!(text.contains("1/1 (manual)"), "{text}");

    // Released: the new target's original comes back.
    let (code, v) = ctl_json(&agent, &["unthrottle", "loihi0"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(read(&fs, COOLING1), "0");
    assert_eq!(read(&fs, COOLING0), "0");
}
