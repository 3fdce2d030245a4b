//! Diagnostics run by the real agent with fake tools (shell scripts written here): a pass, a failure
//! that sets DiagnosticFailed until set-healthy or the next pass, a failure the remedy fixes, a hanging
//! tool killed at its deadline with nothing left behind, an exclusive run that puts the device in
//! maintenance, a refusal on a throttled device, a condition that triggers a diagnostic once per
//! cooldown, and agentctl's exit codes.

mod common;

use std::path::Path;

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, agentctl, host_collectors_off};
use serde_json::Value;

/// A calibration check: prints the drift held in `drift` as JSON, waits while `hold` exists (at most
/// 20 s), and exits 0. The remedy copies `after_remedy` into `drift`.
fn tools(dir: &Path) -> (String, String) {
    let d = dir.display();
    let verify = dir.join("verify.sh");
    std::fs::write(
        &verify,
        format!(
            "#!/bin/sh\necho \"verifying $1\" >&2\nn=0\nwhile [ -e '{d}/hold' ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done\n\
             echo \"{{\\\"device\\\": \\\"$1\\\", \\\"drift_ppm\\\": $(cat '{d}/drift')}}\"\nexit 0\n"
        ),
    )
    .unwrap();
    let remedy = dir.join("remedy.sh");
    std::fs::write(&remedy, format!("#!/bin/sh\ncp '{d}/after_remedy' '{d}/drift'\n")).unwrap();
    (verify.display().to_string(), remedy.display().to_string())
}

/// What every config here starts with: diagnostics on, discovery off, and (`probe_only`) no host
/// collectors, for devices whose only evidence is a probe or a diagnostic.
fn head(poll: &str, probe_only: bool) -> String {
    let collectors = if probe_only { host_collectors_off() } else { String::new() };
    format!("poll_interval = \"{poll}\"\n{collectors}[discovery]\nenabled = false\n[diagnostics]\nenabled = true\n")
}

/// A device of kind `generic` with one diagnostic, whose other keys follow.
fn diagnosed_device(id: &str, name: &str, level: u8, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[device]]\nid = \"{id}\"\nkind = \"generic\"\n[[device.diagnostic]]\nname = \"{name}\"\nlevel = {level}\nargv = [{}]\n",
        argv.join(", ")
    )
}

/// agentctl with `args`, started in the background (its output piped) while the test looks elsewhere.
fn spawn_agentctl(agent: &Agent, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_agentctl"))
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agentctl")
}

fn set(dir: &Path, file: &str, value: &str) {
    std::fs::write(dir.join(file), value).unwrap();
}

fn config(dir: &Path, extra: &str) -> String {
    let (verify, remedy) = tools(dir);
    format!(
        r#"{head}
{device}timeout = "20s"
expect = [{{ field = "/drift_ppm", max = 50.0 }}]
remedy = ["/bin/sh", "{remedy}"]
exclusive = true
{extra}
"#,
        head = head("200ms", true),
        device = diagnosed_device("photon0", "calibration-verify", 2, &["/bin/sh", &verify, "{id}"]),
    )
}

fn device(agent: &Agent, id: &str) -> Value {
    serde_json::from_str(&agent.get(&format!("/api/v1/devices/{id}")).body).expect("device JSON")
}

fn condition<'a>(d: &'a Value, kind: &str) -> &'a Value {
    d["conditions"].as_array().unwrap().iter().find(|c| c["kind"] == kind).unwrap_or(&Value::Null)
}

fn events(agent: &Agent) -> String {
    agent.get("/api/v1/events?kind=diagnostic&limit=100").body
}

