//! Every metric family the agent exports, declared once: name, type, help and label names.
//!
//! `Families` (the export module) only takes samples of a family declared here, so a family cannot
//! be invented at a call site, and `agent/tests/metric_catalogue.rs` checks this list against
//! docs/metrics.md (and docs/resources.md, which it links to for the host-resource families) and against
//! the contract's metric catalogue (docs/design-contract-metrics.txt, a copy of `../shared/DESIGN.md`'s).
//!
//! The agent's own families (devices, actions, SpiNNaker, self-metrics) live here too, although the agent
//! produces them: the agent depends on this crate, so this is the one place both can see.
//!
//! A few node_exporter twins take their names from sysfs file names (`temp1_crit_alarm` ->
//! `accel_hwmon_temp_crit_alarm_celsius`); those are declared as a [`Pattern`]: a name prefix, the labels
//! and how the rest of the name is formed.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    /// The family name ends in `_total`.
    Counter,
}

/// One metric family.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// The sample name; counters end in `_total`.
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    /// The label names every sample has, in the order they are written.
    pub labels: &'static [&'static str],
    /// Labels a sample may add after `labels` (in this order), when the value exists; only
    /// `accel_power_supply_info`, whose labels are the supply's text attributes, has any.
    pub optional_labels: &'static [&'static str],
}

/// A group of families whose names are built from sysfs file names, like node_exporter's.
#[derive(Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Every name of the group starts with this.
    pub prefix: &'static str,
    /// ... and ends with this.
    pub suffix: &'static str,
    /// How the group is written in docs/metrics.md, e.g. `accel_rapl_<name>_joules_total`.
    pub doc: &'static str,
    /// The label names every sample has, in order.
    pub labels: &'static [&'static str],
}

impl Spec {
    /// Whether `keys` are this family's label names: `labels`, then any of `optional_labels` in order.
    pub fn accepts<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> bool {
        let mut keys = keys.into_iter();
        for want in self.labels {
            if keys.next() != Some(*want) {
                return false;
            }
        }
        let mut optional = self.optional_labels.iter();
        keys.all(|k| optional.any(|o| *o == k))
    }
}

impl Pattern {
    /// Whether `name` belongs to the group (and is not a family declared on its own). Readers build these
    /// names from file names, so this also checks it is a valid metric name.
    pub fn matches(&self, name: &str) -> bool {
        name.len() > self.prefix.len() + self.suffix.len()
            && name.starts_with(self.prefix)
            && name.ends_with(self.suffix)
            && is_metric_name(name)
            && spec(name).is_none()
    }

    pub fn accepts<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> bool {
        keys.into_iter().eq(self.labels.iter().copied())
    }
}

/// Whether `name` is a metric name in both exposition formats: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// The family declared as `name`, if any.
pub fn spec(name: &str) -> Option<&'static Spec> {
    ALL.iter().copied().find(|s| s.name == name)
}

const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Spec {
    Spec { name, kind: MetricKind::Gauge, help, labels, optional_labels: &[] }
}

const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Spec {
    Spec { name, kind: MetricKind::Counter, help, labels, optional_labels: &[] }
}

// ---- Host sysfs (node_exporter twins) ----

/// Text attributes exported as labels of `accel_power_supply_info`.
pub const POWER_SUPPLY_INFO_LABELS: &[&str] = &[
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
    "scope",
];

/// `accel_hwmon_<type>[_<element>]_<unit>`: one family per hwmon attribute kind, as node_exporter names them.
pub const HWMON: Pattern = Pattern {
    prefix: "accel_hwmon_",
    suffix: "",
    doc: "accel_hwmon_<type>[_<element>]_<unit>",
    labels: &["chip", "sensor"],
};
pub const HWMON_CHIP_NAMES: Spec =
    gauge("accel_hwmon_chip_names", "Annotation metric for human-readable chip names", &["chip", "chip_name"]);
pub const HWMON_SENSOR_LABEL: Spec =
    gauge("accel_hwmon_sensor_label", "Label for given chip and sensor", &["chip", "sensor", "label"]);
pub const THERMAL_ZONE_TEMP: Spec =
    gauge("accel_thermal_zone_temp_celsius", "Zone temperature in Celsius", &["zone", "type"]);
