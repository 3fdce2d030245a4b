//! End to end: the real accel-agent and agentctl binaries against the simulated accelerator host of
//! `--demo` (accel_sim::demo_host), asserting what an operator sees after each step: metrics, /health,
//! agentctl status, journal events, values written to and restored in the fake tree, reconnect attempts,
//! and a real Prometheus server scraping the agent.
//!
//! The suite lives in the agent crate because Cargo gives only a package's own tests the paths of its
//! binaries; the simulated host and the simulators come from the `tests/` crate.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use accel_sim::demo_host::DemoHost;
use common::{Agent, require_tool, wait};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");

fn start(host: &DemoHost) -> (Agent, tempfile::TempDir) {
    let (agent, cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    agent.wait_ready();
    (agent, cfg)
}

fn status(agent: &Agent) -> Value {
    let out = Command::new(CTL)
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(["--json", "status"])
        .output()
        .expect("run agentctl");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("agentctl status: {e}: {:?}", out))
}

fn state_of(agent: &Agent, id: &str) -> String {
    let s = status(agent);
    let d = s["devices"].as_array().unwrap().iter().find(|d| d["id"] == id).cloned();
    d.map_or("absent".into(), |d| d["state"].as_str().unwrap_or("?").to_owned())
}

#[test]
fn the_demo_host_story_as_an_operator_sees_it() {
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = start(&host);
    let loihi = ("device", "loihi0");
    wait("everything read", 20, || status(&agent)["status"] == "healthy");
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[loihi, ("sensor", "temp1")]), Some(55.0));
    assert_eq!(agent.get("/health").status, 200);

    // 1. loihi0 heats up: Overheating, throttled through the cooling device, released when cool again.
    host.set_loihi_temp(86.0);
    wait("degraded", 20, || state_of(&agent, "loihi0") == "degraded");
    wait("throttled", 20, || host.cooling_state() == Some(3));
    wait("level 1", 10, || agent.metric("accel_throttle_level", &[loihi]) == Some(1.0));
    let row = status(&agent)["devices"].as_array().unwrap().iter().find(|d| d["id"] == "loihi0").cloned().unwrap();
    assert_eq!(row["failing"][0]["reason"], "TemperatureAboveWarning");
    host.set_loihi_temp(60.0);
    wait("released", 30, || host.cooling_state() == Some(0));
    wait("level 0", 10, || agent.metric("accel_throttle_level", &[loihi]) == Some(0.0));
    wait("healthy", 20, || state_of(&agent, "loihi0") == "healthy");
    assert!(agent.metric("accel_throttle_transitions_total", &[loihi, ("direction", "up")]).unwrap() >= 1.0);
    assert!(agent.events("device=loihi0&kind=action").contains("throttle level 0 -> 1"));

    // 2. photon1 goes offline: unhealthy, /health 503, reconnected by its vendor command, counted.
    host.photon_online("photon1", false).unwrap();
    wait("offline", 20, || state_of(&agent, "photon1") == "unhealthy");
    assert_eq!(agent.get("/health").status, 503);
    wait("reconnected", 30, || host.photon_is_online("photon1") && state_of(&agent, "photon1") == "healthy");
    let p1 = ("device", "photon1");
    wait("attempt counted", 20, || {
        agent.metric("accel_reconnect_attempts_total", &[p1, ("step", "vendor"), ("result", "recovered")]) == Some(1.0)
    });
    assert_eq!(agent.get("/health").status, 200);
    assert!(agent.events("device=photon1").contains("back online after reconnect step vendor"));

    // 3. A burst of error lines in photon0's log: LogErrors until "link recovered". Its calibration has
    // drifted: LogErrors runs the calibration check, which fails; the remedy recalibrates, it passes.
    host.photon_drift("photon0", 72.0).unwrap();
    host.append_log("photon0", &["ERROR: waveguide phase drift on channel 3"; 6]).unwrap();
    let p0 = ("device", "photon0");
    wait("LogErrors", 20, || agent.metric("accel_device_condition", &[p0, ("condition", "LogErrors")]) == Some(1.0));
    assert_eq!(agent.metric("accel_log_matches_total", &[p0, ("rule", "error-burst")]), Some(6.0));
    let verify = [p0, ("diagnostic", "calibration-verify"), ("level", "2")];
    wait("the calibration check", 30, || agent.metric("accel_diagnostic_success", &verify) == Some(1.0));
    let diagnostics = agent.events("device=photon0&kind=diagnostic");
    assert!(diagnostics.contains("started on LogErrors"), "{diagnostics}");
    assert!(diagnostics.contains("/drift_ppm = 72 above the maximum 50; remedy ran; trying again"), "{diagnostics}");
    assert!(diagnostics.contains("diagnostic calibration-verify (level 2) passed"), "{diagnostics}");
    host.append_log("photon0", &["link recovered"]).unwrap();
    wait("cleared", 20, || agent.metric("accel_device_condition", &[p0, ("condition", "LogErrors")]) == Some(0.0));

    // 4. SpiNNaker board 3 stops booting: power cycles through the BMP, then the circuit opens.
    host.board3_boots(false);
    let b3 = ("device", "spin5-c0-f0-b3");
    wait("not booted", 20, || agent.metric("accel_device_up", &[b3]) == Some(0.0));
    let cycles = host.bmp.wait_power_commands(4, Duration::from_secs(40));
    assert!(cycles.len() >= 4, "two power cycles: {cycles:?}");
    assert!(cycles.iter().all(|c| c.mask == 1 << 3 && c.board == 0));
    wait("circuit open", 40, || agent.metric("accel_reconnect_circuit_state", &[b3]) == Some(2.0));
    assert!(
        agent.metric("accel_reconnect_attempts_total", &[b3, ("step", "power_cycle"), ("result", "failed")]).unwrap()
            >= 2.0
    );
    assert!(agent.events("device=spin5-c0-f0-b3").contains("the reconnect circuit opened"));
    host.board3_boots(true);
    wait("booted", 20, || agent.metric("accel_device_up", &[b3]) == Some(1.0));

    // The journal kept all of it, in order.
    let all: Value = serde_json::from_str(&agent.events("limit=1000")).unwrap();
    let kinds: Vec<&str> = all.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"condition_set") && kinds.contains(&"condition_cleared") && kinds.contains(&"action"));
}

