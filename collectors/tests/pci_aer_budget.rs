//! Which PCI devices export the per-error AER breakdown (`accel_pci_aer_errors_total`) and which only their
//! totals by severity (`accel_pci_aer_device_errors_total`), on a fake tree shaped like a real host: an
//! accelerator behind a bridge, NICs on the root complex with zero and with non-zero counters.

use std::collections::BTreeSet;

use accel_sim::sysfs_tree::FakeSysfs;
use collectors::Families;
use collectors::sysfs::pci_aer::PciAerReader;
use collectors::sysfs::{Quarantine, ReadWatch, SysfsIo, SysfsReader};
use config::{AerPerError, Filter};

const BRIDGE: &str = "0000:00:01.0";
const ACCEL: &str = "0000:01:00.0";
const NIC_QUIET: &str = "0000:00:02.0";
const NIC_ERRORS: &str = "0000:00:03.0";
const GPU: &str = "0000:00:04.0";

const COR: [&str; 3] = ["RxErr", "Bad TLP", "Timeout"];
const UNC: [&str; 2] = ["DLP", "Surprise Down Error"];

/// A PCI function at `dir` (relative to the root, e.g. "devices/pci0000:00/0000:00:01.0/0000:01:00.0") with
/// its PCI class and aer_dev_* files; `errors` are (name, count) pairs that are not 0, `totals` the
/// TOTAL_ERR_* lines (cor, nonfatal, fatal).
fn function(fs: &FakeSysfs, dir: &str, class: &str, errors: &[(&str, u64)], totals: [u64; 3]) {
    let addr = dir.rsplit('/').next().unwrap();
    fs.write(&format!("{dir}/class"), &format!("{class}\n"));
    let count = |name: &str| errors.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
    for (file, names, total_name, total) in [
        ("aer_dev_correctable", &COR[..], "TOTAL_ERR_COR", totals[0]),
        ("aer_dev_nonfatal", &UNC[..], "TOTAL_ERR_NONFATAL", totals[1]),
        ("aer_dev_fatal", &UNC[..], "TOTAL_ERR_FATAL", totals[2]),
    ] {
        let mut text: String = names.iter().map(|n| format!("{n} {}\n", count(n))).collect();
        text.push_str(&format!("{total_name} {total}\n"));
        fs.write(&format!("{dir}/{file}"), &text);
    }
    let depth = 3; // bus/pci/devices/<addr> -> ../../../<dir>
    fs.symlink(&format!("bus/pci/devices/{addr}"), &format!("{}{dir}", "../".repeat(depth)));
}

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    function(&fs, &format!("devices/pci0000:00/{BRIDGE}"), "0x060400", &[], [0, 0, 0]);
    function(&fs, &format!("devices/pci0000:00/{BRIDGE}/{ACCEL}"), "0x120000", &[], [0, 0, 0]);
    function(&fs, &format!("devices/pci0000:00/{NIC_QUIET}"), "0x020000", &[], [0, 0, 0]);
    // One correctable report that set two error bits: the total (1) is less than the sum (2).
    function(&fs, &format!("devices/pci0000:00/{NIC_ERRORS}"), "0x020000", &[("RxErr", 1), ("Bad TLP", 1)], [1, 0, 0]);
    function(&fs, &format!("devices/pci0000:00/{GPU}"), "0x030000", &[], [0, 0, 0]);
    fs
}

fn io() -> SysfsIo {
    SysfsIo::new(ReadWatch::new(Quarantine::new()))
}

fn collect(reader: &mut PciAerReader, io: &mut SysfsIo) -> Families {
    let mut f = Families::new();
    reader.collect(io).unwrap().export(&mut f);
    f
}

/// The (pci_address, severity, error) of every per-error series, and the addresses that have them.
fn breakdown(f: &Families) -> (usize, BTreeSet<String>) {
    let Some(fam) = f.get("accel_pci_aer_errors_total") else { return (0, BTreeSet::new()) };
    let addresses = fam.samples.iter().map(|s| s.label("pci_address").unwrap().to_owned()).collect();
    (fam.samples.len(), addresses)
}

