//! `agentctl bundle`: one tar.gz with what an incident review needs from this host — the config with secrets
//! redacted, the state, recent events, a metrics snapshot, recent matched log lines and versions.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Control;
use crate::effects::journal::{EventFilter, Lane};
use crate::publish::exposition::Format;
use config::redact::{redact_config, redact_table};

/// Events included, newest first.
const EVENTS: usize = 1000;

/// The files of a bundle and what each holds; README.txt lists them.
pub const CONTENTS: [(&str, &str); 10] = [
    ("README.txt", "this list"),
    ("versions.json", "agent version and revision, kernel, OS, hostname"),
    ("config.toml", "the config file as loaded, secrets redacted (absent when running on the embedded default)"),
    ("config-effective.toml", "the config in effect after defaults and command-line overrides, secrets redacted"),
    ("status.json", "agentctl status --json"),
    ("devices.json", "every device with readings, conditions, probes and actions"),
    ("collectors.json", "each host collector's last result and read errors"),
    ("events.json", "the most recent events from the journal, newest first"),
    ("metrics.prom", "a /metrics scrape (Prometheus text format)"),
    ("log-matches.jsonl", "recent log lines that matched a rule, oldest first"),
];

#[derive(Serialize)]
struct Versions {
    agent: &'static str,
    revision: &'static str,
    kernel: Option<String>,
    os: Option<String>,
    hostname: Option<String>,
    generated_unix: u64,
}

#[derive(Serialize)]
struct CollectorReport {
    collector: &'static str,
    success: bool,
    error: Option<String>,
    duration_seconds: Option<f64>,
    collections: u64,
    read_errors: Vec<(&'static str, u64)>,
    stuck_threads: usize,
}

/// Small procfs/etc files; they never block.
fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    let line = text.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line.trim_start_matches("PRETTY_NAME=").trim_matches('"').to_owned())
}

/// Why the bundle could not be built; each names the file or step.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{file}: {source}")]
    Json { file: &'static str, source: serde_json::Error },
    /// The config file's text could not be redacted (the message carries no value of it).
    #[error("{}: {reason}", path.display())]
    Redact { path: PathBuf, reason: config::redact::RedactError },
    #[error("config: {0}")]
    ConfigTable(#[source] toml::ser::Error),
    #[error("config-effective.toml: {0}")]
    ConfigText(#[source] toml::ser::Error),
    #[error("archiving failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("archiving failed: {0}")]
    Archive(#[source] std::io::Error),
}

fn pretty<T: Serialize + ?Sized>(file: &'static str, v: &T) -> Result<(&'static str, Vec<u8>), BundleError> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|source| BundleError::Json { file, source })?;
    Ok((file, bytes))
}

/// Builds the bundle in memory.
pub async fn build(control: &Control) -> Result<Vec<u8>, BundleError> {
    let live = control.live.load_full();
    let snap = control.state.snapshot();
    let events = control
        .events
        .query(Lane::Control, EventFilter { limit: EVENTS, ..Default::default() })
        .await
        .map_err(|e| format!("events: {e}"));
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut readme = String::from("accel-agent incident bundle\n\n");
    for (name, what) in CONTENTS {
        readme.push_str(&format!("{name:<24} {what}\n"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let versions = Versions {
        agent: crate::publish::exposition::VERSION,
        revision: crate::publish::exposition::REVISION,
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        os: os_release(),
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        generated_unix: now,
    };
    files.push(pretty("versions.json", &versions)?);
    let file_text = match &live.config_path {
        Some(path) => match config::file::read_text_bounded(path, config::file::MAX_CONFIG_BYTES) {
            Ok(text) => {
                Some(redact_config(&text).map_err(|reason| BundleError::Redact { path: path.clone(), reason })?)
            }
            Err(e) => {
                readme.push_str(&format!("\nconfig.toml is absent: {e}\n"));
                None
            }
        },
        None => {
            readme.push_str("\nconfig.toml is absent: the agent runs on the embedded default config\n");
            None
        }
    };
    if let Some(text) = file_text {
        files.push(("config.toml", text.into_bytes()));
    }
    let mut effective = toml::Table::try_from(&*live.config).map_err(BundleError::ConfigTable)?;
    redact_table(&mut effective);
    files.push((
        "config-effective.toml",
        toml::to_string_pretty(&effective).map_err(BundleError::ConfigText)?.into_bytes(),
    ));
    files.push(pretty("status.json", &control.status())?);
    files.push(pretty("devices.json", &*snap.devices)?);
    let collectors: Vec<CollectorReport> = snap
        .collectors
        .iter()
        .map(|(k, c)| CollectorReport {
            collector: k.name(),
            success: c.success,
            error: c.error.clone(),
            duration_seconds: c.duration.map(|d| d.as_secs_f64()),
            collections: c.collections,
            read_errors: collectors::sysfs::ReadFailure::ALL
                .iter()
                .map(|f| (f.label(), c.read_errors.get(*f)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            stuck_threads: c.stuck_threads,
        })
        .collect();
    files.push(pretty("collectors.json", &collectors)?);
    match events {
        Ok(events) => files.push(pretty("events.json", &events)?),
        Err(e) => readme.push_str(&format!("\nevents.json is absent: {e}\n")),
    }
    files.push(("metrics.prom", control.http.exposition.render(Format::Text004, false).to_vec()));
    let mut lines = Vec::new();
    for m in live.logs.recent() {
        serde_json::to_writer(&mut lines, &m)
            .map_err(|source| BundleError::Json { file: "log-matches.jsonl", source })?;
        lines.push(b'\n');
    }
    files.push(("log-matches.jsonl", lines));
    files.insert(0, ("README.txt", readme.into_bytes()));
    tokio::task::spawn_blocking(move || archive(&files, now))
        .await
        .map_err(BundleError::Task)?
        .map_err(BundleError::Archive)
}

fn archive(files: &[(&str, Vec<u8>)], mtime: u64) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(&mut header, format!("accel-agent-bundle/{name}"), data.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}
