//! The configuration schema. Top-level keys are fixed by DESIGN.md; every table rejects unknown keys so a
//! typo is an error with a suggestion rather than a silently ignored setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::device::DeviceConfig;
use crate::duration::{Interval, Period, Timeout};
pub use crate::finding::{Finding, PathSeg};
use crate::pattern::{Filter, Pattern};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/accel-agent/agent.toml";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9860";
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/accel-agent";
pub const DEFAULT_SOCKET: &str = "/run/accel-agent/agent.sock";
pub const DEFAULT_POLL_INTERVAL: Interval = Interval::from_millis(5_000);
/// A read that takes longer than this is treated as hung, unless a section sets its own timeout.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the read-only HTTP endpoint (/metrics, /health, /api/v1, /).
    pub listen: SocketAddr,
    /// Root of the sysfs tree every sysfs reader and writer works under.
    pub sysfs_root: PathBuf,
    /// Where the event journal and saved original values live.
    pub state_dir: PathBuf,
    /// Unix socket of the control API used by agentctl.
    pub socket: PathBuf,
    /// Default interval for every source; sections may set their own.
    pub poll_interval: Interval,
    pub collectors: Collectors,
    pub actions: Actions,
    /// Devices found without configuration: accel class devices and hwmon chips on PCI devices.
    pub discovery: Discovery,
    /// Who may change things through the control socket.
    pub control: Control,
    /// Connection caps of the HTTP endpoint.
    pub http: Http,
    /// SpiNNaker machines: every board becomes a `spinnaker-board` device bound to its BMP.
    pub spinnaker: crate::spinnaker::Spinnaker,
    /// What each device's recent readings and state changes are kept for (the plots and the history API).
    pub history: History,
    /// The kubelet device plugin and pod attribution; off unless enabled.
    pub kubernetes: crate::kubernetes::Kubernetes,
    /// Recurring maintenance windows (`[[maintenance.window]]`).
    pub maintenance: crate::maintenance::Maintenance,
    /// Whether diagnostics may run, and how many at once; off unless enabled.
    pub diagnostics: crate::diagnostics::Diagnostics,
    /// Devices declared in the file (`[[device]]`).
    #[serde(rename = "device")]
    pub devices: Vec<DeviceConfig>,
}

/// Finding devices that are not declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discovery {
    /// Monitor every `accel` class device and every hwmon chip under a PCI accelerator not already
    /// bound to a declared device.
    pub enabled: bool,
}

/// The control socket's authorisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// Members of this group (by name, or a numeric gid) may use agentctl's mutating verbs; root always
    /// may. The socket file gets this group and mode 0660, so only they can connect at all.
    pub group: String,
}

pub const DEFAULT_CONTROL_GROUP: &str = "accel-agent";

impl Default for Control {
    fn default() -> Self {
        Control { group: DEFAULT_CONTROL_GROUP.to_owned() }
    }
}

/// Connection caps of the HTTP endpoint, so that no client, and no number of clients, can take the
/// descriptors the agent needs for its own work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Connections held at once, all clients together. Lowered at start and on reload if the open-file
    /// limit cannot hold it beside everything else.
    pub max_connections: u32,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: u32,
}

pub const DEFAULT_HTTP_MAX_CONNECTIONS: u32 = 1024;
pub const DEFAULT_HTTP_MAX_CONNECTIONS_PER_ADDRESS: u32 = 256;