/// Every (pci_address, severity) of the totals family.
fn totals(f: &Families) -> BTreeSet<(String, String)> {
    f.get("accel_pci_aer_device_errors_total")
        .map(|fam| {
            fam.samples
                .iter()
                .map(|s| (s.label("pci_address").unwrap().to_owned(), s.label("severity").unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn set(addresses: &[&str]) -> BTreeSet<String> {
    addresses.iter().map(|a| (*a).to_owned()).collect()
}

fn every_total(addresses: &[&str]) -> BTreeSet<(String, String)> {
    addresses
        .iter()
        .flat_map(|a| ["correctable", "nonfatal", "fatal"].map(|s| ((*a).to_owned(), s.to_owned())))
        .collect()
}

const PER_DEVICE: usize = COR.len() + 2 * UNC.len();

#[test]
fn by_default_accelerators_their_bridges_and_devices_with_errors_get_the_breakdown() {
    let fs = host();
    let mut reader = PciAerReader::new(fs.root(), Filter::default());
    let f = collect(&mut reader, &mut io());
    let (n, addresses) = breakdown(&f);
    assert_eq!(addresses, set(&[BRIDGE, ACCEL, NIC_ERRORS]));
    assert_eq!(n, 3 * PER_DEVICE, "every error name of those three devices, zeros included");
    assert_eq!(totals(&f), every_total(&[BRIDGE, ACCEL, NIC_QUIET, NIC_ERRORS, GPU]));
    let total = |addr: &str, sev: &str| {
        f.value("accel_pci_aer_device_errors_total", &[("pci_address", addr), ("severity", sev)])
    };
    assert_eq!(total(NIC_ERRORS, "correctable"), Some(1.0), "the kernel's TOTAL_ERR_COR, not the sum of bits");
    assert_eq!(total(NIC_QUIET, "fatal"), Some(0.0));
    let err = |addr: &str, e: &str| {
        f.value("accel_pci_aer_errors_total", &[("pci_address", addr), ("severity", "correctable"), ("error", e)])
    };
    assert_eq!(err(NIC_ERRORS, "Bad TLP"), Some(1.0));
    assert_eq!(err(ACCEL, "RxErr"), Some(0.0));
    assert_eq!(err(NIC_QUIET, "RxErr"), None);
}

#[test]
fn a_declared_device_and_an_accel_class_device_count_as_accelerators() {
    let fs = host();
    // An accel class device whose PCI class is not 0x12 (a co-processor, 0x0b40) on the quiet NIC's slot.
    fs.write(&format!("devices/pci0000:00/{NIC_QUIET}/class"), "0x0b4000\n");
    fs.mkdir(&format!("devices/pci0000:00/{NIC_QUIET}/accel/accel0"));
    fs.symlink(&format!("devices/pci0000:00/{NIC_QUIET}/accel/accel0/device"), "../..");
    fs.symlink("class/accel/accel0", &format!("../../devices/pci0000:00/{NIC_QUIET}/accel/accel0"));
    let mut reader =
        PciAerReader::with_options(fs.root(), Filter::default(), AerPerError::Relevant, vec![GPU.to_owned()]);
    let (_, addresses) = breakdown(&collect(&mut reader, &mut io()));
    assert_eq!(addresses, set(&[BRIDGE, ACCEL, NIC_QUIET, NIC_ERRORS, GPU]));
}

#[test]
fn a_device_keeps_its_breakdown_once_a_counter_was_non_zero_until_it_is_unplugged() {
    let fs = host();
    let quiet = format!("devices/pci0000:00/{NIC_QUIET}");
    let mut reader = PciAerReader::new(fs.root(), Filter::default());
    let mut io = io();
    assert!(!breakdown(&collect(&mut reader, &mut io)).1.contains(NIC_QUIET));

    fs.write(&format!("{quiet}/aer_dev_fatal"), "DLP 0\nSurprise Down Error 1\nTOTAL_ERR_FATAL 1\n");
    let f = collect(&mut reader, &mut io);
    assert_eq!(breakdown(&f).1, set(&[BRIDGE, ACCEL, NIC_QUIET, NIC_ERRORS]));
    let surprise = [("pci_address", NIC_QUIET), ("severity", "fatal"), ("error", "Surprise Down Error")];
    assert_eq!(f.value("accel_pci_aer_errors_total", &surprise), Some(1.0));

    // Counters back at 0 (a driver that clears them): the series stay, at 0.
    fs.write(&format!("{quiet}/aer_dev_fatal"), "DLP 0\nSurprise Down Error 0\nTOTAL_ERR_FATAL 0\n");
    let f = collect(&mut reader, &mut io);
    assert_eq!(f.value("accel_pci_aer_errors_total", &surprise), Some(0.0));

    // Unplugged: its series go. Plugged back with clean counters: totals only, like any quiet device.
    fs.remove(&format!("bus/pci/devices/{NIC_QUIET}"));
    let f = collect(&mut reader, &mut io);
    assert!(!breakdown(&f).1.contains(NIC_QUIET));
    assert!(!totals(&f).iter().any(|(a, _)| a == NIC_QUIET));
    fs.symlink(&format!("bus/pci/devices/{NIC_QUIET}"), &format!("../../../{quiet}"));
    let f = collect(&mut reader, &mut io);
    assert!(!breakdown(&f).1.contains(NIC_QUIET));
    assert!(totals(&f).contains(&(NIC_QUIET.to_owned(), "fatal".to_owned())));
}

#[test]
fn all_and_none_override_the_selection() {
    let fs = host();
    let everything = [BRIDGE, ACCEL, NIC_QUIET, NIC_ERRORS, GPU];
    let mut all = PciAerReader::with_options(fs.root(), Filter::default(), AerPerError::All, Vec::new());
    let f = collect(&mut all, &mut io());
    assert_eq!(breakdown(&f), (5 * PER_DEVICE, set(&everything)));
    assert_eq!(totals(&f), every_total(&everything));

    let mut none = PciAerReader::with_options(fs.root(), Filter::default(), AerPerError::None, vec![GPU.to_owned()]);
    let f = collect(&mut none, &mut io());
    assert_eq!(breakdown(&f), (0, BTreeSet::new()), "not even the device with errors");
    assert_eq!(totals(&f), every_total(&everything));
}
