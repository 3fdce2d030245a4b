//! The host sysfs collectors behind one type, so the agent can schedule them uniformly while the device
//! model still gets typed readings.

use std::path::Path;

use config::{CollectorKind, CollectorSettings};

use crate::export::Families;
use crate::resources::{ResourceReadings, ResourcesOptions, ResourcesReader};
use crate::sysfs::accel::{AccelReader, AccelReadings};
use crate::sysfs::cooling::{CoolingReader, CoolingReadings};
use crate::sysfs::hwmon::{HwmonOptions, HwmonReader, HwmonReadings};
use crate::sysfs::pci_aer::{PciAerReader, PciAerReadings};
use crate::sysfs::power_supply::{PowerSupplyReader, PowerSupplyReadings};
use crate::sysfs::powercap::{PowercapReader, PowercapReadings};
use crate::sysfs::thermal::{ThermalReader, ThermalReadings};
use crate::sysfs::{ReadError, SysfsIo, SysfsReader};

/// The result of one collection of one host collector.
#[derive(Debug, Clone)]
pub enum HostReadings {
    Hwmon(HwmonReadings),
    ThermalZone(ThermalReadings),
    CoolingDevice(CoolingReadings),
    PowerSupply(PowerSupplyReadings),
    Powercap(PowercapReadings),
    PciAer(PciAerReadings),
    Accel(AccelReadings),
    Resources(Box<ResourceReadings>),
}

impl HostReadings {
    pub fn export(&self, out: &mut Families) {
        match self {
            HostReadings::Hwmon(r) => r.export(out),
            HostReadings::ThermalZone(r) => r.export(out),
            HostReadings::CoolingDevice(r) => r.export(out),
            HostReadings::PowerSupply(r) => r.export(out),
            HostReadings::Powercap(r) => r.export(out),
            HostReadings::PciAer(r) => r.export(out),
            HostReadings::Accel(r) => r.export(out),
            HostReadings::Resources(r) => crate::resources::export(r, out),
        }
    }

    /// How many objects (chips, zones, supplies, ...) the collection found, for the landing page.
    pub fn object_count(&self) -> usize {
        match self {
            HostReadings::Hwmon(r) => r.layout.chips.len(),
            HostReadings::ThermalZone(r) => r.zones.len(),
            HostReadings::CoolingDevice(r) => r.devices.len(),
            HostReadings::PowerSupply(r) => r.supplies.len(),
            HostReadings::Powercap(r) => r.zones.len(),
            HostReadings::PciAer(r) => r.devices.len(),
            HostReadings::Accel(r) => r.devices.len(),
            HostReadings::Resources(r) => r.filesystems.len() + r.disks.len() + r.network.len(),
        }
    }
}

type CollectFn = Box<dyn FnMut(&mut SysfsIo) -> Result<HostReadings, ReadError> + Send>;

/// A host collector, ready to run on a worker thread.
pub struct HostCollector {
    pub kind: CollectorKind,
    collect: CollectFn,
}

impl HostCollector {
    pub fn new(settings: &CollectorSettings, sysfs_root: &Path) -> HostCollector {
        let f = settings.filter.clone();
        let collect: CollectFn = match settings.kind {
            CollectorKind::Hwmon => boxed(
                HwmonReader::new(
                    sysfs_root,
                    HwmonOptions { chip_filter: f, sensor_filter: settings.sensor_filter.clone() },
                ),
                HostReadings::Hwmon,
            ),
            CollectorKind::ThermalZone => boxed(ThermalReader::new(sysfs_root, f), HostReadings::ThermalZone),
            CollectorKind::CoolingDevice => boxed(CoolingReader::new(sysfs_root, f), HostReadings::CoolingDevice),
            CollectorKind::PowerSupply => boxed(PowerSupplyReader::new(sysfs_root, f), HostReadings::PowerSupply),
            CollectorKind::Powercap => boxed(PowercapReader::new(sysfs_root, f), HostReadings::Powercap),
            CollectorKind::PciAer => {
                let o = settings.pci_aer.clone().unwrap_or_default();
                boxed(PciAerReader::with_options(sysfs_root, f, o.per_error, o.device_addresses), HostReadings::PciAer)
            }
            CollectorKind::Accel => boxed(AccelReader::new(sysfs_root, f), HostReadings::Accel),
            CollectorKind::Resources => resources(settings.resources.clone().unwrap_or_default()),
        };
        HostCollector { kind: settings.kind, collect }
    }

    pub fn collect(&mut self, io: &mut SysfsIo) -> Result<HostReadings, ReadError> {
        (self.collect)(io)
    }
}

/// Host resources read procfs and statvfs themselves, not through the sysfs attribute cache.
fn resources(section: config::ResourcesSection) -> CollectFn {
    let pattern = |p: Option<config::Pattern>, default: &str| {
        config::Filter::new(None, p.or_else(|| config::Pattern::new(default).ok()))
    };
    let options = ResourcesOptions {
        rootfs: section.rootfs,
        fs_types: pattern(section.fs_types_exclude, crate::resources::DEFAULT_FS_TYPES_EXCLUDE),
        mount_points: pattern(section.mount_points_exclude, crate::resources::DEFAULT_MOUNT_POINTS_EXCLUDE),
        disk_devices: pattern(section.disk_devices_exclude, crate::resources::DEFAULT_DISK_DEVICES_EXCLUDE),
        network_devices: pattern(section.network_devices_exclude, crate::resources::DEFAULT_NETWORK_DEVICES_EXCLUDE),
        ..ResourcesOptions::default()
    };
    let mut reader = ResourcesReader::new(&section.proc_root, options);
    Box::new(move |_io| match reader.read() {
        Ok(r) => {
            for p in &r.problems {
                tracing::debug!("resources: {p}");
            }
            Ok(HostReadings::Resources(Box::new(r)))
        }
        Err(e) => Err(ReadError { path: section.proc_root.clone(), failure: crate::sysfs::ReadFailure::NotFound })
            .inspect_err(|_| tracing::debug!("resources: {e}")),
    })
}

fn boxed<R: SysfsReader>(mut reader: R, wrap: fn(R::Readings) -> HostReadings) -> CollectFn {
    Box::new(move |io| reader.collect(io).map(wrap))
}
