//! Readers of the kernel's sysfs: hwmon, thermal zones, cooling devices, power supplies, powercap and
//! PCI AER counters. Each takes the sysfs root as a parameter, so tests point it at a fake tree.

pub mod accel;
pub mod cooling;
pub mod hwmon;
pub mod io;
pub mod pci_aer;
pub mod plausible;
pub mod power_supply;
pub mod powercap;
pub mod thermal;
pub mod watch;

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

pub use io::{Attr, OpenFiles, ReadError, ReadFailure, ReadStats, SysfsIo};
pub use watch::{Quarantine, ReadWatch};

/// What every sysfs reader does: (re)discover its objects when needed, read their values, describe them
/// as metric families. Runs on a dedicated thread; every blocking call goes through `io`.
pub trait SysfsReader: Send + 'static {
    type Readings: Send + Sync + 'static;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<Self::Readings, ReadError>;
}

/// node_exporter's name cleaning: lowercase, `[^a-z0-9:_]` to `_`, trim `_`.
pub fn clean_name(s: &str) -> String {
    let mapped: String = s
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' { c } else { '_' })
        .collect();
    mapped.trim_matches('_').to_owned()
}

pub use config::device::is_pci_address;

/// The PCI address of the nearest PCI device at or above `device_path` (a resolved sysfs path).
pub fn pci_ancestor(device_path: &Path) -> Option<String> {
    device_path.ancestors().filter_map(|p| p.file_name()?.to_str()).find(|n| is_pci_address(n)).map(str::to_owned)
}

/// Resolves a path that may contain symlinks, staying lexical where the filesystem cannot answer.
/// Returns None when the path does not exist.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// Joins `rel` under `root`, refusing components that would climb out of it.
pub fn under_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// The class directory `class/<name>` under the sysfs root.
pub fn class_dir(root: &Path, name: &str) -> PathBuf {
    root.join("class").join(name)
}

/// Splits an attribute file name "temp1_crit_alarm" into ("temp", Some(1), "crit_alarm"), as
/// node_exporter's `^([^0-9]+)([0-9]*)?(_(.+))?$` does. A missing index is None.
pub fn split_attr_name(name: &str) -> Option<(&str, Option<u32>, &str)> {
    let type_end = name.find(|c: char| c.is_ascii_digit()).unwrap_or(name.len());
    if type_end == 0 {
        return None;
    }
    let (ty, rest) = name.split_at(type_end);
    let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (digits, rest) = rest.split_at(digits_end);
    let index = if digits.is_empty() { None } else { Some(digits.parse().ok()?) };
    let element = match rest {
        "" => "",
        r => r.strip_prefix('_').filter(|p| !p.is_empty())?,
    };
    // Without digits the type swallows underscores: "beep_enable" is a type of its own.
    Some((ty, index, element))
}

/// When a reader re-discovers its objects (and re-reads their static attributes): when the listing of its
/// class directory changed, when a file vanished, when a quarantined file was lifted, and every
/// [`SysfsIo::rediscover_every`] regardless, measured from the collections' start times.
#[derive(Debug, Default)]
pub struct Rescan {
    listed: Option<Vec<String>>,
    at: Option<Instant>,
    forced: bool,
}

impl Rescan {
    /// Whether discovery must run before reading, given the current listing.
    pub fn needed(&mut self, listing: &[String], io: &mut SysfsIo) -> bool {
        let lifted = io.quarantine_lifted();
        let due = match (self.at, io.now()) {
            (Some(at), Some(now)) => now.saturating_duration_since(at) >= io.rediscover_every(),
            _ => false,
        };
        lifted || self.forced || self.listed.as_deref() != Some(listing) || due
    }

    pub fn done(&mut self, listing: Vec<String>, io: &SysfsIo) {
        self.listed = Some(listing);
        self.at = io.now();
        self.forced = false;
    }

    /// Something vanished: look again at the next collection.
    pub fn force(&mut self) {
        self.forced = true;
    }
}

/// Reads a numeric attribute that changes only on hot-plug or a driver reload, at discovery: opened, read
/// and closed, so it holds no descriptor. A value outside `bounds` is dropped and counted as implausible.
pub fn read_static(io: &mut SysfsIo, path: &Path, bounds: &plausible::Bounds) -> Option<f64> {
    match io.read_once_f64(path) {
        Some(raw) if !bounds.allows(raw) => {
            io.fail(&std::sync::Arc::from(path), ReadFailure::Implausible);
            None
        }
        v => v,
    }
}

/// Lists a class directory; a class the kernel does not have is an empty list, not a failure.
pub fn list_class(io: &mut SysfsIo, dir: &Path) -> Result<Vec<io::DirEntry>, ReadError> {
    match io.list_dir_optional(dir) {
        Ok(v) => Ok(v.unwrap_or_default()),
        Err(failure) => Err(ReadError { path: dir.to_owned(), failure }),
    }
}

/// Reads a numeric attribute; when it fails because the file is gone, asks for a rescan. A value outside
/// `bounds` (raw kernel units) is dropped and counted as implausible.
pub fn read_value(io: &mut SysfsIo, attr: &Attr, rescan: &mut Rescan, bounds: &plausible::Bounds) -> Option<f64> {
    let v = io.read_f64(attr);
    if v.is_none() && !attr.path().exists() {
        rescan.force();
    }
    match v {
        Some(raw) if !bounds.allows(raw) => {
            io.fail(attr.path(), ReadFailure::Implausible);
            None
        }
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_node_exporter() {
        assert_eq!(clean_name("coretemp.0"), "coretemp_0");
        assert_eq!(clean_name("Asus-NB-WMI"), "asus_nb_wmi");
        assert_eq!(clean_name("18000000.wifi"), "18000000_wifi");
        assert_eq!(clean_name("pci0000:00"), "pci0000:00");
        assert_eq!(clean_name("__x__\n"), "x");
    }

    #[test]
    fn attr_names() {
        assert_eq!(split_attr_name("temp1_input"), Some(("temp", Some(1), "input")));
        assert_eq!(split_attr_name("temp1_crit_alarm"), Some(("temp", Some(1), "crit_alarm")));
        assert_eq!(split_attr_name("pwm1"), Some(("pwm", Some(1), "")));
        assert_eq!(split_attr_name("pwm1_auto_point1_pwm"), Some(("pwm", Some(1), "auto_point1_pwm")));
        assert_eq!(split_attr_name("beep_enable"), Some(("beep_enable", None, "")));
        assert_eq!(split_attr_name("update_interval"), Some(("update_interval", None, "")));
        assert_eq!(split_attr_name("temp1_"), None);
        assert_eq!(split_attr_name("1temp"), None);
    }

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:01:00.0"));
        assert!(!is_pci_address("0000:01:00"));
        assert!(!is_pci_address("pci0000:00"));
        assert_eq!(
            pci_ancestor(Path::new("/sys/devices/pci0000:00/0000:00:02.1/0000:01:00.0/nvme/nvme0")).as_deref(),
            Some("0000:01:00.0")
        );
    }

    #[test]
    fn under_root_refuses_escapes() {
        assert_eq!(under_root(Path::new("/sys"), Path::new("class/hwmon")), Some(PathBuf::from("/sys/class/hwmon")));
        assert_eq!(under_root(Path::new("/sys"), Path::new("../etc")), None);
        assert_eq!(under_root(Path::new("/sys"), Path::new("/etc")), None);
    }
}
