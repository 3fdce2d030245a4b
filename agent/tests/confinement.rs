//! The actions layer attacked by someone who can write beneath the sysfs root or into the state directory,
//! against the real agent and agentctl: restores that would follow a symlink, a file flipping between a
//! regular file and a symlink while throttling goes on, a forged originals file, a cut originals file
//! after a crash, and writes refused on the way. A victim file outside the root must stay untouched, and
//! every refusal must be said: as an error of agentctl, as an event, never as success.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");
const COOLING_DIR: &str = "devices/virtual/thermal/cooling_device0";
const COOLING: &str = "devices/virtual/thermal/cooling_device0/cur_state";
const LIMIT: &str = "devices/virtual/powercap/intel-rapl/intel-rapl:0/constraint_0_power_limit_uw";
const VICTIM: &str = "victim: must never be written\n";

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs.cooling_device(0, "Processor", 0, 10);
    fs.powercap_zone("0", "package-0", 1_000_000, 262_143_328_850);
    fs.write("devices/pci0000:00/0000:3b:00.0/reset", "0\n");
    fs.symlink("bus/pci/devices/0000:3b:00.0", "../../../devices/pci0000:00/0000:3b:00.0");
    fs
}

fn config(actions: &str) -> String {
    format!(
        r#"
poll_interval = "100ms"
{actions}
[discovery]
enabled = false
[[device]]
id = "acc0"
kind = "loihi"
pci_address = "0000:3b:00.0"
[device.throttle]
threshold = 200.0
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 2 }}
[[device.throttle.level]]
powercap_limit = {{ zone = "intel-rapl:0", constraint = 0, watts = 100.0 }}
[device.reconnect]
steps = ["function_reset"]
"#
    )
}

const ENABLED: &str = "[actions]\nenabled = true";

/// A file outside the sysfs root that the attacker points the agent at.
struct Victim {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Victim {
    fn new() -> Victim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("victim");
        std::fs::write(&path, VICTIM).unwrap();
        Victim { _dir: dir, path }
    }

