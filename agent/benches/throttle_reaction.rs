//! Reaction time of throttling: from the sensor crossing the threshold to the throttle write on disk,
//! with the real agent binary on a fake sysfs tree and `hold = "0s"`. The budget is one poll interval
//! plus 50 ms (the crossing can land just after a collection; the next one sees it).
//!
//! Run: `cargo bench -p agent --bench throttle_reaction` (prints p50, p95 and max per poll interval).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;

const TEMP: &str = "devices/platform/board.0/hwmon/hwmon0/temp1_input";
const STATE: &str = "devices/virtual/thermal/cooling_device0/cur_state";

fn wait_for(fs: &FakeSysfs, want: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::fs::read_to_string(fs.path(STATE)).map(|s| s.trim() == want).unwrap_or(false) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

fn run(poll_ms: u64, trials: usize) {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("board"), Some("devices/platform/board.0")).attr("temp1_input", "60000");
    fs.cooling_device(0, "Processor", 0, 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "poll_interval = \"{poll_ms}ms\"\n[actions]\nenabled = true\n[discovery]\nenabled = false\n\
             [[device]]\nid = \"board0\"\nkind = \"generic\"\nhwmon = \"board\"\n[device.throttle]\nthreshold = 80.0\n\
             hysteresis = 5.0\nhold = \"0s\"\n[[device.throttle.level]]\ncooling_device = {{ device = \"cooling_device0\", state = 1 }}\n"
        ),
    )
    .expect("write config");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_accel-agent"))
        .args(["--config", cfg.to_str().expect("utf-8"), "--sysfs-root", fs.root().to_str().expect("utf-8")])
        .args(["--listen", "127.0.0.1:0", "--state-dir", dir.path().to_str().expect("utf-8"), "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start accel-agent");
    std::thread::sleep(Duration::from_millis(500 + 2 * poll_ms));
    let budget = Duration::from_millis(poll_ms + 50);
    let mut up = Vec::new();
    for _ in 0..trials {
        fs.write(TEMP, "90000\n");
        up.push(wait_for(&fs, "1", Duration::from_secs(5)).expect("throttled"));
        fs.write(TEMP, "60000\n");
        wait_for(&fs, "0", Duration::from_secs(5)).expect("released");
        // Land the next crossing at a different point of the poll cycle.
        std::thread::sleep(Duration::from_millis(poll_ms / 3 + 7));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    up.sort();
    let pct = |p: f64| up[((up.len() - 1) as f64 * p).round() as usize];
    let max = *up.last().expect("trials");
    println!(
        "poll {poll_ms:>4} ms, {trials} crossings: p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms  budget {:>4} ms  {}",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        budget.as_millis(),
        if max <= budget { "within budget" } else { "OVER BUDGET" }
    );
}

fn main() {
    // `cargo test` runs benches in test mode with --bench absent; keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    run(100, 40);
    run(250, 20);
    run(1000, 8);
}
