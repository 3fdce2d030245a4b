//! agentctl against a running agent on a temporary control socket: every verb's JSON shape, the exit codes
//! for healthy, degraded, unhealthy and unreachable, mutations (and their refusal for an unauthorised
//! peer), a throttle that expires by itself, the bundle, and reload.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");
const TEMP: &str = "devices/platform/loihi.0/hwmon/hwmon0/temp1_input";
const COOLING: &str = "devices/virtual/thermal/cooling_device0/cur_state";

fn socket(agent: &Agent) -> PathBuf {
    agent.state_dir.path().join("agent.sock")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl_as(agent: &Agent, args: &[&str], ids: Option<(u32, u32)>) -> Run {
    let mut cmd = Command::new(CTL);
    cmd.arg("--socket").arg(socket(agent)).args(args).env_remove("NO_COLOR");
    if let Some((uid, gid)) = ids {
        // With a uid set and no groups, std drops the supplementary groups: gid is the only group.
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("run agentctl");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ctl(agent: &Agent, args: &[&str]) -> Run {
    ctl_as(agent, args, None)
}

fn ctl_json(agent: &Agent, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = ctl(agent, &all);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", r.stdout));
    (r.code, v)
}

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs.cooling_device(0, "Processor", 0, 10);
    fs
}

fn config(logs: &Path, extra: &str) -> String {
    format!(
        r#"
poll_interval = "100ms"
[actions]
enabled = true
[discovery]
enabled = false
[[device]]
id = "loihi0"
kind = "loihi"
[device.thresholds]
temperature_warn = 80.0
temperature_crit = 90.0
min_duration = "1s"
[device.throttle]
threshold = 200.0
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 3 }}
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 7 }}
[[device.log]]
path = "{dir}/loihi0.log"
[[device.log.rule]]
name = "fatal-dma"
pattern = "DMA engine halted"
action = "LogErrors"
severity = "critical"
latch = true
{extra}"#,
        dir = logs.display()
    )
}

/// Polls `cond` for up to 20 s.
fn wait(what: &str, cond: impl FnMut() -> bool) {
    common::wait(what, 20, cond);
}

fn device_state(agent: &Agent, id: &str) -> String {
    let (_, v) = ctl_json(agent, &["status"]);
    v["devices"].as_array().unwrap().iter().find(|d| d["id"] == id).unwrap()["state"].as_str().unwrap().to_owned()
}

