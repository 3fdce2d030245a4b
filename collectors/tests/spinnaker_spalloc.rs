//! The spalloc client against the fake server on loopback TCP.

use std::time::Duration;

use accel_sim::spalloc_sim::{SimJob, SimMachine, SpallocSim};
use collectors::spinnaker::{JobState, SpallocClient, SpallocError, SpallocOptions};
use serde_json::json;

fn options() -> SpallocOptions {
    SpallocOptions {
        connect_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        ..SpallocOptions::default()
    }
}

fn client(sim: &SpallocSim) -> SpallocClient {
    SpallocClient::new(sim.addr().to_string(), options())
}

fn machines() -> Vec<SimMachine> {
    let mut big = SimMachine::new("spin5", 8, 6);
    big.tags = vec!["default".into(), "machine-room".into()];
    big.dead_boards = vec![[1, 2, 0], [7, 5, 2]];
    big.dead_links = vec![[0, 0, 1, 3]];
    vec![big, SimMachine::new("small", 1, 1)]
}

#[tokio::test]
async fn machines_with_dead_boards_and_links_after_version() {
    let sim = SpallocSim::start().unwrap();
    sim.set_version("0.4.1");
    sim.set_machines(machines());
    let mut c = client(&sim);
    let got = c.list_machines().await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].name, "spin5");
    assert_eq!(got[0].tags, ["default", "machine-room"]);
    assert_eq!((got[0].width, got[0].height), (8, 6));
    assert_eq!(got[0].dead_boards, [[1, 2, 0], [7, 5, 2]]);
    assert_eq!(got[0].dead_links, [[0, 0, 1, 3]]);
    assert!(got[1].dead_boards.is_empty() && got[1].dead_links.is_empty());
    assert_eq!(c.server_version(), Some("0.4.1"));
    assert_eq!(sim.commands(), ["version", "list_machines"]);

    sim.add_dead_board("small", [0, 0, 1]);
    assert_eq!(c.list_machines().await.unwrap()[1].dead_boards, [[0, 0, 1]]);
    assert_eq!(sim.connections_accepted(), 1);
}

#[tokio::test]
async fn jobs_with_states_including_unknown_numbers() {
    let sim = SpallocSim::start().unwrap();
    let mut queued = SimJob::ready(2, "bob", "spin5", vec![]);
    queued.state = 1;
    queued.machine = None;
    queued.boards = None;
    queued.power = None;
    let mut odd = SimJob::ready(3, "carol", "spin5", vec![[0, 0, 2]]);
    odd.state = 7;
    sim.set_jobs(vec![SimJob::ready(1, "alice", "spin5", vec![[0, 0, 0], [0, 0, 1]]), queued, odd]);
    let mut c = client(&sim);
    let jobs = c.list_jobs().await.unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!((jobs[0].job_id, jobs[0].owner.as_deref(), jobs[0].state), (1, Some("alice"), JobState::Ready));
    assert_eq!(jobs[0].allocated_machine_name.as_deref(), Some("spin5"));
    assert_eq!(jobs[0].boards, Some(vec![[0, 0, 0], [0, 0, 1]]));
    assert_eq!(jobs[0].power, Some(true));
    assert_eq!(
        (jobs[1].state, jobs[1].boards.as_ref(), jobs[1].allocated_machine_name.as_ref()),
        (JobState::Queued, None, None)
    );
    assert_eq!(jobs[2].state, JobState::Other(7));
    assert_eq!(jobs[2].state.as_str(), "unknown");
}

#[tokio::test]
async fn a_queued_job_belongs_to_the_machines_its_machine_or_tags_select() {
    let sim = SpallocSim::start().unwrap();
    let mut big = SimMachine::new("big", 4, 4);
    big.tags = vec!["default".into(), "big".into()];
    let mut lab = SimMachine::new("lab", 1, 1);
    lab.tags = vec!["lab".into()];
    sim.set_machines(vec![SimMachine::new("spin5", 1, 1), big, lab]);
    sim.set_jobs(vec![
        SimJob::ready(1, "alice", "big", vec![[0, 0, 0]]),
        SimJob::queued(2, "bob", json!({"tags": null})),
        SimJob::queued(3, "bob", json!({"machine": "lab"})),
        SimJob::queued(4, "bob", json!({"tags": ["big"]})),
        SimJob::queued(5, "bob", json!({"tags": ["lab", "default"]})),
    ]);
    let mut c = client(&sim);
    let machines = c.list_machines().await.unwrap();
    let jobs = c.list_jobs().await.unwrap();
    let on: Vec<Vec<&str>> = jobs.iter().map(|j| j.machines(&machines)).collect();
    assert_eq!(on[0], ["big"], "allocated: its machine only");
    assert_eq!(on[1], ["spin5", "big"], "no tags: every machine tagged default");
    assert_eq!(on[2], ["lab"], "machine= names it, whatever its tags");
    assert_eq!(on[3], ["big"]);
    assert!(on[4].is_empty(), "no machine has both tags: {:?}", on[4]);
}

