//! Cooling devices: /sys/class/thermal/cooling_deviceN (fans, processor and device throttling states).

use std::path::{Path, PathBuf};

use config::Filter;

use super::{Attr, ReadError, Rescan, SysfsIo, SysfsReader, class_dir, list_class, plausible, read_static, read_value};
use crate::catalogue;
use crate::export::{Families, LabelValue, labels, lv};

#[derive(Debug, Clone, PartialEq)]
pub struct CoolingDevice {
    /// N of cooling_deviceN, the `name` label as node_exporter sets it.
    pub name: LabelValue,
    pub device_type: LabelValue,
    /// 0 = no cooling .. max_state. Some drivers report -1 (intel_powerclamp when idle).
    pub cur_state: Option<f64>,
    pub max_state: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct CoolingReadings {
    pub devices: Vec<CoolingDevice>,
}

impl CoolingReadings {
    pub fn export(&self, out: &mut Families) {
        for d in &self.devices {
            let labels = || labels![("name", d.name.clone()), ("type", d.device_type.clone())];
            if let Some(v) = d.cur_state {
                out.sample(&catalogue::COOLING_DEVICE_CUR_STATE, labels(), v);
            }
            if let Some(v) = d.max_state {
                out.sample(&catalogue::COOLING_DEVICE_MAX_STATE, labels(), v);
            }
        }
    }
}

struct Layout {
    name: LabelValue,
    device_type: LabelValue,
    cur: Option<Attr>,
    /// Read at discovery: the number of states changes only with the driver.
    max: Option<f64>,
}

pub struct CoolingReader {
    root: PathBuf,
    filter: Filter,
    devices: Vec<Layout>,
    rescan: Rescan,
}

impl CoolingReader {
    /// `filter` matches the device type (e.g. "Processor", "intel_powerclamp").
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        CoolingReader { root: sysfs_root.to_owned(), filter, devices: Vec::new(), rescan: Rescan::default() }
    }
}

impl SysfsReader for CoolingReader {
    type Readings = CoolingReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<CoolingReadings, ReadError> {
        let class = class_dir(&self.root, "thermal");
        let names: Vec<String> =
            list_class(io, &class)?.into_iter().map(|e| e.name).filter(|n| n.starts_with("cooling_device")).collect();
        if self.rescan.needed(&names, io) {
            self.devices.clear();
            for name in &names {
                let dir = class.join(name);
                let Ok(device_type) = io.read_once(&dir.join("type")) else {
                    continue;
                };
                if !self.filter.allows(&device_type) {
                    continue;
                }
                self.devices.push(Layout {
                    name: lv(name.trim_start_matches("cooling_device")),
                    device_type: lv(device_type),
                    cur: io.open(dir.join("cur_state").as_path()).ok(),
                    max: read_static(io, &dir.join("max_state"), &plausible::COUNT),
                });
            }
            self.rescan.done(names, io);
        }
        let devices = self
            .devices
            .iter()
            .map(|d| CoolingDevice {
                name: d.name.clone(),
                device_type: d.device_type.clone(),
                cur_state: d.cur.as_ref().and_then(|a| read_value(io, a, &mut self.rescan, &plausible::COUNT)),
                max_state: d.max,
            })
            .collect();
        Ok(CoolingReadings { devices })
    }
}
