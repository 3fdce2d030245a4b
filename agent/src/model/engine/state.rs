//! The engine: every device, the host evidence they were last bound to, and what reaches them (probes, logs, a reload, discovery).

use std::time::{Instant, SystemTime};

use collectors::HostReadings;
use collectors::probes::ReadingKind;
use config::{CollectorKind, Config, DeviceConfig};

use super::device::*;
use crate::model::conditions::{LogCondition, SdkReport};
use crate::model::diagnostics::Diagnostics;
use crate::model::health::ConditionKind;
use crate::model::host::HostEvidence;
use crate::model::operator::OperatorError;
use crate::model::power::{WorkCounters, energy_per_inference};
use crate::model::view::{ConditionChange, LogUpdate, ProbeResult};
use crate::model::window_set::WindowSet;

pub struct DeviceEngine {
    pub(super) devices: Vec<Device>,
    pub(super) discovery: bool,
    pub(super) one_shot: bool,
    /// The host evidence the devices were last bound to. A round that brings the same publications (a
    /// timer round, a probe or a log line of one device) does not re-bind every device: on a SpiNNaker
    /// machine of 1,200 boards re-binding on every round was most of the agent's CPU.
    pub(super) host: HostEvidence,
    /// What kubelet knows of the devices (the kube module tells it).
    pub(super) kubelet: crate::model::kubelet::KubeletModel,
    /// The configured maintenance windows: a device inside an open one is in maintenance.
    pub(super) windows: WindowSet,
    /// Whether diagnostics may run and how many at once, and the operators' runs.
    pub(super) diagnostics: Diagnostics,
}

/// What applying a probe result decided.
#[derive(Debug, Default)]
pub struct ProbeApplied {
    pub changes: Vec<ConditionChange>,
    /// A failure streak started: the journal's `probe_failing` event, once per streak.
    pub failing: Option<String>,
}

/// PCI class codes of devices discovery treats as accelerators: processing accelerators (0x12xxxx) and
/// co-processors (0x0b40xx).
pub fn is_accelerator_class(class: u32) -> bool {
    class >> 16 == 0x12 || class >> 8 == 0x0b40
}

impl DeviceEngine {
    pub fn new(config: &Config, now: Instant, wall: SystemTime) -> Self {
        let devices = config.devices.iter().map(|d| Device::new(d.clone(), false, now, wall)).collect();
        DeviceEngine {
            devices,
            discovery: config.discovery.enabled,
            one_shot: false,
            host: HostEvidence::default(),
            kubelet: Default::default(),
            windows: WindowSet::new(&config.maintenance),
            diagnostics: Diagnostics::new(config),
        }
    }

    /// For `scan`: one look, so a value beyond a threshold counts at once (no minimum duration) and a
    /// single failed liveness probe means offline.
    pub fn one_shot(config: &Config, now: Instant, wall: SystemTime) -> Self {
        let mut e = Self::new(config, now, wall);
        e.one_shot = true;
        for d in &mut e.devices {
            d.make_one_shot();
        }
        e
    }

    /// Adds accelerators nobody declared: accel class devices, and hwmon chips on PCI accelerators. A
    /// device once found stays (if it vanishes, its conditions say so).
    ///
    /// The id is `<name>-<pci address>`, the name made addressable (a chip named `my accel` would otherwise
    /// be listed under an id no URL or `agentctl` argument can name). Two names that become one id (`my
    /// accel`, `my_accel`) cannot collide on different hardware: the id ends with the PCI address, and a
    /// function already known (by address or by that id) is not added twice.
    pub(super) fn discover(&mut self, snap: &HostEvidence, now: Instant, wall: SystemTime) {
        // (name as found, PCI address)
        let mut found: Vec<(String, String)> = Vec::new();
        if let Some(HostReadings::Accel(a)) = snap.readings(CollectorKind::Accel) {
            for d in &a.devices {
                if let Some(pci) = &d.pci_address {
                    let driver = d.driver.as_deref().unwrap_or("accel");
                    found.push((driver.to_owned(), pci.to_string()));
                }
            }
        }
        if let Some(HostReadings::Hwmon(h)) = snap.readings(CollectorKind::Hwmon) {
            for c in &h.layout.chips {
                if let (Some(pci), Some(class)) = (&c.pci_address, c.pci_class)
                    && is_accelerator_class(class)
                {
                    let driver = c.raw_name.as_deref().unwrap_or("hwmon");
                    found.push((driver.to_owned(), pci.to_string()));
                }
            }
        }
        for (name, pci) in found {
            let id = format!("{}-{pci}", config::device::addressable_id(&name));
            let claimed =
                self.devices.iter().any(|d| d.config.pci_address.as_deref() == Some(&pci) || d.config.id == id);
            if claimed {
                continue;
            }
            let config = DeviceConfig {
                id,
                kind: config::DeviceKind::PciAccel,
                model: None,
                pci_address: Some(pci),
                hwmon: None,
                thermal_zone: None,
                power_supply: None,
                bmp: None,
                thresholds: None,
                logs: Vec::new(),
                probes: Vec::new(),
                throttle: None,
                reconnect: None,
                resource: None,
                kubernetes: None,
                diagnostics: Vec::new(),
            };
            tracing::info!(device = %config.id, "discovered a device");
            let mut d = Device::new(config, true, now, wall);
            d.discovered_name = Some(name);
            if self.one_shot {
                d.make_one_shot();
            }
            self.devices.push(d);
        }
    }

