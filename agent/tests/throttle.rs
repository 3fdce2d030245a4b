//! Throttling through the actions layer, on a fake sysfs tree: step by step up and back down to the
//! original values, confinement, crash recovery, dry run and the default of doing nothing.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

const COOLING: &str = "devices/virtual/thermal/cooling_device0/cur_state";
const LIMIT: &str = "devices/virtual/powercap/intel-rapl/intel-rapl:0/constraint_0_power_limit_uw";
const TEMP: &str = "devices/platform/loihi.0/hwmon/hwmon0/temp1_input";

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "60000");
    fs.cooling_device(0, "Processor", 0, 10);
    fs.powercap_zone("0", "package-0", 1_000_000, 262_143_328_850);
    fs
}

fn config(actions: &str) -> String {
    format!(
        r#"
poll_interval = "100ms"
{actions}
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
[device.throttle]
threshold = 80.0
hysteresis = 5.0
hold = "1s"
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 2 }}
[[device.throttle.level]]
powercap_limit = {{ zone = "intel-rapl:0", constraint = 0, watts = 100.0 }}
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 5 }}
"#
    )
}

fn read(fs: &FakeSysfs, rel: &str) -> String {
    std::fs::read_to_string(fs.path(rel)).unwrap().trim().to_owned()
}

#[test]
fn a_temperature_ramp_raises_the_level_step_by_step_and_cooling_restores_the_originals() {
    let fs = host();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config("[actions]\nenabled = true"));
    agent.wait_ready();
    let d = ("device", "loihi0");
    assert_eq!(agent.metric("accel_throttle_level", &[d]), Some(0.0));
    assert_eq!(agent.metric("accel_throttle_max_level", &[d]), Some(3.0));

    fs.write(TEMP, "85000\n");
    agent.wait_for("level 1", || agent.metric("accel_throttle_level", &[d]) == Some(1.0));
    assert_eq!(read(&fs, COOLING), "2");
    assert_eq!(read(&fs, LIMIT), "150000000", "level 1 does not touch the power limit");
    agent.wait_for("level 2", || agent.metric("accel_throttle_level", &[d]) == Some(2.0));
    assert_eq!(read(&fs, LIMIT), "100000000");
    agent.wait_for("level 3", || agent.metric("accel_throttle_level", &[d]) == Some(3.0));
    assert_eq!(read(&fs, COOLING), "5");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(agent.metric("accel_throttle_level", &[d]), Some(3.0), "never beyond the ladder");

    // Inside the hysteresis band: hold. Below 75: one step down at a time, back to the originals.
    fs.write(TEMP, "78000\n");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(agent.metric("accel_throttle_level", &[d]), Some(3.0));
    fs.write(TEMP, "70000\n");
    agent.wait_for("level 2", || agent.metric("accel_throttle_level", &[d]) == Some(2.0));
    assert_eq!(read(&fs, COOLING), "2");
    agent.wait_for("level 1", || agent.metric("accel_throttle_level", &[d]) == Some(1.0));
    assert_eq!(read(&fs, LIMIT), "150000000", "the original limit is back");
    agent.wait_for("level 0", || agent.metric("accel_throttle_level", &[d]) == Some(0.0));
    assert_eq!(read(&fs, COOLING), "0", "the original state is back");
    assert_eq!(agent.metric("accel_throttle_transitions_total", &[d, ("direction", "up")]), Some(3.0));
    assert_eq!(agent.metric("accel_throttle_transitions_total", &[d, ("direction", "down")]), Some(3.0));
    let events = agent.get("/api/v1/events?device=loihi0&kind=action").body;
    assert!(events.contains("throttle level 0 -> 1"), "{events}");
    assert!(events.contains("throttle level 1 -> 0"), "{events}");
    let originals = std::fs::read_to_string(agent.state_dir.path().join("originals.json")).unwrap();
    let originals: serde_json::Value = serde_json::from_str(&originals).unwrap();
    assert_eq!(originals["entries"], serde_json::json!([]), "nothing left to restore");
    assert_eq!(originals["count"], 0);
}

#[test]
fn a_crash_while_throttled_is_undone_at_the_next_start() {
    let fs = host();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config("[actions]\nenabled = true")).unwrap();
    let args = ["--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()];
    let state = tempfile::tempdir().unwrap();
    let state_path = state.path().to_owned();

    fs.write(TEMP, "85000\n");
    let mut agent = Agent::start_in(state, &args);
    agent.wait_for("throttled", || agent.metric("accel_throttle_level", &[("device", "loihi0")]) == Some(2.0));
    agent.signal(libc::SIGKILL);
    let _ = agent.child.wait();
    assert_eq!(read(&fs, COOLING), "2", "a crash leaves the device throttled");
    assert_eq!(read(&fs, LIMIT), "100000000");
    // Keep the state directory for the restart.
    let state = std::mem::replace(&mut agent.state_dir, tempfile::tempdir().unwrap());
    drop(agent);
    assert!(state.path().join("originals.json").exists());

    fs.write(TEMP, "60000\n");
    let agent = Agent::start_in(state, &args);
    agent.wait_for("restored", || read(&fs, COOLING) == "0" && read(&fs, LIMIT) == "150000000");
    let events = agent.get("/api/v1/events?kind=action").body;
    assert!(events.contains("restored after a restart"), "{events}");
    assert_eq!(state_path, agent.state_dir.path());
}

