//! Names the agent does not choose, against the real agent: hwmon attribute file names with a newline, a
//! backslash, a quote, bytes that are not UTF-8, `-` next to `_`, and very long ones; and discovered chips
//! whose `name` file holds a space or URL characters (issue 23, items 5 and 9c).
//!
//! The scrape of such a tree must be valid exposition (promtool and a real Prometheus accept it) with no
//! series twice, and a discovered device must be addressable by the id the agent lists.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, promtool_check, require_tool};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");

/// The long attribute name: 6 + 246 = 252 bytes, within the 255 a file name may have.
fn long_attr() -> String {
    format!("temp6_{}", "long".repeat(61) + "xx")
}

/// A chip whose attribute file names break a naive exposition. Rediscovery is an hour apart, so each
/// conflict is counted exactly once while the test runs.
fn hostile_tree() -> FakeSysfs {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("odd \"chip\" \\"), Some("devices/platform/odd.0"));
    chip.attr("temp1_input", "40000")
        // Label values with a quote, a backslash and a newline inside.
        .attr("temp1_label", "die \"A\" \\ 1\nsecond line")
        .attr("temp1_foo\nbar", "51000")
        .attr("temp2_back\\slash", "52000")
        .attr("temp3_quo\"te", "53000")
        // Both clean to accel_hwmon_temp_foo_bar_celsius{sensor="temp4"}: the kernel's spelling wins.
        .attr("temp4_foo_bar", "41000")
        .attr("temp4_foo-bar", "99000")
        .attr(&long_attr(), "56000")
        // Nothing is left of `-` once cleaned: no metric name can be made from it.
        .attr("temp7_-", "57000");
    // A name that is not UTF-8.
    std::fs::write(fs.path(chip.dir()).join(std::ffi::OsStr::from_bytes(b"temp5_\xff\xfe_input")), "55000\n")
        .expect("write a non-UTF-8 file name");
    fs
}

const CONFIG: &str = "poll_interval = \"100ms\"\n[collectors]\nrediscover_interval = \"1h\"\n";

fn scrape(agent: &Agent) -> String {
    let r = agent.get("/metrics");
    assert_eq!(r.status, 200);
    r.body
}

/// Every sample line's name and labels, which must be unique in a valid exposition.
fn duplicate_series(body: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .filter(|series| !seen.insert(series.clone()))
        .collect()
}

fn wait_scraped(agent: &Agent) {
    agent.wait_ready();
    // Looked for as text: the scrape is not trusted to parse until the checks below.
    agent.wait_for("the hwmon chip in the scrape", || {
        scrape(agent).contains("accel_hwmon_temp_celsius{chip=\"platform_odd_0\",sensor=\"temp1\"} 40.0")
    });
}

#[test]
fn attribute_names_from_a_hostile_tree_give_one_valid_series_each() {
    let fs = hostile_tree();
    let (agent, _cfg) = Agent::with_config(fs.root(), CONFIG);
    wait_scraped(&agent);
    let body = scrape(&agent);

    let dups = duplicate_series(&body);
    assert!(dups.is_empty(), "series exported twice: {dups:?}");
    // Every comment line is a HELP or TYPE line of a valid name: a newline in a help text would start a
    // line of its own.
    for line in body.lines() {
        let name = match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["#", "HELP" | "TYPE", name, ..] => name.to_string(),
            ["#", ..] => panic!("not an exposition line: {line:?}"),
            _ => line.split(['{', ' ']).next().unwrap_or_default().to_owned(),
        };
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
        assert!(valid && !name.is_empty(), "invalid metric name {name:?} in {line:?}");
    }

    let hw = |metric: &str, sensor: &str| agent.metric(metric, &[("chip", "platform_odd_0"), ("sensor", sensor)]);
    assert_eq!(hw("accel_hwmon_temp_foo_bar_celsius", "temp1"), Some(51.0), "a newline cleans to _");
    assert_eq!(hw("accel_hwmon_temp_back_slash_celsius", "temp2"), Some(52.0));
    assert_eq!(hw("accel_hwmon_temp_quo_te_celsius", "temp3"), Some(53.0));
    assert_eq!(hw("accel_hwmon_temp_foo_bar_celsius", "temp4"), Some(41.0), "temp4_foo_bar wins over temp4_foo-bar");
    assert_eq!(hw(&format!("accel_hwmon_{}_celsius", long_attr().replacen("6_", "_", 1)), "temp6"), Some(56.0));
    // The 55 °C of temp5 is looked for among the hwmon samples' values only: the host's own series (CPU
    // seconds, memory) are real and may hold "55.0" anywhere.
    let hwmon_55 = body.lines().filter(|l| l.starts_with("accel_hwmon_") && l.ends_with(" 55.0")).count();
    assert!(!body.contains("temp7") && hwmon_55 == 0, "no series from unusable names:\n{body}");
    assert!(
        body.contains(r#"label="die \"A\" \\ 1\nsecond line""#),
        "label value escaped:\n{}",
        body.lines().filter(|l| l.contains("sensor_label")).collect::<Vec<_>>().join("\n")
    );

    let errors =
        |reason: &str| agent.metric("accel_sysfs_read_errors_total", &[("collector", "hwmon"), ("reason", reason)]);
    assert_eq!(errors("name_conflict"), Some(1.0), "temp4_foo-bar lost to temp4_foo_bar");
    assert_eq!(errors("bad_name"), Some(2.0), "temp5_<not UTF-8>_input and temp7_-");
    // The same in OpenMetrics, where the help text escapes quotes as well.
    let om = agent.get_with("/metrics", &[("Accept", "application/openmetrics-text; version=1.0.0")]);
    assert!(om.body.ends_with("# EOF\n"));
    assert!(duplicate_series(&om.body.replace("# EOF\n", "")).is_empty());
}

