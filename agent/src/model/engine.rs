//! Devices: what each is bound to, what its readings are, and how healthy it is.
//!
//! The engine runs after each host collection. It reads the latest snapshot (never the hardware), binds
//! each device's sources, feeds the values through the threshold trackers, and judges each condition on
//! its evidence (one function each, in `conditions`). Condition changes come back as events for the
//! journal.

use std::time::{Instant, SystemTime};

use collectors::HostReadings;
use collectors::probes::ReadingKind;
use config::device::{ReconnectStep, ThrottleMetric};
use config::{CollectorKind, Config, DeviceConfig, Thresholds};

use super::binding;
use super::conditions::{
    self, BmpFlags, BoardManagement, DataStaleEvidence, DriverStatus, Hottest, LivenessProbe, LogCondition,
    LogErrorsEvidence, LogErrorsVerdict, OfflineEvidence, OverheatingEvidence, SdkErrorEvidence, SdkReport, Verdict,
};
use super::diagnostics::{Decision, DeviceDiagnostics, Diagnostics, Report, RequestError, RunView};
use super::health::{Condition, ConditionKind, Impact, Status, ThresholdTracker, derive_state, with_circuit};
use super::host::HostEvidence;
use super::operator::{Expired, ManualThrottle, OperatorError, Overrides, ThrottleOverride};
use super::power::{Judged, PowerEvidence, WorkCounters, energy_per_inference, power_anomaly};
pub use super::view::{ConditionChange, DeviceView, LogUpdate, ProbeResult, ProbeState, ProbeView, Reading, Readings};
use super::window_set::{OpenWindow, WindowChange, WindowHold, WindowSet, WindowView};
use crate::policy::reconnect::Circuit;

struct Device {
    config: DeviceConfig,
    /// Found by discovery rather than declared.
    discovered: bool,
    /// The driver or chip name discovery found the device by, as the kernel wrote it; the id holds it made
    /// addressable ([`config::device::addressable_id`]).
    discovered_name: Option<String>,
    /// "log:PATH" of every log the device is read from (its configured or profile logs).
    log_paths: Vec<String>,
    /// Per log rule: whether it latches and the impact of its condition. Fixed by the config, so worked
    /// out once instead of re-reading (and re-compiling) the rules on every signal.
    log_rules: std::collections::BTreeMap<String, LogRule>,
    thresholds: Thresholds,
    /// Everything learnt about the device since the agent started. A reload carries it across whole.
    learnt: Learnt,
    /// The host evidence the device binds, worked out once from its config.
    inputs: HostInputs,
    /// Whether `learnt.readings` and `learnt.sources` come from the engine's last host evidence. False for
    /// a device just created or reconfigured, which must bind even when nothing new was published.
    bound: bool,
}

/// Which host evidence a device binds: the collectors whose readings it takes, and whether it takes a
/// SpiNNaker board. A publication of anything else cannot change the device.
#[derive(Debug, Clone, PartialEq)]
struct HostInputs {
    hwmon_name: Option<String>,
    power_supply: Option<String>,
    collectors: Vec<CollectorKind>,
    board: bool,
}

impl HostInputs {
    fn of(config: &DeviceConfig) -> HostInputs {
        let hwmon_name = config.hwmon_name();
        let power_supply = config.power_supply_name();
        let by_pci = config.pci_address.is_some();
        let collectors = [
            (CollectorKind::Hwmon, hwmon_name.is_some() || by_pci),
            (CollectorKind::ThermalZone, config.thermal_zone.is_some()),
            (CollectorKind::PowerSupply, power_supply.is_some()),
            (CollectorKind::Accel, by_pci),
        ];
        let collectors = collectors.into_iter().filter(|(_, binds)| *binds).map(|(kind, _)| kind).collect();
        HostInputs { hwmon_name, power_supply, collectors, board: config.bmp.is_some() }
    }

    /// Whether the device has any host source (else DataStale does not apply).
    fn any(&self) -> bool {
        !self.collectors.is_empty() || self.board
    }

    /// Whether anything the device binds was published between `before` and `now`.
    fn changed(&self, before: &HostEvidence, now: &HostEvidence) -> bool {
        self.collectors.iter().any(|kind| !now.same_readings(before, *kind)) || (self.board && !now.same_boards(before))
    }
}

/// What one evaluation round found.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Conditions whose status changed, in the order judged.
    pub changes: Vec<ConditionChange>,
    /// Devices bound to newly published readings: their views changed even when no condition did.
    pub rebound: usize,
}

/// What the agent has learnt about one device from its evidence and its operator: kept in one place so
/// that a reload carries all of it across (`Learnt::carried_to`) and a new field cannot be forgotten.
#[derive(Debug, Clone)]
struct Learnt {
    /// The agent's own reads of the host's files are failing (out of descriptors): the device's silence
    /// is then not evidence (DataStale stays as it was).
    agent_cannot_read: bool,
    /// The driver's status of the accel class device bound by PCI address, if any.
    driver_status: Option<DriverStatus>,
    /// A SpiNNaker board's last poll of its BMP (and SC&MP, and spalloc).
    board: Option<crate::model::spinnaker::BoardReading>,
    probes: Vec<ProbeView>,
    /// Readings from probes, by probe name; merged into `readings` at each evaluation.
    probe_readings: std::collections::BTreeMap<String, Vec<(ReadingKind, f64)>>,
    /// The status tool's last verdict (a probe that ran and said fine or problem), for SdkError.
    sdk_report: Option<SdkReport>,
    /// The counters of the last probe result that advanced the inference count, for energy per inference.
    epi_last: Option<WorkCounters>,
    energy_per_inference: Option<f64>,
    /// The threshold trackers of the conditions judged on values (their pending transitions).
    trackers: Trackers,
    log_lines: std::collections::BTreeMap<String, u64>,
    log_matches: std::collections::BTreeMap<String, u64>,
    /// Conditions set by log rules.
    log_conditions: std::collections::BTreeMap<ConditionKind, LogCondition>,
    has_logs: bool,
    /// The throttle ladder and the judgement it steps on, for a device with a throttle config.
    throttle: Option<Throttle>,
    reconnect: Option<crate::policy::reconnect::ReconnectController>,
    /// (step, result) -> attempts, for accel_reconnect_attempts_total.
    reconnect_attempts: std::collections::BTreeMap<(ReconnectStep, &'static str), u64>,
    /// Maintenance (no automatic actions, state "maintenance") and a manual throttle level.
    overrides: Overrides,
    /// The device's diagnostics: queued, running, last results.
    diagnostics: DeviceDiagnostics,
    conditions: Vec<Condition>,
    readings: Readings,
    sources: Vec<String>,
    driver: Option<String>,
    last_reading: Option<Instant>,
    created: Instant,
}

/// The trackers that turn a noisy value into a level, built from the device's thresholds.
#[derive(Debug, Clone)]
struct Trackers {
    warn: ThresholdTracker,
    crit: ThresholdTracker,
    power: Option<ThresholdTracker>,
    epi: Option<ThresholdTracker>,
}

impl Trackers {
    fn new(t: &Thresholds) -> Trackers {
        Trackers {
            warn: ThresholdTracker::new(t.temperature_warn, t.hysteresis, t.min_duration),
            crit: ThresholdTracker::new(t.temperature_crit, t.hysteresis, t.min_duration),
            power: t.power_max.map(|p| ThresholdTracker::new(p, t.hysteresis, t.min_duration)),
            epi: t.energy_per_inference_max.map(|m| ThresholdTracker::new(m, 0.0, t.min_duration)),
        }
    }

