//! Thermal zones: /sys/class/thermal/thermal_zoneN with their trip points.
//!
//! A zone whose temperature cannot be read is reported without a temperature (and counted); unlike
//! node_exporter 1.5 it does not fail the other zones.

use std::path::{Path, PathBuf};

use config::Filter;

use super::{Attr, ReadError, Rescan, SysfsIo, SysfsReader, class_dir, list_class, plausible, read_static, read_value};
use crate::catalogue;
use crate::export::{Families, LabelValue, labels, lv};

#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    /// The trip number M of trip_point_M_*.
    pub trip: LabelValue,
    /// active, passive, hot or critical.
    pub trip_type: LabelValue,
    pub temp_celsius: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// N of thermal_zoneN, the `zone` label as node_exporter sets it.
    pub zone: LabelValue,
    /// The zone's `type`, e.g. "x86_pkg_temp" or "acpitz".
    pub zone_type: LabelValue,
    pub temp_celsius: Option<f64>,
    pub trips: Vec<Trip>,
    /// `mode`: Some(true) enabled, Some(false) disabled, None if the zone has no mode file.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct ThermalReadings {
    pub zones: Vec<Zone>,
}

impl ThermalReadings {
    /// The first zone of a type, e.g. for binding a device to "acpitz".
    pub fn by_type(&self, zone_type: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| &*z.zone_type == zone_type)
    }

    pub fn export(&self, out: &mut Families) {
        for z in &self.zones {
            if let Some(t) = z.temp_celsius {
                out.sample(
                    &catalogue::THERMAL_ZONE_TEMP,
                    labels![("zone", z.zone.clone()), ("type", z.zone_type.clone())],
                    t,
                );
            }
            for trip in &z.trips {
                let Some(t) = trip.temp_celsius else { continue };
                out.sample(
                    &catalogue::THERMAL_ZONE_TRIP_POINT,
                    vec![
                        ("zone", z.zone.clone()),
                        ("type", z.zone_type.clone()),
                        ("trip", trip.trip.clone()),
                        ("trip_type", trip.trip_type.clone()),
                    ],
                    t,
                );
            }
        }
    }
}

struct ZoneLayout {
    zone: LabelValue,
    zone_type: LabelValue,
    temp: Option<Attr>,
    mode: Option<Attr>,
    /// (trip, trip type, temperature in Celsius): trip points are read at discovery only, they change on
    /// a driver reload or an operator's write.
    trips: Vec<(LabelValue, LabelValue, Option<f64>)>,
}

pub struct ThermalReader {
    root: PathBuf,
    filter: Filter,
    zones: Vec<ZoneLayout>,
    rescan: Rescan,
}

impl ThermalReader {
    /// `filter` matches the zone type.
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        ThermalReader { root: sysfs_root.to_owned(), filter, zones: Vec::new(), rescan: Rescan::default() }
    }

    fn discover(&mut self, io: &mut SysfsIo, class: &Path, names: &[String]) {
        self.zones.clear();
        for name in names {
            let Some(n) = name.strip_prefix("thermal_zone") else {
                continue;
            };
            let dir = class.join(name);
            // Without a type the zone cannot be labelled; the failure is counted by read_once.
            let Ok(zone_type) = io.read_once(&dir.join("type")) else {
                continue;
            };
            if !self.filter.allows(&zone_type) {
                continue;
            }
            let mut trips = Vec::new();
            for m in 0.. {
                let ty = dir.join(format!("trip_point_{m}_type"));
                let Some(trip_type) = io.read_optional(&ty) else {
                    break;
                };
                let temp = dir.join(format!("trip_point_{m}_temp"));
                if temp.exists() {
                    let celsius = read_static(io, &temp, &plausible::TEMP_LIMIT_MILLI_C).map(|m| m / 1000.0);
                    trips.push((lv(m.to_string()), lv(trip_type), celsius));
                }
            }
            let mode = dir.join("mode");
            self.zones.push(ZoneLayout {
                zone: lv(n),
                zone_type: lv(zone_type),
                temp: io.open(dir.join("temp").as_path()).ok(),
                mode: if mode.exists() { io.open(mode.as_path()).ok() } else { None },
                trips,
            });
        }
    }
}

impl SysfsReader for ThermalReader {
    type Readings = ThermalReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<ThermalReadings, ReadError> {
        let class = class_dir(&self.root, "thermal");
        let names: Vec<String> =
            list_class(io, &class)?.into_iter().map(|e| e.name).filter(|n| n.starts_with("thermal_zone")).collect();
        if self.rescan.needed(&names, io) {
            self.discover(io, &class, &names);
            self.rescan.done(names, io);
        }
        let mut zones = Vec::with_capacity(self.zones.len());
        for z in &self.zones {
            let temp_celsius = z
                .temp
                .as_ref()
                .and_then(|a| read_value(io, a, &mut self.rescan, &plausible::TEMP_MILLI_C))
                .map(|m| m / 1000.0);
            let enabled = z.mode.as_ref().and_then(|a| io.read(a).ok().map(|m| m == "enabled"));
            let trips = z
                .trips
                .iter()
                .map(|(trip, trip_type, celsius)| Trip {
                    trip: trip.clone(),
                    trip_type: trip_type.clone(),
                    temp_celsius: *celsius,
                })
                .collect();
            zones.push(Zone { zone: z.zone.clone(), zone_type: z.zone_type.clone(), temp_celsius, trips, enabled });
        }
        Ok(ThermalReadings { zones })
    }
}
