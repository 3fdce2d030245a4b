//! systemd integration: the notify protocol on a real datagram socket, and the unit files checked by
//! systemd-analyze (verify, and the security exposure of the read-only unit).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{BIN, require_tool};

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("board"), Some("devices/platform/board.0")).attr("temp1_input", "45000");
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut agent = Command::new(BIN)
        .args(["--sysfs-root", fs.root().to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--state-dir", dir.path().to_str().unwrap(), "--log-level", "error"])
        // Its own control socket: the default, /run/accel-agent/agent.sock, belongs to an installed agent.
        .arg("--socket")
        .arg(dir.path().join("agent.sock"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline
        && !(seen.iter().any(|m: &String| m == "READY=1") && seen.iter().any(|m| m == "WATCHDOG=1"))
    {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(seen.iter().any(|m| m == "READY=1"), "{seen:?}");
    assert!(seen.iter().any(|m| m == "WATCHDOG=1"), "{seen:?}");
    assert!(seen.iter().any(|m| m.starts_with("STATUS=0 devices: 0 healthy")), "{seen:?}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !seen.iter().any(|m| m == "STOPPING=1") {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(seen.iter().any(|m| m == "STOPPING=1"), "{seen:?}");
    assert!(agent.wait().unwrap().success());
}

/// The unit with ExecStart pointing at the binary under test (verify checks that it exists).
fn unit(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::fs::read_to_string(format!("{}/../systemd/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, src.replace("/usr/bin/accel-agent", BIN)).unwrap();
    path
}

#[test]
#[cfg_attr(not(has_systemd_analyze), ignore = "systemd-analyze is not installed")]
fn units_pass_systemd_analyze_verify() {
    require_tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    for name in ["accel-agent.service", "accel-agent-readonly.service"] {
        let out =
            Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(unit(name, dir.path())).output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && report.trim().is_empty(), "{name}: {report}");
    }
}

#[test]
#[cfg_attr(not(has_systemd_analyze), ignore = "systemd-analyze is not installed")]
fn the_read_only_unit_exposure_is_below_two() {
    require_tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let score = |name: &str| -> f64 {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(unit(name, dir.path()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
        line.split(": ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap()
    };
    let ro = score("accel-agent-readonly.service");
    let rw = score("accel-agent.service");
    eprintln!("exposure: read-only {ro}, with actions {rw}");
    assert!(ro < 2.0, "read-only unit exposure {ro}");
    assert!(rw < 5.0, "actions unit exposure {rw}");
}
