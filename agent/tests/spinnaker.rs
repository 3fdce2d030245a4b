//! SpiNNaker boards through the real agent: a simulated frame's BMP on loopback UDP, a simulated spalloc
//! server on loopback TCP. Board readings become device metrics, a silent BMP makes boards Offline, a
//! board whose SC&MP stays silent is power-cycled through its BMP, and spalloc's dead boards mark devices.

mod common;

use std::time::Duration;

use accel_sim::bmp_sim::{BmpSim, Fault, SimBoard, SimOptions};
use accel_sim::spalloc_sim::{SimJob, SimMachine, SpallocSim};
use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

fn config(bmp: &str, spalloc: &str, extra_frame: &str, machine_extra: &str) -> String {
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
spalloc = "{spalloc}"
{machine_extra}
[[spinnaker.machine.frame]]
bmp = "{bmp}"
boards = 3
{extra_frame}
"#
    )
}

#[test]
fn board_readings_dead_boards_jobs_and_a_silent_bmp() {
    let bmp = BmpSim::start(3).unwrap();
    bmp.set_board(
        0,
        SimBoard { temp_top: 41.5, temp_ext0: Some(28.25), fan0: Some(2400), warning: 0x4, ..SimBoard::default() },
    );
    let spalloc = SpallocSim::start().unwrap();
    let mut big = SimMachine::new("big", 2, 2);
    big.tags = vec!["big".into()];
    spalloc.set_machines(vec![SimMachine::new("spin5", 1, 1), big]);
    // The simulator places logical (0, 0, z) at cabinet 0, frame 0, board z.
    assert!(spalloc.add_dead_board("spin5", [0, 0, 1]));
    // Queued jobs have no machine yet: they count where their machine or tags put them in the queue.
    spalloc.set_jobs(vec![
        SimJob::ready(7, "alice", "spin5", vec![[0, 0, 0]]),
        SimJob::queued(8, "bob", serde_json::json!({"tags": null})),
        SimJob::queued(9, "bob", serde_json::json!({"machine": "spin5"})),
        SimJob::queued(10, "carol", serde_json::json!({"tags": ["big"]})),
    ]);
    let fs = FakeSysfs::new();
    let (agent, _cfg) =
        Agent::with_config(fs.root(), &config(&bmp.addr().to_string(), &spalloc.addr().to_string(), "", ""));
    agent.wait_ready();
    let b0 = ("device", "spin5-c0-f0-b0");
    agent.wait_for("board 0 read", || {
        agent.metric("accel_device_temperature_celsius", &[b0, ("sensor", "top")]).is_some()
    });
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[b0, ("sensor", "top")]), Some(41.5));
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[b0, ("sensor", "ext0")]), Some(28.25));
    assert_eq!(agent.metric("accel_device_temperature_celsius", &[b0, ("sensor", "ext1")]), None, "no probe: absent");
    assert_eq!(agent.metric("accel_device_fan_rpm", &[b0, ("sensor", "fan0")]), Some(2400.0));
    assert_eq!(agent.metric("accel_device_fan_rpm", &[b0, ("sensor", "fan1")]), None, "no fan: absent");
    let supply = agent.metric("accel_device_voltage_volts", &[b0, ("sensor", "supply")]).unwrap();
    assert!((supply - 12.0).abs() < 15.0 / 4096.0, "12 V within one ADC step: {supply}");
    assert_eq!(agent.metric("accel_spinnaker_board_warning_bits", &[b0]), Some(4.0));
    assert_eq!(agent.metric("accel_device_up", &[b0]), Some(1.0));
    assert_eq!(
        agent.metric("accel_device_info", &[b0, ("kind", "spinnaker-board"), ("firmware", "BC&MP/SpiNN-5 2.1.0")]),
        Some(1.0),
        "the firmware its BMP's VER names"
    );

    let m = ("machine", "spin5");
    agent.wait_for("spalloc read", || agent.metric("accel_spinnaker_machine_dead_boards", &[m]) == Some(1.0));
    assert_eq!(agent.metric("accel_spinnaker_machine_dead_links", &[m]), Some(0.0));
    assert_eq!(agent.metric("accel_spinnaker_jobs", &[m, ("state", "ready")]), Some(1.0));
    assert_eq!(agent.metric("accel_spinnaker_jobs", &[m, ("state", "queued")]), Some(2.0), "job 8 and job 9");
    assert_eq!(agent.metric("accel_spinnaker_jobs", &[m, ("state", "power")]), Some(0.0));
    for state in ["unknown", "destroyed"] {
        assert_eq!(agent.metric("accel_spinnaker_jobs", &[m, ("state", state)]), None, "{state}: never listed");
    }
    assert_eq!(agent.metric("accel_spinnaker_spalloc_up", &[m]), Some(1.0));
    let b1 = ("device", "spin5-c0-f0-b1");
    agent.wait_for("dead board marked", || {
        agent.metric("accel_device_condition", &[b1, ("condition", "SdkError")]) == Some(1.0)
    });
    let sdk = |b: &str| agent.metric("accel_device_condition", &[("device", b), ("condition", "SdkError")]);
    assert_eq!(sdk("spin5-c0-f0-b2"), Some(0.0));
    // Board 0's BMP raised warning flag 0x4: its own alarm, with the flags in the reason's message.
    assert_eq!(sdk("spin5-c0-f0-b0"), Some(1.0));
    let detail = agent.get("/api/v1/devices/spin5-c0-f0-b0").body;
    assert!(detail.contains("BmpWarning") && detail.contains("0x00000004"), "{detail}");

    // Serial numbers, and which boards the frame's BMP sees on its CAN bus.
    let serial = |b: u8| {
        let [a, b_, c, d] = accel_sim::bmp_sim::default_serial(0, b);
        format!("{a:08x}-{b_:08x}-{c:08x}-{d:08x}")
    };
    for b in 0..3u8 {
        let id = format!("spin5-c0-f0-b{b}");
        agent.wait_for("serial read", || {
            agent.metric("accel_spinnaker_board_info", &[("device", &id), ("serial", &serial(b))]) == Some(1.0)
        });
        assert_eq!(agent.metric("accel_spinnaker_board_on_can", &[("device", &id)]), Some(1.0));
    }
    // Board 2's BMP drops off the CAN bus: the frame's BMP says so, and the board is Offline.
    bmp.set_on_can(2, false);
    let b2 = ("device", "spin5-c0-f0-b2");
    agent.wait_for("off the CAN bus", || agent.metric("accel_spinnaker_board_on_can", &[b2]) == Some(0.0));
    agent.wait_for("board 2 offline", || agent.metric("accel_device_up", &[b2]) == Some(0.0));
    assert_eq!(agent.metric("accel_spinnaker_board_on_can", &[("device", "spin5-c0-f0-b1")]), Some(1.0));
    bmp.set_on_can(2, true);
    agent.wait_for("back on the bus", || agent.metric("accel_device_up", &[b2]) == Some(1.0));
    // The BMP shuts board 1 down: SdkError, unhealthy, with the shutdown flags.
    bmp.update_board(1, |b| b.shutdown = 0x20);
    agent.wait_for("shutdown flagged", || agent.get("/api/v1/devices/spin5-c0-f0-b1").body.contains("BmpShutdown"));
    assert!(agent.get("/api/v1/devices/spin5-c0-f0-b1").body.contains("0x00000020"));
    assert_eq!(sdk("spin5-c0-f0-b1"), Some(1.0));
    let detail = agent.get("/api/v1/devices/spin5-c0-f0-b1").body;
    assert!(detail.contains("SpallocListsDead"), "{detail}");

    // The BMP falls silent: every board of the frame goes Offline; the agent itself stays fine.
    bmp.set_fault(Fault::Silent);
    agent.wait_for("offline", || agent.metric("accel_device_up", &[b0]) == Some(0.0));
    for b in ["spin5-c0-f0-b0", "spin5-c0-f0-b1", "spin5-c0-f0-b2"] {
        assert_eq!(agent.metric("accel_device_condition", &[("device", b), ("condition", "Offline")]), Some(1.0));
    }
    assert!(agent.get("/api/v1/devices/spin5-c0-f0-b2").body.contains("BmpNotAnswering"));
    assert!(agent.metric("accel_spinnaker_scp_packets_total", &[("kind", "timeout")]).unwrap() > 0.0);
    assert_eq!(agent.get("/-/healthy").status, 200);
    bmp.set_fault(Fault::None);
    agent.wait_for("back", || agent.metric("accel_device_up", &[b0]) == Some(1.0));
}