impl Default for Http {
    fn default() -> Self {
        Http {
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_HTTP_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// How long a history span may be: 1 min .. 24 h. The memory it takes grows with it (docs/performance.md).
pub type HistorySpan = crate::duration::BoundedDuration<60_000, 86_400_000>;

/// Each device's recent readings and state changes, kept in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct History {
    /// How far back the history reaches; samples are kept at the poll interval's resolution.
    pub span: HistorySpan,
}

pub const DEFAULT_HISTORY_SPAN: HistorySpan = HistorySpan::from_millis(3_600_000);

impl Default for History {
    fn default() -> Self {
        History { span: DEFAULT_HISTORY_SPAN }
    }
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery { enabled: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            sysfs_root: PathBuf::from(DEFAULT_SYSFS_ROOT),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            socket: PathBuf::from(DEFAULT_SOCKET),
            poll_interval: DEFAULT_POLL_INTERVAL,
            collectors: Collectors::default(),
            actions: Actions::default(),
            discovery: Discovery::default(),
            control: Control::default(),
            http: Http::default(),
            spinnaker: crate::spinnaker::Spinnaker::default(),
            history: History::default(),
            kubernetes: crate::kubernetes::Kubernetes::default(),
            maintenance: crate::maintenance::Maintenance::default(),
            diagnostics: crate::diagnostics::Diagnostics::default(),
            devices: Vec::new(),
        }
    }
}

/// How often collectors re-discover their objects unless `[collectors] rediscover_interval` says otherwise.
pub const DEFAULT_REDISCOVER_INTERVAL: Period = Period::from_millis(60_000);
/// Attribute files kept open for re-reading unless `[collectors] max_open_files` says otherwise.
pub const DEFAULT_MAX_OPEN_FILES: u32 = 4096;

/// The host sysfs collectors, one section each, and what they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Collectors {
    /// How often each collector lists and opens its objects again and re-reads the attributes that change
    /// only on hot-plug or a driver reload (names, labels, limits such as `temp1_crit`). A change in a
    /// class directory's listing triggers it at once.
    pub rediscover_interval: Period,
    /// Attribute files all collectors together keep open to re-read with one `pread` each. Beyond it a
    /// file is opened and closed on every read (slower, same values); 0 keeps none open.
    pub max_open_files: u32,
    pub hwmon: HwmonSection,
    pub thermal_zone: Section,
    pub cooling_device: Section,
    pub power_supply: Section,
    pub powercap: Section,
    pub pci_aer: PciAerSection,
    pub accel: Section,
    pub resources: ResourcesSection,
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors {
            rediscover_interval: DEFAULT_REDISCOVER_INTERVAL,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            hwmon: HwmonSection::default(),
            thermal_zone: Section::default(),
            cooling_device: Section::default(),
            power_supply: Section::default(),
            powercap: Section::default(),
            pci_aer: PciAerSection::default(),
            accel: Section::default(),
            resources: ResourcesSection::default(),
        }
    }
}

/// Host resources (CPU, memory, load, filesystems, disks, network) and the agent's own process, from
/// procfs and statvfs. The `*_exclude` patterns replace the defaults (pseudo filesystems, partitions and
/// loop devices, `lo`) when set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesSection {
    pub enabled: bool,
    pub interval: Option<Interval>,
    pub timeout: Option<Timeout>,
    /// Where procfs is mounted ("/host/proc" in a container that sees the host's).
    pub proc_root: PathBuf,
    /// Prefix for the mount points given to statvfs ("/host" when the host's root is mounted there).
    pub rootfs: PathBuf,
    pub fs_types_exclude: Option<Pattern>,
    pub mount_points_exclude: Option<Pattern>,
    pub disk_devices_exclude: Option<Pattern>,
    pub network_devices_exclude: Option<Pattern>,
}

impl Default for ResourcesSection {
    fn default() -> Self {
        ResourcesSection {
            enabled: true,
            interval: None,
            timeout: None,
            proc_root: PathBuf::from("/proc"),
            rootfs: PathBuf::from("/"),
            fs_types_exclude: None,
            mount_points_exclude: None,
            disk_devices_exclude: None,
            network_devices_exclude: None,
        }
    }
}

/// Settings shared by every collector. `include`/`exclude` match the collector's object name: the zone
/// type for thermal_zone, the device type for cooling_device, the supply name for power_supply, the zone
/// name (e.g. "package-0") for powercap and the PCI address for pci_aer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Section {
    pub enabled: bool,
    pub interval: Option<Interval>,
    pub timeout: Option<Timeout>,
    pub include: Option<Pattern>,
    pub exclude: Option<Pattern>,
}

impl Default for Section {
    fn default() -> Self {
        Section { enabled: true, interval: None, timeout: None, include: None, exclude: None }
    }
}

/// PCIe AER takes the common keys (`include`/`exclude` match the PCI address) and how much per-error
/// detail to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PciAerSection {
    pub enabled: bool,
    pub interval: Option<Interval>,
    pub timeout: Option<Timeout>,
    pub include: Option<Pattern>,
    pub exclude: Option<Pattern>,
    pub per_error: AerPerError,
}

impl Default for PciAerSection {
    fn default() -> Self {
        PciAerSection {
            enabled: true,
            interval: None,
            timeout: None,
            include: None,
            exclude: None,
            per_error: AerPerError::default(),
        }
    }
}

