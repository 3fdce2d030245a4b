//! Runs each device's probes on their own interval and feeds the results to the device engine.
//!
//! A probe never blocks anything but its own loop: commands and network checks carry their own deadline,
//! and the engine is updated with the result in a short critical section.

use std::time::{Duration, Instant, SystemTime};

use collectors::probes::{
    CommandProbe, FieldMap, OutputFormat, ProbeStatus, ReadingKind, RegexField, TcpProbe, UdpProbe,
};
use config::device::{ProbeConfig, ProbeFormat};
use config::{Config, DeviceConfig};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::model::DeviceEngine;
use crate::model::engine::{ProbeResult, ProbeState};
use crate::model::evidence::{Evidence, EvidenceTx};

/// A probe's default timeout when the config sets none (never longer than its interval).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

enum Runner {
    Command(CommandProbe),
    Tcp(TcpProbe),
    Udp(UdpProbe),
}

fn reading_kind(name: &str) -> Option<ReadingKind> {
    Some(match name {
        "temperature" => ReadingKind::Temperature,
        "power" => ReadingKind::Power,
        "energy" => ReadingKind::Energy,
        "inferences" => ReadingKind::Inferences,
        "utilization" => ReadingKind::Utilization,
        "online" => ReadingKind::Online,
        _ => return None,
    })
}