#[test]
fn status_exit_codes_follow_health_and_every_read_verb_has_its_shape() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path(), ""));
    agent.wait_ready();
    wait("healthy", || device_state(&agent, "loihi0") == "healthy");

    let (code, v) = ctl_json(&agent, &["status"]);
    assert_eq!(code, 0);
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["agent"]["actions"], "enabled");
    assert_eq!(v["agent"]["ready"], true);
    let d = &v["devices"][0];
    assert_eq!((d["id"].as_str(), d["kind"].as_str()), (Some("loihi0"), Some("loihi")));
    assert_eq!(d["temperature_celsius"], 50.0);
    assert_eq!(d["power_watts"], Value::Null, "no power sensor: absent, not 0");
    assert_eq!((d["throttle_level"].as_u64(), d["throttle_max_level"].as_u64()), (Some(0), Some(2)));
    assert_eq!(d["failing"], Value::Array(vec![]));

    let plain = ctl(&agent, &["status"]);
    assert_eq!(plain.code, 0);
    let row = plain.stdout.lines().find(|l| l.starts_with("loihi0")).expect("a line for the device");
    for cell in ["loihi", "healthy", "50.0 °C", "0/2"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    assert!(!plain.stdout.contains('\x1b'), "no colour when piped");

    let (code, v) = ctl_json(&agent, &["devices"]);
    assert_eq!(code, 0);
    assert!(v[0]["sources"][0].as_str().unwrap().starts_with("hwmon:"), "{v}");
    let (code, v) = ctl_json(&agent, &["device", "loihi0"]);
    assert_eq!(code, 0);
    assert_eq!(v["readings"]["temperature_celsius"][0]["value"], 50.0);
    assert_eq!(v["temperature_warn_celsius"], 80.0);
    assert_eq!(v["conditions"].as_array().unwrap().len(), 6);
    assert!(v["events"].is_array());
    let detail = ctl(&agent, &["device", "loihi0"]);
    assert!(detail.stdout.contains("warn 80.0 °C · crit 90.0 °C"), "{}", detail.stdout);

    let unknown = ctl(&agent, &["device", "nope"]);
    assert_eq!(unknown.code, 64);
    assert!(unknown.stderr.contains("known devices: loihi0"), "{}", unknown.stderr);
    let (code, v) = ctl_json(&agent, &["device", "nope"]);
    assert_eq!((code, v["known"][0].as_str()), (64, Some("loihi0")));

    // Degraded above warn, unhealthy above crit.
    fs.write(TEMP, "85000\n");
    wait("degraded", || device_state(&agent, "loihi0") == "degraded");
    assert_eq!(ctl(&agent, &["status"]).code, 1);
    fs.write(TEMP, "95000\n");
    wait("unhealthy", || device_state(&agent, "loihi0") == "unhealthy");
    let r = ctl(&agent, &["status"]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("Overheating (TemperatureAboveCritical)"), "{}", r.stdout);
    assert_eq!(ctl(&agent, &["device", "loihi0"]).code, 2);

    let (code, v) = ctl_json(&agent, &["events", "--device", "loihi0", "--severity", "warning"]);
    assert_eq!(code, 0);
    let events = v.as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "condition_set" && e["message"].as_str().unwrap().contains("Overheating"))
    );
    assert!(events.iter().all(|e| e["device"] == "loihi0" && e["severity"] != "info"));

    let (code, v) = ctl_json(&agent, &["diagnose"]);
    assert_eq!(code, 2, "a critical finding");
    let f = &v["findings"][0];
    assert_eq!((f["level"].as_str(), f["device"].as_str()), (Some("critical"), Some("loihi0")));
    assert_eq!(f["check"], "condition Overheating");
    assert!(f["replaces"].as_str().unwrap().contains("sensors"));
    assert!(f["action"].as_str().unwrap().contains("agentctl throttle loihi0 1"));

    // The agent gone: exit 3, naming the socket and what to check.
    drop(agent);
    let fs2 = host();
    let (gone, _c) = Agent::with_config(fs2.root(), &config(logs.path(), ""));
    let path = socket(&gone);
    drop(gone);
    let out = Command::new(CTL).arg("--socket").arg(&path).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&*path.to_string_lossy()) && err.contains("systemctl status accel-agent"), "{err}");
}

#[test]
fn throttle_for_a_while_expires_by_itself_and_restores_the_original() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path(), ""));
    agent.wait_ready();
    let (code, v) = ctl_json(&agent, &["throttle", "loihi0", "2", "--for", "2s"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["message"], "throttle held at level 2 of 2 for 2s");
    wait("level 2 written", || std::fs::read_to_string(fs.path(COOLING)).unwrap().trim() == "7");
    let (_, s) = ctl_json(&agent, &["status"]);
    assert_eq!(s["devices"][0]["manual_throttle"]["level"], 2);
    wait("level 2 shown", || ctl_json(&agent, &["status"]).1["devices"][0]["throttle_level"] == 2);
    // Nobody does anything: the hold ends and the original value comes back.
    wait("original restored", || std::fs::read_to_string(fs.path(COOLING)).unwrap().trim() == "0");
    wait("level 0", || ctl_json(&agent, &["status"]).1["devices"][0]["throttle_level"] == 0);
    let (_, s) = ctl_json(&agent, &["status"]);
    assert_eq!(s["devices"][0]["manual_throttle"], Value::Null);
    let (_, ev) = ctl_json(&agent, &["events", "--kind", "operator"]);
    let messages: Vec<&str> = ev.as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.starts_with("throttle held at level 2 of 2 for 2s (by uid 0")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("manual throttle at level 2 ended")), "{messages:?}");

    // Out of range and unknown: usage errors; unthrottle of an idle device is fine.
    let r = ctl(&agent, &["throttle", "loihi0", "9"]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("levels 0..=2"), "{}", r.stderr);
    assert_eq!(ctl(&agent, &["throttle", "ghost", "1"]).code, 64);
    assert_eq!(ctl(&agent, &["unthrottle", "loihi0"]).code, 0);
}