/// Which PCI devices get the per-error AER breakdown (`accel_pci_aer_errors_total`); every device always
/// has its per-severity totals (`accel_pci_aer_device_errors_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AerPerError {
    /// Accelerators (PCI class 0x12, the accel class, configured `pci_address`es), the bridges above
    /// them, and any device once one of its counters is non-zero.
    #[default]
    Relevant,
    /// Every device.
    All,
    /// No device.
    None,
}

/// What the PCI AER reader needs beyond the common settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciAerSettings {
    pub per_error: AerPerError,
    /// The `pci_address`es of declared devices: accelerators whatever their PCI class.
    pub device_addresses: Vec<String>,
}

/// hwmon filters by chip label (e.g. "platform_coretemp_0") and by "chip;sensor" (e.g.
/// "platform_coretemp_0;temp1"), as node_exporter's --collector.hwmon.{chip,sensor}-{include,exclude} do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HwmonSection {
    pub enabled: bool,
    pub interval: Option<Interval>,
    pub timeout: Option<Timeout>,
    pub chip_include: Option<Pattern>,
    pub chip_exclude: Option<Pattern>,
    pub sensor_include: Option<Pattern>,
    pub sensor_exclude: Option<Pattern>,
}

impl Default for HwmonSection {
    fn default() -> Self {
        HwmonSection {
            enabled: true,
            interval: None,
            timeout: None,
            chip_include: None,
            chip_exclude: None,
            sensor_include: None,
            sensor_exclude: None,
        }
    }
}

/// Writes to the machine (throttling, reconnects) and hooks. Off unless configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Actions {
    pub enabled: bool,
    /// Log and record what would be written, write nothing.
    pub dry_run: bool,
    /// Commands run when a device's state changes (`[[actions.hook]]`).
    #[serde(rename = "hook")]
    pub hooks: Vec<Hook>,
}

/// A command run when a device enters one of the `on` states, e.g. drain the node when a device becomes
/// unhealthy and undrain it when it is healthy again. `{device}`, `{state}` and `{previous}` in the argv
/// are replaced; ACCEL_DEVICE, ACCEL_STATE and ACCEL_PREVIOUS_STATE are set. No shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// States that trigger it: healthy, degraded, unhealthy, unknown, maintenance.
    pub on: Vec<String>,
    pub command: Vec<String>,
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// The host collectors, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorKind {
    Hwmon,
    ThermalZone,
    CoolingDevice,
    PowerSupply,
    Powercap,
    PciAer,
    Accel,
    Resources,
}

impl CollectorKind {
    pub const ALL: [CollectorKind; 8] = [
        CollectorKind::Hwmon,
        CollectorKind::ThermalZone,
        CollectorKind::CoolingDevice,
        CollectorKind::PowerSupply,
        CollectorKind::Powercap,
        CollectorKind::PciAer,
        CollectorKind::Accel,
        CollectorKind::Resources,
    ];

    /// The section name under [collectors] and the `collector` label value.
    pub fn name(self) -> &'static str {
        match self {
            CollectorKind::Hwmon => "hwmon",
            CollectorKind::ThermalZone => "thermal_zone",
            CollectorKind::CoolingDevice => "cooling_device",
            CollectorKind::PowerSupply => "power_supply",
            CollectorKind::Powercap => "powercap",
            CollectorKind::PciAer => "pci_aer",
            CollectorKind::Accel => "accel",
            CollectorKind::Resources => "resources",
        }
    }
}

/// A collector's settings with the defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorSettings {
    pub kind: CollectorKind,
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// Filters the collector's object names (chips, zones, supplies, addresses).
    pub filter: Filter,
    /// hwmon only: filters "chip;sensor".
    pub sensor_filter: Filter,
    /// resources only: where to read and what to skip.
    pub resources: Option<ResourcesSection>,
    /// pci_aer only: which devices get the per-error breakdown.
    pub pci_aer: Option<PciAerSettings>,
    /// How often objects are re-discovered and static attributes re-read.
    pub rediscover_interval: Duration,
}

