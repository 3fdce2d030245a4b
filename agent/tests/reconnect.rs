//! The reconnect ladder against a fake device: its status tool reports it offline until the right step
//! runs; the test plays the hardware.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use accel_e2e::sysfs_tree::FakeSysfs;
use common::Agent;

fn config(tool_dir: &Path, steps: &str, extra: &str) -> String {
    format!(
        r#"
poll_interval = "100ms"
[actions]
enabled = true
[discovery]
enabled = false
[[device]]
id = "photon0"
kind = "generic"
pci_address = "0000:3b:00.0"
[[device.probe]]
name = "status"
command = ["/bin/sh", "-c", "exit $(cat '{dir}/code')"]
interval = "100ms"
timeout = "2s"
offline_after = 1
[device.reconnect]
steps = [{steps}]
command = ["/bin/sh", "-c", "echo {{id}} >> '{dir}/vendor.log'"]
backoff_initial = "1s"
settle = "1s"
{extra}
"#,
        dir = tool_dir.display()
    )
}

fn pci_device(fs: &FakeSysfs) {
    fs.write("devices/pci0000:00/0000:3b:00.0/reset", "0\n");
    fs.symlink("bus/pci/devices/0000:3b:00.0", "../../../devices/pci0000:00/0000:3b:00.0");
}

#[test]
fn a_device_that_comes_back_on_the_second_step() {
    let fs = FakeSysfs::new();
    pci_device(&fs);
    let tool = tempfile::tempdir().unwrap();
    std::fs::write(tool.path().join("code"), "3").unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(tool.path(), "\"vendor\", \"function_reset\"", ""));
    agent.wait_ready();

    // The hardware: only a function reset brings it back.
    let reset = fs.path("devices/pci0000:00/0000:3b:00.0/reset");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&reset).unwrap().trim() != "1" {
        assert!(Instant::now() < deadline, "no function reset was attempted");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(tool.path().join("code"), "0").unwrap();

    let d = ("device", "photon0");
    agent.wait_for("recovered", || {
        agent.metric("accel_reconnect_attempts_total", &[d, ("step", "function_reset"), ("result", "recovered")])
            == Some(1.0)
    });
    assert_eq!(
        agent.metric("accel_reconnect_attempts_total", &[d, ("step", "vendor"), ("result", "failed")]),
        Some(1.0)
    );
    assert_eq!(agent.metric("accel_reconnect_circuit_state", &[d]), Some(0.0));
    assert_eq!(
        std::fs::read_to_string(tool.path().join("vendor.log")).unwrap(),
        "photon0\n",
        "the vendor step ran once"
    );
    let events = agent.get("/api/v1/events?device=photon0&kind=action").body;
    assert!(events.contains("still offline after reconnect step vendor"), "{events}");
    assert!(events.contains("reconnect step function_reset: wrote 1 to reset"), "{events}");
    assert!(events.contains("back online after reconnect step function_reset"), "{events}");
    agent.wait_for("online", || agent.metric("accel_device_condition", &[d, ("condition", "Offline")]) == Some(0.0));
}

#[test]
fn a_device_that_never_comes_back_opens_the_circuit_and_escalates() {
    let fs = FakeSysfs::new();
    pci_device(&fs);
    let tool = tempfile::tempdir().unwrap();
    std::fs::write(tool.path().join("code"), "3").unwrap();
    let extra = "max_failures = 2\ncooldown = \"1s\"\nescalate_after = 1";
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(tool.path(), "\"vendor\"", extra));
    agent.wait_ready();
    let d = ("device", "photon0");
    agent.wait_for("escalation", || {
        agent.get("/api/v1/events?device=photon0&kind=action").body.contains("NeedsHardwareInspection")
    });
    assert_eq!(agent.metric("accel_reconnect_circuit_state", &[d]), Some(2.0));
    assert_eq!(
        agent.metric("accel_reconnect_attempts_total", &[d, ("step", "vendor"), ("result", "failed")]),
        Some(2.0)
    );
    // No more attempts once a human is needed.
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(std::fs::read_to_string(tool.path().join("vendor.log")).unwrap().lines().count(), 2);
    assert!(agent.get("/api/v1/devices/photon0").body.contains("\"needs_hardware_inspection\": true"));
}
