//! Budgets that add up (issue 23): thousands of TCP connections, idle or sending wrong passwords, cannot
//! take the descriptors the agent needs for its own work, nor lock a scraper with valid credentials out.
//!
//! Both tests run the real agent and hold thousands of real loopback connections, from several source
//! addresses (127.0.0.x) so that the per-address cap and the total cap can each be seen at work.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, get_on, raise_nofile};

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs
}

/// One device whose only liveness evidence is a probe that spawns `true` every 500 ms: if the agent
/// cannot spawn it, accel_probe_success goes to 0 and the device towards Offline.
const CONFIG: &str = "poll_interval = \"100ms\"\n[discovery]\nenabled = false\n[control]\ngroup = \"4242\"\n\
    [[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n\
    [[device.probe]]\nname = \"alive\"\ncommand = [\"true\"]\ninterval = \"500ms\"\ntimeout = \"500ms\"\n\
    offline_after = 2\n";

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
    s.connect_timeout(&to.into(), timeout)?;
    Ok(s.into())
}

/// Opens `n` connections to `to` from each address in `from`, on one thread per address (a connect
/// beyond the kernel's backlog waits for a SYN retry), writing `request` on each if given. Returns the
/// connections made and how many could not be.
fn open_many(from: &[Ipv4Addr], n: usize, to: SocketAddr, request: Option<&str>) -> (Vec<TcpStream>, usize) {
    let threads: Vec<_> = from
        .iter()
        .map(|&addr| {
            let request = request.map(str::to_owned);
            std::thread::spawn(move || {
                let mut made = Vec::with_capacity(n);
                let mut failed = 0;
                for _ in 0..n {
                    match connect_from(addr, to, Duration::from_secs(5)) {
                        Ok(mut s) => {
                            // A connection the agent already closed fails the write: that is an outcome
                            // the caller reads, not an error here.
                            if let Some(r) = &request {
                                let _ = s.write_all(r.as_bytes());
                            }
                            made.push(s);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (made, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for t in threads {
        let (made, f) = t.join().expect("opener thread");
        all.extend(made);
        failed += f;
    }
    (all, failed)
}

/// Open descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Sets the child's RLIMIT_NOFILE, soft and hard, before it runs.
fn nofile(cmd: &mut std::process::Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn loopback(range: std::ops::RangeInclusive<u8>) -> Vec<Ipv4Addr> {
    range.map(|x| Ipv4Addr::new(127, 0, 0, x)).collect()
}

#[test]
fn four_thousand_idle_connections_under_a_2048_fd_limit_leave_probes_journal_and_scrapes_working() {
    const LIMIT: u64 = 2048;
    const IDLE_PER_ADDRESS: usize = 40;
    let flooders = loopback(2..=101);
    let idle_total = IDLE_PER_ADDRESS * flooders.len();
    assert!(raise_nofile(idle_total as u64 + 512) >= idle_total as u64 + 512, "this test needs more descriptors");
    let fs = host();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, CONFIG).expect("write config");
    let args = ["--config", cfg.to_str().expect("utf-8"), "--sysfs-root", fs.root().to_str().expect("utf-8")];
    let state = tempfile::Builder::new().prefix("agent-state-").tempdir().expect("state dir");
    let agent = Agent::start_with(state, &args, |cmd| nofile(cmd, LIMIT));
    agent.wait_ready();
    let d = ("device", "loihi0");
    agent.wait_for("the probe's first success", || {
        agent.metric("accel_probe_success", &[d, ("probe", "alive")]) == Some(1.0)
    });

    let started = Instant::now();
    let (idle, failed) = open_many(&flooders, IDLE_PER_ADDRESS, agent.addr, None);
    eprintln!("{} idle connections opened ({failed} failed) in {:?}", idle.len(), started.elapsed());
    assert_eq!(failed, 0, "every connection is accepted (then kept, shed or refused), never left in the backlog");

    // While they are held: a new client's scrape answers at once, and the probe keeps being spawned.
    let held_since = Instant::now();
    for _ in 0..3 {
        let r = agent.get("/metrics");
        assert_eq!(r.status, 200);
        assert!(
            r.elapsed < Duration::from_secs(1),
            "a scrape took {:?} behind {} idle connections",
            r.elapsed,
            idle.len()
        );
    }
    // Six probe intervals, each of which must spawn `true` and see it succeed.
    while held_since.elapsed() < Duration::from_secs(3) {
        let m = common::parse_metrics(&agent.get("/metrics").body);
        let success = m.iter().find(|s| s.is("accel_probe_success", &[d, ("probe", "alive")])).map(|s| s.value);
        assert_eq!(success, Some(1.0), "the probe stopped succeeding with the connections held");
        std::thread::sleep(Duration::from_millis(100));
    }
    let devices = agent.get("/api/v1/devices");
    assert_eq!(devices.status, 200);
    assert!(!devices.body.contains("\"offline\""), "no device offline: {}", devices.body);
    // The journal answers, and is not reported unavailable.
    let events = agent.get("/api/v1/events?limit=5");
    assert_eq!(events.status, 200, "{}", events.body);
    let status = agent.get("/api/v1/status");
    assert!(status.body.contains("\"journal_unavailable\": null"), "{}", status.body);
    let held = fds(agent.child.id());
    eprintln!("the agent holds {held} descriptors under a limit of {LIMIT}");
    assert!(held < LIMIT as usize, "{held} descriptors open");

    // The cap came from the budget, and the connections beyond it were closed at accept or shed.
    let m = common::parse_metrics(&agent.get("/metrics").body);
    let value = |name: &str, labels: &[(&str, &str)]| m.iter().find(|s| s.is(name, labels)).map(|s| s.value);
    let cap = value("accel_http_connections_limit", &[]).expect("accel_http_connections_limit");
    // 2048 - 1024 headroom - 64 control - 16 journal - 2 children x 6 = 932.
    assert_eq!(cap, 932.0, "the HTTP cap fits the limit beside the reserve");
    assert!(held < LIMIT as usize - 1024 + 100, "{held} descriptors: the headroom is left");
    drop(m);
    agent.wait_for("the shed connections counted", || {
        let m = common::parse_metrics(&agent.get("/metrics").body);
        let v = |name: &str| m.iter().find(|s| s.is(name, &[("cap", "total")])).map_or(0.0, |s| s.value);
        v("accel_http_connections_shed_total") + v("accel_http_connections_refused_total") >= (idle_total as f64 - cap)
    });
    drop(idle);
}

/// `basic_auth_users` with `prometheus`'s password hashed at bcrypt's usual cost 10 (50-100 ms a check),
/// as a real deployment has it: a flood of wrong passwords costs the agent real CPU per check.
fn web_config(dir: &std::path::Path) -> std::path::PathBuf {
    let hash = bcrypt::hash("scrape-me", 10).expect("bcrypt");
    let path = dir.join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("write web config");
    path
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// What became of one flooding connection.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Outcome {
    /// Answered with this status; `closed` if the agent closed the connection after it.
    Answered { status: u16, closed: bool, retry_after: bool },
    /// Closed (or reset) without an answer: refused or shed.
    ClosedUnanswered,
    /// Still waiting when the test looked.
    Waiting,
}

/// Reads what the agent sent on a flooding connection: waits up to 2 s for an answer, then 100 ms more
/// for the agent to close the connection after it.
fn outcome(mut s: TcpStream) -> Outcome {
    s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if common::http_head(&raw).is_some() {
                    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
            // Reset: closed by the agent.
            Err(_) => break true,
        }
    };
    match common::http_head(&raw) {
        Some((status, headers)) => {
            Outcome::Answered { status, closed, retry_after: headers.contains_key("retry-after") }
        }
        None if closed => Outcome::ClosedUnanswered,
        None => Outcome::Waiting,
    }
}

#[test]
fn a_valid_scrape_answers_within_a_second_while_one_address_floods_4200_wrong_passwords() {
    const FLOOD: usize = 4200;
    assert!(raise_nofile(FLOOD as u64 + 512) >= FLOOD as u64 + 512, "this test needs more descriptors");
    let fs = host();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, CONFIG).expect("write config");
    let web = web_config(dir.path());
    let agent = Agent::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--sysfs-root",
        fs.root().to_str().expect("utf-8"),
        "--web-config",
        web.to_str().expect("utf-8"),
    ]);
    let valid = basic("prometheus", "scrape-me");
    let scraper = Ipv4Addr::new(127, 0, 0, 2);
    let scrape = || {
        let started = Instant::now();
        let s = connect_from(scraper, agent.addr, Duration::from_secs(5)).expect("the scraper connects");
        get_on(s, started, agent.addr, "/metrics", &[("Authorization", &valid)], Duration::from_secs(5))
    };
    agent.wait_for("ready", || scrape().status == 200);

    // Prometheus has scraped before the flood begins, as it does every 15 s.
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        agent.addr,
        basic("prometheus", "wrong")
    );
    let started = Instant::now();
    // 4,200 connections from 127.0.0.1, ten threads of 420, each sending a wrong password at once, while
    // the scraper scrapes every 200 ms; then three more scrapes with all of them held.
    let flooder = vec![Ipv4Addr::LOCALHOST; 10];
    let opening = std::sync::atomic::AtomicBool::new(true);
    let (flood, failed, during) = std::thread::scope(|scope| {
        let scraper = scope.spawn(|| {
            let mut scrapes = Vec::new();
            while opening.load(std::sync::atomic::Ordering::Acquire) {
                let r = scrape();
                scrapes.push((r.status, r.elapsed));
                std::thread::sleep(Duration::from_millis(200));
            }
            scrapes
        });
        let (flood, failed) = open_many(&flooder, FLOOD / 10, agent.addr, Some(&request));
        opening.store(false, std::sync::atomic::Ordering::Release);
        (flood, failed, scraper.join().expect("scraper"))
    });
    eprintln!("{} flooding connections opened ({failed} failed) in {:?}", flood.len(), started.elapsed());
    eprintln!("scrapes while the flood was opening: {during:?}");
    assert!(!during.is_empty());
    // While thousands of connects a second arrive, the kernel's accept queue can be full for a moment and
    // drop the scraper's SYN, which it resends after 1 s: that much is the kernel's, not the agent's. A
    // scraper locked out (a refused connection, a 401 or 429, a wait behind the flood's bcrypt checks)
    // fails here.
    for (status, elapsed) in during {
        assert_eq!(status, 200);
        assert!(elapsed < Duration::from_millis(2500), "a valid scrape took {elapsed:?} during the flood");
    }
    for _ in 0..3 {
        let r = scrape();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.elapsed < Duration::from_secs(1), "a valid scrape took {:?} with the flood held", r.elapsed);
    }

    // Every flooding connection was answered 401 or 429, or closed; none got in, and none is left
    // waiting for bcrypt beyond the bounded queue.
    let mut counts: std::collections::HashMap<Outcome, usize> = std::collections::HashMap::new();
    let readers: Vec<_> = flood
        .chunks(FLOOD / 10)
        .map(|c| c.iter().map(|s| s.try_clone().expect("clone")).collect::<Vec<_>>())
        .map(|conns| std::thread::spawn(move || conns.into_iter().map(outcome).collect::<Vec<_>>()))
        .collect();
    for r in readers {
        for o in r.join().expect("reader") {
            *counts.entry(o).or_default() += 1;
        }
    }
    drop(flood);
    eprintln!("flood outcomes: {counts:?}");
    for (o, n) in &counts {
        match o {
            Outcome::Answered { status: 429, closed, retry_after } => {
                assert!(*closed && *retry_after, "{n} x 429 without Retry-After or left open: {o:?}")
            }
            Outcome::Answered { status: 401, .. } | Outcome::ClosedUnanswered => {}
            Outcome::Waiting => assert!(*n <= 2, "{n} connections still waiting for bcrypt"),
            other => panic!("{n} flooding connections got {other:?}"),
        }
    }
    let busy: usize =
        counts.iter().filter(|(o, _)| matches!(o, Outcome::Answered { status: 429, .. })).map(|(_, n)| n).sum();
    assert!(busy > 0, "no flooding login was answered 429: {counts:?}");
    // Every 429 is counted; whether the address's cap also shed some depends on how fast the 429s close
    // their connections (the per-address cap is tested on its own below).
    agent.wait_for("the refusals counted", || {
        let m = common::parse_metrics(&scrape().body);
        m.iter()
            .find(|s| s.is("accel_http_connections_refused_total", &[("cap", "auth_queue")]))
            .is_some_and(|s| s.value >= busy as f64)
    });
}

/// Whether the agent has closed `s` (EOF or reset) within 300 ms.
fn closed_by_agent(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        Ok(_) => false,
    }
}

#[test]
fn the_connection_caps_come_from_the_config_and_follow_a_reload() {
    let fs = host();
    let caps = |total: u32, per_address: u32| {
        format!("{CONFIG}[http]\nmax_connections = {total}\nmax_connections_per_address = {per_address}\n")
    };
    let (agent, dir) = Agent::with_config(fs.root(), &caps(50, 8));
    agent.wait_ready();
    assert_eq!(agent.metric("accel_http_connections_limit", &[]), Some(50.0));
    let me = Ipv4Addr::new(127, 0, 0, 3);
    let shed = || agent.metric("accel_http_connections_shed_total", &[("cap", "address")]).unwrap_or(-1.0);
    assert_eq!(shed(), 0.0);
    // One at a time, so the agent sees them in order: the 9th to the 20th each shed the oldest. Every
    // check below is done well within the 10 s header timeout that would close the rest.
    let mut conns: Vec<TcpStream> =
        (0..20).map(|_| connect_from(me, agent.addr, Duration::from_secs(5)).expect("connect")).collect();
    agent.wait_for("12 shed for the address's cap of 8", || shed() == 12.0);
    let closed: Vec<bool> = conns.iter_mut().map(closed_by_agent).collect();
    assert_eq!(closed.iter().filter(|c| **c).count(), 12, "{closed:?}");
    assert!(closed[..12].iter().all(|c| *c) && closed[12..].iter().all(|c| !*c), "the oldest went: {closed:?}");
    // Another address is not held back by this one.
    let other = connect_from(Ipv4Addr::new(127, 0, 0, 4), agent.addr, Duration::from_secs(5)).expect("connect");
    let r = get_on(other, Instant::now(), agent.addr, "/-/healthy", &[], Duration::from_secs(5));
    assert_eq!(r.status, 200);

    // A reload to 40 in all and 4 per address: the next connection from 127.0.0.3 sheds its address
    // down to the new cap (8 + 1 - 4 = 5 more).
    std::fs::write(dir.path().join("agent.toml"), caps(40, 4)).expect("rewrite config");
    agent.signal(libc::SIGHUP);
    agent.wait_for("the new total cap", || agent.metric("accel_http_connections_limit", &[]) == Some(40.0));
    let _one_more = connect_from(me, agent.addr, Duration::from_secs(5)).expect("connect");
    agent.wait_for("5 more shed for the new cap of 4", || shed() == 17.0);
    let still_open = conns[12..].iter_mut().map(closed_by_agent).filter(|c| !*c).count();
    assert_eq!(still_open, 3, "3 of the old 8 and the new one make the cap of 4");
}
