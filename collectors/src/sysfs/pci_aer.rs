//! PCIe Advanced Error Reporting counters: /sys/bus/pci/devices/<addr>/aer_dev_{correctable,nonfatal,fatal}
//! and, on root ports, aer_rootport_total_err_{cor,nonfatal,fatal}.
//!
//! Each aer_dev_* file holds lines "<Error Name> <count>" (names may contain spaces, so the count is the
//! last token), ending with a TOTAL_ERR_* line. Totals are left out of the per-error family: summing it
//! over `error` gives the total without double counting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::Filter;

use super::io::ReadFailure;
use super::{Attr, ReadError, Rescan, SysfsIo, SysfsReader, list_class, plausible, read_value};
use crate::catalogue;
use crate::export::{Families, LabelValue, lv};

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
    /// (severity, count) on root ports.
    pub rootport: Vec<(&'static str, f64)>,
}

impl PciAerDevice {
    /// Sum over all error names of one severity.
    pub fn total(&self, severity: &str) -> f64 {
        self.errors.iter().filter(|e| e.severity == severity).map(|e| e.count).sum()
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
            for e in &d.errors {
                out.sample(
                    &catalogue::PCI_AER_ERRORS,
                    vec![("pci_address", d.address.clone()), ("severity", lv(e.severity)), ("error", e.error.clone())],
                    e.count,
                );
            }
            for (sev, n) in &d.rootport {
                out.sample(
                    &catalogue::PCI_AER_ROOTPORT_ERRORS,
                    vec![("pci_address", d.address.clone()), ("severity", lv(*sev))],
                    *n,
                );
            }
        }
    }
}

/// Parses an aer_dev_* file. Malformed lines are skipped and returned as a count.
pub fn parse_aer(text: &str, severity: &'static str) -> (Vec<AerCount>, usize) {
    parse_aer_with(text, severity, &mut |name| lv(name))
}

/// [`parse_aer`] with the error-name label values supplied by `intern`, so the reader can reuse the
/// same few dozen names every round instead of allocating them per device.
fn parse_aer_with(
    text: &str,
    severity: &'static str,
    intern: &mut dyn FnMut(&str) -> LabelValue,
) -> (Vec<AerCount>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, count)) = line.rsplit_once(char::is_whitespace) else {
            bad += 1;
            continue;
        };
        let (name, Ok(count)) = (name.trim(), count.parse::<u64>()) else {
            bad += 1;
            continue;
        };
        if name.starts_with("TOTAL_ERR_") {
            continue;
        }
        out.push(AerCount { severity, error: intern(name), count: count as f64 });
    }
    (out, bad)
}

struct Layout {
    address: LabelValue,
    dev: Vec<(&'static str, Attr)>,
    rootport: Vec<(&'static str, Attr)>,
}

pub struct PciAerReader {
    root: PathBuf,
    filter: Filter,
    devices: Vec<Layout>,
    rescan: Rescan,
    /// Error names seen so far (the kernel has a fixed set of a few dozen).
    names: HashMap<Box<str>, LabelValue>,
}

impl PciAerReader {
    /// `filter` matches the PCI address.
    pub fn new(sysfs_root: &Path, filter: Filter) -> Self {
        PciAerReader {
            root: sysfs_root.to_owned(),
            filter,
            devices: Vec::new(),
            rescan: Rescan::default(),
            names: HashMap::new(),
        }
    }

    fn discover(&mut self, io: &mut SysfsIo, bus: &Path, names: &[String]) {
        self.devices.clear();
        for addr in names {
            if !self.filter.allows(addr) {
                continue;
            }
            let dir = bus.join(addr);
            let mut layout = Layout { address: lv(addr), dev: Vec::new(), rootport: Vec::new() };
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
}

impl SysfsReader for PciAerReader {
    type Readings = PciAerReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<PciAerReadings, ReadError> {
        let bus = self.root.join("bus/pci/devices");
        let names: Vec<String> = list_class(io, &bus)?.into_iter().map(|e| e.name).collect();
        if self.rescan.needed(&names, io) {
            self.discover(io, &bus, &names);
            self.rescan.done(names);
        }
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let mut errors = Vec::new();
            for (sev, attr) in &d.dev {
                let names = &mut self.names;
                let mut intern = |name: &str| match names.get(name) {
                    Some(v) => v.clone(),
                    None => names.entry(name.into()).or_insert_with(|| lv(name)).clone(),
                };
                let parsed = io.read(attr).map(|text| parse_aer_with(text, sev, &mut intern));
                match parsed {
                    Ok((counts, bad)) => {
                        for _ in 0..bad {
                            io.fail(attr.path(), ReadFailure::Parse);
                        }
                        errors.extend(counts);
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
            devices.push(PciAerDevice { address: d.address.clone(), errors, rootport });
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
        let (counts, bad) = parse_aer(text, "correctable");
        assert_eq!(bad, 0);
        assert_eq!(counts.len(), 8);
        assert_eq!(counts[1].error.as_ref(), "Bad TLP");
        assert_eq!(counts[1].count, 3.0);
        let dev = PciAerDevice { address: lv("0000:01:00.0"), errors: counts, rootport: vec![] };
        assert_eq!(dev.total("correctable"), 6.0);
    }

    #[test]
    fn malformed_lines_are_counted_not_fatal() {
        let (counts, bad) = parse_aer("Undefined 1\nGarbage\nSurprise Down Error x\n", "fatal");
        assert_eq!(counts.len(), 1);
        assert_eq!(bad, 2);
    }
}