#[test]
fn maintenance_set_healthy_and_the_bundle() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let probe = r#"[[device.probe]]
name = "status"
command = ["/bin/sh", "-c", "echo ok --token=s3cr3t-token"]
"#;
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path(), probe));
    agent.wait_ready();

    // Changes exist only on the control socket: the TCP endpoint refuses a POST and nothing changes.
    let mut tcp = std::net::TcpStream::connect(agent.addr).unwrap();
    tcp.write_all(b"POST /api/v1/devices/loihi0/maintenance HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"on\":true}")
        .unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut tcp, &mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert_ne!(device_state(&agent, "loihi0"), "maintenance");

    let (code, v) = ctl_json(&agent, &["maintenance", "loihi0", "on", "--for", "1h"]);
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)));
    assert_eq!(device_state(&agent, "loihi0"), "maintenance");
    assert_eq!(ctl(&agent, &["status"]).code, 0, "maintenance counts as healthy");
    let (_, d) = ctl_json(&agent, &["device", "loihi0"]);
    let until = d["maintenance_until"].as_f64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((until - now - 3600.0).abs() < 60.0, "ends in an hour: {until} vs {now}");
    assert_eq!(agent.metric("accel_maintenance_mode", &[("device", "loihi0")]), Some(1.0));
    ctl(&agent, &["maintenance", "loihi0", "off"]);
    assert_ne!(device_state(&agent, "loihi0"), "maintenance");

    // A latching rule stays set after the evidence is gone; set-healthy clears it.
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(logs.path().join("loihi0.log")).unwrap();
    writeln!(log, "kernel: loihi0: DMA engine halted at 0xdead").unwrap();
    wait("LogErrors", || device_state(&agent, "loihi0") == "unhealthy");
    let (_, d) = ctl_json(&agent, &["device", "loihi0"]);
    let cond = d["conditions"].as_array().unwrap().iter().find(|c| c["kind"] == "LogErrors").unwrap().clone();
    assert_eq!((cond["status"].as_str(), cond["latched"].as_bool()), (Some("true"), Some(true)));

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("b.tar.gz");
    let (code, v) = ctl_json(&agent, &["bundle", "-o", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let listed: Vec<String> =
        v["contents"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let entries = untar(&file);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.trim_start_matches("accel-agent-bundle/")).collect();
    assert_eq!(names, listed, "the bundle holds exactly what it lists");
    let content = |name: &str| &entries.iter().find(|(n, _)| n.ends_with(name)).unwrap().1;
    for (name, data) in &entries {
        assert!(!data.contains("s3cr3t-token"), "{name} leaks the secret");
    }
    assert!(content("config.toml").contains("--token=<redacted>"));
    assert!(content("log-matches.jsonl").contains("DMA engine halted at 0xdead"));
    assert!(content("metrics.prom").contains("accel_build_info{"));
    assert!(content("events.json").contains("LogErrors"));
    let status: Value = serde_json::from_str(content("status.json")).unwrap();
    assert_eq!(status["devices"][0]["id"], "loihi0");

    let (code, v) = ctl_json(&agent, &["set-healthy", "loihi0"]);
    assert_eq!(code, 0);
    assert!(v["message"].as_str().unwrap().contains("LogErrors (log rule fatal-dma)"), "{v}");
    wait("healthy again", || device_state(&agent, "loihi0") == "healthy");
    // The rule is re-armed: the next halt sets it again.
    writeln!(log, "kernel: loihi0: DMA engine halted again").unwrap();
    wait("LogErrors again", || device_state(&agent, "loihi0") == "unhealthy");
}

fn untar(file: &Path) -> Vec<(String, String)> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = String::new();
        std::io::Read::read_to_string(&mut entry, &mut data).unwrap();
        out.push((name, data));
    }
    out
}

