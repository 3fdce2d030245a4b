//! `accel-agent --demo` as a newcomer runs it: the banner's commands work when pasted, a busy port gets
//! a hint, and the demo ends cleanly (directory removed) on Ctrl-C and when its output pipe closes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::BIN;

const CTL: &str = env!("CARGO_BIN_EXE_agentctl");

/// Reads `reader` line by line on a thread, so the test can wait with a deadline.
fn lines(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The banner, up to and including its last line.
fn banner(rx: &mpsc::Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let last = line.contains("Ctrl-C stops and removes everything");
                out.push(line);
                if last {
                    return out;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no complete banner within 60 s:\n{}", out.join("\n"));
}

/// The directory the banner names.
fn demo_dir(banner: &[String]) -> PathBuf {
    let line = banner.iter().find_map(|l| l.split_once("a simulated host in ")).expect("the banner names its dir");
    PathBuf::from(line.1.trim())
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a banner line's agentctl command as pasted (with the binary cargo would build).
fn run_pasted(line: &str) -> std::process::Output {
    let (_, args) = line.split_once("cargo run --release --bin agentctl -- ").expect("an agentctl line");
    Command::new(CTL).args(args.split_whitespace()).output().expect("run agentctl")
}

#[test]
fn the_banner_commands_work_when_pasted_and_ctrl_c_removes_the_directory() {
    let mut demo = Command::new(BIN)
        .args(["--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let rx = lines(demo.stderr.take().expect("stderr"));
    let banner = banner(&rx);
    let dir = demo_dir(&banner);
    assert!(dir.is_dir(), "{}", dir.display());
    // Port 0 was resolved before it was announced.
    let url = banner.iter().find_map(|l| l.split_once("http://")).map(|(_, u)| u.to_owned()).expect("a URL");
    assert!(!url.starts_with("127.0.0.1:0/"), "{url}");

    let pasted: Vec<&String> = banner.iter().filter(|l| l.contains("cargo run --release --bin agentctl -- ")).collect();
    assert_eq!(pasted.len(), 4, "{banner:#?}");
    assert!(!banner.iter().any(|l| l.contains("cargo run --bin agentctl")), "agentctl without --release");
    // Wait for the agent to answer, then run each command as the banner prints it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run_pasted(pasted[0]);
        // status: 0 healthy, 1 degraded, 2 unhealthy; 3 and up mean it did not get an answer.
        if out.status.code().is_some_and(|c| c <= 2) {
            assert!(String::from_utf8_lossy(&out.stdout).contains("loihi0"));
            break;
        }
        assert!(Instant::now() < deadline, "status never answered: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(250));
    }
    for line in &pasted[1..] {
        let out = run_pasted(line);
        assert!(
            out.status.success(),
            "{line}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Ctrl-C: the agent stops and the demo removes everything.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(demo.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = wait_exit(&mut demo, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(!dir.exists(), "{} left behind", dir.display());
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains(&format!("removed {}", dir.display()))), "{rest:#?}");
    assert!(!rest.iter().any(|l| l.contains("panicked")), "{rest:#?}");
}

#[test]
fn a_busy_port_gets_a_hint_to_use_listen() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut demo = Command::new(BIN)
        .args(["--demo", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let status = wait_exit(&mut demo, Duration::from_secs(30));
    let mut stderr = String::new();
    demo.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the demo cannot listen on {addr}")), "{stderr}");
    assert!(stderr.contains("pick another with --listen"), "{stderr}");
    assert!(stderr.contains("-- --demo --listen 127.0.0.1:"), "{stderr}");
    assert!(!stderr.contains("http://"), "no URL announced for a port it cannot have: {stderr}");
}

#[test]
fn output_piped_into_head_ends_the_demo_cleanly_and_removes_its_directory() {
    // `accel-agent --demo 2>&1 | head -n 5`: both outputs into one pipe whose reader goes away.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut demo = Command::new(BIN)
        .args(["--demo", "--listen", "127.0.0.1:0"])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .expect("start the demo");
    let mut head = BufReader::new(reader);
    let mut first = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        head.read_line(&mut line).unwrap();
        first.push(line.trim_end().to_owned());
    }
    let dir = demo_dir(&first);
    assert!(dir.is_dir(), "{}", dir.display());
    drop(head);

    let status = wait_exit(&mut demo, Duration::from_secs(30));
    assert!(status.success(), "the demo did not end cleanly: {status}");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