pub const THERMAL_ZONE_TRIP_POINT: Spec = gauge(
    "accel_thermal_zone_trip_point_celsius",
    "Trip point temperature of the zone in Celsius",
    &["zone", "type", "trip", "trip_type"],
);
pub const COOLING_DEVICE_CUR_STATE: Spec =
    gauge("accel_cooling_device_cur_state", "Current throttle state of the cooling device", &["name", "type"]);
pub const COOLING_DEVICE_MAX_STATE: Spec =
    gauge("accel_cooling_device_max_state", "Maximum throttle state of the cooling device", &["name", "type"]);
/// `accel_power_supply_<attr>`: node_exporter's `node_power_supply_*` numeric attributes.
pub const POWER_SUPPLY: Pattern =
    Pattern { prefix: "accel_power_supply_", suffix: "", doc: "accel_power_supply_<attr>", labels: &["power_supply"] };
pub const POWER_SUPPLY_INFO: Spec = Spec {
    name: "accel_power_supply_info",
    kind: MetricKind::Gauge,
    help: "Text attributes of the power supply",
    labels: &["power_supply"],
    optional_labels: POWER_SUPPLY_INFO_LABELS,
};
pub const POWERCAP_ENERGY: Spec = counter(
    "accel_powercap_energy_joules_total",
    "Energy used by the powercap zone, corrected for wraparound",
    &["zone", "name"],
);
/// `accel_rapl_<name>_joules_total`: node_exporter's `node_rapl_*` naming of the powercap energy counters.
pub const RAPL: Pattern = Pattern {
    prefix: "accel_rapl_",
    suffix: "_joules_total",
    doc: "accel_rapl_<name>_joules_total",
    labels: &["index", "path"],
};
pub const POWERCAP_POWER_LIMIT: Spec = gauge(
    "accel_powercap_power_limit_watts",
    "Power limit of the powercap constraint",
    &["zone", "name", "constraint"],
);
pub const POWERCAP_TIME_WINDOW: Spec = gauge(
    "accel_powercap_time_window_seconds",
    "Time window of the powercap constraint",
    &["zone", "name", "constraint"],
);
pub const PCI_AER_ERRORS: Spec = counter(
    "accel_pci_aer_errors_total",
    "PCIe AER errors reported by the device, by severity and error",
    &["pci_address", "severity", "error"],
);
pub const PCI_AER_DEVICE_ERRORS: Spec = counter(
    "accel_pci_aer_device_errors_total",
    "PCIe AER error reports of the device by severity (the kernel's TOTAL_ERR_* counts)",
    &["pci_address", "severity"],
);
pub const PCI_AER_ROOTPORT_ERRORS: Spec = counter(
    "accel_pci_aer_rootport_errors_total",
    "PCIe AER errors reported to the root port from its hierarchy",
    &["pci_address", "severity"],
);

// ---- The accel class ----

pub const CLASS_DEVICE_INFO: Spec = gauge(
    "accel_class_device_info",
    "An accel class device with its PCI address and driver",
    &["accel", "pci_address", "driver"],
);
pub const CLASS_STATUS: Spec =
    gauge("accel_class_status", "The driver's device status (habanalabs), 1 on the current one", &["accel", "status"]);
pub const CLASS_HARD_RESETS: Spec = counter("accel_class_hard_resets_total", "Hard resets of the device", &["accel"]);
pub const CLASS_MAX_POWER: Spec = gauge("accel_class_max_power_watts", "Power cap of the device", &["accel"]);
pub const CLASS_CLOCK: Spec = gauge("accel_class_clock_hertz", "Device clock", &["accel", "clock"]);
pub const CLASS_BUSY: Spec = counter("accel_class_busy_seconds_total", "Time the NPU was busy", &["accel"]);
pub const CLASS_RAS_ERRORS: Spec = counter("accel_class_ras_errors_total", "RAS errors", &["accel", "type"]);
pub const CLASS_DBC_STATE: Spec =
    gauge("accel_class_dbc_state", "DMA bridge channel state (qaic): 0 idle .. 5 after power-up", &["accel", "dbc"]);

// ---- Host resources and the agent's process (docs/resources.md) ----

pub const CPU_SECONDS: Spec =
    counter("accel_cpu_seconds_total", "Seconds all CPUs together spent in each mode, from /proc/stat", &["mode"]);
