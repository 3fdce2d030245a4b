//! A device as the engine holds it: its config, what was learnt about it, and binding it to the host evidence.

use std::time::{Instant, SystemTime};

use collectors::probes::ReadingKind;
use config::device::{ReconnectStep, ThrottleMetric};
use config::{CollectorKind, DeviceConfig, Thresholds};

use crate::model::binding;
use crate::model::conditions::{DriverStatus, LogCondition, SdkReport};
use crate::model::diagnostics::DeviceDiagnostics;
use crate::model::health::{Condition, ConditionKind, Impact, Status, ThresholdTracker};
use crate::model::host::HostEvidence;
use crate::model::operator::Overrides;
use crate::model::power::WorkCounters;
use crate::model::view::{ConditionChange, ProbeState, ProbeView, Reading, Readings};

pub(super) struct Device {
    pub(super) config: DeviceConfig,
    /// Found by discovery rather than declared.
    pub(super) discovered: bool,
    /// The driver or chip name discovery found the device by, as the kernel wrote it; the id holds it made
    /// addressable ([`config::device::addressable_id`]).
    pub(super) discovered_name: Option<String>,
    /// "log:PATH" of every log the device is read from (its configured or profile logs).
    pub(super) log_paths: Vec<String>,
    /// Per log rule: whether it latches and the impact of its condition. Fixed by the config, so worked
    /// out once instead of re-reading (and re-compiling) the rules on every signal.
    pub(super) log_rules: std::collections::BTreeMap<String, LogRule>,
    pub(super) thresholds: Thresholds,
    /// Everything learnt about the device since the agent started. A reload carries it across whole.
    pub(super) learnt: Learnt,
    /// The host evidence the device binds, worked out once from its config.
    pub(super) inputs: HostInputs,
    /// Whether `learnt.readings` and `learnt.sources` come from the engine's last host evidence. False for
    /// a device just created or reconfigured, which must bind even when nothing new was published.
    pub(super) bound: bool,
}

/// Which host evidence a device binds: the collectors whose readings it takes, and whether it takes a
/// SpiNNaker board. A publication of anything else cannot change the device.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HostInputs {
    pub(super) hwmon_name: Option<String>,
    pub(super) power_supply: Option<String>,
    pub(super) collectors: Vec<CollectorKind>,
    pub(super) board: bool,
}