#[test]
#[cfg_attr(not(has_prometheus), ignore = "prometheus is not installed (Debian package prometheus)")]
fn a_real_prometheus_scrapes_the_agent() {
    require_tool("prometheus");
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = start(&host);
    host.set_loihi_temp(61.5);
    wait("61.5", 20, || agent.metric("accel_device_temperature_celsius", &[("device", "loihi0")]) == Some(61.5));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: accel-agent\n    static_configs:\n      - targets: ['{}']\n",
            agent.addr
        ),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    wait("prometheus listening", 30, || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let query = |q: &str| -> Option<Value> {
        let path = format!("/api/v1/query?query={}", q.replace('{', "%7B").replace('}', "%7D").replace('"', "%22"));
        let r = common::http_get(format!("127.0.0.1:{port}").parse().unwrap(), &path, &[], Duration::from_secs(5));
        (r.status == 200).then(|| serde_json::from_str(&r.body).ok()).flatten()
    };
    let mut value = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && value.is_none() {
        value = query("accel_device_temperature_celsius{device=\"loihi0\",sensor=\"temp1\"}")
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()));
        std::thread::sleep(Duration::from_millis(500));
    }
    let up =
        query("up{job=\"accel-agent\"}").and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(str::to_owned));
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(value, Some(61.5), "Prometheus returns the device temperature");
    assert_eq!(up.as_deref(), Some("1"), "the scrape succeeds");
}

