//! `[[device]]`: one accelerator, the sources its readings come from, and the thresholds its health is
//! judged by. Built-in profiles per kind supply defaults that any key in the file overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::{Interval, Period, Timeout};

/// The device kinds with a built-in profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    Loihi,
    SpinnakerBoard,
    Photonic,
    PciAccel,
    Generic,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Loihi => "loihi",
            DeviceKind::SpinnakerBoard => "spinnaker-board",
            DeviceKind::Photonic => "photonic",
            DeviceKind::PciAccel => "pci-accel",
            DeviceKind::Generic => "generic",
        }
    }
}

/// A device as written in the config. Every optional key falls back to the kind's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique, stable name; the `device` label of every device metric.
    pub id: String,
    pub kind: DeviceKind,
    /// Free text for accel_device_info{model}.
    #[serde(default)]
    pub model: Option<String>,
    /// The PCI function of the device (binds AER counters, the accel class device and any hwmon chip
    /// under it).
    #[serde(default)]
    pub pci_address: Option<String>,
    /// An hwmon chip by its `name` file (e.g. "loihi") or its `chip` label.
    #[serde(default)]
    pub hwmon: Option<String>,
    /// A thermal zone by its `type`.
    #[serde(default)]
    pub thermal_zone: Option<String>,
    /// A power supply by name (e.g. "loihi2": energy_now becomes the device's energy counter).
    #[serde(default)]
    pub power_supply: Option<String>,
    /// A SpiNNaker board's BMP (set for every board of a `[[spinnaker.machine]]`).
    #[serde(default)]
    pub bmp: Option<crate::bmp::BmpBinding>,
    #[serde(default)]
    pub thresholds: Option<ThresholdsConfig>,
    #[serde(default, rename = "log")]
    pub logs: Vec<LogSourceConfig>,
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeConfig>,
    /// How to throttle the device when it runs hot. Writes happen only with `[actions] enabled = true`.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// How to bring the device back when it is Offline. Writes happen only with `[actions] enabled`.
    #[serde(default)]
    pub reconnect: Option<ReconnectConfig>,
    /// The Kubernetes extended resource the device is advertised as to kubelet (see
    /// [`DeviceConfig::resource_name`] for the default); "" advertises none.
    #[serde(default)]
    pub resource: Option<String>,
    /// What Allocate hands a container, and how a vendor plugin's device id names this device.
    #[serde(default)]
    pub kubernetes: Option<crate::kubernetes::DeviceKubernetes>,
    /// Active checks the agent runs on purpose (`[[device.diagnostic]]`); only with `[diagnostics]
    /// enabled = true`.
    #[serde(default, rename = "diagnostic")]
    pub diagnostics: Vec<crate::diagnostics::DiagnosticConfig>,
}

/// The reconnect ladder, mildest step first. Steps: "vendor" (runs `command`), "driver_reset"
/// (habanalabs hard_reset), "function_reset" (PCI `reset`), "rebind" (unbind and bind the driver),
/// "remove_rescan" (remove the PCI function and rescan the bus). All but "vendor" need `pci_address`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    pub steps: Vec<ReconnectStep>,
    /// For the "vendor" step; `{id}` is replaced, e.g. ["photon-debug", "--reconnect-device", "{id}"].
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Failed attempts in a row before the circuit opens.
    #[serde(default = "three")]
    pub max_failures: u32,
    #[serde(default = "default_backoff")]
    pub backoff_initial: Period,
    #[serde(default = "default_backoff_max")]
    pub backoff_max: Period,
    /// How long an open circuit stays open before one half-open try.
    #[serde(default = "default_cooldown")]
    pub cooldown: Period,
    /// How long after a step the device must be back for the step to count as a success.
    #[serde(default = "default_settle")]
    pub settle: Period,
    /// Circuit openings before the device is declared to need a hardware inspection (and left alone).
    #[serde(default = "two")]
    pub escalate_after: u32,
}

fn three() -> u32 {
    3
}
fn two() -> u32 {
    2
}
fn default_backoff() -> Period {
    Period::from_millis(5_000)
}
fn default_backoff_max() -> Period {
    Period::from_millis(300_000)
}
fn default_cooldown() -> Period {
    Period::from_millis(600_000)
}
fn default_settle() -> Period {
    Period::from_millis(10_000)
}

/// A step of a reconnect ladder, as written in the config (`steps = ["vendor", "function_reset"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectStep {
    /// The vendor's own command (`command`).
    Vendor,
    /// habanalabs `hard_reset`.
    DriverReset,
    /// The PCI function's `reset`.
    FunctionReset,
    /// Unbind and bind the driver.
    Rebind,
    /// Remove the PCI function and rescan the bus.
    RemoveRescan,
    /// A SpiNNaker board off and on through its frame's BMP.
    PowerCycle,
}