#[test]
#[cfg_attr(not(has_promtool), ignore = "promtool is not installed (Debian package prometheus)")]
fn promtool_accepts_the_scrape_of_a_hostile_tree() {
    require_tool("promtool");
    let fs = hostile_tree();
    let (agent, _cfg) = Agent::with_config(fs.root(), CONFIG);
    wait_scraped(&agent);
    let body = scrape(&agent);
    let (ok, report) = promtool_check(&body);
    assert!(ok && report.trim().is_empty(), "promtool check metrics reported:\n{report}");
}

#[test]
#[cfg_attr(not(has_prometheus), ignore = "prometheus is not installed (Debian package prometheus)")]
fn a_real_prometheus_scrapes_a_hostile_tree() {
    require_tool("prometheus");
    let fs = hostile_tree();
    let (agent, _cfg) = Agent::with_config(fs.root(), CONFIG);
    wait_scraped(&agent);

    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: accel-agent\n    static_configs:\n      - targets: ['{}']\n",
            agent.addr
        ),
    )
    .expect("write prometheus.yml");
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let addr = format!("127.0.0.1:{port}").parse().expect("address");
    let query = |q: &str| -> Option<String> {
        let path = format!("/api/v1/query?query={}", q.replace('{', "%7B").replace('}', "%7D").replace('"', "%22"));
        let r = common::http_get(addr, &path, &[], Duration::from_secs(5));
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["result"][0]["value"][1].as_str().map(str::to_owned)
    };
    // Wait for the first scrape to be recorded, successful or not: `up` exists either way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut up = None;
    while Instant::now() < deadline && up.is_none() {
        if TcpStream::connect(addr).is_ok() {
            up = query("up{job=\"accel-agent\"}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let value = query("accel_hwmon_temp_foo_bar_celsius{sensor=\"temp4\"}");
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(up.as_deref(), Some("1"), "Prometheus scrapes the target successfully");
    assert_eq!(value.as_deref(), Some("41"), "and stores the winning file's value");
}

fn ctl(agent: &Agent, args: &[&str]) -> (i32, String) {
    let out = Command::new(CTL)
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(args)
        .output()
        .expect("run agentctl");
    (out.status.code().expect("exit code"), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_discovered_device_with_an_odd_name_is_addressable() {
    let fs = FakeSysfs::new();
    // Two accelerators known by PCI class and an hwmon chip each, whose `name` files hold a space, and a
    // slash, a question mark and a non-ASCII letter.
    for (n, addr, name) in [(0, "0000:5e:00.0", "my accel"), (1, "0000:5f:00.0", "odd/näme?#")] {
        let dev = format!("devices/pci0000:00/0000:00:04.0/{addr}");
        fs.write(&format!("{dev}/class"), "0x120000\n");
        fs.hwmon(n, Some(name), Some(&dev)).attr("temp1_input", "41000");
    }
    let (agent, _cfg) = Agent::with_config(fs.root(), "poll_interval = \"100ms\"\n");
    agent.wait_ready();
    let ids = ["my_accel-0000:5e:00.0", "odd_n_me__-0000:5f:00.0"];
    let devices = || -> Value { serde_json::from_str(&agent.get("/api/v1/devices").body).expect("JSON") };
    agent.wait_for("both discovered", || devices().as_array().is_some_and(|l| l.len() == 2));
    let list = devices();
    let listed: Vec<&str> =
        list.as_array().expect("a list").iter().filter_map(|d| d["id"].as_str()).collect::<Vec<_>>();
    assert_eq!(listed, ids, "the sanitised ids are listed");

    for (id, raw) in ids.iter().zip(["my accel", "odd/näme?#"]) {
        let api = agent.get(&format!("/api/v1/devices/{id}"));
        assert_eq!(api.status, 200, "{id}: {}", api.body);
        let d: Value = serde_json::from_str(&api.body).expect("JSON");
        assert_eq!(d["id"], *id);
        assert_eq!(d["discovered_name"], raw, "the name discovery found is kept");
        let page = agent.get(&format!("/devices/{id}"));
        assert_eq!(page.status, 200, "{id}");
        assert!(page.body.contains(&format!("found by discovery as “{raw}”")), "the page shows {raw:?}");
        let (code, out) = ctl(&agent, &["device", id]);
        assert!((0..=2).contains(&code), "agentctl device {id} exited {code}: {out}");
        assert!(out.contains(id), "{out}");
    }
}
