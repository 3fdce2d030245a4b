//! Commands run when a device's state changes.
//!
//! A watcher compares each device's state in the snapshot with the last one it saw (starting from
//! "unknown", so a device healthy at start runs its "healthy" hook: hooks are meant to be idempotent,
//! like drain/undrain, and this reconciles after a restart). Commands run like probes: no shell, own
//! process group killed at the timeout, output capped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use collectors::probes::{CommandProbe, ProbeStatus};
use config::Hook;
use tokio_util::sync::CancellationToken;

use crate::effects::events::Events;
use crate::effects::journal::{Event, Severity, kind};
use crate::model::State;
use crate::publish::state::AgentState;

const CHECK_EVERY: Duration = Duration::from_millis(250);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn spawn(hooks: Vec<Hook>, run: bool, state: Arc<AgentState>, events: Arc<Events>, shutdown: CancellationToken) {
    if hooks.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut last: HashMap<String, State> = HashMap::new();
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let snap = state.snapshot();
            for d in snap.devices.iter() {
                let previous = last.insert(d.id.clone(), d.state).unwrap_or(State::Unknown);
                if previous == d.state {
                    continue;
                }
                for h in hooks.iter().filter(|h| h.on.iter().any(|s| s == d.state.name())) {
                    let (hook, events, state) = (h.clone(), Arc::clone(&events), Arc::clone(&state));
                    let (device, now, before) = (d.id.clone(), d.state, previous);
                    // Each hook on its own task: a slow drain must not delay the next state change.
                    tokio::spawn(async move {
                        let states = Transition { device: &device, previous: before, state: now };
                        run_hook(&hook, states, run, &events, &state).await
                    });
                }
            }
        }
    });
}

/// A device's change of state, which a hook is run for.
#[derive(Clone, Copy)]
struct Transition<'a> {
    device: &'a str,
    previous: State,
    state: State,
}

async fn run_hook(hook: &Hook, t: Transition<'_>, run: bool, events: &Events, agent: &AgentState) {
    let Transition { device, previous, state } = t;
    let argv: Vec<String> = hook
        .command
        .iter()
        .map(|a| a.replace("{device}", device).replace("{state}", state.name()).replace("{previous}", previous.name()))
        .collect();
    let what = argv.join(" ");
    let wall = SystemTime::now();
    if !run {
        events.record(
            Event::new(wall, Severity::Info, kind::ACTION, format!("dry run: would run hook {what}")).on_device(device),
        );
        return;
    }
    let probe = CommandProbe::new(argv, hook.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()))
        .with_env("ACCEL_DEVICE", device)
        .with_env("ACCEL_STATE", state.name())
        .with_env("ACCEL_PREVIOUS_STATE", previous.name());
    let outcome = probe.run().await;
    let (severity, message) = match outcome.status {
        ProbeStatus::Ok => (Severity::Info, format!("hook ran: {what}")),
        // The agent's own trouble: counted as its fault (journalled once per streak there), not the hook's.
        ProbeStatus::NotRun(fault) => {
            let program = hook.command.first().map_or("", String::as_str);
            agent.faults.record(fault, &format!("hook {program} for {device}"), events, SystemTime::now());
            return;
        }
        other => {
            (Severity::Warning, format!("hook failed ({}): {what}: {}", other.label(), outcome.stderr_excerpt.trim()))
        }
    };
    events.record(Event::new(SystemTime::now(), severity, kind::ACTION, message).on_device(device));
}