impl ReconnectStep {
    pub const ALL: [ReconnectStep; 6] = [
        ReconnectStep::Vendor,
        ReconnectStep::DriverReset,
        ReconnectStep::FunctionReset,
        ReconnectStep::Rebind,
        ReconnectStep::RemoveRescan,
        ReconnectStep::PowerCycle,
    ];

    /// The name in the config, in events and in the `step` label.
    pub fn name(self) -> &'static str {
        match self {
            ReconnectStep::Vendor => "vendor",
            ReconnectStep::DriverReset => "driver_reset",
            ReconnectStep::FunctionReset => "function_reset",
            ReconnectStep::Rebind => "rebind",
            ReconnectStep::RemoveRescan => "remove_rescan",
            ReconnectStep::PowerCycle => "power_cycle",
        }
    }
}

impl std::fmt::Display for ReconnectStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a throttle ladder watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThrottleMetric {
    /// The hottest sensor, in Celsius.
    #[default]
    Temperature,
    /// The device's total power, in watts.
    Power,
}

/// What a log rule does with a matching line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RuleAction {
    /// Counted, and journalled as an event.
    #[default]
    #[serde(rename = "event")]
    Event,
    /// Sets the LogErrors condition.
    LogErrors,
    /// Sets the SdkError condition.
    SdkError,
}

impl RuleAction {
    /// The condition the rule sets, if it sets one.
    pub fn condition(self) -> Option<&'static str> {
        match self {
            RuleAction::Event => None,
            RuleAction::LogErrors => Some("LogErrors"),
            RuleAction::SdkError => Some("SdkError"),
        }
    }
}

/// A ladder of throttle levels. The level rises one step when the watched value stays above
/// `threshold` for `hold`, and falls one step when it stays below `threshold - hysteresis` as long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// "temperature" (the hottest sensor, Celsius) or "power" (total watts).
    #[serde(default)]
    pub metric: ThrottleMetric,
    /// Default: the device's temperature_warn (or power_max for "power").
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Default: the device's hysteresis.
    #[serde(default)]
    pub hysteresis: Option<f64>,
    /// Default: the device's min_duration. "0s" reacts at the first reading beyond the threshold.
    #[serde(default)]
    pub hold: Option<crate::duration::Hold>,
    /// Level 1 is the first entry. A file keeps the value of the highest level at or below the current
    /// one that names it; at level 0 every file has its original value back.
    #[serde(rename = "level")]
    pub levels: Vec<ThrottleLevel>,
}