pub const CPUS: Spec = gauge("accel_cpus", "Number of online CPUs", &[]);
pub const CPU_UTILIZATION: Spec = gauge(
    "accel_cpu_utilization_ratio",
    "Share of CPU time not idle or in iowait over the last collection interval, 0 to 1",
    &[],
);
pub const LOAD1: Spec = gauge("accel_load1", "1-minute load average", &[]);
pub const LOAD5: Spec = gauge("accel_load5", "5-minute load average", &[]);
pub const LOAD15: Spec = gauge("accel_load15", "15-minute load average", &[]);
pub const MEMORY_TOTAL: Spec = gauge("accel_memory_total_bytes", "Usable RAM in bytes (MemTotal)", &[]);
pub const MEMORY_AVAILABLE: Spec = gauge(
    "accel_memory_available_bytes",
    "Memory available for new work without swapping, in bytes (MemAvailable)",
    &[],
);
pub const MEMORY_FREE: Spec = gauge("accel_memory_free_bytes", "Unused RAM in bytes (MemFree)", &[]);
pub const MEMORY_BUFFERS: Spec = gauge("accel_memory_buffers_bytes", "Block device buffers in bytes (Buffers)", &[]);
pub const MEMORY_CACHED: Spec = gauge("accel_memory_cached_bytes", "Page cache in bytes (Cached)", &[]);
pub const MEMORY_USED_RATIO: Spec = gauge("accel_memory_used_ratio", "1 - MemAvailable / MemTotal, 0 to 1", &[]);
pub const SWAP_TOTAL: Spec = gauge("accel_swap_total_bytes", "Swap space in bytes (SwapTotal)", &[]);
pub const SWAP_FREE: Spec = gauge("accel_swap_free_bytes", "Unused swap space in bytes (SwapFree)", &[]);
const FS: &[&str] = &["device", "mountpoint", "fstype"];
pub const FILESYSTEM_SIZE: Spec = gauge("accel_filesystem_size_bytes", "Filesystem size in bytes", FS);
pub const FILESYSTEM_FREE: Spec =
    gauge("accel_filesystem_free_bytes", "Free space in bytes, including root-reserved blocks", FS);
pub const FILESYSTEM_AVAIL: Spec =
    gauge("accel_filesystem_avail_bytes", "Space available to unprivileged users in bytes", FS);
pub const FILESYSTEM_USED_RATIO: Spec =
    gauge("accel_filesystem_used_ratio", "Used share as df's Use%: used / (used + avail), 0 to 1", FS);
pub const FILESYSTEM_READONLY: Spec =
    gauge("accel_filesystem_readonly", "1 if the filesystem is mounted read-only", FS);
pub const FILESYSTEM_DEVICE_ERROR: Spec =
    gauge("accel_filesystem_device_error", "1 if statvfs failed for this filesystem, so its sizes are absent", FS);
const DEV: &[&str] = &["device"];
pub const DISK_READS_COMPLETED: Spec = counter("accel_disk_reads_completed_total", "Reads completed", DEV);
pub const DISK_WRITES_COMPLETED: Spec = counter("accel_disk_writes_completed_total", "Writes completed", DEV);
pub const DISK_READ_BYTES: Spec = counter("accel_disk_read_bytes_total", "Bytes read", DEV);
pub const DISK_WRITTEN_BYTES: Spec = counter("accel_disk_written_bytes_total", "Bytes written", DEV);
pub const DISK_IO_TIME: Spec = counter("accel_disk_io_time_seconds_total", "Seconds the device had I/O in flight", DEV);
pub const NETWORK_RECEIVE_BYTES: Spec = counter("accel_network_receive_bytes_total", "Bytes received", DEV);
pub const NETWORK_RECEIVE_PACKETS: Spec = counter("accel_network_receive_packets_total", "Packets received", DEV);
pub const NETWORK_RECEIVE_ERRS: Spec = counter("accel_network_receive_errs_total", "Receive errors", DEV);
pub const NETWORK_RECEIVE_DROP: Spec = counter("accel_network_receive_drop_total", "Received packets dropped", DEV);
pub const NETWORK_TRANSMIT_BYTES: Spec = counter("accel_network_transmit_bytes_total", "Bytes transmitted", DEV);
pub const NETWORK_TRANSMIT_PACKETS: Spec = counter("accel_network_transmit_packets_total", "Packets transmitted", DEV);
pub const NETWORK_TRANSMIT_ERRS: Spec = counter("accel_network_transmit_errs_total", "Transmit errors", DEV);
pub const NETWORK_TRANSMIT_DROP: Spec =
    counter("accel_network_transmit_drop_total", "Transmitted packets dropped", DEV);