impl Config {
    pub fn collector(&self, kind: CollectorKind) -> CollectorSettings {
        let c = &self.collectors;
        let (enabled, interval, timeout, filter, sensor_filter) = match kind {
            CollectorKind::Hwmon => {
                let h = &c.hwmon;
                (
                    h.enabled,
                    h.interval,
                    h.timeout,
                    Filter::new(h.chip_include.clone(), h.chip_exclude.clone()),
                    Filter::new(h.sensor_include.clone(), h.sensor_exclude.clone()),
                )
            }
            CollectorKind::Resources => {
                let r = &c.resources;
                (r.enabled, r.interval, r.timeout, Filter::default(), Filter::default())
            }
            CollectorKind::PciAer => {
                let a = &c.pci_aer;
                let filter = Filter::new(a.include.clone(), a.exclude.clone());
                (a.enabled, a.interval, a.timeout, filter, Filter::default())
            }
            other => {
                let s = self.section(other);
                (s.enabled, s.interval, s.timeout, Filter::new(s.include.clone(), s.exclude.clone()), Filter::default())
            }
        };
        let interval = interval.unwrap_or(self.poll_interval).get();
        // A read may not outlive its poll: otherwise a slow source would always be in flight.
        let timeout = timeout.map(Timeout::get).unwrap_or(DEFAULT_READ_TIMEOUT).min(interval);
        let resources = (kind == CollectorKind::Resources).then(|| c.resources.clone());
        let pci_aer = (kind == CollectorKind::PciAer).then(|| PciAerSettings {
            per_error: c.pci_aer.per_error,
            device_addresses: self.devices.iter().filter_map(|d| d.pci_address.clone()).collect(),
        });
        let rediscover_interval = c.rediscover_interval.get();
        CollectorSettings {
            kind,
            enabled,
            interval,
            timeout,
            filter,
            sensor_filter,
            resources,
            pci_aer,
            rediscover_interval,
        }
    }

    fn section(&self, kind: CollectorKind) -> &Section {
        let c = &self.collectors;
        match kind {
            CollectorKind::ThermalZone => &c.thermal_zone,
            CollectorKind::CoolingDevice => &c.cooling_device,
            CollectorKind::PowerSupply => &c.power_supply,
            CollectorKind::Powercap => &c.powercap,
            CollectorKind::Accel => &c.accel,
            CollectorKind::Hwmon | CollectorKind::Resources | CollectorKind::PciAer => {
                unreachable!("these have their own section types")
            }
        }
    }

