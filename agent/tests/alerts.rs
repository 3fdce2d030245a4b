//! The operator's alert loop with real parts: the agent on the demo host, a real Prometheus (Debian
//! `prometheus`) scraping it and evaluating `packaging/prometheus/accel-agent.rules.yml` (a copy with
//! every `for:` shortened so the test takes seconds), a real Alertmanager (Debian
//! `prometheus-alertmanager`) routing to a webhook receiver on loopback in this test. An incident of the
//! demo story (loihi0 heats past its warning threshold) must reach the receiver as
//! AccelDeviceTemperatureHigh with its labels and runbook link, and resolve when the board cools.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accel_sim::demo_host::DemoHost;
use common::{Agent, require_tool};
use serde_json::Value;

/// A process killed (and reaped) when the test ends, however it ends.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().expect("start process");
        Proc { child, log }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alertmanager's webhook receiver: every notification body, in arrival order.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("receiver address");
        let (received, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (r, s) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if let Some(body) = read_post(conn) {
                            r.lock().unwrap().push(body);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Receiver { addr, received, stop, thread: Some(thread) }
    }

    fn all(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP POST (headers, then Content-Length bytes), answers 200, returns the JSON body.
fn read_post(mut conn: TcpStream) -> Option<Value> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())?;
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    serde_json::from_slice(&raw[head_end..head_end + length]).ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped rules with every `for:` shortened to `short`; returns the copy and how many were changed.
fn rules_with_short_for(short: &str) -> (String, usize) {
    let shipped = std::fs::read_to_string(repo().join("packaging/prometheus/accel-agent.rules.yml")).unwrap();
    let mut changed = 0;
    let lines: Vec<String> = shipped
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix("for: ") {
                Some(_) => {
                    changed += 1;
                    format!("{}for: {short}", &line[..line.len() - trimmed.len()])
                }
                None => line.to_owned(),
            }
        })
        .collect();
    (lines.join("\n") + "\n", changed)
}

fn get_json(port: u16, path: &str) -> Option<Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Not listening yet (http_get would panic): try again later.
    TcpStream::connect(addr).ok()?;
    let r = common::http_get(addr, path, &[], Duration::from_secs(5));
    (r.status == 200).then(|| serde_json::from_str(&r.body).ok()).flatten()
}

fn wait_for<T>(what: &str, secs: u64, diagnose: impl Fn() -> String, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = cond() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {secs}s waiting for {what}\n{}", diagnose());
}

/// The notification alert named `name` for `device` with the given status, from any received body.
fn notified(received: &[Value], name: &str, device: &str, status: &str) -> Option<Value> {
    received
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["device"] == device && a["status"] == status)
}

#[test]
#[cfg_attr(
    not(all(has_prometheus, has_alertmanager)),
    ignore = "needs prometheus and prometheus-alertmanager (Debian packages of those names)"
)]
fn an_incident_reaches_the_receiver_through_prometheus_and_alertmanager_and_resolves() {
    require_tool("prometheus");
    require_tool("prometheus-alertmanager");
    let host = DemoHost::build().unwrap();
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    agent.wait_ready();
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();

    let am_port = free_port();
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, instance, device]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      \
             - url: http://{}/alerts\n        send_resolved: true\n",
            receiver.addr
        ),
    )
    .unwrap();
    let am = Proc::spawn(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.path().join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.path().join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            // A single instance: no gossip port to collide with anything.
            .arg("--cluster.listen-address="),
        dir.path().join("alertmanager.log"),
    );

    let (rules, shortened) = rules_with_short_for("1s");
    assert!(shortened >= 10, "the rules' for: clauses were found and shortened ({shortened})");
    std::fs::write(dir.path().join("accel-agent.rules.yml"), rules).unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: [accel-agent.rules.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: accel-agent\n    static_configs:\n      - targets: ['{}']\n",
            agent.addr
        ),
    )
    .unwrap();
    let prom = Proc::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("prom-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        dir.path().join("prometheus.log"),
    );
    let diagnose = || {
        format!(
            "received: {:#?}\nprometheus alerts: {}\nprometheus log:\n{}\nalertmanager log:\n{}",
            receiver.all(),
            get_json(prom_port, "/api/v1/alerts").map_or("-".into(), |v| v["data"].to_string()),
            prom.log_tail(),
            am.log_tail()
        )
    };

    // The rules loaded, the agent is scraped, and Prometheus found its Alertmanager.
    wait_for("the rules loaded", 60, diagnose, || {
        let v = get_json(prom_port, "/api/v1/rules")?;
        v.to_string().contains("AccelDeviceTemperatureHigh").then_some(())
    });
    wait_for("the agent scraped", 60, diagnose, || {
        let v = get_json(prom_port, "/api/v1/query?query=up")?;
        (v["data"]["result"][0]["value"][1] == "1").then_some(())
    });
    wait_for("alertmanager discovered", 60, diagnose, || {
        let v = get_json(prom_port, "/api/v1/alertmanagers")?;
        (!v["data"]["activeAlertmanagers"].as_array()?.is_empty()).then_some(())
    });
    assert!(
        notified(&receiver.all(), "AccelDeviceTemperatureHigh", "loihi0", "firing").is_none(),
        "nothing fires on a cool host"
    );

    // Scene 1 of the demo: loihi0 heats past its 80 °C warning threshold.
    host.set_loihi_temp(86.0);
    let alert = wait_for("the firing notification", 90, diagnose, || {
        notified(&receiver.all(), "AccelDeviceTemperatureHigh", "loihi0", "firing")
    });
    let labels = &alert["labels"];
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["job"], "accel-agent");
    assert_eq!(labels["instance"], agent.addr.to_string().as_str());
    assert_eq!(labels.get("sensor"), None, "the hottest sensor, per device: {labels}");
    let annotations = &alert["annotations"];
    let summary = annotations["summary"].as_str().unwrap();
    assert!(summary.contains("loihi0") && summary.contains(&agent.addr.to_string()), "{summary}");
    assert!(annotations["description"].as_str().unwrap().contains("86"), "{annotations}");
    let runbook = annotations["runbook_url"].as_str().unwrap();
    let anchor = runbook.rsplit_once("docs/operations.md#").expect("a runbook in docs/operations.md").1;
    assert_eq!(anchor, "device-temperature-high");
    let operations = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(operations.contains(&format!("\n## {anchor}\n")), "the runbook section exists");

    // It cools: the same alert arrives as resolved.
    host.set_loihi_temp(60.0);
    let resolved = wait_for("the resolved notification", 90, diagnose, || {
        notified(&receiver.all(), "AccelDeviceTemperatureHigh", "loihi0", "resolved")
    });
    assert_eq!(resolved["labels"], alert["labels"], "the same alert resolves");
    assert_eq!(resolved["startsAt"], alert["startsAt"]);
    assert!(resolved["endsAt"].as_str().unwrap() > resolved["startsAt"].as_str().unwrap());
    eprintln!("notifications received: {}", receiver.all().len());
}
