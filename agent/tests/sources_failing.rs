//! A source that fails is in plain sight: a spalloc server refusing the agent's login (a wrong password in
//! the credentials file) shows in /api/v1/status under `sources_failing` with since and reason, as a
//! finding of `agentctl diagnose` (exit 1), as one WARN log line and one journal event however many polls
//! fail, and on the landing page; once the password is right again, one INFO line and one event say it
//! recovered. The password appears in none of it.

mod common;

use accel_sim::bmp_sim::BmpSim;
use accel_sim::spalloc_rest_sim::{RestMachine, RestOptions, SpallocRestSim};
use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, agentctl};
use serde_json::Value;

const RIGHT: &str = "monitor:Right-Pw-71x\n";
const WRONG_SECRET: &str = "Wr0ng-Zz93";

fn config(bmp: &str, url: &str, ca: &str, creds: &str) -> String {
    format!(
        r#"
poll_interval = "200ms"
[discovery]
enabled = false
[spinnaker]
timeout = "100ms"
tries = 2
[[spinnaker.machine]]
name = "spin5"
spalloc = "{url}"
spalloc_ca_file = "{ca}"
spalloc_credentials_file = "{creds}"
[[spinnaker.machine.frame]]
bmp = "{bmp}"
boards = 3
"#
    )
}

fn status(agent: &Agent) -> Value {
    serde_json::from_str(&agent.get("/api/v1/status").body).expect("status JSON")
}

fn failing(agent: &Agent, source: &str, name: &str) -> Option<Value> {
    status(agent)["sources_failing"]
        .as_array()
        .expect("sources_failing is a list")
        .iter()
        .find(|f| f["source"] == source && f["name"] == name)
        .cloned()
}

fn logins(sim: &SpallocRestSim) -> usize {
    sim.requests().iter().filter(|r| r.ends_with("/system/perform_login")).count()
}

