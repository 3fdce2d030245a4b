//! The benchmark tree of issue 2: 64 hwmon chips x 24 sensors, 64 thermal zones, 32 cooling devices,
//! 16 powercap zones and 128 PCI devices with AER counters, laid out as the kernel does.

use std::path::Path;

use crate::sysfs_tree::write_in_place;

#[derive(Debug, Clone, Copy)]
pub struct TreeSpec {
    pub chips: u32,
    pub sensors_per_chip: u32,
    pub thermal_zones: u32,
    pub cooling_devices: u32,
    pub powercap_zones: u32,
    pub pci_devices: u32,
}

impl TreeSpec {
    pub const LARGE: TreeSpec = TreeSpec {
        chips: 64,
        sensors_per_chip: 24,
        thermal_zones: 64,
        cooling_devices: 32,
        powercap_zones: 16,
        pci_devices: 128,
    };
}

fn w(root: &Path, rel: &str, content: &str) {
    write_in_place(&root.join(rel), content);
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    let _ = std::fs::remove_file(&p);
    std::os::unix::fs::symlink(target, p).expect("symlink");
}

/// Writes the tree under `root` (which must exist). Sensors cycle through temperature, voltage, fan,
/// power and current channels with realistic attribute sets.
pub fn generate(root: &Path, spec: TreeSpec) {
    hwmon_chips(root, spec.chips, spec.sensors_per_chip);
    thermal_zones(root, spec.thermal_zones);
    cooling_devices(root, spec.cooling_devices);
    powercap_zones(root, spec.powercap_zones);
    pci_aer(root, spec.pci_devices);
}

/// Half the chips on PCI accelerators, half on platform devices; sensors cycle through five channel kinds.
fn hwmon_chips(root: &Path, chips: u32, sensors_per_chip: u32) {
    for c in 0..chips {
        // Half the chips sit on PCI accelerators, half on platform devices.
        let dev = if c % 2 == 0 {
            format!("devices/pci0000:{:02x}/0000:{:02x}:00.0", c / 2, c / 2 + 1)
        } else {
            format!("devices/platform/accel-sensor.{c}")
        };
        let dir = format!("{dev}/hwmon/hwmon{c}");
        w(root, &format!("{dir}/name"), &format!("accel{}\n", c % 4));
        link(root, &format!("{dir}/device"), "../..");
        link(root, &format!("class/hwmon/hwmon{c}"), &format!("../../{dir}"));
        for s in 0..sensors_per_chip {
            let n = s / 5 + 1;
            let v = 1000 * (c + s) as u64;
            match s % 5 {
                0 => {
                    w(root, &format!("{dir}/temp{n}_input"), &format!("{}\n", 40000 + v % 30000));
                    w(root, &format!("{dir}/temp{n}_max"), "85000\n");
                    w(root, &format!("{dir}/temp{n}_crit"), "95000\n");
                    w(root, &format!("{dir}/temp{n}_label"), &format!("Core {n}\n"));
                }
                1 => {
                    w(root, &format!("{dir}/in{n}_input"), &format!("{}\n", 800 + v % 400));
                    w(root, &format!("{dir}/in{n}_min"), "700\n");
                    w(root, &format!("{dir}/in{n}_max"), "1300\n");
                }
                2 => {
                    w(root, &format!("{dir}/fan{n}_input"), &format!("{}\n", 1500 + v % 1000));
                    w(root, &format!("{dir}/fan{n}_min"), "600\n");
                }
                3 => {
                    w(root, &format!("{dir}/power{n}_average"), &format!("{}\n", 50_000_000 + v * 1000));
                    w(root, &format!("{dir}/power{n}_cap"), "300000000\n");
                }
                _ => {
                    w(root, &format!("{dir}/curr{n}_input"), &format!("{}\n", 2000 + v % 5000));
                    w(root, &format!("{dir}/curr{n}_max"), "40000\n");
                }
            }
        }
    }
}

