//! What the owner does with the model's diagnostic decisions and the runner's reports: hands starts to
//! the runner, and journals each start, refusal, remedy, pass and failure (with the failed expectation
//! and the tool's last lines, redacted at capture).

use std::sync::Arc;
use std::time::SystemTime;

use crate::effects::diagnostics::DiagnosticsRunner;
use crate::effects::events::Events;
use crate::effects::journal::{Event, Severity, kind};
use crate::model::diagnostics::{Decision, Outcome, Report};
use crate::publish::state::AgentState;

/// Journals a condition-triggered queueing: (device, diagnostic, condition).
pub fn queued_on_condition(queued: Vec<(String, String, &'static str)>, events: &Events, wall: SystemTime) {
    let queued = queued.into_iter().map(|(device, name, condition)| (device, name, format!("{condition} set")));
    journal_queued(queued, events, wall);
}

/// Journals the diagnostics queued because a maintenance window they run in is open.
pub fn queued_in_window(queued: Vec<(String, String, Arc<str>)>, events: &Events, wall: SystemTime) {
    let queued =
        queued.into_iter().map(|(device, name, window)| (device, name, format!("maintenance window {window} open")));
    journal_queued(queued, events, wall);
}

fn journal_queued(queued: impl Iterator<Item = (String, String, String)>, events: &Events, wall: SystemTime) {
    for (device, name, why) in queued {
        let message = format!("diagnostic {name} queued: {why}");
        events.record(Event::new(wall, Severity::Info, kind::DIAGNOSTIC, message).on_device(&device));
    }
}

/// Starts what the model decided to start and journals each decision.
pub fn apply(decisions: Vec<Decision>, runner: &DiagnosticsRunner, events: &Events, wall: SystemTime) {
    for decision in decisions {
        let (device, severity, message) = match decision {
            Decision::Start(start) => {
                let exclusive = if start.exclusive { "; the device is in maintenance until it ends" } else { "" };
                let message = format!(
                    "diagnostic {} (level {}) started {}{exclusive}: {}",
                    start.name,
                    start.level,
                    start.trigger,
                    start.argv.join(" ")
                );
                let device = start.device.clone();
                runner.start(start);
                (device, Severity::Info, message)
            }
            Decision::Refused { device, name, level, reason } => {
                (device, Severity::Warning, format!("diagnostic {name} (level {level}) {reason}"))
            }
        };
        tracing::info!(device = %device, "{message}");
        events.record(Event::new(wall, severity, kind::DIAGNOSTIC, message).on_device(&device));
    }
}

/// Journals a finished diagnostic (`level` is its level, when the device still declares it); the agent's
/// own trouble is counted as such, never as the device's.
pub fn report(report: &Report, level: Option<u8>, state: &AgentState, events: &Events, wall: SystemTime) {
    let name = &report.name;
    let level_text = level.map(|l| format!(" (level {l})")).unwrap_or_default();
    let on = |severity, message: String| {
        tracing::info!(device = %report.device, "{message}");
        events.record(Event::new(wall, severity, kind::DIAGNOSTIC, message).on_device(&report.device));
    };
    if let Some(r) = &report.remedy {
        let how = if r.ok { "ran".to_owned() } else { format!("failed ({})", r.message) };
        on(
            Severity::Warning,
            format!("diagnostic {name}{level_text} failed: {}; remedy {how}; trying again", r.first_failure),
        );
    }
    if let Some(fault) = report.fault {
        state.faults.record(fault, &format!("diagnostic {name} of {}", report.device), events, wall);
    }
    let secs = report.duration.as_secs_f64();
    match &report.outcome {
        Outcome::Passed => on(Severity::Info, format!("diagnostic {name}{level_text} passed in {secs:.1}s")),
        Outcome::Failed { expectation, output } => {
            let severity = if level.unwrap_or(1) >= 2 { Severity::Critical } else { Severity::Warning };
            let output = if output.is_empty() { "no output".to_owned() } else { format!("last output:\n{output}") };
            on(severity, format!("diagnostic {name}{level_text} failed after {secs:.1}s: {expectation}; {output}"));
        }
        Outcome::Refused { reason } | Outcome::NotRun { reason } => {
            on(Severity::Warning, format!("diagnostic {name}{level_text} {reason}"));
        }
    }
}
