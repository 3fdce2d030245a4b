//! A device's recent history through the real agent on the demo host: loihi0 warms from its idle
//! temperature to 86 °C (above its warn line, 80 °C), is throttled to its top level, and all of it is in
//! `/api/v1/devices/loihi0/history?since=15m`, in the device page's server-rendered SVG (the 86 °C point
//! drawn above the warn line, looked at in a real browser, with a screenshot), in the landing page's
//! sparkline and in `agentctl device loihi0`.

mod common;

use std::path::PathBuf;

use accel_sim::demo_host::DemoHost;
use common::{Agent, agentctl, chromium, element, require_tool};
use serde_json::Value;

fn history(agent: &Agent, query: &str) -> Value {
    let r = agent.get(&format!("/api/v1/devices/loihi0/history{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).expect("history JSON")
}

fn throttled(agent: &Agent) -> bool {
    let v: Value = serde_json::from_str(&agent.get("/api/v1/status").body).unwrap();
    v["devices"].as_array().unwrap().iter().any(|d| d["id"] == "loihi0" && d["throttle_level"] == 2)
}

/// The loihi0 history once it has been hot and throttled for a few samples.
fn heated(host: &DemoHost, agent: &Agent) -> Value {
    agent.wait_ready();
    agent.wait_for("a few samples at the idle temperature", || {
        history(agent, "").get("samples").and_then(Value::as_array).is_some_and(|s| s.len() >= 3)
    });
    host.set_loihi_temp(86.0);
    agent.wait_for("loihi0 at its top throttle level", || throttled(agent));
    agent.wait_for("samples at 86 °C at the top level", || {
        history(agent, "?since=15m")["samples"].as_array().unwrap().iter().any(|s| {
            s["temperature_celsius"].as_object().unwrap().values().any(|t| t == 86.0) && s["throttle_level"] == 2
        })
    });
    history(agent, "?since=15m")
}

#[test]
fn the_history_api_has_readings_throttle_steps_and_marks() {
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    let h = heated(&host, &agent);
    assert_eq!(h["device"], "loihi0");
    assert_eq!(
        (h["temperature_warn_celsius"].as_f64(), h["temperature_crit_celsius"].as_f64()),
        (Some(80.0), Some(90.0))
    );
    assert_eq!(h["span_seconds"], 3600.0, "the default span");
    assert_eq!(h["resolution_seconds"], 1.0, "the demo's poll interval");
    let since = h["since_unix"].as_f64().unwrap();
    let now = h["now_unix"].as_f64().unwrap();
    assert!((now - since - 900.0).abs() < 1e-6, "since=15m is 15 minutes back: {since} .. {now}");

    let samples = h["samples"].as_array().unwrap();
    let temps: Vec<f64> = samples
        .iter()
        .filter_map(|s| {
            s["temperature_celsius"].as_object().unwrap().values().filter_map(Value::as_f64).reduce(f64::max)
        })
        .collect();
    assert!(temps.first().is_some_and(|t| *t < 80.0), "it started below the warn line: {temps:?}");
    assert_eq!(temps.last(), Some(&86.0), "{temps:?}");
    let times: Vec<f64> = samples.iter().map(|s| s["time_unix"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 0.8 - 1e-9), "no two samples closer than 4/5 of 1 s: {times:?}");
    let levels: Vec<u64> = samples.iter().filter_map(|s| s["throttle_level"].as_u64()).collect();
    assert_eq!(levels.first(), Some(&0), "{levels:?}");
    assert_eq!(levels.last(), Some(&2), "{levels:?}");
    assert!(levels.contains(&1), "it stepped through level 1: {levels:?}");
    assert!(samples.iter().any(|s| s["state"] == "degraded"));

    let marks = h["marks"].as_array().unwrap();
    let text = |kind: &str| -> Vec<&str> {
        marks.iter().filter(|m| m["kind"] == kind).map(|m| m["text"].as_str().unwrap()).collect()
    };
    assert!(text("condition_set").iter().any(|t| t.starts_with("Overheating set")), "{marks:#?}");
    assert_eq!(text("throttle"), ["throttle 0 → 1", "throttle 1 → 2"], "{marks:#?}");

    // A window narrower than the samples, and answers to what cannot be answered.
    let recent = history(&agent, "?since=1s");
    assert!(recent["samples"].as_array().unwrap().len() < samples.len());
    assert_eq!(agent.get("/api/v1/devices/loihi0/history?since=soon").status, 400);
    assert_eq!(agent.get("/api/v1/devices/loihi9/history").status, 404);

    // The landing page's sparkline and agentctl's, from the same history.
    let status: Value = serde_json::from_str(&agent.get("/api/v1/status").body).unwrap();
    let loihi = status["devices"].as_array().unwrap().iter().find(|d| d["id"] == "loihi0").unwrap();
    let recent = loihi["temperature_recent_celsius"].as_array().unwrap();
    assert_eq!(recent.len(), 45);
    assert_eq!(recent.last().and_then(Value::as_f64), Some(86.0), "{recent:?}");
    assert!(recent.first().unwrap().is_null(), "15 minutes ago the agent was not running: a gap, not 0");
    let page = agent.get("/").body;
    assert!(page.contains("<svg class=\"spark\""), "a sparkline on the landing page");
    let (_, out, err) = agentctl(&agent, &["device", "loihi0"]);
    let line =
        out.lines().find(|l| l.starts_with("temperature, last 15 min: ")).unwrap_or_else(|| panic!("{out}{err}"));
    assert!(line.ends_with("–86.0 °C; warn 80.0, critical 90.0)"), "{line}");
    let spark: Vec<char> = line["temperature, last 15 min: ".len()..].split(" (").next().unwrap().chars().collect();
    assert_eq!(spark.len(), 30, "one character per 30 s: {line}");
    assert_eq!(spark[0], ' ', "15 minutes ago the agent was not running: a gap: {line}");
    assert_ne!(spark[29], ' ', "the last 30 s were read: {line}");
}

#[test]
#[cfg_attr(not(has_chromium), ignore = "needs chromium (Debian package chromium)")]
fn the_device_page_draws_the_hot_point_above_the_warn_line_in_a_real_browser() {
    require_tool("chromium");
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    heated(&host, &agent);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/devices/loihi0", agent.addr);
    let dom = chromium(profile.path(), &url, "--dump-dom", 1000);
    let svg = element(&dom, "svg", "history");
    let attr = |tag: &str, name: &str| -> f64 {
        let key = format!(" {name}=\"");
        let start = tag.find(&key).unwrap_or_else(|| panic!("no {name} in {tag}")) + key.len();
        tag[start..].split('"').next().unwrap().parse().unwrap()
    };
    let tag_with = |needle: &str| -> &str {
        let start = svg.find(needle).unwrap_or_else(|| panic!("no {needle} in the plot"));
        let open = svg[..start].rfind('<').unwrap();
        &svg[open..open + svg[open..].find('>').unwrap()]
    };
    let warn = tag_with("id=\"warn-line\"");
    let crit = tag_with("id=\"crit-line\"");
    let point = tag_with("data-celsius=\"86.0\"");
    assert!(point.starts_with("<circle"), "{point}");
    let (warn_y, crit_y, point_y) = (attr(warn, "y1"), attr(crit, "y1"), attr(point, "cy"));
    // SVG y grows downwards: above the warn line is a smaller y; 86 °C is below the critical 90 °C.
    assert!(point_y < warn_y, "86 °C at y {point_y} is above the warn line at y {warn_y}");
    assert!(point_y > crit_y, "86 °C at y {point_y} is below the critical line at y {crit_y}");
    assert!(svg.contains("class=\"throttle\""), "the throttle steps");
    assert!(svg.contains("class=\"mark mark-throttle\"") && svg.contains("class=\"mark mark-condition_set\""));
    assert!(svg.contains("class=\"tick\""), "time along the axis");
    assert!(!dom.contains("src=\"http") && !dom.contains("href=\"http"), "nothing loaded from the network");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("device-history.png");
    let _ = std::fs::remove_file(&shot);
    chromium(profile.path(), &url, &format!("--screenshot={}", shot.display()), 1000);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a PNG with content: {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
}