#[test]
fn sigterm_restores_the_originals() {
    let fs = host();
    fs.write(TEMP, "85000\n");
    let (mut agent, _cfg) = Agent::with_config(fs.root(), &config("[actions]\nenabled = true"));
    agent.wait_for("throttled", || agent.metric("accel_throttle_level", &[("device", "loihi0")]) == Some(1.0));
    agent.signal(libc::SIGTERM);
    let status = agent.child.wait().unwrap();
    assert!(status.success());
    assert_eq!(read(&fs, COOLING), "0");
}

#[test]
fn a_symlink_out_of_the_sysfs_root_is_refused() {
    let fs = host();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("cur_state"), "0\n").unwrap();
    fs.remove("class/thermal/cooling_device0");
    fs.symlink("class/thermal/cooling_device0", outside.path().to_str().unwrap());
    fs.write(TEMP, "85000\n");
    let (agent, _cfg) = Agent::with_config(fs.root(), &config("[actions]\nenabled = true"));
    agent.wait_for("refusal", || agent.get("/api/v1/events?kind=action").body.contains("outside the sysfs root"));
    assert_eq!(std::fs::read_to_string(outside.path().join("cur_state")).unwrap(), "0\n", "untouched");
    assert_eq!(agent.metric("accel_throttle_level", &[("device", "loihi0")]), Some(0.0), "no state change");
}

#[test]
fn dry_run_records_what_it_would_do_and_writes_nothing() {
    let fs = host();
    fs.write(TEMP, "85000\n");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config("[actions]\nenabled = true")).unwrap();
    let agent =
        Agent::start(&["--dry-run", "--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()]);
    agent.wait_for("decision", || {
        agent.get("/api/v1/events?kind=action").body.contains("dry run: throttle level 0 -> 1")
    });
    let events = agent.get("/api/v1/events?kind=action").body;
    assert!(events.contains("would write"), "{events}");
    assert_eq!(read(&fs, COOLING), "0");
    assert_eq!(read(&fs, LIMIT), "150000000");
    assert!(!agent.state_dir.path().join("originals.json").exists(), "nothing to restore: nothing was written");
}

#[test]
fn without_actions_enabled_nothing_is_written() {
    let fs = host();
    fs.write(TEMP, "95000\n");
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(""));
    agent.wait_ready();
    agent.wait_for("overheating seen", || {
        agent.metric("accel_device_condition", &[("device", "loihi0"), ("condition", "Overheating")]) == Some(1.0)
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(read(&fs, COOLING), "0");
    assert_eq!(agent.metric("accel_throttle_level", &[("device", "loihi0")]), Some(0.0));
}

/// Regression: throttle requests and the expiry of an operator's override ran only on a host collector's
/// tick. With every host collector off, a device whose temperature comes from a probe is throttled, and
/// a maintenance window with `--for` ends on time.
#[test]
fn throttling_and_override_expiry_need_no_host_collector() {
    let fs = FakeSysfs::new();
    fs.cooling_device(0, "Processor", 0, 7);
    let collectors_off = common::host_collectors_off();
    let toml = format!(
        r#"
poll_interval = "200ms"
[actions]
enabled = true
[discovery]
enabled = false
{collectors_off}
[[device]]
id = "probe0"
kind = "generic"
[device.thresholds]
temperature_warn = 80.0
temperature_crit = 95.0
[device.throttle]
threshold = 80.0
hold = "1s"
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 3 }}
[[device.probe]]
name = "status"
command = ["sh", "-c", "echo '{{\"t\": 90}}'"]
format = "json"
fields = {{ temperature = "/t" }}
interval = "200ms"
"#
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();
    let d = ("device", "probe0");
    agent.wait_for("throttled", || agent.metric("accel_throttle_level", &[d]) == Some(1.0));
    assert_eq!(std::fs::read_to_string(fs.path("class/thermal/cooling_device0/cur_state")).unwrap().trim(), "3");

    let ctl = std::process::Command::new(env!("CARGO_BIN_EXE_agentctl"))
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(["maintenance", "probe0", "on", "--for", "1s"])
        .output()
        .unwrap();
    assert!(ctl.status.success(), "{ctl:?}");
    agent.wait_for("maintenance ended", || {
        agent.get("/api/v1/events?device=probe0&kind=operator").body.contains("maintenance ended")
    });
}
