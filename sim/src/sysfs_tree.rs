//! Fake sysfs trees for tests and the demo, and the real captured tree unpacked from its archive.
//!
//! Values are written in place (same inode), as the kernel does: the agent keeps attribute files open
//! and re-reads them with pread, so a rename-over would leave it reading the old inode.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A sysfs tree in a temporary directory.
pub struct FakeSysfs {
    dir: tempfile::TempDir,
}

impl Default for FakeSysfs {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSysfs {
    pub fn new() -> Self {
        FakeSysfs { dir: tempfile::Builder::new().prefix("fake-sysfs-").tempdir().expect("create temp dir") }
    }

    /// A tree in a new directory under `parent` (removed with the FakeSysfs).
    pub fn new_in(parent: &Path) -> std::io::Result<Self> {
        Ok(FakeSysfs { dir: tempfile::Builder::new().prefix("sys-").tempdir_in(parent)? })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes `content` to `rel`, creating parents; rewrites an existing file in place.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        write_in_place(&self.path(rel), content);
        self
    }

    pub fn mkdir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.path(rel)).expect("mkdir");
        self
    }

    /// Creates `rel` as a symlink to `target` (relative targets are kept as given).
    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let _ = fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self
    }

    /// Replaces `rel` with a FIFO: opening it for reading blocks, like a read from a hung driver.
    pub fn fifo(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        let _ = fs::remove_file(&p);
        make_fifo(&p);
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p).expect("remove dir");
        } else {
            fs::remove_file(&p).expect("remove file");
        }
        self
    }

    /// An hwmon chip as the kernel lays it out: the chip directory under its device, and the class
    /// entry as a symlink. `device` is relative to the root (e.g. "devices/platform/coretemp.0"), or
    /// None for a chip with no device link (it then lives under devices/virtual/hwmon).
    pub fn hwmon(&self, n: u32, name: Option<&str>, device: Option<&str>) -> Chip<'_> {
        let dir = match device {
            Some(dev) => format!("{dev}/hwmon/hwmon{n}"),
            None => format!("devices/virtual/hwmon/hwmon{n}"),
        };
        self.mkdir(&dir);
        if let Some(dev) = device {
            self.mkdir(dev);
            self.symlink(&format!("{dir}/device"), "../..");
        }
        if let Some(name) = name {
            self.write(&format!("{dir}/name"), &format!("{name}\n"));
        }
        self.symlink(&format!("class/hwmon/hwmon{n}"), &format!("../../{dir}"));
        Chip { fs: self, dir }
    }

    pub fn thermal_zone(&self, n: u32, zone_type: &str, temp_milli: i64) -> &Self {
        let dir = format!("devices/virtual/thermal/thermal_zone{n}");
        self.write(&format!("{dir}/type"), &format!("{zone_type}\n"));
        self.write(&format!("{dir}/temp"), &format!("{temp_milli}\n"));
        self.write(&format!("{dir}/policy"), "step_wise\n");
        self.write(&format!("{dir}/mode"), "enabled\n");
        self.symlink(&format!("class/thermal/thermal_zone{n}"), &format!("../../{dir}"));
        self
    }

    pub fn trip_point(&self, zone: u32, m: u32, trip_type: &str, temp_milli: i64) -> &Self {
        let dir = format!("devices/virtual/thermal/thermal_zone{zone}");
        self.write(&format!("{dir}/trip_point_{m}_type"), &format!("{trip_type}\n"));
        self.write(&format!("{dir}/trip_point_{m}_temp"), &format!("{temp_milli}\n"));
        self
    }

    pub fn cooling_device(&self, n: u32, device_type: &str, cur: i64, max: i64) -> &Self {
        let dir = format!("devices/virtual/thermal/cooling_device{n}");
        self.write(&format!("{dir}/type"), &format!("{device_type}\n"));
        self.write(&format!("{dir}/cur_state"), &format!("{cur}\n"));
        self.write(&format!("{dir}/max_state"), &format!("{max}\n"));
        self.symlink(&format!("class/thermal/cooling_device{n}"), &format!("../../{dir}"));
        self
    }

    /// A power supply with the given attribute files.
    pub fn power_supply(&self, name: &str, attrs: &[(&str, &str)]) -> &Self {
        let dir = format!("devices/virtual/power_supply/{name}");
        for (k, v) in attrs {
            self.write(&format!("{dir}/{k}"), &format!("{v}\n"));
        }
        self.symlink(&format!("class/power_supply/{name}"), &format!("../../{dir}"));
        self
    }

    /// A RAPL zone "intel-rapl:<id>" with a name and an energy counter.
    pub fn powercap_zone(&self, id: &str, name: &str, energy_uj: u64, max_range_uj: u64) -> &Self {
        let dir = format!("devices/virtual/powercap/intel-rapl/intel-rapl:{id}");
        self.write(&format!("{dir}/name"), &format!("{name}\n"));
        self.write(&format!("{dir}/energy_uj"), &format!("{energy_uj}\n"));
        self.write(&format!("{dir}/max_energy_range_uj"), &format!("{max_range_uj}\n"));
        self.write(&format!("{dir}/enabled"), "1\n");
        self.write(&format!("{dir}/constraint_0_name"), "long_term\n");
        self.write(&format!("{dir}/constraint_0_power_limit_uw"), "150000000\n");
        self.write(&format!("{dir}/constraint_0_time_window_us"), "27983872\n");
        self.symlink(&format!("class/powercap/intel-rapl:{id}"), &format!("../../{dir}"));
        self
    }

    /// A PCI device with AER counters. `errors` are (severity file suffix, lines).
    pub fn pci_device(
        &self,
        addr: &str,
        correctable: &[(&str, u64)],
        nonfatal: &[(&str, u64)],
        fatal: &[(&str, u64)],
    ) -> &Self {
        let dir = format!("devices/pci0000:00/{addr}");
        for (file, counts, total) in [
            ("aer_dev_correctable", correctable, "TOTAL_ERR_COR"),
            ("aer_dev_nonfatal", nonfatal, "TOTAL_ERR_NONFATAL"),
            ("aer_dev_fatal", fatal, "TOTAL_ERR_FATAL"),
        ] {
            let mut text = String::new();
            for (name, n) in counts {
                text.push_str(&format!("{name} {n}\n"));
            }
            text.push_str(&format!("{total} {}\n", counts.iter().map(|(_, n)| n).sum::<u64>()));
            self.write(&format!("{dir}/{file}"), &text);
        }
        self.symlink(&format!("bus/pci/devices/{addr}"), &format!("../../../{dir}"));
        self
    }
}