    fn all(&self) -> impl Iterator<Item = &ThresholdTracker> {
        [Some(&self.warn), Some(&self.crit), self.power.as_ref(), self.epi.as_ref()].into_iter().flatten()
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut ThresholdTracker> {
        [Some(&mut self.warn), Some(&mut self.crit), self.power.as_mut(), self.epi.as_mut()].into_iter().flatten()
    }
}

/// A device's throttle ladder and the tracker whose zone it steps on: the condition's own tracker when the
/// throttle watches the same value with the same threshold, hysteresis and hold (one judgement of one
/// quantity), else a tracker of its own fed the same value.
#[derive(Debug, Clone)]
struct Throttle {
    metric: ThrottleMetric,
    judge: ThrottleJudge,
    ladder: crate::policy::throttle::ThrottleLadder,
}

#[derive(Debug, Clone)]
enum ThrottleJudge {
    /// The Overheating warning tracker.
    Warn,
    /// The PowerAnomaly tracker.
    Power,
    Own(ThresholdTracker),
}

impl Throttle {
    fn new(cfg: &config::device::ThrottleConfig, t: &Thresholds) -> Throttle {
        let (default, shared_with, shared) = match cfg.metric {
            ThrottleMetric::Power => (t.power_max.unwrap_or(f64::INFINITY), t.power_max, ThrottleJudge::Power),
            ThrottleMetric::Temperature => (t.temperature_warn, Some(t.temperature_warn), ThrottleJudge::Warn),
        };
        let threshold = cfg.threshold.unwrap_or(default);
        let hysteresis = cfg.hysteresis.unwrap_or(t.hysteresis);
        let hold = cfg.hold.map_or(t.min_duration, |h| h.get());
        let same = shared_with == Some(threshold) && hysteresis == t.hysteresis && hold == t.min_duration;
        let judge = if same { shared } else { ThrottleJudge::Own(ThresholdTracker::new(threshold, hysteresis, hold)) };
        let ladder = crate::policy::throttle::ThrottleLadder::new(hold, cfg.levels.len());
        Throttle { metric: cfg.metric, judge, ladder }
    }

    /// Feeds the throttle's own tracker, if it has one and watches `metric`.
    fn observe(throttle: &mut Option<Throttle>, metric: ThrottleMetric, value: f64, now: Instant) {
        if let Some(Throttle { metric: m, judge: ThrottleJudge::Own(tracker), .. }) = throttle
            && *m == metric
        {
            tracker.observe(value, now);
        }
    }
}

impl Learnt {
    /// Nothing learnt yet about a device under `config`.
    fn new(config: &DeviceConfig, thresholds: &Thresholds, now: Instant, wall: SystemTime) -> Learnt {
        let probes = config
            .probes
            .iter()
            .map(|p| ProbeView {
                name: p.name.clone(),
                liveness: p.liveness,
                status: ProbeState::Pending,
                success: false,
                duration_seconds: 0.0,
                last_success: None,
                consecutive_failures: 0,
                message: String::new(),
                not_run: None,
            })
            .collect();
        Learnt {
            agent_cannot_read: false,
            driver_status: None,
            board: None,
            probes,
            probe_readings: Default::default(),
            sdk_report: None,
            epi_last: None,
            energy_per_inference: None,
            trackers: Trackers::new(thresholds),
            throttle: config.throttle.as_ref().map(|c| Throttle::new(c, thresholds)),
            log_lines: Default::default(),
            log_matches: Default::default(),
            log_conditions: Default::default(),
            has_logs: false,
            reconnect: None,
            reconnect_attempts: Default::default(),
            overrides: Overrides::default(),
            diagnostics: DeviceDiagnostics::new(config),
            conditions: declared_conditions(config).map(|k| Condition::unknown(k, wall)).collect(),
            readings: Readings::default(),
            sources: Vec::new(),
            driver: None,
            last_reading: None,
            created: now,
        }
    }

