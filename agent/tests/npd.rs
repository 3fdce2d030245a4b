//! `accel-agent npd`: node-problem-detector's custom-plugin protocol against a real agent on a temporary
//! control socket. Exit 0 OK, 1 problem, 2 unknown; one line of at most 80 bytes; a bounded wait when the
//! agent is down or does not answer. Also runs every rule of the shipped custom-plugin-monitor config.

mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, BIN};
use serde_json::Value;

const TEMP: &str = "devices/platform/loihi.0/hwmon/hwmon0/temp1_input";

struct Run {
    code: i32,
    stdout: String,
    took: Duration,
}

fn npd(socket: &Path, condition: &str, extra: &[&str]) -> Run {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["npd", "--condition", condition, "--socket"])
        .arg(socket)
        .args(extra)
        .output()
        .expect("run accel-agent npd");
    let run = Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        took: started.elapsed(),
    };
    // The protocol: exactly one line, within NPD's default max_output_length.
    assert_eq!(run.stdout.matches('\n').count(), 1, "one line: {:?}", run.stdout);
    assert!(run.stdout.trim_end().len() <= 80, "{} bytes: {:?}", run.stdout.trim_end().len(), run.stdout);
    assert!(!run.stdout.trim().is_empty(), "a message, not nothing");
    run
}

fn socket(agent: &Agent) -> PathBuf {
    agent.state_dir.path().join("agent.sock")
}

fn start(fs: &FakeSysfs) -> (Agent, tempfile::TempDir) {
    let toml = r#"
poll_interval = "100ms"
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
[device.thresholds]
temperature_warn = 80.0
temperature_crit = 90.0
min_duration = "1s"
"#;
    let (agent, cfg) = Agent::with_config(fs.root(), toml);
    agent.wait_ready();
    (agent, cfg)
}

fn state(agent: &Agent) -> String {
    let v: Value = serde_json::from_str(&agent.get("/health").body).expect("health JSON");
    v["devices"][0]["state"].as_str().unwrap_or("?").to_owned()
}

fn codes(agent: &Agent) -> [(i32, String); 4] {
    ["AcceleratorUnhealthy", "AcceleratorDegraded", "AcceleratorOverheating", "AcceleratorNeedsInspection"].map(|c| {
        let r = npd(&socket(agent), c, &[]);
        (r.code, r.stdout.trim_end().to_owned())
    })
}

#[test]
fn healthy_degraded_and_unhealthy_map_to_ok_and_problem() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    let (agent, _cfg) = start(&fs);
    agent.wait_for("healthy", || state(&agent) == "healthy");
    let [unhealthy, degraded, hot, inspect] = codes(&agent);
    assert_eq!(unhealthy, (0, "1 accelerator device(s), none unhealthy".to_owned()));
    assert_eq!(degraded, (0, "1 accelerator device(s), none degraded".to_owned()));
    assert_eq!(hot, (0, "1 accelerator device(s), none overheating".to_owned()));
    assert_eq!(inspect.0, 0);

    fs.write(TEMP, "85000\n");
    agent.wait_for("degraded", || state(&agent) == "degraded");
    let [unhealthy, degraded, hot, inspect] = codes(&agent);
    assert_eq!(unhealthy.0, 0, "degraded is not unhealthy: {unhealthy:?}");
    assert_eq!(degraded, (1, "1 of 1: loihi0 degraded Overheating".to_owned()));
    assert_eq!(hot, (1, "1 of 1: loihi0 85.0C".to_owned()));
    assert_eq!(inspect.0, 0);

    fs.write(TEMP, "95000\n");
    agent.wait_for("unhealthy", || state(&agent) == "unhealthy");
    let [unhealthy, degraded, hot, _] = codes(&agent);
    assert_eq!(unhealthy, (1, "1 of 1: loihi0 unhealthy Overheating".to_owned()));
    assert_eq!(degraded.0, 0, "an unhealthy device answers AcceleratorUnhealthy, not Degraded: {degraded:?}");
    assert_eq!(hot, (1, "1 of 1: loihi0 95.0C".to_owned()));

    fs.write(TEMP, "50000\n");
    agent.wait_for("healthy again", || state(&agent) == "healthy");
    assert_eq!(codes(&agent)[0].0, 0, "the condition clears with the evidence");
}

#[test]
fn an_agent_that_is_down_or_silent_is_unknown_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("agent.sock");
    let r = npd(&missing, "AcceleratorUnhealthy", &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stdout.starts_with("accel-agent not running at "), "{}", r.stdout);
    assert!(r.took < Duration::from_secs(2), "no wait for a missing socket: {:?}", r.took);

    // A socket that accepts and never answers (a hung agent): unknown after --timeout, not NPD's kill.
    let silent = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&silent).unwrap();
    let holder = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(4));
        drop(conn);
    });
    let r = npd(&silent, "AcceleratorOverheating", &["--timeout", "1s"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(r.stdout.trim_end(), "accel-agent did not answer within 1s");
    assert!(r.took >= Duration::from_secs(1) && r.took < Duration::from_secs(3), "bounded: {:?}", r.took);
    holder.join().unwrap();
}

#[test]
fn every_rule_of_the_shipped_monitor_config_runs_against_the_agent() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "85000");
    let (agent, _cfg) = start(&fs);
    agent.wait_for("degraded", || state(&agent) == "degraded");
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/node-problem-detector/accel-agent-monitor.json");
    let monitor: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(monitor["plugin"], "custom");
    assert_eq!(monitor["pluginConfig"]["max_output_length"], 80);
    let npd_timeout = humantime::parse_duration(monitor["pluginConfig"]["timeout"].as_str().unwrap()).unwrap();
    let declared: Vec<&str> =
        monitor["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    let rules = monitor["rules"].as_array().unwrap();
    assert_eq!(rules.len(), declared.len(), "one rule per declared condition");
    let mut results = Vec::new();
    for rule in rules {
        let condition = rule["condition"].as_str().unwrap();
        assert!(declared.contains(&condition), "{condition} is declared with its default (OK) status");
        assert_eq!(rule["type"], "permanent");
        let args: Vec<&str> = rule["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args[..3], ["npd", "--condition", condition], "the rule asks for its own condition");
        let ours = args.iter().position(|a| *a == "--timeout").map(|i| humantime::parse_duration(args[i + 1]).unwrap());
        let theirs = humantime::parse_duration(rule["timeout"].as_str().unwrap_or("5s")).unwrap();
        assert!(ours.is_some_and(|t| t < theirs && t < npd_timeout), "{condition}: our timeout below NPD's");
        // Run it as NPD would, with the socket pointed at this agent.
        let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let i = args.iter().position(|a| a == "--socket").expect("the rule names the socket");
        args[i + 1] = socket(&agent).display().to_string();
        let out = Command::new(BIN).args(&args).output().unwrap();
        results.push((condition.to_owned(), out.status.code().unwrap()));
    }
    assert_eq!(
        results,
        [
            ("AcceleratorUnhealthy".to_owned(), 0),
            ("AcceleratorDegraded".to_owned(), 1),
            ("AcceleratorOverheating".to_owned(), 1),
            ("AcceleratorNeedsInspection".to_owned(), 0),
        ]
    );
}
