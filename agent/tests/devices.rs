//! A declared device bound to host sources, observed through /health, the JSON API and /metrics as it
//! heats up past its thresholds and cools down.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

const CONFIG: &str = r#"
poll_interval = "100ms"

[[device]]
id = "loihi0"
kind = "loihi"
model = "Loihi 2"

[device.thresholds]
temperature_warn = 70.0
temperature_crit = 85.0
hysteresis = 5.0
min_duration = "1s"
power_max = 40.0
"#;

fn loihi_host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/pci0000:00/0000:00:03.0/0000:5e:00.0"))
        .attr("temp1_input", "45000")
        .attr("temp1_label", "chip")
        .attr("temp1_crit", "95000")
        .attr("in0_input", "850");
    fs.power_supply(
        "loihi2",
        &[("type", "Mains"), ("online", "1"), ("energy_now", "1000000"), ("power_now", "12500000")],
    );
    fs
}

const TEMP: &str = "devices/pci0000:00/0000:00:03.0/0000:5e:00.0/hwmon/hwmon0/temp1_input";

fn json_str<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\": \"");
    let start = body.find(&pat)? + pat.len();
    Some(&body[start..start + body[start..].find('"')?])
}

#[test]
fn a_board_heats_up_turns_unhealthy_and_recovers() {
    let fs = loihi_host();
    let (agent, _cfg) = Agent::with_config(fs.root(), CONFIG);
    agent.wait_ready();
    let d = [("device", "loihi0")];
    agent.wait_for("healthy", || agent.metric("accel_device_health", &[d[0], ("state", "healthy")]) == Some(1.0));

    // Readings in base units, from the hwmon chip and the loihi2 power supply.
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[d[0], ("sensor", "chip")]), Some(45.0));
    assert_eq!(
        agent.metric("accel_device_temperature_threshold_celsius", &[d[0], ("sensor", "chip"), ("level", "crit")]),
        Some(95.0)
    );
    assert_eq!(agent.metric("accel_device_voltage_volts", &[d[0], ("sensor", "in0")]), Some(0.85));
    assert_eq!(
        agent
            .metric("accel_device_temperature_threshold_celsius", &[d[0], ("sensor", "configured"), ("level", "crit")]),
        Some(85.0)
    );
    assert_eq!(agent.metric("accel_device_power_watts", &[d[0], ("sensor", "loihi2")]), Some(12.5));
    // 1,000,000 µWh = 1 Wh = 3600 J.
    assert_eq!(agent.metric("accel_device_energy_joules_total", &[d[0], ("sensor", "loihi2")]), Some(3600.0));
    assert_eq!(
        agent.metric(
            "accel_device_info",
            &[d[0], ("kind", "loihi"), ("model", "Loihi 2"), ("driver", "loihi"), ("pci_address", "")]
        ),
        Some(1.0)
    );
    // Every declared condition is exported from the start.
    for c in ["Overheating", "Offline", "SdkError", "LogErrors", "PowerAnomaly", "DataStale"] {
        assert_eq!(agent.metric("accel_device_condition", &[d[0], ("condition", c)]), Some(0.0), "{c}");
    }
    let health = agent.get("/health");
    assert_eq!(health.status, 200);
    assert_eq!(json_str(&health.body, "status"), Some("healthy"));

    // Above critical: unhealthy only after the minimum duration, and /health turns 503.
    fs.write(TEMP, "90000\n");
    agent.wait_for("Overheating", || {
        agent.metric("accel_device_condition", &[d[0], ("condition", "Overheating")]) == Some(1.0)
    });
    assert_eq!(agent.metric("accel_device_health", &[d[0], ("state", "unhealthy")]), Some(1.0));
    let health = agent.get("/health");
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("TemperatureAboveCritical"), "{}", health.body);
    let device = agent.get("/api/v1/devices/loihi0");
    assert_eq!(device.status, 200);
    assert_eq!(json_str(&device.body, "state"), Some("unhealthy"));
    assert!(device.body.contains("\"kind\": \"condition_set\""), "the device's events are included: {}", device.body);
    assert!(
        device
            .body
            .contains("\"sources\": [\n    \"hwmon:0000:00:03_0_0000:5e:00_0\",\n    \"power_supply:loihi2\",\n    \"log:/var/log/loihi2/system.log\"\n  ]"),
        "{}",
        device.body
    );

    // Inside the hysteresis band of the warning threshold (70 - 5): still degraded, not healthy.
    fs.write(TEMP, "68000\n");
    agent.wait_for("degraded", || agent.metric("accel_device_health", &[d[0], ("state", "degraded")]) == Some(1.0));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(agent.metric("accel_device_health", &[d[0], ("state", "degraded")]), Some(1.0), "hysteresis holds");

    // Cool: healthy again, /health 200.
    fs.write(TEMP, "50000\n");
    agent.wait_for("healthy again", || agent.metric("accel_device_health", &[d[0], ("state", "healthy")]) == Some(1.0));
    assert_eq!(agent.get("/health").status, 200);

    // Every change is an event in the journal, newest first, and counted.
    let events = agent.get("/api/v1/events?device=loihi0&severity=warning");
    assert_eq!(events.status, 200, "{}", events.body);
    assert!(events.body.contains("\"message\": \"Overheating set (TemperatureAboveCritical)"), "{}", events.body);
    assert!(events.body.contains("\"severity\": \"critical\""), "{}", events.body);
    let cleared = agent.get("/api/v1/events?device=loihi0&kind=condition_cleared").body;
    assert!(cleared.contains("Overheating cleared (TemperatureNormal)"), "{cleared}");
    assert!(agent.metric("accel_events_total", &[d[0], ("severity", "critical")]).unwrap() >= 1.0);
    assert_eq!(agent.metric("accel_events_total", &[d[0], ("severity", "fatal")]), Some(0.0), "pre-initialised");
    assert_eq!(agent.get("/api/v1/events?since=soon").status, 400);

    // Power above the configured maximum is a PowerAnomaly (degraded).
    fs.write("devices/virtual/power_supply/loihi2/power_now", "45000000\n");
    agent.wait_for("PowerAnomaly", || {
        agent.metric("accel_device_condition", &[d[0], ("condition", "PowerAnomaly")]) == Some(1.0)
    });
    assert_eq!(agent.metric("accel_device_health", &[d[0], ("state", "degraded")]), Some(1.0));
}