    /// What was learnt under the device's old config, carried to its new one (`fresh`: the same device
    /// under the new config, knowing nothing). Everything is kept except what the new config makes
    /// meaningless, which takes the fresh value: results of probes no longer configured, conditions of
    /// log rules that are gone, trackers and controllers whose settings changed, a manual throttle on a
    /// device that has no throttle ladder any more.
    fn carried_to(mut self, old_config: &DeviceConfig, old_thresholds: &Thresholds, fresh: &Device) -> Learnt {
        let probes = fresh.learnt.probes.iter().map(|p| match self.probes.iter().find(|o| o.name == p.name) {
            Some(o) => ProbeView { liveness: p.liveness, ..o.clone() },
            None => p.clone(),
        });
        self.probes = probes.collect();
        let probes = &self.probes;
        self.probe_readings.retain(|name, _| probes.iter().any(|p| &p.name == name));
        self.log_conditions.retain(|_, c| fresh.log_rules.contains_key(&c.rule));
        if fresh.thresholds != *old_thresholds {
            self.trackers = fresh.learnt.trackers.clone();
        }
        if fresh.config.throttle != old_config.throttle || fresh.thresholds != *old_thresholds {
            self.throttle = fresh.learnt.throttle.clone();
        }
        if fresh.config.reconnect != old_config.reconnect {
            self.reconnect = fresh.learnt.reconnect.clone();
        }
        if fresh.config.throttle.is_none() {
            self.overrides.throttle = None;
        }
        self.diagnostics = self.diagnostics.carried_to(&fresh.learnt.diagnostics);
        // A condition the new config declares starts unknown; one it no longer declares goes.
        let mut conditions = std::mem::take(&mut self.conditions);
        self.conditions = fresh
            .learnt
            .conditions
            .iter()
            .map(|f| match conditions.iter().position(|c| c.kind == f.kind) {
                Some(i) => conditions.swap_remove(i),
                None => f.clone(),
            })
            .collect();
        self
    }
}

/// The conditions a device under `config` declares (exported from the first scrape): every one of
/// [`ConditionKind::ALL`], and DiagnosticFailed where a level 2 or 3 diagnostic could set it.
fn declared_conditions(config: &DeviceConfig) -> impl Iterator<Item = ConditionKind> {
    let diagnostic = DeviceDiagnostics::declares_condition(config).then_some(ConditionKind::DiagnosticFailed);
    ConditionKind::ALL.into_iter().chain(diagnostic)
}

/// What a log rule's condition is like: fixed by the config, so worked out once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct LogRule {
    latched: bool,
    impact: Impact,
}

pub struct DeviceEngine {
    devices: Vec<Device>,
    discovery: bool,
    one_shot: bool,
    /// The host evidence the devices were last bound to. A round that brings the same publications (a
    /// timer round, a probe or a log line of one device) does not re-bind every device: on a SpiNNaker
    /// machine of 1,200 boards re-binding on every round was most of the agent's CPU.
    host: HostEvidence,
    /// What kubelet knows of the devices (the kube module tells it).
    kubelet: super::kubelet::KubeletModel,
    /// The configured maintenance windows: a device inside an open one is in maintenance.
    windows: WindowSet,
    /// Whether diagnostics may run and how many at once, and the operators' runs.
    diagnostics: Diagnostics,
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
    fn discover(&mut self, snap: &HostEvidence, now: Instant, wall: SystemTime) {
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

    fn device_mut(&mut self, id: &str) -> Result<&mut Device, OperatorError> {
        match self.devices.iter().position(|d| d.config.id == id) {
            Some(i) => Ok(&mut self.devices[i]),
            None => Err(OperatorError::UnknownDevice {
                id: id.to_owned(),
                known: self.devices.iter().map(|d| d.config.id.clone()).collect(),
            }),
        }
    }

    /// Puts a device in maintenance (until `until`, or until turned off) or takes it out.
    pub fn set_maintenance(&mut self, device: &str, on: bool, until: Option<SystemTime>) -> Result<(), OperatorError> {
        self.device_mut(device)?.learnt.overrides.maintenance = on.then_some(until);
        Ok(())
    }

    /// Holds a device at a throttle level chosen by an operator (`None` releases it: back to level 0,
    /// then automatic throttling resumes). Returns the device's highest level.
    pub fn set_manual_throttle(
        &mut self,
        device: &str,
        level: Option<usize>,
        until: Option<SystemTime>,
    ) -> Result<usize, OperatorError> {
        let d = self.device_mut(device)?;
        let id = d.config.id.clone();
        let max = d.config.throttle.as_ref().ok_or(OperatorError::NoThrottleLadder { id: id.clone() })?.levels.len();
        match level {
            Some(level) if level > max => return Err(OperatorError::LevelOutOfRange { id, level, max }),
            Some(level) => {
                d.learnt.overrides.throttle = Some(ManualThrottle { level, until });
                d.learnt.overrides.throttle_released = false;
                d.learnt.overrides.throttle_requested = None;
            }
            None => {
                d.learnt.overrides.throttle = None;
                d.learnt.overrides.throttle_released = true;
            }
        }
        Ok(max)
    }

    /// The device's manual-throttle state, to put back with [`DeviceEngine::restore_throttle_override`].
    pub fn throttle_override(&mut self, device: &str) -> Result<ThrottleOverride, OperatorError> {
        Ok(self.device_mut(device)?.learnt.overrides.throttle_override())
    }

    /// Puts back a manual-throttle state after applying an operator's change to it failed.
    pub fn restore_throttle_override(&mut self, device: &str, saved: ThrottleOverride) {
        if let Ok(d) = self.device_mut(device) {
            d.learnt.overrides.restore_throttle(saved);
        }
    }

    /// Starts the device's reconnect ladder now, from its mildest step, whatever its circuit says (an
    /// operator asked). Returns the step to run.
    pub fn manual_reconnect(&mut self, device: &str, now: Instant) -> Result<ReconnectStep, OperatorError> {
        let d = self.device_mut(device)?;
        let id = d.config.id.clone();
        let cfg = d.config.reconnect.clone().filter(|r| !r.steps.is_empty());
        let cfg = cfg.ok_or(OperatorError::NoReconnectLadder { id: id.clone() })?;
        let controller = d.learnt.reconnect.get_or_insert_with(|| reconnect_controller(&cfg, 0));
        controller.start_manual(now).ok_or(OperatorError::NoReconnectLadder { id })
    }

    /// A reconnect step the agent could not start (its own trouble): not an attempt (see
    /// `ReconnectController::not_run`).
    pub fn reconnect_not_run(&mut self, device: &str, step: ReconnectStep, now: Instant) {
        let device = self.devices.iter_mut().find(|d| d.config.id == device);
        if let Some(c) = device.and_then(|d| d.learnt.reconnect.as_mut()) {
            c.not_run(step, now);
        }
    }

    /// The operator's "I have looked at it": clears latched conditions and a reconnect ladder that gave up,
    /// then re-evaluates. Returns what was cleared and the condition changes.
    pub fn set_healthy(
        &mut self,
        device: &str,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(Vec<String>, Vec<ConditionChange>), OperatorError> {
        let d = self.device_mut(device)?;
        let mut cleared = Vec::new();
        d.learnt.log_conditions.retain(|condition, c| {
            if c.latched {
                cleared.push(format!("{} (log rule {})", condition.name(), c.rule));
            }
            !c.latched
        });
        for c in d.learnt.conditions.iter_mut().filter(|c| c.latched) {
            c.latched = false;
        }
        cleared.extend(d.learnt.diagnostics.acknowledge());
        if let Some(r) = &mut d.learnt.reconnect
            && (r.escalated || r.circuit != crate::policy::reconnect::Circuit::Closed)
        {
            r.clear();
            cleared.push("reconnect circuit (closed again)".to_owned());
        }
        Ok((cleared, d.reevaluate(now, wall)))
    }

    /// The maintenance windows open at `wall` that cover `device` (none for a device the engine does not
    /// have): what scheduled work that must run inside a window asks.
    pub fn open_windows(&self, device: &str, wall: SystemTime) -> Vec<OpenWindow> {
        if !self.devices.iter().any(|d| d.config.id == device) {
            return Vec::new();
        }
        self.windows.at(wall).open_for(device)
    }

    /// The same, as the device's view shows them (with their ends in the windows' zones).
    pub fn window_holds(&self, device: &str, wall: SystemTime) -> Vec<WindowHold> {
        self.windows.at(wall).holds(device)
    }

    /// The maintenance windows that opened or closed since the last call.
    pub fn window_changes(&mut self, wall: SystemTime) -> Vec<WindowChange> {
        self.windows.changes(wall)
    }

    /// Every configured maintenance window as of `wall`.
    pub fn window_views(&self, wall: SystemTime) -> Vec<WindowView> {
        self.windows.views(wall)
    }

    /// The ids of the devices a window names that the engine has (every device when it names none).
    pub fn window_devices(&self, named: &[String]) -> Vec<String> {
        self.devices.iter().map(|d| &d.config.id).filter(|id| named.is_empty() || named.contains(id)).cloned().collect()
    }

    /// Ends manual maintenance and manual throttles that have run out.
    pub fn expire_overrides(&mut self, wall: SystemTime) -> Vec<(String, Expired)> {
        let mut out = Vec::new();
        for d in &mut self.devices {
            for e in d.learnt.overrides.expire(wall) {
                out.push((d.config.id.clone(), e));
            }
        }
        out
    }

    /// What the reconnect ladders want done now, for devices not in maintenance.
    pub fn reconnect_decisions(
        &mut self,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(String, crate::policy::reconnect::Decision)> {
        use crate::policy::reconnect::Decision;
        let mut out = Vec::new();
        let windows = self.windows.at(wall);
        for (i, d) in self.devices.iter_mut().enumerate() {
            let Some(cfg) = d.config.reconnect.clone() else { continue };
            if d.in_maintenance(wall) || windows.covers(&d.config.id) {
                continue;
            }
            let offline =
                d.learnt.conditions.iter().any(|c| c.kind == ConditionKind::Offline && c.status == Status::True);
            let controller = d.learnt.reconnect.get_or_insert_with(|| reconnect_controller(&cfg, i));
            if let Some(decision) = controller.tick(offline, now) {
                let (step, result) = match decision {
                    Decision::Failed { step } | Decision::Opened { step } | Decision::Escalate { step } => {
                        (Some(step), "failed")
                    }
                    Decision::Recovered { step } => (Some(step), "recovered"),
                    Decision::Attempt { .. } => (None, ""),
                };
                if let Some(step) = step {
                    *d.learnt.reconnect_attempts.entry((step, result)).or_default() += 1;
                }
                out.push((d.config.id.clone(), decision));
            }
        }
        out
    }

    /// The throttle level each throttled device should have now, where it differs from what is applied.
    /// An operator's level wins; when it is released the device goes back to 0 and the controller
    /// starts afresh.
    pub fn throttle_requests(
        &mut self,
        applied: impl Fn(&str) -> usize,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let windows = self.windows.at(wall);
        for d in &mut self.devices {
            if d.config.throttle.is_none() {
                continue;
            }
            let current = applied(&d.config.id);
            if let Some(manual) = d.learnt.overrides.throttle {
                if current != manual.level && d.learnt.overrides.throttle_requested != Some(manual.level) {
                    d.learnt.overrides.throttle_requested = Some(manual.level);
                    out.push((d.config.id.clone(), manual.level));
                }
                continue;
            }
            d.learnt.overrides.throttle_requested = None;
            let in_maintenance = d.in_maintenance(wall) || windows.covers(&d.config.id);
            let Some(throttle) = d.learnt.throttle.as_mut() else { continue };
            if std::mem::take(&mut d.learnt.overrides.throttle_released) {
                throttle.ladder.restart(now);
                if current != 0 {
                    out.push((d.config.id.clone(), 0));
                }
                continue;
            }
            if in_maintenance {
                continue;
            }
            // Only on a value read now: a metric that is gone asks nothing.
            let readings = &d.learnt.readings;
            let zone = match (&throttle.judge, throttle.metric) {
                (_, ThrottleMetric::Power) if readings.power_watts.is_empty() => None,
                (_, ThrottleMetric::Temperature) if readings.max_temperature().is_none() => None,
                (ThrottleJudge::Warn, _) => d.learnt.trackers.warn.zone(),
                (ThrottleJudge::Power, _) => d.learnt.trackers.power.as_ref().and_then(ThresholdTracker::zone),
                (ThrottleJudge::Own(tracker), _) => tracker.zone(),
            };
            if let Some(level) = zone.and_then(|zone| throttle.ladder.next(zone, current, now)) {
                out.push((d.config.id.clone(), level));
            }
        }
        out
    }

    /// What each device looks like at `wall` (manual maintenance that has ended by then no longer counts,
    /// even before `expire_overrides` has removed it; a maintenance window counts while open at `wall`).
    pub fn views(&self, wall: SystemTime) -> Vec<DeviceView> {
        let windows = self.windows.at(wall);
        self.devices
            .iter()
            .map(|d| DeviceView {
                kubernetes: self.kubelet.view(&d.config),
                ..d.view(wall, windows.holds(&d.config.id))
            })
            .collect()
    }

    /// Queues an operator's diagnostics of level `level` and below, of one device or of every device.
    /// Returns the run's id, to poll with [`DeviceEngine::diagnostic_run`].
    pub fn request_diagnostics(&mut self, level: u8, device: Option<&str>) -> Result<u64, RequestError> {
        if let Some(id) = device {
            self.device_mut(id)?;
        }
        let devices = self.devices.iter_mut().filter(|d| device.is_none_or(|id| d.config.id == id));
        self.diagnostics.request(level, device, devices.map(|d| (d.config.id.as_str(), &mut d.learnt.diagnostics)))
    }

    /// Where an operator's diagnostics run stands.
    pub fn diagnostic_run(&self, id: u64) -> Option<RunView> {
        let devices = &self.devices;
        self.diagnostics.run(id, |dev| devices.iter().find(|d| d.config.id == dev).map(|d| &d.learnt.diagnostics))
    }

    /// Queues the diagnostics that run when a condition of this round set (`on = [...]`), within their
    /// cooldown counted at `now`. Returns (device, diagnostic, condition) for each one queued.
    pub fn diagnostics_on_changes(
        &mut self,
        changes: &[ConditionChange],
        now: Instant,
    ) -> Vec<(String, String, &'static str)> {
        let mut out = Vec::new();
        for change in changes.iter().filter(|c| c.condition.status == Status::True) {
            let Some(d) = self.devices.iter_mut().find(|d| d.config.id == change.device) else { continue };
            let condition = change.condition.kind.name();
            for name in self.diagnostics.on_condition(&mut d.learnt.diagnostics, condition, now) {
                out.push((change.device.clone(), name, condition));
            }
        }
        out
    }

    /// Queues the diagnostics that run in a maintenance window open at `wall` over their device, once per
    /// occurrence of the window. Returns (device, diagnostic, window) for each one queued.
    pub fn diagnostics_in_windows(&mut self, wall: SystemTime) -> Vec<(String, String, std::sync::Arc<str>)> {
        let open = self.windows.at(wall);
        let mut out = Vec::new();
        for d in self.devices.iter_mut().filter(|d| !d.learnt.diagnostics.is_empty()) {
            for window in open.open_for(&d.config.id) {
                for name in self.diagnostics.in_window(&mut d.learnt.diagnostics, &window.name, window.started) {
                    out.push((d.config.id.clone(), name, std::sync::Arc::clone(&window.name)));
                }
            }
        }
        out
    }

    /// The queued diagnostics to start (or refuse) now. `throttled` is the throttle level applied to a
    /// device: a device throttled, reconnecting or held by a pod is busy for a diagnostic that requires
    /// an idle one.
    pub fn diagnostic_decisions(&mut self, throttled: impl Fn(&str) -> usize, wall: SystemTime) -> Vec<Decision> {
        let kubelet = &self.kubelet;
        let devices = self.devices.iter_mut().map(|d| {
            let busy = busy_reason(d, kubelet, throttled(&d.config.id));
            (&d.config, &mut d.learnt.diagnostics, busy)
        });
        self.diagnostics.decide(devices, wall)
    }

    /// The level of a device's diagnostic, while the device declares it.
    pub fn diagnostic_level(&self, device: &str, name: &str) -> Option<u8> {
        let d = self.devices.iter().find(|d| d.config.id == device)?;
        d.config.diagnostics.iter().find(|c| c.name == name).map(|c| c.level)
    }

    /// Records a finished diagnostic and judges its device again (DiagnosticFailed).
    pub fn diagnostic_finished(&mut self, report: &Report, now: Instant, wall: SystemTime) -> Vec<ConditionChange> {
        let Some(d) = self.devices.iter_mut().find(|d| d.config.id == report.device) else { return Vec::new() };
        if !self.diagnostics.finished(&mut d.learnt.diagnostics, report, wall) {
            return Vec::new();
        }
        d.reevaluate(now, wall)
    }

    /// The kubelet side's state, which it updates through evidence commands.
    pub fn kubelet_mut(&mut self) -> &mut super::kubelet::KubeletModel {
        &mut self.kubelet
    }
}

impl Device {
    fn new(config: DeviceConfig, discovered: bool, now: Instant, wall: SystemTime) -> Device {
        let thresholds = config.thresholds();
        let log_sources = config.log_sources();
        // Shown among the device's sources from the start, whether or not the follower has read a line.
        let log_paths = log_sources.iter().map(|l| format!("log:{}", l.path.replace("{id}", &config.id))).collect();
        let log_rules = log_sources
            .iter()
            .flat_map(|s| s.rules.iter())
            .map(|r| {
                let impact =
                    if r.severity >= config::EventSeverity::Critical { Impact::Unhealthy } else { Impact::Degraded };
                (r.name.clone(), LogRule { latched: r.latch, impact })
            })
            .collect();
        let learnt = Learnt::new(&config, &thresholds, now, wall);
        let inputs = HostInputs::of(&config);
        Device {
            config,
            discovered,
            discovered_name: None,
            log_paths,
            log_rules,
            thresholds,
            learnt,
            inputs,
            bound: false,
        }
    }

    /// This device under a changed config, keeping what was learnt about it.
    fn reconfigured(self, config: DeviceConfig, now: Instant, wall: SystemTime) -> Device {
        let fresh = Device::new(config, self.discovered, now, wall);
        let Device { config: old_config, thresholds: old_thresholds, learnt, discovered_name, .. } = self;
        Device { learnt: learnt.carried_to(&old_config, &old_thresholds, &fresh), discovered_name, ..fresh }
    }

    fn in_maintenance(&self, now: SystemTime) -> bool {
        self.learnt.overrides.in_maintenance(now) || self.learnt.diagnostics.exclusive_running().is_some()
    }

    fn make_one_shot(&mut self) {
        for t in self.learnt.trackers.all_mut() {
            t.min_duration = std::time::Duration::ZERO;
        }
        self.thresholds.min_duration = std::time::Duration::ZERO;
        for p in &mut self.config.probes {
            p.offline_after = Some(1);
        }
    }

    /// A condition of [`ConditionKind::ALL`], which every device declares.
    fn condition(&mut self, kind: ConditionKind) -> &mut Condition {
        let i = ConditionKind::ALL.iter().position(|k| *k == kind).expect("every kind has a slot");
        &mut self.learnt.conditions[i]
    }

    /// Collects this device's readings from the host collectors' latest results.
    fn bind(&mut self, snap: &HostEvidence) {
        let inputs = &self.inputs;
        let bound = binding::bind(&self.config, inputs.hwmon_name.as_deref(), inputs.power_supply.as_deref(), snap);
        // The accel driver's name wins; else the first hwmon chip's, kept from the first binding.
        if let Some(driver) = bound.accel_driver {
            self.learnt.driver = Some(driver);
        } else if self.learnt.driver.is_none() {
            self.learnt.driver = bound.hwmon_driver;
        }
        self.learnt.driver_status = bound.driver_status;
        self.learnt.board = bound.board;
        self.learnt.readings = bound.readings;
        self.learnt.sources = bound.sources;
        self.merge_probe_readings();
    }

    /// Adds the probes' temperature, power and energy to the readings (labelled by probe name).
    fn merge_probe_readings(&mut self) {
        for (probe, values) in &self.learnt.probe_readings {
            for (kind, v) in values {
                let target = match kind {
                    ReadingKind::Temperature => &mut self.learnt.readings.temperature_celsius,
                    ReadingKind::Power => &mut self.learnt.readings.power_watts,
                    ReadingKind::Energy => &mut self.learnt.readings.energy_joules,
                    _ => continue,
                };
                target.retain(|r| &r.sensor != probe);
                target.push(Reading { sensor: probe.clone(), value: *v });
            }
        }
    }

    fn probe_value(&self, kind: ReadingKind) -> Option<f64> {
        self.learnt.probe_readings.values().flatten().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    fn offline_after(&self, probe: &str) -> u32 {
        self.config
            .probes
            .iter()
            .find(|p| p.name == probe)
            .and_then(|p| p.offline_after)
            .unwrap_or(self.config.profile().offline_after)
            .max(1)
    }

    /// Whether judging the same inputs again at `now` could come out differently: a threshold tracker is
    /// waiting out its minimum duration, or the host sources have been silent for longer than
    /// `stale_after` (DataStale sets, and its message counts the seconds).
    fn waits_on_time(&self, now: Instant) -> bool {
        let pending = self.learnt.trackers.all().any(ThresholdTracker::is_pending);
        let stale = self.data_stale_evidence(now);
        pending || (stale.has_host_sources && stale.silent_for > stale.stale_after)
    }

    /// Runs the rules; returns the changed conditions as events for the journal.
    fn reevaluate(&mut self, now: Instant, wall: SystemTime) -> Vec<ConditionChange> {
        let changed = self.evaluate(now, wall);
        let id = &self.config.id;
        changed
            .into_iter()
            .filter_map(|kind| self.learnt.conditions.iter().find(|c| c.kind == kind).cloned())
            .map(|condition| ConditionChange { device: id.clone(), condition })
            .collect()
    }

    /// Runs the rules: gathers each condition's evidence (feeding the threshold trackers the values seen
    /// at `now`), judges it and applies the verdict. Returns the conditions whose status changed, in the
    /// order judged.
    fn evaluate(&mut self, now: Instant, wall: SystemTime) -> Vec<ConditionKind> {
        let mut changed = Vec::new();
        let overheating = conditions::overheating(self.overheating_evidence(now));
        self.apply(ConditionKind::Overheating, Some(overheating), wall, &mut changed);
        let (status, reason, message) = power_anomaly(self.power_evidence(now));
        let power = Verdict { status, impact: Impact::Degraded, reason: reason.into(), message };
        self.apply(ConditionKind::PowerAnomaly, Some(power), wall, &mut changed);
        let offline = conditions::offline(self.offline_evidence());
        self.apply(ConditionKind::Offline, offline, wall, &mut changed);
        if let Some(LogErrorsVerdict { verdict, latches }) = conditions::log_errors(self.log_errors_evidence()) {
            let c = self.condition(ConditionKind::LogErrors);
            c.latched = c.latched || latches;
            self.apply(ConditionKind::LogErrors, Some(verdict), wall, &mut changed);
        }
        let sdk_error = conditions::sdk_error(self.sdk_error_evidence());
        self.apply(ConditionKind::SdkError, sdk_error, wall, &mut changed);
        let data_stale = conditions::data_stale(self.data_stale_evidence(now));
        self.apply(ConditionKind::DataStale, data_stale, wall, &mut changed);
        let diagnostic = self.learnt.diagnostics.verdict();
        self.apply(ConditionKind::DiagnosticFailed, diagnostic, wall, &mut changed);
        changed
    }

    /// Applies a verdict (None: no evidence speaks to the condition, which stays as it is) and records the
    /// condition in `changed` when its status changed.
    fn apply(
        &mut self,
        kind: ConditionKind,
        verdict: Option<Verdict>,
        wall: SystemTime,
        changed: &mut Vec<ConditionKind>,
    ) {
        let Some(Verdict { status, impact, reason, message }) = verdict else { return };
        // Only a declared condition is judged (DiagnosticFailed is not declared by every device).
        let Some(condition) = self.learnt.conditions.iter_mut().find(|c| c.kind == kind) else { return };
        if condition.set(status, impact, &reason, message, wall) {
            changed.push(kind);
        }
    }

    /// The hottest sensor, fed to the warning and critical trackers at `now`.
    fn overheating_evidence(&mut self, now: Instant) -> OverheatingEvidence<'_> {
        let learnt = &mut self.learnt;
        if let Some(h) = learnt.readings.max_temperature() {
            Throttle::observe(&mut learnt.throttle, ThrottleMetric::Temperature, h.value, now);
        }
        let hottest = learnt.readings.max_temperature().map(|h| Hottest {
            sensor: &h.sensor,
            celsius: h.value,
            warn: learnt.trackers.warn.observe(h.value, now),
            crit: learnt.trackers.crit.observe(h.value, now),
        });
        let t = &self.thresholds;
        OverheatingEvidence { hottest, warn_celsius: t.temperature_warn, crit_celsius: t.temperature_crit }
    }

    /// The device's total power and its latest energy per inference, each fed to its tracker at `now`
    /// when a maximum is configured.
    fn power_evidence(&mut self, now: Instant) -> PowerEvidence {
        let learnt = &mut self.learnt;
        let watts: Option<f64> = (!learnt.readings.power_watts.is_empty())
            .then(|| learnt.readings.power_watts.iter().map(|r| r.value).sum());
        if let Some(w) = watts {
            Throttle::observe(&mut learnt.throttle, ThrottleMetric::Power, w, now);
        }
        let power = match (&mut learnt.trackers.power, watts) {
            (Some(tracker), Some(w)) => {
                Some(Judged { value: w, max: tracker.threshold, level: tracker.observe(w, now) })
            }
            _ => None,
        };
        let per_inference = match (learnt.energy_per_inference, learnt.trackers.epi.as_mut()) {
            (Some(epi), Some(tracker)) => {
                Some(Judged { value: epi, max: tracker.threshold, level: tracker.observe(epi, now) })
            }
            _ => None,
        };
        PowerEvidence { watts, power, per_inference }
    }

    /// The driver's status, the liveness probes that have run, the board's BMP and the SDK's `online`.
    fn offline_evidence(&self) -> OfflineEvidence<'_> {
        let probes = self.learnt.probes.iter().filter(|p| p.liveness && p.status != ProbeState::Pending);
        let probes = probes.map(|p| LivenessProbe {
            name: &p.name,
            success: p.success,
            consecutive_failures: p.consecutive_failures,
            offline_after: self.offline_after(&p.name),
            message: &p.message,
        });
        OfflineEvidence {
            driver: self.learnt.driver_status.as_ref(),
            probes: probes.collect(),
            board: self.learnt.board.as_ref(),
            sdk_online: self.probe_value(ReadingKind::Online),
        }
    }

    fn log_errors_evidence(&self) -> LogErrorsEvidence<'_> {
        LogErrorsEvidence {
            has_logs: self.learnt.has_logs,
            set_by_rule: self.learnt.log_conditions.get(&ConditionKind::LogErrors),
        }
    }

    /// A log rule's SdkError, the status tool's last verdict, the board's BMP flags and spalloc's word.
    fn sdk_error_evidence(&self) -> SdkErrorEvidence<'_> {
        let board = self.learnt.board.as_ref().map(|b| BoardManagement {
            flags: b.status.as_ref().map(|s| BmpFlags { warning: s.warning, shutdown: s.shutdown }),
            dead_in_spalloc: b.dead_in_spalloc,
        });
        SdkErrorEvidence {
            set_by_rule: self.learnt.log_conditions.get(&ConditionKind::SdkError),
            sdk: self.learnt.sdk_report.as_ref(),
            board,
            is_true: self.status(ConditionKind::SdkError) == Some(Status::True),
        }
    }

