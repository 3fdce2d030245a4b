//! The readers against fake sysfs trees with the shapes real machines produce: clashing chip names,
//! chips without device links, odd whitespace, negative temperatures, partial sensors, directories where
//! files belong, files and chips that vanish or appear between collections.

use accel_sim::sysfs_tree::FakeSysfs;
use collectors::Families;
use collectors::sysfs::hwmon::{HwmonOptions, HwmonReader};
use collectors::sysfs::pci_aer::PciAerReader;
use collectors::sysfs::power_supply::PowerSupplyReader;
use collectors::sysfs::powercap::PowercapReader;
use collectors::sysfs::thermal::ThermalReader;
use collectors::sysfs::{Quarantine, ReadFailure, ReadWatch, SysfsIo, SysfsReader};
use config::{Filter, Pattern};

fn io() -> SysfsIo {
    SysfsIo::new(ReadWatch::new(Quarantine::new()))
}

fn hwmon(fs: &FakeSysfs, io: &mut SysfsIo) -> Families {
    hwmon_with(fs, io, HwmonOptions::default())
}

fn hwmon_with(fs: &FakeSysfs, io: &mut SysfsIo, opts: HwmonOptions) -> Families {
    let mut reader = HwmonReader::new(fs.root(), opts);
    let mut f = Families::new();
    reader.collect(io).unwrap().export(&mut f);
    f
}

#[test]
fn clashing_chip_names_get_a_suffix_from_their_name_or_hwmon_number() {
    let fs = FakeSysfs::new();
    // Same device, different names: the name separates them.
    fs.hwmon(0, Some("asus"), Some("devices/platform/asus-nb-wmi")).attr("temp1_input", "40000");
    fs.hwmon(1, Some("asus_wmi_sensors"), Some("devices/platform/asus-nb-wmi")).attr("temp1_input", "41000");
    // Same device and same name: only the hwmon number separates them.
    fs.hwmon(2, Some("nvme"), Some("devices/pci0000:00/0000:00:01.0")).attr("temp1_input", "42000");
    fs.hwmon(3, Some("nvme"), Some("devices/pci0000:00/0000:00:01.0")).attr("temp1_input", "43000");
    let f = hwmon(&fs, &mut io());
    let t = |chip: &str| f.value("accel_hwmon_temp_celsius", &[("chip", chip), ("sensor", "temp1")]);
    assert_eq!(t("platform_asus_nb_wmi_asus"), Some(40.0));
    assert_eq!(t("platform_asus_nb_wmi_asus_wmi_sensors"), Some(41.0));
    assert_eq!(t("pci0000:00_0000:00:01_0_hwmon2"), Some(42.0));
    assert_eq!(t("pci0000:00_0000:00:01_0_hwmon3"), Some(43.0));
    assert_eq!(f.get("accel_hwmon_temp_celsius").unwrap().samples.len(), 4, "no series lost to a clash");
}

#[test]
fn chip_without_device_link_is_named_by_its_name_file_else_its_number() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("acpitz"), None).attr("temp1_input", "27800");
    fs.hwmon(1, None, None).attr("temp1_input", "30000");
    let f = hwmon(&fs, &mut io());
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[("chip", "acpitz")]), Some(27.8));
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[("chip", "hwmon1")]), Some(30.0));
    assert_eq!(f.value("accel_hwmon_chip_names", &[("chip", "acpitz"), ("chip_name", "acpitz")]), Some(1.0));
}

#[test]
fn whitespace_negative_values_and_partial_sensors() {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("board"), Some("devices/platform/board.0"));
    chip.attr("temp1_input", "  -12500 \t");
    chip.attr("temp2_max", "85000"); // a sensor with only a limit
    chip.attr("in0_input", "1200\n\n");
    chip.attr("temp1_label", "  Ambient  ");
    let f = hwmon(&fs, &mut io());
    let chip = ("chip", "platform_board_0");
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp1")]), Some(-12.5));
    assert_eq!(f.value("accel_hwmon_temp_max_celsius", &[chip, ("sensor", "temp2")]), Some(85.0));
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp2")]), None, "no input, no reading");
    assert_eq!(f.value("accel_hwmon_in_volts", &[chip, ("sensor", "in0")]), Some(1.2));
    assert_eq!(f.value("accel_hwmon_sensor_label", &[chip, ("sensor", "temp1"), ("label", "Ambient")]), Some(1.0));
}