pub const PROCESS_RESIDENT_MEMORY: Spec =
    gauge("accel_process_resident_memory_bytes", "Agent resident memory in bytes", &[]);
pub const PROCESS_VIRTUAL_MEMORY: Spec =
    gauge("accel_process_virtual_memory_bytes", "Agent virtual memory in bytes", &[]);
pub const PROCESS_CPU_SECONDS: Spec =
    counter("accel_process_cpu_seconds_total", "Agent user and system CPU time in seconds", &[]);
pub const PROCESS_OPEN_FDS: Spec = gauge("accel_process_open_fds", "Agent open file descriptors", &[]);
pub const PROCESS_MAX_FDS: Spec =
    gauge("accel_process_max_fds", "Agent soft limit on open file descriptors (+Inf if unlimited)", &[]);
pub const PROCESS_THREADS: Spec = gauge("accel_process_threads", "Agent threads", &[]);
pub const PROCESS_START_TIME: Spec =
    gauge("accel_process_start_time_seconds", "Agent start time in seconds since the Unix epoch", &[]);
pub const RESOURCES_PARSE_ERRORS: Spec = counter(
    "accel_resources_parse_errors_total",
    "Malformed lines skipped in a procfs file by the resources collector since the agent started",
    &["file"],
);

// ---- Devices ----

pub const DEVICE_INFO: Spec = gauge(
    "accel_device_info",
    "Static facts of a device",
    &["device", "kind", "model", "driver", "pci_address", "firmware"],
);
pub const DEVICE_UP: Spec =
    gauge("accel_device_up", "1 if the device is reachable/online, 0 if not", &["device", "kind"]);
pub const DEVICE_HEALTH: Spec = gauge(
    "accel_device_health",
    "1 on the device's current state (healthy, degraded, unhealthy, unknown, maintenance)",
    &["device", "state"],
);
pub const DEVICE_CONDITION: Spec = gauge(
    "accel_device_condition",
    "1 while the condition is true, 0 while false or unknown",
    &["device", "condition"],
);
const SENSOR: &[&str] = &["device", "sensor"];
pub const DEVICE_TEMPERATURE: Spec = gauge("accel_device_temperature_celsius", "Device temperature", SENSOR);
pub const DEVICE_TEMPERATURE_THRESHOLD: Spec = gauge(
    "accel_device_temperature_threshold_celsius",
    "Temperature threshold of a device sensor, by level",
    &["device", "sensor", "level"],
);
pub const DEVICE_POWER: Spec = gauge("accel_device_power_watts", "Device power draw", SENSOR);
pub const DEVICE_VOLTAGE: Spec = gauge("accel_device_voltage_volts", "Device voltage", SENSOR);
pub const DEVICE_CURRENT: Spec = gauge("accel_device_current_amperes", "Device current", SENSOR);
pub const DEVICE_FAN: Spec = gauge("accel_device_fan_rpm", "Device fan speed", SENSOR);
pub const DEVICE_UTILIZATION: Spec = gauge("accel_device_utilization_ratio", "Device utilization, 0..1", &["device"]);
pub const DEVICE_INFERENCES: Spec =
    counter("accel_device_inferences_total", "Inferences completed by the device", &["device"]);
pub const DEVICE_ENERGY_PER_INFERENCE: Spec = gauge(
    "accel_device_energy_per_inference_joules",
    "Energy used between the last two probe results divided by the inferences completed between them",
    &["device"],
);
pub const DEVICE_ENERGY: Spec = counter("accel_device_energy_joules_total", "Energy used by the device", SENSOR);
const PROBE: &[&str] = &["device", "probe"];
pub const PROBE_SUCCESS: Spec = gauge("accel_probe_success", "Whether the probe's last run succeeded", PROBE);
pub const PROBE_DURATION: Spec = gauge("accel_probe_duration_seconds", "Duration of the probe's last run", PROBE);
pub const PROBE_LAST_SUCCESS: Spec =
    gauge("accel_probe_last_success_timestamp_seconds", "Unix time of the probe's last success", PROBE);