    /// How long the device's host sources have been silent at `now`.
    fn data_stale_evidence(&self, now: Instant) -> DataStaleEvidence {
        let has_host_sources = self.inputs.any();
        let since = self.learnt.last_reading.unwrap_or(self.learnt.created);
        DataStaleEvidence {
            has_host_sources,
            ever_read: self.learnt.last_reading.is_some(),
            silent_for: now.duration_since(since),
            stale_after: self.thresholds.stale_after,
            agent_cannot_read: self.learnt.agent_cannot_read,
        }
    }

    fn status(&self, kind: ConditionKind) -> Option<Status> {
        self.learnt.conditions.iter().find(|c| c.kind == kind).map(|c| c.status)
    }

    /// The device at `wall`, held in maintenance by its manual override and by the windows `holds`.
    fn view(&self, wall: SystemTime, holds: Vec<WindowHold>) -> DeviceView {
        let manual = self.learnt.overrides.in_maintenance(wall);
        let exclusive = self.learnt.diagnostics.exclusive_running();
        let maintenance = manual || exclusive.is_some() || !holds.is_empty();
        DeviceView {
            id: self.config.id.clone(),
            kind: self.config.kind.name().into(),
            model: self.config.model.clone().unwrap_or_default(),
            driver: self.learnt.driver.clone().unwrap_or_default(),
            pci_address: self.config.pci_address.clone().unwrap_or_default(),
            firmware: self.learnt.board.as_ref().and_then(|b| b.firmware.clone()).unwrap_or_default(),
            state: with_circuit(
                derive_state(&self.learnt.conditions, maintenance),
                self.learnt.reconnect.as_ref().is_some_and(|r| r.escalated || r.circuit == Circuit::Open),
            ),
            up: match (self.status(ConditionKind::Offline), &self.learnt.driver_status) {
                (Some(Status::True), _) => Some(false),
                (Some(Status::False), _) => Some(true),
                (_, Some(driver)) => Some(driver.operational),
                _ => (!self.learnt.sources.is_empty()).then_some(true),
            },
            discovered: self.discovered,
            discovered_name: self.discovered_name.clone(),
            probes: self.learnt.probes.clone(),
            utilization_ratio: self.probe_value(ReadingKind::Utilization),
            inferences_total: self.probe_value(ReadingKind::Inferences),
            energy_per_inference_joules: self.learnt.energy_per_inference,
            log_lines: self.learnt.log_lines.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            log_matches: self.learnt.log_matches.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            maintenance,
            maintenance_manual: manual,
            maintenance_until: self.learnt.overrides.maintenance_until().filter(|_| manual),
            maintenance_windows: holds,
            maintenance_reason: exclusive.map(|name| format!("diagnostic {name} running")),
            diagnostics: self.learnt.diagnostics.views(),
            manual_throttle: self.learnt.overrides.throttle,
            circuit: self.learnt.reconnect.as_ref().map(|r| r.circuit),
            needs_hardware_inspection: self.learnt.reconnect.as_ref().is_some_and(|r| r.escalated),
            reconnect_attempts: self
                .learnt
                .reconnect_attempts
                .iter()
                .map(|((s, r), n)| (s.name().to_owned(), (*r).to_owned(), *n))
                .collect(),
            temperature_warn_celsius: self.thresholds.temperature_warn,
            temperature_crit_celsius: self.thresholds.temperature_crit,
            kubernetes: None,
            conditions: self.learnt.conditions.clone(),
            readings: self.learnt.readings.clone(),
            // Host sources bound from sysfs and the BMP, then the device's probes and logs: a photonic card
            // read only through its vendor tool still says where its readings come from.
            sources: self
                .learnt
                .sources
                .iter()
                .cloned()
                .chain(self.learnt.probes.iter().map(|p| format!("probe:{}", p.name)))
                .chain(self.log_paths.iter().cloned())
                .collect(),
        }
    }
}

/// Why a device is not idle for a diagnostic that requires it: a pod holds it, a throttle is applied or
/// held, a reconnect step is in progress.
fn busy_reason(d: &Device, kubelet: &super::kubelet::KubeletModel, throttled: usize) -> Option<String> {
    if let Some(p) = kubelet.holders(&d.config.id).first() {
        return Some(format!("pod {}/{} holds the device", p.namespace, p.pod));
    }
    let level = d.learnt.overrides.throttle.map_or(throttled, |m| m.level.max(throttled));
    if level > 0 {
        return Some(format!("the device is throttled at level {level}"));
    }
    let reconnecting = d.learnt.reconnect.as_ref().and_then(|r| r.in_progress());
    reconnecting.map(|step| format!("a reconnect ({step}) is in progress"))
}

/// A device's reconnect controller; seeded per device so two devices do not retry in lockstep.
fn reconnect_controller(
    cfg: &config::device::ReconnectConfig,
    index: usize,
) -> crate::policy::reconnect::ReconnectController {
    let policy = crate::policy::reconnect::Policy {
        steps: cfg.steps.clone(),
        max_failures: cfg.max_failures,
        backoff_initial: cfg.backoff_initial.get(),
        backoff_max: cfg.backoff_max.get(),
        cooldown: cfg.cooldown.get(),
        settle: cfg.settle.get(),
        escalate_after: cfg.escalate_after,
    };
    crate::policy::reconnect::ReconnectController::new(policy, 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;

    /// A status probe that read 95 °C.
    fn hot_probe() -> ProbeResult {
        ProbeResult {
            probe: "status".into(),
            status: ProbeState::Ok,
            success: true,
            sdk_problem: false,
            duration: std::time::Duration::ZERO,
            message: String::new(),
            readings: vec![(ReadingKind::Temperature, 95.0)],
            not_run: None,
        }
    }

    #[test]
    fn maintenance_overrides_the_state_until_it_ends() {
        let cfg = config::parse_str("[[device]]\nid = \"d0\"\nkind = \"generic\"\n", "t.toml").unwrap();
        let wall = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut e = DeviceEngine::new(&cfg, Instant::now(), wall);
        assert_eq!(e.views(wall)[0].state, State::Unknown);
        e.set_maintenance("d0", true, Some(wall + std::time::Duration::from_secs(3600))).unwrap();
        let v = &e.views(wall)[0];
        assert_eq!((v.state, v.maintenance), (State::Maintenance, true));
        e.set_maintenance("d0", true, Some(wall - std::time::Duration::from_secs(1))).unwrap();
        assert_eq!(e.views(wall)[0].state, State::Unknown, "an end in the past");
        e.set_maintenance("d0", true, None).unwrap();
        assert_eq!(e.views(wall)[0].state, State::Maintenance, "no end: until turned off");
        e.set_maintenance("d0", false, None).unwrap();
        assert_eq!(e.views(wall)[0].state, State::Unknown);
        let err = e.set_maintenance("nope", true, None).unwrap_err();
        assert_eq!(err.to_string(), "no device \"nope\"; known devices: d0");
    }

    /// The model reads no clock: what a device looks like, and whether it may be throttled, depend only on
    /// the times its caller passes in. A maintenance window ending at T holds at T-1s and not at T+1s,
    /// however far the real clock is from T.
    #[test]
    fn maintenance_is_judged_at_the_time_passed_in() {
        let cfg = config::parse_str(
            "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
             [device.thresholds]\ntemperature_warn = 100.0\ntemperature_crit = 110.0\n\
             [device.throttle]\nthreshold = 80.0\nhold = \"0s\"\n\
             [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n",
            "t.toml",
        )
        .unwrap();
        // Far from the real clock on purpose: a hidden SystemTime::now() would see the window long over.
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let second = std::time::Duration::from_secs(1);
        let t0 = Instant::now();
        let mut e = DeviceEngine::new(&cfg, t0, t - 10 * second);
        e.set_maintenance("d0", true, Some(t)).unwrap();
        e.apply_probe("d0", hot_probe(), t0, t - 2 * second);

        let before = &e.views(t - second)[0];
        assert_eq!((before.state, before.maintenance), (State::Maintenance, true), "at T-1s");
        assert_eq!(e.throttle_requests(|_| 0, t0, t - second), vec![], "no throttling in maintenance");

        let after = &e.views(t + second)[0];
        assert_eq!((after.state, after.maintenance), (State::Healthy, false), "at T+1s");
        assert_eq!(e.throttle_requests(|_| 0, t0 + second, t + second), vec![("d0".to_owned(), 1)]);
    }

    /// A maintenance window holds the devices it names while open, as manual maintenance does (state,
    /// no throttling), says why and until when, and is told apart from manual maintenance: turning that
    /// off leaves the window's hold. All at the times passed in.
    #[test]
    fn a_maintenance_window_holds_its_devices_while_open() {
        let device = |id: &str| {
            format!(
                "[[device]]\nid = \"{id}\"\nkind = \"generic\"\n\
                 [device.thresholds]\ntemperature_warn = 100.0\ntemperature_crit = 110.0\n\
                 [device.throttle]\nthreshold = 80.0\nhold = \"0s\"\n\
                 [[device.throttle.level]]\ncooling_device = {{ device = \"cooling_device0\", state = 1 }}\n"
            )
        };
        let window = "[[maintenance.window]]\nname = \"sunday-night\"\ndays = [\"sun\"]\nstart = \"02:00\"\n\
                      duration = \"2h\"\ntimezone = \"UTC\"\ndevices = [\"d0\"]\n";
        let cfg = config::parse_str(&format!("{}{}{window}", device("d0"), device("d1")), "t.toml").unwrap();
        let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
        let (before, inside, end) =
            (at("2026-12-06T01:59:00Z"), at("2026-12-06T03:00:00Z"), at("2026-12-06T04:00:00Z"));
        let t0 = Instant::now();
        let mut e = DeviceEngine::new(&cfg, t0, before);
        for id in ["d0", "d1"] {
            e.apply_probe(id, hot_probe(), t0, before);
        }
        assert_eq!(e.window_changes(before), vec![]);
        assert_eq!(e.views(before)[0].state, State::Healthy);

        assert_eq!(
            e.window_changes(inside),
            vec![WindowChange::Opened {
                name: "sunday-night".into(),
                devices: vec!["d0".into()],
                until: end,
                until_local: "Sun 04:00 UTC".into()
            }]
        );
        assert_eq!(e.window_changes(inside), vec![], "told once");
        assert_eq!(e.window_devices(&["d0".to_owned()]), vec!["d0".to_owned()]);
        let views = e.views(inside);
        let (d0, d1) = (&views[0], &views[1]);
        assert_eq!((d0.state, d0.maintenance, d0.maintenance_manual), (State::Maintenance, true, false));
        assert_eq!(
            d0.maintenance_windows.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["maintenance window sunday-night until Sun 04:00 UTC"]
        );
        assert_eq!((d1.state, d1.maintenance), (State::Healthy, false), "a device the window does not name");
        assert_eq!(e.throttle_requests(|_| 0, t0, inside), vec![("d1".to_owned(), 1)], "d0 is not throttled");
        let started = at("2026-12-06T02:00:00Z");
        assert_eq!(e.open_windows("d0", inside), vec![OpenWindow { name: "sunday-night".into(), started, ends: end }]);
        assert_eq!(e.open_windows("d1", inside), vec![]);
        assert_eq!(e.open_windows("nope", inside), vec![], "an unknown device");

        // Manual maintenance on and off again: the window still holds.
        e.set_maintenance("d0", true, None).unwrap();
        assert!(e.views(inside)[0].maintenance_manual);
        e.set_maintenance("d0", false, None).unwrap();
        let d0 = &e.views(inside)[0];
        assert_eq!((d0.state, d0.maintenance_manual, d0.maintenance_windows.len()), (State::Maintenance, false, 1));
        assert_eq!(e.window_holds("d0", inside)[0].until, end);

        // The end is not inside: the device is back to what its evidence says, and may be throttled.
        let closed = vec![WindowChange::Closed { name: "sunday-night".into(), devices: vec!["d0".into()] }];
        assert_eq!(e.window_changes(end), closed);
        assert_eq!(e.views(end)[0].state, State::Healthy);
        assert_eq!(e.throttle_requests(|d| usize::from(d == "d1"), t0, end), vec![("d0".to_owned(), 1)]);
        let status = e.window_views(end);
        assert_eq!((status[0].active, status[0].next_start), (false, Some(at("2026-12-13T02:00:00Z"))));
    }

    /// A diagnostic that names a window runs once per occurrence of it, at its local start across a
    /// daylight-saving change, and only on the devices the window covers.
    #[test]
    #[cfg_attr(not(has_tzdata), ignore = "needs the tz database (Debian package tzdata)")]
    fn a_window_runs_its_diagnostics_once_per_occurrence_across_a_dst_change() {
        let cfg = config::parse_str(
            "[diagnostics]\nenabled = true\nconcurrency = 2\n\
             [[maintenance.window]]\nname = \"night\"\ndays = [\"sun\"]\nstart = \"01:30\"\n\
             duration = \"2h\"\ntimezone = \"America/New_York\"\ndevices = [\"p0\"]\n\
             [[device]]\nid = \"p0\"\nkind = \"photonic\"\n\
             [[device.diagnostic]]\nname = \"deep\"\nlevel = 3\nargv = [\"check\", \"{id}\"]\nwindows = [\"night\"]\n\
             [[device]]\nid = \"p1\"\nkind = \"photonic\"\n\
             [[device.diagnostic]]\nname = \"deep\"\nlevel = 3\nargv = [\"check\", \"{id}\"]\n",
            "t.toml",
        )
        .unwrap();
        let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
        let t0 = Instant::now();
        // 25 October 2026 is summer time (EDT, UTC-4); 1 November, the clocks go back at 02:00 EDT, and
        // 01:30 happens twice: the window starts at the first (EDT), 05:30 UTC.
        let (before, summer, autumn) =
            (at("2026-10-25T05:00:00Z"), at("2026-10-25T05:31:00Z"), at("2026-11-01T05:31:00Z"));
        let mut e = DeviceEngine::new(&cfg, t0, before);
        assert_eq!(e.diagnostics_in_windows(before), vec![], "not open yet");
        let queued = |e: &mut DeviceEngine, wall| {
            e.diagnostics_in_windows(wall).into_iter().map(|(d, n, w)| format!("{d} {n} {w}")).collect::<Vec<_>>()
        };
        assert_eq!(queued(&mut e, summer), ["p0 deep night"], "p1's diagnostic names no window over p1");
        let started = |e: &mut DeviceEngine, wall| {
            e.diagnostic_decisions(|_| 0, wall)
                .into_iter()
                .map(|d| match d {
                    Decision::Start(s) => format!("{} {} ({})", s.device, s.argv.join(" "), s.trigger),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(started(&mut e, summer), ["p0 check p0 (in maintenance window night)"]);
        let report = Report {
            device: "p0".into(),
            name: "deep".into(),
            outcome: crate::model::diagnostics::Outcome::Passed,
            duration: std::time::Duration::from_secs(60),
            remedy: None,
            fault: None,
        };
        e.diagnostic_finished(&report, t0, summer + std::time::Duration::from_secs(60));
        assert_eq!(
            queued(&mut e, summer + std::time::Duration::from_secs(120)),
            Vec::<String>::new(),
            "once per occurrence"
        );
        assert_eq!(queued(&mut e, at("2026-11-01T05:29:00Z")), Vec::<String>::new(), "01:29 EDT: not yet");
        assert_eq!(queued(&mut e, autumn), ["p0 deep night"], "the next Sunday's occurrence, at 01:30 EDT");
    }

    /// A reload that removes an open window closes it (once); one that keeps its name does not reopen it.
    #[test]
    fn a_reload_keeps_an_open_window_open_and_closes_a_removed_one() {
        let window = "[[maintenance.window]]\nname = \"w\"\ndays = [\"sun\"]\nstart = \"02:00\"\nduration = \"2h\"\n\
                      timezone = \"UTC\"\n";
        let cfg = config::parse_str(window, "t.toml").unwrap();
        let inside = SystemTime::from("2026-12-06T03:00:00Z".parse::<jiff::Timestamp>().unwrap());
        let mut e = DeviceEngine::new(&cfg, Instant::now(), inside);
        assert_eq!(e.window_changes(inside).len(), 1);
        e.reconfigure(&config::parse_str(&window.replace("2h", "3h"), "t.toml").unwrap(), Instant::now(), inside);
        assert_eq!(e.window_changes(inside), vec![]);
        e.reconfigure(&config::Config::default(), Instant::now(), inside);
        assert_eq!(e.window_changes(inside), vec![WindowChange::Closed { name: "w".into(), devices: vec![] }]);
        assert_eq!(e.window_views(inside), vec![]);
    }

    /// A reload carries everything learnt about a device across, whole: the learnt state is compared as
    /// a whole (Debug of `Learnt`), so a field added to it later is covered without touching this test.
    #[test]
    fn a_reload_keeps_everything_learnt() {
        let toml = "[[device]]\nid = \"d0\"\nkind = \"generic\"\nmodel = \"A\"\n\
             [device.thresholds]\ntemperature_warn = 80.0\ntemperature_crit = 95.0\npower_max = 100.0\n\
             energy_per_inference_max = 0.005\n\
             [[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\noffline_after = 1\n\
             [[device.log]]\npath = \"/var/log/d0.log\"\n\
             [[device.log.rule]]\nname = \"err\"\npattern = \"error\"\naction = \"LogErrors\"\nlatch = true\n\
             [device.throttle]\nthreshold = 80.0\nhold = \"10s\"\n\
             [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n\
             [device.reconnect]\nsteps = [\"vendor\"]\ncommand = [\"vendor-reconnect\"]\nsettle = \"5s\"\n";
        let cfg = config::parse_str(toml, "t.toml").unwrap();
        let s = std::time::Duration::from_secs(1);
        let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH + 1_700_000_000 * s);
        let at = |t: u32| (t0 + t * s, w0 + t * s);
        let mut e = DeviceEngine::new(&cfg, t0, w0);
        let probe = |status: ProbeState, readings: Vec<(ReadingKind, f64)>| ProbeResult {
            probe: "sdk".into(),
            status,
            success: status == ProbeState::Ok,
            sdk_problem: false,
            duration: std::time::Duration::from_millis(30),
            message: String::new(),
            readings,
            not_run: None,
        };
        // Readings, counters and an energy per inference; a burst of log lines; a pending throttle step.
        for (t, joules, inferences) in [(1, 100.0, 1000.0), (2, 106.0, 2000.0)] {
            let readings = vec![
                (ReadingKind::Temperature, 90.0),
                (ReadingKind::Power, 120.0),
                (ReadingKind::Energy, joules),
                (ReadingKind::Inferences, inferences),
            ];
            let (now, wall) = at(t);
            e.apply_probe("d0", probe(ProbeState::Ok, readings), now, wall);
            e.evaluate(&HostEvidence::default(), now, wall);
            e.throttle_requests(|_| 0, now, wall);
        }
        let burst = collectors::logs::Signal::ConditionSet {
            rule: "err".into(),
            condition: "LogErrors".into(),
            count_in_window: 5,
        };
        let update = LogUpdate {
            source: "log:/var/log/d0.log".into(),
            lines: 40,
            matches: vec![("err".into(), 7)],
            signals: vec![burst],
        };
        e.apply_log("d0", update, at(3).0, at(3).1);
        // Offline, one reconnect attempt that failed, a second one in flight.
        for t in [4, 9, 20] {
            let (now, wall) = at(t);
            e.apply_probe("d0", probe(ProbeState::Failed, Vec::new()), now, wall);
            e.reconnect_decisions(now, wall);
        }
        e.set_maintenance("d0", true, Some(at(3600).1)).unwrap();
        e.set_manual_throttle("d0", Some(1), Some(at(7200).1)).unwrap();

        let learnt = |e: &DeviceEngine| format!("{:#?}", e.devices[0].learnt);
        let before = learnt(&e);
        for (what, needle) in [
            ("a log match count", "\"err\": 7"),
            ("a latched log condition", "latched: true"),
            ("a throttle ladder", "ThrottleLadder"),
            ("a pending throttle step (the judgement it waits on: over the threshold)", "Over,"),
            ("a reconnect attempt", "Vendor"),
            ("an energy per inference", "energy_per_inference: Some("),
            ("maintenance", "maintenance: Some("),
        ] {
            assert!(before.contains(needle), "the test must have learnt {what}:\n{before}");
        }
        let views_before = e.views(at(21).1);

        let (now, wall) = at(21);
        e.reconfigure(&cfg, now, wall);
        assert_eq!(learnt(&e), before, "a reload with the same config");

        // A changed config that does not touch what was learnt goes through the rebuild, and still keeps it.
        let renamed = config::parse_str(&toml.replace("model = \"A\"", "model = \"B\""), "t.toml").unwrap();
        e.reconfigure(&renamed, now, wall);
        assert_eq!(learnt(&e), before, "a reload with a changed model");
        let views_after = e.views(at(21).1);
        assert_eq!(views_after[0].model, "B");
        let (b, a) = (&views_before[0], &views_after[0]);
        assert_eq!(
            (&a.conditions, &a.log_matches, &a.probes, &a.reconnect_attempts, a.state, a.circuit),
            (&b.conditions, &b.log_matches, &b.probes, &b.reconnect_attempts, b.state, b.circuit)
        );

        // New thresholds: the trackers start afresh (their pending transitions were against the old
        // numbers), and so does the throttle, whose threshold of 80 is no longer the warning's: it gets a
        // tracker of its own. Everything else is kept.
        let warmer =
            config::parse_str(&toml.replace("temperature_warn = 80.0", "temperature_warn = 85.0"), "t.toml").unwrap();
        let old = e.devices[0].learnt.clone();
        e.reconfigure(&warmer, now, wall);
        let mut kept = e.devices[0].learnt.clone();
        assert_ne!(format!("{:?}", kept.trackers), format!("{:?}", old.trackers), "fresh trackers");
        kept.trackers = old.trackers;
        assert!(matches!(kept.throttle.as_ref().map(|t| &t.judge), Some(ThrottleJudge::Own(_))), "{:?}", kept.throttle);
        kept.throttle = old.throttle;
        assert_eq!(format!("{kept:#?}"), before, "everything but the trackers and the throttle is kept");
    }
}