    fn untouched(&self) -> bool {
        std::fs::read_to_string(&self.path).unwrap() == VICTIM
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl(agent: &Agent, args: &[&str]) -> Run {
    let out = Command::new(CTL)
        .arg("--socket")
        .arg(agent.state_dir.path().join("agent.sock"))
        .args(args)
        .output()
        .expect("run agentctl");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn status(agent: &Agent) -> Value {
    serde_json::from_str(&ctl(agent, &["--json", "status"]).stdout).expect("status JSON")
}

fn read(fs: &FakeSysfs, rel: &str) -> String {
    std::fs::read_to_string(fs.path(rel)).unwrap().trim().to_owned()
}

/// Replaces a file beneath the root with a symlink to `to`.
fn plant_symlink(fs: &FakeSysfs, rel: &str, to: &Path) {
    std::fs::remove_file(fs.path(rel)).unwrap();
    std::os::unix::fs::symlink(to, fs.path(rel)).unwrap();
}

fn action_events(agent: &Agent) -> String {
    agent.get("/api/v1/events?kind=action").body
}

/// Lines the agent logged so far.
fn logged(agent: &Agent) -> String {
    let mut out = String::new();
    while let Ok(line) = agent.stderr.recv_timeout(Duration::from_millis(200)) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Attack 1: a throttled file replaced by a symlink before SIGTERM, and again before the next start.
#[test]
fn restores_at_shutdown_and_after_a_restart_never_follow_a_symlink() {
    let fs = host();
    let victim = Victim::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config(ENABLED)).unwrap();
    let args = ["--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()];
    let mut agent = Agent::start(&args);
    agent.wait_ready();
    let r = ctl(&agent, &["throttle", "acc0", "1", "--for", "10m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&fs, COOLING), "2");

    plant_symlink(&fs, COOLING, &victim.path);
    agent.signal(libc::SIGTERM);
    let status = agent.child.wait().unwrap();
    let log = logged(&agent);
    assert!(status.success(), "SIGTERM ended the agent with {status}; its log:\n{log}");
    assert!(victim.untouched(), "the restore at shutdown followed the symlink");
    assert!(log.contains("restored at shutdown failed") && log.contains("symlink"), "{log}");

    // The original is still owed; the next start tries again, and refuses again.
    let state = std::mem::replace(&mut agent.state_dir, tempfile::tempdir().unwrap());
    drop(agent);
    let agent = Agent::start_in(state, &args);
    agent.wait_for("refusal", || action_events(&agent).contains("restored after a restart failed"));
    assert!(action_events(&agent).contains("symlink"), "{}", action_events(&agent));
    assert!(victim.untouched(), "the restore after a restart followed the symlink");

    // Once the file is a file again, the owed original comes back at the next restore.
    std::fs::remove_file(fs.path(COOLING)).unwrap();
    fs.write(COOLING, "2\n");
    let mut agent = agent;
    agent.signal(libc::SIGTERM);
    assert!(agent.child.wait().unwrap().success());
    assert_eq!(read(&fs, COOLING), "0");
    assert!(victim.untouched());
}

/// Attack 2: the check-then-write race. A thread flips cur_state between a regular file and a symlink to
/// the victim (atomic renames) while agentctl throttles and unthrottles, for a bounded time.
#[test]
fn a_file_flipping_to_a_symlink_while_throttling_never_lets_a_write_out() {
    let fs = host();
    let victim = Victim::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(ENABLED));
    agent.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, dir, victim) = (Arc::clone(&stop), fs.path(COOLING_DIR), victim.path.clone());
        std::thread::spawn(move || {
            let (file, regular, link) = (dir.join("cur_state"), dir.join(".regular"), dir.join(".link"));
            while !stop.load(Ordering::Relaxed) {
                let _ = std::os::unix::fs::symlink(&victim, &link);
                let _ = std::fs::rename(&link, &file);
                std::thread::sleep(Duration::from_micros(200));
                let _ = std::fs::write(&regular, "0\n");
                let _ = std::fs::rename(&regular, &file);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let (mut ok, mut refused) = (0, 0);
    let started = Instant::now();
    for cycle in 0.. {
        if started.elapsed() > Duration::from_secs(8) || (cycle >= 25 && refused > 0) {
            break;
        }
        for verb in [&["throttle", "acc0", "1"][..], &["unthrottle", "acc0"][..]] {
            let r = ctl(&agent, verb);
            match r.code {
                0 => ok += 1,
                1 => {
                    assert!(r.stderr.contains("symlink"), "a refusal names its reason: {}", r.stderr);
                    refused += 1;
                }
                other => panic!("{verb:?} exited {other}: {}", r.stderr),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(victim.untouched(), "the victim was written ({ok} succeeded, {refused} refused)");
    assert!(refused > 0, "the race was hit: {ok} succeeded, none refused");

    // With the file a file again, the device comes back to its original value, and throttles again.
    let _ = std::fs::remove_file(fs.path(COOLING));
    fs.write(COOLING, "0\n");
    let r = ctl(&agent, &["unthrottle", "acc0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&fs, COOLING), "0");
    let r = ctl(&agent, &["throttle", "acc0", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&fs, COOLING), "2");
    let r = ctl(&agent, &["unthrottle", "acc0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&fs, COOLING), "0");
    assert!(victim.untouched());
}

/// Attack 3: an originals file naming a victim outside the root, with actions disabled.
#[test]
fn a_forged_originals_file_writes_nothing_and_is_reported() {
    let fs = host();
    let victim = Victim::new();
    let state = tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap();
    let forged = format!(
        "{{\"{}\": {{\"device\": \"acc0\", \"value\": \"x\"}}, \"../../etc/x\": {{\"device\": \"acc0\", \"value\": \"x\"}}}}",
        victim.path.display()
    );
    std::fs::write(state.path().join("originals.json"), &forged).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config("")).unwrap();
    let agent =
        Agent::start_in(state, &["--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()]);
    agent.wait_ready();
    agent.wait_for("report", || action_events(&agent).matches("ignored the entry").count() == 2);
    let events = action_events(&agent);
    assert!(events.contains(&victim.path.display().to_string()), "{events}");
    assert!(events.contains("not a file the current config may write"), "{events}");
    assert!(victim.untouched());
    assert_eq!(
        std::fs::read_to_string(agent.state_dir.path().join("originals.json.rejected")).unwrap(),
        forged,
        "kept for the operator"
    );
    assert_eq!(agent.metric("accel_actions_up", &[]), Some(1.0), "the actions layer goes on");
    assert_eq!(agent.get("/-/healthy").status, 200);
}

/// Attack 4: throttled to level 2, SIGKILL, the originals file cut short, restart. What the file still
/// holds is restored, what it lost is named, and the actions layer works on.
#[test]
fn a_cut_originals_file_after_a_crash_restores_what_it_can_and_says_what_it_cannot() {
    let fs = host();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config(ENABLED)).unwrap();
    let args = ["--config", cfg.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()];
    let mut agent = Agent::start(&args);
    agent.wait_ready();
    let r = ctl(&agent, &["throttle", "acc0", "2", "--for", "10m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!((read(&fs, COOLING), read(&fs, LIMIT)), ("2".into(), "100000000".into()));
    agent.signal(libc::SIGKILL);
    let _ = agent.child.wait();
    let state = std::mem::replace(&mut agent.state_dir, tempfile::tempdir().unwrap());
    drop(agent);

    // Cut inside the second entry (entries are sorted: the power limit first, then the cooling state).
    let file = state.path().join("originals.json");
    let whole = std::fs::read_to_string(&file).unwrap();
    let cut = whole.find(COOLING).expect("the cooling state was saved") + 10;
    std::fs::write(&file, &whole[..cut]).unwrap();

    let agent = Agent::start_in(state, &args);
    agent.wait_for("limit restored", || read(&fs, LIMIT) == "150000000");
    agent.wait_for("report", || action_events(&agent).contains("cannot restore"));
    let events = action_events(&agent);
    assert!(events.contains("damaged (it is cut short or not valid JSON); 1 saved originals recovered"), "{events}");
    assert!(events.contains(&format!("cannot restore {}: it holds 2", fs.path(COOLING).display())), "{events}");
    assert_eq!(read(&fs, COOLING), "2", "its original is unknown: left as it is, not guessed");

    // The actions layer is alive and honest.
    agent.wait_ready();
    assert_eq!(agent.metric("accel_actions_up", &[]), Some(1.0));
    assert_eq!(agent.get("/-/healthy").status, 200);
    let s = status(&agent);
    assert_eq!(s["agent"]["actions"], "enabled");
    assert_eq!(s["agent"]["actions_stopped"], Value::Null);
    fs.write(COOLING, "0\n"); // the operator sets it back by hand, as the event says
    let r = ctl(&agent, &["throttle", "acc0", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&fs, COOLING), "2");
    assert_eq!(status(&agent)["devices"][0]["throttle_level"], 1);
    let r = ctl(&agent, &["unthrottle", "acc0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&fs, COOLING), "0");
}

/// Attack 5: a refused throttle write is an error, not "held at level 1"; so is a refused reconnect.
#[test]
fn refused_writes_are_errors_of_agentctl_and_change_nothing() {
    let fs = host();
    let victim = Victim::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(ENABLED));
    agent.wait_ready();
    plant_symlink(&fs, COOLING, &victim.path);
    let r = ctl(&agent, &["throttle", "acc0", "1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("held at level"), "{}", r.stdout);
    assert!(r.stderr.contains("throttle 0 -> 1 failed") && r.stderr.contains("symlink"), "{}", r.stderr);
    assert!(r.stderr.contains("the previous throttle setting stays in force"), "{}", r.stderr);
    assert!(victim.untouched());
    let s = status(&agent);
    assert_eq!(s["devices"][0]["throttle_level"], 0);
    assert_eq!(s["devices"][0]["manual_throttle"], Value::Null, "a change that failed is not held");

    plant_symlink(&fs, "devices/pci0000:00/0000:3b:00.0/reset", &victim.path);
    let r = ctl(&agent, &["reconnect", "acc0"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("reconnect step function_reset failed") && r.stderr.contains("symlink"), "{}", r.stderr);
    assert!(victim.untouched());
    let mut json = ctl(&agent, &["--json", "reconnect", "acc0"]);
    assert_eq!(json.code, 1);
    let v: Value = serde_json::from_str(&std::mem::take(&mut json.stdout)).unwrap();
    assert!(v["error"].as_str().unwrap().contains("symlink"), "{v}");
}