const DIAGNOSTIC: &[&str] = &["device", "diagnostic"];
pub const DIAGNOSTIC_SUCCESS: Spec = gauge(
    "accel_diagnostic_success",
    "Whether the diagnostic's last verdict was a pass (1) or a failure (0); absent until it has one",
    &["device", "diagnostic", "level"],
);
pub const DIAGNOSTIC_LAST_RUN: Spec = gauge(
    "accel_diagnostic_last_run_timestamp_seconds",
    "Unix time the diagnostic's last verdict was reached",
    DIAGNOSTIC,
);
pub const DIAGNOSTIC_DURATION: Spec = gauge(
    "accel_diagnostic_duration_seconds",
    "Duration of the run that gave the diagnostic's last verdict (remedy and second try included)",
    DIAGNOSTIC,
);
pub const LOG_MATCHES: Spec =
    counter("accel_log_matches_total", "Log lines that matched the rule", &["device", "rule"]);
pub const LOG_LINES: Spec = counter("accel_log_lines_total", "Log lines read from the source", &["device", "source"]);
pub const EVENTS: Spec =
    counter("accel_events_total", "Events stored in the journal, by device and severity", &["device", "severity"]);
pub const EVENTS_DROPPED: Spec = counter(
    "accel_events_dropped_total",
    "Events recorded since start that the journal does not hold (queue full, failed write, no journal)",
    &[],
);
pub const AGENT_FAULTS: Spec = counter(
    "accel_agent_faults_total",
    "Things the agent could not do for want of its own resources (descriptors, memory, processes, disk); never evidence about a device",
    &["kind"],
);
pub const CONTROL_REFUSED: Spec = counter(
    "accel_control_refused_total",
    "Requests refused on the control socket (the peer is neither root nor in the control group), by what was asked",
    &["reason"],
);

// ---- Actions ----

pub const ACTIONS_UP: Spec =
    gauge("accel_actions_up", "1 while the actions worker (throttle, restore, reconnect) runs; 0 once it stopped", &[]);
pub const THROTTLE_LEVEL: Spec =
    gauge("accel_throttle_level", "Throttle level applied to the device; 0 = not throttled", &["device"]);
pub const THROTTLE_MAX_LEVEL: Spec =
    gauge("accel_throttle_max_level", "Highest throttle level of the device's ladder", &["device"]);
pub const THROTTLE_TRANSITIONS: Spec = counter(
    "accel_throttle_transitions_total",
    "Throttle level changes applied, by direction",
    &["device", "direction"],
);
pub const RECONNECT_ATTEMPTS: Spec = counter(
    "accel_reconnect_attempts_total",
    "Reconnect attempts by ladder step and result",
    &["device", "step", "result"],
);
pub const RECONNECT_CIRCUIT_STATE: Spec =
    gauge("accel_reconnect_circuit_state", "Reconnect circuit breaker: 0 closed, 1 half-open, 2 open", &["device"]);
// ---- Kubernetes (kubelet) ----

pub const DEVICE_POD_INFO: Spec = gauge(
    "accel_device_pod_info",
    "1 for each container kubelet says holds the device (pod-resources API)",
    &["device", "namespace", "pod", "container"],
);
pub const KUBELET_REGISTERED: Spec = gauge(
    "accel_kubelet_registered",
    "1 while the agent's device plugin for the resource is registered with kubelet, 0 while not",
    &["resource"],
);

pub const MAINTENANCE_MODE: Spec = gauge(
    "accel_maintenance_mode",
    "1 while the device is in maintenance (no automatic actions; alerts may be inhibited)",
    &["device"],
);
pub const MAINTENANCE_WINDOW_ACTIVE: Spec = gauge(
    "accel_maintenance_window_active",
    "1 while the configured maintenance window is open (its devices are in maintenance), 0 while not",
    &["window"],
);

// ---- SpiNNaker ----

