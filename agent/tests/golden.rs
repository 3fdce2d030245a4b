//! A full scrape of a fixed fake tree, compared line by line with agent/tests/golden/scrape.prom.
//! Run with UPDATE_GOLDEN=1 to rewrite the file after an intended change, and review the diff.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

/// Values that change from run to run are replaced so the comparison is about names, labels and values.
fn normalize(body: &str, root: &str) -> String {
    const VOLATILE: [&str; 4] = [
        "accel_collector_duration_seconds{",
        "accel_collector_last_success_timestamp_seconds{",
        "accel_build_info{",
        "accel_config_last_reload_success_timestamp_seconds ",
    ];
    body.lines()
        .map(|l| {
            let l = l.replace(root, "<ROOT>");
            if VOLATILE.iter().any(|v| l.starts_with(v)) {
                let series = l.rsplit_once(' ').map_or(l.as_str(), |(s, _)| s);
                let series = match series.find("revision=\"") {
                    Some(i) => format!("{}revision=\"<REV>\"}}", &series[..i]),
                    None => series.to_owned(),
                };
                format!("{series} <VOLATILE>")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn full_scrape_matches_the_golden_file() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("coretemp"), Some("devices/platform/coretemp.0"))
        .attr("temp1_input", "45000")
        .attr("temp1_max", "85000")
        .attr("temp1_crit", "100000")
        .attr("temp1_crit_alarm", "0")
        .attr("temp1_label", "Package id 0");
    fs.hwmon(1, Some("habanalabs"), Some("devices/pci0000:00/0000:00:02.0/0000:3b:00.0"))
        .attr("temp1_input", "61500")
        .attr("in0_input", "850")
        .attr("curr1_input", "12500")
        .attr("power1_average", "182000000")
        .attr("power1_cap", "350000000")
        .attr("energy1_input", "123456789000")
        .attr("fan1_input", "2400")
        .attr("fan1_target", "2500")
        .attr("pwm1", "128")
        .attr("update_interval", "1000");
    fs.hwmon(2, Some("loihi"), None).attr("temp1_input", "-5000");
    fs.thermal_zone(0, "x86_pkg_temp", 47000).trip_point(0, 0, "passive", 95000).trip_point(0, 1, "critical", 105000);
    fs.cooling_device(0, "Processor", 0, 10);
    fs.power_supply(
        "loihi2",
        &[("type", "Mains"), ("online", "1"), ("energy_now", "1250000"), ("power_now", "12500000")],
    );
    fs.powercap_zone("0", "package-0", 123_000_000, 262_143_328_850);
    fs.pci_device("0000:3b:00.0", &[("RxErr", 3), ("Bad TLP", 1)], &[("Undefined", 0)], &[("DLP", 0)]);

    // One collection per collector within the test: the first tick is immediate, the next an hour away.
    // Host resources read the real /proc, whose values change from run to run.
    let (agent, _cfg) = Agent::with_config(
        fs.root(),
        "poll_interval = \"1h\"\n[collectors]\nmax_open_files = 64\n[collectors.resources]\nenabled = false\n",
    );
    agent.wait_ready();
    let got = normalize(&agent.get("/metrics").body, fs.root().to_str().unwrap());
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/scrape.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(golden).expect("golden file (run with UPDATE_GOLDEN=1 to create)");
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("first difference at line {}:\n  got:  {g}\n  want: {w}", i + 1);
            }
        }
        panic!("scrape has {} lines, golden file {}", got.lines().count(), want.lines().count());
    }
}
