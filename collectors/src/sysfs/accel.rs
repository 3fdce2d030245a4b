//! The Linux `accel` class: /sys/class/accel/accelN, whose `device` is the accelerator's PCI function.
//!
//! What each driver publishes differs (sysfs.md): habanalabs a `status` string, reset count, power cap and
//! clocks (and ENODEV for every read while the card is not operational); qaic RAS error counters and DMA
//! bridge channel states; ivpu a cumulative busy time. Whatever exists is read; nothing is assumed.

use std::path::{Path, PathBuf};

use config::Filter;

use super::{
    Attr, ReadError, Rescan, SysfsIo, SysfsReader, class_dir, is_pci_address, list_class, plausible, read_value,
};
use crate::catalogue;
use crate::export::{Families, LabelValue, labels, lv};

/// Numeric attributes and what they are.
const NUMERIC: &[(&str, Field)] = &[
    ("hard_reset_cnt", Field::HardResets),
    ("max_power", Field::MaxPowerWatts),
    ("clk_cur_freq_mhz", Field::ClockCurrentHz),
    ("clk_max_freq_mhz", Field::ClockMaxHz),
    ("npu_busy_time_us", Field::BusySeconds),
    ("ce_count", Field::CorrectableErrors),
    ("ue_count", Field::UncorrectableErrors),
    ("ue_nonfatal_count", Field::UncorrectableNonfatalErrors),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    HardResets,
    MaxPowerWatts,
    ClockCurrentHz,
    ClockMaxHz,
    BusySeconds,
    CorrectableErrors,
    UncorrectableErrors,
    UncorrectableNonfatalErrors,
}

