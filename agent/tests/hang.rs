//! A sysfs file that blocks (a FIFO standing in for a hung driver) must make its collector report
//! failure while /metrics keeps answering with the other collectors' fresh values.

mod common;

use std::time::Duration;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

// The test swaps a file for a FIFO, which sysfs never does to an open attribute (a real hung read blocks
// on the descriptor the agent already holds); the agent sees the new file at its next rediscovery,
// every second here.
const CONFIG: &str = r#"
poll_interval = "200ms"
[collectors]
rediscover_interval = "1s"
[collectors.hwmon]
timeout = "100ms"
"#;

#[test]
fn a_hung_file_fails_its_collector_and_nothing_else() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("board"), Some("devices/platform/board.0"))
        .attr("temp1_input", "45000")
        .attr("temp2_input", "50000");
    fs.thermal_zone(0, "board_zone", 40000);
    let (agent, _cfg) = Agent::with_config(fs.root(), CONFIG);
    agent.wait_ready();
    let chip = ("chip", "platform_board_0");
    assert_eq!(agent.metric("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp2")]), Some(50.0));
    assert_eq!(agent.metric("accel_collector_success", &[("collector", "hwmon")]), Some(1.0));

    // The attribute becomes a FIFO: opening it blocks until a writer appears, which never happens.
    fs.fifo("devices/platform/board.0/hwmon/hwmon0/temp2_input");
    let mut slowest = Duration::ZERO;
    let mut scrape = |name: &str, labels: &[(&str, &str)]| {
        let r = agent.get("/metrics");
        assert_eq!(r.status, 200, "every scrape answers");
        slowest = slowest.max(r.elapsed);
        common::parse_metrics(&r.body).into_iter().find(|s| s.is(name, labels)).map(|s| s.value)
    };
    agent.wait_for("hwmon to report failure", || {
        scrape("accel_collector_success", &[("collector", "hwmon")]) == Some(0.0)
    });

    // Other collectors stay fresh.
    fs.write("devices/virtual/thermal/thermal_zone0/temp", "41500\n");
    agent.wait_for("a fresh thermal value", || {
        scrape("accel_thermal_zone_temp_celsius", &[("zone", "0"), ("type", "board_zone")]) == Some(41.5)
    });
    assert_eq!(scrape("accel_collector_success", &[("collector", "thermal_zone")]), Some(1.0));

    // The same collector's other files keep flowing once the hung one is quarantined; it stays absent.
    fs.write("devices/platform/board.0/hwmon/hwmon0/temp1_input", "46000\n");
    agent.wait_for("a fresh value from the other file of the hung chip", || {
        scrape("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp1")]) == Some(46.0)
    });
    assert_eq!(scrape("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp2")]), None, "absent, not 0");
    assert_eq!(scrape("accel_collector_success", &[("collector", "hwmon")]), Some(0.0), "still failing");
    assert_eq!(
        scrape("accel_collector_stuck_threads", &[("collector", "hwmon")]),
        Some(1.0),
        "one thread, not one per round"
    );
    assert!(scrape("accel_sysfs_read_errors_total", &[("collector", "hwmon"), ("reason", "hung")]).unwrap() >= 2.0);

    // The file is replaced by a working one: the collector recovers.
    fs.remove("devices/platform/board.0/hwmon/hwmon0/temp2_input");
    fs.write("devices/platform/board.0/hwmon/hwmon0/temp2_input", "47000\n");
    agent.wait_for("recovery", || {
        scrape("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp2")]) == Some(47.0)
            && scrape("accel_collector_success", &[("collector", "hwmon")]) == Some(1.0)
    });
    let health = agent.get("/-/healthy");
    assert_eq!(health.status, 200, "{}", health.body);
    eprintln!("slowest scrape while a read was hung: {slowest:?}");
}
