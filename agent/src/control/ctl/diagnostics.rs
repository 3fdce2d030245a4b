//! `agentctl diagnose --level N [ID]` for N >= 1: starts the diagnostics of level N and below on the
//! agent, polls the run until every result is in (a progress line on stderr while one runs, when stderr
//! is a terminal), prints each result and exits as status does: 0 all passed, 1 one could not run
//! (refused, not run), 2 one failed.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant, SystemTime};

use super::client::Client;
use super::render::{Style, Table, ago};
use super::{Answer, EXIT_FAILED, EXIT_OK, Failed, Outcome, READ_TIMEOUT, decode};
use crate::control::MutationBody;
use crate::model::DeviceView;
use crate::model::diagnostics::{self as diag, Phase, Record, RunItemView, RunView};

/// How often the run is asked for its state.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Room beyond the run's own deadlines (queueing behind other runs, the agent's rounds).
const SLACK: Duration = Duration::from_secs(30);

pub(super) fn run(
    client: &Client,
    level: u8,
    id: Option<&str>,
    as_json: bool,
    style: Style,
) -> Result<Outcome, Failed> {
    let body = MutationBody { level: Some(level.into()), device: id.map(str::to_owned), ..MutationBody::default() };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let mut a: Answer<RunView> =
        decode(client.request("POST", "/api/v1/diagnostics", Some(&body), READ_TIMEOUT * 4)?)?;
    let run = a.value.id;
    // Each item may take its timeout three times over (try, remedy, try again), one after another.
    let budget: f64 = a.value.items.iter().map(|i| i.timeout_seconds * 3.0).sum();
    let deadline = Instant::now() + Duration::from_secs_f64(budget) + SLACK;
    let progress = std::io::stderr().is_terminal();
    while !a.value.done {
        if Instant::now() > deadline {
            return Err(Failed::new(
                format!("diagnostics run {run} did not finish in time; see `agentctl events --kind diagnostic`"),
                EXIT_FAILED,
            ));
        }
        if progress {
            show_progress(&a.value);
        }
        std::thread::sleep(POLL_EVERY);
        a = decode(client.request("GET", &format!("/api/v1/diagnostics/runs/{run}"), None, READ_TIMEOUT)?)?;
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let code = a.value.items.iter().map(|i| code(i.result.as_ref())).max().unwrap_or(EXIT_OK);
    Ok(Outcome { out: a.shown(as_json, |v| text(v, style)), code })
}

fn code(result: Option<&Record>) -> u8 {
    match result.map(|r| &r.outcome) {
        Some(diag::Outcome::Passed) => EXIT_OK,
        Some(diag::Outcome::Failed { .. }) => 2,
        _ => EXIT_FAILED,
    }
}

/// One line, rewritten in place: each diagnostic running now, with how long it has run of its timeout.
fn show_progress(v: &RunView) {
    let now = SystemTime::now();
    let running: Vec<String> = v
        .items
        .iter()
        .filter(|i| i.phase == Phase::Running && i.result.is_none())
        .map(|i| {
            let ran = now.duration_since(i.running_since.unwrap_or(now)).unwrap_or_default();
            format!(
                "{} {} (level {}): {:.0} s of {:.0} s",
                i.device,
                i.name,
                i.level,
                ran.as_secs_f64(),
                i.timeout_seconds
            )
        })
        .collect();
    let line = if running.is_empty() { "waiting for a free slot".to_owned() } else { running.join("; ") };
    eprint!("\r\x1b[K{line}");
    let _ = std::io::stderr().flush();
}

fn text(v: &RunView, style: Style) -> String {
    let mut out = format!("diagnostics run {} (level {} and below)\n", v.id, v.level);
    for i in &v.items {
        item_text(&mut out, i, style);
    }
    out
}

/// One diagnostic of the run: its result, why, and the tool's last lines.
fn item_text(out: &mut String, i: &RunItemView, style: Style) {
    let r = i.result.as_ref();
    let shown = style.result(r.map_or("unknown", |r| r.outcome.name()));
    let seconds = r.map_or(0.0, |r| r.duration_seconds);
    let _ = write!(out, "{} {} (level {}): {shown} in {seconds:.1} s", i.device, i.name, i.level);
    if r.is_some_and(|r| r.remedied) {
        out.push_str(" after its remedy");
    }
    out.push('\n');
    if let Some(why) = r.and_then(detail) {
        let _ = writeln!(out, "  {why}");
    }
    if let Some(diag::Outcome::Failed { output, .. }) = r.map(|r| &r.outcome) {
        for line in output.lines() {
            let _ = writeln!(out, "  | {line}");
        }
    }
}

/// What a result says beyond passed or failed: the expectation a failure missed, or why it did not run.
fn detail(r: &Record) -> Option<&str> {
    match &r.outcome {
        diag::Outcome::Passed => None,
        diag::Outcome::Failed { expectation, .. } => Some(expectation),
        diag::Outcome::Refused { reason } | diag::Outcome::NotRun { reason } => Some(reason),
    }
}

/// The device's diagnostics for `agentctl device`: where each stands and its last result ("" when the
/// device has none).
pub(super) fn table(d: &DeviceView, style: Style) -> String {
    let mut t = Table::new(&["DIAGNOSTIC", "LEVEL", "NOW", "LAST RESULT", "WHEN", "DURATION", "DETAIL"]);
    for diag in &d.diagnostics {
        let last = diag.last.as_ref();
        let remedied = if last.is_some_and(|l| l.remedied) { " (after remedy)" } else { "" };
        t.row(vec![
            diag.name.clone(),
            diag.level.to_string(),
            diag.phase.name().to_owned(),
            last.map_or_else(|| "never run".to_owned(), |l| style.result(l.outcome.name()) + remedied),
            ago(last.and_then(|l| l.finished)),
            last.map_or_else(|| "-".to_owned(), |l| format!("{:.1} s", l.duration_seconds)),
            last.and_then(detail).unwrap_or("").to_owned(),
        ]);
    }
    if t.is_empty() { String::new() } else { t.render(style) }
}