impl FakeSysfs {
    /// An `accel` class device on a PCI function bound to `driver`, with attribute files in the PCI
    /// device directory (e.g. ("status", "Operational"), ("ue_count", "0")). Also writes the PCI class
    /// 0x120000 (processing accelerator).
    pub fn accel_device(&self, n: u32, addr: &str, driver: &str, attrs: &[(&str, &str)]) -> &Self {
        let dev = format!("devices/pci0000:00/0000:00:02.0/{addr}");
        self.write(&format!("{dev}/class"), "0x120000\n");
        for (k, v) in attrs {
            self.write(&format!("{dev}/{k}"), &format!("{v}\n"));
        }
        self.mkdir(&format!("bus/pci/drivers/{driver}"));
        self.symlink(&format!("{dev}/driver"), &format!("../../../../bus/pci/drivers/{driver}"));
        self.mkdir(&format!("{dev}/accel/accel{n}"));
        self.symlink(&format!("{dev}/accel/accel{n}/device"), "../..");
        self.symlink(&format!("class/accel/accel{n}"), &format!("../../{dev}/accel/accel{n}"));
        self
    }
}

/// An hwmon chip being built.
pub struct Chip<'a> {
    fs: &'a FakeSysfs,
    dir: String,
}

impl Chip<'_> {
    /// Writes `<dir>/<attr>`, e.g. attr("temp1_input", "45000").
    pub fn attr(&self, attr: &str, value: &str) -> &Self {
        self.fs.write(&format!("{}/{attr}", self.dir), &format!("{value}\n"));
        self
    }

    /// The chip directory relative to the root.
    pub fn dir(&self) -> &str {
        &self.dir
    }
}

/// Rewrites a file in place: write at offset 0, then cut to length. A reader racing this sees either
/// the old value or the new first line followed by leftovers after a newline, never a torn number.
pub fn write_in_place(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    let f = OpenOptions::new().create(true).write(true).truncate(false).open(path).expect("open for write");
    f.write_all_at(content.as_bytes(), 0).expect("write");
    f.set_len(content.len() as u64).expect("truncate");
    (&f).flush().expect("flush");
}

fn make_fifo(path: &Path) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
}

/// The real captured tree, as a text archive in the repository (sim/fixtures/README.md).
pub fn real_sysfs_archive() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real-sysfs.txt")
}

/// A fresh copy of the real captured tree (hwmon chips of real machines, thermal zones, RAPL, power
/// supplies; from node_exporter's fixtures), unpacked with its symlinks into a temporary directory.
/// Panics with the archive's line number on anything the unpacker does not understand.
pub fn real_sysfs() -> tempfile::TempDir {
    let archive = real_sysfs_archive();
    let text = fs::read_to_string(&archive).unwrap_or_else(|e| panic!("read {}: {e}", archive.display()));
    let dst = tempfile::Builder::new().prefix("real-sysfs-").tempdir().expect("temp dir");
    if let Err(e) = crate::sysfs_archive::unpack(&text, dst.path()) {
        panic!("{}: {e}", archive.display());
    }
    dst
}
