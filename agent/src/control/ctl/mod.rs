//! agentctl: the on-call engineer's first command. Reads come from the agent's snapshot (it never waits on
//! hardware); changes go through the control socket, which checks who is asking. Every answer is read
//! into the type the agent serialized it from (`publish::api`, `model`, `control`): no field is looked up
//! by name here.

pub mod cli;
pub(crate) mod client;
mod device;
mod diagnostics;
pub(crate) mod render;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::diagnose::{Level, Report};
use super::{Done, Failure, MutationBody};
use crate::effects::journal::Event;
use crate::model::DeviceView;
use crate::model::source_health::SourceKind;
use crate::publish::api::{DeviceDetail, DeviceStatus, HistoryReport, StatusReport};
use cli::{CtlCli, OnOff, Verb};
use client::{Client, ClientError, Reply};
use render::{Style, Table, value};

/// Reads are answered from memory; this only bounds a stuck agent.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Diagnose runs every probe; each has its own timeout (at most a few seconds by default).
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(120);

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;
pub const EXIT_USAGE: u8 = 64;

/// What a verb ends with: text for stdout, and the exit code.
struct Outcome {
    out: String,
    code: u8,
}

/// An error for stderr (or, with --json, a JSON object on stdout), and its exit code.
struct Failed {
    message: String,
    code: u8,
    known: Vec<String>,
}

impl Failed {
    fn new(message: impl Into<String>, code: u8) -> Failed {
        Failed { message: message.into(), code, known: Vec::new() }
    }
}

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Failed {
        let code = match e {
            ClientError::Denied { .. } => EXIT_REFUSED,
            _ => EXIT_UNREACHABLE,
        };
        Failed::new(e.to_string(), code)
    }
}

/// `--json` output of a failure. The fields are in alphabetical order, as the JSON object agentctl printed
/// before it was typed (scripts may compare it as text).
#[derive(Serialize)]
struct FailedJson<'a> {
    error: &'a str,
    exit_code: u8,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    known: &'a [String],
}

pub fn main_with_args() -> ExitCode {
    let cli = match CtlCli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let style = Style::detect();
    let result = run(&cli, style);
    match result {
        Ok(Outcome { out, code }) => {
            print!("{out}");
            ExitCode::from(code)
        }
        Err(f) if cli.json => {
            let v = FailedJson { error: &f.message, exit_code: f.code, known: &f.known };
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::from(f.code)
        }
        Err(f) => {
            eprintln!("agentctl: {}", f.message);
            if !f.known.is_empty() {
                eprintln!("known devices: {}", f.known.join(", "));
            }
            ExitCode::from(f.code)
        }
    }
}

/// An answer of the agent: the value read from it, and its JSON as it came, which `--json` prints.
struct Answer<T> {
    value: T,
    body: Vec<u8>,
}

impl<T> Answer<T> {
    /// What `--json` prints, or the text of the value.
    fn shown(&self, as_json: bool, text: impl FnOnce(&T) -> String) -> String {
        if as_json { pretty_body(&self.body) } else { text(&self.value) }
    }
}

