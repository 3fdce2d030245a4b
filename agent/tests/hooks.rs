//! Hooks run on state changes: drain when a device turns unhealthy, undrain when it is healthy again.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

fn setup(actions: &str) -> (FakeSysfs, tempfile::TempDir, String) {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    let out = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"
poll_interval = "100ms"
[actions]
{actions}
[[actions.hook]]
on = ["unhealthy", "healthy"]
command = ["/bin/sh", "-c", "echo \"{{device}} {{previous}}->{{state}} $ACCEL_STATE\" >> '{dir}/hooks.log'"]
timeout = "5s"
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
[device.thresholds]
min_duration = "1s"
"#,
        dir = out.path().display()
    );
    (fs, out, cfg)
}

#[test]
fn hooks_run_on_entering_their_states() {
    let (fs, out, cfg) = setup("enabled = true");
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    let log = out.path().join("hooks.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    agent.wait_for("healthy hook", || read().contains("loihi0 unknown->healthy healthy"));
    fs.write("devices/platform/loihi.0/hwmon/hwmon0/temp1_input", "95000\n");
    agent.wait_for("unhealthy hook", || read().contains("loihi0 healthy->unhealthy unhealthy"));
    fs.write("devices/platform/loihi.0/hwmon/hwmon0/temp1_input", "50000\n");
    agent.wait_for("healthy again", || read().contains("loihi0 unhealthy->healthy healthy"));
    assert_eq!(read().lines().count(), 3, "{}", read());
    assert!(agent.get("/api/v1/events?kind=action").body.contains("hook ran: /bin/sh -c"));
}

#[test]
fn hooks_only_record_in_a_dry_run_and_never_run_with_actions_off() {
    let (fs, out, cfg) = setup("enabled = true\ndry_run = true");
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_for("recorded", || agent.get("/api/v1/events?kind=action").body.contains("dry run: would run hook"));
    assert!(!out.path().join("hooks.log").exists());
    drop(agent);

    let (fs, out, cfg) = setup("enabled = false");
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_for("healthy", || {
        agent.metric("accel_device_health", &[("device", "loihi0"), ("state", "healthy")]) == Some(1.0)
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(!out.path().join("hooks.log").exists());
    assert!(!agent.get("/api/v1/events?kind=action").body.contains("hook"));
}
