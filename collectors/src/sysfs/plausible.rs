//! Physical bounds of sysfs values, in the kernel's units. A value outside them is a broken driver, a
//! firmware glitch or a planted file, not a measurement: it is dropped (absent, never exported) and counted
//! as `accel_sysfs_read_errors_total{reason="implausible"}`. docs/metrics.md lists the bounds per unit.

use std::ops::RangeInclusive;

/// The largest value a u64 counter file can hold, as f64.
const U64_MAX: f64 = u64::MAX as f64;

/// The bounds of one kind of value, in its raw kernel unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds(pub RangeInclusive<f64>);

impl Bounds {
    pub fn allows(&self, raw: f64) -> bool {
        self.0.contains(&raw)
    }
}

/// A measured temperature in millidegrees Celsius: -60..250 °C.
pub const TEMP_MILLI_C: Bounds = Bounds(-60_000.0..=250_000.0);
/// A temperature limit in millidegrees Celsius: drivers write -273.15 °C for "no limit", so limits may
/// reach absolute zero; above 1000 °C is no limit of any semiconductor.
pub const TEMP_LIMIT_MILLI_C: Bounds = Bounds(-273_150.0..=1_000_000.0);
/// power_supply temperatures, in tenths of a degree Celsius: -60..250 °C.
pub const TEMP_DECI_C: Bounds = Bounds(-600.0..=2_500.0);
/// Energy counters (hwmon µJ, powercap µJ, power_supply µWh): never negative, at most a u64.
pub const ENERGY: Bounds = Bounds(0.0..=U64_MAX);
/// Power in microwatts: 0..1 MW.
pub const POWER_MICRO_W: Bounds = Bounds(0.0..=1e12);
/// Power in milliwatts (habanalabs max_power): 0..1 MW.
pub const POWER_MILLI_W: Bounds = Bounds(0.0..=1e9);
/// Fan speed in RPM.
pub const FAN_RPM: Bounds = Bounds(0.0..=1e6);
/// Voltage or current in milli-units: ±1 MV or MA is no circuit in a computer.
pub const MILLI_V_OR_A: Bounds = Bounds(-1e9..=1e9);
/// Counts and counters (error counts, resets, busy time, clocks, cooling states): never negative.
pub const COUNT: Bounds = Bounds(0.0..=U64_MAX);
/// Any other number: finite is all that is known.
pub const ANY: Bounds = Bounds(f64::MIN..=f64::MAX);

/// The bounds of an hwmon element `<kind><n>_<element>` (element "" for a bare value file).
pub fn hwmon(kind: &str, element: &str) -> Bounds {
    let measured = matches!(element, "input" | "" | "highest" | "lowest" | "average");
    let flag = element == "alarm"
        || element == "fault"
        || element == "beep"
        || element == "enable"
        || element == "type"
        || element.ends_with("_alarm")
        || element.ends_with("_beep");
    if flag {
        return ANY;
    }
    match kind {
        "temp" if element == "offset" => Bounds(-250_000.0..=250_000.0),
        "temp" if measured => TEMP_MILLI_C,
        "temp" => TEMP_LIMIT_MILLI_C,
        "energy" => ENERGY,
        "power"
            if matches!(element, "accuracy" | "average_interval" | "average_interval_min" | "average_interval_max") =>
        {
            COUNT
        }
        "power" => POWER_MICRO_W,
        "fan" => FAN_RPM,
        "in" | "curr" | "cpu" => MILLI_V_OR_A,
        _ => ANY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_per_unit() {
        assert!(hwmon("temp", "input").allows(45_000.0));
        assert!(!hwmon("temp", "input").allows(251_000.0));
        assert!(!hwmon("temp", "input").allows(-61_000.0));
        assert!(hwmon("temp", "min").allows(-273_150.0), "the kernel's 'no limit'");
        assert!(!hwmon("temp", "max").allows(9_999_999_999_999_999_999_999.0));
        assert!(!hwmon("energy", "input").allows(-1.0));
        assert!(hwmon("energy", "input").allows(18_446_744_073_709_551_615.0));
        assert!(!hwmon("power", "input").allows(-5.0));
        assert!(hwmon("temp", "crit_alarm").allows(1.0));
        assert!(!TEMP_DECI_C.allows(2_600.0));
    }
}