impl HostInputs {
    pub(super) fn of(config: &DeviceConfig) -> HostInputs {
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
    pub(super) fn any(&self) -> bool {
        !self.collectors.is_empty() || self.board
    }

    /// Whether anything the device binds was published between `before` and `now`.
    pub(super) fn changed(&self, before: &HostEvidence, now: &HostEvidence) -> bool {
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
pub(super) struct Learnt {
    /// The agent's own reads of the host's files are failing (out of descriptors): the device's silence
    /// is then not evidence (DataStale stays as it was).
    pub(super) agent_cannot_read: bool,
    /// The driver's status of the accel class device bound by PCI address, if any.
    pub(super) driver_status: Option<DriverStatus>,
    /// A SpiNNaker board's last poll of its BMP (and SC&MP, and spalloc).
    pub(super) board: Option<crate::model::spinnaker::BoardReading>,
    pub(super) probes: Vec<ProbeView>,
    /// Readings from probes, by probe name; merged into `readings` at each evaluation.
    pub(super) probe_readings: std::collections::BTreeMap<String, Vec<(ReadingKind, f64)>>,
    /// The status tool's last verdict (a probe that ran and said fine or problem), for SdkError.
    pub(super) sdk_report: Option<SdkReport>,
    /// The counters of the last probe result that advanced the inference count, for energy per inference.
    pub(super) epi_last: Option<WorkCounters>,
    pub(super) energy_per_inference: Option<f64>,
    /// The threshold trackers of the conditions judged on values (their pending transitions).
    pub(super) trackers: Trackers,
    pub(super) log_lines: std::collections::BTreeMap<String, u64>,
    pub(super) log_matches: std::collections::BTreeMap<String, u64>,
    /// Conditions set by log rules.
    pub(super) log_conditions: std::collections::BTreeMap<ConditionKind, LogCondition>,
    pub(super) has_logs: bool,
    /// The throttle ladder and the judgement it steps on, for a device with a throttle config.
    pub(super) throttle: Option<Throttle>,
    pub(super) reconnect: Option<crate::policy::reconnect::ReconnectController>,
    /// (step, result) -> attempts, for accel_reconnect_attempts_total.
    pub(super) reconnect_attempts: std::collections::BTreeMap<(ReconnectStep, &'static str), u64>,
    /// Maintenance (no automatic actions, state "maintenance") and a manual throttle level.
    pub(super) overrides: Overrides,
    /// The device's diagnostics: queued, running, last results.
    pub(super) diagnostics: DeviceDiagnostics,
    pub(super) conditions: Vec<Condition>,
    pub(super) readings: Readings,
    pub(super) sources: Vec<String>,
    pub(super) driver: Option<String>,
    pub(super) last_reading: Option<Instant>,
    pub(super) created: Instant,
}

/// The trackers that turn a noisy value into a level, built from the device's thresholds.
#[derive(Debug, Clone)]
pub(super) struct Trackers {
    pub(super) warn: ThresholdTracker,
    pub(super) crit: ThresholdTracker,
    pub(super) power: Option<ThresholdTracker>,
    pub(super) epi: Option<ThresholdTracker>,
}

impl Trackers {
    pub(super) fn new(t: &Thresholds) -> Trackers {
        Trackers {
            warn: ThresholdTracker::new(t.temperature_warn, t.hysteresis, t.min_duration),
            crit: ThresholdTracker::new(t.temperature_crit, t.hysteresis, t.min_duration),
            power: t.power_max.map(|p| ThresholdTracker::new(p, t.hysteresis, t.min_duration)),
            epi: t.energy_per_inference_max.map(|m| ThresholdTracker::new(m, 0.0, t.min_duration)),
        }
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &ThresholdTracker> {
        [Some(&self.warn), Some(&self.crit), self.power.as_ref(), self.epi.as_ref()].into_iter().flatten()
    }

    pub(super) fn all_mut(&mut self) -> impl Iterator<Item = &mut ThresholdTracker> {
        [Some(&mut self.warn), Some(&mut self.crit), self.power.as_mut(), self.epi.as_mut()].into_iter().flatten()
    }
}

/// A device's throttle ladder and the tracker whose zone it steps on: the condition's own tracker when the
/// throttle watches the same value with the same threshold, hysteresis and hold (one judgement of one
/// quantity), else a tracker of its own fed the same value.
#[derive(Debug, Clone)]
pub(super) struct Throttle {
    pub(super) metric: ThrottleMetric,
    pub(super) judge: ThrottleJudge,
    pub(super) ladder: crate::policy::throttle::ThrottleLadder,
}

#[derive(Debug, Clone)]
pub(super) enum ThrottleJudge {
    /// The Overheating warning tracker.
    Warn,
    /// The PowerAnomaly tracker.
    Power,
    Own(ThresholdTracker),
}

impl Throttle {
    pub(super) fn new(cfg: &config::device::ThrottleConfig, t: &Thresholds) -> Throttle {
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
    pub(super) fn observe(throttle: &mut Option<Throttle>, metric: ThrottleMetric, value: f64, now: Instant) {
        if let Some(Throttle { metric: m, judge: ThrottleJudge::Own(tracker), .. }) = throttle
            && *m == metric
        {
            tracker.observe(value, now);
        }
    }
}

impl Learnt {
    /// Nothing learnt yet about a device under `config`.
    pub(super) fn new(config: &DeviceConfig, thresholds: &Thresholds, now: Instant, wall: SystemTime) -> Learnt {
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
    pub(super) fn carried_to(
        mut self,
        old_config: &DeviceConfig,
        old_thresholds: &Thresholds,
        fresh: &Device,
    ) -> Learnt {
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
pub(super) fn declared_conditions(config: &DeviceConfig) -> impl Iterator<Item = ConditionKind> {
    let diagnostic = DeviceDiagnostics::declares_condition(config).then_some(ConditionKind::DiagnosticFailed);
    ConditionKind::ALL.into_iter().chain(diagnostic)
}

/// What a log rule's condition is like: fixed by the config, so worked out once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct LogRule {
    pub(super) latched: bool,
    pub(super) impact: Impact,
}

impl Device {
    pub(super) fn new(config: DeviceConfig, discovered: bool, now: Instant, wall: SystemTime) -> Device {
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
    pub(super) fn reconfigured(self, config: DeviceConfig, now: Instant, wall: SystemTime) -> Device {
        let fresh = Device::new(config, self.discovered, now, wall);
        let Device { config: old_config, thresholds: old_thresholds, learnt, discovered_name, .. } = self;
        Device { learnt: learnt.carried_to(&old_config, &old_thresholds, &fresh), discovered_name, ..fresh }
    }

    pub(super) fn in_maintenance(&self, now: SystemTime) -> bool {
        self.learnt.overrides.in_maintenance(now) || self.learnt.diagnostics.exclusive_running().is_some()
    }

    pub(super) fn make_one_shot(&mut self) {
        for t in self.learnt.trackers.all_mut() {
            t.min_duration = std::time::Duration::ZERO;
        }
        self.thresholds.min_duration = std::time::Duration::ZERO;
        for p in &mut self.config.probes {
            p.offline_after = Some(1);
        }
    }

    /// A condition of [`ConditionKind::ALL`], which every device declares.
    pub(super) fn condition(&mut self, kind: ConditionKind) -> &mut Condition {
        let i = ConditionKind::ALL.iter().position(|k| *k == kind).expect("every kind has a slot");
        &mut self.learnt.conditions[i]
    }

    /// Collects this device's readings from the host collectors' latest results.
    pub(super) fn bind(&mut self, snap: &HostEvidence) {
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
    pub(super) fn merge_probe_readings(&mut self) {
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

    pub(super) fn probe_value(&self, kind: ReadingKind) -> Option<f64> {
        self.learnt.probe_readings.values().flatten().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    pub(super) fn offline_after(&self, probe: &str) -> u32 {
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
    pub(super) fn waits_on_time(&self, now: Instant) -> bool {
        let pending = self.learnt.trackers.all().any(ThresholdTracker::is_pending);
        let stale = self.data_stale_evidence(now);
        pending || (stale.has_host_sources && stale.silent_for > stale.stale_after)
    }

    pub(super) fn status(&self, kind: ConditionKind) -> Option<Status> {
        self.learnt.conditions.iter().find(|c| c.kind == kind).map(|c| c.status)
    }
}

/// A device's reconnect controller; seeded per device so two devices do not retry in lockstep.
pub(super) fn reconnect_controller(
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