pub const SPINNAKER_BOARD_INFO: Spec = gauge(
    "accel_spinnaker_board_info",
    "1 for each board whose BMP has given its serial number (the LPC1768's, BMP_INFO 0)",
    &["device", "serial"],
);
pub const SPINNAKER_BOARD_ON_CAN: Spec = gauge(
    "accel_spinnaker_board_on_can",
    "Whether the frame's BMP sees the board's BMP on the frame's CAN bus (BMP_INFO 2)",
    &["device"],
);
pub const SPINNAKER_BOARD_WARNING_BITS: Spec = gauge(
    "accel_spinnaker_board_warning_bits",
    "The BMP's warning word for the board, as reported (bits per the BMP firmware)",
    &["device"],
);
pub const SPINNAKER_BOARD_SHUTDOWN_BITS: Spec = gauge(
    "accel_spinnaker_board_shutdown_bits",
    "The BMP's shutdown word for the board, as reported (bits per the BMP firmware)",
    &["device"],
);
pub const SPINNAKER_SPALLOC_UP: Spec =
    gauge("accel_spinnaker_spalloc_up", "Whether the machine's spalloc server answered the last poll", &["machine"]);
pub const SPINNAKER_MACHINE_DEAD_BOARDS: Spec =
    gauge("accel_spinnaker_machine_dead_boards", "Boards spalloc lists as dead", &["machine"]);
pub const SPINNAKER_MACHINE_DEAD_LINKS: Spec =
    gauge("accel_spinnaker_machine_dead_links", "Links spalloc lists as dead", &["machine"]);
pub const SPINNAKER_JOBS: Spec =
    gauge("accel_spinnaker_jobs", "spalloc jobs on the machine by state", &["machine", "state"]);
pub const SPINNAKER_SCP_PACKETS: Spec = counter(
    "accel_spinnaker_scp_packets_total",
    "SCP datagrams by what happened to them: sent (with retries), timeouts, and received (replies, \
     error replies, malformed, foreign, late or duplicate; all but replies are dropped)",
    &["kind"],
);
pub const SPINNAKER_POLL_DURATION: Spec = gauge(
    "accel_spinnaker_poll_duration_seconds",
    "How long the last poll of every BMP, SC&MP and spalloc server took",
    &[],
);

// ---- Agent self-metrics ----

const COLLECTOR: &[&str] = &["collector"];
pub const COLLECTOR_SUCCESS: Spec = gauge(
    "accel_collector_success",
    "Whether the collector's last collection read everything it should (1) or not (0)",
    COLLECTOR,
);
pub const COLLECTOR_DURATION: Spec =
    gauge("accel_collector_duration_seconds", "Duration of the collector's last collection", COLLECTOR);
pub const COLLECTOR_LAST_SUCCESS: Spec = gauge(
    "accel_collector_last_success_timestamp_seconds",
    "Unix time of the collector's last successful collection",
    COLLECTOR,
);
pub const COLLECTOR_COLLECTIONS: Spec =
    counter("accel_collector_collections_total", "Collections the collector has run, successful or not", COLLECTOR);
pub const COLLECTOR_STUCK_THREADS: Spec = gauge(
    "accel_collector_stuck_threads",
    "Worker threads of the collector still blocked in a read that hung",
    COLLECTOR,
);
pub const SYSFS_READ_ERRORS: Spec = counter(
    "accel_sysfs_read_errors_total",
    "Reads that produced no value, by reason (enodata, eagain, enodev and einval are expected)",
    &["collector", "reason"],
);
pub const SYSFS_OPEN_FILES: Spec =
    gauge("accel_sysfs_open_files", "Attribute files the collectors keep open to re-read with one pread each", &[]);