    /// Takes a reloaded config: devices that are still declared keep their state (conditions, counters,
    /// probe results, maintenance, and the trackers and controllers whose settings did not change); new ones
    /// start fresh; ones no longer declared go. Discovered devices stay while discovery is on.
    pub fn reconfigure(&mut self, config: &Config, now: Instant, wall: SystemTime) {
        let mut old = std::mem::take(&mut self.devices);
        for cfg in &config.devices {
            let device = match old.iter().position(|d| d.config.id == cfg.id && !d.discovered) {
                Some(i) => {
                    let prev = old.swap_remove(i);
                    if prev.config == *cfg { prev } else { prev.reconfigured(cfg.clone(), now, wall) }
                }
                None => Device::new(cfg.clone(), false, now, wall),
            };
            self.devices.push(device);
        }
        if config.discovery.enabled {
            let declared = |d: &Device| {
                config.devices.iter().any(|c| c.id == d.config.id || c.pci_address == d.config.pci_address)
            };
            self.devices.extend(old.into_iter().filter(|d| d.discovered && !declared(d)));
        }
        self.discovery = config.discovery.enabled;
        self.windows.reconfigure(&config.maintenance);
        self.diagnostics.configure(config);
    }

    /// Actions went off: an operator's throttle hold has nothing left to hold (the actions thread put the
    /// originals back), so it ends, rather than showing a level nothing applies and refusing `unthrottle`;
    /// automatic control starts afresh when actions come back. Returns the devices whose hold ended.
    pub fn end_manual_throttles(&mut self) -> Vec<String> {
        let mut ended = Vec::new();
        for d in &mut self.devices {
            let o = &mut d.learnt.overrides;
            if o.throttle.take().is_some() {
                ended.push(d.config.id.clone());
            }
            (o.throttle_released, o.throttle_requested) = (false, None);
            if let Some(t) = &mut d.learnt.throttle {
                t.ladder.forget();
            }
        }
        ended
    }

    /// Whether the agent's own reads of host files are failing for want of descriptors (the owner sees it
    /// in the collectors' rounds): while they are, no device's silence counts against it.
    pub fn set_agent_cannot_read(&mut self, failing: bool) {
        for d in &mut self.devices {
            d.learnt.agent_cannot_read = failing;
        }
    }

    /// Whether evaluating can find or change anything: there are devices, or discovery may add some.
    pub fn has_work(&self) -> bool {
        !self.devices.is_empty() || self.discovery
    }

    /// Binds every device to the host evidence and judges it again. A device is re-bound when something
    /// it binds was published since the last round, or it is new or reconfigured; it is judged again when
    /// it was re-bound or its verdicts depend on the time (`waits_on_time`): judging the same inputs again
    /// at another moment could not change anything else.
    pub fn evaluate(&mut self, snap: &HostEvidence, now: Instant, wall: SystemTime) -> Evaluation {
        if self.discovery {
            self.discover(snap, now, wall);
        }
        let mut out = Evaluation::default();
        for d in &mut self.devices {
            let rebind = !d.bound || d.inputs.changed(&self.host, snap);
            if rebind {
                d.bind(snap);
                d.bound = true;
                out.rebound += 1;
            }
            // Asked before a reading is counted, so a device that was stale is judged fresh again.
            let waits = d.waits_on_time(now);
            if !d.learnt.readings.is_empty() {
                d.learnt.last_reading = Some(now);
            }
            if rebind || waits {
                out.changes.extend(d.reevaluate(now, wall));
            }
        }
        self.host = snap.clone();
        out
    }