#[test]
fn pass_failure_remedy_and_diagnostic_failed() {
    let fs = FakeSysfs::new();
    let dir = tempfile::tempdir().unwrap();
    set(dir.path(), "drift", "12.5");
    set(dir.path(), "after_remedy", "72");
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(dir.path(), ""));
    agent.wait_ready();
    let labels = [("device", "photon0"), ("diagnostic", "calibration-verify")];
    assert_eq!(agent.metric("accel_diagnostic_success", &labels), None, "absent before the first verdict");
    assert_eq!(condition(&device(&agent, "photon0"), "DiagnosticFailed")["status"], "unknown");

    let (code, out, err) = agentctl(&agent, &["diagnose", "--level", "2", "photon0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("photon0 calibration-verify (level 2): passed"), "{out}");
    assert_eq!(agent.metric("accel_diagnostic_success", &[labels[0], labels[1], ("level", "2")]), Some(1.0));
    assert!(agent.metric("accel_diagnostic_last_run_timestamp_seconds", &labels).is_some_and(|t| t > 1.7e9));
    assert!(agent.metric("accel_diagnostic_duration_seconds", &labels).is_some_and(|s| s > 0.0 && s < 20.0));
    assert_eq!(condition(&device(&agent, "photon0"), "DiagnosticFailed")["status"], "false");

    // Drifted, and the remedy does not help: a failure that sets the condition.
    set(dir.path(), "drift", "72");
    let (code, out, _) = agentctl(&agent, &["diagnose", "--level", "2", "photon0"]);
    assert_eq!(code, 2, "a failed diagnostic exits as unhealthy: {out}");
    assert!(out.contains("failed") && out.contains("/drift_ppm = 72 above the maximum 50"), "{out}");
    assert!(out.contains("after its remedy"), "{out}");
    assert!(out.contains("| verifying photon0"), "the tool's last lines: {out}");
    assert_eq!(agent.metric("accel_diagnostic_success", &[labels[0], labels[1], ("level", "2")]), Some(0.0));
    let d = device(&agent, "photon0");
    let c = condition(&d, "DiagnosticFailed");
    assert_eq!(c["status"], "true");
    assert_eq!(c["reason"], "calibration-verify: /drift_ppm = 72 above the maximum 50");
    assert_eq!(d["state"], "degraded", "a failed level 2 degrades the device");
    let ev = events(&agent);
    assert!(ev.contains("remedy ran; trying again"), "{ev}");
    assert!(ev.contains("verifying photon0"), "the failure event holds the output: {ev}");
    let (_, text, _) = agentctl(&agent, &["device", "photon0"]);
    assert!(text.contains("DIAGNOSTIC") && text.contains("calibration-verify") && text.contains("failed"), "{text}");
    let page = agent.get("/devices/photon0").body;
    assert!(page.contains("id=\"diagnostics\"") && page.contains("/drift_ppm = 72 above the maximum 50"), "{page}");

    let bundle = dir.path().join("bundle.tar.gz");
    assert_eq!(agentctl(&agent, &["bundle", "-o", bundle.to_str().unwrap()]).0, 0);
    let files = common::untar(&bundle);
    let devices = &files.iter().find(|(name, _)| name.ends_with("devices.json")).expect("devices.json").1;
    assert!(
        devices.contains("\"last_verdict\"") && devices.contains("/drift_ppm = 72 above the maximum 50"),
        "{devices}"
    );

    let (code, out, _) = agentctl(&agent, &["set-healthy", "photon0"]);
    assert_eq!(code, 0);
    assert!(out.contains("DiagnosticFailed (diagnostic calibration-verify)"), "{out}");
    assert_eq!(condition(&device(&agent, "photon0"), "DiagnosticFailed")["status"], "false");

    // Drifted again, and this time the remedy recalibrates: the second try passes and clears nothing
    // more than it has to.
    set(dir.path(), "after_remedy", "3");
    let (code, out, _) = agentctl(&agent, &["diagnose", "--level", "2", "photon0"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("passed") && out.contains("after its remedy"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.path().join("drift")).unwrap(), "3", "the remedy ran");
    assert_eq!(condition(&device(&agent, "photon0"), "DiagnosticFailed")["status"], "false");
}

#[test]
fn an_exclusive_run_is_maintenance_and_exit_codes_say_what_happened() {
    let fs = FakeSysfs::new();
    let dir = tempfile::tempdir().unwrap();
    set(dir.path(), "drift", "1");
    set(dir.path(), "after_remedy", "1");
    set(dir.path(), "hold", "");
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(dir.path(), ""));
    agent.wait_ready();

    let diagnose = || spawn_agentctl(&agent, &["--json", "diagnose", "--level", "3"]);
    let ctl = diagnose();
    agent.wait_for("the run to start", || device(&agent, "photon0")["state"] == "maintenance");
    // A second request while it runs joins it rather than running the tool twice.
    let second = diagnose();
    let d = device(&agent, "photon0");
    assert_eq!(d["maintenance_reason"], "diagnostic calibration-verify running");
    assert_eq!(d["diagnostics"][0]["phase"], "running");
    assert_eq!(agent.metric("accel_maintenance_mode", &[("device", "photon0")]), Some(1.0));
    let (_, text, _) = agentctl(&agent, &["device", "photon0"]);
    assert!(text.contains("maintenance: diagnostic calibration-verify running"), "{text}");
    agent.wait_for("the second request", || {
        agent.get("/api/v1/events?kind=operator").body.matches("diagnostics of level 3").count() == 2
    });
    std::fs::remove_file(dir.path().join("hold")).unwrap();
    let out = second.wait_with_output().expect("agentctl ends");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ctl.wait_with_output().expect("agentctl ends");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let run: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(run["done"], true);
    assert_eq!(run["items"][0]["result"]["result"], "passed");
    assert_eq!(events(&agent).matches("started on demand").count(), 1, "the tool ran once for both");
    agent.wait_for("maintenance to end", || device(&agent, "photon0")["state"] != "maintenance");
    assert!(device(&agent, "photon0").get("maintenance_reason").is_none());

    let (code, _, err) = agentctl(&agent, &["diagnose", "--level", "1", "photon0"]);
    assert_eq!(code, 1, "nothing of level 1 to run: {err}");
    assert!(err.contains("no diagnostic of level 1 or below is configured for device photon0"), "{err}");
    let (code, _, err) = agentctl(&agent, &["diagnose", "--level", "2", "nosuch"]);
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = agentctl(&agent, &["diagnose", "--level", "4"]);
    assert_eq!(code, 64, "{err}");
}

#[test]
fn diagnostics_are_off_unless_enabled() {
    let fs = FakeSysfs::new();
    let dir = tempfile::tempdir().unwrap();
    set(dir.path(), "drift", "1");
    let cfg = config(dir.path(), "").replace("[diagnostics]\nenabled = true", "[diagnostics]\nenabled = false");
    assert!(cfg.contains("[diagnostics]\nenabled = false"), "{cfg}");
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let (code, _, err) = agentctl(&agent, &["diagnose", "--level", "3"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("diagnostics are off on this host"), "{err}");
    assert!(!events(&agent).contains("started"), "nothing ran");
}

#[test]
fn a_hanging_tool_is_killed_at_its_deadline_with_its_group() {
    let fs = FakeSysfs::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Ignores SIGTERM, as does the helper it leaves in the background: only SIGKILL ends them.
    let hang = dir.path().join("hang.sh");
    std::fs::write(
        &hang,
        format!("#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $! > '{d}/child'\necho $$ > '{d}/pid'\nwait\n"),
    )
    .unwrap();
    let cfg = format!(
        r#"{head}
{device}timeout = "2s"
"#,
        head = head("200ms", true),
        device = diagnosed_device("loihi0", "stress", 1, &["/bin/sh", &hang.display().to_string()]),
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let (code, out, err) = agentctl(&agent, &["diagnose", "--level", "1"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("loihi0 stress (level 1): failed") && out.contains("timed out after 2s"), "{out}");
    for file in ["pid", "child"] {
        let pid = std::fs::read_to_string(dir.path().join(file)).unwrap().trim().to_owned();
        agent.wait_for(&format!("{file} {pid} to be gone"), || gone(&pid));
    }
    assert_eq!(agent.get("/-/healthy").status, 200, "the agent still answers");
    let (code, out, _) = agentctl(&agent, &["status"]);
    assert!(code < 3 && out.contains("loihi0"), "agentctl still reaches the agent: {code} {out}");
    assert_eq!(
        agent.metric("accel_diagnostic_success", &[("device", "loihi0"), ("diagnostic", "stress"), ("level", "1")]),
        Some(0.0)
    );
    let d = device(&agent, "loihi0");
    assert!(d["conditions"].as_array().unwrap().iter().all(|c| c["kind"] != "DiagnosticFailed"), "level 1 only");
}

/// A process that has exited (a zombie waiting for its reaper counts: it runs nothing).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

const TEMP: &str = "devices/platform/loihi.0/hwmon/hwmon0/temp1_input";

/// A Loihi board with a throttle ladder, behind a fake kubelet, with a diagnostic that requires an idle
/// device and an exclusive one that waits while `hold` exists.
fn busy_host(fs: &FakeSysfs, dir: &Path) -> String {
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs.cooling_device(0, "Processor", 0, 10);
    std::fs::create_dir_all(dir.join("device-plugins")).unwrap();
    let d = dir.display();
    format!(
        r#"{head}concurrency = 2
[actions]
enabled = true
[kubernetes]
enabled = true
device_plugin_dir = "{d}/device-plugins"
pod_resources_socket = "{d}/pod-resources/kubelet.sock"
interval = "200ms"
timeout = "150ms"
[[device]]
id = "loihi0"
kind = "loihi"
[device.throttle]
threshold = 80.0
hold = "0s"
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 2 }}
[[device.diagnostic]]
name = "burn-in"
level = 2
argv = ["/bin/sh", "-c", "exit 0"]
requires_idle = true
[[device.diagnostic]]
name = "mesh-verify"
level = 3
argv = ["/bin/sh", "-c", "while [ -e '{d}/hold' ]; do sleep 0.1; done"]
exclusive = true
"#,
        head = head("100ms", false)
    )
}

#[test]
fn requires_idle_refuses_a_held_or_throttled_device_and_exclusive_holds_off_the_throttle() {
    use accel_sim::kubelet_sim::{FakeKubelet, FakePod};
    let fs = FakeSysfs::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = busy_host(&fs, dir.path());
    let kubelet =
        FakeKubelet::start(&dir.path().join("device-plugins"), &dir.path().join("pod-resources/kubelet.sock"))
            .expect("fake kubelet");
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let level = |agent: &Agent| agent.metric("accel_throttle_level", &[("device", "loihi0")]);

    kubelet.set_pods(vec![FakePod::new("ml", "train-0", "main", "accel-agent.io/loihi", &["loihi0"])]);
    let pod = [("device", "loihi0"), ("namespace", "ml"), ("pod", "train-0"), ("container", "main")];
    agent.wait_for("the pod", || agent.metric("accel_device_pod_info", &pod) == Some(1.0));
    let (code, out, _) = agentctl(&agent, &["diagnose", "--level", "2", "loihi0"]);
    assert_eq!(code, 1, "a refusal is no verdict: {out}");
    assert!(
        out.contains("burn-in (level 2): refused") && out.contains("refused: pod ml/train-0 holds the device"),
        "{out}"
    );

    kubelet.set_pods(Vec::new());
    agent.wait_for("the pod to go", || agent.metric("accel_device_pod_info", &pod).is_none());
    assert_eq!(agentctl(&agent, &["throttle", "loihi0", "1"]).0, 0);
    let (code, out, _) = agentctl(&agent, &["diagnose", "--level", "2", "loihi0"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused: the device is throttled at level 1"), "{out}");
    assert_eq!(agentctl(&agent, &["unthrottle", "loihi0"]).0, 0);
    agent.wait_for("level 0", || level(&agent) == Some(0.0));
    let (code, out, _) = agentctl(&agent, &["diagnose", "--level", "2", "loihi0"]);
    assert_eq!(code, 0, "idle now: {out}");

    // An exclusive run: maintenance for kubelet too, and no throttle starts on the device while it runs,
    // however hot it gets.
    std::fs::write(dir.path().join("hold"), "").unwrap();
    let ctl = spawn_agentctl(&agent, &["diagnose", "--level", "3", "loihi0"]);
    agent.wait_for("maintenance", || device(&agent, "loihi0")["state"] == "maintenance");
    let unhealthy = || {
        kubelet
            .devices("accel-agent.io/loihi")
            .is_some_and(|(d, _)| d.iter().any(|x| x.id == "loihi0" && x.health == "Unhealthy"))
    };
    agent.wait_for("Unhealthy to kubelet", unhealthy);
    fs.write(TEMP, "90000\n");
    agent.wait_for("the hot reading", || {
        device(&agent, "loihi0")["readings"]["temperature_celsius"][0]["value"].as_f64() == Some(90.0)
    });
    // Many decision rounds (100 ms each) with the reading above the threshold and no hold.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(level(&agent), Some(0.0), "no throttle while the exclusive diagnostic runs");
    std::fs::remove_file(dir.path().join("hold")).unwrap();
    let out = ctl.wait_with_output().expect("agentctl ends");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    agent.wait_for("the throttle once it ended", || level(&agent) == Some(1.0));
}

#[test]
fn a_condition_triggers_its_diagnostic_once_per_cooldown() {
    let fs = FakeSysfs::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    set(dir.path(), "code", "0");
    let status = dir.path().join("status.sh");
    std::fs::write(&status, format!("#!/bin/sh\nexit $(cat '{d}/code')\n")).unwrap();
    let cfg = format!(
        r#"{head}
{device}on = ["SdkError"]
cooldown = "1h"
[[device.probe]]
name = "status"
command = ["/bin/sh", "{status}"]
interval = "200ms"
timeout = "2s"
"#,
        device = diagnosed_device("photon0", "self-test", 1, &["/bin/sh", "-c", "echo self-test of {id} ok"]),
        head = head("200ms", true),
        status = status.display()
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let sdk = |agent: &Agent| condition(&device(agent, "photon0"), "SdkError")["status"].as_str().map(str::to_owned);
    agent.wait_for("SdkError false", || sdk(&agent).as_deref() == Some("false"));
    set(dir.path(), "code", "1");
    agent.wait_for("the triggered run", || events(&agent).contains("diagnostic self-test (level 1) passed"));
    let ev = events(&agent);
    assert!(ev.contains("diagnostic self-test queued: SdkError set"), "{ev}");
    assert!(ev.contains("started on SdkError"), "{ev}");
    let d = device(&agent, "photon0");
    assert_eq!(d["diagnostics"][0]["last"]["trigger"]["by"], "condition");
    assert_eq!(d["diagnostics"][0]["last"]["trigger"]["condition"], "SdkError");

    // Cleared and set again within the cooldown: decided in the round that set it, so by the time the
    // condition shows, a second run would be queued.
    set(dir.path(), "code", "0");
    agent.wait_for("SdkError clears", || sdk(&agent).as_deref() == Some("false"));
    set(dir.path(), "code", "1");
    agent.wait_for("SdkError sets again", || sdk(&agent).as_deref() == Some("true"));
    assert_eq!(events(&agent).matches("queued: SdkError set").count(), 1, "once per cooldown");
}
