//! Binding: which of the host's readings belong to a device, one source kind at a time (hwmon chips,
//! a thermal zone, a power supply, an accel class device, a SpiNNaker board's BMP), turned into the
//! device's readings in base units and the names of the sources they came from.

use collectors::HostReadings;
use collectors::sysfs::hwmon::{Chip, HwmonReadings};
use config::{CollectorKind, DeviceConfig};

use super::conditions::DriverStatus;
use super::host::HostEvidence;
use super::spinnaker::BoardReading;
use super::view::{Reading, Readings, ThresholdReading};

/// What a device's sources say in one host snapshot.
#[derive(Debug, Default)]
pub(super) struct Bound {
    pub readings: Readings,
    /// `kind:name` of each source bound, in the order bound.
    pub sources: Vec<String>,
    /// The first bound hwmon chip's driver name.
    pub hwmon_driver: Option<String>,
    /// The accel class device's driver.
    pub accel_driver: Option<String>,
    pub driver_status: Option<DriverStatus>,
    pub board: Option<BoardReading>,
}

/// Binds the device's sources in `snap`: its hwmon chips (by `hwmon_name`, or all of its PCI address's),
/// its thermal zone, its power supply (`power_supply`), its accel device (by PCI address) and its board.
pub(super) fn bind(
    config: &DeviceConfig,
    hwmon_name: Option<&str>,
    power_supply: Option<&str>,
    snap: &HostEvidence,
) -> Bound {
    let mut b = Bound::default();
    if let Some(HostReadings::Hwmon(h)) = snap.readings(CollectorKind::Hwmon) {
        hwmon(h, config.pci_address.as_deref(), hwmon_name, &mut b);
    }
    if let (Some(zone_type), Some(HostReadings::ThermalZone(t))) =
        (&config.thermal_zone, snap.readings(CollectorKind::ThermalZone))
        && let Some(z) = t.by_type(zone_type)
    {
        b.sources.push(format!("thermal_zone:{}", z.zone_type));
        let sensor = format!("zone_{}", z.zone_type);
        if let Some(v) = z.temp_celsius {
            b.readings.temperature_celsius.push(Reading { sensor: sensor.clone(), value: v });
        }
        for trip in &z.trips {
            if let Some(v) = trip.temp_celsius {
                let level = trip.trip_type.to_string();
                b.readings.temperature_threshold_celsius.push(ThresholdReading {
                    sensor: sensor.clone(),
                    level,
                    value: v,
                });
            }
        }
    }
    if let (Some(name), Some(HostReadings::PowerSupply(p))) = (power_supply, snap.readings(CollectorKind::PowerSupply))
        && let Some(s) = p.get(name)
    {
        b.sources.push(format!("power_supply:{name}"));
        power_supply_readings(name, |attr| s.raw(attr), &mut b.readings);
    }
    if let (Some(pci), Some(HostReadings::Accel(a))) = (&config.pci_address, snap.readings(CollectorKind::Accel))
        && let Some(dev) = a.by_pci(pci)
    {
        b.sources.push(format!("accel:{}", dev.name));
        b.accel_driver = dev.driver.as_ref().map(|d| d.to_string());
        if let Some(status) = &dev.status {
            // A status the driver publishes is operational or not; an unknown one does not say offline.
            let operational = dev.operational() != Some(false);
            b.driver_status = Some(DriverStatus { status: status.clone(), operational });
        }
        b.readings.power_limit_watts = dev.value(collectors::sysfs::accel::Field::MaxPowerWatts);
    }
    if let Some(bmp) = &config.bmp
        && let Some(reading) = snap.board(&config.id)
    {
        b.sources.push(format!("bmp:{}/{}", bmp.address, bmp.board));
        board(reading, &mut b.readings);
        b.board = Some(reading.clone());
    }
    b
}

/// The chips of the device's PCI address (another board's chip may have the same name), else those named
/// `name`.
fn hwmon(h: &HwmonReadings, pci: Option<&str>, name: Option<&str>, b: &mut Bound) {
    let chips = h.layout.chips.iter().filter(|c| match pci {
        Some(p) => c.pci_address.as_deref() == Some(p),
        None => name.is_some_and(|n| c.raw_name.as_deref() == Some(n) || &*c.chip == n),
    });
    let chips: Vec<&Chip> = chips.collect();
    // A name matching several chips (coretemp: one per socket) would repeat their sensor names ("Core 0"
    // on each): then each sensor is named after its chip as well.
    let qualify = chips.len() > 1;
    for chip in chips {
        b.sources.push(format!("hwmon:{}", chip.chip));
        if b.hwmon_driver.is_none() {
            b.hwmon_driver = chip.raw_name.as_deref().map(str::to_owned);
        }
        bind_chip(h, chip, qualify, &mut b.readings);
    }
}

/// A power supply's attributes in base units: energy_now is in microwatt-hours (1 µWh = 3.6e-3 J),
/// power, voltage and current in micro-units, temp in tenths of a degree.
fn power_supply_readings(name: &str, raw: impl Fn(&str) -> Option<f64>, r: &mut Readings) {
    let reading =
        |attr: &str, convert: fn(f64) -> f64| raw(attr).map(|v| Reading { sensor: name.to_owned(), value: convert(v) });
    r.energy_joules.extend(reading("energy_now", |uwh| uwh * 3.6e-3));
    r.power_watts.extend(reading("power_now", |uw| uw / 1e6));
    r.voltage_volts.extend(reading("voltage_now", |uv| uv / 1e6));
    r.current_amperes.extend(reading("current_now", |ua| ua / 1e6));
    r.temperature_celsius.extend(reading("temp", |dt| dt / 10.0));
}

/// A SpiNNaker board's BMP sensors.
fn board(reading: &BoardReading, r: &mut Readings) {
    use collectors::spinnaker::SensorKind;
    let Some(status) = &reading.status else { return };
    for s in status.sensors() {
        let target = match s.kind {
            SensorKind::Temperature => &mut r.temperature_celsius,
            SensorKind::Voltage => &mut r.voltage_volts,
            SensorKind::Fan => &mut r.fan_rpm,
        };
        target.push(Reading { sensor: s.name.to_owned(), value: s.value });
    }
}

/// hwmon channels in base units, labelled by their `_label` when the chip has one (prefixed with the chip
/// when `qualify`).
fn bind_chip(h: &HwmonReadings, chip: &Chip, qualify: bool, r: &mut Readings) {
    for s in &chip.sensors {
        let sensor = s.label.as_deref().map(str::to_owned).unwrap_or_else(|| s.name.to_string());
        let sensor = if qualify { format!("{}/{sensor}", chip.chip) } else { sensor };
        let value = |element: &str| h.si(s, element);
        let (target, element) = match &*s.kind {
            "temp" => {
                for level in ["max", "crit", "emergency"] {
                    if let Some(v) = value(level) {
                        let (sensor, level) = (sensor.clone(), level.to_owned());
                        r.temperature_threshold_celsius.push(ThresholdReading { sensor, level, value: v });
                    }
                }
                (&mut r.temperature_celsius, value("input"))
            }
            "power" => (&mut r.power_watts, value("input").or_else(|| value("average"))),
            "energy" => (&mut r.energy_joules, value("input")),
            "in" => (&mut r.voltage_volts, value("input")),
            "curr" => (&mut r.current_amperes, value("input")),
            "fan" => (&mut r.fan_rpm, value("input")),
            _ => continue,
        };
        if let Some(v) = element {
            target.push(Reading { sensor, value: v });
        }
    }
}