/// What one level writes. Every field is optional; a level needs at least one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleLevel {
    /// class/thermal/<device>/cur_state.
    pub cooling_device: Option<CoolingStep>,
    /// class/hwmon/<chip>/power<channel>_cap, in watts (written as microwatts).
    pub hwmon_power_cap: Option<HwmonCapStep>,
    /// class/powercap/<zone>/constraint_<constraint>_power_limit_uw, in watts.
    pub powercap_limit: Option<PowercapStep>,
    /// devices/system/cpu/cpufreq/policy<policy>/scaling_max_freq, in kHz.
    pub cpufreq_max: Option<CpufreqStep>,
    /// bus/pci/devices/<pci_address>/max_power (habanalabs), in watts (written as milliwatts).
    pub habanalabs_max_power: Option<HabanaStep>,
    /// A vendor command run on entering this level; `{id}` and `{level}` are replaced.
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoolingStep {
    pub device: String,
    pub state: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwmonCapStep {
    pub chip: String,
    #[serde(default = "one")]
    pub channel: u32,
    pub watts: f64,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowercapStep {
    pub zone: String,
    #[serde(default)]
    pub constraint: u32,
    pub watts: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpufreqStep {
    pub policy: u32,
    pub khz: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HabanaStep {
    pub pci_address: String,
    pub watts: f64,
}

impl ThrottleLevel {
    /// The sysfs files this level writes, relative to the sysfs root, with the value to write.
    pub fn writes(&self) -> Vec<(String, String)> {
        let mut w = Vec::new();
        if let Some(c) = &self.cooling_device {
            w.push((format!("class/thermal/{}/cur_state", c.device), c.state.to_string()));
        }
        if let Some(h) = &self.hwmon_power_cap {
            w.push((
                format!("class/hwmon/{}/power{}_cap", h.chip, h.channel),
                format!("{}", (h.watts * 1e6).round() as u64),
            ));
        }
        if let Some(p) = &self.powercap_limit {
            w.push((
                format!("class/powercap/{}/constraint_{}_power_limit_uw", p.zone, p.constraint),
                format!("{}", (p.watts * 1e6).round() as u64),
            ));
        }
        if let Some(c) = &self.cpufreq_max {
            w.push((format!("devices/system/cpu/cpufreq/policy{}/scaling_max_freq", c.policy), c.khz.to_string()));
        }
        if let Some(h) = &self.habanalabs_max_power {
            w.push((
                format!("bus/pci/devices/{}/max_power", h.pci_address),
                format!("{}", (h.watts * 1e3).round() as u64),
            ));
        }
        w
    }
}

/// Health thresholds. A condition sets when the value stays beyond the threshold for `min_duration`
/// and clears when it stays on the good side of the threshold minus `hysteresis` for as long.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    /// Celsius: degraded above this.
    pub temperature_warn: Option<f64>,
    /// Celsius: unhealthy above this.
    pub temperature_crit: Option<f64>,
    /// Degrees (and watts, for power) a value must fall below its threshold before the condition clears.
    pub hysteresis: Option<f64>,
    /// How long a value must stay beyond a threshold (or back) before the condition changes.
    pub min_duration: Option<Period>,
    /// Watts: PowerAnomaly above this.
    pub power_max: Option<f64>,
    /// Joules per inference: PowerAnomaly above this (the runbooks' 5 mJ target).
    pub energy_per_inference_max: Option<f64>,
    /// DataStale when no reading arrived for this long.
    pub stale_after: Option<Period>,
}

/// The thresholds with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub temperature_warn: f64,
    pub temperature_crit: f64,
    pub hysteresis: f64,
    pub min_duration: std::time::Duration,
    pub power_max: Option<f64>,
    pub energy_per_inference_max: Option<f64>,
    pub stale_after: std::time::Duration,
}

/// A log file (or the kernel log) the device's health listens to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSourceConfig {
    /// A file path, or "kmsg" for the kernel ring buffer (/dev/kmsg). `{id}` is replaced by the device id.
    pub path: String,
    /// Read this much of the existing file at start; default: start at the end.
    #[serde(default)]
    pub lookback_bytes: Option<u64>,
    /// Only lines containing this text count (kmsg: e.g. the device's PCI address).
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<LogRuleConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRuleConfig {
    pub name: String,
    /// A regular expression matched against each line.
    pub pattern: crate::Pattern,
    /// "event" (counted) or a condition name (set by the rule, e.g. "LogErrors").
    #[serde(default)]
    pub action: RuleAction,
    #[serde(default)]
    pub severity: EventSeverity,
    /// Set the condition only after this many matches within `window`.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub window: Option<Period>,
    /// A line matching this clears the condition.
    #[serde(default)]
    pub clear_pattern: Option<crate::Pattern>,
    /// The condition clears after this long without a match (unless `latch`).
    #[serde(default)]
    pub quiet_period: Option<Period>,
    /// Stays set until `agentctl set-healthy`.
    #[serde(default)]
    pub latch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    Info,
    #[default]
    Warning,
    Critical,
    Fatal,
}

/// An SDK status command or a reachability check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub name: String,
    /// argv of a status command, run without a shell; `{id}` is replaced by the device id.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// host:port for a TCP connect check.
    #[serde(default)]
    pub tcp: Option<String>,
    /// host:port for a UDP check (see `udp_payload_hex`, `expect_reply`).
    #[serde(default)]
    pub udp: Option<String>,
    #[serde(default)]
    pub udp_payload_hex: Option<String>,
    #[serde(default)]
    pub expect_reply: bool,
    #[serde(default)]
    pub interval: Option<Interval>,
    #[serde(default)]
    pub timeout: Option<Timeout>,
    /// "none", "json" or "regex": how the command's output maps to readings.
    #[serde(default)]
    pub format: Option<ProbeFormat>,
    /// reading -> JSON pointer (format "json") or regex with one capture group (format "regex").
    /// Readings: temperature, power, energy, inferences, utilization, online.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// reading -> factor applied to the parsed value (e.g. 0.001 for millidegrees).
    #[serde(default)]
    pub scale: BTreeMap<String, f64>,
    /// Whether failures of this probe mean the device is offline (Offline after `offline_after`
    /// consecutive failures).
    #[serde(default = "yes")]
    pub liveness: bool,
    #[serde(default)]
    pub offline_after: Option<u32>,
}

fn yes() -> bool {
    true
}

/// How a probe command's output maps to readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeFormat {
    /// Only the exit code counts.
    None,
    /// `fields` are JSON pointers into the output.
    Json,
    /// `fields` are regular expressions with one capture group.
    Regex,
}

impl ProbeConfig {
    /// The format: the file's, else "json" when fields are given and "none" when not.
    pub fn format(&self) -> ProbeFormat {
        self.format.unwrap_or(if self.fields.is_empty() { ProbeFormat::None } else { ProbeFormat::Json })
    }
}