/// Zones with a passive and a critical trip point, as a laptop's or a server's.
fn thermal_zones(root: &Path, thermal_zones: u32) {
    for z in 0..thermal_zones {
        let dir = format!("devices/virtual/thermal/thermal_zone{z}");
        w(root, &format!("{dir}/type"), &format!("accel_zone{z}\n"));
        w(root, &format!("{dir}/temp"), &format!("{}\n", 35000 + z * 100));
        w(root, &format!("{dir}/policy"), "step_wise\n");
        w(root, &format!("{dir}/mode"), "enabled\n");
        w(root, &format!("{dir}/trip_point_0_type"), "passive\n");
        w(root, &format!("{dir}/trip_point_0_temp"), "85000\n");
        w(root, &format!("{dir}/trip_point_1_type"), "critical\n");
        w(root, &format!("{dir}/trip_point_1_temp"), "105000\n");
        link(root, &format!("class/thermal/thermal_zone{z}"), &format!("../../{dir}"));
    }
}

/// Processor and fan cooling devices, all at state 0 of 10.
fn cooling_devices(root: &Path, cooling_devices: u32) {
    for d in 0..cooling_devices {
        let dir = format!("devices/virtual/thermal/cooling_device{d}");
        w(root, &format!("{dir}/type"), if d % 2 == 0 { "Processor\n" } else { "Fan\n" });
        w(root, &format!("{dir}/cur_state"), "0\n");
        w(root, &format!("{dir}/max_state"), "10\n");
        link(root, &format!("class/thermal/cooling_device{d}"), &format!("../../{dir}"));
    }
}

/// RAPL: a package zone and its dram subzone per socket.
fn powercap_zones(root: &Path, powercap_zones: u32) {
    for p in 0..powercap_zones {
        let (id, name) = if p % 2 == 0 {
            (format!("{}", p / 2), format!("package-{}", p / 2))
        } else {
            (format!("{}:0", p / 2), "dram".to_owned())
        };
        let dir = format!("devices/virtual/powercap/intel-rapl/intel-rapl:{id}");
        w(root, &format!("{dir}/name"), &format!("{name}\n"));
        w(root, &format!("{dir}/energy_uj"), &format!("{}\n", 1_000_000 * (p as u64 + 1)));
        w(root, &format!("{dir}/max_energy_range_uj"), "262143328850\n");
        w(root, &format!("{dir}/enabled"), "1\n");
        w(root, &format!("{dir}/constraint_0_name"), "long_term\n");
        w(root, &format!("{dir}/constraint_0_power_limit_uw"), "150000000\n");
        w(root, &format!("{dir}/constraint_0_time_window_us"), "27983872\n");
        link(root, &format!("class/powercap/intel-rapl:{id}"), &format!("../../{dir}"));
    }
}

/// PCI devices with the three AER counter files, every counter 0.
fn pci_aer(root: &Path, pci_devices: u32) {
    let cor = ["RxErr", "BadTLP", "BadDLLP", "Rollover", "Timeout", "NonFatalErr", "CorrIntErr", "HeaderOF"];
    let unc = [
        "Undefined",
        "DLP",
        "SDES",
        "TLP",
        "FCP",
        "CmpltTO",
        "CmpltAbrt",
        "UnxCmplt",
        "RxOF",
        "MalfTLP",
        "ECRC",
        "UnsupReq",
        "ACSViol",
    ];
    for i in 0..pci_devices {
        let addr = format!("0000:{:02x}:{:02x}.{}", 0x40 + i / 32, i % 32, i % 2);
        let dir = format!("devices/pci0000:40/{addr}");
        let body = |names: &[&str], total: &str| {
            let mut s: String = names.iter().map(|n| format!("{n} 0\n")).collect();
            s.push_str(&format!("{total} 0\n"));
            s
        };
        w(root, &format!("{dir}/aer_dev_correctable"), &body(&cor, "TOTAL_ERR_COR"));
        w(root, &format!("{dir}/aer_dev_nonfatal"), &body(&unc, "TOTAL_ERR_NONFATAL"));
        w(root, &format!("{dir}/aer_dev_fatal"), &body(&unc, "TOTAL_ERR_FATAL"));
        link(root, &format!("bus/pci/devices/{addr}"), &format!("../../../{dir}"));
    }
}