#[test]
fn unreadable_values_are_absent_and_counted_never_zero() {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("board"), Some("devices/platform/board.0"));
    chip.attr("temp1_input", "45000");
    chip.attr("temp2_input", "N/A");
    fs.mkdir(&format!("{}/temp3_input", chip.dir())); // a directory where a file belongs
    fs.mkdir(&format!("{}/power", chip.dir())); // runtime PM directory: normal, not an error
    let mut io = io();
    let f = hwmon(&fs, &mut io);
    let chip = ("chip", "platform_board_0");
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp1")]), Some(45.0));
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp2")]), None);
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp3")]), None);
    let stats = io.take_stats();
    assert_eq!(stats.get(ReadFailure::Parse), 1);
    assert_eq!(stats.get(ReadFailure::NotAFile), 1);
    assert_eq!(stats.total(), 2);
}

#[test]
fn chips_that_vanish_or_appear_between_collections() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("a"), Some("devices/platform/a.0")).attr("temp1_input", "40000");
    let mut io = io();
    let mut reader = HwmonReader::new(fs.root(), HwmonOptions::default());
    assert_eq!(reader.collect(&mut io).unwrap().layout.chips.len(), 1);

    // Hot-plug: a chip appears.
    fs.hwmon(1, Some("b"), Some("devices/platform/b.0")).attr("temp1_input", "50000");
    let r = reader.collect(&mut io).unwrap();
    let mut f = Families::new();
    r.export(&mut f);
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[("chip", "platform_b_0")]), Some(50.0));

    // A value file vanishes while the chip is known: absent, counted, and the chip is re-scanned.
    fs.remove("devices/platform/b.0/hwmon/hwmon1/temp1_input");
    let r = reader.collect(&mut io).unwrap();
    let mut f = Families::new();
    r.export(&mut f);
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[("chip", "platform_a_0")]), Some(40.0));

    // Unplug: the chip's directory and class link go away.
    fs.remove("class/hwmon/hwmon1").remove("devices/platform/b.0");
    let r = reader.collect(&mut io).unwrap();
    assert_eq!(r.layout.chips.iter().map(|c| &*c.chip).collect::<Vec<_>>(), vec!["platform_a_0"]);
    assert!(io.take_stats().total() <= 2, "removals cost at most the reads that raced them");
}

#[test]
fn chip_and_sensor_filters() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("coretemp"), Some("devices/platform/coretemp.0"))
        .attr("temp1_input", "40000")
        .attr("temp2_input", "41000");
    fs.hwmon(1, Some("nvme"), Some("devices/pci0000:00/0000:01:00.0/nvme/nvme0")).attr("temp1_input", "35000");
    let opts = HwmonOptions {
        chip_filter: Filter::new(None, Some(Pattern::new("^nvme").unwrap())),
        sensor_filter: Filter::new(None, Some(Pattern::new(";temp2$").unwrap())),
    };
    let f = hwmon_with(&fs, &mut io(), opts);
    let s = &f.get("accel_hwmon_temp_celsius").unwrap().samples;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].label("chip"), Some("platform_coretemp_0"));
    assert_eq!(s[0].label("sensor"), Some("temp1"));
}

#[test]
fn pci_address_of_a_chip_under_a_pci_device() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("habanalabs"), Some("devices/pci0000:00/0000:00:02.0/0000:3b:00.0")).attr("temp1_input", "60000");
    let r = HwmonReader::new(fs.root(), HwmonOptions::default()).collect(&mut io()).unwrap();
    assert_eq!(r.layout.chips[0].pci_address.as_deref(), Some("0000:3b:00.0"));
    assert_eq!(r.layout.chips[0].raw_name.as_deref(), Some("habanalabs"));
}

#[test]
fn thermal_zone_with_unreadable_temp_keeps_its_trips_and_the_other_zones() {
    let fs = FakeSysfs::new();
    fs.thermal_zone(0, "x86_pkg_temp", 47000).trip_point(0, 0, "passive", 95000).trip_point(0, 1, "critical", 105000);
    fs.thermal_zone(1, "acpitz", 0).write("devices/virtual/thermal/thermal_zone1/temp", "garbage\n");
    fs.thermal_zone(2, "iwlwifi_1", -1000);
    let mut f = Families::new();
    ThermalReader::new(fs.root(), Filter::default()).collect(&mut io()).unwrap().export(&mut f);
    assert_eq!(f.value("accel_thermal_zone_temp_celsius", &[("zone", "0"), ("type", "x86_pkg_temp")]), Some(47.0));
    assert_eq!(f.value("accel_thermal_zone_temp_celsius", &[("zone", "1")]), None);
    assert_eq!(f.value("accel_thermal_zone_temp_celsius", &[("zone", "2")]), Some(-1.0));
    assert_eq!(
        f.value("accel_thermal_zone_trip_point_celsius", &[("zone", "0"), ("trip", "1"), ("trip_type", "critical")]),
        Some(105.0)
    );
}