/// What a profile fills in for a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub kind: DeviceKind,
    pub hwmon: Option<&'static str>,
    pub power_supply: Option<&'static str>,
    pub thresholds: Thresholds,
    /// Log file template; `{id}` is the device id.
    pub log_path: Option<&'static str>,
    /// Default rules for that log: (name, pattern, condition or "event", severity).
    pub log_rules: &'static [(&'static str, &'static str, RuleAction, EventSeverity)],
    pub offline_after: u32,
}

const BASE: Thresholds = Thresholds {
    temperature_warn: 85.0,
    temperature_crit: 95.0,
    hysteresis: 3.0,
    min_duration: std::time::Duration::from_secs(10),
    power_max: None,
    energy_per_inference_max: None,
    stale_after: std::time::Duration::from_secs(60),
};

/// Lines every vendor log uses for trouble; a burst of them is LogErrors.
const COMMON_RULES: &[(&str, &str, RuleAction, EventSeverity)] = &[
    ("error", r"(?i)\b(error|fatal|exception)\b", RuleAction::LogErrors, EventSeverity::Warning),
    ("reset", r"(?i)\b(device|board|card) reset\b", RuleAction::Event, EventSeverity::Warning),
    ("thermal", r"(?i)\b(thermal throttl|over-?temperature|overheat)", RuleAction::Event, EventSeverity::Warning),
];

impl Profile {
    /// The built-in profile of a kind (devices.md describes what operators of each kind check).
    pub fn of(kind: DeviceKind) -> Profile {
        match kind {
            DeviceKind::Loihi => Profile {
                kind,
                hwmon: Some("loihi"),
                power_supply: Some("loihi2"),
                thresholds: Thresholds {
                    temperature_warn: 70.0,
                    temperature_crit: 85.0,
                    energy_per_inference_max: Some(0.005),
                    ..BASE
                },
                log_path: Some("/var/log/loihi2/system.log"),
                log_rules: COMMON_RULES,
                offline_after: 3,
            },
            DeviceKind::SpinnakerBoard => Profile {
                kind,
                hwmon: None,
                power_supply: None,
                thresholds: Thresholds { temperature_warn: 60.0, temperature_crit: 75.0, ..BASE },
                log_path: None,
                log_rules: &[],
                offline_after: 3,
            },
            DeviceKind::Photonic => Profile {
                kind,
                hwmon: None,
                power_supply: None,
                thresholds: Thresholds { temperature_warn: 55.0, temperature_crit: 70.0, hysteresis: 2.0, ..BASE },
                log_path: Some("/var/log/photon-mlir/device-{id}.log"),
                log_rules: COMMON_RULES,
                offline_after: 3,
            },
            DeviceKind::PciAccel => Profile {
                kind,
                hwmon: None,
                power_supply: None,
                thresholds: Thresholds { temperature_warn: 90.0, temperature_crit: 100.0, ..BASE },
                log_path: None,
                log_rules: &[],
                offline_after: 3,
            },
            DeviceKind::Generic => Profile {
                kind,
                hwmon: None,
                power_supply: None,
                thresholds: BASE,
                log_path: None,
                log_rules: &[],
                offline_after: 3,
            },
        }
    }
}

impl DeviceConfig {
    /// Replaces the placeholders of a diagnostic's argument ([`crate::diagnostics::PLACEHOLDERS`]) with
    /// the device's fields (absent ones become "").
    pub fn expand_placeholders(&self, arg: &str) -> String {
        arg.replace("{id}", &self.id)
            .replace("{kind}", self.kind.name())
            .replace("{pci_address}", self.pci_address.as_deref().unwrap_or(""))
            .replace("{model}", self.model.as_deref().unwrap_or(""))
    }

    pub fn profile(&self) -> Profile {
        Profile::of(self.kind)
    }

    /// The thresholds: the file's values over the profile's.
    pub fn thresholds(&self) -> Thresholds {
        let p = self.profile().thresholds;
        let Some(t) = &self.thresholds else { return p };
        Thresholds {
            temperature_warn: t.temperature_warn.unwrap_or(p.temperature_warn),
            temperature_crit: t.temperature_crit.unwrap_or(p.temperature_crit),
            hysteresis: t.hysteresis.unwrap_or(p.hysteresis),
            min_duration: t.min_duration.map_or(p.min_duration, Period::get),
            power_max: t.power_max.or(p.power_max),
            energy_per_inference_max: t.energy_per_inference_max.or(p.energy_per_inference_max),
            stale_after: t.stale_after.map_or(p.stale_after, Period::get),
        }
    }

    /// The hwmon chip to bind: the file's, else the profile's.
    pub fn hwmon_name(&self) -> Option<String> {
        self.hwmon.clone().or_else(|| self.profile().hwmon.map(str::to_owned))
    }