#[test]
#[cfg_attr(not(is_root), ignore = "needs root to run agentctl as other users (the authorisation rule is unit-tested)")]
fn mutations_need_root_or_the_control_group() {
    assert!(nix::unistd::getuid().is_root(), "this test runs agentctl as other users, which needs root");
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, _cfg) = Agent::with_config(
        fs.root(),
        &config(logs.path(), "").replace("[discovery]", "[control]\ngroup = \"4242\"\n[discovery]"),
    );
    agent.wait_ready();
    let sock = socket(&agent);
    // The socket's directory must be reachable by the unprivileged users.
    std::fs::set_permissions(agent.state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 4242);

    // Not in the group: the kernel refuses the connection, and agentctl says which group to join.
    let r = ctl_as(&agent, &["status"], Some((65534, 65534)));
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("join the group 4242"), "{}", r.stderr);

    // In the group: reads and changes.
    let member = Some((65534, 4242));
    assert_eq!(ctl_as(&agent, &["status"], member).code, 0);
    let r = ctl_as(&agent, &["maintenance", "loihi0", "on"], member);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A socket opened up by mistake: anyone can connect and read, but a change is refused with 403.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let stranger = Some((65534, 65534));
    assert_eq!(ctl_as(&agent, &["status"], stranger).code, 0);
    let r = ctl_as(&agent, &["maintenance", "loihi0", "off"], stranger);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not authorised") && r.stderr.contains("4242"), "{}", r.stderr);
    assert_eq!(device_state(&agent, "loihi0"), "maintenance", "nothing changed");
    let (_, ev) = ctl_json(&agent, &["events", "--kind", "control_refused"]);
    let refused = ev[0]["message"].as_str().unwrap();
    assert!(refused.contains("/api/v1/devices/loihi0/maintenance") && refused.contains("uid 65534"), "{refused}");
    assert_eq!(ev[0]["severity"], "warning");
}

#[test]
#[cfg_attr(not(is_root), ignore = "needs root to run agentctl as another user")]
fn without_the_control_group_an_unprivileged_user_is_told_to_use_sudo_not_to_join_root() {
    assert!(nix::unistd::getuid().is_root(), "this test runs agentctl as another user, which needs root");
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let group = "accel-no-such-group";
    let (agent, _cfg) = Agent::with_config(
        fs.root(),
        &config(logs.path(), "").replace("[discovery]", &format!("[control]\ngroup = \"{group}\"\n[discovery]")),
    );
    agent.wait_ready();
    let sock = socket(&agent);
    std::fs::set_permissions(agent.state_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // No group to give it to: the socket stays root's.
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&sock).unwrap()), 0);

    let r = ctl_as(&agent, &["status"], Some((65534, 65534)));
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(!r.stderr.contains("join the group root") && !r.stderr.contains("usermod"), "{}", r.stderr);
    assert!(r.stderr.contains("use sudo. Only root may use this agent's control socket"), "{}", r.stderr);
    assert!(r.stderr.contains("sudo groupadd --system accel-agent"), "{}", r.stderr);

    // Let the stranger connect: the change is refused, naming the missing group and not asking to join it.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = ctl_as(&agent, &["maintenance", "loihi0", "on"], Some((65534, 65534)));
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("the control group {group} does not exist on this host")), "{}", r.stderr);
    assert!(!r.stderr.contains(&format!("join the group {group}")), "{}", r.stderr);
    assert!(r.stderr.contains("use sudo"), "{}", r.stderr);
}

#[test]
fn status_answers_while_a_probe_hangs() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let probe = r#"[[device.probe]]
name = "vendor-status"
command = ["/bin/sleep", "60"]
interval = "1m"
timeout = "50s"
"#;
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(logs.path(), probe));
    agent.wait_ready();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let (code, v) = ctl_json(&agent, &["status"]);
        slowest = slowest.max(t.elapsed());
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["devices"][0]["id"], "loihi0");
    }
    let (_, d) = ctl_json(&agent, &["device", "loihi0"]);
    assert_eq!(d["probes"][0]["status"], "pending", "the probe is still running");
    eprintln!("agentctl status while a probe hangs: slowest of 20 runs {slowest:?} (process start included)");
}