fn run(cli: &CtlCli, style: Style) -> Result<Outcome, Failed> {
    let client = Client { socket: cli.socket.clone() };
    match &cli.verb {
        Verb::Status => {
            let a: Answer<StatusReport> = get(&client, "/api/v1/status")?;
            let code = a.value.status.exit_code();
            Ok(Outcome { out: a.shown(cli.json, |v| status_text(v, style)), code })
        }
        Verb::Devices => {
            let a: Answer<Vec<DeviceView>> = get(&client, "/api/v1/devices")?;
            let worst = a.value.iter().map(|d| d.state.exit_code()).max();
            Ok(Outcome { out: a.shown(cli.json, |v| devices_text(v, style)), code: worst.unwrap_or(0) })
        }
        Verb::Device { id } => {
            let a: Answer<DeviceDetail<'static>> = get(&client, &device_path(id))?;
            let code = a.value.device.state.exit_code();
            if cli.json {
                return Ok(Outcome { out: pretty_body(&a.body), code });
            }
            let mut out = device::text(&a.value, style);
            // An agent without the history endpoint (older) still shows the device, without the line.
            if let Ok(h) = get::<HistoryReport>(&client, &format!("{}/history?since=15m", device_path(id))) {
                out.insert_str(out.find('\n').map_or(0, |i| i + 1), &render::temperature_sparkline(&h.value));
            }
            Ok(Outcome { out, code })
        }
        Verb::Events { since, device, severity, kind, limit } => {
            let mut q = format!("limit={limit}");
            for (k, v) in [("since", since), ("device", device), ("severity", severity), ("kind", kind)] {
                if let Some(v) = v {
                    let _ = write!(q, "&{k}={}", encode(v));
                }
            }
            let a: Answer<Vec<Event>> = get(&client, &format!("/api/v1/events?{q}"))?;
            Ok(Outcome { out: a.shown(cli.json, |v| events_text(v, style)), code: EXIT_OK })
        }
        Verb::Reconnect { id } => mutate(&client, cli.json, &format!("{}/reconnect", device_path(id)), None),
        Verb::Throttle { id, level, for_ } => {
            let body = MutationBody { level: Some(*level), for_: for_.clone(), ..MutationBody::default() };
            mutate(&client, cli.json, &format!("{}/throttle", device_path(id)), Some(body))
        }
        Verb::Unthrottle { id } => mutate(&client, cli.json, &format!("{}/unthrottle", device_path(id)), None),
        Verb::Maintenance { id, mode, for_ } => {
            let body = MutationBody { on: Some(*mode == OnOff::On), for_: for_.clone(), ..MutationBody::default() };
            mutate(&client, cli.json, &format!("{}/maintenance", device_path(id)), Some(body))
        }
        Verb::SetHealthy { id } => mutate(&client, cli.json, &format!("{}/set-healthy", device_path(id)), None),
        Verb::Reload => mutate(&client, cli.json, "/api/v1/reload", None),
        Verb::Diagnose { level: level @ 1.., id } => diagnostics::run(&client, *level, id.as_deref(), cli.json, style),
        Verb::Diagnose { id, .. } => diagnose(&client, id.as_deref(), cli.json, style),
        Verb::Bundle { output, force } => bundle(&client, output.as_deref(), *force, cli.json),
        Verb::CheckConfig { file } => Ok(check_config(file, cli.json)),
        Verb::Man => Ok(generated(|cmd, out| crate::man::render(cmd, "1", out))),
        Verb::Completions { shell } => Ok(generated(|mut cmd, out| {
            clap_complete::generate(*shell, &mut cmd, "agentctl", out);
            Ok(())
        })),
    }
}

/// A read: the agent's answer to GET `path`.
fn get<T: DeserializeOwned>(client: &Client, path: &str) -> Result<Answer<T>, Failed> {
    decode(client.request("GET", path, None, READ_TIMEOUT)?)
}

/// `agentctl diagnose [ID]`: every check run now, the findings of one device (and the host's) with an id.
fn diagnose(client: &Client, id: Option<&str>, as_json: bool, style: Style) -> Result<Outcome, Failed> {
    let mut a: Answer<Report> = decode(client.request("POST", "/api/v1/diagnose", Some("{}"), DIAGNOSE_TIMEOUT)?)?;
    let worst = |r: &Report| match r.findings.iter().map(|f| f.level).max() {
        Some(Level::Critical) => 2,
        Some(Level::Warning) => 1,
        _ => EXIT_OK,
    };
    let Some(id) = id else {
        return Ok(Outcome { code: worst(&a.value), out: a.shown(as_json, |r| diagnose_text(r, style)) });
    };
    a.value.findings.retain(|f| f.device.as_deref().is_none_or(|d| d == id));
    // What is printed is no longer the agent's answer as it came: written again from the value, through
    // serde_json's Value so that the keys are in the same (sorted) order as the unfiltered answer's.
    let out = if as_json { pretty(&a.value) } else { diagnose_text(&a.value, style) };
    Ok(Outcome { code: worst(&a.value), out })
}