    pub fn power_supply_name(&self) -> Option<String> {
        self.power_supply.clone().or_else(|| self.profile().power_supply.map(str::to_owned))
    }

    /// The log sources: the file's, else the profile's default log with its default rules.
    pub fn log_sources(&self) -> Vec<LogSourceConfig> {
        if !self.logs.is_empty() {
            return self.logs.clone();
        }
        let p = self.profile();
        let Some(path) = p.log_path else { return Vec::new() };
        let rules = p
            .log_rules
            .iter()
            .filter_map(|&(name, pattern, action, severity)| {
                let condition = action != RuleAction::Event;
                Some(LogRuleConfig {
                    name: name.to_owned(),
                    pattern: crate::Pattern::new(pattern).ok()?,
                    action,
                    severity,
                    count: condition.then_some(5),
                    window: condition.then(|| Period::from_millis(60_000)),
                    clear_pattern: None,
                    quiet_period: condition.then(|| Period::from_millis(300_000)),
                    latch: false,
                })
            })
            .collect();
        vec![LogSourceConfig { path: path.replace("{id}", &self.id), lookback_bytes: None, filter: None, rules }]
    }

    /// Checks within one device; `index` locates the findings.
    pub fn validate(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        self.validate_addresses(index, out);
        self.validate_quantities(index, out);
        self.validate_thresholds(index, out);
        self.validate_log_rules(index, out);
        self.validate_reconnect(index, out);
        self.validate_throttle(index, out);
        self.validate_probes(index, out);
    }

    /// The id, the board's BMP and SC&MP addresses and slot, and the PCI address.
    fn validate_addresses(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        let at = |key: &str| vec!["device".into(), index.into(), key.into()];
        if self.id.is_empty() || !self.id.chars().all(is_id_char) {
            out.push(crate::finding::Finding {
                path: at("id"),
                message: format!("device id {:?} must be non-empty and use only letters, digits and - _ . :", self.id),
            });
        }
        if let Some(b) = &self.bmp {
            if b.bmp_addr().is_none() {
                out.push(crate::finding::Finding {
                    path: vec!["device".into(), index.into(), "bmp".into(), "address".into()],
                    message: format!("{:?} is not an IP address (\"10.11.192.0\" or \"10.11.192.0:17893\")", b.address),
                });
            }
            if b.scamp.is_some() && b.scamp_addr().is_none() {
                out.push(crate::finding::Finding {
                    path: vec!["device".into(), index.into(), "bmp".into(), "scamp".into()],
                    message: format!("{:?} is not an IP address", b.scamp.as_deref().unwrap_or("")),
                });
            }
            if b.board >= 32 {
                out.push(crate::finding::Finding {
                    path: vec!["device".into(), index.into(), "bmp".into(), "board".into()],
                    message: "board must be 0..=31".into(),
                });
            }
        }
        if let Some(a) = &self.pci_address
            && !is_pci_address(a)
        {
            out.push(crate::finding::Finding {
                path: at("pci_address"),
                message: format!("{a:?} is not a PCI address like \"0000:3b:00.0\""),
            });
        }
    }

    /// The warning below the critical temperature.
    fn validate_thresholds(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        let t = self.thresholds();
        if t.temperature_warn.is_finite() && t.temperature_crit.is_finite() && t.temperature_warn >= t.temperature_crit
        {
            out.push(crate::finding::Finding {
                path: vec!["device".into(), index.into(), "thresholds".into(), "temperature_warn".into()],
                message: format!(
                    "temperature_warn ({}) must be below temperature_crit ({})",
                    t.temperature_warn, t.temperature_crit
                ),
            });
        }
    }

    /// Log rules: unique names, a count that can be reached, no condition keys on an event.
    fn validate_log_rules(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        let mut rule_names: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (j, log) in self.logs.iter().enumerate() {
            for (k, r) in log.rules.iter().enumerate() {
                let rule_at = |key: &str| -> Vec<crate::finding::PathSeg> {
                    vec!["device".into(), index.into(), "log".into(), j.into(), "rule".into(), k.into(), key.into()]
                };
                // Matches are counted and conditions kept per (device, rule name): two rules of one name
                // would share (and reset) one another's counts.
                if let Some((j0, k0)) = rule_names.insert(r.name.as_str(), (j, k)) {
                    out.push(crate::finding::Finding {
                        path: rule_at("name"),
                        message: format!(
                            "rule name {:?} is already used by log[{j0}].rule[{k0}] of this device; rule names must be unique within a device",
                            r.name
                        ),
                    });
                }
                if r.count == Some(0) {
                    out.push(crate::finding::Finding {
                        path: rule_at("count"),
                        message: "count must be at least 1 (a rule with count 0 could never set its condition)".into(),
                    });
                }
                if r.action == RuleAction::Event
                    && (r.count.is_some() || r.clear_pattern.is_some() || r.quiet_period.is_some() || r.latch)
                {
                    out.push(crate::finding::Finding {
                        path: vec!["device".into(), index.into(), "log".into(), j.into(), "rule".into(), k.into(), "name".into()],
                        message: format!("rule {:?} is an event: count, clear_pattern, quiet_period and latch apply to conditions only", r.name),
                    });
                }
            }
        }
    }