    /// Checks that span several keys. Each finding names the key path it is about, so the loader can
    /// point at the line.
    pub fn validate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        self.validate_collectors(&mut out);
        self.validate_http(&mut out);
        self.validate_hooks(&mut out);
        for (i, m) in self.spinnaker.machines.iter().enumerate() {
            m.validate(i, &mut out);
        }
        if !(1..=10).contains(&self.spinnaker.tries) {
            out.push(Finding {
                path: vec!["spinnaker".into(), "tries".into()],
                message: "tries must be 1..=10".into(),
            });
        }
        self.validate_devices(&mut out);
        crate::device_kubernetes::validate_vendor_bindings(&self.devices, &mut out);
        self.kubernetes.validate(&mut out);
        self.maintenance.validate(&self.devices, &self.spinnaker.machines, self.discovery.enabled, &mut out);
        self.diagnostics.validate(&mut out);
        self.validate_paths(&mut out);
        out
    }

    /// A collector's timeout may not outlive its poll.
    fn validate_collectors(&self, out: &mut Vec<Finding>) {
        for kind in CollectorKind::ALL {
            let (interval, timeout) = match kind {
                CollectorKind::Hwmon => (self.collectors.hwmon.interval, self.collectors.hwmon.timeout),
                CollectorKind::Resources => (self.collectors.resources.interval, self.collectors.resources.timeout),
                CollectorKind::PciAer => (self.collectors.pci_aer.interval, self.collectors.pci_aer.timeout),
                k => (self.section(k).interval, self.section(k).timeout),
            };
            let interval = interval.unwrap_or(self.poll_interval);
            if let Some(t) = timeout
                && t.get() > interval.get()
            {
                out.push(Finding {
                    path: vec!["collectors".into(), kind.name().into(), "timeout".into()],
                    message: format!(
                        "timeout {t} is longer than the interval {interval}; a read may not outlive its poll"
                    ),
                });
            }
        }
    }

    /// A cap of 0 would refuse every scrape.
    fn validate_http(&self, out: &mut Vec<Finding>) {
        for (key, value) in [
            ("max_connections", self.http.max_connections),
            ("max_connections_per_address", self.http.max_connections_per_address),
        ] {
            if value == 0 {
                out.push(Finding {
                    path: vec!["http".into(), key.into()],
                    message: format!("{key} must be at least 1 (0 would refuse every connection)"),
                });
            }
        }
    }

    /// Each hook's states are states and its command names a program.
    fn validate_hooks(&self, out: &mut Vec<Finding>) {
        for (i, h) in self.actions.hooks.iter().enumerate() {
            let at = |k: &str| vec!["actions".into(), "hook".into(), i.into(), k.into()];
            for s in &h.on {
                if !["healthy", "degraded", "unhealthy", "unknown", "maintenance"].contains(&s.as_str()) {
                    out.push(Finding {
                        path: at("on"),
                        message: format!(
                            "unknown state {s:?}; use healthy, degraded, unhealthy, unknown or maintenance"
                        ),
                    });
                }
            }
            if h.command.is_empty() {
                out.push(Finding { path: at("command"), message: "command must name a program".into() });
            }
        }
    }

    /// Unique ids, no two devices taking each other's hwmon chips, and each device's own checks.
    fn validate_devices(&self, out: &mut Vec<Finding>) {
        let mut seen = std::collections::HashMap::new();
        // A device with a pci_address binds only the chips at that address; one without binds its hwmon
        // chips by name, so two such devices naming the same chip would both bind every chip of that name.
        let mut by_name: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, d) in self.devices.iter().enumerate() {
            if d.pci_address.is_none()
                && let Some(name) = d.hwmon_name()
                && let Some(first) = by_name.insert(name.clone(), i)
            {
                // The kind's default chip name when no hwmon key is written.
                let key = if d.hwmon.is_some() { "hwmon" } else { "kind" };
                out.push(Finding {
                    path: vec!["device".into(), i.into(), key.into()],
                    message: format!(
                        "device {:?} and device {first} both bind hwmon chips named {name:?} and neither has a \
                         pci_address, so each would take the other's chips; set pci_address on both",
                        d.id
                    ),
                });
            }
            if let Some(first) = seen.insert(d.id.as_str(), i) {
                out.push(Finding {
                    path: vec!["device".into(), i.into(), "id".into()],
                    message: format!("device id {:?} is already used by device {first}", d.id),
                });
            }
            d.validate(i, out);
            crate::device_kubernetes::validate_device(d, i, out);
            let window_problem = |name: &str| self.maintenance.window_problem(name, &d.id);
            let facts = crate::diagnostics::DeviceFacts {
                index: i,
                has_pci_address: d.pci_address.is_some(),
                window_problem: &window_problem,
            };
            crate::diagnostics::validate_device(&d.diagnostics, &facts, out);
        }
    }

    /// The paths the agent works under are absolute: a relative one would depend on its working directory.
    fn validate_paths(&self, out: &mut Vec<Finding>) {
        for (key, path) in [("sysfs_root", &self.sysfs_root), ("state_dir", &self.state_dir), ("socket", &self.socket)]
        {
            if !path.is_absolute() {
                out.push(Finding {
                    path: vec![key.into()],
                    message: format!("{} must be an absolute path", path.display()),
                });
            }
        }
    }
}

impl Config {
    /// Adds a device for every board of every SpiNNaker machine. A board declared as a `[[device]]`
    /// with the same id keeps its settings and gets the board's BMP binding if it has none.
    pub fn expand_spinnaker(&mut self) {
        for m in &self.spinnaker.machines {
            for board in m.board_devices() {
                match self.devices.iter_mut().find(|d| d.id == board.id) {
                    Some(declared) => {
                        if declared.bmp.is_none() {
                            declared.bmp = board.bmp;
                        }
                    }
                    None => self.devices.push(board),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9860");
        assert_eq!(c.sysfs_root, PathBuf::from("/sys"));
        assert_eq!(c.poll_interval.get(), Duration::from_secs(5));
        assert!(!c.actions.enabled);
        let h = c.collector(CollectorKind::Hwmon);
        assert!(h.enabled);
        assert_eq!(h.interval, Duration::from_secs(5));
        assert_eq!(h.timeout, Duration::from_secs(2));
    }

    #[test]
    fn timeout_is_capped_by_a_short_interval() {
        let mut c = Config::default();
        c.collectors.powercap.interval = Some("500ms".parse().unwrap());
        assert_eq!(c.collector(CollectorKind::Powercap).timeout, Duration::from_millis(500));
    }
}
