//! The landing page and the device pages in a real headless browser (Debian's chromium) against the demo
//! host: the device table with state, throttle level, circuit and failing conditions, and the recent
//! events that only the page's script fills in (so they prove the refresh ran); a screenshot is saved
//! for a person to look at. An empty host's page says what was looked at and what to configure.

mod common;

use std::path::PathBuf;

use accel_sim::demo_host::DemoHost;
use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, chromium, element, require_tool};
use serde_json::Value;

fn rows(table: &str) -> Vec<&str> {
    let body = table.split_once("<tbody>").map_or("", |(_, b)| b);
    body.split("<tr>").skip(1).collect()
}

/// Polls `cond` for up to 30 s.
fn wait(what: &str, cond: impl FnMut() -> bool) {
    common::wait(what, 30, cond);
}

fn status(agent: &Agent) -> Value {
    serde_json::from_str(&agent.get("/api/v1/status").body).expect("status JSON")
}

fn device<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["devices"].as_array().unwrap().iter().find(|d| d["id"] == id).expect("device in status")
}

#[test]
#[cfg_attr(not(has_chromium), ignore = "needs chromium (Debian package chromium)")]
fn the_landing_page_in_a_real_browser_shows_devices_and_events_after_its_script_runs() {
    require_tool("chromium");
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    agent.wait_ready();
    // An incident: loihi0 overheats (degraded, an Overheating event) and is throttled a level per 2 s hold,
    // up to its top level 2, where it stays while it is hot.
    host.set_loihi_temp(86.0);
    wait("loihi0 degraded and at its top throttle level", || {
        let s = status(&agent);
        let d = device(&s, "loihi0");
        d["state"] == "degraded" && d["throttle_level"] == 2
    });
    wait("the event journaled", || {
        agent.get("/api/v1/events?device=loihi0&kind=condition_set").body.contains("Overheating")
    });

    // Served from the snapshot: the table is there without a browser, the events are not (yet).
    let plain = agent.get("/");
    assert_eq!(plain.status, 200);
    assert!(plain.headers["content-type"].starts_with("text/html"));
    assert_eq!(rows(element(&plain.body, "table", "devices")).len(), 8);
    assert!(element(&plain.body, "table", "events").contains("loaded by the page's script"));

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", agent.addr);
    let dom = chromium(profile.path(), &url, "--dump-dom", 8000);
    let refreshed: u32 = dom
        .split_once("data-refreshed=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("data-refreshed on <body>");
    assert!(refreshed >= 1, "the script refreshed the page ({refreshed} times)");
    assert!(dom.contains("updated "), "the page says when it was updated");

    let devices = rows(element(&dom, "table", "devices"));
    assert_eq!(devices.len(), 8, "every device of the demo host");
    let loihi = devices.iter().find(|r| r.contains("href=\"/devices/loihi0\"")).expect("a row for loihi0");
    for cell in ["s-degraded", "2/2", "<b>Overheating</b>", "86.0 °C"] {
        assert!(loihi.contains(cell), "{cell:?} in loihi0's row: {loihi}");
    }
    let photon = devices.iter().find(|r| r.contains("href=\"/devices/photon0\"")).expect("a row for photon0");
    assert!(photon.contains("closed"), "photon0's reconnect circuit: {photon}");

    let events = rows(element(&dom, "table", "events"));
    assert!(!events.is_empty(), "events filled in by the script");
    assert!(
        events
            .iter()
            .any(|r| r.contains("/devices/loihi0") && r.contains("condition_set") && r.contains("Overheating")),
        "loihi0's Overheating event among the recent events: {events:#?}"
    );
    assert!(!dom.contains("loaded by the page's script"), "the placeholder is replaced");
    for link in ["/health", "/api/v1/events", "/metrics"] {
        assert!(dom.contains(&format!("href=\"{link}\"")), "a link to {link}");
    }

    // A picture for a person to look at.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("landing-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(profile.path(), &url, &format!("--screenshot={}", shot.display()), 8000);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a PNG with content: {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());

    // Each device links to a readable page, which refreshes itself too.
    let dom = chromium(profile.path(), &format!("http://{}/devices/photon0", agent.addr), "--dump-dom", 7000);
    assert!(dom.contains("data-refreshed=\"1\""), "the device page refreshed once in 7 s");
    assert!(dom.contains("probe:photon-debug"), "photon0's sources name its probe");
    let readings = element(&dom, "table", "readings");
    assert!(readings.contains("45.0 °C") && readings.contains("38.50 W"), "{readings}");
    let conditions = rows(element(&dom, "table", "conditions"));
    // The six every device has, and DiagnosticFailed: photon0's calibration check is a level 2 diagnostic.
    assert_eq!(conditions.len(), 7, "every declared condition");
    assert!(conditions.iter().any(|r| r.contains("DiagnosticFailed")), "{conditions:?}");
    assert!(element(&dom, "table", "probes").contains("photon-debug"));
    let dom = chromium(profile.path(), &format!("http://{}/devices/loihi0", agent.addr), "--dump-dom", 1000);
    assert!(element(&dom, "ul", "actions").contains("throttle level 2/2"), "loihi0's throttle on its page");
    assert!(element(&dom, "table", "events").contains("Overheating"), "loihi0's events on its page");
}

#[test]
fn photonic_devices_say_where_their_readings_come_from() {
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    agent.wait_ready();
    let v: Value = serde_json::from_str(&agent.get("/api/v1/devices/photon0").body).unwrap();
    let sources: Vec<&str> = v["sources"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let log = format!("log:{}", host.log_path("photon0").display());
    assert_eq!(sources, ["probe:photon-debug", log.as_str()]);
    let missing = agent.get("/devices/photon9");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("href=\"/devices/photon0\""), "the 404 page lists the known devices");
}

#[test]
fn an_empty_host_says_what_was_looked_at_and_what_to_configure() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("acpitz"), None).attr("temp1_input", "40000");
    let (agent, _cfg) = Agent::with_config(fs.root(), "poll_interval = \"100ms\"\n");
    agent.wait_ready();
    let page = agent.get("/").body;
    let note = element(&page, "div", "empty");
    assert!(note.contains("No accelerator devices"), "{note}");
    assert!(note.contains("hwmon (1 found)"), "what was looked at: {note}");
    assert!(note.contains("[[device]]") && note.contains("agentctl reload"), "what to configure: {note}");
    assert!(page.contains("<h2>hwmon chips</h2>"), "the host sensors are still shown");
    assert!(page.contains("<table id=\"devices\" hidden>"), "no empty device table");
}
