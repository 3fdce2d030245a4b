//! The agent's own trouble is never evidence about a device. The real agent runs a healthy device with a
//! liveness probe and a reconnect ladder; then the test takes its file descriptors away (prlimit on the
//! running process, as a connection flood or a leak would), so that no probe can be started. Before the
//! rule, that set the device Offline and ran the ladder up to a PCI function reset of healthy hardware.

mod common;

use std::path::Path;
use std::time::Duration;

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, host_collectors_off};

fn config(tool_dir: &Path) -> String {
    format!(
        r#"
poll_interval = "100ms"
[actions]
enabled = true
[discovery]
enabled = false
{collectors}
[[device]]
id = "photon0"
kind = "generic"
pci_address = "0000:3b:00.0"
[[device.probe]]
name = "status"
command = ["/bin/sh", "-c", "exit 0"]
interval = "100ms"
timeout = "2s"
offline_after = 2
[device.reconnect]
steps = ["vendor", "function_reset"]
command = ["/bin/sh", "-c", "echo {{id}} >> '{dir}/vendor.log'"]
backoff_initial = "1s"
settle = "1s"
"#,
        collectors = host_collectors_off(),
        dir = tool_dir.display()
    )
}

/// Sets the running agent's open-file limit.
fn set_nofile(pid: u32, limit: libc::rlimit) {
    // SAFETY: prlimit reads `limit`, which is ours; the pid is our child's.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn get_nofile(pid: u32) -> libc::rlimit {
    let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: with no new limit, prlimit only writes `now`, which is ours.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, std::ptr::null(), &mut now) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    now
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").count() as u64
}

#[test]
fn a_probe_the_agent_cannot_start_never_sets_offline_nor_resets_the_device() {
    let fs = FakeSysfs::new();
    fs.write("devices/pci0000:00/0000:3b:00.0/reset", "0\n");
    fs.symlink("bus/pci/devices/0000:3b:00.0", "../../../devices/pci0000:00/0000:3b:00.0");
    let tool = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(tool.path()));
    agent.wait_ready();
    agent.wait_for("the probe to succeed", || {
        agent.metric("accel_probe_success", &[("device", "photon0")]) == Some(1.0)
    });
    let d = [("device", "photon0")];
    assert_eq!(agent.metric("accel_agent_faults_total", &[("kind", "descriptors")]), Some(0.0));

    // Out of descriptors: the limit drops below what the agent holds, so nothing new can be opened, not
    // even a probe's pipes. Three seconds are thirty probe rounds, fifteen times offline_after, and time for the ladder to move on.
    let pid = agent.child.id();
    let tight = open_fds(pid).saturating_sub(4);
    // The soft limit only: lowering the hard one could not be undone without CAP_SYS_RESOURCE.
    let old = get_nofile(pid);
    set_nofile(pid, libc::rlimit { rlim_cur: tight, rlim_max: old.rlim_max });
    std::thread::sleep(Duration::from_secs(3));
    set_nofile(pid, old);

    agent.wait_for("the faults to be counted", || {
        agent.metric("accel_agent_faults_total", &[("kind", "descriptors")]).is_some_and(|n| n >= 5.0)
    });
    // The device is judged on what it last said: up, healthy, Offline never set, nothing reset.
    assert_eq!(agent.metric("accel_device_condition", &[("device", "photon0"), ("condition", "Offline")]), Some(0.0));
    assert_eq!(agent.metric("accel_device_health", &[("device", "photon0"), ("state", "healthy")]), Some(1.0));
    let events = agent.get("/api/v1/events?device=photon0").body;
    assert!(!events.contains("Offline"), "no Offline on the agent's own trouble: {events}");
    assert!(!events.contains("reconnect step"), "no reconnect on the agent's own trouble: {events}");
    assert!(!tool.path().join("vendor.log").exists(), "the vendor reconnect ran");
    let reset = std::fs::read_to_string(fs.path("devices/pci0000:00/0000:3b:00.0/reset")).unwrap();
    assert_eq!(reset.trim(), "0", "a function reset of healthy hardware");
    assert_eq!(agent.metric("accel_reconnect_attempts_total", &[d[0], ("step", "vendor"), ("result", "failed")]), None);

    // Loud where the agent is concerned: one journal event for the streak, the status, and one WARN line.
    let agent_events = agent.get("/api/v1/events?kind=agent_fault").body;
    assert_eq!(agent_events.matches("out of file descriptors").count(), 1, "one event per streak: {agent_events}");
    assert!(agent_events.contains("probe status of photon0 not done"), "{agent_events}");
    let status: serde_json::Value = serde_json::from_str(&agent.get("/api/v1/status").body).expect("JSON");
    let current = &status["agent"]["faults"]["current"];
    assert_eq!(
        (current["kind"].as_str(), current["what"].as_str()),
        (Some("descriptors"), Some("probe status of photon0"))
    );
    let warnings: Vec<String> =
        agent.stderr.try_iter().filter(|l| l.contains("\"WARN\"") && l.contains("out of file descriptors")).collect();
    assert_eq!(warnings.len(), 1, "one WARN line per streak: {warnings:#?}");

    // Descriptors back: the probe runs again and the device stays healthy.
    agent.wait_for("the probe to run again", || {
        let device: serde_json::Value = serde_json::from_str(&agent.get("/api/v1/devices/photon0").body).expect("JSON");
        device["probes"][0]["not_run"].is_null()
    });
    assert_eq!(agent.metric("accel_probe_success", &d), Some(1.0));
}