    /// Each reconnect step has what it needs.
    fn validate_reconnect(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        if let Some(r) = &self.reconnect {
            let at = |k: &str| vec!["device".into(), index.into(), "reconnect".into(), k.into()];
            for &s in &r.steps {
                let problem = match s {
                    ReconnectStep::Vendor if r.command.as_ref().is_none_or(|c| c.is_empty()) => {
                        Some("step \"vendor\" needs `command`".to_owned())
                    }
                    ReconnectStep::PowerCycle if self.bmp.is_none() => Some(
                        "step \"power_cycle\" needs the board's BMP (`bmp`, or a [[spinnaker.machine]])".to_owned(),
                    ),
                    ReconnectStep::Vendor | ReconnectStep::PowerCycle => None,
                    _ if self.pci_address.is_none() => Some(format!("step \"{s}\" needs the device's pci_address")),
                    _ => None,
                };
                if let Some(message) = problem {
                    out.push(crate::finding::Finding { path: at("steps"), message });
                }
            }
            if r.steps.is_empty() || r.max_failures == 0 || r.escalate_after == 0 {
                out.push(crate::finding::Finding {
                    path: at("steps"),
                    message: "a reconnect needs at least one step, max_failures >= 1 and escalate_after >= 1".into(),
                });
            }
        }
    }

    /// Each throttle level writes or runs something, inside the sysfs root.
    fn validate_throttle(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        if let Some(t) = &self.throttle {
            let at = |k: &str| vec!["device".into(), index.into(), "throttle".into(), k.into()];
            if t.levels.is_empty() {
                out.push(crate::finding::Finding {
                    path: at("metric"),
                    message: "a throttle needs at least one [[device.throttle.level]]".into(),
                });
            }
            for (j, l) in t.levels.iter().enumerate() {
                if l.writes().is_empty() && l.command.is_none() {
                    out.push(crate::finding::Finding {
                        path: vec!["device".into(), index.into(), "throttle".into(), "level".into(), j.into()],
                        message: format!("throttle level {} writes nothing and runs nothing", j + 1),
                    });
                }
                for (path, _) in l.writes() {
                    if path.split('/').any(|c| c == ".." || c.is_empty()) {
                        out.push(crate::finding::Finding {
                            path: vec!["device".into(), index.into(), "throttle".into(), "level".into(), j.into()],
                            message: format!("{path:?} must stay inside the sysfs root"),
                        });
                    }
                }
            }
        }
    }

    /// Probes: unique names, one kind each, known readings and well-formed fields.
    fn validate_probes(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        let mut probe_names: BTreeMap<&str, usize> = BTreeMap::new();
        for (j, p) in self.probes.iter().enumerate() {
            let probe_at = |key: &str| -> Vec<crate::finding::PathSeg> {
                vec!["device".into(), index.into(), "probe".into(), j.into(), key.into()]
            };
            // Results are kept per (device, probe name): two probes of one name overwrite each other.
            if let Some(first) = probe_names.insert(p.name.as_str(), j) {
                out.push(crate::finding::Finding {
                    path: probe_at("name"),
                    message: format!("probe name {:?} is already used by probe[{first}] of this device", p.name),
                });
            }
            if let Some(hex) = &p.udp_payload_hex {
                if p.udp.is_none() {
                    out.push(crate::finding::Finding {
                        path: probe_at("udp_payload_hex"),
                        message: "udp_payload_hex applies to udp probes only".into(),
                    });
                } else if let Err(e) = decode_hex(hex) {
                    out.push(crate::finding::Finding { path: probe_at("udp_payload_hex"), message: e.to_string() });
                }
            }
            for (reading, field) in &p.fields {
                let problem = match p.format() {
                    ProbeFormat::Regex => field_regex_problem(field),
                    ProbeFormat::Json if !field.is_empty() && !field.starts_with('/') => {
                        Some("is not a JSON pointer (it starts with \"/\", e.g. \"/boards/0/temp_c\")".to_owned())
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    out.push(crate::finding::Finding {
                        path: vec![
                            "device".into(),
                            index.into(),
                            "probe".into(),
                            j.into(),
                            "fields".into(),
                            reading.as_str().into(),
                        ],
                        message: format!("field {reading:?} {problem}"),
                    });
                }
            }
            let kinds = [p.command.is_some(), p.tcp.is_some(), p.udp.is_some()].iter().filter(|b| **b).count();
            if kinds != 1 {
                out.push(crate::finding::Finding {
                    path: vec!["device".into(), index.into(), "probe".into(), j.into(), "name".into()],
                    message: format!("probe {:?} needs exactly one of command, tcp or udp", p.name),
                });
            }
            if p.command.as_ref().is_some_and(|c| c.is_empty()) {
                out.push(crate::finding::Finding {
                    path: vec!["device".into(), index.into(), "probe".into(), j.into(), "command".into()],
                    message: "command must name a program".into(),
                });
            }
            for reading in p.fields.keys() {
                if !["temperature", "power", "energy", "inferences", "utilization", "online"]
                    .contains(&reading.as_str())
                {
                    out.push(crate::finding::Finding {
                        path: vec!["device".into(), index.into(), "probe".into(), j.into(), "fields".into()],
                        message: format!(
                            "unknown reading {reading:?}; use temperature, power, energy, inferences, utilization or online"
                        ),
                    });
                }
            }
        }
    }
}

/// A bad `udp_payload_hex`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("udp_payload_hex has an odd number of hex digits")]
    OddLength,
    #[error("udp_payload_hex has a character that is not a hex digit at position {0}")]
    NotHex(usize),
}

