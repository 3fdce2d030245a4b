//! Limits and labels are read at discovery and again every `rediscover_interval`, not every poll; values
//! that change between polls are read every poll; the open-files budget bounds the descriptors kept, and
//! files beyond it are still read (per read). Time is passed in, so the cadence is tested without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::{FakeSysfs, write_in_place};
use collectors::Families;
use collectors::sysfs::cooling::CoolingReader;
use collectors::sysfs::hwmon::{HwmonOptions, HwmonReader};
use collectors::sysfs::powercap::PowercapReader;
use collectors::sysfs::thermal::ThermalReader;
use collectors::sysfs::{OpenFiles, Quarantine, ReadWatch, SysfsIo, SysfsReader};
use config::Filter;

const MINUTE: Duration = Duration::from_secs(60);

fn io(budget: &Arc<OpenFiles>) -> SysfsIo {
    SysfsIo::new(ReadWatch::new(Quarantine::new())).with_open_files(Arc::clone(budget)).with_rediscover_every(MINUTE)
}

fn collect<R: SysfsReader>(
    reader: &mut R,
    io: &mut SysfsIo,
    at: Instant,
    export: impl Fn(&R::Readings, &mut Families),
) -> Families {
    io.begin(at);
    let mut f = Families::new();
    export(&reader.collect(io).expect("collects"), &mut f);
    f
}

fn chip(fs: &FakeSysfs) {
    fs.hwmon(0, Some("loihi"), Some("devices/pci0000:00/0000:00:01.0"))
        .attr("temp1_input", "40000")
        .attr("temp1_max", "85000")
        .attr("temp1_crit", "95000")
        .attr("temp1_label", "die")
        .attr("in1_input", "800")
        .attr("in1_min", "700");
}

#[test]
fn a_changed_temp1_crit_is_picked_up_at_the_next_rediscovery_not_every_poll() {
    let fs = FakeSysfs::new();
    chip(&fs);
    let budget = OpenFiles::new(usize::MAX);
    let mut io = io(&budget);
    let mut reader = HwmonReader::new(fs.root(), HwmonOptions::default());
    let t0 = Instant::now();
    let l = [("chip", "pci0000:00_0000:00:01_0"), ("sensor", "temp1")];
    let read = |reader: &mut HwmonReader, io: &mut SysfsIo, at| collect(reader, io, at, |r, f| r.export(f));

    let f = read(&mut reader, &mut io, t0);
    assert_eq!(f.value("accel_hwmon_temp_crit_celsius", &l), Some(95.0));
    assert_eq!(f.value("accel_hwmon_temp_celsius", &l), Some(40.0));
    // Only the two inputs stay open; limits and the label were read once and closed.
    assert_eq!(budget.open(), 2);

    fs.write("devices/pci0000:00/0000:00:01.0/hwmon/hwmon0/temp1_crit", "90000\n");
    fs.write("devices/pci0000:00/0000:00:01.0/hwmon/hwmon0/temp1_input", "41000\n");
    let f = read(&mut reader, &mut io, t0 + Duration::from_secs(30));
    assert_eq!(f.value("accel_hwmon_temp_celsius", &l), Some(41.0), "inputs are read every poll");
    assert_eq!(f.value("accel_hwmon_temp_crit_celsius", &l), Some(95.0), "limits are not re-read every poll");

    let f = read(&mut reader, &mut io, t0 + MINUTE);
    assert_eq!(f.value("accel_hwmon_temp_crit_celsius", &l), Some(90.0), "re-read once rediscover_interval passed");
    assert_eq!(f.value("accel_hwmon_temp_max_celsius", &l), Some(85.0));
    assert_eq!(
        f.value("accel_hwmon_in_min_volts", &[("chip", "pci0000:00_0000:00:01_0"), ("sensor", "in1")]),
        Some(700.0 * 0.001),
        "millivolts scaled as node_exporter does"
    );
    assert_eq!(budget.open(), 2, "rediscovery gives the old descriptors back");
}

#[test]
fn a_hot_plugged_chip_is_read_with_its_limits_at_once() {
    let fs = FakeSysfs::new();
    chip(&fs);
    let budget = OpenFiles::new(usize::MAX);
    let mut io = io(&budget);
    let mut reader = HwmonReader::new(fs.root(), HwmonOptions::default());
    let t0 = Instant::now();
    collect(&mut reader, &mut io, t0, |r, f| r.export(f));
    fs.hwmon(1, Some("photon"), Some("devices/pci0000:00/0000:00:02.0"))
        .attr("temp1_input", "50000")
        .attr("temp1_crit", "80000");
    let f = collect(&mut reader, &mut io, t0 + Duration::from_secs(1), |r, f| r.export(f));
    let l = [("chip", "pci0000:00_0000:00:02_0"), ("sensor", "temp1")];
    assert_eq!(f.value("accel_hwmon_temp_crit_celsius", &l), Some(80.0));
    assert_eq!(f.value("accel_hwmon_temp_celsius", &l), Some(50.0));
}

