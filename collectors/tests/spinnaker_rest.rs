//! The REST client against the Java spalloc service simulator (itself checked by SpiNNMan's client in
//! sim/tests/spalloc_rest_peer.rs): HTTPS against the test CA, both logins, paged jobs, each job's
//! state and machine, and nothing kept alive or created.

use accel_sim::spalloc_rest_sim::{RestBoard, RestJobState, RestMachine, RestOptions as SimOptions, SpallocRestSim};
use collectors::spinnaker::{JobState, RestAuth, RestError, RestOptions, SpallocRestClient};
use serde_json::json;
use std::time::{Duration, Instant};

fn board(xyz: [u32; 3], physical: [u32; 3]) -> RestBoard {
    RestBoard { xyz, physical, address: format!("10.11.193.{}", physical[2] + 1) }
}

fn sim() -> SpallocRestSim {
    let sim = SpallocRestSim::start(SimOptions {
        users: vec![("monitor".into(), "s3cret pass&=%".into())],
        tokens: vec![("tok-123".into(), "robot".into())],
        page: 2,
    })
    .unwrap();
    sim.set_machines(vec![
        RestMachine {
            name: "spin5".into(),
            tags: vec!["default".into()],
            width: 1,
            height: 1,
            dead_boards: vec![board([0, 0, 2], [0, 0, 2])],
            dead_links: vec![
                (board([0, 0, 0], [0, 0, 0]), "north".into()),
                (board([0, 0, 1], [0, 0, 1]), "east".into()),
            ],
        },
        RestMachine {
            name: "big".into(),
            tags: vec!["big".into()],
            width: 2,
            height: 2,
            dead_boards: vec![],
            dead_links: vec![],
        },
    ]);
    sim.add_job(
        "alice",
        RestJobState::Ready,
        Some(("spin5", vec![board([0, 0, 0], [0, 0, 0])])),
        json!({"num-boards": 1}),
    );
    sim.add_job("bob", RestJobState::Queued, None, json!({"num-boards": 1, "machine-name": "spin5"}));
    sim.add_job("carol", RestJobState::Queued, None, json!({"num-boards": 4, "tags": ["big"]}));
    let gone = sim.add_job("dave", RestJobState::Ready, Some(("spin5", vec![board([0, 0, 1], [0, 0, 1])])), json!({}));
    sim.set_job(gone, RestJobState::Destroyed, None);
    sim.add_job(
        "erin",
        RestJobState::Power,
        Some(("big", vec![board([1, 1, 0], [0, 0, 9])])),
        json!({"tags": ["big"]}),
    );
    sim
}

fn options(sim: &SpallocRestSim) -> RestOptions {
    RestOptions { ca_file: sim.ca_file(), ..RestOptions::default() }
}

fn password() -> RestAuth {
    RestAuth::Password { username: "monitor".into(), password: "s3cret pass&=%".into() }
}

#[tokio::test]
async fn machines_and_jobs_as_the_service_lists_them() {
    let sim = sim();
    let mut c = SpallocRestClient::new(&sim.url(), password(), options(&sim)).unwrap();
    let machines = c.list_machines().await.unwrap();
    assert_eq!(c.version(), Some("7.1.0"));
    assert_eq!(machines.len(), 2);
    let spin5 = &machines[0];
    assert_eq!((spin5.name.as_str(), spin5.width, spin5.height), ("spin5", 1, 1));
    assert_eq!(spin5.dead_boards.len(), 1);
    let d = &spin5.dead_boards[0];
    assert_eq!((d.x, d.y, d.z, d.cabinet, d.frame, d.board), (0, 0, 2, Some(0), Some(0), Some(2)));
    assert_eq!(d.address.as_deref(), Some("10.11.193.3"));
    assert_eq!(spin5.dead_links.len(), 2);

    // Four live jobs over two pages; the destroyed one is not listed.
    let jobs = c.list_jobs().await.unwrap();
    let seen: Vec<(JobState, Option<&str>, Vec<&str>)> =
        jobs.iter().map(|j| (j.state, j.owner.as_deref(), j.machines(&machines))).collect();
    assert_eq!(
        seen,
        [
            (JobState::Ready, Some("alice"), vec!["spin5"]),
            (JobState::Queued, Some("bob"), vec!["spin5"]),
            (JobState::Queued, Some("carol"), vec!["big"]),
            (JobState::Power, Some("erin"), vec!["big"]),
        ]
    );
    assert_eq!(jobs[0].machine.as_deref(), Some("spin5"), "from jobs/{{id}}/machine");
    assert_eq!(jobs[1].machine, None);
    // A monitor keeps nothing alive and creates nothing.
    assert_eq!((sim.keepalives(), sim.jobs_created()), (0, 0));
    let requests = sim.requests();
    assert!(requests.iter().all(|r| r.starts_with("GET ") || r.ends_with("/system/perform_login")), "{requests:?}");
    // Queued jobs have no machine yet: the client did not ask (the service would answer 204).
    assert!(!requests.iter().any(|r| r.contains(&format!("/jobs/{}/machine", sim.jobs()[1].id))), "{requests:?}");
}