#[test]
fn a_refused_spalloc_login_is_in_status_diagnose_the_log_the_journal_and_the_page() {
    let bmp = BmpSim::start(3).unwrap();
    let sim = SpallocRestSim::start(RestOptions {
        users: vec![("monitor".into(), "Right-Pw-71x".into())],
        tokens: Vec::new(),
        page: 2,
    })
    .unwrap();
    sim.set_machines(vec![RestMachine {
        name: "spin5".into(),
        tags: vec!["default".into()],
        width: 1,
        height: 1,
        dead_boards: vec![],
        dead_links: vec![],
    }]);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("spalloc.cred");
    std::fs::write(&creds, format!("monitor:{WRONG_SECRET}\n")).unwrap();
    let toml =
        config(&bmp.addr().to_string(), &sim.url(), &sim.ca_file().display().to_string(), &creds.display().to_string());
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();

    agent.wait_for("spalloc spin5 among the failing sources", || failing(&agent, "spalloc", "spin5").is_some());
    let f = failing(&agent, "spalloc", "spin5").unwrap();
    let reason = f["reason"].as_str().unwrap();
    assert!(reason.contains("login refused"), "the reason says what is wrong: {reason}");
    let since = f["since"].as_f64().expect("since, in unix seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(since > now - 60.0 && since <= now + 1.0, "since {since} is when it started, now {now}");
    assert!(failing(&agent, "bmp", "spin5-c0-f0-b0").is_none(), "the BMPs answer: not failing");

    // Many polls fail; the log says so once, and so does the journal.
    let first = logins(&sim);
    agent.wait_for("three more refused logins", || logins(&sim) >= first + 3);
    let f2 = failing(&agent, "spalloc", "spin5").expect("still failing");
    assert_eq!(f2["since"], f["since"], "since is when it started, not the latest poll");

    let (code, out, _) = agentctl(&agent, &["diagnose"]);
    assert_eq!(code, 1, "a failing source is a warning: exit 1\n{out}");
    assert!(out.contains("source spalloc spin5"), "{out}");
    assert!(out.contains("login refused"), "{out}");
    assert!(out.contains("spalloc_credentials_file"), "the runbook step names what to check: {out}");
    assert!(!out.contains("no findings"), "{out}");

    let (code, out, _) = agentctl(&agent, &["status"]);
    assert!(out.contains("spalloc spin5 failing since "), "agentctl status says so too: {out}");
    assert_eq!(code, 0, "the devices are healthy; the source is diagnose's finding: {out}");

    let page = agent.get("/").body;
    let section = page.split_once("id=\"sources-failing\"").map(|(_, s)| s).expect("the page lists failing sources");
    assert!(section.contains("spalloc") && section.contains("spin5"), "{section}");

    let events: Value = serde_json::from_str(&agent.get("/api/v1/events?kind=source_failing").body).unwrap();
    let ours: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"].as_str().unwrap().contains("spalloc spin5"))
        .collect();
    assert_eq!(ours.len(), 1, "one event for the streak: {events:#}");
    assert_eq!(ours[0]["severity"], "warning");

    // Fixed: the right password; the next poll reads the file again and logs in.
    std::fs::write(&creds, RIGHT).unwrap();
    agent.wait_for("spalloc recovered", || failing(&agent, "spalloc", "spin5").is_none());
    assert_eq!(agent.metric("accel_spinnaker_spalloc_up", &[("machine", "spin5")]), Some(1.0));
    agent.wait_for("the recovery journalled", || {
        agent.get("/api/v1/events?kind=source_recovered").body.contains("spalloc spin5 recovered")
    });

    let logs: Vec<String> = agent.stderr.try_iter().collect();
    let warns: Vec<&String> =
        logs.iter().filter(|l| l.contains("\"WARN\"") && l.contains("spalloc spin5 failing")).collect();
    assert_eq!(warns.len(), 1, "one WARN line for the streak: {warns:#?}");
    let infos = logs.iter().filter(|l| l.contains("\"INFO\"") && l.contains("spalloc spin5 recovered")).count();
    assert_eq!(infos, 1, "one INFO line for the recovery");

    // The password is nowhere the agent shows or writes.
    assert!(!logs.iter().any(|l| l.contains(WRONG_SECRET)), "the password in the log");
    for path in ["/", "/api/v1/status", "/api/v1/events", "/metrics", "/api/v1/devices"] {
        assert!(!agent.get(path).body.contains(WRONG_SECRET), "the password in {path}");
    }
    let (_, out, _) = agentctl(&agent, &["diagnose", "--json"]);
    assert!(!out.contains(WRONG_SECRET));
}

#[test]
fn a_silent_bmp_is_a_failing_source_of_its_board() {
    let bmp = BmpSim::start(3).unwrap();
    // A BMP address nothing answers on: the loopback port of a socket that was closed again.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let toml = format!(
        "poll_interval = \"200ms\"\n[discovery]\nenabled = false\n[spinnaker]\ntimeout = \"100ms\"\ntries = 1\n\
         [[spinnaker.machine]]\nname = \"spin5\"\n[[spinnaker.machine.frame]]\nbmp = \"{}\"\nboards = 1\n\
         [[spinnaker.machine.frame]]\nbmp = \"{silent}\"\nboards = 1\n",
        bmp.addr()
    );
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();
    agent.wait_for("the silent frame's board failing", || {
        status(&agent)["sources_failing"].as_array().unwrap().iter().any(|f| f["source"] == "bmp")
    });
    let st = status(&agent);
    let bmps: Vec<&str> = st["sources_failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["source"] == "bmp")
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(bmps.len(), 1, "only the silent frame's board: {st:#}");
    assert!(bmps[0].ends_with("-f1-b0"), "{bmps:?}");
    let (code, out, _) = agentctl(&agent, &["diagnose"]);
    assert!(code >= 1, "{out}");
    assert!(out.contains(&format!("source bmp {}", bmps[0])), "{out}");
}

#[test]
fn a_spalloc_certificate_that_does_not_verify_is_a_failing_source() {
    let bmp = BmpSim::start(1).unwrap();
    let options =
        || RestOptions { users: vec![("monitor".into(), "Right-Pw-71x".into())], tokens: Vec::new(), page: 2 };
    let sim = SpallocRestSim::start(options()).unwrap();
    // Another server's CA: the service's certificate does not verify against it.
    let other = SpallocRestSim::start(options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("spalloc.cred");
    std::fs::write(&creds, RIGHT).unwrap();
    let toml = config(
        &bmp.addr().to_string(),
        &sim.url(),
        &other.ca_file().display().to_string(),
        &creds.display().to_string(),
    )
    .replace("boards = 3", "boards = 1");
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();
    agent.wait_for("spalloc spin5 failing", || failing(&agent, "spalloc", "spin5").is_some());
    let reason = failing(&agent, "spalloc", "spin5").unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("TLS: invalid peer certificate"), "the reason says the certificate: {reason}");
    assert!(!sim.requests().iter().any(|r| r.ends_with("/system/perform_login")), "no login over an unverified link");
    let (code, out, _) = agentctl(&agent, &["diagnose"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("source spalloc spin5") && out.contains("spalloc_ca_file"), "{out}");
    assert!(!out.contains("Right-Pw-71x") && !agent.get("/api/v1/status").body.contains("Right-Pw-71x"));
}

#[test]
fn a_followed_log_replaced_by_a_symlink_is_a_failing_source_until_a_file_is_back() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("loihi0.log");
    std::fs::write(&log, "").unwrap();
    let toml = format!(
        "poll_interval = \"200ms\"\n[discovery]\nenabled = false\n{}\
         [[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n[[device.log]]\npath = \"{}\"\n",
        common::host_collectors_off(),
        log.display()
    );
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();
    let name = format!("loihi0/{}", log.display());
    assert!(failing(&agent, "log", &name).is_none());
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &log).unwrap();
    agent.wait_for("the log among the failing sources", || failing(&agent, "log", &name).is_some());
    let reason = failing(&agent, "log", &name).unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("symbolic link"), "{reason}");
    let (code, out, _) = agentctl(&agent, &["diagnose"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("source log {name}")) && out.contains("not a symbolic link"), "{out}");
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, "").unwrap();
    agent.wait_for("the log off the list", || failing(&agent, "log", &name).is_none());
}