impl Field {
    /// The physical bounds of the raw value.
    fn bounds(self) -> &'static plausible::Bounds {
        match self {
            Field::MaxPowerWatts => &plausible::POWER_MILLI_W,
            _ => &plausible::COUNT,
        }
    }

    /// The kernel's unit to base units: milliwatts, megahertz and microseconds.
    fn to_base(self, raw: f64) -> f64 {
        match self {
            Field::MaxPowerWatts => raw / 1e3,
            Field::ClockCurrentHz | Field::ClockMaxHz => raw * 1e6,
            Field::BusySeconds => raw / 1e6,
            _ => raw,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccelDevice {
    /// e.g. "accel0".
    pub name: LabelValue,
    pub pci_address: Option<LabelValue>,
    /// The bound driver, e.g. "habanalabs", "qaic", "intel_vpu".
    pub driver: Option<LabelValue>,
    /// habanalabs `status`: "Operational", "In reset", "Disabled", "Needs reset", ...
    pub status: Option<String>,
    /// Values in base units (watts, hertz, seconds, counts).
    pub values: Vec<(Field, f64)>,
    /// qaic dbcN_state: (N, state 0 idle .. 5 after power-up).
    pub dbc_states: Vec<(u32, f64)>,
}

impl AccelDevice {
    pub fn value(&self, f: Field) -> Option<f64> {
        self.values.iter().find(|(k, _)| *k == f).map(|(_, v)| *v)
    }

    /// Whether the driver says the device works. Unknown (None) when it publishes no status.
    pub fn operational(&self) -> Option<bool> {
        self.status.as_deref().map(|s| s.eq_ignore_ascii_case("operational"))
    }
}

#[derive(Debug, Clone, Default)]
pub struct AccelReadings {
    pub devices: Vec<AccelDevice>,
}

impl AccelReadings {
    pub fn by_pci(&self, address: &str) -> Option<&AccelDevice> {
        self.devices.iter().find(|d| d.pci_address.as_deref() == Some(address))
    }

    pub fn export(&self, out: &mut Families) {
        for d in &self.devices {
            let a = || labels![("accel", d.name.clone())];
            out.sample(
                &catalogue::CLASS_DEVICE_INFO,
                vec![
                    ("accel", d.name.clone()),
                    ("pci_address", d.pci_address.clone().unwrap_or_else(|| lv(""))),
                    ("driver", d.driver.clone().unwrap_or_else(|| lv(""))),
                ],
                1.0,
            );
            if let Some(s) = &d.status {
                let mut l = a();
                l.push(("status", lv(s)));
                out.sample(&catalogue::CLASS_STATUS, l, 1.0);
            }
            for (field, v) in &d.values {
                let (spec, extra): (_, Option<(&'static str, &str)>) = match field {
                    Field::HardResets => (&catalogue::CLASS_HARD_RESETS, None),
                    Field::MaxPowerWatts => (&catalogue::CLASS_MAX_POWER, None),
                    Field::ClockCurrentHz => (&catalogue::CLASS_CLOCK, Some(("clock", "current"))),
                    Field::ClockMaxHz => (&catalogue::CLASS_CLOCK, Some(("clock", "max"))),
                    Field::BusySeconds => (&catalogue::CLASS_BUSY, None),
                    Field::CorrectableErrors => (&catalogue::CLASS_RAS_ERRORS, Some(("type", "ce"))),
                    Field::UncorrectableErrors => (&catalogue::CLASS_RAS_ERRORS, Some(("type", "ue"))),
                    Field::UncorrectableNonfatalErrors => (&catalogue::CLASS_RAS_ERRORS, Some(("type", "ue_nonfatal"))),
                };
                let mut l = a();
                if let Some((k, val)) = extra {
                    l.push((k, lv(val)));
                }
                out.sample(spec, l, *v);
            }
            for (n, state) in &d.dbc_states {
                let mut l = a();
                l.push(("dbc", lv(n.to_string())));
                out.sample(&catalogue::CLASS_DBC_STATE, l, *state);
            }
        }
    }
}

struct Layout {
    name: LabelValue,
    pci_address: Option<LabelValue>,
    driver: Option<LabelValue>,
    status: Option<Attr>,
    numeric: Vec<(Field, Attr)>,
    dbc: Vec<(u32, Attr)>,
}

pub struct AccelReader {
    root: PathBuf,
    filter: Filter,
    devices: Vec<Layout>,
    rescan: Rescan,
}

impl AccelReader {
    /// `filter` matches the PCI address (or the accelN name for a device without one).
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        AccelReader { root: sysfs_root.to_owned(), filter, devices: Vec::new(), rescan: Rescan::default() }
    }

    fn discover(&mut self, io: &mut SysfsIo, class: &Path, names: &[String]) {
        self.devices.clear();
        for name in names {
            let Some(dev) = super::resolve(&class.join(name).join("device")) else { continue };
            let pci = dev.file_name().and_then(|n| n.to_str()).filter(|n| is_pci_address(n)).map(lv);
            if !self.filter.allows(pci.as_deref().unwrap_or(name)) {
                continue;
            }
            let driver = std::fs::read_link(dev.join("driver"))
                .ok()
                .and_then(|t| t.file_name().and_then(|n| n.to_str()).map(lv));
            let open = |io: &mut SysfsIo, f: &str| {
                let p = dev.join(f);
                if p.exists() { io.open(p.as_path()).ok() } else { None }
            };
            let status = open(io, "status");
            let numeric = NUMERIC.iter().filter_map(|(f, field)| Some((*field, open(io, f)?))).collect();
            let mut dbc = Vec::new();
            if let Ok(entries) = io.list_dir(&dev) {
                for e in entries {
                    let Some(n) = e.name.strip_prefix("dbc").and_then(|r| r.strip_suffix("_state")) else { continue };
                    if let (Ok(n), Some(a)) = (n.parse::<u32>(), open(io, &e.name)) {
                        dbc.push((n, a));
                    }
                }
            }
            self.devices.push(Layout { name: lv(name), pci_address: pci, driver, status, numeric, dbc });
        }
    }
}

impl SysfsReader for AccelReader {
    type Readings = AccelReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<AccelReadings, ReadError> {
        let class = class_dir(&self.root, "accel");
        let names: Vec<String> = list_class(io, &class)?.into_iter().map(|e| e.name).collect();
        if self.rescan.needed(&names, io) {
            self.discover(io, &class, &names);
            self.rescan.done(names, io);
        }
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let status = d.status.as_ref().and_then(|a| io.read_text(a).ok());
            let values = d
                .numeric
                .iter()
                .filter_map(|(field, a)| {
                    Some((*field, field.to_base(read_value(io, a, &mut self.rescan, field.bounds())?)))
                })
                .collect();
            let dbc_states = d
                .dbc
                .iter()
                .filter_map(|(n, a)| Some((*n, read_value(io, a, &mut self.rescan, &plausible::COUNT)?)))
                .collect();
            devices.push(AccelDevice {
                name: d.name.clone(),
                pci_address: d.pci_address.clone(),
                driver: d.driver.clone(),
                status,
                values,
                dbc_states,
            });
        }
        Ok(AccelReadings { devices })
    }
}
