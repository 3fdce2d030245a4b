//! Trees whose file names the kernel would never write (issue 23, item 5): every family a reader exports
//! from them has a valid metric name and a help text on one line, and no series is exported twice; a file
//! whose name cannot be used, or that cleans to another file's series, is counted.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;

use accel_sim::sysfs_tree::FakeSysfs;
use collectors::Families;
use collectors::sysfs::hwmon::{HwmonOptions, HwmonReader};
use collectors::sysfs::powercap::PowercapReader;
use collectors::sysfs::{Quarantine, ReadFailure, ReadWatch, SysfsIo, SysfsReader};
use config::Filter;

fn io() -> SysfsIo {
    SysfsIo::new(ReadWatch::new(Quarantine::new()))
}

fn hwmon(fs: &FakeSysfs, io: &mut SysfsIo) -> Families {
    let mut f = Families::new();
    HwmonReader::new(fs.root(), HwmonOptions::default()).collect(io).expect("collects").export(&mut f);
    f
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, as both exposition formats require.
fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
}

/// Asserts what makes an exposition valid whatever the tree: names, one-line help, unique series.
fn assert_exportable(f: &Families) {
    let mut series = HashSet::new();
    for family in f.iter() {
        assert!(is_metric_name(&family.name), "invalid metric name {:?}", family.name);
        assert!(!family.help.contains(['\n', '\\']), "{}: help {:?} needs escaping", family.name, family.help);
        for s in &family.samples {
            let key = format!("{}{:?}", family.name, s.labels);
            assert!(series.insert(key.clone()), "exported twice: {key}");
        }
    }
}

#[test]
fn newline_backslash_and_quote_in_attribute_names_make_valid_names_and_help() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("odd"), Some("devices/platform/odd.0"))
        .attr("temp1_foo\nbar", "51000")
        .attr("temp2_back\\slash", "52000")
        .attr("temp3_quo\"te", "53000")
        .attr("fan1_weird\tname", "1200");
    let mut io = io();
    let f = hwmon(&fs, &mut io);
    assert_exportable(&f);
    let v = |name: &str, sensor: &str| f.value(name, &[("chip", "platform_odd_0"), ("sensor", sensor)]);
    assert_eq!(v("accel_hwmon_temp_foo_bar_celsius", "temp1"), Some(51.0));
    assert_eq!(v("accel_hwmon_temp_back_slash_celsius", "temp2"), Some(52.0));
    assert_eq!(v("accel_hwmon_temp_quo_te_celsius", "temp3"), Some(53.0));
    assert_eq!(v("accel_hwmon_fan_weird_name", "fan1"), Some(1200.0));
    let help = &f.get("accel_hwmon_temp_foo_bar_celsius").expect("family").help;
    assert_eq!(help, "Hardware monitor temperature (foo_bar)", "help from the cleaned name");
    assert_eq!(io.take_stats().total(), 0, "nothing to count: each name is usable and unique");
}

#[test]
fn names_that_clean_to_one_series_export_one_file_and_count_the_rest() {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("odd"), Some("devices/platform/odd.0"));
    // The kernel's spelling wins, whichever is listed first.
    chip.attr("temp4_foo-bar", "99000").attr("temp4_foo_bar", "41000");
    chip.attr("temp5_baz_qux", "42000").attr("temp5_baz.qux", "98000");
    // Neither is the kernel's spelling: the first in byte order wins (`-` is 0x2d, `.` 0x2e).
    chip.attr("temp6_a.b", "97000").attr("temp6_a-b", "43000");
    // One element spelled with and without a leading zero in its index.
    chip.attr("temp8_input", "48000").attr("temp08_input", "96000");
    // `Input` beside a bare value and `input`: all but the bare one are `accel_hwmon_in_input_volts`.
    chip.attr("in0", "800").attr("in0_input", "801").attr("in0_Input", "999");
    // A chip file and a device file that clean to one name: still one series.
    chip.attr("temp9_x-y", "95000");
    fs.write("devices/platform/odd.0/temp9_x_y", "49000\n");
    let mut io = io();
    let f = hwmon(&fs, &mut io);
    assert_exportable(&f);
    let v = |name: &str, sensor: &str| f.value(name, &[("chip", "platform_odd_0"), ("sensor", sensor)]);
    assert_eq!(v("accel_hwmon_temp_foo_bar_celsius", "temp4"), Some(41.0));
    assert_eq!(v("accel_hwmon_temp_baz_qux_celsius", "temp5"), Some(42.0));
    assert_eq!(v("accel_hwmon_temp_a_b_celsius", "temp6"), Some(43.0));
    assert_eq!(v("accel_hwmon_temp_celsius", "temp8"), Some(48.0));
    assert_eq!(v("accel_hwmon_in_volts", "in0"), Some(0.8));
    assert_eq!(v("accel_hwmon_in_input_volts", "in0"), Some(0.801));
    assert_eq!(v("accel_hwmon_temp_x_y_celsius", "temp9"), Some(49.0));
    assert_eq!(io.take_stats().get(ReadFailure::NameConflict), 6, "one per file not exported");

    // The next discovery decides the same and counts again.
    let mut io2 = self::io();
    let again = hwmon(&fs, &mut io2);
    assert_eq!(again.iter().cloned().collect::<Vec<_>>(), f.iter().cloned().collect::<Vec<_>>());
    assert_eq!(io2.take_stats().get(ReadFailure::NameConflict), 6);
}