#[tokio::test]
async fn a_bearer_token_and_a_lapsed_session() {
    let sim = sim();
    let mut c = SpallocRestClient::new(&sim.url(), RestAuth::Token("tok-123".into()), options(&sim)).unwrap();
    assert_eq!(c.list_machines().await.unwrap().len(), 2);
    assert!(!sim.requests().iter().any(|r| r.contains("perform_login")));

    let mut c = SpallocRestClient::new(&sim.url(), password(), options(&sim)).unwrap();
    assert_eq!(c.list_jobs().await.unwrap().len(), 4);
    let logins = || sim.requests().iter().filter(|r| r.ends_with("/system/perform_login")).count();
    assert_eq!(logins(), 1);
    // The service restarts and forgets the session: the client logs in again once and carries on.
    sim.expire_sessions();
    assert_eq!(c.list_jobs().await.unwrap().len(), 4);
    assert_eq!(logins(), 2);
}

#[tokio::test]
async fn refusals_name_the_service_and_never_the_secret() {
    let sim = sim();
    let wrong = RestAuth::Password { username: "monitor".into(), password: "not-it-9f2".into() };
    let mut c = SpallocRestClient::new(&sim.url(), wrong, options(&sim)).unwrap();
    let e = c.list_machines().await.unwrap_err();
    assert!(matches!(e, RestError::Login { .. }), "{e}");
    let text = format!("{e} {e:?} {c:?}");
    assert!(text.contains(&sim.url()) && !text.contains("not-it-9f2"), "{text}");

    let mut c = SpallocRestClient::new(&sim.url(), RestAuth::Token("bad-token-77".into()), options(&sim)).unwrap();
    let e = c.list_jobs().await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains("bad-token-77"), "{e}");

    // A service whose certificate does not chain to the configured CA is not talked to.
    let other = SpallocRestSim::start(SimOptions::default()).unwrap();
    let before = sim.requests().len();
    let mut c = SpallocRestClient::new(&sim.url(), password(), options(&other)).unwrap();
    let e = c.list_machines().await.unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
    assert_eq!(sim.requests().len(), before, "nothing sent before the certificate checked out");

    assert!(matches!(
        SpallocRestClient::new("spalloc:22244", password(), RestOptions::default()),
        Err(RestError::Url(_))
    ));
}

#[tokio::test]
async fn the_cookie_set_at_login_is_the_one_sent_after() {
    let sim = sim();
    let mut c = SpallocRestClient::new(&sim.url(), password(), options(&sim)).unwrap();
    assert_eq!(c.list_machines().await.unwrap().len(), 2);
    let requests = sim.requests();
    let cookies = sim.session_cookies();
    assert_eq!(
        requests,
        [
            "GET /spalloc/system/login.html",
            "POST /spalloc/system/perform_login",
            "GET /spalloc/srv/spalloc/",
            "GET /spalloc/srv/spalloc/machines"
        ]
    );
    // The form's anonymous session goes back with the form; the one the login sets replaces it.
    let anon = cookies[1].clone().expect("the login form's cookie sent with the form");
    let session = cookies[2].clone().expect("the login's cookie sent after it");
    assert_eq!(cookies[0], None);
    assert_ne!(anon, session, "a new session at login");
    assert_eq!(cookies[3].as_deref(), Some(session.as_str()));
    assert_eq!(sim.sessions(), [session], "the anonymous session was dropped by the service at login");
}

#[tokio::test]
async fn a_service_that_accepts_and_never_answers_is_given_up_at_the_deadline() {
    let sim = sim();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/spalloc/", silent.local_addr().unwrap().port());
    let options = RestOptions { request_timeout: Duration::from_millis(300), ..options(&sim) };
    let mut c = SpallocRestClient::new(&url, password(), options).unwrap();
    let started = Instant::now();
    let e = c.list_machines().await.unwrap_err();
    assert!(matches!(e, RestError::Http { .. }), "{e}");
    assert!(e.to_string().contains("no answer within 300ms") && e.to_string().contains(&url), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_reply_over_the_body_cap_is_refused() {
    let sim = sim();
    // The login form is a few hundred bytes.
    let options = RestOptions { max_body: 64, ..options(&sim) };
    let mut c = SpallocRestClient::new(&sim.url(), password(), options).unwrap();
    let e = c.list_machines().await.unwrap_err();
    assert!(matches!(e, RestError::Http { .. }), "{e}");
    assert!(e.to_string().contains("system/login.html: the reply's body is over 64 bytes"), "{e}");
}