#[test]
fn reload_applies_a_valid_config_and_keeps_the_old_one_on_error() {
    let fs = host();
    let logs = tempfile::tempdir().unwrap();
    let (agent, cfg) = Agent::with_config(fs.root(), &config(logs.path(), ""));
    agent.wait_ready();
    let path = cfg.path().join("agent.toml");
    ctl(&agent, &["maintenance", "loihi0", "on"]);
    let lines_before = agent.metric("accel_log_lines_total", &[("device", "loihi0")]);

    let extra = "[[device]]\nid = \"spare0\"\nkind = \"generic\"\n";
    std::fs::write(&path, config(logs.path(), extra)).unwrap();
    let (code, v) = ctl_json(&agent, &["reload"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["message"].as_str().unwrap().contains("2 device(s)"), "{v}");
    let (_, s) = ctl_json(&agent, &["status"]);
    let ids: Vec<&str> = s["devices"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["loihi0", "spare0"]);
    assert_eq!(device_state(&agent, "loihi0"), "maintenance", "state survives a reload");
    assert_eq!(agent.metric("accel_log_lines_total", &[("device", "loihi0")]), lines_before);
    assert_eq!(agent.metric("accel_config_last_reload_successful", &[]), Some(1.0));

    // A broken file: rejected with its position, the running config stays.
    std::fs::write(&path, "poll_interval = \"fast\"\n").unwrap();
    let r = ctl(&agent, &["reload"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("agent.toml:1:17: poll_interval"), "{}", r.stderr);
    assert_eq!(agent.metric("accel_config_last_reload_successful", &[]), Some(0.0));
    assert_eq!(ctl_json(&agent, &["status"]).1["devices"].as_array().unwrap().len(), 2);

    // Fixed on disk: the file watch reloads by itself; SIGHUP works too.
    std::fs::write(&path, config(logs.path(), "")).unwrap();
    wait("reloaded on change", || agent.metric("accel_config_last_reload_successful", &[]) == Some(1.0));
    wait("spare0 gone", || ctl_json(&agent, &["status"]).1["devices"].as_array().unwrap().len() == 1);
    std::fs::write(&path, config(logs.path(), extra)).unwrap();
    agent.signal(libc::SIGHUP);
    wait("spare0 back", || ctl_json(&agent, &["status"]).1["devices"].as_array().unwrap().len() == 2);
}

#[test]
fn usage_errors_exit_64_and_man_and_completions_come_from_clap() {
    let run = |args: &[&str]| Command::new(CTL).args(args).output().unwrap();
    assert_eq!(run(&["frobnicate"]).status.code(), Some(64));
    assert_eq!(run(&["device"]).status.code(), Some(64), "missing ID");
    assert_eq!(run(&["throttle", "x", "high"]).status.code(), Some(64));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    let man = run(&["man"]);
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH agentctl") && man.contains("set\\-healthy"), "{}", &man[..man.len().min(300)]);
    // Every subcommand is described in this page; none is sent to a page that is not installed.
    assert!(
        man.contains("\\fBagentctl throttle\\fR ID LEVEL") && man.contains("\\fB\\-\\-for\\fR=\\fIDUR\\fR"),
        "{man}"
    );
    assert!(!man.contains("agentctl\\-status(1)") && !man.contains("(1)\n"), "{man}");
    let daemon = Command::new(common::BIN).arg("man").output().unwrap();
    let daemon = String::from_utf8_lossy(&daemon.stdout);
    assert!(daemon.contains(".TH accel-agent 8") && daemon.contains("\\fBaccel\\-agent scan\\fR"), "{daemon}");
    assert!(!daemon.contains("accel\\-agent\\-scan(8)") && !daemon.contains("(8)\n"), "{daemon}");
    let bash = run(&["completions", "bash"]);
    assert!(String::from_utf8_lossy(&bash.stdout).contains("maintenance"));
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "listen = 5\n").unwrap();
    let r = run(&["check-config", bad.path().to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stdout).contains(":1:10: listen"));
}
