//! `accel-agent scan`: look at everything once, print what is wrong and what to do, exit 0/1/2.
//!
//! The same collectors, deadlines and rules as the daemon, in one pass: thresholds count at once (there is
//! no time for a minimum duration) and a single failed liveness probe means offline. Logs are not read:
//! a burst needs time to be one. Nothing is written: no journal, no actions.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use config::Config;
use tokio::task::JoinSet;

use crate::model::health::next_step;
use crate::model::{DeviceEngine, DeviceView, State, Status};
use crate::publish::state::AgentState;
use crate::sources::collect::Supervisor;
use crate::sources::schedule;

/// Runs the scan and returns the table and the exit code (0 healthy, 1 degraded or unknown, 2 unhealthy).
pub async fn scan(config: &Config) -> (String, u8) {
    let settings = schedule::enabled(config);
    let state = AgentState::new(settings.iter().map(|s| (s.kind, s.interval, s.timeout)));
    let collectors: Vec<&'static str> = settings.iter().map(|s| s.kind.name()).collect();
    let mut rounds = JoinSet::new();
    for s in settings {
        let root = config.sysfs_root.clone();
        let open_files = Arc::clone(&state.open_files);
        rounds.spawn(async move {
            let mut sup = Supervisor::new(s, &root, open_files);
            let outcome = sup.collect().await;
            (sup.settings().kind, outcome, sup.stuck_threads(), sup.quarantined())
        });
    }
    let mut failed_collectors = Vec::new();
    while let Some(done) = rounds.join_next().await {
        if let Ok((kind, outcome, stuck, quarantined)) = done {
            if let Err(e) = &outcome.result {
                failed_collectors.push(format!("{}: {e}", kind.name()));
            }
            state.record(kind, outcome, stuck, quarantined);
        }
    }
    let mut engine = DeviceEngine::one_shot(config, Instant::now(), SystemTime::now());
    engine.evaluate(&state.snapshot().host(), Instant::now(), SystemTime::now());
    crate::sources::probing::run_all_once(config, &mut engine).await;
    let views = engine.views(SystemTime::now());
    let code = views.iter().map(|d| d.state.exit_code()).max().unwrap_or(0);
    let mut out = String::new();
    if views.is_empty() {
        out = nothing_found(config, &collectors);
    }
    out.push_str(&render(&views, &failed_collectors));
    (out, code)
}

/// For a host with no devices: what was looked at, and what to configure.
fn nothing_found(config: &Config, collectors: &[&str]) -> String {
    let root = config.sysfs_root.display();
    let mut out = String::from("no devices: none declared in the config and none found by discovery\n");
    let _ = writeln!(out, "  looked at: [[device]] entries in the config (none)");
    if config.discovery.enabled {
        let _ = writeln!(
            out,
            "             {root}/class/accel (accel class devices) and {root}/class/hwmon (sensor chips of PCI\n\
             \x20            processing accelerators): none found"
        );
    } else {
        let _ = writeln!(out, "             discovery is off ([discovery] enabled = false)");
    }
    if !collectors.is_empty() {
        let _ = writeln!(
            out,
            "  host collectors read: {} (their values are in /metrics; they are not devices)",
            collectors.join(", ")
        );
    }
    out.push_str(
        "  to monitor an accelerator, declare it with [[device]] in the config: one example per kind in\n\
         \x20 /usr/share/doc/accel-agent/examples/ (config/examples/ in the source), every key in\n\
         \x20 docs/configuration.md; check the file with `accel-agent check-config FILE`, then scan again\n",
    );
    out
}

fn render(views: &[DeviceView], failed_collectors: &[String]) -> String {
    let mut out = String::new();
    let width = views.iter().map(|d| d.id.len()).max().unwrap_or(6).max(6);
    if !views.is_empty() {
        let _ = writeln!(out, "{:<width$}  {:<15}  {:<11}  {:<9}  FAILING", "DEVICE", "KIND", "STATE", "HOTTEST");
    }
    for d in views {
        let hottest = d
            .readings
            .temperature_celsius
            .iter()
            .map(|r| r.value)
            .max_by(f64::total_cmp)
            .map_or("-".to_owned(), |t| format!("{t:.1} °C"));
        let failing: Vec<&crate::model::health::Condition> =
            d.conditions.iter().filter(|c| c.status == Status::True).collect();
        let names: Vec<&str> = failing.iter().map(|c| c.kind.name()).collect();
        let _ = writeln!(
            out,
            "{:<width$}  {:<15}  {:<11}  {:<9}  {}",
            d.id,
            d.kind,
            d.state.name(),
            hottest,
            if names.is_empty() { "-".to_owned() } else { names.join(", ") }
        );
        for c in failing {
            let _ = writeln!(out, "{:<width$}    {}: {}", "", c.kind.name(), c.message);
            let _ = writeln!(out, "{:<width$}    next: {}", "", next_step(c.kind));
        }
    }
    for f in failed_collectors {
        let _ = writeln!(out, "collector failed: {f}");
    }
    let worst = views.iter().map(|d| d.state).max_by_key(|s| s.exit_code());
    let _ = writeln!(
        out,
        "{} device(s); overall {}",
        views.len(),
        worst.map_or("healthy", |s| if s == State::Maintenance { "healthy" } else { s.name() })
    );
    out
}
