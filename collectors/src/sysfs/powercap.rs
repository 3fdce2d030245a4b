//! Powercap (RAPL) zones: /sys/class/powercap/<control>:<N>[:<M>].
//!
//! `energy_uj` wraps at `max_energy_range_uj` (on busy servers, every few minutes to hours). The reader
//! keeps a running total across wraps so `accel_powercap_energy_joules_total` only goes up. The
//! node_exporter twins `accel_rapl_<name>_joules_total{index,path}` carry the same corrected value: equal
//! to node_exporter's until the first wrap, after which node_exporter's drops and ours keeps counting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::Filter;

use super::{
    Attr, ReadError, ReadFailure, Rescan, SysfsIo, SysfsReader, class_dir, list_class, plausible, read_static,
    read_value,
};
use crate::catalogue;
use crate::export::{Families, LabelValue, MetricKind, labels, lv};

/// Running total of a counter that wraps at a known range.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WrapCounter {
    last_raw: Option<f64>,
    total: f64,
}

impl WrapCounter {
    /// Feeds a new raw reading; `range` is the value at which the counter wraps to 0 (None if unknown).
    /// Returns the corrected total.
    pub fn update(&mut self, raw: f64, range: Option<f64>) -> f64 {
        match self.last_raw {
            None => self.total = raw,
            Some(last) if raw >= last => self.total += raw - last,
            Some(last) => {
                // Wrapped: count up to the top of the range, then from zero. Without a known range the
                // best estimate is that the counter restarted from zero.
                let to_top = range.filter(|r| *r >= last).map_or(0.0, |r| r - last);
                self.total += to_top + raw;
            }
        }
        self.last_raw = Some(raw);
        self.total
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// `constraint_K_name` (long_term, short_term, peak_power) or K when it has no name.
    pub name: LabelValue,
    pub power_limit_watts: Option<f64>,
    pub time_window_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PowercapZone {
    /// Directory name, e.g. "intel-rapl:0:1".
    pub zone: LabelValue,
    /// The `name` file, e.g. "package-0", "dram".
    pub name: LabelValue,
    /// Wrap-corrected energy in joules.
    pub energy_joules: Option<f64>,
    pub max_energy_range_joules: Option<f64>,
    pub enabled: Option<bool>,
    pub constraints: Vec<Constraint>,
    /// node_exporter's rapl naming: sanitized name without the "-N" suffix, and its index. None when
    /// nothing is left of the name to make a metric name of (an empty `name` file): the twin is not
    /// exported, and the name is counted as `bad_name`.
    pub rapl_name: Option<String>,
    pub rapl_index: LabelValue,
    /// The zone path as built from the sysfs root (not resolved), node_exporter's `path` label.
    pub path: LabelValue,
}

#[derive(Debug, Clone, Default)]
pub struct PowercapReadings {
    pub zones: Vec<PowercapZone>,
}

impl PowercapReadings {
    pub fn export(&self, out: &mut Families) {
        for z in &self.zones {
            let Some(j) = z.energy_joules else { continue };
            out.sample(&catalogue::POWERCAP_ENERGY, labels![("zone", z.zone.clone()), ("name", z.name.clone())], j);
            let Some(rapl_name) = &z.rapl_name else { continue };
            out.sample_in(
                &catalogue::RAPL,
                &format!("accel_rapl_{rapl_name}_joules_total"),
                &format!("Current RAPL {rapl_name} value in joules"),
                MetricKind::Counter,
                labels![("index", z.rapl_index.clone()), ("path", z.path.clone())],
                j,
            );
        }
        for z in &self.zones {
            for c in &z.constraints {
                let labels =
                    || labels![("zone", z.zone.clone()), ("name", z.name.clone()), ("constraint", c.name.clone())];
                if let Some(w) = c.power_limit_watts {
                    out.sample(&catalogue::POWERCAP_POWER_LIMIT, labels(), w);
                }
                if let Some(s) = c.time_window_seconds {
                    out.sample(&catalogue::POWERCAP_TIME_WINDOW, labels(), s);
                }
            }
        }
    }
}

struct ZoneLayout {
    zone: LabelValue,
    name: LabelValue,
    rapl_name: Option<String>,
    rapl_index: LabelValue,
    path: LabelValue,
    energy: Option<Attr>,
    /// max_energy_range_uj, read at discovery: fixed by the hardware.
    range_uj: Option<f64>,
    enabled: Option<Attr>,
    /// (name, power_limit_uw, time_window_us)
    constraints: Vec<(LabelValue, Option<Attr>, Option<Attr>)>,
}

pub struct PowercapReader {
    root: PathBuf,
    filter: Filter,
    zones: Vec<ZoneLayout>,
    /// Keyed by zone directory so a rescan keeps the running totals.
    counters: HashMap<String, WrapCounter>,
    rescan: Rescan,
}

impl PowercapReader {
    /// `filter` matches the zone's `name` (e.g. "package-0", "dram").
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        PowercapReader {
            root: sysfs_root.to_owned(),
            filter,
            zones: Vec::new(),
            counters: HashMap::new(),
            rescan: Rescan::default(),
        }
    }

    fn discover(&mut self, io: &mut SysfsIo, class: &Path, dirs: &[String]) {
        self.zones.clear();
        // node_exporter numbers unsuffixed names by their order in a byte-wise sorted listing.
        let mut sorted: Vec<&String> = dirs.iter().collect();
        sorted.sort();
        let mut seen: HashMap<String, u32> = HashMap::new();
        for dir_name in sorted {
            let dir = class.join(dir_name);
            // Control-type directories such as "intel-rapl" have no name file and are not zones.
            let Some(name) = io.read_optional(&dir.join("name")) else {
                continue;
            };
            let (rapl_name, rapl_index) = rapl_name_index(&name, &mut seen);
            if !self.filter.allows(&name) {
                continue;
            }
            let rapl_name = if rapl_name.is_empty() {
                io.fail(&std::sync::Arc::from(dir.join("name").as_path()), ReadFailure::BadName);
                None
            } else {
                Some(rapl_name)
            };
            let open = |io: &mut SysfsIo, f: &str| {
                let p = dir.join(f);
                if p.exists() { io.open(p.as_path()).ok() } else { None }
            };
            let mut constraints = Vec::new();
            for k in 0.. {
                let limit = dir.join(format!("constraint_{k}_power_limit_uw"));
                if !limit.exists() {
                    break;
                }
                let cname =
                    io.read_optional(&dir.join(format!("constraint_{k}_name"))).unwrap_or_else(|| k.to_string());
                let limit = io.open(limit.as_path()).ok();
                let window = open(io, &format!("constraint_{k}_time_window_us"));
                constraints.push((lv(cname), limit, window));
            }
            self.zones.push(ZoneLayout {
                zone: lv(dir_name),
                name: lv(&name),
                rapl_name,
                rapl_index: lv(rapl_index.to_string()),
                path: lv(dir.to_string_lossy()),
                energy: open(io, "energy_uj"),
                range_uj: {
                    let p = dir.join("max_energy_range_uj");
                    if p.exists() { read_static(io, &p, &plausible::ENERGY) } else { None }
                },
                enabled: open(io, "enabled"),
                constraints,
            });
        }
    }
}

/// node_exporter's RAPL naming: "package-0" -> ("package", 0); a name without a numeric suffix keeps
/// its whole (sanitized) text and is numbered by how often it was seen before.
fn rapl_name_index(name: &str, seen: &mut HashMap<String, u32>) -> (String, u32) {
    let (base, index) = match name.split('-').collect::<Vec<_>>().as_slice() {
        [base, n] if n.parse::<u32>().is_ok() => (base.to_string(), n.parse().unwrap_or(0)),
        _ => (name.to_owned(), seen.get(name).copied().unwrap_or(0)),
    };
    seen.insert(name.to_owned(), index + 1);
    (sanitize(&base), index)
}

/// Replaces each run of characters invalid in a metric name (with surrounding underscores) by one `_`.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if in_run {
                while out.ends_with('_') {
                    out.pop();
                }
                out.push('_');
                in_run = false;
            }
            out.push(c);
        } else if c == '_' {
            out.push(c);
        } else {
            in_run = true;
        }
    }
    if in_run {
        while out.ends_with('_') {
            out.pop();
        }
        out.push('_');
    }
    out
}