pub const SYSFS_OPEN_FILES_LIMIT: Spec = gauge(
    "accel_sysfs_open_files_limit",
    "How many attribute files may stay open ([collectors] max_open_files, within RLIMIT_NOFILE); beyond it files are opened per read",
    &[],
);
pub const HTTP_CONNECTIONS_LIMIT: Spec = gauge(
    "accel_http_connections_limit",
    "HTTP connections the agent holds at once ([http] max_connections, within RLIMIT_NOFILE)",
    &[],
);
pub const HTTP_CONNECTIONS_REFUSED: Spec = counter(
    "accel_http_connections_refused_total",
    "HTTP connections closed without an answer because a cap was reached and no idle connection could make room (total, address), or answered 429 because the queue of logins waiting for bcrypt was full (auth_queue)",
    &["cap"],
);
pub const HTTP_CONNECTIONS_SHED: Spec = counter(
    "accel_http_connections_shed_total",
    "Idle HTTP connections closed to make room for a new one, by the cap that was reached (total, address)",
    &["cap"],
);
pub const BUILD_INFO: Spec =
    gauge("accel_build_info", "Version and git revision of the running agent", &["version", "revision"]);
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: Spec = gauge(
    "accel_config_last_reload_successful",
    "Whether the last config reload succeeded (1) or was rejected (0); 1 after the start",
    &[],
);
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP: Spec = gauge(
    "accel_config_last_reload_success_timestamp_seconds",
    "When the config was last loaded successfully (the start counts), Unix time",
    &[],
);

/// Every family declared on its own.
pub const ALL: &[&Spec] = &[
    &HWMON_CHIP_NAMES,
    &HWMON_SENSOR_LABEL,
    &THERMAL_ZONE_TEMP,
    &THERMAL_ZONE_TRIP_POINT,
    &COOLING_DEVICE_CUR_STATE,
    &COOLING_DEVICE_MAX_STATE,
    &POWER_SUPPLY_INFO,
    &POWERCAP_ENERGY,
    &POWERCAP_POWER_LIMIT,
    &POWERCAP_TIME_WINDOW,
    &PCI_AER_ERRORS,
    &PCI_AER_DEVICE_ERRORS,
    &PCI_AER_ROOTPORT_ERRORS,
    &CLASS_DEVICE_INFO,
    &CLASS_STATUS,
    &CLASS_HARD_RESETS,
    &CLASS_MAX_POWER,
    &CLASS_CLOCK,
    &CLASS_BUSY,
    &CLASS_RAS_ERRORS,
    &CLASS_DBC_STATE,
    &CPU_SECONDS,
    &CPUS,
    &CPU_UTILIZATION,
    &LOAD1,
    &LOAD5,
    &LOAD15,
    &MEMORY_TOTAL,
    &MEMORY_AVAILABLE,
    &MEMORY_FREE,
    &MEMORY_BUFFERS,
    &MEMORY_CACHED,
    &MEMORY_USED_RATIO,
    &SWAP_TOTAL,
    &SWAP_FREE,
    &FILESYSTEM_SIZE,
    &FILESYSTEM_FREE,
    &FILESYSTEM_AVAIL,
    &FILESYSTEM_USED_RATIO,
    &FILESYSTEM_READONLY,
    &FILESYSTEM_DEVICE_ERROR,
    &DISK_READS_COMPLETED,
    &DISK_WRITES_COMPLETED,
    &DISK_READ_BYTES,
    &DISK_WRITTEN_BYTES,
    &DISK_IO_TIME,
    &NETWORK_RECEIVE_BYTES,
    &NETWORK_RECEIVE_PACKETS,
    &NETWORK_RECEIVE_ERRS,
    &NETWORK_RECEIVE_DROP,
    &NETWORK_TRANSMIT_BYTES,
    &NETWORK_TRANSMIT_PACKETS,
    &NETWORK_TRANSMIT_ERRS,
    &NETWORK_TRANSMIT_DROP,
    &PROCESS_RESIDENT_MEMORY,
    &PROCESS_VIRTUAL_MEMORY,
    &PROCESS_CPU_SECONDS,
    &PROCESS_OPEN_FDS,
    &PROCESS_MAX_FDS,
    &PROCESS_THREADS,
    &PROCESS_START_TIME,
    &RESOURCES_PARSE_ERRORS,
    &DEVICE_INFO,
    &DEVICE_UP,
    &DEVICE_HEALTH,
    &DEVICE_CONDITION,
    &DEVICE_TEMPERATURE,
    &DEVICE_TEMPERATURE_THRESHOLD,
    &DEVICE_POWER,
    &DEVICE_VOLTAGE,
    &DEVICE_CURRENT,
    &DEVICE_FAN,
    &DEVICE_UTILIZATION,
    &DEVICE_INFERENCES,
    &DEVICE_ENERGY_PER_INFERENCE,
    &DEVICE_ENERGY,
    &PROBE_SUCCESS,
    &PROBE_DURATION,
    &PROBE_LAST_SUCCESS,
    &DIAGNOSTIC_SUCCESS,
    &DIAGNOSTIC_LAST_RUN,
    &DIAGNOSTIC_DURATION,
    &LOG_MATCHES,
    &LOG_LINES,
    &EVENTS,
    &EVENTS_DROPPED,
    &AGENT_FAULTS,
    &CONTROL_REFUSED,
    &ACTIONS_UP,
    &THROTTLE_LEVEL,
    &THROTTLE_MAX_LEVEL,
    &THROTTLE_TRANSITIONS,
    &RECONNECT_ATTEMPTS,
    &RECONNECT_CIRCUIT_STATE,
    &MAINTENANCE_MODE,
    &MAINTENANCE_WINDOW_ACTIVE,
    &DEVICE_POD_INFO,
    &KUBELET_REGISTERED,
    &SPINNAKER_BOARD_INFO,
    &SPINNAKER_BOARD_ON_CAN,
    &SPINNAKER_BOARD_WARNING_BITS,
    &SPINNAKER_BOARD_SHUTDOWN_BITS,
    &SPINNAKER_SPALLOC_UP,
    &SPINNAKER_MACHINE_DEAD_BOARDS,
    &SPINNAKER_MACHINE_DEAD_LINKS,
    &SPINNAKER_JOBS,
    &SPINNAKER_SCP_PACKETS,
    &SPINNAKER_POLL_DURATION,
    &COLLECTOR_SUCCESS,
    &COLLECTOR_DURATION,
    &COLLECTOR_LAST_SUCCESS,
    &COLLECTOR_COLLECTIONS,
    &COLLECTOR_STUCK_THREADS,
    &SYSFS_READ_ERRORS,
    &SYSFS_OPEN_FILES,
    &SYSFS_OPEN_FILES_LIMIT,
    &HTTP_CONNECTIONS_LIMIT,
    &HTTP_CONNECTIONS_REFUSED,
    &HTTP_CONNECTIONS_SHED,
    &BUILD_INFO,
    &CONFIG_LAST_RELOAD_SUCCESSFUL,
    &CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP,
];

