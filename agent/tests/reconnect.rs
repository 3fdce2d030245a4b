//! The reconnect ladder against a fake device: its status tool reports it offline until the right step
//! runs; the test plays the hardware.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
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

/// Regression: decisions used to run only on a host collector's tick, so a device whose only evidence is a
/// probe went Offline and was never reconnected when every host collector was off.
#[test]
fn a_probe_only_device_is_reconnected_with_every_host_collector_off() {
    let tool = tempfile::tempdir().unwrap();
    let collectors_off = common::host_collectors_off();
    let toml = format!(
        r#"
poll_interval = "200ms"
[actions]
enabled = true
dry_run = true
[discovery]
enabled = false
{collectors_off}
[[device]]
id = "probe0"
kind = "generic"
[[device.probe]]
name = "status"
command = ["sh", "-c", "exit 3"]
liveness = true
offline_after = 1
[device.reconnect]
steps = ["vendor"]
command = ["/bin/sh", "-c", "echo {{id}} >> '{dir}/vendor.log'"]
"#,
        dir = tool.path().display()
    );
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();
    let started = Instant::now();
    agent.wait_for("the dry-run reconnect", || {
        agent.get("/api/v1/events?device=probe0&kind=action").body.contains("would run reconnect step vendor")
    });
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(!tool.path().join("vendor.log").exists(), "dry run: the vendor command did not run");
    let device = agent.get("/api/v1/devices/probe0").body;
    assert!(device.contains("\"state\": \"unhealthy\""), "{device}");
}

/// Regressions: "the circuit opened" and NeedsHardwareInspection were only in the journal, never in the
/// daemon log; and a device that answered again after its ladder gave up was reported healthy.
#[test]
fn a_ladder_that_gave_up_is_logged_at_error_and_keeps_the_device_degraded_when_it_answers_again() {
    let fs = FakeSysfs::new();
    pci_device(&fs);
    let tool = tempfile::tempdir().unwrap();
    std::fs::write(tool.path().join("code"), "3").unwrap();
    let extra = "max_failures = 2\ncooldown = \"1s\"\nescalate_after = 2";
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(tool.path(), "\"vendor\"", extra));
    agent.wait_ready();
    agent.wait_for("escalation", || {
        agent.get("/api/v1/events?device=photon0&kind=action").body.contains("NeedsHardwareInspection")
    });
    // The board comes back by itself.
    std::fs::write(tool.path().join("code"), "0").unwrap();
    agent.wait_for("online again", || agent.metric("accel_device_up", &[("device", "photon0")]) == Some(1.0));
    let health = agent.get("/health");
    assert_eq!(health.status, 200, "degraded, not unhealthy: {}", health.body);
    let v: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["devices"][0]["state"], "degraded", "{v}");
    let failing = &v["devices"][0]["failing"];
    assert!(
        failing
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["condition"] == "ReconnectCircuit" && f["reason"] == "NeedsHardwareInspection"),
        "{failing}"
    );

    let errors: Vec<String> = agent.stderr.try_iter().filter(|l| l.contains("\"level\":\"ERROR\"")).collect();
    assert!(errors.iter().any(|l| l.contains("the reconnect circuit opened")), "ERROR lines: {errors:#?}");
    assert!(errors.iter().any(|l| l.contains("NeedsHardwareInspection")), "ERROR lines: {errors:#?}");
}