impl SysfsReader for PowercapReader {
    type Readings = PowercapReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<PowercapReadings, ReadError> {
        let class = class_dir(&self.root, "powercap");
        let dirs: Vec<String> = list_class(io, &class)?.into_iter().map(|e| e.name).collect();
        if self.rescan.needed(&dirs, io) {
            self.discover(io, &class, &dirs);
            self.counters.retain(|k, _| dirs.contains(k));
            self.rescan.done(dirs, io);
        }
        let mut zones = Vec::with_capacity(self.zones.len());
        for z in &self.zones {
            let range_uj = z.range_uj;
            let mut energy_uj = z.energy.as_ref().and_then(|a| read_value(io, a, &mut self.rescan, &plausible::ENERGY));
            // energy_uj wraps at max_energy_range_uj: a value beyond it (and so a step larger than the
            // range) is no reading, and would inflate the running total for good.
            if let (Some(raw), Some(range), Some(a)) = (energy_uj, range_uj, z.energy.as_ref())
                && raw > range
            {
                io.fail(a.path(), ReadFailure::Implausible);
                energy_uj = None;
            }
            let energy_joules =
                energy_uj.map(|raw| self.counters.entry(z.zone.to_string()).or_default().update(raw, range_uj) / 1e6);
            let enabled =
                z.enabled.as_ref().and_then(|a| read_value(io, a, &mut self.rescan, &plausible::ANY)).map(|v| v != 0.0);
            let constraints = z
                .constraints
                .iter()
                .map(|(name, limit, window)| Constraint {
                    name: name.clone(),
                    power_limit_watts: limit
                        .as_ref()
                        .and_then(|a| read_value(io, a, &mut self.rescan, &plausible::POWER_MICRO_W))
                        .map(|uw| uw / 1e6),
                    time_window_seconds: window
                        .as_ref()
                        .and_then(|a| read_value(io, a, &mut self.rescan, &plausible::COUNT))
                        .map(|us| us / 1e6),
                })
                .collect();
            zones.push(PowercapZone {
                zone: z.zone.clone(),
                name: z.name.clone(),
                energy_joules,
                max_energy_range_joules: range_uj.map(|r| r / 1e6),
                enabled,
                constraints,
                rapl_name: z.rapl_name.clone(),
                rapl_index: z.rapl_index.clone(),
                path: z.path.clone(),
            });
        }
        Ok(PowercapReadings { zones })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_counter_counts_through_the_wrap() {
        let mut c = WrapCounter::default();
        assert_eq!(c.update(900.0, Some(1000.0)), 900.0);
        assert_eq!(c.update(950.0, Some(1000.0)), 950.0);
        // 950 -> 1000 (50) then 0 -> 30 (30).
        assert_eq!(c.update(30.0, Some(1000.0)), 1030.0);
        assert_eq!(c.update(40.0, Some(1000.0)), 1040.0);
        // Unknown range: assume a restart from zero.
        assert_eq!(c.update(5.0, None), 1045.0);
    }

    #[test]
    fn rapl_names_like_node_exporter() {
        let mut seen = HashMap::new();
        assert_eq!(rapl_name_index("package-0", &mut seen), ("package".to_owned(), 0));
        assert_eq!(rapl_name_index("core", &mut seen), ("core".to_owned(), 0));
        assert_eq!(rapl_name_index("core", &mut seen), ("core".to_owned(), 1));
        assert_eq!(rapl_name_index("package-1", &mut seen), ("package".to_owned(), 1));
        assert_eq!(rapl_name_index("psys", &mut seen), ("psys".to_owned(), 0));
        assert_eq!(sanitize("a--b"), "a_b");
        assert_eq!(sanitize("a_-_b"), "a_b");
        assert_eq!(sanitize("dram"), "dram");
    }
}