#[test]
fn faults_are_contained_and_nothing_is_lost() {
    let host = DemoHost::build().unwrap();
    // The test replaces a file with a FIFO; sysfs never swaps an attribute's inode under an open
    // descriptor, so the agent sees the new one at its next rediscovery: every second here, not every minute.
    let config = format!("{}\n[collectors]\nrediscover_interval = \"1s\"\n", host.config("127.0.0.1:0"));
    let (agent, cfg) = Agent::with_config(host.sysfs.root(), &config);
    agent.wait_ready();
    wait("healthy", 20, || status(&agent)["status"] == "healthy");
    let hl = ("device", "hl0");
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[hl, ("sensor", "temp1")]), Some(52.0));

    // A sysfs file replaced by a FIFO (a read that would hang): scrapes keep answering, the file is
    // quarantined and counted, the rest of the collector keeps working.
    let temp = "devices/pci0000:00/0000:00:02.0/0000:3b:00.0/hwmon/hwmon1/temp1_input";
    host.sysfs.fifo(temp);
    wait("hung read counted", 20, || {
        agent.metric("accel_sysfs_read_errors_total", &[("collector", "hwmon"), ("reason", "hung")]).unwrap_or(0.0)
            >= 1.0
    });
    for _ in 0..5 {
        assert_eq!(agent.get("/metrics").status, 200);
    }
    assert!(agent.metric("accel_device_power_watts", &[hl]).is_some(), "the chip's other files are still read");

    // A chip removed mid-run: its readings disappear (absent, not 0) and the agent carries on.
    host.sysfs.remove("devices/pci0000:00/0000:00:02.0/0000:3b:00.0/hwmon");
    wait("chip gone", 20, || agent.metric("accel_device_power_watts", &[hl]).is_none());
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[hl, ("sensor", "temp1")]), None);
    assert_eq!(agent.get("/-/healthy").status, 200);

    // A log rotated by rename, then by copytruncate: lines after each rotation are still matched.
    let log = host.log_path("photon0");
    std::fs::rename(&log, log.with_extension("log.1")).unwrap();
    host.append_log("photon0", &["ERROR: after rename"]).unwrap();
    let p0 = [("device", "photon0"), ("rule", "error-burst")];
    wait("line after rename", 20, || agent.metric("accel_log_matches_total", &p0) == Some(1.0));
    std::fs::copy(&log, log.with_extension("log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    host.append_log("photon0", &["ERROR: after copytruncate"]).unwrap();
    wait("line after copytruncate", 20, || agent.metric("accel_log_matches_total", &p0) == Some(2.0));

    // A probe that hangs: killed at its timeout, the device goes offline, agentctl still answers.
    host.photon_hangs("photon0", true).unwrap();
    wait("probe timing out", 30, || {
        let d: Value = serde_json::from_str(&agent.get("/api/v1/devices/photon0").body).unwrap();
        d["probes"][0]["message"] == "timed out"
    });
    let t = Instant::now();
    assert_eq!(status(&agent)["devices"].as_array().unwrap().len(), 8);
    eprintln!("agentctl status while a probe hangs: {:?} (process start included)", t.elapsed());
    wait("offline after 3 timeouts", 30, || state_of(&agent, "photon0") == "unhealthy");
    host.photon_hangs("photon0", false).unwrap();

    // A BMP that goes silent: its boards go Offline, the others and the agent carry on.
    host.bmp.set_fault(accel_sim::bmp_sim::Fault::Silent);
    let b0 = ("device", "spin5-c0-f0-b0");
    wait("boards offline", 20, || agent.metric("accel_device_up", &[b0]) == Some(0.0));
    assert_eq!(agent.metric("accel_device_up", &[("device", "photon1")]), Some(1.0));
    host.bmp.set_fault(accel_sim::bmp_sim::Fault::None);
    wait("boards back", 20, || agent.metric("accel_device_up", &[b0]) == Some(1.0));

    // SIGKILL while throttled: the restarted agent restores the original and keeps the journal.
    host.set_loihi_temp(88.0);
    wait("throttled", 30, || host.cooling_state() == Some(3));
    let before: Value = serde_json::from_str(&agent.events("limit=1000")).unwrap();
    let before = before.as_array().unwrap().clone();
    let mut agent = agent;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let state_dir = std::mem::replace(&mut agent.state_dir, tempfile::tempdir().unwrap());
    assert_eq!(host.cooling_state(), Some(3), "a SIGKILLed agent restores nothing by itself");
    host.set_loihi_temp(60.0);
    let cfg_file = cfg.path().join("agent.toml");
    let args = ["--config", cfg_file.to_str().unwrap(), "--sysfs-root", host.sysfs.root().to_str().unwrap()];
    let again = Agent::start_in(state_dir, &args);
    wait("original restored", 20, || host.cooling_state() == Some(0));
    let after: Value = serde_json::from_str(&again.events("limit=1000")).unwrap();
    let ids: Vec<i64> = after.as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    for e in &before {
        assert!(ids.contains(&e["id"].as_i64().unwrap()), "event lost across SIGKILL: {e}");
    }
    assert!(again.events("device=loihi0&kind=action").contains("restored after a restart"));
}

/// 200 scrapers for 30 s and 1,000 idle connections while the demo's story plays: every response is a
/// 200, idle connections are closed by the agent (shed past the per-address cap, or at the header
/// timeout) without holding anyone up, and the
/// agent's memory stays bounded (printed).
#[test]
fn load_200_scrapers_and_1000_idle_connections() {
    raise_nofile();
    let host = Arc::new(DemoHost::build().unwrap());
    let (agent, _cfg) = start(&host);
    let stop = Arc::new(AtomicBool::new(false));
    let story = {
        let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
        std::thread::spawn(move || host.run_scenarios(&stop, &|_| {}))
    };
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(agent.addr).expect("idle connection"));
    }
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + Duration::from_secs(30);
    let scrapers: Vec<_> = (0..200)
        .map(|_| {
            let (ok, failed, addr) = (Arc::clone(&ok), Arc::clone(&failed), agent.addr);
            std::thread::spawn(move || {
                while Instant::now() < end {
                    let r = common::http_get(addr, "/metrics", &[("Accept-Encoding", "gzip")], Duration::from_secs(10));
                    if r.status == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for s in scrapers {
        s.join().unwrap();
    }
    // The idle connections sent nothing: the agent has closed them by now (shed for newer connections
    // past the per-address cap, or at the header timeout).
    let mut closed = 0;
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        // EOF (or a reset) means the agent closed it; a read timeout would mean it is still held open.
        match c.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    story.join().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?").to_owned();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "load: {ok} scrapes answered 200, {failed} not, in 30 s with 200 scrapers; {closed}/1000 idle connections closed by the agent; agent peak memory {hwm}"
    );
    assert_eq!(failed, 0, "every scrape answered 200");
    assert!(ok > 200, "scrapes went through: {ok}");
    assert_eq!(closed, 1000, "idle connections time out");
    let mib: f64 = hwm.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0;
    assert!(mib > 0.0 && mib < 512.0, "bounded memory: {mib} MiB");
}

fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Regression: energy per inference used to combine an energy counter read by the power_supply collector
/// with an inference count read by the status probe at another moment, so a constant 4 mJ workload showed
/// e.g. 5.33 mJ and raised PowerAnomaly. Both counters now come from one probe result.
#[test]
fn energy_per_inference_of_a_steady_workload_is_steady() {
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = start(&host);
    let loihi = ("device", "loihi0");
    let (mut inferences, mut energy_uwh) = (0u64, 1_000_000u64);
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < until {
        // 900 inferences per 1000 µWh (3.6 J): 4 mJ each, in small steps between the probe's reads.
        inferences += 90;
        energy_uwh += 100;
        host.loihi_work(inferences, energy_uwh).unwrap();
        if let Some(epi) = agent.metric("accel_device_energy_per_inference_joules", &[loihi]) {
            seen.push(epi);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!seen.is_empty(), "no energy per inference within 9 s");
    assert!(seen.iter().all(|epi| (epi - 0.004).abs() < 1e-9), "{seen:?}");
    assert_eq!(agent.metric("accel_device_condition", &[loihi, ("condition", "PowerAnomaly")]), Some(0.0));
    let detail = agent.get("/api/v1/devices/loihi0").body;
    assert!(detail.contains("EnergyPerInferenceNormal"), "{detail}");
}