/// Every group of families named after sysfs files.
pub const PATTERNS: &[&Pattern] = &[&HWMON, &POWER_SUPPLY, &RAPL];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counters_end_in_total() {
        for (i, s) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|o| o.name != s.name), "{} declared twice", s.name);
            assert_eq!(s.kind == MetricKind::Counter, s.name.ends_with("_total"), "{}", s.name);
            assert!(s.name.starts_with("accel_"), "{}", s.name);
            assert!(!s.help.is_empty(), "{}", s.name);
        }
    }

    #[test]
    fn every_declared_const_is_listed() {
        // ALL is written by hand; a const left out of it would escape the documentation test.
        let source = include_str!("catalogue.rs");
        let declared = source.lines().filter(|l| l.starts_with("pub const ") && l.contains(": Spec =")).count();
        assert_eq!(declared, ALL.len());
        let patterns = source.lines().filter(|l| l.starts_with("pub const ") && l.contains(": Pattern =")).count();
        assert_eq!(patterns, PATTERNS.len());
    }

    #[test]
    fn label_checks() {
        assert!(DEVICE_UP.accepts(["device", "kind"]));
        assert!(!DEVICE_UP.accepts(["kind", "device"]), "order matters: it is the written order");
        assert!(!DEVICE_UP.accepts(["device"]));
        assert!(!DEVICE_UP.accepts(["device", "kind", "model"]));
        assert!(POWER_SUPPLY_INFO.accepts(["power_supply", "model_name", "status"]));
        assert!(!POWER_SUPPLY_INFO.accepts(["power_supply", "status", "model_name"]));
        assert!(!POWER_SUPPLY_INFO.accepts(["power_supply", "chip"]));
        assert!(HWMON.matches("accel_hwmon_temp_celsius"));
        assert!(!HWMON.matches("accel_hwmon_chip_names"), "declared on its own");
        assert!(RAPL.matches("accel_rapl_package_joules_total"));
        assert!(!RAPL.matches("accel_rapl_package_joules"));
    }
}
