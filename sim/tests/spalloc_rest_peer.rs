//! The Java spalloc service simulator (`accel_sim::spalloc_rest_sim`) proven faithful by the service's
//! own Python client: SpiNNMan's `SpallocClient` (pinned, in the venv `scripts/spinnaker-venv.sh` makes)
//! logs in through the form (CSRF token and session cookie) and with a bearer token, over HTTPS trusting
//! only the test CA, lists the machines, creates a job, lists jobs (across pages) and destroys the job,
//! and must get exactly what the simulator says it serves. Compiled ignored without the venv.

use std::process::Command;

use accel_sim::peers;
use accel_sim::spalloc_rest_sim::{RestBoard, RestJobState, RestMachine, RestOptions, SpallocRestSim};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, sys
from spinnman.spalloc import SpallocClient

url, how, secret = sys.argv[1], sys.argv[2], sys.argv[3]
if how == "token":
    client = SpallocClient(url, bearer_token=secret)
else:
    client = SpallocClient(url, how, secret)
out = {"version": str(client.version)}
out["machines"] = {
    name: {"tags": sorted(m.tags), "width": m.width, "height": m.height,
           "dead-boards": m.dead_boards, "dead-links": m.dead_links}
    for name, m in client.list_machines().items()}
job = client.create_job(1, "spin5")
out["created"] = job.get_state().name
out["jobs"] = [[j._url, j.get_state().name] for j in client.list_jobs()]
job.destroy("peer test over")
out["destroyed"] = job.get_state().name
out["after"] = [j._url for j in client.list_jobs()]
client.close()
print(json.dumps(out))
"#;

fn board(xyz: [u32; 3], physical: [u32; 3], address: &str) -> RestBoard {
    RestBoard { xyz, physical, address: address.into() }
}

fn sim() -> SpallocRestSim {
    let options = RestOptions {
        users: vec![("monitor".into(), "s3cret pass&=%".into())],
        tokens: vec![("tok-123".into(), "robot".into())],
        page: 2,
    };
    let sim = SpallocRestSim::start(options).expect("start the simulator");
    sim.set_machines(vec![
        RestMachine {
            name: "spin5".into(),
            tags: vec!["default".into(), "big".into()],
            width: 2,
            height: 1,
            dead_boards: vec![board([1, 0, 2], [0, 0, 5], "10.11.193.41")],
            dead_links: vec![(board([0, 0, 0], [0, 0, 0], "10.11.193.1"), "north".into())],
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
    // Two jobs already there: someone else's ready one, and a queued one.
    sim.add_job(
        "alice",
        RestJobState::Ready,
        Some(("spin5", vec![board([0, 0, 0], [0, 0, 0], "10.11.193.1")])),
        json!({"num-boards": 1, "machine-name": "spin5"}),
    );
    sim.add_job("bob", RestJobState::Queued, None, json!({"num-boards": 3, "tags": ["big"]}));
    sim
}

fn run(sim: &SpallocRestSim, how: &str, secret: &str) -> Value {
    let python = peers::spinnaker_python().expect("the SpiNNaker venv (scripts/spinnaker-venv.sh)");
    let out = Command::new(python)
        .args(["-c", SCRIPT, &sim.url(), how, secret])
        // Only the test CA is trusted: the client must verify the certificate, not skip it.
        .env("REQUESTS_CA_BUNDLE", sim.ca_file())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run python");
    assert!(out.status.success(), "SpallocClient failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check(sim: &SpallocRestSim, got: &Value, owner: &str) {
    assert_eq!(got["version"], "7.1.0");
    assert_eq!(
        got["machines"]["spin5"],
        json!({
            "tags": ["big", "default"], "width": 2, "height": 1,
            "dead-boards": [{"x": 1, "y": 0, "z": 2, "cabinet": 0, "frame": 0, "board": 5, "address": "10.11.193.41"}],
            "dead-links": [{"x": 0, "y": 0, "z": 0, "cabinet": 0, "frame": 0, "board": 0, "address": "10.11.193.1",
                            "direction": "north"}],
        })
    );
    assert_eq!(got["machines"]["lab"]["dead-boards"], json!([]));
    assert_eq!(got["created"], "QUEUED");
    // Three live jobs over two pages of two, in the simulator's order, with the trailing slash the
    // client adds.
    let api = sim.api();
    let ids: Vec<u64> = sim.jobs().iter().map(|j| j.id).collect();
    let mine = *ids.last().expect("the created job");
    let listed: Vec<Value> = got["jobs"].as_array().expect("jobs").clone();
    assert_eq!(listed.len(), ids.len(), "{listed:?}");
    assert_eq!(listed[0], json!([format!("{api}jobs/{}/", ids[0]), "READY"]));
    assert_eq!(listed.last().cloned(), Some(json!([format!("{api}jobs/{mine}/"), "QUEUED"])));
    assert_eq!(got["destroyed"], "DESTROYED");
    let after: Vec<Value> = got["after"].as_array().expect("after").clone();
    assert!(!after.contains(&json!(format!("{api}jobs/{mine}/"))), "destroyed jobs are not listed: {after:?}");
    let job = sim.jobs().into_iter().find(|j| j.id == mine).expect("the job");
    assert_eq!((job.owner.as_str(), job.state), (owner, RestJobState::Destroyed));
    assert_eq!(job.reason.as_deref(), Some("peer test over"));
    assert_eq!(job.request, json!({"num-boards": 1, "keepalive-interval": "PT45S", "machine-name": "spin5"}));
}

#[test]
#[cfg_attr(not(has_spinnaker_venv), ignore = "no SpiNNaker venv: run scripts/spinnaker-venv.sh")]
fn spinnmans_client_logs_in_with_the_form_and_drives_the_simulator() {
    let sim = sim();
    let got = run(&sim, "monitor", "s3cret pass&=%");
    check(&sim, &got, "monitor");
    let requests = sim.requests();
    assert!(requests.iter().any(|r| r.ends_with("/system/perform_login")), "{requests:?}");
    assert_eq!(sim.jobs_created(), 1);
}

#[test]
#[cfg_attr(not(has_spinnaker_venv), ignore = "no SpiNNaker venv: run scripts/spinnaker-venv.sh")]
fn spinnmans_client_with_a_bearer_token() {
    let sim = sim();
    let got = run(&sim, "token", "tok-123");
    check(&sim, &got, "robot");
    assert!(!sim.requests().iter().any(|r| r.ends_with("/system/perform_login")));
}

#[test]
#[cfg_attr(not(has_spinnaker_venv), ignore = "no SpiNNaker venv: run scripts/spinnaker-venv.sh")]
fn a_wrong_password_gets_no_session() {
    let sim = sim();
    let python = peers::spinnaker_python().expect("venv");
    let out = Command::new(python)
        .args(["-c", SCRIPT, &sim.url(), "monitor", "wrong"])
        .env("REQUESTS_CA_BUNDLE", sim.ca_file())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("run python");
    assert!(!out.status.success(), "logged in with a wrong password");
    // The form login answered with no session cookie, which is where SpiNNMan's renew() stops.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KeyError") && stderr.contains("name='JSESSIONID'"), "{stderr}");
    assert_eq!(sim.jobs_created(), 0);
    assert!(sim.requests().iter().any(|r| r.ends_with("/system/perform_login")));
    assert!(!sim.requests().iter().any(|r| r.ends_with("/srv/spalloc/machines")));
}