#[test]
fn a_device_whose_sources_vanish_goes_stale() {
    let fs = loihi_host();
    let cfg = format!("{CONFIG}stale_after = \"2s\"\n");
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let d = ("device", "loihi0");
    agent.wait_for("healthy", || agent.metric("accel_device_health", &[d, ("state", "healthy")]) == Some(1.0));
    fs.remove("class/hwmon/hwmon0").remove("class/power_supply/loihi2");
    agent.wait_for("DataStale", || {
        agent.metric("accel_device_condition", &[d, ("condition", "DataStale")]) == Some(1.0)
    });
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[d]), None, "absent, never 0");
    assert_eq!(agent.get("/api/v1/devices/nope").status, 404);
    assert!(agent.get("/api/v1/devices/nope").body.contains("\"loihi0\""), "lists the known ids");
}

#[test]
fn accelerators_are_discovered_and_a_card_in_reset_is_offline() {
    let fs = FakeSysfs::new();
    // A habanalabs card: accel class device with a driver status, and its hwmon chip on the same function.
    fs.accel_device(0, "0000:3b:00.0", "habanalabs", &[("status", "Operational"), ("max_power", "350000")]);
    fs.hwmon(0, Some("habanalabs"), Some("devices/pci0000:00/0000:00:02.0/0000:3b:00.0")).attr("temp1_input", "61000");
    // An accelerator known only by its PCI class (0x12: processing accelerator) and an hwmon chip.
    fs.write("devices/pci0000:00/0000:00:04.0/0000:5e:00.0/class", "0x120000\n");
    fs.hwmon(1, Some("photon"), Some("devices/pci0000:00/0000:00:04.0/0000:5e:00.0")).attr("temp1_input", "41000");
    // A chip on a non-accelerator PCI device (an NVMe drive) is not a device.
    fs.write("devices/pci0000:00/0000:00:05.0/0000:01:00.0/class", "0x010802\n");
    fs.hwmon(2, Some("nvme"), Some("devices/pci0000:00/0000:00:05.0/0000:01:00.0")).attr("temp1_input", "35000");

    let (agent, _cfg) = Agent::with_config(fs.root(), "poll_interval = \"100ms\"\n");
    agent.wait_ready();
    let hl = ("device", "habanalabs-0000:3b:00.0");
    agent.wait_for("discovery", || agent.metric("accel_device_health", &[hl, ("state", "healthy")]) == Some(1.0));
    assert_eq!(agent.metric("accel_device_up", &[hl, ("kind", "pci-accel")]), Some(1.0));
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[hl]), Some(61.0));
    assert_eq!(
        agent.metric("accel_device_info", &[hl, ("driver", "habanalabs"), ("pci_address", "0000:3b:00.0")]),
        Some(1.0)
    );
    let photon = ("device", "photon-0000:5e:00.0");
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[photon]), Some(41.0));
    let devices = agent.get("/api/v1/devices").body;
    assert!(!devices.contains("0000:01:00.0"), "the NVMe drive is not an accelerator: {devices}");
    assert!(devices.contains("\"discovered\": true"));

    // The driver reports a reset: Offline, unhealthy, down.
    fs.write("devices/pci0000:00/0000:00:02.0/0000:3b:00.0/status", "In reset\n");
    agent.wait_for("Offline", || agent.metric("accel_device_condition", &[hl, ("condition", "Offline")]) == Some(1.0));
    assert_eq!(agent.metric("accel_device_up", &[hl]), Some(0.0));
    assert_eq!(agent.metric("accel_device_health", &[hl, ("state", "unhealthy")]), Some(1.0));
    let health = agent.get("/health");
    assert_eq!(health.status, 503);
    assert!(health.body.contains("driver status: In reset"), "{}", health.body);

    fs.write("devices/pci0000:00/0000:00:02.0/0000:3b:00.0/status", "Operational\n");
    agent.wait_for("back", || agent.metric("accel_device_health", &[hl, ("state", "healthy")]) == Some(1.0));
}