fn generated(f: impl FnOnce(clap::Command, &mut Vec<u8>) -> std::io::Result<()>) -> Outcome {
    let mut out = Vec::new();
    match f(CtlCli::command(), &mut out) {
        Ok(()) => Outcome { out: String::from_utf8_lossy(&out).into_owned(), code: EXIT_OK },
        Err(e) => Outcome { out: format!("{e}\n"), code: EXIT_FAILED },
    }
}

/// Percent-encodes what a path or query value cannot hold as is.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn device_path(id: &str) -> String {
    format!("/api/v1/devices/{}", encode(id))
}

/// A value as `--json` prints it: pretty, with the keys in serde_json's `Value` order (sorted), as the
/// agent's own answers are printed.
fn pretty<T: Serialize>(v: &T) -> String {
    let v = serde_json::to_value(v).unwrap_or_default();
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// The agent's JSON as `--json` prints it: re-indented, every field kept (also those this agentctl does
/// not know).
fn pretty_body(body: &[u8]) -> String {
    pretty(&serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default())
}

/// The answer of a reply, or the failure it reports mapped to an exit code.
fn decode<T: DeserializeOwned>(reply: Reply) -> Result<Answer<T>, Failed> {
    // /health and friends use 503 to say "unhealthy"; their body is still the answer.
    if reply.status < 300 || reply.status == 503 {
        match serde_json::from_slice::<T>(&reply.body) {
            Ok(value) => return Ok(Answer { value, body: reply.body }),
            Err(e) if reply.status < 300 => {
                return Err(Failed::new(format!("unexpected answer from the agent: {e}"), EXIT_FAILED));
            }
            Err(_) => {}
        }
    }
    let Failure { error, known, group } = serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
        // Plain-text errors (e.g. from the shared read endpoints) still deserve to be shown.
        let text = String::from_utf8_lossy(&reply.body).trim().to_owned();
        let json = serde_json::from_slice::<IgnoredAny>(&reply.body).is_ok();
        let error = if json { "the agent refused the request".to_owned() } else { text };
        Failure { error, known: Vec::new(), group: None }
    });
    let code = match reply.status {
        403 => {
            let message = format!("{error}\n{}", client::denied_hint(group.as_deref()));
            return Err(Failed { message, code: EXIT_REFUSED, known });
        }
        400 | 404 => EXIT_USAGE,
        _ => EXIT_FAILED,
    };
    Err(Failed { message: error, code, known })
}

fn mutate(client: &Client, as_json: bool, path: &str, body: Option<MutationBody>) -> Result<Outcome, Failed> {
    let body = serde_json::to_string(&body.unwrap_or_default()).unwrap_or_default();
    let a: Answer<Done> = decode(client.request("POST", path, Some(&body), READ_TIMEOUT * 4)?)?;
    Ok(Outcome { out: a.shown(as_json, |d| format!("{}\n", d.message)), code: EXIT_OK })
}

/// `check-config --json`: fields in alphabetical order, as before it was typed.
#[derive(Serialize)]
struct ConfigChecked<'a> {
    errors: &'a [String],
    file: String,
    valid: bool,
}

fn check_config(file: &std::path::Path, as_json: bool) -> Outcome {
    let result = config::load_file(file);
    let errors: Vec<String> = match &result {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    };
    let code = if errors.is_empty() { EXIT_OK } else { EXIT_FAILED };
    let out = if as_json {
        pretty(&ConfigChecked { errors: &errors, file: file.display().to_string(), valid: errors.is_empty() })
    } else if errors.is_empty() {
        format!("{}: ok\n", file.display())
    } else {
        format!("{}\n", errors.join("\n"))
    };
    Outcome { out, code }
}

/// `bundle --json`: fields in alphabetical order, as before it was typed.
#[derive(Serialize)]
struct BundleWritten<'a> {
    bytes: usize,
    contents: &'a [&'a str],
    file: String,
}