/// Decodes `udp_payload_hex`: pairs of hex digits, whitespace between them ignored ("00 ff 10").
pub fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let digits: Vec<(usize, u8)> = s
        .chars()
        .enumerate()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| c.to_digit(16).map(|d| (i, d as u8)).ok_or(HexError::NotHex(i + 1)))
        .collect::<Result<_, _>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err(HexError::OddLength);
    }
    Ok(digits.chunks(2).map(|pair| (pair[0].1 << 4) | pair[1].1).collect())
}

/// Why a probe's regex field pattern cannot work: it must compile and have exactly one capture group.
fn field_regex_problem(pattern: &str) -> Option<String> {
    match regex::Regex::new(pattern) {
        Err(e) => Some(format!("is not a valid regular expression: {}", e.to_string().lines().last().unwrap_or(""))),
        Ok(r) if r.captures_len() != 2 => {
            Some(format!("needs exactly one capture group (the value), has {}", r.captures_len() - 1))
        }
        Ok(_) => None,
    }
}

/// Physical bounds of configured quantities: a threshold outside what a sensor can report is never
/// reached, and a NaN compares false with everything (a device at 95 °C would stay healthy).
pub const TEMPERATURE_RANGE_C: std::ops::RangeInclusive<f64> = -60.0..=250.0;
/// Watts a throttle level may write or a power threshold may name (1 MW: no accelerator card is near).
pub const MAX_WATTS: f64 = 1e6;

impl DeviceConfig {
    fn validate_quantities(&self, index: usize, out: &mut Vec<crate::finding::Finding>) {
        let mut check = |path: Vec<crate::finding::PathSeg>, value: f64, what: Quantity| {
            let key = match path.last() {
                Some(crate::finding::PathSeg::Key(k)) => k.clone(),
                _ => String::new(),
            };
            let problem = if !value.is_finite() {
                Some(format!("{key} must be a finite number"))
            } else {
                match what {
                    Quantity::Celsius if !TEMPERATURE_RANGE_C.contains(&value) => {
                        Some(format!("{key} must be between -60 and 250 °C"))
                    }
                    Quantity::NonNegative if value < 0.0 => Some(format!("{key} must not be negative")),
                    Quantity::Positive if value <= 0.0 => Some(format!("{key} must be greater than 0")),
                    Quantity::Watts if value <= 0.0 || value > MAX_WATTS => {
                        Some(format!("{key} must be greater than 0 and at most {MAX_WATTS} W"))
                    }
                    _ => None,
                }
            };
            if let Some(message) = problem {
                out.push(crate::finding::Finding { path, message });
            }
        };
        let at = |keys: &[&str]| -> Vec<crate::finding::PathSeg> {
            let mut p: Vec<crate::finding::PathSeg> = vec!["device".into(), index.into()];
            p.extend(keys.iter().map(|k| (*k).into()));
            p
        };
        if let Some(t) = &self.thresholds {
            for (key, value, what) in [
                ("temperature_warn", t.temperature_warn, Quantity::Celsius),
                ("temperature_crit", t.temperature_crit, Quantity::Celsius),
                ("hysteresis", t.hysteresis, Quantity::NonNegative),
                ("power_max", t.power_max, Quantity::Watts),
                ("energy_per_inference_max", t.energy_per_inference_max, Quantity::Positive),
            ] {
                if let Some(v) = value {
                    check(at(&["thresholds", key]), v, what);
                }
            }
        }
        if let Some(t) = &self.throttle {
            let what = match t.metric {
                ThrottleMetric::Power => Quantity::Watts,
                ThrottleMetric::Temperature => Quantity::Celsius,
            };
            if let Some(v) = t.threshold {
                check(at(&["throttle", "threshold"]), v, what);
            }
            if let Some(v) = t.hysteresis {
                check(at(&["throttle", "hysteresis"]), v, Quantity::NonNegative);
            }
            for (j, l) in t.levels.iter().enumerate() {
                let mut level = |step: &str, watts: f64| {
                    let mut p = at(&["throttle", "level"]);
                    p.extend([j.into(), step.into(), "watts".into()]);
                    check(p, watts, Quantity::Watts);
                };
                if let Some(h) = &l.hwmon_power_cap {
                    level("hwmon_power_cap", h.watts);
                }
                if let Some(p) = &l.powercap_limit {
                    level("powercap_limit", p.watts);
                }
                if let Some(h) = &l.habanalabs_max_power {
                    level("habanalabs_max_power", h.watts);
                }
            }
        }
        for (j, p) in self.probes.iter().enumerate() {
            for (reading, factor) in &p.scale {
                let mut path = at(&["probe"]);
                path.extend([j.into(), "scale".into(), reading.as_str().into()]);
                check(path, *factor, Quantity::Any);
            }
        }
    }
}