#[test]
fn powercap_energy_is_corrected_across_a_wrap() {
    let fs = FakeSysfs::new();
    fs.powercap_zone("0", "package-0", 999_000_000, 1_000_000_000);
    let mut io = io();
    let mut reader = PowercapReader::new(fs.root(), Filter::default());
    let energy = |reader: &mut PowercapReader, io: &mut SysfsIo| {
        let mut f = Families::new();
        reader.collect(io).unwrap().export(&mut f);
        (
            f.value("accel_powercap_energy_joules_total", &[("zone", "intel-rapl:0"), ("name", "package-0")]),
            f.value("accel_rapl_package_joules_total", &[("index", "0")]),
            f.value("accel_powercap_power_limit_watts", &[("constraint", "long_term")]),
        )
    };
    assert_eq!(energy(&mut reader, &mut io), (Some(999.0), Some(999.0), Some(150.0)));
    // The counter wraps at 1000 J: 1 J to the top, then 2 J from zero.
    fs.write("devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj", "2000000\n");
    assert_eq!(energy(&mut reader, &mut io), (Some(1002.0), Some(1002.0), Some(150.0)));
}

#[test]
fn power_supply_values_and_info() {
    let fs = FakeSysfs::new();
    fs.power_supply(
        "loihi2",
        &[
            ("type", "Mains"),
            ("online", "1"),
            ("energy_now", "1250000"),
            ("power_now", "12500000"),
            ("voltage_now", "x"),
        ],
    );
    let mut io = io();
    let mut f = Families::new();
    PowerSupplyReader::new(fs.root(), Filter::default()).collect(&mut io).unwrap().export(&mut f);
    let l = [("power_supply", "loihi2")];
    assert_eq!(f.value("accel_power_supply_energy_watthour", &l), Some(1.25));
    assert_eq!(f.value("accel_power_supply_power_watt", &l), Some(12.5));
    assert_eq!(f.value("accel_power_supply_online", &l), Some(1.0));
    assert_eq!(f.value("accel_power_supply_voltage_volt", &l), None);
    assert_eq!(f.value("accel_power_supply_info", &[("power_supply", "loihi2"), ("type", "Mains")]), Some(1.0));
    assert_eq!(io.take_stats().get(ReadFailure::Parse), 1);
}

#[test]
fn aer_counters_by_severity_and_error() {
    let fs = FakeSysfs::new();
    fs.pci_device("0000:3b:00.0", &[("RxErr", 3), ("Bad TLP", 1)], &[("Undefined", 0)], &[("Surprise Down Error", 2)]);
    let mut f = Families::new();
    PciAerReader::new(fs.root(), Filter::default()).collect(&mut io()).unwrap().export(&mut f);
    let v = |sev: &str, err: &str| {
        f.value("accel_pci_aer_errors_total", &[("pci_address", "0000:3b:00.0"), ("severity", sev), ("error", err)])
    };
    assert_eq!(v("correctable", "RxErr"), Some(3.0));
    assert_eq!(v("correctable", "Bad TLP"), Some(1.0));
    assert_eq!(v("fatal", "Surprise Down Error"), Some(2.0));
    assert_eq!(v("correctable", "TOTAL_ERR_COR"), None, "totals are derivable and left out");
}

#[test]
fn missing_classes_are_empty_not_failures() {
    let fs = FakeSysfs::new();
    let mut io = io();
    assert!(HwmonReader::new(fs.root(), HwmonOptions::default()).collect(&mut io).unwrap().layout.chips.is_empty());
    assert!(ThermalReader::new(fs.root(), Filter::default()).collect(&mut io).unwrap().zones.is_empty());
    assert_eq!(io.take_stats().total(), 0);
}

