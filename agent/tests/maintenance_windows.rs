//! Maintenance windows (issue 27, item 4) against the real agent on a fake sysfs tree with actions on: a
//! window computed to be open now holds its device in maintenance (metric, API, no throttle, not counted
//! by NPD), one that is not open holds nothing, `maintenance off` ends only the manual part, and the
//! window closing gives the device back its earned state, with journal events for both ends.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, BIN, agentctl};
use serde_json::Value;

const COOLING0: &str = "devices/virtual/thermal/cooling_device0/cur_state";

/// Two hot devices (95 °C: above crit, so unhealthy; above the throttle threshold) with a one-level ladder
/// each, on their own chips and cooling devices.
fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("chipa"), Some("devices/platform/a.0")).attr("temp1_input", "95000");
    fs.hwmon(1, Some("chipb"), Some("devices/platform/b.0")).attr("temp1_input", "95000");
    fs.cooling_device(0, "Processor", 0, 10);
    fs.cooling_device(1, "Fan", 0, 10);
    fs
}

fn device(id: &str, chip: &str, cooling: &str) -> String {
    format!(
        r#"
[[device]]
id = "{id}"
kind = "generic"
hwmon = "{chip}"
[device.thresholds]
temperature_warn = 80.0
temperature_crit = 90.0
min_duration = "1s"
[device.throttle]
threshold = 80.0
hold = "0s"
[[device.throttle.level]]
cooling_device = {{ device = "{cooling}", state = 2 }}
"#
    )
}

/// A UTC window starting at `start` on that day of the week, for `duration`.
fn window(name: &str, start: SystemTime, duration: Duration, devices: &str) -> String {
    let start = jiff::Timestamp::try_from(start).expect("a time jiff can hold").to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "[[maintenance.window]]\nname = \"{name}\"\ndays = [\"{}\"]\nstart = \"{}\"\nduration = \"{}s\"\n\
         timezone = \"UTC\"\ndevices = [{devices}]\n",
        start.strftime("%a").to_string().to_lowercase(),
        start.strftime("%H:%M:%S"),
        duration.as_secs()
    )
}

/// `now`: started a minute ago on hot0, for `duration`; `later`: on hot1, starts three days from now.
fn config(started: SystemTime, duration: Duration) -> String {
    let later = SystemTime::now() + Duration::from_secs(3 * 86_400);
    format!(
        "poll_interval = \"100ms\"\n[actions]\nenabled = true\n[discovery]\nenabled = false\n{}{}{}{}",
        window("now", started, duration, "\"hot0\""),
        window("later", later, Duration::from_secs(3600), "\"hot1\""),
        device("hot0", "chipa", "cooling_device0"),
        device("hot1", "chipb", "cooling_device1"),
    )
}

fn json(agent: &Agent, path: &str) -> Value {
    let r = agent.get(path);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body))
}

fn level(agent: &Agent, id: &str) -> Option<f64> {
    agent.metric("accel_throttle_level", &[("device", id)])
}

fn window_events(agent: &Agent) -> Vec<String> {
    let v = json(agent, "/api/v1/events?device=hot0&kind=maintenance_window");
    let events = v.as_array().or_else(|| v["events"].as_array()).cloned().unwrap_or_default();
    events.iter().filter_map(|e| e["message"].as_str().map(str::to_owned)).collect()
}

