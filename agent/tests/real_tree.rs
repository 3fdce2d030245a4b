//! The agent against the real captured sysfs tree (sim/fixtures/real-sysfs.txt), with node_exporter
//! and promtool as references.

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, Sample, http_get, parse_metrics, promtool_check, require_tool};

fn scrape_agent(tree: &std::path::Path) -> (Agent, Vec<Sample>, String) {
    let agent = Agent::start(&["--sysfs-root", tree.to_str().unwrap()]);
    agent.wait_ready();
    let body = agent.get("/metrics").body;
    (agent, parse_metrics(&body), body)
}

/// node_exporter's series with the accel_ name its twin must have (DESIGN.md fixes two names that differ).
fn twin_name(node_name: &str) -> String {
    match node_name {
        "node_thermal_zone_temp" => "accel_thermal_zone_temp_celsius".to_owned(),
        n => format!("accel_{}", n.strip_prefix("node_").unwrap()),
    }
}

#[test]
#[cfg_attr(not(has_node_exporter), ignore = "node_exporter is not installed (Debian package prometheus-node-exporter)")]
fn every_node_exporter_series_has_an_accel_twin_with_the_same_labels_and_value() {
    require_tool("prometheus-node-exporter");
    let tree = accel_sim::sysfs_tree::real_sysfs();
    let (_agent, ours, _) = scrape_agent(tree.path());

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut ne = Command::new("prometheus-node-exporter")
        .arg(format!("--path.sysfs={}", tree.path().display()))
        .args(["--collector.disable-defaults", "--collector.hwmon", "--collector.thermal_zone"])
        .args(["--collector.powersupplyclass", "--collector.rapl"])
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            break http_get(addr, "/metrics", &[], Duration::from_secs(5)).body;
        }
        assert!(Instant::now() < deadline, "node_exporter did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = ne.kill();
    let _ = ne.wait();

    let theirs: Vec<Sample> = parse_metrics(&body)
        .into_iter()
        .filter(|s| {
            ["node_hwmon_", "node_thermal_zone_temp", "node_cooling_device_", "node_power_supply_", "node_rapl_"]
                .iter()
                .any(|p| s.name.starts_with(p))
                && s.name != "node_power_supply_info"
        })
        .collect();
    assert!(theirs.len() > 100, "node_exporter read the tree: {} series", theirs.len());

    // node_exporter 1.5 gives chips that share a name the same `chip` label (and then drops all but one
    // of their colliding series); sysfs.md's naming suffixes them. Such a twin is one of the suffixed chips.
    let our_chips: HashSet<&str> =
        ours.iter().filter(|s| s.name.starts_with("accel_hwmon_")).filter_map(|s| s.label("chip")).collect();
    let chip_matches = |theirs: &str, ours: &str| {
        ours == theirs || (!our_chips.contains(theirs) && ours.strip_prefix(theirs).is_some_and(|r| r.starts_with('_')))
    };

    let mut missing = Vec::new();
    for t in &theirs {
        let name = twin_name(&t.name);
        let found = ours.iter().any(|o| {
            o.name == name
                && o.value == t.value
                && o.labels.len() == t.labels.len()
                && t.labels.iter().all(|(k, v)| match k.as_str() {
                    "chip" => o.label("chip").is_some_and(|c| chip_matches(v, c)),
                    // Same node name unless the clash suffix moved it; checked through `chip` above.
                    "chip_name" => o.label("chip_name") == Some(v),
                    _ => o.label(k) == Some(v),
                })
        });
        if !found {
            missing.push(format!("{} {:?} {}", t.name, t.labels, t.value));
        }
    }
    assert!(missing.is_empty(), "series without an accel_ twin:\n{}", missing.join("\n"));
}

