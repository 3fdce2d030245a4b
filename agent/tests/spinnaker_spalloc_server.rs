//! The agent against the real spalloc-server (PyPI, pinned, in the venv `scripts/spinnaker-venv.sh`
//! makes) whose machine's BMP is `bmp-sim`: the server powers boards on through the simulator, checks
//! their FPGAs and brings jobs to READY, and the agent's dead boards, dead links and jobs by state must
//! match what the server itself lists. Without the venv the test is compiled ignored (a failure under
//! ACCEL_REQUIRE_EXTERNAL, as in CI).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use accel_sim::bmp_sim::{BmpSim, FPGA_FLAG_REGISTER, SimOptions};
use accel_sim::peers::{self, ServerMachine, SpallocServer, V1};
use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;
use serde_json::{Value, json};

/// The venv's python; the test is compiled ignored without the venv (sim/external_tools.rs), so it
/// gets here without one only under ACCEL_REQUIRE_EXTERNAL or --include-ignored, and fails.
fn python() -> std::path::PathBuf {
    peers::spinnaker_python().unwrap_or_else(|| {
        panic!("no SpiNNaker venv at {}: run scripts/spinnaker-venv.sh", peers::spinnaker_venv().display())
    })
}

/// A frame of three boards listening on UDP 17893 of a loopback address of its own.
fn frame_on_17893() -> BmpSim {
    let mut last = None;
    for attempt in 0..20 {
        let ip = peers::fresh_loopback_ip(attempt);
        let options = SimOptions { boards: 3, bind: (ip, 17893).into(), ..SimOptions::default() };
        match BmpSim::with_options(options) {
            Ok(sim) => return sim,
            Err(e) => last = Some(e),
        }
    }
    panic!("no loopback address free at UDP 17893: {last:?}");
}

/// Jobs on machine `m` by state, from the server's own list: allocated jobs by their machine, and
/// (this machine being the only one) every unallocated queued job.
fn server_jobs(jobs: &Value, m: &str) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::from([("queued", 0), ("power", 0), ("ready", 0)]);
    for j in jobs.as_array().expect("list_jobs returns a list") {
        let machine = j["allocated_machine_name"].as_str();
        let state = match (j["state"].as_u64(), machine) {
            (Some(1), None) => "queued",
            (Some(2), Some(name)) if name == m => "power",
            (Some(3), Some(name)) if name == m => "ready",
            other => panic!("a job spalloc-server should not list: {other:?} in {j}"),
        };
        *out.get_mut(state).expect("one of the three") += 1;
    }
    out
}

fn agent_jobs(agent: &Agent, m: &str) -> BTreeMap<&'static str, usize> {
    ["queued", "power", "ready"]
        .into_iter()
        .filter_map(|s| Some((s, agent.metric("accel_spinnaker_jobs", &[("machine", m), ("state", s)])? as usize)))
        .collect()
}