    /// Records a probe result and re-evaluates that device.
    pub fn apply_probe(&mut self, device: &str, result: ProbeResult, now: Instant, wall: SystemTime) -> ProbeApplied {
        let Some(d) = self.devices.iter_mut().find(|d| d.config.id == device) else { return ProbeApplied::default() };
        let probe = d.learnt.probes.iter_mut().find(|p| p.name == result.probe);
        // The agent's own trouble is not evidence: a probe it could not start says nothing about the
        // device. Its last verdict, failure streak, SDK report and readings stay as they were, so no
        // condition sets and no ladder starts on it (a connection flood once reset healthy hardware).
        if let Some(fault) = result.not_run {
            if let Some(p) = probe {
                p.not_run = Some(fault);
            }
            return ProbeApplied::default();
        }
        let mut failing = None;
        let offline_after = d.offline_after(&result.probe);
        if let Some(p) = d.learnt.probes.iter_mut().find(|p| p.name == result.probe) {
            p.not_run = None;
            p.status = result.status;
            p.success = result.success;
            p.duration_seconds = result.duration.as_secs_f64();
            p.message = result.message.clone();
            if result.success {
                p.consecutive_failures = 0;
                p.last_success = Some(wall);
            } else {
                p.consecutive_failures = p.consecutive_failures.saturating_add(1);
                // A failure streak is one journal event when it starts, not one per round.
                if p.consecutive_failures == 1 {
                    failing = Some(format!("probe {} failing: {} {}", p.name, p.status, p.message));
                }
                if p.consecutive_failures == offline_after {
                    tracing::warn!(device, probe = %p.name, "probe failed {offline_after} times in a row: {}", p.message);
                }
            }
        }
        if result.success || result.sdk_problem {
            d.learnt.sdk_report = Some(SdkReport {
                probe: result.probe.clone(),
                problem: result.sdk_problem,
                message: result.message.clone(),
            });
        }
        // Energy per inference only from a result that carries both counters: energy read by a host
        // collector and inferences read by a probe seconds apart would not cover the same work.
        let counter = |kind: ReadingKind| result.readings.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        if let (Some(energy_joules), Some(inferences)) =
            (counter(ReadingKind::Energy), counter(ReadingKind::Inferences))
        {
            let (rate, kept) = energy_per_inference(d.learnt.epi_last, WorkCounters { energy_joules, inferences });
            d.learnt.epi_last = Some(kept);
            if rate.is_some() {
                d.learnt.energy_per_inference = rate;
            }
        }
        d.learnt.probe_readings.insert(result.probe, result.readings);
        d.merge_probe_readings();
        ProbeApplied { changes: d.reevaluate(now, wall), failing }
    }

    /// Records what a device's log source produced and re-evaluates the device.
    pub fn apply_log(
        &mut self,
        device: &str,
        update: LogUpdate,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<ConditionChange> {
        use collectors::logs::Signal;
        let Some(d) = self.devices.iter_mut().find(|d| d.config.id == device) else { return Vec::new() };
        d.learnt.has_logs = true;
        d.learnt.log_lines.insert(update.source.clone(), update.lines);
        for (rule, n) in update.matches {
            d.learnt.log_matches.insert(rule, n);
        }
        for signal in update.signals {
            match signal {
                Signal::ConditionSet { rule, condition, count_in_window } => {
                    // The config admits only the conditions log rules may set; any other name is ignored.
                    let Some(kind) = ConditionKind::parse(&condition) else { continue };
                    let LogRule { latched, impact } = d.log_rules.get(&*rule).copied().unwrap_or_default();
                    d.learnt.log_conditions.insert(
                        kind,
                        LogCondition {
                            rule: rule.to_string(),
                            message: format!(
                                "log rule {rule}: {count_in_window} matching line(s) in {}",
                                update.source
                            ),
                            latched,
                            impact,
                        },
                    );
                }
                Signal::ConditionCleared { condition, .. } => {
                    if let Some(kind) = ConditionKind::parse(&condition) {
                        d.learnt.log_conditions.remove(&kind);
                    }
                }
                Signal::Event { .. } => {}
            }
        }
        d.reevaluate(now, wall)
    }

    pub(super) fn device_mut(&mut self, id: &str) -> Result<&mut Device, OperatorError> {
        match self.devices.iter().position(|d| d.config.id == id) {
            Some(i) => Ok(&mut self.devices[i]),
            None => Err(OperatorError::UnknownDevice {
                id: id.to_owned(),
                known: self.devices.iter().map(|d| d.config.id.clone()).collect(),
            }),
        }
    }

    /// The kubelet side's state, which it updates through evidence commands.
    pub fn kubelet_mut(&mut self) -> &mut crate::model::kubelet::KubeletModel {
        &mut self.kubelet
    }
}
