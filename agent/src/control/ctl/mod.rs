//! agentctl: the on-call engineer's first command. Reads come from the agent's snapshot (it never waits on
//! hardware); changes go through the control socket, which checks who is asking.

pub mod cli;
pub(crate) mod client;
mod diagnostics;
pub(crate) mod render;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};

use cli::{CtlCli, OnOff, Verb};
use client::{Client, ClientError, Reply};
use render::{Style, Table, ago, value};

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

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Failed {
        let code = match e {
            ClientError::Denied { .. } => EXIT_REFUSED,
            _ => EXIT_UNREACHABLE,
        };
        Failed { message: e.to_string(), code, known: Vec::new() }
    }
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
            let mut v = json!({"error": f.message, "exit_code": f.code});
            if !f.known.is_empty() {
                v["known"] = json!(f.known);
            }
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

fn run(cli: &CtlCli, style: Style) -> Result<Outcome, Failed> {
    let client = Client { socket: cli.socket.clone() };
    let get = |path: &str| -> Result<Value, Failed> { decode(client.request("GET", path, None, READ_TIMEOUT)?) };
    match &cli.verb {
        Verb::Status => {
            let v = get("/api/v1/status")?;
            let code = state_code(v["status"].as_str());
            Ok(Outcome { out: if cli.json { pretty(&v) } else { status_text(&v, style) }, code })
        }
        Verb::Devices => {
            let v = get("/api/v1/devices")?;
            let worst = v.as_array().into_iter().flatten().map(|d| state_code(d["state"].as_str())).max();
            Ok(Outcome { out: if cli.json { pretty(&v) } else { devices_text(&v, style) }, code: worst.unwrap_or(0) })
        }
        Verb::Device { id } => {
            let v = get(&format!("/api/v1/devices/{}", encode(id)))?;
            let code = state_code(v["state"].as_str());
            if cli.json {
                return Ok(Outcome { out: pretty(&v), code });
            }
            let mut out = device_text(&v, style);
            // An agent without the history endpoint (older) still shows the device, without the line.
            if let Ok(h) = get(&format!("/api/v1/devices/{}/history?since=15m", encode(id))) {
                out.insert_str(out.find('\n').map_or(0, |i| i + 1), &render::temperature_sparkline(&h));
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
            let v = get(&format!("/api/v1/events?{q}"))?;
            Ok(Outcome { out: if cli.json { pretty(&v) } else { events_text(&v, style) }, code: EXIT_OK })
        }
        Verb::Reconnect { id } => mutate(&client, cli.json, &format!("{}/reconnect", device_path(id)), json!({})),
        Verb::Throttle { id, level, for_ } => {
            let body = json!({"level": level, "for": for_});
            mutate(&client, cli.json, &format!("{}/throttle", device_path(id)), body)
        }
        Verb::Unthrottle { id } => mutate(&client, cli.json, &format!("{}/unthrottle", device_path(id)), json!({})),
        Verb::Maintenance { id, mode, for_ } => {
            let body = json!({"on": *mode == OnOff::On, "for": for_});
            mutate(&client, cli.json, &format!("{}/maintenance", device_path(id)), body)
        }
        Verb::SetHealthy { id } => mutate(&client, cli.json, &format!("{}/set-healthy", device_path(id)), json!({})),
        Verb::Reload => mutate(&client, cli.json, "/api/v1/reload", json!({})),
        Verb::Diagnose { level: level @ 1.., id } => diagnostics::run(&client, *level, id.as_deref(), cli.json, style),
        Verb::Diagnose { id, .. } => {
            let mut v = decode(client.request("POST", "/api/v1/diagnose", Some("{}"), DIAGNOSE_TIMEOUT)?)?;
            if let (Some(id), Some(findings)) = (id, v["findings"].as_array_mut()) {
                findings.retain(|f| f["device"].as_str().is_none_or(|d| d == id));
            }
            let worst =
                v["findings"].as_array().into_iter().flatten().filter_map(|f| f["level"].as_str()).fold(0, |acc, l| {
                    match l {
                        "critical" => 2,
                        "warning" => acc.max(1),
                        _ => acc,
                    }
                });
            Ok(Outcome { out: if cli.json { pretty(&v) } else { diagnose_text(&v, style) }, code: worst })
        }
        Verb::Bundle { output, force } => bundle(&client, output.as_deref(), *force, cli.json),
        Verb::CheckConfig { file } => Ok(check_config(file, cli.json)),
        Verb::Man => Ok(generated(|cmd, out| crate::man::render(cmd, "1", out))),
        Verb::Completions { shell } => Ok(generated(|mut cmd, out| {
            clap_complete::generate(*shell, &mut cmd, "agentctl", out);
            Ok(())
        })),
    }
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

fn pretty(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

fn state_code(state: Option<&str>) -> u8 {
    match state {
        Some("healthy" | "maintenance") => 0,
        Some("unhealthy") => 2,
        _ => 1,
    }
}

/// A reply's JSON, or the failure it reports mapped to an exit code.
fn decode(reply: Reply) -> Result<Value, Failed> {
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
        // Plain-text errors (e.g. from the shared read endpoints) still deserve to be shown.
        json!({"error": String::from_utf8_lossy(&reply.body).trim()})
    });
    // /health and friends use 503 to say "unhealthy"; their body is still the answer.
    if reply.status < 300 || (reply.status == 503 && v.get("error").is_none()) {
        return Ok(v);
    }
    let message = v["error"].as_str().unwrap_or("the agent refused the request").to_owned();
    let known: Vec<String> =
        v["known"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(str::to_owned)).collect();
    let code = match reply.status {
        403 => {
            return Err(Failed {
                message: format!("{message}\n{}", client::denied_hint(v["group"].as_str())),
                code: EXIT_REFUSED,
                known,
            });
        }
        400 | 404 => EXIT_USAGE,
        _ => EXIT_FAILED,
    };
    Err(Failed { message, code, known })
}

fn mutate(client: &Client, as_json: bool, path: &str, body: Value) -> Result<Outcome, Failed> {
    let v = decode(client.request("POST", path, Some(&body.to_string()), READ_TIMEOUT * 4)?)?;
    let out = if as_json { pretty(&v) } else { format!("{}\n", v["message"].as_str().unwrap_or("done")) };
    Ok(Outcome { out, code: EXIT_OK })
}

fn check_config(file: &std::path::Path, as_json: bool) -> Outcome {
    let result = config::load_file(file);
    let errors: Vec<String> = match &result {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    };
    let code = if errors.is_empty() { EXIT_OK } else { EXIT_FAILED };
    let out = if as_json {
        pretty(&json!({"file": file.display().to_string(), "valid": errors.is_empty(), "errors": errors}))
    } else if errors.is_empty() {
        format!("{}: ok\n", file.display())
    } else {
        format!("{}\n", errors.join("\n"))
    };
    Outcome { out, code }
}

fn bundle(client: &Client, output: Option<&Path>, force: bool, as_json: bool) -> Result<Outcome, Failed> {
    let reply = client.request("GET", "/api/v1/bundle", None, DIAGNOSE_TIMEOUT)?;
    if reply.status != 200 {
        decode(reply)?;
        return Err(Failed {
            message: "the agent could not build the bundle".into(),
            code: EXIT_FAILED,
            known: vec![],
        });
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
        return Err(Failed { message: e.to_string(), code: EXIT_FAILED, known: vec![] });
    }
    let contents: Vec<&str> = crate::control::bundle::CONTENTS.iter().map(|(n, _)| *n).collect();
    let out = if as_json {
        pretty(&json!({"file": path.display().to_string(), "bytes": reply.body.len(), "contents": contents}))
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

fn failing_text(d: &Value) -> String {
    let names: Vec<String> = d["failing"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} ({})", f["condition"].as_str().unwrap_or("?"), f["reason"].as_str().unwrap_or("")))
        .collect();
    if names.is_empty() { "-".to_owned() } else { names.join(", ") }
}

fn status_text(v: &Value, style: Style) -> String {
    let agent = &v["agent"];
    let uptime =
        humantime::format_duration(Duration::from_secs(agent["uptime_seconds"].as_f64().unwrap_or(0.0) as u64));
    let mut out = format!(
        "accel-agent {} · up {} · actions {} · overall {}\n",
        agent["version"].as_str().unwrap_or("?"),
        uptime.to_string().split(' ').take(2).collect::<Vec<_>>().join(" "),
        agent["actions"].as_str().unwrap_or("?"),
        style.state(v["status"].as_str().unwrap_or("unknown"))
    );
    for c in agent["collectors_failing"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "collector {} failing: {}",
            c["collector"].as_str().unwrap_or("?"),
            c["error"].as_str().unwrap_or("")
        );
    }
    // Collectors are listed just above, with their error.
    for f in v["sources_failing"].as_array().into_iter().flatten().filter(|f| f["source"] != "collector") {
        let _ = writeln!(
            out,
            "{} {} failing since {}: {}",
            f["source"].as_str().unwrap_or("?"),
            f["name"].as_str().unwrap_or("?"),
            render::ago(f["since"].as_f64()),
            f["reason"].as_str().unwrap_or("")
        );
    }
    for w in v["maintenance_windows"].as_array().into_iter().flatten().filter(|w| w["active"] == true) {
        let devices: Vec<&str> = w["devices"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let _ = writeln!(
            out,
            "maintenance window {} open until {}: {}",
            w["name"].as_str().unwrap_or("?"),
            w["ends_local"].as_str().unwrap_or("?"),
            if devices.is_empty() { "every device".to_owned() } else { devices.join(", ") }
        );
    }
    if let Some(j) = agent["journal_unavailable"].as_str() {
        let _ = writeln!(out, "event journal unavailable: {j}");
    } else if let Some(j) = agent["journal_degraded"].as_str() {
        let _ = writeln!(out, "event journal degraded: {j}");
    }
    if let Some(why) = agent["actions_stopped"].as_str() {
        let _ = writeln!(out, "{}: the actions worker stopped ({why}); restart the agent", style.state("critical"));
    }
    let fault = &agent["faults"]["current"];
    if let (Some(reason), Some(what)) = (fault["reason"].as_str(), fault["what"].as_str()) {
        let _ = writeln!(
            out,
            "{}: the agent is {reason}: {what} not done (its own trouble, not the device's; see `agentctl diagnose`)",
            style.state("critical")
        );
    }
    let devices = v["devices"].as_array().cloned().unwrap_or_default();
    if devices.is_empty() {
        out.push_str(
            "no devices: none declared in the config and none found by discovery\n\
             declare accelerators with [[device]] in the agent's config (examples in\n\
             /usr/share/doc/accel-agent/examples/); `agentctl diagnose` and `accel-agent scan` say what was looked at\n",
        );
        return out;
    }
    let mut t = Table::new(&["DEVICE", "KIND", "STATE", "TEMP", "POWER", "THROTTLE", "CIRCUIT", "FAILING"]);
    for d in &devices {
        let throttle = match (d["throttle_level"].as_u64(), d["throttle_max_level"].as_u64()) {
            (Some(l), Some(m)) => {
                let manual = if d["manual_throttle"].is_object() { " (manual)" } else { "" };
                format!("{l}/{m}{manual}")
            }
            _ => "-".to_owned(),
        };
        let circuit = match (d["circuit"].as_str(), d["needs_hardware_inspection"].as_bool()) {
            (Some(c), Some(true)) => format!("{c}, needs inspection"),
            (Some(c), _) => c.to_owned(),
            (None, _) => "-".to_owned(),
        };
        t.row(vec![
            d["id"].as_str().unwrap_or("?").to_owned(),
            d["kind"].as_str().unwrap_or("?").to_owned(),
            style.state(d["state"].as_str().unwrap_or("unknown")),
            value(d["temperature_celsius"].as_f64(), "°C", 1),
            value(d["power_watts"].as_f64(), "W", 1),
            throttle,
            circuit,
            failing_text(d),
        ]);
    }
    out.push_str(&t.render(style));
    out
}

fn devices_text(v: &Value, style: Style) -> String {
    let mut t = Table::new(&["DEVICE", "KIND", "MODEL", "DRIVER", "PCI", "STATE", "UP", "SOURCES"]);
    for d in v.as_array().into_iter().flatten() {
        let text = |k: &str| d[k].as_str().filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
        let sources: Vec<&str> = d["sources"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        t.row(vec![
            text("id"),
            text("kind"),
            text("model"),
            text("driver"),
            text("pci_address"),
            style.state(d["state"].as_str().unwrap_or("unknown")),
            match d["up"].as_bool() {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
            if sources.is_empty() { "-".into() } else { sources.join(", ") },
        ]);
    }
    if t.is_empty() { "no devices\n".to_owned() } else { t.render(style) }
}

/// Why the device is in maintenance: each open window with its end, and an operator's, with its own.
fn maintenance_lines(d: &Value) -> Vec<String> {
    let mut actions: Vec<String> =
        d["maintenance_reason"].as_str().map(|why| format!("maintenance: {why}")).into_iter().collect();
    // An agent from before maintenance windows sends no maintenance_manual: its maintenance is manual.
    let manual = d["maintenance_manual"].as_bool().or(d["maintenance"].as_bool()) == Some(true);
    for w in d["maintenance_windows"].as_array().into_iter().flatten() {
        let (name, until) = (w["name"].as_str().unwrap_or("?"), w["until_local"].as_str().unwrap_or("?"));
        actions.push(format!("maintenance window {name} until {until}"));
    }
    if manual {
        let until = d["maintenance_until"]
            .as_f64()
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .map_or("until turned off".to_owned(), |t| {
                format!("for {} more", crate::control::diagnose::remaining(std::time::UNIX_EPOCH + t))
            });
        actions.push(format!("maintenance {until}"));
    }
    actions
}

fn device_text(d: &Value, style: Style) -> String {
    let text = |k: &str| d[k].as_str().filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let mut out = format!(
        "{} ({}) — {}\nmodel {} · driver {} · pci {} · sources {}\n",
        style.bold(&text("id")),
        text("kind"),
        style.state(d["state"].as_str().unwrap_or("unknown")),
        text("model"),
        text("driver"),
        text("pci_address"),
        d["sources"].as_array().map_or("-".into(), |s| {
            let s: Vec<&str> = s.iter().filter_map(Value::as_str).collect();
            if s.is_empty() { "-".to_owned() } else { s.join(", ") }
        }),
    );
    let r = &d["readings"];
    let mut readings = Table::new(&["READING", "SENSOR", "VALUE", "THRESHOLDS"]);
    let thresholds = |sensor: &str| -> String {
        let t: Vec<String> = r["temperature_threshold_celsius"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["sensor"].as_str() == Some(sensor))
            .map(|t| format!("{} {}", t["level"].as_str().unwrap_or("?"), value(t["value"].as_f64(), "°C", 1)))
            .collect();
        t.join(", ")
    };
    let warn = d["temperature_warn_celsius"].as_f64();
    let crit = d["temperature_crit_celsius"].as_f64();
    for (key, label, unit, decimals) in [
        ("temperature_celsius", "temperature", "°C", 1),
        ("power_watts", "power", "W", 2),
        ("energy_joules", "energy", "J", 1),
        ("voltage_volts", "voltage", "V", 3),
        ("current_amperes", "current", "A", 3),
        ("fan_rpm", "fan", "RPM", 0),
    ] {
        for reading in r[key].as_array().into_iter().flatten() {
            let sensor = reading["sensor"].as_str().unwrap_or("?");
            let limits = if key == "temperature_celsius" {
                let mut l = format!("warn {} · crit {}", value(warn, "°C", 1), value(crit, "°C", 1));
                let hw = thresholds(sensor);
                if !hw.is_empty() {
                    let _ = write!(l, " · hardware {hw}");
                }
                l
            } else {
                String::new()
            };
            readings.row(vec![
                label.to_owned(),
                sensor.to_owned(),
                value(reading["value"].as_f64(), unit, decimals),
                limits,
            ]);
        }
    }
    if let Some(w) = r["power_limit_watts"].as_f64() {
        readings.row(vec!["power limit".into(), "driver".into(), value(Some(w), "W", 1), String::new()]);
    }
    for (key, label, unit, scale, decimals) in [
        ("utilization_ratio", "utilization", "%", 100.0, 1),
        ("energy_per_inference_joules", "energy/inference", "mJ", 1e3, 3),
        ("inferences_total", "inferences", "", 1.0, 0),
    ] {
        if let Some(x) = d[key].as_f64() {
            readings.row(vec![label.into(), "-".into(), value(Some(x * scale), unit, decimals), String::new()]);
        }
    }
    out.push('\n');
    out.push_str(&if readings.is_empty() { "no readings\n".to_owned() } else { readings.render(style) });

    let mut conditions = Table::new(&["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"]);
    for c in d["conditions"].as_array().into_iter().flatten() {
        let status = c["status"].as_str().unwrap_or("?");
        let shown = match status {
            "true" if c["impact"].as_str() == Some("unhealthy") => style.state("unhealthy"),
            "true" => style.state("degraded"),
            other => other.to_owned(),
        };
        let latched = if c["latched"].as_bool() == Some(true) { " (latched)" } else { "" };
        conditions.row(vec![
            c["kind"].as_str().unwrap_or("?").to_owned(),
            format!("{shown}{latched}"),
            c["reason"].as_str().unwrap_or("").to_owned(),
            ago(c["since"].as_f64()),
            c["message"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    out.push('\n');
    out.push_str(&conditions.render(style));

    let mut probes = Table::new(&["PROBE", "STATUS", "LAST SUCCESS", "DURATION", "FAILURES", "MESSAGE"]);
    for p in d["probes"].as_array().into_iter().flatten() {
        probes.row(vec![
            p["name"].as_str().unwrap_or("?").to_owned(),
            p["status"].as_str().unwrap_or("?").to_owned(),
            ago(p["last_success"].as_f64()),
            value(p["duration_seconds"].as_f64().map(|s| s * 1e3), "ms", 0),
            p["consecutive_failures"].as_u64().unwrap_or(0).to_string(),
            p["message"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    if !probes.is_empty() {
        out.push('\n');
        out.push_str(&probes.render(style));
    }

    let diagnostics = diagnostics::table(d, style);
    if !diagnostics.is_empty() {
        out.push('\n');
        out.push_str(&diagnostics);
    }

    let mut actions = Vec::new();
    actions.extend(maintenance_lines(d));
    if let Some(m) = d["manual_throttle"].as_object() {
        actions.push(format!("manual throttle at level {}", m.get("level").and_then(Value::as_u64).unwrap_or(0)));
    }
    if let Some(c) = d["circuit"].as_str() {
        actions.push(format!("reconnect circuit {c}"));
    }
    if d["needs_hardware_inspection"].as_bool() == Some(true) {
        actions.push(style.state("critical") + ": needs hardware inspection (reconnects gave up)");
    }
    for a in d["reconnect_attempts"].as_array().into_iter().flatten() {
        actions.push(format!(
            "reconnect step {}: {} x{}",
            a[0].as_str().unwrap_or("?"),
            a[1].as_str().unwrap_or("?"),
            a[2].as_u64().unwrap_or(0)
        ));
    }
    if !actions.is_empty() {
        out.push_str("\nactions: ");
        out.push_str(&actions.join("; "));
        out.push('\n');
    }
    if let Some(k) = d["kubernetes"].as_object() {
        out.push_str(&kubernetes_text(k));
    }
    let events = &d["events"];
    if events.as_array().is_some_and(|e| !e.is_empty()) {
        out.push('\n');
        out.push_str(&events_text(events, style));
    }
    out
}

/// The device's `kubernetes` part: what kubelet was told and who holds the device.
fn kubernetes_text(k: &serde_json::Map<String, Value>) -> String {
    let mut out = String::from("\nkubernetes: ");
    match (k.get("resource").and_then(Value::as_str), k.get("advertised").and_then(Value::as_str)) {
        (Some(r), Some(a)) => {
            out.push_str(&format!("{r}, advertised {a}"));
            if let Some(why) = k.get("advertised_reason").and_then(Value::as_str) {
                out.push_str(&format!(" ({why})"));
            }
        }
        (Some(r), None) => out.push_str(&format!("{r}, not listed yet")),
        (None, _) => out.push_str("not advertised by the agent"),
    }
    if k.get("resource").is_some_and(|r| !r.is_null()) && k.get("registered").and_then(Value::as_bool) == Some(false) {
        out.push_str("; NOT registered with kubelet");
        if let Some(e) = k.get("registration_error").and_then(Value::as_str) {
            out.push_str(&format!(": {e}"));
        }
    }
    let pods: Vec<String> = k
        .get("pods")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{} (container {})",
                p["namespace"].as_str().unwrap_or("?"),
                p["pod"].as_str().unwrap_or("?"),
                p["container"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.push_str(&format!("\npods: {}\n", if pods.is_empty() { "none".to_owned() } else { pods.join(", ") }));
    if let Some(e) = k.get("pods_error").and_then(Value::as_str) {
        out.push_str(&format!("pod-resources failing: {e}\n"));
    }
    out
}

fn events_text(v: &Value, style: Style) -> String {
    let mut t = Table::new(&["TIME", "SEVERITY", "DEVICE", "KIND", "MESSAGE"]);
    for e in v.as_array().into_iter().flatten() {
        t.row(vec![
            e["time"].as_str().unwrap_or("?").to_owned(),
            style.state(e["severity"].as_str().unwrap_or("?")),
            e["device"].as_str().unwrap_or("-").to_owned(),
            e["kind"].as_str().unwrap_or("?").to_owned(),
            e["message"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    if t.is_empty() { "no events\n".to_owned() } else { t.render(style) }
}

fn diagnose_text(v: &Value, style: Style) -> String {
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "{} device(s), {} probe(s) run now; overall {}\n",
        v["devices"].as_u64().unwrap_or(0),
        v["probes_run"].as_u64().unwrap_or(0),
        style.state(v["status"].as_str().unwrap_or("unknown"))
    );
    if findings.is_empty() {
        out.push_str("no findings: every check passed\n");
    }
    for f in &findings {
        let level = f["level"].as_str().unwrap_or("info");
        let _ = writeln!(
            out,
            "\n[{}] {}{}: {}",
            style.state(level),
            f["device"].as_str().map(|d| format!("{d} ")).unwrap_or_default(),
            f["check"].as_str().unwrap_or("?"),
            f["finding"].as_str().unwrap_or("")
        );
        let _ = writeln!(out, "  replaces: {}", f["replaces"].as_str().unwrap_or(""));
        let _ = writeln!(out, "  do:       {}", f["action"].as_str().unwrap_or(""));
    }
    out
}