#[test]
fn known_values_of_the_real_tree() {
    let tree = accel_sim::sysfs_tree::real_sysfs();
    let (_agent, s, _) = scrape_agent(tree.path());
    let v = |name: &str, labels: &[(&str, &str)]| s.iter().find(|x| x.is(name, labels)).map(|x| x.value);
    assert_eq!(v("accel_hwmon_temp_celsius", &[("chip", "platform_coretemp_0"), ("sensor", "temp1")]), Some(55.0));
    assert_eq!(v("accel_hwmon_temp_max_celsius", &[("chip", "platform_coretemp_1"), ("sensor", "temp5")]), Some(84.0));
    assert_eq!(v("accel_hwmon_in_volts", &[("chip", "nct6779"), ("sensor", "in0")]), Some(0.792));
    assert_eq!(v("accel_hwmon_fan_rpm", &[("chip", "platform_applesmc_768"), ("sensor", "fan2")]), Some(1998.0));
    assert_eq!(v("accel_hwmon_temp_celsius", &[("chip", "ieee80211_phy0_mt7996_phy0_1")]), Some(56.0));
    assert_eq!(v("accel_thermal_zone_temp_celsius", &[("zone", "0"), ("type", "cpu-thermal")]), Some(12.376));
    assert_eq!(v("accel_cooling_device_max_state", &[("name", "0"), ("type", "Processor")]), Some(3.0));
    assert_eq!(v("accel_power_supply_energy_watthour", &[("power_supply", "BAT0")]), Some(36.58));
    assert_eq!(v("accel_power_supply_online", &[("power_supply", "AC")]), Some(0.0));
    assert_eq!(
        v("accel_powercap_energy_joules_total", &[("zone", "intel-rapl:0"), ("name", "package-0")]),
        Some(240422.366267)
    );
    assert_eq!(
        v("accel_powercap_power_limit_watts", &[("zone", "intel-rapl:0"), ("constraint", "long_term")]),
        Some(4090.0)
    );
    // An NVMe drive and a NIC with AER, both at 0 and neither an accelerator: totals only by default.
    for address in ["0000:01:00.0", "0000:45:00.0"] {
        for severity in ["correctable", "nonfatal", "fatal"] {
            let total = v("accel_pci_aer_device_errors_total", &[("pci_address", address), ("severity", severity)]);
            assert_eq!(total, Some(0.0), "{address} {severity}");
        }
    }
    assert_eq!(v("accel_pci_aer_errors_total", &[]), None, "no per-error series for quiet non-accelerators");
    for c in ["hwmon", "thermal_zone", "cooling_device", "power_supply", "powercap", "pci_aer"] {
        assert_eq!(v("accel_collector_success", &[("collector", c)]), Some(1.0), "collector {c}");
        assert!(v("accel_collector_last_success_timestamp_seconds", &[("collector", c)]).unwrap() > 1.7e9);
    }
    // applesmc's fan*_safe files hold text, not numbers: counted, not exported as 0.
    assert_eq!(v("accel_sysfs_read_errors_total", &[("collector", "hwmon"), ("reason", "parse")]), Some(2.0));
    assert_eq!(v("accel_hwmon_fan_safe", &[]), None);
    assert!(v("accel_build_info", &[("version", env!("CARGO_PKG_VERSION"))]).is_some());
}

#[test]
#[cfg_attr(not(has_promtool), ignore = "promtool is not installed (Debian package prometheus)")]
fn promtool_finds_nothing_to_report_in_a_scrape_of_the_real_tree() {
    require_tool("promtool");
    let tree = accel_sim::sysfs_tree::real_sysfs();
    let (_agent, _, body) = scrape_agent(tree.path());
    let (ok, report) = promtool_check(&body);
    assert!(ok && report.trim().is_empty(), "promtool check metrics reported:\n{report}");
}

#[test]
fn text_format_by_default_and_openmetrics_when_asked() {
    let tree = accel_sim::sysfs_tree::real_sysfs();
    let agent = Agent::start(&["--sysfs-root", tree.path().to_str().unwrap()]);
    agent.wait_ready();
    let text = agent.get("/metrics");
    assert_eq!(text.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.body.contains("# TYPE accel_pci_aer_device_errors_total counter\n"));
    assert!(!text.body.contains("# EOF"));
    let om = agent.get_with(
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")],
    );
    assert_eq!(om.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(om.body.contains("# TYPE accel_pci_aer_device_errors counter\n"));
    assert!(om.body.ends_with("# EOF\n"));
    // Same samples either way.
    assert_eq!(parse_metrics(&text.body).len(), parse_metrics(om.body.trim_end_matches("# EOF\n")).len());
    // Compressed when asked, as Prometheus asks; the same bytes once inflated.
    let gz = agent.get_with("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.headers["content-encoding"], "gzip");
    assert_eq!(gz.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let mut inflated = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.raw[..]), &mut inflated).unwrap();
    assert_eq!(inflated, text.body);
    assert!(gz.raw.len() * 5 < text.body.len(), "{} compressed vs {} plain", gz.raw.len(), text.body.len());
    let page = agent.get("/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<td>platform_coretemp_0</td>"), "landing page lists the chips");
    assert!(page.body.contains("<td>intel-rapl:0</td>"), "and the powercap zones");
    assert_eq!(agent.get("/nope").status, 404);
}

/// Regression: on the real tree, `hwmon = "coretemp"` matches both sockets' chips, whose sensors share
/// names ("Core 0" on each); the device's series used to be duplicated. Each sensor now names its chip.
#[test]
fn a_name_matching_two_chips_gives_distinct_series() {
    let tree = accel_sim::sysfs_tree::real_sysfs();
    let config = "[discovery]\nenabled = false\n[[device]]\nid = \"cpu\"\nkind = \"generic\"\nhwmon = \"coretemp\"\n";
    let (agent, _cfg) = Agent::with_config(tree.path(), config);
    agent.wait_ready();
    agent.wait_for("the device's temperatures", || {
        agent.get("/metrics").body.contains("accel_device_temperature_celsius{device=\"cpu\"")
    });
    let samples = parse_metrics(&agent.get("/metrics").body);
    let sensors: Vec<&str> = samples
        .iter()
        .filter(|s| s.is("accel_device_temperature_celsius", &[("device", "cpu")]))
        .filter_map(|s| s.label("sensor"))
        .collect();
    let distinct: HashSet<&str> = sensors.iter().copied().collect();
    assert_eq!(sensors.len(), distinct.len(), "duplicate series: {sensors:?}");
    assert!(sensors.iter().any(|s| s.starts_with("platform_coretemp_0/")), "{sensors:?}");
    assert!(sensors.iter().any(|s| s.starts_with("platform_coretemp_1/")), "{sensors:?}");
}