fn bundle(client: &Client, output: Option<&Path>, force: bool, as_json: bool) -> Result<Outcome, Failed> {
    let reply = client.request("GET", "/api/v1/bundle", None, DIAGNOSE_TIMEOUT)?;
    if reply.status != 200 {
        decode::<IgnoredAny>(reply)?;
        return Err(Failed::new("the agent could not build the bundle", EXIT_FAILED));
    }
    let path = match output {
        Some(p) => p.to_owned(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            std::path::PathBuf::from(format!("accel-agent-bundle-{}-{now}.tar.gz", host.trim()))
        }
    };
    if let Err(e) = write_new(&path, &reply.body, force) {
        return Err(Failed::new(e.to_string(), EXIT_FAILED));
    }
    let contents: Vec<&str> = crate::control::bundle::CONTENTS.iter().map(|(n, _)| *n).collect();
    let out = if as_json {
        pretty(&BundleWritten { bytes: reply.body.len(), contents: &contents, file: path.display().to_string() })
    } else {
        format!("wrote {} ({} KiB): {}\n", path.display(), reply.body.len().div_ceil(1024), contents.join(", "))
    };
    Ok(Outcome { out, code: EXIT_OK })
}

/// Why the bundle could not be written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{path}: exists (a file or a symbolic link); choose another name, or --force to replace it")]
    Exists { path: String },
    #[error("cannot remove {path} to replace it: {source}")]
    Remove { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Writes `data` to a file created for it: O_EXCL, so a symlink or a file someone prepared at `path`
/// (with looser permissions, another owner, or a link to a file elsewhere) is never written through or
/// kept; O_NOFOLLOW as well, for the kernels and filesystems where O_EXCL alone is not enough; mode 0600
/// because the bundle describes the host in detail. With `force` an existing entry is unlinked first
/// (a symlink itself, never its target). A file left half-written is removed.
fn write_new(path: &Path, data: &[u8], force: bool) -> Result<(), WriteError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = || path.display().to_string();
    if force {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(WriteError::Remove { path: shown(), source }),
        }
    }
    let file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path);
    let mut file = match file {
        Ok(f) => f,
        // A link or file that appeared after the unlink above is refused as well, never followed.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(WriteError::Exists { path: shown() }),
        Err(source) => return Err(WriteError::Write { path: shown(), source }),
    };
    file.write_all(data).and_then(|()| file.sync_all()).map_err(|source| {
        // Ours (created above): remove it rather than leave a truncated bundle behind.
        let _ = std::fs::remove_file(path);
        WriteError::Write { path: shown(), source }
    })
}

fn failing_text(d: &DeviceStatus) -> String {
    let names: Vec<String> = d.failing.iter().map(|f| format!("{} ({})", f.condition.name(), f.reason)).collect();
    if names.is_empty() { "-".to_owned() } else { names.join(", ") }
}

/// `agentctl status`: the agent's own health, what is failing and open, then one line per device.
fn status_text(v: &StatusReport, style: Style) -> String {
    let mut out = agent_text(v, style);
    if v.devices.is_empty() {
        out.push_str(
            "no devices: none declared in the config and none found by discovery\n\
             declare accelerators with [[device]] in the agent's config (examples in\n\
             /usr/share/doc/accel-agent/examples/); `agentctl diagnose` and `accel-agent scan` say what was looked at\n",
        );
        return out;
    }
    let mut t = Table::new(&["DEVICE", "KIND", "STATE", "TEMP", "POWER", "THROTTLE", "CIRCUIT", "FAILING"]);
    for d in &v.devices {
        let throttle = match (d.throttle_level, d.throttle_max_level) {
            (Some(l), Some(m)) => {
                let manual = if d.manual_throttle.is_some() { " (manual)" } else { "" };
                format!("{l}/{m}{manual}")
            }
            _ => "-".to_owned(),
        };
        let circuit = match (d.circuit, d.needs_hardware_inspection) {
            (Some(c), true) => format!("{}, needs inspection", c.name()),
            (Some(c), false) => c.name().to_owned(),
            (None, _) => "-".to_owned(),
        };
        t.row(vec![
            d.id.clone(),
            d.kind.to_string(),
            style.state(d.state.name()),
            value(d.temperature_celsius, "°C", 1),
            value(d.power_watts, "W", 1),
            throttle,
            circuit,
            failing_text(d),
        ]);
    }
    out.push_str(&t.render(style));
    out
}

