//! `agentctl diagnose --level N [ID]` for N >= 1: starts the diagnostics of level N and below on the
//! agent, polls the run until every result is in (a progress line on stderr while one runs, when stderr
//! is a terminal), prints each result and exits as status does: 0 all passed, 1 one could not run
//! (refused, not run), 2 one failed.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::client::Client;
use super::render::{Style, Table, ago};
use super::{EXIT_FAILED, EXIT_OK, Failed, Outcome, READ_TIMEOUT, decode, pretty};

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
    let body = json!({"level": level, "device": id}).to_string();
    let mut v = decode(client.request("POST", "/api/v1/diagnostics", Some(&body), READ_TIMEOUT * 4)?)?;
    let run = v["id"].as_u64().unwrap_or(0);
    // Each item may take its timeout three times over (try, remedy, try again), one after another.
    let budget: f64 = items(&v).map(|i| i["timeout_seconds"].as_f64().unwrap_or(60.0) * 3.0).sum();
    let deadline = Instant::now() + Duration::from_secs_f64(budget) + SLACK;
    let progress = std::io::stderr().is_terminal();
    while !v["done"].as_bool().unwrap_or(false) {
        if Instant::now() > deadline {
            return Err(Failed {
                message: format!(
                    "diagnostics run {run} did not finish in time; see `agentctl events --kind diagnostic`"
                ),
                code: EXIT_FAILED,
                known: Vec::new(),
            });
        }
        if progress {
            show_progress(&v);
        }
        std::thread::sleep(POLL_EVERY);
        v = decode(client.request("GET", &format!("/api/v1/diagnostics/runs/{run}"), None, READ_TIMEOUT)?)?;
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let code = items(&v).map(|i| code(i["result"]["result"].as_str())).max().unwrap_or(EXIT_OK);
    Ok(Outcome { out: if as_json { pretty(&v) } else { text(&v, style) }, code })
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v["items"].as_array().into_iter().flatten()
}

fn code(result: Option<&str>) -> u8 {
    match result {
        Some("passed") => EXIT_OK,
        Some("failed") => 2,
        _ => EXIT_FAILED,
    }
}

/// One line, rewritten in place: each diagnostic running now, with how long it has run of its timeout.
fn show_progress(v: &Value) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let running: Vec<String> = items(v)
        .filter(|i| i["phase"] == "running" && i["result"].is_null())
        .map(|i| {
            let since = i["running_since"].as_f64().unwrap_or(now);
            format!(
                "{} {} (level {}): {:.0} s of {:.0} s",
                i["device"].as_str().unwrap_or("?"),
                i["name"].as_str().unwrap_or("?"),
                i["level"],
                (now - since).max(0.0),
                i["timeout_seconds"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let line = if running.is_empty() { "waiting for a free slot".to_owned() } else { running.join("; ") };
    eprint!("\r\x1b[K{line}");
    let _ = std::io::stderr().flush();
}

fn text(v: &Value, style: Style) -> String {
    let mut out = format!("diagnostics run {} (level {} and below)\n", v["id"], v["level"]);
    for i in items(v) {
        let r = &i["result"];
        let shown = style.result(r["result"].as_str().unwrap_or("unknown"));
        let _ = write!(
            out,
            "{} {} (level {}): {shown} in {:.1} s",
            i["device"].as_str().unwrap_or("?"),
            i["name"].as_str().unwrap_or("?"),
            i["level"],
            r["duration_seconds"].as_f64().unwrap_or(0.0)
        );
        if r["remedied"].as_bool().unwrap_or(false) {
            out.push_str(" after its remedy");
        }
        out.push('\n');
        for key in ["expectation", "reason"] {
            if let Some(s) = r[key].as_str() {
                let _ = writeln!(out, "  {s}");
            }
        }
        for line in r["output"].as_str().unwrap_or("").lines() {
            let _ = writeln!(out, "  | {line}");
        }
    }
    out
}

/// The device's diagnostics for `agentctl device`: where each stands and its last result ("" when the
/// device has none).
pub(super) fn table(d: &Value, style: Style) -> String {
    let mut t = Table::new(&["DIAGNOSTIC", "LEVEL", "NOW", "LAST RESULT", "WHEN", "DURATION", "DETAIL"]);
    for diag in d["diagnostics"].as_array().into_iter().flatten() {
        let last = &diag["last"];
        let detail = ["expectation", "reason"].iter().find_map(|k| last[*k].as_str()).unwrap_or("");
        let remedied = if last["remedied"].as_bool() == Some(true) { " (after remedy)" } else { "" };
        t.row(vec![
            diag["name"].as_str().unwrap_or("?").to_owned(),
            diag["level"].to_string(),
            diag["phase"].as_str().unwrap_or("?").to_owned(),
            last["result"].as_str().map_or_else(|| "never run".to_owned(), |r| style.result(r) + remedied),
            ago(last["finished"].as_f64()),
            last["duration_seconds"].as_f64().map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s")),
            detail.to_owned(),
        ]);
    }
    if t.is_empty() { String::new() } else { t.render(style) }
}