/// What is wrong with a configured probe (the caller names the device and the probe).
#[derive(Debug, thiserror::Error)]
enum RunnerError {
    #[error(transparent)]
    Pattern(#[from] collectors::probes::PatternError),
    #[error("udp_payload_hex: {0}")]
    Payload(#[from] config::device::HexError),
    #[error("needs one of command, tcp or udp")]
    NoKind,
}

/// Builds the runner for a configured probe; an error says what is wrong with it.
fn runner(device: &DeviceConfig, p: &ProbeConfig, timeout: Duration) -> Result<Runner, RunnerError> {
    if let Some(argv) = &p.command {
        let argv: Vec<String> = argv.iter().map(|a| a.replace("{id}", &device.id)).collect();
        let scale = |r: &str| p.scale.get(r).copied().unwrap_or(1.0);
        let format = match p.format() {
            ProbeFormat::Json => OutputFormat::Json {
                fields: p
                    .fields
                    .iter()
                    .filter_map(|(r, ptr)| {
                        Some(FieldMap { reading: reading_kind(r)?, pointer: ptr.clone(), scale: scale(r) })
                    })
                    .collect(),
            },
            ProbeFormat::Regex => OutputFormat::Regex {
                fields: p
                    .fields
                    .iter()
                    .filter_map(|(r, pat)| Some((reading_kind(r)?, pat, scale(r))))
                    .map(|(k, pat, s)| RegexField::new(k, pat, s))
                    .collect::<Result<_, _>>()?,
            },
            ProbeFormat::None => OutputFormat::None,
        };
        return Ok(Runner::Command(CommandProbe::new(argv, timeout).with_output(format)));
    }
    if let Some(addr) = &p.tcp {
        return Ok(Runner::Tcp(TcpProbe::new(addr.as_str(), timeout)));
    }
    if let Some(addr) = &p.udp {
        let payload = config::device::decode_hex(p.udp_payload_hex.as_deref().unwrap_or(""))?;
        return Ok(Runner::Udp(UdpProbe::new(addr.as_str(), payload, p.expect_reply, timeout)));
    }
    Err(RunnerError::NoKind)
}

impl Runner {
    async fn run(&self, name: &str) -> ProbeResult {
        match self {
            Runner::Command(c) => {
                let o = c.run().await;
                let mut message = o.stderr_excerpt.trim().to_owned();
                match &o.status {
                    ProbeStatus::Failed(reason) => {
                        message = if message.is_empty() { reason.to_string() } else { format!("{reason}: {message}") };
                    }
                    ProbeStatus::NotRun(fault) => message = format!("not run: the agent is {fault}"),
                    _ => {}
                }
                ProbeResult {
                    probe: name.to_owned(),
                    status: match o.status {
                        ProbeStatus::Ok => ProbeState::Ok,
                        ProbeStatus::Problem => ProbeState::Problem,
                        ProbeStatus::Unknown => ProbeState::Unknown,
                        ProbeStatus::Failed(_) | ProbeStatus::NotRun(_) => ProbeState::Failed,
                    },
                    // The tool answered, even if the answer is "problem": the device is reachable.
                    success: matches!(o.status, ProbeStatus::Ok | ProbeStatus::Problem),
                    sdk_problem: matches!(o.status, ProbeStatus::Problem),
                    duration: o.duration,
                    message,
                    readings: o.readings.into_iter().filter(|(k, _)| !matches!(k, ReadingKind::Custom(_))).collect(),
                    not_run: match o.status {
                        ProbeStatus::NotRun(fault) => Some(fault),
                        _ => None,
                    },
                }
            }
            Runner::Tcp(t) => net_result(name, t.run().await),
            Runner::Udp(u) => net_result(name, u.run().await),
        }
    }
}

fn net_result(name: &str, o: collectors::probes::NetOutcome) -> ProbeResult {
    ProbeResult {
        probe: name.to_owned(),
        status: if o.ok { ProbeState::Ok } else { ProbeState::Unreachable },
        success: o.ok,
        sdk_problem: false,
        duration: o.duration,
        message: o.error.unwrap_or_default(),
        readings: Vec::new(),
        not_run: o.fault,
    }
}

/// Runs every configured probe once, concurrently, and applies the results (for `scan`).
pub async fn run_all_once(config: &Config, engine: &mut DeviceEngine) {
    for (id, result) in run_all(config).await {
        engine.apply_probe(&id, result, Instant::now(), SystemTime::now());
    }
}

/// Runs every configured probe once, concurrently, each with its own deadline; returns (device, result).
pub async fn run_all(config: &Config) -> Vec<(String, ProbeResult)> {
    let mut runs = JoinSet::new();
    for device in &config.devices {
        for p in &device.probes {
            let interval = p.interval.map_or(config.poll_interval.get(), |i| i.get());
            let timeout = p.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()).min(interval);
            match runner(device, p, timeout) {
                Ok(r) => {
                    let (id, name) = (device.id.clone(), p.name.clone());
                    runs.spawn(async move { (id, r.run(&name).await) });
                }
                Err(e) => tracing::error!(device = %device.id, probe = %p.name, "probe not run: {e}"),
            }
        }
    }
    let mut out = Vec::new();
    while let Some(done) = runs.join_next().await {
        if let Ok(r) = done {
            out.push(r);
        }
    }
    out
}

/// Starts one loop per configured probe of every declared device.
pub fn spawn(config: &Config, evidence: &EvidenceTx, shutdown: &CancellationToken, tasks: &mut JoinSet<()>) {
    for device in &config.devices {
        for p in &device.probes {
            let interval = p.interval.map_or(config.poll_interval.get(), |i| i.get());
            let timeout = p.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()).min(interval);
            let runner = match runner(device, p, timeout) {
                Ok(r) => r,
                Err(e) => {
                    // check-config catches these; a probe that still cannot be built is skipped loudly.
                    tracing::error!(device = %device.id, probe = %p.name, "probe not started: {e}");
                    continue;
                }
            };
            let (device_id, name) = (device.id.clone(), p.name.clone());
            let (evidence, shutdown) = (evidence.clone(), shutdown.clone());
            tasks.spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = shutdown.cancelled() => break,
                    }
                    let result = tokio::select! {
                        r = runner.run(&name) => r,
                        _ = shutdown.cancelled() => break,
                    };
                    evidence.send(Evidence::Probe { device: device_id.clone(), result });
                }
            });
        }
    }
}