#[test]
fn names_that_cannot_become_metric_names_are_skipped_and_counted() {
    let fs = FakeSysfs::new();
    let chip = fs.hwmon(0, Some("odd"), Some("devices/platform/odd.0"));
    chip.attr("temp1_input", "40000").attr("temp7_-", "57000").attr("temp2_\n", "58000");
    std::fs::write(fs.path(chip.dir()).join(std::ffi::OsStr::from_bytes(b"temp5_\xff\xfe_input")), "55000\n")
        .expect("write a non-UTF-8 file name");
    // The longest name a file may have (255 bytes) makes a valid metric name.
    let long = format!("temp3_{}", "x".repeat(249));
    chip.attr(&long, "59000");
    let mut io = io();
    let f = hwmon(&fs, &mut io);
    assert_exportable(&f);
    let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
    let long_metric = format!("accel_hwmon_temp_{}_celsius", "x".repeat(249));
    assert_eq!(names, ["accel_hwmon_chip_names", "accel_hwmon_temp_celsius", long_metric.as_str()]);
    assert_eq!(f.value("accel_hwmon_temp_celsius", &[("sensor", "temp1")]), Some(40.0));
    let stats = io.take_stats();
    assert_eq!(stats.get(ReadFailure::BadName), 3, "temp7_-, temp2_<newline>, and the name that is not UTF-8");
    assert_eq!(stats.total(), 3);
}

#[test]
fn a_suffixed_chip_name_that_meets_another_chip_is_suffixed_again() {
    let fs = FakeSysfs::new();
    // Two chips on platform/x, told apart by name: platform_x_y and platform_x_z ...
    fs.hwmon(0, Some("y"), Some("devices/platform/x")).attr("temp1_input", "40000");
    fs.hwmon(1, Some("z"), Some("devices/platform/x")).attr("temp1_input", "41000");
    // ... and a chip on platform/x-y, whose own name is platform_x_y.
    fs.hwmon(2, Some("w"), Some("devices/platform/x-y")).attr("temp1_input", "42000");
    let f = hwmon(&fs, &mut io());
    assert_exportable(&f);
    let t = |chip: &str| f.value("accel_hwmon_temp_celsius", &[("chip", chip), ("sensor", "temp1")]);
    assert_eq!(t("platform_x_y"), Some(40.0));
    assert_eq!(t("platform_x_z"), Some(41.0));
    assert_eq!(t("platform_x_y_2"), Some(42.0));
}

#[test]
fn a_powercap_zone_with_an_empty_name_has_no_rapl_twin() {
    let fs = FakeSysfs::new();
    fs.powercap_zone("0", "package-0", 5_000_000, 1_000_000_000);
    fs.powercap_zone("1", "", 6_000_000, 1_000_000_000);
    let mut io = io();
    let mut f = Families::new();
    PowercapReader::new(fs.root(), Filter::default()).collect(&mut io).expect("collects").export(&mut f);
    assert_exportable(&f);
    assert_eq!(f.value("accel_powercap_energy_joules_total", &[("zone", "intel-rapl:1"), ("name", "")]), Some(6.0));
    assert_eq!(f.get("accel_rapl_package_joules_total").map(|f| f.samples.len()), Some(1));
    assert_eq!(f.iter().filter(|f| f.name.starts_with("accel_rapl_")).count(), 1, "no accel_rapl__joules_total");
    assert_eq!(io.take_stats().get(ReadFailure::BadName), 1);
}
