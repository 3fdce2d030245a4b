//! `accel-agent scan`: one look, a table, and the exit code of the worst device.

mod common;

use std::process::Command;

use accel_sim::sysfs_tree::FakeSysfs;
use common::BIN;

fn scan(fs: &FakeSysfs, config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = Command::new(BIN)
        .args(["scan", "--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

const CONFIG: &str = r#"
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
[device.thresholds]
temperature_warn = 70.0
temperature_crit = 85.0
min_duration = "1m"
"#;

#[test]
fn exit_code_follows_the_worst_device() {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0"));
    chip.attr("temp1_input", "45000");
    let (code, table) = scan(&fs, CONFIG);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("loihi0"), "{table}");
    assert!(table.contains("healthy"), "{table}");
    assert!(table.contains("45.0 °C"), "{table}");

    // One look above the warning threshold is enough for a scan (min_duration does not apply).
    chip.attr("temp1_input", "75000");
    let (code, table) = scan(&fs, CONFIG);
    assert_eq!(code, 1, "{table}");
    assert!(table.contains("degraded"), "{table}");

    chip.attr("temp1_input", "91000");
    let (code, table) = scan(&fs, CONFIG);
    assert_eq!(code, 2, "{table}");
    assert!(table.contains("Overheating: temp1 at 91.0 °C, above the critical 85.0 °C"), "{table}");
    assert!(table.contains("next: check cooling and airflow"), "{table}");
    assert!(table.lines().last().unwrap().ends_with("overall unhealthy"), "{table}");
}

#[test]
fn an_empty_host_says_what_was_looked_at_and_what_to_configure() {
    let fs = FakeSysfs::new();
    // Host sensors only: a chip on the platform bus is not an accelerator.
    fs.hwmon(0, Some("coretemp"), Some("devices/platform/coretemp.0")).attr("temp1_input", "45000");
    let (code, out) = scan(&fs, "");
    assert_eq!(code, 0, "{out}");
    let root = fs.root().display();
    assert!(out.starts_with("no devices: none declared in the config and none found by discovery\n"), "{out}");
    assert!(out.contains(&format!("{root}/class/accel (accel class devices) and {root}/class/hwmon")), "{out}");
    assert!(out.contains("host collectors read: hwmon, thermal_zone"), "{out}");
    assert!(out.contains("declare it with [[device]] in the config"), "{out}");
    assert!(out.contains("accel-agent check-config FILE"), "{out}");
    assert!(out.ends_with("0 device(s); overall healthy\n"), "{out}");

    let (_, out) = scan(&fs, "[discovery]\nenabled = false\n");
    assert!(out.contains("discovery is off ([discovery] enabled = false)"), "{out}");
}

#[test]
fn a_probe_that_fails_once_is_offline_in_a_scan() {
    let fs = FakeSysfs::new();
    let cfg = r#"
[discovery]
enabled = false
[[device]]
id = "photon0"
kind = "generic"
[[device.probe]]
name = "status"
command = ["/bin/sh", "-c", "echo 'link down' >&2; exit 3"]
timeout = "2s"
"#;
    let (code, table) = scan(&fs, cfg);
    assert_eq!(code, 2, "{table}");
    assert!(table.contains("Offline: probe status failed 1 times: exit code 3: link down"), "{table}");
}
