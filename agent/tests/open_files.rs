//! The real agent keeps only values that change between polls open, within `[collectors] max_open_files`,
//! raises its open-file soft limit to fit, exports the count, and re-reads limits every
//! `rediscover_interval`.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

const CHIP: &str = "devices/pci0000:00/0000:00:01.0";

fn tree() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some(CHIP))
        .attr("temp1_input", "40000")
        .attr("temp1_max", "85000")
        .attr("temp1_crit", "95000")
        .attr("temp2_input", "41000")
        .attr("temp2_crit", "95000")
        .attr("in1_input", "800")
        .attr("in1_max", "900");
    fs
}

const ONLY_HWMON: &str = r#"poll_interval = "100ms"
[collectors]
rediscover_interval = "1s"
max_open_files = 2
[collectors.thermal_zone]
enabled = false
[collectors.cooling_device]
enabled = false
[collectors.power_supply]
enabled = false
[collectors.powercap]
enabled = false
[collectors.pci_aer]
enabled = false
[collectors.accel]
enabled = false
[collectors.resources]
enabled = false
"#;

/// The soft and hard "Max open files" of a process.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files line");
    let f: Vec<&str> = line.split_whitespace().collect();
    let n = |s: &str| if s == "unlimited" { u64::MAX } else { s.parse().expect("number") };
    (n(f[3]), n(f[4]))
}

#[test]
fn limits_are_reread_on_the_rediscovery_cadence_and_open_files_stay_within_the_budget() {
    let fs = tree();
    let (agent, _cfg) = Agent::with_config(fs.root(), ONLY_HWMON);
    agent.wait_ready();
    let l = [("chip", "pci0000:00_0000:00:01_0"), ("sensor", "temp1")];
    agent.wait_for("first values", || agent.metric("accel_hwmon_temp_crit_celsius", &l) == Some(95.0));

    // Three inputs change between polls; the budget lets two stay open, the third is read per read.
    assert_eq!(agent.metric("accel_sysfs_open_files_limit", &[]), Some(2.0));
    assert_eq!(agent.metric("accel_sysfs_open_files", &[]), Some(2.0));
    assert_eq!(
        agent.metric("accel_hwmon_in_volts", &[("chip", "pci0000:00_0000:00:01_0"), ("sensor", "in1")]),
        Some(0.8)
    );

    // The budget (2) plus 1024 for everything else, as far as the hard limit allows, never lowered.
    let (soft, hard) = nofile(agent.child.id());
    assert!(soft >= 1026.min(hard), "soft limit {soft} (hard {hard})");

    fs.write(&format!("{CHIP}/hwmon/hwmon0/temp1_crit"), "90000\n");
    fs.write(&format!("{CHIP}/hwmon/hwmon0/in1_input"), "850\n");
    agent.wait_for("the new crit within rediscover_interval", || {
        agent.metric("accel_hwmon_temp_crit_celsius", &l) == Some(90.0)
    });
    assert_eq!(
        agent.metric("accel_hwmon_in_volts", &[("chip", "pci0000:00_0000:00:01_0"), ("sensor", "in1")]),
        Some(850.0 * 0.001),
        "the value beyond the budget follows the file"
    );
    assert_eq!(agent.metric("accel_sysfs_open_files", &[]), Some(2.0), "rediscovery gives descriptors back");
}