/// The head of `agentctl status`: version, uptime and mode, then each failing source, open window and
/// trouble of the agent's own, one per line.
fn agent_text(v: &StatusReport, style: Style) -> String {
    let agent = &v.agent;
    let uptime = humantime::format_duration(Duration::from_secs(agent.uptime_seconds as u64));
    let mut out = format!(
        "accel-agent {} · up {} · actions {} · overall {}\n",
        agent.version,
        uptime.to_string().split(' ').take(2).collect::<Vec<_>>().join(" "),
        agent.actions.as_str(),
        style.state(v.status.name())
    );
    for c in &agent.collectors_failing {
        let _ = writeln!(out, "collector {} failing: {}", c.collector, c.error);
    }
    // Collectors are listed just above, with their error.
    for f in v.sources_failing.iter().filter(|f| f.source != SourceKind::Collector) {
        let since = render::ago(Some(f.since));
        let _ = writeln!(out, "{} {} failing since {since}: {}", f.source.name(), f.name, f.reason);
    }
    for w in v.maintenance_windows.iter().filter(|w| w.active) {
        let _ = writeln!(
            out,
            "maintenance window {} open until {}: {}",
            w.name,
            w.ends_local.as_deref().unwrap_or("?"),
            if w.devices.is_empty() { "every device".to_owned() } else { w.devices.join(", ") }
        );
    }
    if let Some(j) = &agent.journal_unavailable {
        let _ = writeln!(out, "event journal unavailable: {j}");
    } else if let Some(j) = &agent.journal_degraded {
        let _ = writeln!(out, "event journal degraded: {j}");
    }
    if let Some(why) = &agent.actions_stopped {
        let _ = writeln!(out, "{}: the actions worker stopped ({why}); restart the agent", style.state("critical"));
    }
    if let Some(fault) = &agent.faults.current {
        let _ = writeln!(
            out,
            "{}: the agent is {}: {} not done (its own trouble, not the device's; see `agentctl diagnose`)",
            style.state("critical"),
            fault.reason,
            fault.what
        );
    }
    out
}

/// "-" for what the agent left empty.
fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".to_owned() } else { s.to_owned() }
}

fn devices_text(devices: &[DeviceView], style: Style) -> String {
    let mut t = Table::new(&["DEVICE", "KIND", "MODEL", "DRIVER", "PCI", "STATE", "UP", "SOURCES"]);
    for d in devices {
        t.row(vec![
            or_dash(&d.id),
            or_dash(&d.kind),
            or_dash(&d.model),
            or_dash(&d.driver),
            or_dash(&d.pci_address),
            style.state(d.state.name()),
            match d.up {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
            or_dash(&d.sources.join(", ")),
        ]);
    }
    if t.is_empty() { "no devices\n".to_owned() } else { t.render(style) }
}

fn events_text(events: &[Event], style: Style) -> String {
    let mut t = Table::new(&["TIME", "SEVERITY", "DEVICE", "KIND", "MESSAGE"]);
    for e in events {
        t.row(vec![
            e.time_rfc3339(),
            style.state(e.severity.as_str()),
            e.device.clone().unwrap_or_else(|| "-".to_owned()),
            e.kind.clone(),
            e.message.clone(),
        ]);
    }
    if t.is_empty() { "no events\n".to_owned() } else { t.render(style) }
}

fn diagnose_text(v: &Report, style: Style) -> String {
    let mut out = format!(
        "{} device(s), {} probe(s) run now; overall {}\n",
        v.devices,
        v.probes_run,
        style.state(v.status.name())
    );
    if v.findings.is_empty() {
        out.push_str("no findings: every check passed\n");
    }
    for f in &v.findings {
        let _ = writeln!(
            out,
            "\n[{}] {}{}: {}",
            style.state(f.level.name()),
            f.device.as_deref().map(|d| format!("{d} ")).unwrap_or_default(),
            f.check,
            f.finding
        );
        let _ = writeln!(out, "  replaces: {}", f.replaces);
        let _ = writeln!(out, "  do:       {}", f.action);
    }
    out
}