#[tokio::test]
async fn notification_lines_are_skipped() {
    let sim = SpallocSim::start().unwrap();
    sim.set_machines(machines());
    sim.set_notifications_before_reply(3);
    let mut c = client(&sim);
    assert_eq!(c.list_machines().await.unwrap().len(), 2);
    // Three before the version reply, three before list_machines'.
    assert_eq!(c.notifications_skipped(), 6);

    // Pushed between calls to a connection that asked for them: waiting in the buffer when the next call
    // reads.
    sim.set_notifications_before_reply(0);
    c.call("notify_job", json!({})).await.unwrap();
    c.call("notify_machine", json!({})).await.unwrap();
    assert_eq!(sim.notify_jobs_changed(&[4, 5]), 1);
    assert_eq!(sim.notify_machines_changed(&["spin5"]), 1);
    assert!(c.list_jobs().await.unwrap().is_empty());
    assert_eq!(c.notifications_skipped(), 8);
    assert_eq!(sim.connections_accepted(), 1);
}

#[tokio::test]
async fn an_exception_is_a_typed_error_and_the_connection_survives() {
    let sim = SpallocSim::start().unwrap();
    sim.set_exception("list_jobs", Some("database is locked"));
    let mut c = client(&sim);
    let err = c.list_jobs().await.unwrap_err();
    match &err {
        SpallocError::Exception { message, command, server } => {
            assert_eq!((message.as_str(), command.as_str()), ("database is locked", "list_jobs"));
            assert_eq!(server, &sim.addr().to_string());
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&sim.addr().to_string()), "{err}");
    sim.set_exception("list_jobs", None);
    assert!(c.list_jobs().await.unwrap().is_empty());
    assert_eq!(sim.connections_accepted(), 1);
}

#[tokio::test]
async fn a_malformed_line_is_an_error_and_the_next_call_reconnects() {
    let sim = SpallocSim::start().unwrap();
    sim.set_machines(machines());
    let mut c = client(&sim);
    c.connect().await.unwrap();
    for raw in ["this is not json", "[1, 2]", "{\"neither\": 1}"] {
        sim.send_raw_next("list_machines", raw);
        let err = c.list_machines().await.unwrap_err();
        assert!(matches!(err, SpallocError::Malformed { .. }), "{raw}: {err:?}");
        assert_eq!(err.server(), sim.addr().to_string());
        assert!(!c.is_connected());
    }
    // A whole reply of the wrong shape leaves the stream in step, so the connection stays.
    sim.send_raw_next("list_machines", "{\"return\": [{\"name\": 5}]}");
    let err = c.list_machines().await.unwrap_err();
    assert!(matches!(err, SpallocError::Malformed { .. }), "{err:?}");
    assert!(c.is_connected());
    assert_eq!(c.list_machines().await.unwrap().len(), 2);
    assert_eq!(sim.connections_accepted(), 4);
}

#[tokio::test]
async fn lines_over_the_cap_are_refused() {
    let sim = SpallocSim::start().unwrap();
    sim.set_machines(machines());
    let mut c = SpallocClient::new(sim.addr().to_string(), SpallocOptions { max_line: 64, ..options() });
    let err = c.list_machines().await.unwrap_err();
    assert!(matches!(err, SpallocError::LineTooLong { limit: 64, .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_is_down_is_refused_not_waited_for() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut c = SpallocClient::new(addr.to_string(), options());
    let err = c.list_machines().await.unwrap_err();
    // With a 30 s connect timeout, Connect (not ConnectTimeout) means the refusal came back at once.
    assert!(matches!(&err, SpallocError::Connect { addr: a, .. } if *a == addr), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = SpallocClient::new(
        addr.to_string(),
        SpallocOptions { request_timeout: Duration::from_millis(100), ..SpallocOptions::default() },
    );
    let (accepted, result) = tokio::join!(listener.accept(), c.list_jobs());
    let _held_open = accepted.unwrap();
    let err = result.unwrap_err();
    assert!(matches!(&err, SpallocError::Timeout { command, .. } if command == "version"), "{err:?}");
}

#[tokio::test]
async fn a_server_that_goes_away_is_an_error_then_a_refusal() {
    let sim = SpallocSim::start().unwrap();
    let addr = sim.addr();
    let mut c = client(&sim);
    c.connect().await.unwrap();
    drop(sim);
    let err = c.list_jobs().await.unwrap_err();
    assert!(matches!(err, SpallocError::Closed { .. } | SpallocError::Io { .. }), "{err:?}");
    let err = c.list_jobs().await.unwrap_err();
    assert!(matches!(&err, SpallocError::Connect { addr: a, .. } if *a == addr), "{err:?}");
}

#[tokio::test]
async fn where_is_through_the_generic_call() {
    let sim = SpallocSim::start().unwrap();
    sim.set_machines(machines());
    sim.set_jobs(vec![SimJob::ready(9, "dave", "spin5", vec![[3, 4, 1]])]);
    let mut c = client(&sim);
    let at = c.call("where_is", json!({"machine": "spin5", "x": 3, "y": 4, "z": 1})).await.unwrap();
    assert_eq!(at["job_id"], 9);
    assert_eq!(at["logical"], json!([3, 4, 1]));
    let nowhere = c.call("where_is", json!({"machine": "spin5", "x": 30, "y": 4, "z": 1})).await.unwrap();
    assert!(nowhere.is_null());
}