fn npd_unhealthy(socket: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["npd", "--condition", "AcceleratorUnhealthy", "--socket"])
        .arg(socket)
        .output()
        .expect("run accel-agent npd");
    (out.status.code().expect("exit code"), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn a_window_open_now_holds_its_device_in_maintenance_until_it_closes() {
    let fs = host();
    let started = SystemTime::now() - Duration::from_secs(60);
    let (agent, dir) = Agent::with_config(fs.root(), &config(started, Duration::from_secs(3600)));
    agent.wait_ready();

    // The device outside any window is throttled and unhealthy: the same evidence as hot0's.
    agent.wait_for("hot1 throttled", || level(&agent, "hot1") == Some(1.0));
    agent.wait_for("hot1 unhealthy", || json(&agent, "/api/v1/devices/hot1")["state"] == "unhealthy");
    let status = json(&agent, "/api/v1/status");
    let state = |id: &str| {
        let devices = status["devices"].as_array().expect("devices");
        devices.iter().find(|d| d["id"] == id).map(|d| d["state"].as_str().unwrap_or("?").to_owned())
    };
    assert_eq!(state("hot1").as_deref(), Some("unhealthy"));
    assert_eq!(state("hot0").as_deref(), Some("maintenance"));
    assert_eq!(agent.metric("accel_maintenance_window_active", &[("window", "now")]), Some(1.0));
    assert_eq!(agent.metric("accel_maintenance_window_active", &[("window", "later")]), Some(0.0));
    assert_eq!(agent.metric("accel_maintenance_mode", &[("device", "hot0")]), Some(1.0));
    assert_eq!(agent.metric("accel_maintenance_mode", &[("device", "hot1")]), Some(0.0));
    // Inside the window nothing is written for hot0.
    assert_eq!(level(&agent, "hot0"), Some(0.0));
    assert_eq!(std::fs::read_to_string(fs.path(COOLING0)).unwrap().trim(), "0");

    // Why and until when, apart from manual maintenance.
    let d = json(&agent, "/api/v1/devices/hot0");
    assert_eq!((d["maintenance"].as_bool(), d["maintenance_manual"].as_bool()), (Some(true), Some(false)));
    assert_eq!(d["maintenance_windows"][0]["name"], "now");
    let until_local = d["maintenance_windows"][0]["until_local"].as_str().expect("until_local").to_owned();
    assert!(until_local.ends_with(" UTC"), "{until_local}");
    let until = d["maintenance_windows"][0]["until"].as_f64().expect("until");
    let want = (started + Duration::from_secs(3600)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((until - want).abs() < 1.0, "until {until}, want {want}");
    let windows = status["maintenance_windows"].as_array().expect("windows in the status");
    assert_eq!(
        windows.iter().map(|w| (w["name"].as_str(), w["active"].as_bool())).collect::<Vec<_>>(),
        [(Some("now"), Some(true)), (Some("later"), Some(false))]
    );
    assert!(windows[1]["next_start"].as_f64().is_some_and(|t| t > want), "{:?}", windows[1]);

    // NPD does not count the device in the window.
    let socket = agent.state_dir.path().join("agent.sock");
    let (code, line) = npd_unhealthy(&socket);
    assert_eq!((code, line.as_str()), (1, "1 of 2: hot1 unhealthy Overheating"));

    // agentctl: the device and the status say so; `maintenance off` ends only the manual part.
    let (code, out, _) = agentctl(&agent, &["device", "hot0"]);
    assert!(out.contains(&format!("maintenance window now until {until_local}")), "{code}: {out}");
    let (_, out, _) = agentctl(&agent, &["status"]);
    assert!(out.contains(&format!("maintenance window now open until {until_local}: hot0")), "{out}");
    let (code, out, err) = agentctl(&agent, &["maintenance", "hot0", "on"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = agentctl(&agent, &["maintenance", "hot0", "off"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("manual maintenance off; maintenance window now until {until_local} still holds it")),
        "{out}"
    );
    assert_eq!(json(&agent, "/api/v1/devices/hot0")["state"], "maintenance");

    // The window ends a few seconds from now (however long the reload takes, it is over by the check).
    let ends_in = SystemTime::now().duration_since(started).unwrap() + Duration::from_secs(3);
    std::fs::write(dir.path().join("agent.toml"), config(started, ends_in)).unwrap();
    let (code, out, err) = agentctl(&agent, &["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    agent.wait_for("the window to close", || {
        agent.metric("accel_maintenance_window_active", &[("window", "now")]) == Some(0.0)
    });
    agent.wait_for("hot0 back to its earned state", || json(&agent, "/api/v1/devices/hot0")["state"] == "unhealthy");
    agent.wait_for("hot0 throttled once the window closed", || level(&agent, "hot0") == Some(1.0));
    assert_eq!(std::fs::read_to_string(fs.path(COOLING0)).unwrap().trim(), "2");
    let (code, line) = npd_unhealthy(&socket);
    assert_eq!(code, 1);
    assert!(line.starts_with("2 of 2:"), "{line}");
    let events = window_events(&agent);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], "maintenance window now closed", "newest first: {events:?}");
    assert_eq!(events[1], format!("maintenance window now opened, until {until_local}: automatic actions suspended"));
}