#[test]
fn a_board_that_does_not_boot_is_power_cycled_through_its_bmp() {
    let bmp = BmpSim::start(3).unwrap();
    // Board 2's SC&MP: silent until the board is power-cycled.
    let scamp = BmpSim::with_options(SimOptions { boards: 1, text: "SC&MP/SpiNNaker".into(), ..SimOptions::default() })
        .unwrap();
    scamp.set_fault(Fault::Silent);
    let frame = format!("scamp = [\"\", \"\", \"{}\"]", scamp.addr());
    let ladder = "reconnect = { steps = [\"power_cycle\"], settle = \"2s\", backoff_initial = \"1s\" }";
    let fs = FakeSysfs::new();
    let cfg = format!("{}[actions]\nenabled = true\n", config(&bmp.addr().to_string(), "127.0.0.1:1", &frame, ladder));
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    let b2 = ("device", "spin5-c0-f0-b2");
    agent.wait_for("not booted", || agent.metric("accel_device_up", &[b2]) == Some(0.0));
    assert!(agent.get("/api/v1/devices/spin5-c0-f0-b2").body.contains("BoardNotBooted"));
    assert_eq!(agent.metric("accel_device_up", &[("device", "spin5-c0-f0-b0")]), Some(1.0), "only board 2");

    let cmds = bmp.wait_power_commands(2, Duration::from_secs(20));
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(!cmds[0].on && cmds[1].on, "off, then on: {cmds:?}");
    for c in &cmds {
        assert_eq!((c.mask, c.board), (1 << 2, 0), "board 2's bit, sent to board 0: {c:?}");
    }
    scamp.set_fault(Fault::None);
    agent.wait_for("booted", || agent.metric("accel_device_up", &[b2]) == Some(1.0));
    agent.wait_for("recovery counted", || {
        agent.metric("accel_reconnect_attempts_total", &[b2, ("step", "power_cycle"), ("result", "recovered")])
            == Some(1.0)
    });
    let events = agent.get("/api/v1/events?device=spin5-c0-f0-b2&kind=action").body;
    assert!(events.contains("off and on again"), "{events}");
    // spalloc at a closed port is a failed source, not a failed agent.
    assert_eq!(agent.metric("accel_spinnaker_spalloc_up", &[("machine", "spin5")]), Some(0.0));
    assert_eq!(agent.metric("accel_spinnaker_machine_dead_boards", &[("machine", "spin5")]), None);
}

