//! PCIe Advanced Error Reporting counters: /sys/bus/pci/devices/<addr>/aer_dev_{correctable,nonfatal,fatal}
//! and, on root ports, aer_rootport_total_err_{cor,nonfatal,fatal}.
//!
//! Each aer_dev_* file holds lines "<Error Name> <count>" (names may contain spaces, so the count is the
//! last token), ending with a TOTAL_ERR_* line: the error reports the device made. One report can set
//! several error bits, so the total can be less than the sum of the per-error counts.
//!
//! Every device exports its totals by severity. The per-error breakdown (34 series per device, nearly
//! always 0) is exported for the devices [`AerPerError`] selects: by default accelerators, the bridges
//! above them, and any device once one of its counters is non-zero, so a host with 200 PCI functions
//! does not export 6,800 zeros.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use config::{AerPerError, Filter};

use super::io::ReadFailure;
use super::{
    Attr, ReadError, Rescan, SysfsIo, SysfsReader, class_dir, is_pci_address, list_class, plausible, read_value,
    resolve,
};
use crate::catalogue;
use crate::export::{Families, LabelValue, labels, lv};
use crate::intern::Interner;

pub const SEVERITIES: [(&str, &str, &str); 3] = [
    ("correctable", "aer_dev_correctable", "aer_rootport_total_err_cor"),
    ("nonfatal", "aer_dev_nonfatal", "aer_rootport_total_err_nonfatal"),
    ("fatal", "aer_dev_fatal", "aer_rootport_total_err_fatal"),
];