/// Waits until the agent's job counts equal the server's (read before and after the agent's, and the
/// same both times) and `want` holds for them; returns them.
fn matched_jobs(
    agent: &Agent,
    v1: &mut V1,
    server: &SpallocServer,
    what: &str,
    want: impl Fn(&BTreeMap<&'static str, usize>) -> bool,
) -> BTreeMap<&'static str, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let before = v1.call("list_jobs", json!([]), json!({})).expect("list_jobs");
        let ours = agent_jobs(agent, "spin5");
        let after = v1.call("list_jobs", json!([]), json!({})).expect("list_jobs");
        let (before, after) = (server_jobs(&before, "spin5"), server_jobs(&after, "spin5"));
        if before == after && ours == before && want(&ours) {
            return ours;
        }
        seen.push(format!("server {before:?} agent {ours:?}"));
        assert!(Instant::now() < deadline, "{what}: never matched; last: {:?}\n{}", seen.last(), server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(not(has_spinnaker_venv), ignore = "no SpiNNaker venv: run scripts/spinnaker-venv.sh")]
fn the_agent_reports_what_the_real_spalloc_server_lists() {
    let python = python();
    let bmp = frame_on_17893();
    let std::net::IpAddr::V4(bmp_ip) = bmp.addr().ip() else { unreachable!("bound to IPv4") };
    let machine = ServerMachine {
        name: "spin5".into(),
        tags: vec!["default".into()],
        width: 1,
        height: 1,
        bmp: bmp_ip,
        dead_boards: vec![[0, 0, 2]],
        dead_links: vec![[0, 0, 0, 2], [0, 0, 1, 0]],
    };
    let server = SpallocServer::start(&python, &[machine]).unwrap_or_else(|e| panic!("{e}"));
    let mut v1 = server.connect().expect("connect to spalloc-server");

    let fs = FakeSysfs::new();
    let config = format!(
        r#"
poll_interval = "200ms"
[discovery]
enabled = false
[spinnaker]
timeout = "200ms"
tries = 3
[[spinnaker.machine]]
name = "spin5"
spalloc = "{}"
[[spinnaker.machine.frame]]
bmp = "{}"
boards = 3
"#,
        server.addr(),
        bmp.addr()
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &config);
    agent.wait_ready();

    // Dead boards and links: as the server lists them.
    let machines = v1.call("list_machines", json!([]), json!({})).expect("list_machines");
    let listed = &machines[0];
    assert_eq!(listed["dead_boards"], json!([[0, 0, 2]]), "{machines}");
    let m = ("machine", "spin5");
    agent.wait_for("spalloc read", || agent.metric("accel_spinnaker_spalloc_up", &[m]) == Some(1.0));
    let count = |v: &Value| v.as_array().map(|a| a.len() as f64);
    assert_eq!(agent.metric("accel_spinnaker_machine_dead_boards", &[m]), count(&listed["dead_boards"]));
    assert_eq!(agent.metric("accel_spinnaker_machine_dead_links", &[m]), count(&listed["dead_links"]));
    assert_eq!(count(&listed["dead_links"]), Some(2.0));
    // The server places (0, 0, 2) at cabinet 0, frame 0, board 2: that board's device, and only it.
    let where_is = v1.call("where_is", json!([]), json!({"machine": "spin5", "x": 0, "y": 0, "z": 2})).unwrap();
    assert_eq!(where_is["physical"], json!([0, 0, 2]));
    let condition = |b: &str| agent.metric("accel_device_condition", &[("device", b), ("condition", "SdkError")]);
    agent.wait_for("dead board marked", || condition("spin5-c0-f0-b2") == Some(1.0));
    assert_eq!(condition("spin5-c0-f0-b0"), Some(0.0));
    assert_eq!(condition("spin5-c0-f0-b1"), Some(0.0));

    // Three one-board jobs on a machine with two live boards: two are powered (the server waits 5 s
    // after power-on, then reads every FPGA's FLAG register), the third waits in the queue.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = v1.call("create_job", json!([]), json!({"owner": "accel-agent-ci", "keepalive": null}));
        ids.push(id.expect("create_job").as_u64().expect("a job id"));
    }
    let powering = matched_jobs(&agent, &mut v1, &server, "boards powering", |j| j["power"] >= 1 && j["queued"] == 1);
    assert_eq!(powering["power"] + powering["ready"], 2, "{powering:?}");
    let ready = matched_jobs(&agent, &mut v1, &server, "both ready", |j| j["ready"] == 2);
    assert_eq!(ready, BTreeMap::from([("queued", 1), ("power", 0), ("ready", 2)]));
    // The server got through its FPGA check: each powered board's FPGAs answered with their numbers.
    for fpga in 0..3 {
        assert_eq!(bmp.fpga_register(0, fpga, FPGA_FLAG_REGISTER), Some(u32::from(fpga)));
    }
    let ons: Vec<u32> = bmp.power_commands().iter().filter(|c| c.on).map(|c| c.mask).collect();
    assert_eq!(ons.iter().fold(0, |all, m| all | m), 0b011, "boards 0 and 1 powered on, never the dead one: {ons:?}");

    // The first job goes: the queued one gets its board, is powered and becomes ready.
    v1.call("destroy_job", json!([ids[0]]), json!({})).expect("destroy_job");
    let last = matched_jobs(&agent, &mut v1, &server, "queue drained", |j| j["queued"] == 0 && j["ready"] == 2);
    assert_eq!(last["power"], 0);
    assert_eq!(agent.get("/-/healthy").status, 200);
}