#[test]
fn accel_class_devices_by_driver() {
    use collectors::sysfs::accel::{AccelReader, Field};
    let fs = FakeSysfs::new();
    fs.accel_device(
        0,
        "0000:3b:00.0",
        "habanalabs",
        &[("status", "In reset"), ("hard_reset_cnt", "2"), ("max_power", "350000"), ("clk_cur_freq_mhz", "1800")],
    );
    fs.accel_device(1, "0000:3c:00.0", "qaic", &[("ce_count", "4"), ("ue_count", "1"), ("dbc0_state", "3")]);
    fs.accel_device(2, "0000:3d:00.0", "intel_vpu", &[("npu_busy_time_us", "2500000")]);
    let mut io = io();
    let r = AccelReader::new(fs.root(), Filter::default()).collect(&mut io).unwrap();
    let hl = r.by_pci("0000:3b:00.0").unwrap();
    assert_eq!(hl.driver.as_deref(), Some("habanalabs"));
    assert_eq!(hl.operational(), Some(false));
    assert_eq!(hl.value(Field::MaxPowerWatts), Some(350.0));
    assert_eq!(hl.value(Field::ClockCurrentHz), Some(1.8e9));
    let q = r.by_pci("0000:3c:00.0").unwrap();
    assert_eq!(q.operational(), None, "qaic publishes no status");
    assert_eq!(q.value(Field::UncorrectableErrors), Some(1.0));
    assert_eq!(q.dbc_states, vec![(0, 3.0)]);
    let mut f = Families::new();
    r.export(&mut f);
    assert_eq!(f.value("accel_class_status", &[("accel", "accel0"), ("status", "In reset")]), Some(1.0));
    assert_eq!(f.value("accel_class_busy_seconds_total", &[("accel", "accel2")]), Some(2.5));
    assert_eq!(f.value("accel_class_ras_errors_total", &[("accel", "accel1"), ("type", "ce")]), Some(4.0));
    assert_eq!(
        f.value("accel_class_device_info", &[("accel", "accel1"), ("pci_address", "0000:3c:00.0"), ("driver", "qaic")]),
        Some(1.0)
    );
    assert_eq!(io.take_stats().total(), 0);
}

#[test]
fn implausible_values_are_dropped_and_counted_never_exported() {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("board"), Some("devices/platform/board.0"));
    chip.attr("temp1_input", "45000");
    chip.attr("temp1_max", "9999999999999999999999");
    chip.attr("temp2_input", "251000");
    chip.attr("temp3_input", "-61000");
    chip.attr("temp3_min", "-273150"); // the kernel's "no limit"
    chip.attr("energy1_input", "-5");
    chip.attr("power1_input", "-1000000");
    let mut io = io();
    let f = hwmon(&fs, &mut io);
    let chip = ("chip", "platform_board_0");
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp1")]), Some(45.0));
    assert_eq!(f.value("accel_hwmon_temp_max_celsius", &[chip, ("sensor", "temp1")]), None);
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp2")]), None);
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[chip, ("sensor", "temp3")]), None);
    assert_eq!(f.value("accel_hwmon_temp_min_celsius", &[chip, ("sensor", "temp3")]), Some(-273_150.0 * 0.001));
    assert_eq!(f.value("accel_hwmon_energy_joule_total", &[chip, ("sensor", "energy1")]), None);
    assert_eq!(f.value("accel_hwmon_power_watt", &[chip, ("sensor", "power1")]), None);
    assert_eq!(io.take_stats().get(ReadFailure::Implausible), 5);

    // A thermal zone at 300 °C, a power supply at 26 °C with negative energy.
    fs.thermal_zone(0, "x86_pkg_temp", 300_000).trip_point(0, 0, "critical", 105_000);
    fs.power_supply("loihi2", &[("energy_now", "-1"), ("temp", "260")]);
    let mut f = Families::new();
    ThermalReader::new(fs.root(), Filter::default()).collect(&mut io).unwrap().export(&mut f);
    PowerSupplyReader::new(fs.root(), Filter::default()).collect(&mut io).unwrap().export(&mut f);
    assert_eq!(f.value("accel_thermal_zone_temp_celsius", &[("zone", "0")]), None);
    assert_eq!(f.value("accel_thermal_zone_trip_point_celsius", &[("zone", "0"), ("trip", "0")]), Some(105.0));
    let l = [("power_supply", "loihi2")];
    assert_eq!(f.value("accel_power_supply_energy_watthour", &l), None);
    assert_eq!(f.value("accel_power_supply_temp_celsius", &l), Some(26.0));
    assert_eq!(io.take_stats().get(ReadFailure::Implausible), 2);
}

#[test]
fn a_powercap_counter_beyond_its_range_does_not_inflate_the_total() {
    let fs = FakeSysfs::new();
    fs.powercap_zone("0", "package-0", 5_000_000, 1_000_000_000);
    let mut io = io();
    let mut reader = PowercapReader::new(fs.root(), Filter::default());
    let mut energy = |io: &mut SysfsIo| {
        let mut f = Families::new();
        reader.collect(io).unwrap().export(&mut f);
        f.value("accel_powercap_energy_joules_total", &[("zone", "intel-rapl:0"), ("name", "package-0")])
    };
    assert_eq!(energy(&mut io), Some(5.0));
    let path = "devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj";
    fs.write(path, "100000000000000000000\n");
    assert_eq!(energy(&mut io), None, "1e20 µJ is beyond the 1000 J range");
    fs.write(path, "-7\n");
    assert_eq!(energy(&mut io), None);
    assert_eq!(io.take_stats().get(ReadFailure::Implausible), 2);
    fs.write(path, "6000000\n");
    assert_eq!(energy(&mut io), Some(6.0), "the total goes on from the last plausible reading");
}