#[test]
fn reads_the_agent_cannot_make_never_make_a_device_stale() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    // Every attribute opened per read (no cache), so reads need descriptors; stale after one second.
    let toml = "poll_interval = \"100ms\"\n[collectors]\nmax_open_files = 0\n[collectors.resources]\nenabled = false\n\
                [discovery]\nenabled = false\n[[device]]\nid = \"loihi0\"\nkind = \"loihi\"\nhwmon = \"loihi\"\n\
                [device.thresholds]\nstale_after = \"1s\"\n";
    let (agent, _cfg) = Agent::with_config(fs.root(), toml);
    agent.wait_ready();
    let stale = [("device", "loihi0"), ("condition", "DataStale")];
    agent.wait_for("fresh readings", || agent.metric("accel_device_condition", &stale) == Some(0.0));

    let pid = agent.child.id();
    let old = get_nofile(pid);
    set_nofile(pid, libc::rlimit { rlim_cur: open_fds(pid).saturating_sub(4), rlim_max: old.rlim_max });
    std::thread::sleep(Duration::from_secs(3));
    set_nofile(pid, old);

    agent.wait_for("the reads to be counted as the agent's", || {
        let errors = [("collector", "hwmon"), ("reason", "emfile")];
        agent.metric("accel_sysfs_read_errors_total", &errors).is_some_and(|n| n > 0.0)
    });
    // Three seconds without a reading, three times stale_after: not the device's silence.
    assert_eq!(agent.metric("accel_device_condition", &stale), Some(0.0));
    let events = agent.get("/api/v1/events?device=loihi0").body;
    assert!(!events.contains("DataStale"), "DataStale on the agent's own trouble: {events}");
    let faults = agent.get("/api/v1/events?kind=agent_fault").body;
    // One event for the streak, naming whichever collector met it first.
    assert_eq!(faults.matches("collector's files not done").count(), 1, "{faults}");
    assert!(agent.metric("accel_agent_faults_total", &[("kind", "descriptors")]).is_some_and(|n| n > 0.0));
    // Descriptors back: read again, and the temperature is the chip's.
    agent.wait_for("a fresh reading", || {
        agent.metric("accel_device_temperature_celsius", &[("device", "loihi0"), ("sensor", "temp1")]) == Some(50.0)
    });
}