/// What a configured number measures, for its bounds.
#[derive(Clone, Copy)]
enum Quantity {
    Celsius,
    Watts,
    NonNegative,
    Positive,
    Any,
}

/// Whether `s` looks like "DDDD:BB:DD.F".
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter().enumerate().all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

pub use crate::id::is_id_char;

/// A name found by discovery (a driver name, an hwmon chip's `name` file) as it may appear in a device
/// id: every character [`is_id_char`] refuses becomes `_`, one per character, so `my accel` is
/// `my_accel`; an empty name is `_`. The raw name is kept beside the id for people to read.
pub fn addressable_id(name: &str) -> String {
    let id: String = name.chars().map(|c| if is_id_char(c) { c } else { '_' }).collect();
    if id.is_empty() { "_".to_owned() } else { id }
}

/// Resolves `{id}` in a path template.
pub fn expand(template: &str, id: &str) -> PathBuf {
    PathBuf::from(template.replace("{id}", id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(kind: DeviceKind) -> DeviceConfig {
        DeviceConfig {
            id: "d0".into(),
            kind,
            model: None,
            pci_address: None,
            hwmon: None,
            thermal_zone: None,
            power_supply: None,
            bmp: None,
            thresholds: None,
            logs: vec![],
            probes: vec![],
            throttle: None,
            reconnect: None,
            resource: None,
            kubernetes: None,
            diagnostics: Vec::new(),
        }
    }

    #[test]
    fn the_file_overrides_the_profile_key_by_key() {
        let mut d = device(DeviceKind::Loihi);
        assert_eq!(d.thresholds().temperature_warn, 70.0);
        assert_eq!(d.thresholds().energy_per_inference_max, Some(0.005));
        d.thresholds = Some(ThresholdsConfig { temperature_warn: Some(65.0), ..Default::default() });
        assert_eq!(d.thresholds().temperature_warn, 65.0);
        assert_eq!(d.thresholds().temperature_crit, 85.0, "the rest still comes from the profile");
        assert_eq!(d.hwmon_name().as_deref(), Some("loihi"));
        assert_eq!(d.power_supply_name().as_deref(), Some("loihi2"));
    }

    #[test]
    fn discovered_names_become_ids_a_declared_device_could_have() {
        assert_eq!(addressable_id("habanalabs"), "habanalabs");
        assert_eq!(addressable_id("my accel"), "my_accel");
        assert_eq!(addressable_id("odd/näme?#"), "odd_n_me__");
        assert_eq!(addressable_id("a\nb\"c"), "a_b_c");
        assert_eq!(addressable_id(""), "_");
        let mut d = device(DeviceKind::PciAccel);
        d.id = format!("{}-0000:3b:00.0", addressable_id("my accel\t\u{1F600}"));
        let mut findings = Vec::new();
        d.validate(0, &mut findings);
        assert!(findings.iter().all(|f| !f.message.contains("device id")), "{findings:?}");
    }

    #[test]
    fn profile_log_paths_expand_the_device_id() {
        let mut d = device(DeviceKind::Photonic);
        d.id = "photon1".into();
        let logs = d.log_sources();
        assert_eq!(logs[0].path, "/var/log/photon-mlir/device-photon1.log");
        assert!(logs[0].rules.iter().any(|r| r.action == RuleAction::LogErrors && r.count == Some(5)));
        assert!(device(DeviceKind::PciAccel).log_sources().is_empty());
    }
}