#[test]
fn the_java_spalloc_service_over_rest() {
    use accel_sim::spalloc_rest_sim::{
        RestBoard, RestJobState, RestMachine, RestOptions as RestSimOptions, SpallocRestSim,
    };
    let board = |z: u32| RestBoard { xyz: [0, 0, z], physical: [0, 0, z], address: format!("10.11.193.{}", z + 1) };
    let bmp = BmpSim::start(3).unwrap();
    let sim = SpallocRestSim::start(RestSimOptions {
        users: vec![("monitor".into(), "pw-Zq81!x".into())],
        tokens: Vec::new(),
        page: 2,
    })
    .unwrap();
    sim.set_machines(vec![
        RestMachine {
            name: "spin5".into(),
            tags: vec!["default".into()],
            width: 1,
            height: 1,
            dead_boards: vec![board(1)],
            dead_links: vec![(board(0), "north".into()), (board(2), "south".into())],
        },
        RestMachine {
            name: "lab".into(),
            tags: vec!["lab".into()],
            width: 1,
            height: 1,
            dead_boards: vec![],
            dead_links: vec![],
        },
    ]);
    sim.add_job("alice", RestJobState::Ready, Some(("spin5", vec![board(0)])), serde_json::json!({"num-boards": 1}));
    let bob =
        sim.add_job("bob", RestJobState::Power, Some(("spin5", vec![board(2)])), serde_json::json!({"num-boards": 1}));
    // Queued: by machine name, by the default tag, and one for another machine's tag.
    sim.add_job("carol", RestJobState::Queued, None, serde_json::json!({"machine-name": "spin5"}));
    sim.add_job("dave", RestJobState::Queued, None, serde_json::json!({"tags": ["default"]}));
    sim.add_job("erin", RestJobState::Queued, None, serde_json::json!({"tags": ["lab"]}));
    let gone = sim.add_job("frank", RestJobState::Ready, Some(("spin5", vec![board(0)])), serde_json::json!({}));
    sim.set_job(gone, RestJobState::Destroyed, None);

    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("spalloc.cred");
    std::fs::write(&creds, "monitor:pw-Zq81!x\n").unwrap();
    let machine_extra = format!(
        "spalloc_ca_file = \"{}\"\nspalloc_credentials_file = \"{}\"",
        sim.ca_file().display(),
        creds.display()
    );
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), &config(&bmp.addr().to_string(), &sim.url(), "", &machine_extra));
    agent.wait_ready();
    let m = ("machine", "spin5");
    agent.wait_for("REST spalloc read", || agent.metric("accel_spinnaker_spalloc_up", &[m]) == Some(1.0));
    assert_eq!(agent.metric("accel_spinnaker_machine_dead_boards", &[m]), Some(1.0));
    assert_eq!(agent.metric("accel_spinnaker_machine_dead_links", &[m]), Some(2.0));
    let jobs = |s: &str| agent.metric("accel_spinnaker_jobs", &[m, ("state", s)]);
    assert_eq!((jobs("ready"), jobs("power"), jobs("queued")), (Some(1.0), Some(1.0), Some(2.0)));
    assert_eq!(jobs("destroyed"), None);
    // The service lists the dead board with its cabinet, frame and board: that device, and only it.
    let sdk = |b: &str| agent.metric("accel_device_condition", &[("device", b), ("condition", "SdkError")]);
    agent.wait_for("dead board marked", || sdk("spin5-c0-f0-b1") == Some(1.0));
    assert_eq!(sdk("spin5-c0-f0-b0"), Some(0.0));
    assert!(agent.get("/api/v1/devices/spin5-c0-f0-b1").body.contains("SpallocListsDead"));
    // A monitor keeps nothing alive and creates nothing; the password is nowhere the agent shows.
    assert_eq!((sim.keepalives(), sim.jobs_created()), (0, 0));
    for path in ["/metrics", "/api/v1/devices", "/api/v1/devices/spin5-c0-f0-b1", "/api/v1/events"] {
        assert!(!agent.get(path).body.contains("pw-Zq81"), "{path}");
    }
    let logs: Vec<String> = agent.stderr.try_iter().collect();
    assert!(!logs.iter().any(|l| l.contains("pw-Zq81")), "the password in the log");

    // The service forgets the session: the agent logs in again and keeps counting.
    sim.expire_sessions();
    sim.set_job(bob, RestJobState::Ready, Some(("spin5", vec![board(2)])));
    agent.wait_for("bob's job ready, seen after a new login", || {
        jobs("ready") == Some(2.0) && jobs("power") == Some(0.0)
    });
    let logins = sim.requests().iter().filter(|r| r.ends_with("/system/perform_login")).count();
    assert!(logins >= 2, "logged in again: {logins}");
}