#[test]
fn a_hung_collector_is_a_failing_source_logged_once_and_recovers() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("board"), Some("devices/platform/board.0")).attr("temp1_input", "45000");
    // Rediscovery every second, so that the agent sees the file swapped below (as in tests/hang.rs).
    let toml = "poll_interval = \"200ms\"\n[collectors]\nrediscover_interval = \"1s\"\n\
                [collectors.hwmon]\ntimeout = \"100ms\"\n";
    let (agent, _cfg) = Agent::with_config(fs.root(), toml);
    agent.wait_ready();
    assert!(failing(&agent, "collector", "hwmon").is_none());
    // The attribute becomes a FIFO: its read hangs, the collector fails and skips it from then on.
    fs.fifo("devices/platform/board.0/hwmon/hwmon0/temp1_input");
    agent.wait_for("hwmon among the failing sources", || failing(&agent, "collector", "hwmon").is_some());
    let since = failing(&agent, "collector", "hwmon").unwrap()["since"].clone();
    // A second and more of failed rounds (one per 200 ms): the same streak.
    let uptime = |agent: &Agent| status(agent)["agent"]["uptime_seconds"].as_f64().unwrap();
    let started = uptime(&agent);
    agent.wait_for("a second of failed rounds", || uptime(&agent) > started + 1.5);
    assert_eq!(failing(&agent, "collector", "hwmon").unwrap()["since"], since);
    fs.remove("devices/platform/board.0/hwmon/hwmon0/temp1_input");
    fs.write("devices/platform/board.0/hwmon/hwmon0/temp1_input", "47000\n");
    agent.wait_for("hwmon recovered", || failing(&agent, "collector", "hwmon").is_none());
    agent.wait_for("the recovery journalled", || {
        agent.get("/api/v1/events?kind=source_recovered").body.contains("collector hwmon recovered")
    });
    let logs: Vec<String> = agent.stderr.try_iter().collect();
    let warns = logs.iter().filter(|l| l.contains("collector hwmon failing")).count();
    assert_eq!(warns, 1, "one WARN line for the streak: {logs:#?}");
    let failed: Value = serde_json::from_str(&agent.get("/api/v1/events?kind=source_failing").body).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed:#}");
}