/// Regression: two hwmon chips named `loihi` on two boards; each device binds only the chip at its own
/// pci_address. The binding used to match name OR address, so both devices took both chips, exported
/// duplicate series and both went Overheating (with actions on, the cool board would be throttled).
#[test]
fn same_named_chips_bind_only_to_the_device_at_their_address() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/pci0000:00/0000:00:01.0")).attr("temp1_input", "95000");
    fs.hwmon(1, Some("loihi"), Some("devices/pci0000:00/0000:00:02.0")).attr("temp1_input", "40000");
    let config = r#"
poll_interval = "100ms"
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
pci_address = "0000:00:01.0"
[device.thresholds]
min_duration = "1s"
[[device]]
id = "loihi1"
kind = "loihi"
pci_address = "0000:00:02.0"
[device.thresholds]
min_duration = "1s"
"#;
    let (agent, _cfg) = Agent::with_config(fs.root(), config);
    agent.wait_ready();
    let overheating = |id| agent.metric("accel_device_condition", &[("device", id), ("condition", "Overheating")]);
    agent.wait_for("loihi0 overheating", || overheating("loihi0") == Some(1.0));
    agent.wait_for("loihi1 judged", || overheating("loihi1") == Some(0.0));

    let scrape = common::parse_metrics(&agent.get("/metrics").body);
    let temps = |id: &str| -> Vec<f64> {
        scrape.iter().filter(|s| s.is("accel_device_temperature_celsius", &[("device", id)])).map(|s| s.value).collect()
    };
    assert_eq!(temps("loihi0"), vec![95.0]);
    assert_eq!(temps("loihi1"), vec![40.0]);
    let device = agent.get("/api/v1/devices/loihi1").body;
    assert_eq!(json_str(&device, "state"), Some("healthy"), "{device}");
}