#[derive(Debug, Clone, PartialEq)]
pub struct AerCount {
    pub severity: &'static str,
    pub error: LabelValue,
    pub count: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PciAerDevice {
    pub address: LabelValue,
    pub errors: Vec<AerCount>,
    /// (severity, errors reported) for every aer_dev_* file read: its TOTAL_ERR_* line, or the sum of its
    /// counts when it has none.
    pub reported: Vec<(&'static str, f64)>,
    /// (severity, count) on root ports.
    pub rootport: Vec<(&'static str, f64)>,
    /// Whether the per-error breakdown is exported for this device.
    pub breakdown: bool,
}

impl PciAerDevice {
    /// Sum over all error names of one severity.
    pub fn total(&self, severity: &str) -> f64 {
        self.errors.iter().filter(|e| e.severity == severity).map(|e| e.count).sum()
    }

    fn any_nonzero(&self) -> bool {
        self.errors.iter().any(|e| e.count > 0.0) || self.reported.iter().any(|(_, n)| *n > 0.0)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PciAerReadings {
    pub devices: Vec<PciAerDevice>,
}

impl PciAerReadings {
    pub fn get(&self, address: &str) -> Option<&PciAerDevice> {
        self.devices.iter().find(|d| &*d.address == address)
    }

    pub fn export(&self, out: &mut Families) {
        for d in &self.devices {
            if d.breakdown {
                for e in &d.errors {
                    out.sample(
                        &catalogue::PCI_AER_ERRORS,
                        vec![
                            ("pci_address", d.address.clone()),
                            ("severity", lv(e.severity)),
                            ("error", e.error.clone()),
                        ],
                        e.count,
                    );
                }
            }
            for (sev, n) in &d.reported {
                out.sample(
                    &catalogue::PCI_AER_DEVICE_ERRORS,
                    labels![("pci_address", d.address.clone()), ("severity", lv(*sev))],
                    *n,
                );
            }
            for (sev, n) in &d.rootport {
                out.sample(
                    &catalogue::PCI_AER_ROOTPORT_ERRORS,
                    labels![("pci_address", d.address.clone()), ("severity", lv(*sev))],
                    *n,
                );
            }
        }
    }
}

/// One aer_dev_* file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct AerFile {
    pub counts: Vec<AerCount>,
    /// The TOTAL_ERR_* line's count, if the file has one.
    pub total: Option<f64>,
    /// Malformed lines skipped.
    pub malformed: usize,
}

/// Parses an aer_dev_* file. Malformed lines are skipped and counted.
pub fn parse_aer(text: &str, severity: &'static str) -> AerFile {
    parse_aer_with(text, severity, &mut |name| lv(name))
}

/// [`parse_aer`] with the error-name label values supplied by `intern`, so the reader can reuse the
/// same few dozen names every round instead of allocating them per device.
fn parse_aer_with(text: &str, severity: &'static str, intern: &mut dyn FnMut(&str) -> LabelValue) -> AerFile {
    let mut out = AerFile { counts: Vec::new(), total: None, malformed: 0 };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, count)) = line.rsplit_once(char::is_whitespace) else {
            out.malformed += 1;
            continue;
        };
        let (name, Ok(count)) = (name.trim(), count.parse::<u64>()) else {
            out.malformed += 1;
            continue;
        };
        if name.starts_with("TOTAL_ERR_") {
            out.total = Some(count as f64);
            continue;
        }
        out.counts.push(AerCount { severity, error: intern(name), count: count as f64 });
    }
    out
}

struct Layout {
    address: LabelValue,
    dev: Vec<(&'static str, Attr)>,
    rootport: Vec<(&'static str, Attr)>,
    /// An accelerator or a bridge above one: gets the per-error breakdown under [`AerPerError::Relevant`].
    relevant: bool,
}

pub struct PciAerReader {
    root: PathBuf,
    filter: Filter,
    per_error: AerPerError,
    /// PCI addresses of declared devices: accelerators whatever their PCI class.
    declared: Vec<String>,
    devices: Vec<Layout>,
    rescan: Rescan,
    /// Error names seen so far (the kernel has a fixed set of a few dozen).
    names: Interner,
    /// Devices that have had a non-zero counter: they keep their breakdown until they are unplugged, so no
    /// series disappears while the device exists.
    seen_errors: HashSet<LabelValue>,
}

impl PciAerReader {
    /// `filter` matches the PCI address; the per-error breakdown is [`AerPerError`]'s default.
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        Self::with_options(sysfs_root, filter, AerPerError::default(), Vec::new())
    }

    /// `per_error` selects the devices with a per-error breakdown; `declared` are the PCI addresses of
    /// configured devices, which count as accelerators.
    pub fn with_options(sysfs_root: &Path, filter: Filter, per_error: AerPerError, declared: Vec<String>) -> Self {
        PciAerReader {
            root: sysfs_root.to_owned(),
            filter,
            per_error,
            // sysfs names addresses in lowercase hex; a config may not.
            declared: declared.iter().map(|a| a.to_ascii_lowercase()).collect(),
            devices: Vec::new(),
            rescan: Rescan::default(),
            names: Interner::new(),
            seen_errors: HashSet::new(),
        }
    }

    fn discover(&mut self, io: &mut SysfsIo, bus: &Path, names: &[String]) {
        self.devices.clear();
        self.seen_errors.retain(|a| names.iter().any(|n| **n == **a));
        let relevant = match self.per_error {
            AerPerError::Relevant => self.relevant(io, bus, names),
            AerPerError::All | AerPerError::None => HashSet::new(),
        };
        for addr in names {
            if !self.filter.allows(addr) {
                continue;
            }
            let dir = bus.join(addr);
            let mut layout =
                Layout { address: lv(addr), dev: Vec::new(), rootport: Vec::new(), relevant: relevant.contains(addr) };
            for (sev, dev_file, rp_file) in SEVERITIES {
                let p = dir.join(dev_file);
                if p.exists()
                    && let Ok(a) = io.open(p.as_path())
                {
                    layout.dev.push((sev, a));
                }
                let p = dir.join(rp_file);
                if p.exists()
                    && let Ok(a) = io.open(p.as_path())
                {
                    layout.rootport.push((sev, a));
                }
            }
            if !layout.dev.is_empty() || !layout.rootport.is_empty() {
                self.devices.push(layout);
            }
        }
    }

    /// The accelerators among `names` (PCI class 0x12 processing accelerators, the devices of the accel
    /// class, declared devices) and every bridge on their path to the root complex.
    fn relevant(&self, io: &mut SysfsIo, bus: &Path, names: &[String]) -> HashSet<String> {
        let mut accelerators: Vec<String> = self.declared.clone();
        for addr in names {
            let class = io.read_optional(&bus.join(addr).join("class"));
            if class.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("0x12")) {
                accelerators.push(addr.clone());
            }
        }
        let accel_class = class_dir(&self.root, "accel");
        if let Ok(entries) = list_class(io, &accel_class) {
            for e in entries {
                let device = resolve(&accel_class.join(&e.name).join("device"));
                if let Some(addr) = device.as_deref().and_then(|d| d.file_name()).and_then(|n| n.to_str())
                    && is_pci_address(addr)
                {
                    accelerators.push(addr.to_owned());
                }
            }
        }
        let mut out = HashSet::new();
        for addr in accelerators {
            // The resolved device path names every bridge above it: .../pci0000:00/0000:00:01.0/0000:01:00.0.
            if let Some(path) = resolve(&bus.join(&addr)) {
                out.extend(
                    path.ancestors()
                        .filter_map(|p| p.file_name()?.to_str())
                        .take_while(|n| is_pci_address(n))
                        .map(str::to_owned),
                );
            }
            out.insert(addr);
        }
        out
    }
}

impl SysfsReader for PciAerReader {
    type Readings = PciAerReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<PciAerReadings, ReadError> {
        let bus = self.root.join("bus/pci/devices");
        let names: Vec<String> = list_class(io, &bus)?.into_iter().map(|e| e.name).collect();
        if self.rescan.needed(&names, io) {
            self.discover(io, &bus, &names);
            self.rescan.done(names, io);
        }
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let mut errors = Vec::new();
            let mut reported = Vec::new();
            for (sev, attr) in &d.dev {
                let names = &mut self.names;
                let parsed = io.read(attr).map(|text| parse_aer_with(text, sev, &mut |name| names.get(name)));
                match parsed {
                    Ok(file) => {
                        for _ in 0..file.malformed {
                            io.fail(attr.path(), ReadFailure::Parse);
                        }
                        reported.push((*sev, file.total.unwrap_or_else(|| file.counts.iter().map(|c| c.count).sum())));
                        errors.extend(file.counts);
                    }
                    Err(ReadFailure::NotFound) => self.rescan.force(),
                    Err(_) => {}
                }
            }
            let rootport = d
                .rootport
                .iter()
                .filter_map(|(sev, a)| Some((*sev, read_value(io, a, &mut self.rescan, &plausible::COUNT)?)))
                .collect();
            let mut device = PciAerDevice { address: d.address.clone(), errors, reported, rootport, breakdown: false };
            device.breakdown = match self.per_error {
                AerPerError::All => true,
                AerPerError::None => false,
                AerPerError::Relevant => {
                    if device.any_nonzero() {
                        self.seen_errors.insert(d.address.clone());
                    }
                    d.relevant || self.seen_errors.contains(&d.address)
                }
            };
            devices.push(device);
        }
        Ok(PciAerReadings { devices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_skips_totals() {
        let text = "RxErr 2\nBad TLP 3\nBad DLLP 0\nRollover 0\nTimeout 1\nNonFatalErr 0\nCorrIntErr 0\nHeaderOF 0\nTOTAL_ERR_COR 6\n";
        let file = parse_aer(text, "correctable");
        assert_eq!(file.malformed, 0);
        assert_eq!(file.counts.len(), 8);
        assert_eq!(file.counts[1].error.as_ref(), "Bad TLP");
        assert_eq!(file.counts[1].count, 3.0);
        assert_eq!(file.total, Some(6.0));
        let dev = PciAerDevice {
            address: lv("0000:01:00.0"),
            errors: file.counts,
            reported: vec![],
            rootport: vec![],
            breakdown: true,
        };
        assert_eq!(dev.total("correctable"), 6.0);
    }

    #[test]
    fn malformed_lines_are_counted_not_fatal() {
        let file = parse_aer("Undefined 1\nGarbage\nSurprise Down Error x\n", "fatal");
        assert_eq!(file.counts.len(), 1);
        assert_eq!(file.malformed, 2);
        assert_eq!(file.total, None);
    }
}
