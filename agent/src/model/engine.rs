//! Devices: what each is bound to, what its readings are, and how healthy it is.
//!
//! The engine runs after each host collection. It reads the latest snapshot (never the hardware), binds
//! each device's sources, and feeds the values through the threshold trackers that set and clear its
//! conditions. Condition changes come back as events for the journal.

use std::time::{Instant, SystemTime};

use collectors::HostReadings;
use collectors::probes::ReadingKind;
use collectors::sysfs::hwmon::Chip;
use config::device::{ReconnectStep, ThrottleMetric};
use config::{CollectorKind, Config, DeviceConfig, Thresholds};

use super::evidence::HostEvidence;
use super::health::{Condition, ConditionKind, Impact, Level, Status, ThresholdTracker, derive_state, with_circuit};
use super::operator::{Expired, ManualThrottle, OperatorError, Overrides, ThrottleOverride};
use super::power::{Judged, PowerEvidence, WorkCounters, energy_per_inference, power_anomaly};
pub use super::view::{
    ConditionChange, DeviceView, LogUpdate, ProbeResult, ProbeState, ProbeView, Reading, Readings, ThresholdReading,
};
use crate::policy::reconnect::Circuit;

struct Device {
    config: DeviceConfig,
    /// Found by discovery rather than declared.
    discovered: bool,
    /// The accel class device bound by PCI address, if any: (driver status, operational).
    accel_status: Option<(String, Option<bool>)>,
    /// A SpiNNaker board's last poll of its BMP (and SC&MP, and spalloc).
    board: Option<crate::model::spinnaker::BoardReading>,
    probes: Vec<ProbeView>,
    /// Readings from probes, by probe name; merged into `readings` at each evaluation.
    probe_readings: std::collections::BTreeMap<String, Vec<(ReadingKind, f64)>>,
    sdk_problem: Option<(String, bool, String)>,
    /// The counters of the last probe result that advanced the inference count, for energy per inference.
    epi_last: Option<WorkCounters>,
    energy_per_inference: Option<f64>,
    epi: Option<ThresholdTracker>,
    log_lines: std::collections::BTreeMap<String, u64>,
    /// "log:PATH" of every log the device is read from (its configured or profile logs).
    log_paths: Vec<String>,
    log_matches: std::collections::BTreeMap<String, u64>,
    /// Conditions set by log rules.
    log_conditions: std::collections::BTreeMap<ConditionKind, LogCondition>,
    /// Per log rule: whether it latches and the impact of its condition. Fixed by the config, so worked
    /// out once instead of re-reading (and re-compiling) the rules on every signal.
    log_rules: std::collections::BTreeMap<String, LogRule>,
    has_logs: bool,
    throttle: Option<crate::policy::throttle::ThrottleController>,
    reconnect: Option<crate::policy::reconnect::ReconnectController>,
    /// (step, result) -> attempts, for accel_reconnect_attempts_total.
    reconnect_attempts: std::collections::BTreeMap<(ReconnectStep, &'static str), u64>,
    /// Maintenance (no automatic actions, state "maintenance") and a manual throttle level.
    overrides: Overrides,
    thresholds: Thresholds,
    conditions: Vec<Condition>,
    warn: ThresholdTracker,
    crit: ThresholdTracker,
    power: Option<ThresholdTracker>,
    readings: Readings,
    sources: Vec<String>,
    driver: Option<String>,
    last_reading: Option<Instant>,
    created: Instant,
}

/// A condition set by a log rule, until the rule clears it (or, latched, an operator does).
#[derive(Debug, Clone, PartialEq)]
struct LogCondition {
    rule: String,
    message: String,
    latched: bool,
    impact: Impact,
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
}

/// PCI class codes of devices discovery treats as accelerators: processing accelerators (0x12xxxx) and
/// co-processors (0x0b40xx).
pub fn is_accelerator_class(class: u32) -> bool {
    class >> 16 == 0x12 || class >> 8 == 0x0b40
}

impl DeviceEngine {
    pub fn new(config: &Config, now: Instant, wall: SystemTime) -> Self {
        let devices = config.devices.iter().map(|d| Device::new(d.clone(), false, now, wall)).collect();
        DeviceEngine { devices, discovery: config.discovery.enabled, one_shot: false }
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
    fn discover(&mut self, snap: &HostEvidence<'_>, now: Instant, wall: SystemTime) {
        let mut found: Vec<(String, String)> = Vec::new();
        if let Some(HostReadings::Accel(a)) = snap.readings(CollectorKind::Accel) {
            for d in &a.devices {
                if let Some(pci) = &d.pci_address {
                    let driver = d.driver.as_deref().unwrap_or("accel");
                    found.push((format!("{driver}-{pci}"), pci.to_string()));
                }
            }
        }
        if let Some(HostReadings::Hwmon(h)) = snap.readings(CollectorKind::Hwmon) {
            for c in &h.layout.chips {
                if let (Some(pci), Some(class)) = (&c.pci_address, c.pci_class)
                    && is_accelerator_class(class)
                {
                    let driver = c.raw_name.as_deref().unwrap_or("hwmon");
                    found.push((format!("{driver}-{pci}"), pci.to_string()));
                }
            }
        }
        for (id, pci) in found {
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
            };
            tracing::info!(device = %config.id, "discovered a device");
            let mut d = Device::new(config, true, now, wall);
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
    }

    /// Whether evaluating can find or change anything: there are devices, or discovery may add some.
    pub fn has_work(&self) -> bool {
        !self.devices.is_empty() || self.discovery
    }

    /// Re-reads every device's bound sources from the snapshot and re-evaluates its conditions.
    pub fn evaluate(&mut self, snap: &HostEvidence<'_>, now: Instant, wall: SystemTime) -> Vec<ConditionChange> {
        if self.discovery {
            self.discover(snap, now, wall);
        }
        let mut changes = Vec::new();
        for d in &mut self.devices {
            d.bind(snap);
            if !d.readings.is_empty() {
                d.last_reading = Some(now);
            }
            changes.extend(d.reevaluate(now, wall));
        }
        changes
    }

    /// Records a probe result and re-evaluates that device.
    pub fn apply_probe(
        &mut self,
        device: &str,
        result: ProbeResult,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<ConditionChange> {
        let Some(d) = self.devices.iter_mut().find(|d| d.config.id == device) else { return Vec::new() };
        let offline_after = d.offline_after(&result.probe);
        if let Some(p) = d.probes.iter_mut().find(|p| p.name == result.probe) {
            p.status = result.status;
            p.success = result.success;
            p.duration_seconds = result.duration.as_secs_f64();
            p.message = result.message.clone();
            if result.success {
                p.consecutive_failures = 0;
                p.last_success = Some(wall);
            } else {
                p.consecutive_failures = p.consecutive_failures.saturating_add(1);
                if p.consecutive_failures == offline_after {
                    tracing::warn!(device, probe = %p.name, "probe failed {offline_after} times in a row: {}", p.message);
                }
            }
        }
        if result.success || result.sdk_problem {
            d.sdk_problem = Some((result.probe.clone(), result.sdk_problem, result.message.clone()));
        }
        // Energy per inference only from a result that carries both counters: energy read by a host
        // collector and inferences read by a probe seconds apart would not cover the same work.
        let counter = |kind: ReadingKind| result.readings.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        if let (Some(energy_joules), Some(inferences)) =
            (counter(ReadingKind::Energy), counter(ReadingKind::Inferences))
        {
            let (rate, kept) = energy_per_inference(d.epi_last, WorkCounters { energy_joules, inferences });
            d.epi_last = Some(kept);
            if rate.is_some() {
                d.energy_per_inference = rate;
            }
        }
        d.probe_readings.insert(result.probe, result.readings);
        d.merge_probe_readings();
        d.reevaluate(now, wall)
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
        d.has_logs = true;
        d.log_lines.insert(update.source.clone(), update.lines);
        for (rule, n) in update.matches {
            d.log_matches.insert(rule, n);
        }
        for signal in update.signals {
            match signal {
                Signal::ConditionSet { rule, condition, count_in_window } => {
                    // The config admits only the conditions log rules may set; any other name is ignored.
                    let Some(kind) = ConditionKind::parse(&condition) else { continue };
                    let LogRule { latched, impact } = d.log_rules.get(&*rule).copied().unwrap_or_default();
                    d.log_conditions.insert(
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
                        d.log_conditions.remove(&kind);
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
        self.device_mut(device)?.overrides.maintenance = on.then_some(until);
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
                d.overrides.throttle = Some(ManualThrottle { level, until });
                d.overrides.throttle_released = false;
                d.overrides.throttle_requested = None;
            }
            None => {
                d.overrides.throttle = None;
                d.overrides.throttle_released = true;
            }
        }
        Ok(max)
    }

    /// The device's manual-throttle state, to put back with [`DeviceEngine::restore_throttle_override`].
    pub fn throttle_override(&mut self, device: &str) -> Result<ThrottleOverride, OperatorError> {
        Ok(self.device_mut(device)?.overrides.throttle_override())
    }

    /// Puts back a manual-throttle state after applying an operator's change to it failed.
    pub fn restore_throttle_override(&mut self, device: &str, saved: ThrottleOverride) {
        if let Ok(d) = self.device_mut(device) {
            d.overrides.restore_throttle(saved);
        }
    }

    /// Starts the device's reconnect ladder now, from its mildest step, whatever its circuit says (an
    /// operator asked). Returns the step to run.
    pub fn manual_reconnect(&mut self, device: &str, now: Instant) -> Result<ReconnectStep, OperatorError> {
        let d = self.device_mut(device)?;
        let id = d.config.id.clone();
        let cfg = d.config.reconnect.clone().filter(|r| !r.steps.is_empty());
        let cfg = cfg.ok_or(OperatorError::NoReconnectLadder { id: id.clone() })?;
        let controller = d.reconnect.get_or_insert_with(|| reconnect_controller(&cfg, 0));
        controller.start_manual(now).ok_or(OperatorError::NoReconnectLadder { id })
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
        d.log_conditions.retain(|condition, c| {
            if c.latched {
                cleared.push(format!("{} (log rule {})", condition.name(), c.rule));
            }
            !c.latched
        });
        for c in d.conditions.iter_mut().filter(|c| c.latched) {
            c.latched = false;
        }
        if let Some(r) = &mut d.reconnect
            && (r.escalated || r.circuit != crate::policy::reconnect::Circuit::Closed)
        {
            r.clear();
            cleared.push("reconnect circuit (closed again)".to_owned());
        }
        Ok((cleared, d.reevaluate(now, wall)))
    }

    /// Ends maintenance windows and manual throttles that have run out.
    pub fn expire_overrides(&mut self, wall: SystemTime) -> Vec<(String, Expired)> {
        let mut out = Vec::new();
        for d in &mut self.devices {
            for e in d.overrides.expire(wall) {
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
        for (i, d) in self.devices.iter_mut().enumerate() {
            let Some(cfg) = d.config.reconnect.clone() else { continue };
            if d.in_maintenance(wall) {
                continue;
            }
            let offline = d.conditions.iter().any(|c| c.kind == ConditionKind::Offline && c.status == Status::True);
            let controller = d.reconnect.get_or_insert_with(|| reconnect_controller(&cfg, i));
            if let Some(decision) = controller.tick(offline, now) {
                let (step, result) = match decision {
                    Decision::Failed { step } | Decision::Opened { step } | Decision::Escalate { step } => {
                        (Some(step), "failed")
                    }
                    Decision::Recovered { step } => (Some(step), "recovered"),
                    Decision::Attempt { .. } => (None, ""),
                };
                if let Some(step) = step {
                    *d.reconnect_attempts.entry((step, result)).or_default() += 1;
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
        for d in &mut self.devices {
            let Some(cfg) = d.config.throttle.clone() else { continue };
            let current = applied(&d.config.id);
            if let Some(manual) = d.overrides.throttle {
                if current != manual.level && d.overrides.throttle_requested != Some(manual.level) {
                    d.overrides.throttle_requested = Some(manual.level);
                    out.push((d.config.id.clone(), manual.level));
                }
                continue;
            }
            d.overrides.throttle_requested = None;
            if std::mem::take(&mut d.overrides.throttle_released) {
                d.throttle = None;
                if current != 0 {
                    out.push((d.config.id.clone(), 0));
                }
                continue;
            }
            if d.in_maintenance(wall) {
                continue;
            }
            let value = match cfg.metric {
                ThrottleMetric::Power if !d.readings.power_watts.is_empty() => {
                    Some(d.readings.power_watts.iter().map(|r| r.value).sum())
                }
                ThrottleMetric::Power => None,
                ThrottleMetric::Temperature => d.readings.max_temperature().map(|r| r.value),
            };
            let Some(value) = value else { continue };
            let t = &d.thresholds;
            let controller = d.throttle.get_or_insert_with(|| {
                let default = match cfg.metric {
                    ThrottleMetric::Power => t.power_max.unwrap_or(f64::INFINITY),
                    ThrottleMetric::Temperature => t.temperature_warn,
                };
                crate::policy::throttle::ThrottleController::new(
                    cfg.threshold.unwrap_or(default),
                    cfg.hysteresis.unwrap_or(t.hysteresis),
                    cfg.hold.map_or(t.min_duration, |h| h.get()),
                    cfg.levels.len(),
                )
            });
            if let Some(level) = controller.observe(value, current, now) {
                out.push((d.config.id.clone(), level));
            }
        }
        out
    }

    /// What each device looks like at `wall` (a maintenance window that has ended by then no longer
    /// counts, even before `expire_overrides` has removed it).
    pub fn views(&self, wall: SystemTime) -> Vec<DeviceView> {
        self.devices.iter().map(|d| d.view(wall)).collect()
    }
}

impl Device {
    fn new(config: DeviceConfig, discovered: bool, now: Instant, wall: SystemTime) -> Device {
        let t = config.thresholds();
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
            })
            .collect();
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
        Device {
            epi: t.energy_per_inference_max.map(|m| ThresholdTracker::new(m, 0.0, t.min_duration)),
            config,
            discovered,
            accel_status: None,
            board: None,
            probes,
            probe_readings: Default::default(),
            sdk_problem: None,
            epi_last: None,
            energy_per_inference: None,
            log_lines: Default::default(),
            log_matches: Default::default(),
            log_conditions: Default::default(),
            log_rules,
            log_paths,
            has_logs: false,
            throttle: None,
            reconnect: None,
            reconnect_attempts: Default::default(),
            overrides: Overrides::default(),
            conditions: ConditionKind::ALL.iter().map(|k| Condition::unknown(*k, wall)).collect(),
            warn: ThresholdTracker::new(t.temperature_warn, t.hysteresis, t.min_duration),
            crit: ThresholdTracker::new(t.temperature_crit, t.hysteresis, t.min_duration),
            power: t.power_max.map(|p| ThresholdTracker::new(p, t.hysteresis, t.min_duration)),
            thresholds: t,
            readings: Readings::default(),
            sources: Vec::new(),
            driver: None,
            last_reading: None,
            created: now,
        }
    }

    /// This device under a changed config, keeping what was learnt about it.
    fn reconfigured(self, config: DeviceConfig, now: Instant, wall: SystemTime) -> Device {
        let mut d = Device::new(config, self.discovered, now, wall);
        for p in &mut d.probes {
            if let Some(old) = self.probes.iter().find(|o| o.name == p.name) {
                *p = ProbeView { liveness: p.liveness, ..old.clone() };
            }
        }
        d.probe_readings =
            self.probe_readings.into_iter().filter(|(k, _)| d.probes.iter().any(|p| &p.name == k)).collect();
        if d.thresholds == self.thresholds {
            (d.warn, d.crit, d.power, d.epi) = (self.warn, self.crit, self.power, self.epi);
        }
        if d.config.throttle == self.config.throttle {
            d.throttle = self.throttle;
        }
        if d.config.reconnect == self.config.reconnect {
            d.reconnect = self.reconnect;
        }
        d.overrides = self.overrides;
        if d.config.throttle.is_none() {
            d.overrides.throttle = None;
        }
        d.log_conditions = self.log_conditions.into_iter().filter(|(_, c)| d.log_rules.contains_key(&c.rule)).collect();
        d.conditions = self.conditions;
        d.accel_status = self.accel_status;
        d.board = self.board;
        d.sdk_problem = self.sdk_problem;
        d.epi_last = self.epi_last;
        d.energy_per_inference = self.energy_per_inference;
        d.log_lines = self.log_lines;
        d.log_matches = self.log_matches;
        d.has_logs = self.has_logs;
        d.reconnect_attempts = self.reconnect_attempts;
        d.readings = self.readings;
        d.sources = self.sources;
        d.driver = self.driver;
        d.last_reading = self.last_reading;
        d.created = self.created;
        d
    }

    fn in_maintenance(&self, now: SystemTime) -> bool {
        self.overrides.in_maintenance(now)
    }

    fn make_one_shot(&mut self) {
        for t in
            [Some(&mut self.warn), Some(&mut self.crit), self.power.as_mut(), self.epi.as_mut()].into_iter().flatten()
        {
            t.min_duration = std::time::Duration::ZERO;
        }
        self.thresholds.min_duration = std::time::Duration::ZERO;
        for p in &mut self.config.probes {
            p.offline_after = Some(1);
        }
    }

    fn condition(&mut self, kind: ConditionKind) -> &mut Condition {
        let i = ConditionKind::ALL.iter().position(|k| *k == kind).expect("every kind has a slot");
        &mut self.conditions[i]
    }

    /// Collects this device's readings from the host collectors' latest results.
    fn bind(&mut self, snap: &HostEvidence<'_>) {
        let mut r = Readings::default();
        let mut sources = Vec::new();
        if let Some(HostReadings::Hwmon(h)) = snap.readings(CollectorKind::Hwmon) {
            let name = self.config.hwmon_name();
            let pci = self.config.pci_address.as_deref();
            let chips = h.layout.chips.iter().filter(|c| match pci {
                // Only the chips of that address: another board's chip may have the same name.
                Some(p) => c.pci_address.as_deref() == Some(p),
                None => name.as_deref().is_some_and(|n| c.raw_name.as_deref() == Some(n) || &*c.chip == n),
            });
            let chips: Vec<&Chip> = chips.collect();
            // A name matching several chips (coretemp: one per socket) would repeat their sensor names
            // ("Core 0" on each): then each sensor is named after its chip as well.
            let qualify = chips.len() > 1;
            for chip in chips {
                sources.push(format!("hwmon:{}", chip.chip));
                if self.driver.is_none() {
                    self.driver = chip.raw_name.as_deref().map(str::to_owned);
                }
                bind_chip(h, chip, qualify, &mut r);
            }
        }
        if let (Some(zone_type), Some(HostReadings::ThermalZone(t))) =
            (&self.config.thermal_zone, snap.readings(CollectorKind::ThermalZone))
            && let Some(z) = t.by_type(zone_type)
        {
            sources.push(format!("thermal_zone:{}", z.zone_type));
            let sensor = format!("zone_{}", z.zone_type);
            if let Some(v) = z.temp_celsius {
                r.temperature_celsius.push(Reading { sensor: sensor.clone(), value: v });
            }
            for trip in &z.trips {
                if let Some(v) = trip.temp_celsius {
                    r.temperature_threshold_celsius.push(ThresholdReading {
                        sensor: sensor.clone(),
                        level: trip.trip_type.to_string(),
                        value: v,
                    });
                }
            }
        }
        if let (Some(name), Some(HostReadings::PowerSupply(p))) =
            (self.config.power_supply_name(), snap.readings(CollectorKind::PowerSupply))
            && let Some(s) = p.get(&name)
        {
            sources.push(format!("power_supply:{name}"));
            // energy_now is in microwatt-hours: 1 µWh = 3.6e-3 J.
            if let Some(uwh) = s.raw("energy_now") {
                r.energy_joules.push(Reading { sensor: name.clone(), value: uwh * 3.6e-3 });
            }
            if let Some(uw) = s.raw("power_now") {
                r.power_watts.push(Reading { sensor: name.clone(), value: uw / 1e6 });
            }
            if let Some(uv) = s.raw("voltage_now") {
                r.voltage_volts.push(Reading { sensor: name.clone(), value: uv / 1e6 });
            }
            if let Some(ua) = s.raw("current_now") {
                r.current_amperes.push(Reading { sensor: name.clone(), value: ua / 1e6 });
            }
            if let Some(dt) = s.raw("temp") {
                r.temperature_celsius.push(Reading { sensor: name.clone(), value: dt / 10.0 });
            }
        }
        self.accel_status = None;
        if let (Some(pci), Some(HostReadings::Accel(a))) =
            (&self.config.pci_address, snap.readings(CollectorKind::Accel))
            && let Some(dev) = a.by_pci(pci)
        {
            sources.push(format!("accel:{}", dev.name));
            if let Some(driver) = &dev.driver {
                self.driver = Some(driver.to_string());
            }
            if let Some(status) = &dev.status {
                self.accel_status = Some((status.clone(), dev.operational()));
            }
            if let Some(w) = dev.value(collectors::sysfs::accel::Field::MaxPowerWatts) {
                r.power_limit_watts = Some(w);
            }
        }
        self.board = None;
        if let Some(b) = &self.config.bmp
            && let Some(reading) = snap.board(&self.config.id)
        {
            sources.push(format!("bmp:{}/{}", b.address, b.board));
            if let Some(status) = &reading.status {
                use collectors::spinnaker::SensorKind;
                for s in status.sensors() {
                    let target = match s.kind {
                        SensorKind::Temperature => &mut r.temperature_celsius,
                        SensorKind::Voltage => &mut r.voltage_volts,
                        SensorKind::Fan => &mut r.fan_rpm,
                    };
                    target.push(Reading { sensor: s.name.to_owned(), value: s.value });
                }
            }
            self.board = Some(reading.clone());
        }
        self.readings = r;
        self.sources = sources;
        self.merge_probe_readings();
    }

    /// Adds the probes' temperature, power and energy to the readings (labelled by probe name).
    fn merge_probe_readings(&mut self) {
        for (probe, values) in &self.probe_readings {
            for (kind, v) in values {
                let target = match kind {
                    ReadingKind::Temperature => &mut self.readings.temperature_celsius,
                    ReadingKind::Power => &mut self.readings.power_watts,
                    ReadingKind::Energy => &mut self.readings.energy_joules,
                    _ => continue,
                };
                target.retain(|r| &r.sensor != probe);
                target.push(Reading { sensor: probe.clone(), value: *v });
            }
        }
    }

    fn probe_value(&self, kind: ReadingKind) -> Option<f64> {
        self.probe_readings.values().flatten().find(|(k, _)| *k == kind).map(|(_, v)| *v)
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

    /// Runs the rules; returns the changed conditions as events for the journal.
    fn reevaluate(&mut self, now: Instant, wall: SystemTime) -> Vec<ConditionChange> {
        let changed = self.evaluate(now, wall);
        let id = &self.config.id;
        changed
            .into_iter()
            .filter_map(|kind| self.conditions.iter().find(|c| c.kind == kind).cloned())
            .map(|condition| ConditionChange { device: id.clone(), condition })
            .collect()
    }

    /// Runs the rules; returns the conditions whose status changed.
    fn evaluate(&mut self, now: Instant, wall: SystemTime) -> Vec<ConditionKind> {
        let mut changed = Vec::new();
        let t = self.thresholds.clone();

        // Overheating: the hottest sensor against warn (degraded) and crit (unhealthy), each with
        // hysteresis and a minimum duration so a noisy sensor does not flap.
        let hottest = self.readings.max_temperature().cloned();
        let (status, impact, reason, message) = match hottest {
            None => (Status::Unknown, Impact::Degraded, "NoTemperature", "no temperature reading".to_owned()),
            Some(h) => {
                let warn = self.warn.observe(h.value, now);
                let crit = self.crit.observe(h.value, now);
                let at = format!("{} at {:.1} °C", h.sensor, h.value);
                match (warn, crit) {
                    (_, Level::Above) => (
                        Status::True,
                        Impact::Unhealthy,
                        "TemperatureAboveCritical",
                        format!("{at}, above the critical {:.1} °C", t.temperature_crit),
                    ),
                    (Level::Above, _) => (
                        Status::True,
                        Impact::Degraded,
                        "TemperatureAboveWarning",
                        format!("{at}, above the warning {:.1} °C", t.temperature_warn),
                    ),
                    _ => (Status::False, Impact::Degraded, "TemperatureNormal", at),
                }
            }
        };
        if self.condition(ConditionKind::Overheating).set(status, impact, reason, message, wall) {
            changed.push(ConditionKind::Overheating);
        }

        // PowerAnomaly: total power above its maximum, or energy per inference above its maximum.
        let watts: Option<f64> =
            (!self.readings.power_watts.is_empty()).then(|| self.readings.power_watts.iter().map(|r| r.value).sum());
        let power = match (&mut self.power, watts) {
            (Some(tracker), Some(w)) => {
                Some(Judged { value: w, max: tracker.threshold, level: tracker.observe(w, now) })
            }
            _ => None,
        };
        let per_inference = match (self.energy_per_inference, self.epi.as_mut()) {
            (Some(epi), Some(tracker)) => {
                Some(Judged { value: epi, max: tracker.threshold, level: tracker.observe(epi, now) })
            }
            _ => None,
        };
        let (status, reason, message) = power_anomaly(PowerEvidence { watts, power, per_inference });
        if self.condition(ConditionKind::PowerAnomaly).set(status, Impact::Degraded, reason, message, wall) {
            changed.push(ConditionKind::PowerAnomaly);
        }

        // Offline, from every piece of evidence: the driver's status (habanalabs: "In reset", "Needs
        // reset", "Disabled"), liveness probes failing `offline_after` times in a row, an SDK reporting
        // the device offline. Any one saying offline wins; otherwise any saying online clears it.
        let mut down: Option<(&str, String)> = None;
        let mut up: Option<(&str, String)> = None;
        if let Some((status, operational)) = &self.accel_status {
            match operational {
                Some(false) => down = Some(("DriverStatusNotOperational", format!("driver status: {status}"))),
                _ => up = Some(("DriverStatusOperational", format!("driver status: {status}"))),
            }
        }
        for p in self.probes.iter().filter(|p| p.liveness && p.status != ProbeState::Pending) {
            let limit = self.offline_after(&p.name);
            if p.consecutive_failures >= limit {
                down.get_or_insert((
                    "ProbeFailing",
                    format!("probe {} failed {} times: {}", p.name, p.consecutive_failures, p.message),
                ));
            } else if p.success {
                up.get_or_insert(("ProbeSucceeding", format!("probe {} succeeded", p.name)));
            }
        }
        if let Some(board) = &self.board {
            match (&board.bmp_alive, &board.scamp) {
                (false, _) => {
                    let why = board.error.as_deref().unwrap_or("no answer");
                    down.get_or_insert(("BmpNotAnswering", format!("the frame's BMP does not answer: {why}")));
                }
                (true, Some(Err(e))) => {
                    down.get_or_insert((
                        "BoardNotBooted",
                        format!("the BMP answers but the board's SC&MP does not: {e}"),
                    ));
                }
                (true, _) => {
                    up.get_or_insert(("BmpAnswering", "the frame's BMP answers for the board".into()));
                }
            }
        }
        match self.probe_value(ReadingKind::Online) {
            Some(0.0) => {
                down.get_or_insert(("SdkReportsOffline", "the SDK reports the device offline".into()));
            }
            Some(_) => {
                up.get_or_insert(("SdkReportsOnline", "the SDK reports the device online".into()));
            }
            None => {}
        }
        let offline = match (down, up) {
            (Some((reason, msg)), _) => Some((Status::True, reason, msg)),
            (None, Some((reason, msg))) => Some((Status::False, reason, msg)),
            (None, None) => None,
        };
        if let Some((st, reason, msg)) = offline
            && self.condition(ConditionKind::Offline).set(st, Impact::Unhealthy, reason, msg, wall)
        {
            changed.push(ConditionKind::Offline);
        }

        // LogErrors: set and cleared by log rules.
        if self.has_logs {
            let (st, reason, msg, latched, impact) = match self.log_conditions.get(&ConditionKind::LogErrors) {
                Some(c) => (Status::True, c.rule.clone(), c.message.clone(), c.latched, c.impact),
                None => {
                    (Status::False, "NoMatchingLines".to_owned(), "no error lines".to_owned(), false, Impact::Degraded)
                }
            };
            let c = self.condition(ConditionKind::LogErrors);
            c.latched = c.latched || latched;
            if c.set(st, impact, &reason, msg, wall) {
                changed.push(ConditionKind::LogErrors);
            }
        }

        // A log rule may also report an SDK error (e.g. calibration drift in the vendor's log).
        if let Some(LogCondition { rule, message, .. }) = self.log_conditions.get(&ConditionKind::SdkError).cloned()
            && self.condition(ConditionKind::SdkError).set(Status::True, Impact::Degraded, &rule, message, wall)
        {
            changed.push(ConditionKind::SdkError);
        }

        // A SpiNNaker board's management layer reporting a problem: its BMP's own shutdown flags (the BMP
        // switched the board off for a reading past a limit in its EEPROM), then its warning flags, then
        // spalloc listing the board as dead (no job can use it).
        if let Some(board) = &self.board
            && self.sdk_problem.is_none()
            && !self.log_conditions.contains_key(&ConditionKind::SdkError)
        {
            let flags = board.status.as_ref().map(|s| (s.warning, s.shutdown));
            let verdict = match (flags, board.dead_in_spalloc) {
                (Some((_, shutdown)), _) if shutdown != 0 => Some((
                    Status::True,
                    Impact::Unhealthy,
                    "BmpShutdown",
                    format!("the BMP shut the board down: shutdown flags {shutdown:#010x}"),
                )),
                (Some((warning, _)), _) if warning != 0 => Some((
                    Status::True,
                    Impact::Degraded,
                    "BmpWarning",
                    format!("the BMP reports warning flags {warning:#010x}"),
                )),
                (_, Some(true)) => Some((
                    Status::True,
                    Impact::Degraded,
                    "SpallocListsDead",
                    "spalloc lists the board as dead: no job can use it".to_owned(),
                )),
                (_, Some(false)) => Some((
                    Status::False,
                    Impact::Degraded,
                    "SpallocListsAlive",
                    "no BMP flags, and spalloc does not list the board as dead".to_owned(),
                )),
                (Some(_), None) => Some((
                    Status::False,
                    Impact::Degraded,
                    "BmpFlagsClear",
                    "no BMP warning or shutdown flags".to_owned(),
                )),
                (None, None) => None,
            };
            if let Some((st, impact, reason, msg)) = verdict
                && self.condition(ConditionKind::SdkError).set(st, impact, reason, msg, wall)
            {
                changed.push(ConditionKind::SdkError);
            }
        }

        // SdkError: the status tool ran and reported a problem (exit 1).
        if let Some((probe, problem, msg)) = self.sdk_problem.clone()
            && !self.log_conditions.contains_key(&ConditionKind::SdkError)
        {
            let (st, reason) = if problem { (Status::True, "SdkReportsProblem") } else { (Status::False, "SdkOk") };
            let message = if msg.is_empty() { format!("probe {probe}") } else { format!("probe {probe}: {msg}") };
            if self.condition(ConditionKind::SdkError).set(st, Impact::Degraded, reason, message, wall) {
                changed.push(ConditionKind::SdkError);
            }
        }

        // DataStale: bound sources stopped producing readings. A device with no host source at all is
        // judged by its probes instead.
        let has_sources = self.config.hwmon_name().is_some()
            || self.config.bmp.is_some()
            || self.config.pci_address.is_some()
            || self.config.thermal_zone.is_some()
            || self.config.power_supply_name().is_some();
        if has_sources {
            let since = self.last_reading.unwrap_or(self.created);
            let age = now.duration_since(since);
            let (status, reason, message) = if age > t.stale_after {
                (Status::True, "NoFreshReadings", format!("no reading from its sources for {}s", age.as_secs()))
            } else if self.last_reading.is_some() {
                (Status::False, "ReadingsFresh", format!("last reading {}s ago", age.as_secs()))
            } else {
                (Status::Unknown, "WaitingForFirstReading", "no reading yet".to_owned())
            };
            if self.condition(ConditionKind::DataStale).set(status, Impact::Degraded, reason, message, wall) {
                changed.push(ConditionKind::DataStale);
            }
        }
        changed
    }

    fn view(&self, wall: SystemTime) -> DeviceView {
        DeviceView {
            id: self.config.id.clone(),
            kind: self.config.kind.name(),
            model: self.config.model.clone().unwrap_or_default(),
            driver: self.driver.clone().unwrap_or_default(),
            pci_address: self.config.pci_address.clone().unwrap_or_default(),
            firmware: self.board.as_ref().and_then(|b| b.firmware.clone()).unwrap_or_default(),
            state: with_circuit(
                derive_state(&self.conditions, self.in_maintenance(wall)),
                self.reconnect.as_ref().is_some_and(|r| r.escalated || r.circuit == Circuit::Open),
            ),
            up: match (
                self.conditions.iter().find(|c| c.kind == ConditionKind::Offline).map(|c| c.status),
                &self.accel_status,
            ) {
                (Some(Status::True), _) => Some(false),
                (Some(Status::False), _) => Some(true),
                (_, Some((_, Some(operational)))) => Some(*operational),
                _ => (!self.sources.is_empty()).then_some(true),
            },
            discovered: self.discovered,
            probes: self.probes.clone(),
            utilization_ratio: self.probe_value(ReadingKind::Utilization),
            inferences_total: self.probe_value(ReadingKind::Inferences),
            energy_per_inference_joules: self.energy_per_inference,
            log_lines: self.log_lines.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            log_matches: self.log_matches.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            maintenance: self.in_maintenance(wall),
            maintenance_until: self.overrides.maintenance_until(),
            manual_throttle: self.overrides.throttle,
            circuit: self.reconnect.as_ref().map(|r| r.circuit),
            needs_hardware_inspection: self.reconnect.as_ref().is_some_and(|r| r.escalated),
            reconnect_attempts: self
                .reconnect_attempts
                .iter()
                .map(|((s, r), n)| (s.name().to_owned(), (*r).to_owned(), *n))
                .collect(),
            temperature_warn_celsius: self.thresholds.temperature_warn,
            temperature_crit_celsius: self.thresholds.temperature_crit,
            conditions: self.conditions.clone(),
            readings: self.readings.clone(),
            // Host sources bound from sysfs and the BMP, then the device's probes and logs: a photonic card
            // read only through its vendor tool still says where its readings come from.
            sources: self
                .sources
                .iter()
                .cloned()
                .chain(self.probes.iter().map(|p| format!("probe:{}", p.name)))
                .chain(self.log_paths.iter().cloned())
                .collect(),
        }
    }
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

/// hwmon channels in base units, labelled by their `_label` when the chip has one (prefixed with the chip
/// when `qualify`).
fn bind_chip(h: &collectors::sysfs::hwmon::HwmonReadings, chip: &Chip, qualify: bool, r: &mut Readings) {
    for s in &chip.sensors {
        let sensor = s.label.as_deref().map(str::to_owned).unwrap_or_else(|| s.name.to_string());
        let sensor = if qualify { format!("{}/{sensor}", chip.chip) } else { sensor };
        let value = |element: &str| h.si(s, element);
        match &*s.kind {
            "temp" => {
                if let Some(v) = value("input") {
                    r.temperature_celsius.push(Reading { sensor: sensor.clone(), value: v });
                }
                for level in ["max", "crit", "emergency"] {
                    if let Some(v) = value(level) {
                        r.temperature_threshold_celsius.push(ThresholdReading {
                            sensor: sensor.clone(),
                            level: level.to_owned(),
                            value: v,
                        });
                    }
                }
            }
            "power" => {
                if let Some(v) = value("input").or_else(|| value("average")) {
                    r.power_watts.push(Reading { sensor, value: v });
                }
            }
            "energy" => {
                if let Some(v) = value("input") {
                    r.energy_joules.push(Reading { sensor, value: v });
                }
            }
            "in" => {
                if let Some(v) = value("input") {
                    r.voltage_volts.push(Reading { sensor, value: v });
                }
            }
            "curr" => {
                if let Some(v) = value("input") {
                    r.current_amperes.push(Reading { sensor, value: v });
                }
            }
            "fan" => {
                if let Some(v) = value("input") {
                    r.fan_rpm.push(Reading { sensor, value: v });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;

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
        let hot = ProbeResult {
            probe: "status".into(),
            status: ProbeState::Ok,
            success: true,
            sdk_problem: false,
            duration: std::time::Duration::ZERO,
            message: String::new(),
            readings: vec![(ReadingKind::Temperature, 95.0)],
        };
        e.apply_probe("d0", hot, t0, t - 2 * second);

        let before = &e.views(t - second)[0];
        assert_eq!((before.state, before.maintenance), (State::Maintenance, true), "at T-1s");
        assert_eq!(e.throttle_requests(|_| 0, t0, t - second), vec![], "no throttling in maintenance");

        let after = &e.views(t + second)[0];
        assert_eq!((after.state, after.maintenance), (State::Healthy, false), "at T+1s");
        assert_eq!(e.throttle_requests(|_| 0, t0 + second, t + second), vec![("d0".to_owned(), 1)]);
    }
}
