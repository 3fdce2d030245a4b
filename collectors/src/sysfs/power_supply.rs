//! Power supplies: /sys/class/power_supply/NAME (AC adapters, batteries, and boards such as Loihi 2 that
//! publish their energy counter as a power supply).
//!
//! Metric names and scales are node_exporter's `node_power_supply_*`: microvolts, microamperes,
//! microwatts and microwatt-hours divided by 1e6, temperatures in tenths of a degree divided by 10.
//! A file that fails is absent from the metrics; unlike node_exporter 1.5 it does not fail every supply.

use std::path::{Path, PathBuf};

use config::Filter;

use super::io::EntryKind;
use super::{Attr, ReadError, Rescan, SysfsIo, SysfsReader, class_dir, list_class, plausible, read_value};
use crate::catalogue;
use crate::export::{Families, LabelValue, MetricKind, labels, lv};

/// (sysfs file, metric suffix, divisor) for every numeric attribute node_exporter exports. Values are
/// divided (not multiplied by a reciprocal) so they are bit-identical to node_exporter's.
pub const NUMERIC: &[(&str, &str, f64)] = &[
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    ("constant_charge_current_max", "constant_charge_current_max", 1e6),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    ("constant_charge_voltage_max", "constant_charge_voltage_max", 1e6),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
    ("temp_ambient", "temp_ambient_celsius", 10.0),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10.0),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10.0),
    ("temp_max", "temp_max_celsius", 10.0),
    ("temp_min", "temp_min_celsius", 10.0),
];

/// The physical bounds of a numeric attribute (temperatures in tenths of a degree, energy in µWh).
fn numeric_bounds(file: &str) -> plausible::Bounds {
    match file {
        "temp" | "temp_ambient" => plausible::TEMP_DECI_C,
        f if f.starts_with("temp") => plausible::Bounds(-2_731.5..=10_000.0),
        f if f.starts_with("energy_") => plausible::ENERGY,
        "cycle_count" => plausible::COUNT,
        _ => plausible::ANY,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PowerSupply {
    pub name: LabelValue,
    /// (index into [`NUMERIC`], raw value) for every numeric attribute read.
    pub values: Vec<(usize, f64)>,
    /// (attribute, value) for the text attributes present.
    pub info: Vec<(&'static str, LabelValue)>,
}

impl PowerSupply {
    /// The raw value of a sysfs attribute, e.g. "energy_now" in microwatt-hours.
    pub fn raw(&self, file: &str) -> Option<f64> {
        let i = NUMERIC.iter().position(|(f, _, _)| *f == file)?;
        self.values.iter().find(|(j, _)| *j == i).map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PowerSupplyReadings {
    pub supplies: Vec<PowerSupply>,
}

impl PowerSupplyReadings {
    pub fn get(&self, name: &str) -> Option<&PowerSupply> {
        self.supplies.iter().find(|s| &*s.name == name)
    }

    pub fn export(&self, out: &mut Families) {
        for s in &self.supplies {
            for &(i, raw) in &s.values {
                let (file, suffix, divisor) = NUMERIC[i];
                out.sample_in(
                    &catalogue::POWER_SUPPLY,
                    &format!("accel_power_supply_{suffix}"),
                    &format!("Power supply attribute {file}"),
                    MetricKind::Gauge,
                    labels![("power_supply", s.name.clone())],
                    raw / divisor,
                );
            }
            let mut labels = labels![("power_supply", s.name.clone())];
            labels.extend(s.info.iter().filter(|(_, v)| !v.is_empty()).cloned());
            out.sample(&catalogue::POWER_SUPPLY_INFO, labels, 1.0);
        }
    }
}

struct Layout {
    name: LabelValue,
    numeric: Vec<(usize, Attr)>,
    info: Vec<(&'static str, Attr)>,
}

pub struct PowerSupplyReader {
    root: PathBuf,
    filter: Filter,
    supplies: Vec<Layout>,
    rescan: Rescan,
}

impl PowerSupplyReader {
    /// `filter` matches the supply name (e.g. "BAT0", "loihi2").
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        PowerSupplyReader { root: sysfs_root.to_owned(), filter, supplies: Vec::new(), rescan: Rescan::default() }
    }

    fn discover(&mut self, io: &mut SysfsIo, class: &Path, names: &[String]) {
        self.supplies.clear();
        for name in names {
            if !self.filter.allows(name) {
                continue;
            }
            let Some(dir) = super::resolve(&class.join(name)) else {
                continue;
            };
            let Ok(entries) = io.list_dir(&dir) else {
                continue;
            };
            let mut layout = Layout { name: lv(name), numeric: Vec::new(), info: Vec::new() };
            for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
                if let Some(i) = NUMERIC.iter().position(|(f, _, _)| *f == e.name) {
                    if let Ok(a) = io.open(dir.join(&e.name).as_path()) {
                        layout.numeric.push((i, a));
                    }
                } else if let Some(key) = catalogue::POWER_SUPPLY_INFO_LABELS.iter().find(|k| **k == e.name)
                    && let Ok(a) = io.open(dir.join(&e.name).as_path())
                {
                    layout.info.push((key, a));
                }
            }
            self.supplies.push(layout);
        }
    }
}

impl SysfsReader for PowerSupplyReader {
    type Readings = PowerSupplyReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<PowerSupplyReadings, ReadError> {
        let class = class_dir(&self.root, "power_supply");
        let names: Vec<String> = list_class(io, &class)?.into_iter().map(|e| e.name).collect();
        if self.rescan.needed(&names, io) {
            self.discover(io, &class, &names);
            self.rescan.done(names, io);
        }
        let mut supplies = Vec::with_capacity(self.supplies.len());
        for s in &self.supplies {
            let values = s
                .numeric
                .iter()
                .filter_map(|(i, a)| Some((*i, read_value(io, a, &mut self.rescan, &numeric_bounds(NUMERIC[*i].0))?)))
                .collect();
            let info = s.info.iter().filter_map(|(k, a)| Some((*k, lv(io.read_text(a).ok()?)))).collect();
            supplies.push(PowerSupply { name: s.name.clone(), values, info });
        }
        Ok(PowerSupplyReadings { supplies })
    }
}