#[test]
fn trip_points_max_state_and_energy_range_follow_the_same_cadence() {
    let fs = FakeSysfs::new();
    fs.thermal_zone(0, "acpitz", 40000).trip_point(0, 0, "critical", 105000);
    fs.cooling_device(0, "Processor", 1, 10);
    fs.powercap_zone("0", "package-0", 1_000_000, 262_143_328_850);
    let budget = OpenFiles::new(usize::MAX);
    let mut io = io(&budget);
    let t0 = Instant::now();
    let mut thermal = ThermalReader::new(fs.root(), Filter::default());
    let mut cooling = CoolingReader::new(fs.root(), Filter::default());
    let mut powercap = PowercapReader::new(fs.root(), Filter::default());
    let mut all = |at| {
        let mut f = collect(&mut thermal, &mut io, at, |r, f| r.export(f));
        f.append(collect(&mut cooling, &mut io, at, |r, f| r.export(f)));
        f.append(collect(&mut powercap, &mut io, at, |r, f| r.export(f)));
        f
    };
    let trip = [("zone", "0"), ("type", "acpitz"), ("trip", "0"), ("trip_type", "critical")];
    let cool = [("name", "0"), ("type", "Processor")];
    let f = all(t0);
    assert_eq!(f.value("accel_thermal_zone_trip_point_celsius", &trip), Some(105.0));
    assert_eq!(f.value("accel_cooling_device_max_state", &cool), Some(10.0));

    let zone = fs.path("devices/virtual/thermal/thermal_zone0");
    write_in_place(&zone.join("trip_point_0_temp"), "100000\n");
    let cdev = fs.path("devices/virtual/thermal/cooling_device0");
    write_in_place(&cdev.join("max_state"), "7\n");
    write_in_place(&cdev.join("cur_state"), "3\n");
    let f = all(t0 + Duration::from_secs(5));
    assert_eq!(f.value("accel_cooling_device_cur_state", &cool), Some(3.0), "cur_state is read every poll");
    assert_eq!(f.value("accel_cooling_device_max_state", &cool), Some(10.0));
    assert_eq!(f.value("accel_thermal_zone_trip_point_celsius", &trip), Some(105.0));

    let f = all(t0 + MINUTE);
    assert_eq!(f.value("accel_cooling_device_max_state", &cool), Some(7.0));
    assert_eq!(f.value("accel_thermal_zone_trip_point_celsius", &trip), Some(100.0));
    // Kept open: the zone's temp and mode; cur_state; the powercap zone's energy_uj, enabled, power limit
    // and time window (settings an operator changes while running).
    assert_eq!(budget.open(), 7);
}

#[test]
fn beyond_the_budget_files_are_read_per_read_with_the_same_values() {
    let fs = FakeSysfs::new();
    let c = fs.hwmon(0, Some("loihi"), Some("devices/pci0000:00/0000:00:01.0"));
    for n in 1..=5 {
        c.attr(&format!("temp{n}_input"), &format!("{}000", 40 + n));
    }
    let budget = OpenFiles::new(2);
    let mut io = io(&budget);
    let mut reader = HwmonReader::new(fs.root(), HwmonOptions::default());
    let t0 = Instant::now();
    let f = collect(&mut reader, &mut io, t0, |r, f| r.export(f));
    assert_eq!(budget.open(), 2, "no more than the budget stays open");
    let temp = |f: &Families, n: u32| {
        f.value("accel_hwmon_temp_celsius", &[("chip", "pci0000:00_0000:00:01_0"), ("sensor", &format!("temp{n}"))])
    };
    for n in 1..=5 {
        assert_eq!(temp(&f, n), Some(40.0 + n as f64), "temp{n}");
    }
    // A value beyond the budget still follows the file.
    fs.write("devices/pci0000:00/0000:00:01.0/hwmon/hwmon0/temp5_input", "70000\n");
    let f = collect(&mut reader, &mut io, t0 + Duration::from_secs(1), |r, f| r.export(f));
    assert_eq!(temp(&f, 5), Some(70.0));
    drop(reader);
    assert_eq!(budget.open(), 0, "dropping the reader gives every descriptor back");
}

/// A layout names thousands of elements with a few dozen strings; each is held once, and a rediscovery
/// shares them with the layout it replaces (which the last published readings still hold).
#[test]
fn discovered_names_are_held_once_and_shared_across_rediscoveries() {
    let fs = FakeSysfs::new();
    for n in 0..2 {
        fs.hwmon(n, Some("loihi"), None).attr("temp1_input", "40000").attr("temp2_input", "41000");
    }
    let budget = OpenFiles::new(usize::MAX);
    let mut io = io(&budget);
    let mut reader = HwmonReader::new(fs.root(), HwmonOptions::default());
    let t0 = Instant::now();
    io.begin(t0);
    let first = reader.collect(&mut io).expect("collects");
    let elements: Vec<_> = first.layout.chips.iter().flat_map(|c| &c.sensors).flat_map(|s| &s.elements).collect();
    assert_eq!(elements.len(), 4);
    for e in &elements[1..] {
        assert!(Arc::ptr_eq(&e.element, &elements[0].element), "one \"input\" for all elements");
    }
    let kinds: Vec<_> = first.layout.chips.iter().flat_map(|c| &c.sensors).map(|s| &s.kind).collect();
    assert!(kinds.iter().all(|k| Arc::ptr_eq(k, kinds[0])), "one \"temp\" for all sensors");

    io.begin(t0 + MINUTE);
    let second = reader.collect(&mut io).expect("collects");
    assert!(!Arc::ptr_eq(&first.layout, &second.layout), "rediscovered");
    let (a, b) = (&first.layout.chips[1], &second.layout.chips[1]);
    assert_eq!(a, b);
    assert!(Arc::ptr_eq(&a.chip, &b.chip));
    assert!(Arc::ptr_eq(&a.sensors[1].name, &b.sensors[1].name));
    assert!(Arc::ptr_eq(&a.sensors[1].elements[0].element, &b.sensors[1].elements[0].element));
}
