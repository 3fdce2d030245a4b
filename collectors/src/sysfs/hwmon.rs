//! hwmon chips: /sys/class/hwmon/hwmonN and their device directories.
//!
//! Discovery (listing, naming, opening attribute files, reading limits and labels) happens when the set of
//! chips changes, when a file vanished, and every `rediscover_interval` (a minute by default); a collection
//! in between is one `pread` per value that changes between polls (inputs, alarms, averages). Limits
//! (`*_min`, `*_max`, `*_crit`, ...) are read at discovery only: they change on a driver reload or an
//! operator's write, and on real hardware each hwmon read can cost milliseconds of I2C/SMBus time.
//! Values are kept as the kernel wrote them; [`unit`] converts to base units.
//!
//! Metric names mirror node_exporter's `node_hwmon_*` so dashboards port by changing the prefix. Where
//! node_exporter scales a value against the kernel ABI (alarm flags as Celsius, power accuracy and
//! humidity), the name is kept and the value follows the kernel; see docs/metrics.md.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::Filter;

use super::io::{EntryKind, ReadFailure};
use super::{
    Attr, ReadError, Rescan, SysfsIo, SysfsReader, class_dir, clean_name, list_class, pci_ancestor, plausible,
    read_static, read_value, split_attr_name,
};
use crate::catalogue;
use crate::export::{Families, LabelValue, MetricKind, labels};
use crate::intern::Interner;

/// Sensor types read, as node_exporter 1.5 plus `freq` (GPU/accelerator clocks, in Hz).
const SENSOR_TYPES: [&str; 14] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
    "freq",
];

/// One element of a sensor, e.g. `crit` of `temp1`. `element` is "" for a bare file like `pwm1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub element: Arc<str>,
    /// Index into [`HwmonReadings::values`].
    pub slot: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// e.g. "temp1"; "beep_enable0" for index-less types, as node_exporter names them.
    pub name: LabelValue,
    /// e.g. "temp".
    pub kind: Arc<str>,
    /// Content of `<sensor>_label`, trimmed.
    pub label: Option<LabelValue>,
    pub elements: Vec<Element>,
}

impl Sensor {
    pub fn element(&self, name: &str) -> Option<&Element> {
        self.elements.iter().find(|e| &*e.element == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chip {
    /// The `chip` label: node_exporter's name, with a suffix when two chips would share it.
    pub chip: LabelValue,
    /// The cleaned `name` file, e.g. "coretemp".
    pub chip_name: Option<LabelValue>,
    /// The raw `name` file, for binding devices by driver name.
    pub raw_name: Option<Arc<str>>,
    /// e.g. "hwmon3".
    pub hwmon: Arc<str>,
    /// The resolved `device` directory, if the chip has one.
    pub device: Option<PathBuf>,
    /// The nearest PCI device at or above `device`.
    pub pci_address: Option<Arc<str>>,
    /// That PCI device's class code (e.g. 0x120000 for a processing accelerator).
    pub pci_class: Option<u32>,
    pub sensors: Vec<Sensor>,
}

impl Chip {
    pub fn sensor(&self, name: &str) -> Option<&Sensor> {
        self.sensors.iter().find(|s| &*s.name == name)
    }
}

/// What was discovered: chips, their sensors, and where each value lives in [`HwmonReadings::values`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HwmonLayout {
    pub chips: Vec<Chip>,
    pub slots: usize,
    /// The samples export writes, grouped by family (see [`Run`]).
    runs: Vec<Run>,
}

/// The samples of one family, in the order a chip-by-chip walk meets them; the runs themselves are in
/// the order the walk meets each family first, so the exposition is the same as writing chip by chip.
/// Export writes a run at a time, looking its family up once instead of once per sample (thousands per
/// scrape on a large host), and sizing it once.
#[derive(Debug, Clone, PartialEq)]
enum Run {
    /// Chips with a `name` file, by index.
    ChipNames(Vec<u32>),
    /// Sensors with a label, as (chip, sensor).
    SensorLabels(Vec<(u32, u32)>),
    /// The elements exported as one metric with one unit (worked out once here rather than per scrape
    /// or per element), as (chip, sensor, slot of the element's value).
    Element { metric: Arc<str>, help: Arc<str>, unit: Unit, members: Vec<(u32, u32, u32)> },
}

impl Run {
    /// Groups `chips`' samples by family.
    fn group(chips: &[Chip], intern: &mut Interner) -> Vec<Run> {
        let mut runs = Vec::new();
        let (mut chip_names, mut labels) = (None, None);
        let mut elements: HashMap<(String, u64, u64), usize> = HashMap::new();
        let slot = |runs: &mut Vec<Run>, at: &mut Option<usize>, empty: Run| {
            *at.get_or_insert_with(|| {
                runs.push(empty);
                runs.len() - 1
            })
        };
        for (c, chip) in (0u32..).zip(chips) {
            if chip.chip_name.is_some() {
                let i = slot(&mut runs, &mut chip_names, Run::ChipNames(Vec::new()));
                if let Run::ChipNames(m) = &mut runs[i] {
                    m.push(c);
                }
            }
            for (s, sensor) in (0u32..).zip(&chip.sensors) {
                if sensor.label.is_some() {
                    let i = slot(&mut runs, &mut labels, Run::SensorLabels(Vec::new()));
                    if let Run::SensorLabels(m) = &mut runs[i] {
                        m.push((c, s));
                    }
                }
                let has_bare = sensor.element("").is_some();
                for el in &sensor.elements {
                    let metric = metric_name(&sensor.kind, &el.element, has_bare);
                    let unit = unit(&sensor.kind, &el.element);
                    // Keyed by the scaling as well: should two elements ever clean to one name with different
                    // units, each keeps its own (their samples still go to the one family).
                    let key = (metric, unit.mul.to_bits(), unit.div.to_bits());
                    let i = match elements.get(&key) {
                        Some(&i) => i,
                        None => {
                            runs.push(Run::Element {
                                metric: intern.get(&key.0),
                                help: intern.get(&help_for(&sensor.kind, &clean_name(&el.element))),
                                unit,
                                members: Vec::new(),
                            });
                            elements.insert(key, runs.len() - 1);
                            runs.len() - 1
                        }
                    };
                    if let Run::Element { members, .. } = &mut runs[i] {
                        members.push((c, s, el.slot as u32));
                    }
                }
            }
        }
        runs
    }
}

/// One collection: the layout (shared until the next discovery) and the raw value of every slot.
#[derive(Debug, Clone)]
pub struct HwmonReadings {
    pub layout: Arc<HwmonLayout>,
    /// Raw kernel values; None when the read failed (absent, never 0).
    pub values: Vec<Option<f64>>,
}

impl HwmonReadings {
    pub fn chip(&self, chip: &str) -> Option<&Chip> {
        self.layout.chips.iter().find(|c| &*c.chip == chip)
    }

    pub fn raw(&self, e: &Element) -> Option<f64> {
        self.values.get(e.slot).copied().flatten()
    }

    /// A value in base units (Celsius, volts, amperes, watts, joules, RPM, ratio, seconds, hertz).
    pub fn si(&self, sensor: &Sensor, element: &str) -> Option<f64> {
        let e = sensor.element(element)?;
        Some(unit(&sensor.kind, element).apply(self.raw(e)?))
    }
}

/// The reader's configuration.
#[derive(Debug, Clone, Default)]
pub struct HwmonOptions {
    pub chip_filter: Filter,
    /// Matches "chip;sensor".
    pub sensor_filter: Filter,
}

/// Where a slot's value comes from.
#[derive(Debug)]
enum Source {
    /// Read every collection.
    Live(Attr),
    /// Read at discovery (a limit or other static attribute); None when that read failed.
    Static(Option<f64>),
}

/// Elements that change only when a driver reloads or an operator writes them: limits and their
/// hysteresis, rated ranges, sensor types. Read at discovery, not every poll. Settings the agent or an
/// operator adjusts while running (`power*_cap`, `pwm*`, `fan*_target`) stay live.
fn is_static(element: &str) -> bool {
    matches!(
        element,
        "min"
            | "max"
            | "lcrit"
            | "crit"
            | "emergency"
            | "lowest_possible"
            | "highest_possible"
            | "rated_min"
            | "rated_max"
            | "type"
            | "cap_min"
            | "cap_max"
            | "average_interval_min"
            | "average_interval_max"
    ) || element.ends_with("_hyst")
}

pub struct HwmonReader {
    root: PathBuf,
    options: HwmonOptions,
    layout: Arc<HwmonLayout>,
    sources: Vec<Source>,
    /// The physical bounds of each slot's raw value.
    bounds: Vec<plausible::Bounds>,
    rescan: Rescan,
}

impl HwmonReader {
    pub fn new(sysfs_root: &Path, options: HwmonOptions) -> Self {
        HwmonReader {
            root: sysfs_root.to_owned(),
            options,
            layout: Arc::default(),
            sources: Vec::new(),
            bounds: Vec::new(),
            rescan: Rescan::default(),
        }
    }

    fn discover(&mut self, io: &mut SysfsIo, entries: Vec<String>) {
        // Dropping the old sources first gives their descriptors back to the budget before new ones open.
        self.sources.clear();
        let class = class_dir(&self.root, "hwmon");
        let mut found: Vec<ChipBuilder> =
            entries.iter().filter_map(|name| identify_chip(io, &class.join(name), name)).collect();
        disambiguate(&mut found);

        // Chips are scanned and built one at a time, so only one chip's drafts exist at once; names are
        // shared with the layout being replaced (still held by the last published readings).
        let mut intern = Interner::new();
        self.layout.seed(&mut intern);
        let mut chips = Vec::new();
        let mut sources = Vec::new();
        for mut b in found {
            if !self.options.chip_filter.allows(&b.chip) {
                continue;
            }
            let mut chip_sources = Found::default();
            // The device directory is read second so that its files win, as in node_exporter.
            for d in std::iter::once(b.dir.clone()).chain(b.device.clone()) {
                scan_attrs(io, &d, &mut b, &mut chip_sources);
            }
            chips.push(b.build(io, &self.options.sensor_filter, chip_sources, &mut sources, &mut intern));
        }
        let mut bounds = vec![plausible::ANY; sources.len()];
        for sensor in chips.iter().flat_map(|c| c.sensors.iter()) {
            for e in &sensor.elements {
                bounds[e.slot] = plausible::hwmon(&sensor.kind, &e.element);
            }
        }
        self.bounds = bounds;
        let runs = Run::group(&chips, &mut intern);
        self.layout = Arc::new(HwmonLayout { chips, slots: sources.len(), runs });
        self.sources = sources;
        self.rescan.done(entries, io);
    }
}

impl HwmonLayout {
    /// Offers every name of this layout to `intern`, so the next discovery shares them.
    fn seed(&self, intern: &mut Interner) {
        for c in &self.chips {
            for s in [Some(&c.chip), c.chip_name.as_ref(), c.raw_name.as_ref(), Some(&c.hwmon), c.pci_address.as_ref()]
                .into_iter()
                .flatten()
            {
                intern.seed(s);
            }
            for sensor in &c.sensors {
                intern.seed(&sensor.name);
                intern.seed(&sensor.kind);
                if let Some(l) = &sensor.label {
                    intern.seed(l);
                }
                for e in &sensor.elements {
                    intern.seed(&e.element);
                }
            }
        }
        for run in &self.runs {
            if let Run::Element { metric, help, .. } = run {
                intern.seed(metric);
                intern.seed(help);
            }
        }
    }
}

impl SysfsReader for HwmonReader {
    type Readings = HwmonReadings;

    fn collect(&mut self, io: &mut SysfsIo) -> Result<HwmonReadings, ReadError> {
        let class = class_dir(&self.root, "hwmon");
        let entries: Vec<String> = list_class(io, &class)?.into_iter().map(|e| e.name).collect();
        if self.rescan.needed(&entries, io) {
            self.discover(io, entries);
        }
        let values = self
            .sources
            .iter()
            .zip(&self.bounds)
            .map(|(source, b)| match source {
                Source::Live(a) => read_value(io, a, &mut self.rescan, b),
                Source::Static(v) => *v,
            })
            .collect();
        Ok(HwmonReadings { layout: Arc::clone(&self.layout), values })
    }
}

/// A chip while its name may still change (clashes are resolved across all chips).
struct ChipBuilder {
    /// The resolved hwmonN directory.
    dir: PathBuf,
    chip: String,
    chip_name: Option<String>,
    raw_name: Option<String>,
    hwmon: String,
    device: Option<PathBuf>,
    pci_class: Option<u32>,
    sensors: BTreeMap<String, SensorDraft>,
}

/// A sensor found at discovery: its type, label and elements (element -> index into the chip's attrs).
#[derive(Default)]
struct SensorDraft {
    kind: String,
    label: Option<String>,
    elements: BTreeMap<String, usize>,
}

/// A chip's attribute files found at discovery: how each is read, and its path (to count a conflict
/// against).
#[derive(Default)]
struct Found {
    sources: Vec<Source>,
    paths: Vec<PathBuf>,
}

impl ChipBuilder {
    fn build(
        mut self,
        io: &mut SysfsIo,
        sensor_filter: &Filter,
        chip_sources: Found,
        all: &mut Vec<Source>,
        intern: &mut Interner,
    ) -> Chip {
        let mut chip_attrs: Vec<Option<Source>> = chip_sources.sources.into_iter().map(Some).collect();
        let mut sensors = Vec::new();
        let mut names: Vec<String> = self.sensors.keys().cloned().collect();
        names.sort_by(|a, b| super::io::natural_cmp(a, b));
        for name in names {
            if !sensor_filter.allows(&format!("{};{}", self.chip, name)) {
                continue;
            }
            let Some(draft) = self.sensors.get_mut(&name) else { continue };
            one_file_per_series(io, draft, &chip_sources.paths);
            let SensorDraft { kind, label, elements } = &*draft;
            let mut els = Vec::new();
            for (element, &i) in elements {
                if let Some(attr) = chip_attrs[i].take() {
                    els.push(Element { element: intern.get(element), slot: all.len() });
                    all.push(attr);
                }
            }
            sensors.push(Sensor {
                name: intern.get(&name),
                kind: intern.get(kind),
                label: label.as_deref().map(|l| intern.get(l)),
                elements: els,
            });
        }
        let pci_address = self.device.as_deref().and_then(pci_ancestor).map(|s| intern.get(&s));
        Chip {
            chip: intern.get(&self.chip),
            chip_name: self.chip_name.as_deref().map(|n| intern.get(n)),
            raw_name: self.raw_name.as_deref().map(|n| intern.get(n)),
            hwmon: intern.get(&self.hwmon),
            device: self.device,
            pci_address,
            pci_class: self.pci_class,
            sensors,
        }
    }
}

/// A chip's names, device and PCI class; its attributes are scanned once all chips are named.
fn identify_chip(io: &mut SysfsIo, entry: &Path, entry_name: &str) -> Option<ChipBuilder> {
    // class/hwmon/hwmonN is a symlink on real systems and may be a plain directory in captured trees.
    let dir = super::resolve(entry)?;
    if !dir.is_dir() {
        return None;
    }
    let hwmon = dir.file_name().and_then(|n| n.to_str()).unwrap_or(entry_name).to_owned();
    let device = super::resolve(&dir.join("device")).filter(|d| d.is_dir());
    let raw_name = io.read_optional(&dir.join("name"));
    let chip_name = raw_name.as_deref().map(clean_name).filter(|n| !n.is_empty());

    // node_exporter's order: "<parent>_<device>" from the device link, else the name file, else hwmonN.
    let from_device = device.as_deref().and_then(|d| {
        let dev = clean_name(d.file_name()?.to_str()?);
        let parent =
            d.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).map(clean_name).unwrap_or_default();
        match (parent.is_empty(), dev.is_empty()) {
            (_, true) => None,
            (true, false) => Some(dev),
            (false, false) => Some(format!("{parent}_{dev}")),
        }
    });
    let chip = from_device.or_else(|| chip_name.clone()).unwrap_or_else(|| clean_name(&hwmon));

    // The PCI class tells discovery whether the chip sits on an accelerator.
    let pci_class = device
        .as_deref()
        .and_then(|d| d.ancestors().find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(super::is_pci_address)))
        .and_then(|pci| io.read_optional(&pci.join("class")))
        .and_then(|c| u32::from_str_radix(c.trim_start_matches("0x"), 16).ok());
    Some(ChipBuilder { dir, chip, chip_name, raw_name, hwmon, device, pci_class, sensors: BTreeMap::new() })
}

fn scan_attrs(io: &mut SysfsIo, dir: &Path, b: &mut ChipBuilder, found: &mut Found) {
    let Ok(entries) = io.list_dir(dir) else {
        return;
    };
    // (sensor, element) -> file name, for the files of this directory: `temp01_input` and `temp1_input`
    // are one element of one sensor. (The device directory overriding the chip's is by design.)
    let mut here: HashMap<(String, String), String> = HashMap::new();
    for entry in entries {
        let Some((kind, index, element)) = split_attr_name(&entry.name) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) {
            continue;
        }
        let path = dir.join(&entry.name);
        if !element.is_empty() && clean_name(element).is_empty() {
            // `temp1_-`: no metric name can be made from it.
            io.fail(&Arc::from(path.as_path()), ReadFailure::BadName);
            continue;
        }
        match entry.kind {
            // Anything that is not a directory is opened: in a test tree a FIFO stands in for an
            // attribute whose driver hangs, and it must go through the same deadline as one.
            EntryKind::File | EntryKind::Symlink | EntryKind::Other => {}
            EntryKind::Dir if index.is_some() => {
                // "temp1_input/" is a broken tree, worth counting; "power/" (runtime PM) is normal.
                io.fail(&Arc::from(path.as_path()), ReadFailure::NotAFile);
                continue;
            }
            _ => continue,
        }
        let sensor = format!("{kind}{}", index.unwrap_or(0));
        match here.entry((sensor.clone(), element.to_owned())) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(entry.name.clone());
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let (winner, loser) = if preferred(&entry.name, o.get()) {
                    (entry.name.clone(), o.get().clone())
                } else {
                    (o.get().clone(), entry.name.clone())
                };
                io.fail(&Arc::from(dir.join(&loser).as_path()), ReadFailure::NameConflict);
                if winner != entry.name {
                    continue;
                }
                o.insert(winner);
            }
        }
        let draft =
            b.sensors.entry(sensor).or_insert_with(|| SensorDraft { kind: kind.to_owned(), ..Default::default() });
        if element == "label" {
            draft.label = io.read_optional(&path);
            continue;
        }
        let attr = if is_static(element) {
            Source::Static(read_static(io, &path, &plausible::hwmon(kind, element)))
        } else {
            let Ok(attr) = io.open(path.as_path()) else {
                continue;
            };
            Source::Live(attr)
        };
        match draft.elements.get(element) {
            Some(&i) => {
                found.sources[i] = attr;
                found.paths[i] = path;
            }
            None => {
                draft.elements.insert(element.to_owned(), found.sources.len());
                found.sources.push(attr);
                found.paths.push(path);
            }
        }
    }
}

/// Whether the attribute file `a` is exported rather than `b` when both clean to one series: the one
/// spelled as the kernel spells attributes (`temp4_foo_bar`, not `temp4_foo-bar` or `temp04_foo_bar`),
/// else the first in byte order. Either way the choice does not depend on the order files are listed in.
fn preferred(a: &str, b: &str) -> bool {
    preference(a) < preference(b)
}

/// The order of [`preferred`]: lower wins.
fn preference(file: &str) -> (bool, Vec<u8>) {
    (!is_kernel_spelling(file), file.as_bytes().to_vec())
}

/// Whether `file` is spelled as the hwmon ABI spells attribute names: `<type><index>[_<element>]`, the
/// index without leading zeros and the element already clean.
fn is_kernel_spelling(file: &str) -> bool {
    let Some((kind, index, element)) = split_attr_name(file) else {
        return false;
    };
    let index = index.map(|i| i.to_string()).unwrap_or_default();
    let rebuilt = if element.is_empty() { format!("{kind}{index}") } else { format!("{kind}{index}_{element}") };
    rebuilt == file && clean_name(element) == element
}

/// Leaves `sensor` at most one element per exported name: elements whose names clean to one series
/// (`foo-bar` and `foo_bar`, or `Input` and `input` beside a bare value) would be written twice, which
/// Prometheus rejects. The [`preferred`] one stays; each other is counted as a conflict and not read.
/// Done at discovery, so a scrape pays nothing for it.
fn one_file_per_series(io: &mut SysfsIo, sensor: &mut SensorDraft, paths: &[PathBuf]) {
    let has_bare = sensor.elements.contains_key("");
    let mut by_metric: HashMap<String, Vec<String>> = HashMap::new();
    for element in sensor.elements.keys() {
        by_metric.entry(metric_name(&sensor.kind, element, has_bare)).or_default().push(element.clone());
    }
    for (_, mut elements) in by_metric.into_iter().filter(|(_, e)| e.len() > 1) {
        let file = |e: &str| paths[sensor.elements[e]].file_name().and_then(|n| n.to_str()).unwrap_or(e).to_owned();
        elements.sort_by_cached_key(|e| preference(&file(e)));
        for loser in &elements[1..] {
            if let Some(i) = sensor.elements.remove(loser) {
                io.fail(&Arc::from(paths[i].as_path()), ReadFailure::NameConflict);
            }
        }
    }
}

/// Two chips with one name would produce duplicate series; suffix them with their `name` content if that
/// tells them apart, else with their hwmonN. Should a suffixed name still meet another chip's (`x` named
/// `y` beside a chip called `x_y`), the later chip in listing order also gets `_2`, `_3`, ...
fn disambiguate(found: &mut [ChipBuilder]) {
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, b) in found.iter().enumerate() {
        groups.entry(b.chip.clone()).or_default().push(i);
    }
    for (base, members) in groups {
        if members.len() < 2 {
            continue;
        }
        let names: Vec<Option<&String>> = members.iter().map(|&i| found[i].chip_name.as_ref()).collect();
        let distinct = names.iter().all(Option::is_some)
            && names.iter().collect::<std::collections::HashSet<_>>().len() == names.len();
        for &i in &members {
            let b = &mut found[i];
            let suffix = if distinct { b.chip_name.clone().unwrap_or_default() } else { clean_name(&b.hwmon) };
            b.chip = format!("{base}_{suffix}");
        }
    }
    let mut used = std::collections::HashSet::new();
    for b in found.iter_mut() {
        let base = b.chip.clone();
        let mut n = 2;
        while !used.insert(b.chip.clone()) {
            b.chip = format!("{base}_{n}");
            n += 1;
        }
    }
}

/// How a raw hwmon value maps to a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// The exported value is `raw * mul / div`. Both are kept (rather than one factor) so the result is
    /// bit-identical to node_exporter's, which multiplies by 0.001 for milli-units and divides by 1e6
    /// for micro-units.
    pub mul: f64,
    pub div: f64,
    /// Suffix node_exporter appends to the name (after the element).
    pub suffix: &'static str,
    pub kind: MetricKind,
}

impl Unit {
    pub fn apply(&self, raw: f64) -> f64 {
        raw * self.mul / self.div
    }
}

const RAW: Unit = Unit { mul: 1.0, div: 1.0, suffix: "", kind: MetricKind::Gauge };
const MILLI: f64 = 0.001;

/// Whether an element is a flag or count rather than a measurement in the sensor's unit.
fn is_unitless(element: &str) -> bool {
    element == "alarm"
        || element == "fault"
        || element == "beep"
        || element == "enable"
        || element == "type"
        || element.ends_with("_alarm")
        || element.ends_with("_beep")
        || element == "average_samples"
}

/// The kernel ABI unit of `<kind><n>_<element>`, as the conversion to base units and node_exporter's suffix.
pub fn unit(kind: &str, element: &str) -> Unit {
    let flag = is_unitless(element);
    let mul = |m: f64, suffix| Unit { mul: if flag { 1.0 } else { m }, suffix, ..RAW };
    let div = |d: f64, suffix| Unit { div: if flag { 1.0 } else { d }, suffix, ..RAW };
    match (kind, element) {
        ("update_interval", _) => mul(MILLI, ""),
        (_, "alarm" | "fault") => RAW,
        (_, "beep") => Unit { suffix: "_enabled", ..RAW },
        ("in" | "cpu", _) => mul(MILLI, "_volts"),
        ("temp", "type") => RAW,
        ("temp", _) => mul(MILLI, "_celsius"),
        ("curr", _) => mul(MILLI, "_amps"),
        ("energy", _) => Unit { kind: MetricKind::Counter, ..div(1e6, "_joule_total") },
        // Percent in the kernel ABI; node_exporter divides by 1e6.
        ("power", "accuracy") => div(100.0, ""),
        ("power", "average_interval" | "average_interval_min" | "average_interval_max") => mul(MILLI, "_seconds"),
        ("power", _) => div(1e6, "_watt"),
        // milli-percent to a ratio; node_exporter divides by 1e6.
        ("humidity", _) => div(1e5, ""),
        ("fan", "input" | "min" | "max" | "target") => Unit { suffix: "_rpm", ..RAW },
        ("freq", "input") => Unit { suffix: "_hertz", ..RAW },
        _ => RAW,
    }
}

/// The exported name of an element; `has_bare` says whether the sensor also has a bare value file.
fn metric_name(kind: &str, element: &str, has_bare: bool) -> String {
    match kind {
        "vrm" => return "accel_hwmon_voltage_regulator_version".to_owned(),
        "update_interval" => return "accel_hwmon_update_interval_seconds".to_owned(),
        "beep_enable" => return "accel_hwmon_beep_enabled".to_owned(),
        _ => {}
    }
    let mut name = format!("accel_hwmon_{kind}");
    match element {
        "" => {}
        "input" if has_bare => name.push_str("_input"),
        "input" if kind == "freq" => {}
        "input" => {}
        e => {
            name.push('_');
            name.push_str(&clean_name(e));
        }
    }
    name.push_str(unit(kind, element).suffix);
    name
}

impl HwmonReadings {
    pub fn export(&self, out: &mut Families) {
        let chips = &self.layout.chips;
        let labels =
            |chip: &Chip, sensor: &Sensor| labels![("chip", chip.chip.clone()), ("sensor", sensor.name.clone())];
        for run in &self.layout.runs {
            match run {
                Run::ChipNames(members) => out.extend(
                    &catalogue::HWMON_CHIP_NAMES,
                    members.iter().filter_map(|&c| {
                        let chip = &chips[c as usize];
                        let name = chip.chip_name.clone()?;
                        Some((labels![("chip", chip.chip.clone()), ("chip_name", name)], 1.0))
                    }),
                ),
                Run::SensorLabels(members) => out.extend(
                    &catalogue::HWMON_SENSOR_LABEL,
                    members.iter().filter_map(|&(c, s)| {
                        let chip = &chips[c as usize];
                        let sensor = &chip.sensors[s as usize];
                        let mut l = labels(chip, sensor);
                        l.push(("label", sensor.label.clone()?));
                        Some((l, 1.0))
                    }),
                ),
                Run::Element { metric, help, unit, members } => out.extend_in(
                    &catalogue::HWMON,
                    metric,
                    help,
                    unit.kind,
                    members.iter().filter_map(|&(c, s, slot)| {
                        let chip = &chips[c as usize];
                        let sensor = &chip.sensors[s as usize];
                        let raw = self.values.get(slot as usize).copied().flatten()?;
                        // beep_enable is a 0/1 setting (its unit is the raw one).
                        let value = if &*sensor.kind == "beep_enable" {
                            if raw == 1.0 { 1.0 } else { 0.0 }
                        } else {
                            unit.apply(raw)
                        };
                        Some((labels(chip, sensor), value))
                    }),
                ),
            }
        }
    }
}

fn help_for(kind: &str, element: &str) -> String {
    let what = match kind {
        "temp" => "temperature",
        "in" | "cpu" => "voltage",
        "curr" => "current",
        "power" => "power",
        "energy" => "energy",
        "fan" => "fan speed",
        "pwm" => "PWM output",
        "humidity" => "humidity",
        "intrusion" => "chassis intrusion",
        "freq" => "frequency",
        _ => kind,
    };
    if element.is_empty() || element == "input" {
        format!("Hardware monitor {what} reading")
    } else {
        format!("Hardware monitor {what} ({element})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_units_follow_node_exporter_and_the_kernel() {
        assert_eq!(metric_name("temp", "input", false), "accel_hwmon_temp_celsius");
        assert_eq!(metric_name("temp", "crit_alarm", false), "accel_hwmon_temp_crit_alarm_celsius");
        assert_eq!(unit("temp", "crit_alarm").apply(1.0), 1.0, "alarm flags stay 0/1");
        assert_eq!(unit("temp", "input").apply(45000.0), 45.0);
        assert_eq!(metric_name("in", "input", true), "accel_hwmon_in_input_volts");
        assert_eq!(metric_name("fan", "beep", false), "accel_hwmon_fan_beep_enabled");
        assert_eq!(metric_name("fan", "pulses", false), "accel_hwmon_fan_pulses");
        assert_eq!(metric_name("power", "average_interval", false), "accel_hwmon_power_average_interval_seconds");
        assert_eq!(metric_name("energy", "input", false), "accel_hwmon_energy_joule_total");
        assert_eq!(metric_name("pwm", "auto_point1_temp", false), "accel_hwmon_pwm_auto_point1_temp");
        assert_eq!(metric_name("update_interval", "", false), "accel_hwmon_update_interval_seconds");
        assert_eq!(metric_name("freq", "input", false), "accel_hwmon_freq_hertz");
        assert_eq!(unit("humidity", "input").apply(45000.0), 0.45);
        assert_eq!(unit("power", "accuracy").apply(5.0), 0.05);
        assert_eq!(unit("power", "cap").apply(47520000.0), 47.52, "division, like node_exporter");
    }

    /// The export as it was written before runs: chip by chip, a sample at a time.
    fn chip_by_chip(r: &HwmonReadings, out: &mut Families) {
        for chip in &r.layout.chips {
            if let Some(n) = &chip.chip_name {
                let l = labels![("chip", chip.chip.clone()), ("chip_name", n.clone())];
                out.sample(&catalogue::HWMON_CHIP_NAMES, l, 1.0);
            }
            for sensor in &chip.sensors {
                let labels = || labels![("chip", chip.chip.clone()), ("sensor", sensor.name.clone())];
                if let Some(label) = &sensor.label {
                    let mut l = labels();
                    l.push(("label", label.clone()));
                    out.sample(&catalogue::HWMON_SENSOR_LABEL, l, 1.0);
                }
                let has_bare = sensor.element("").is_some();
                for e in &sensor.elements {
                    let Some(raw) = r.raw(e) else { continue };
                    let unit = unit(&sensor.kind, &e.element);
                    let (value, kind) = if &*sensor.kind == "beep_enable" {
                        (if raw == 1.0 { 1.0 } else { 0.0 }, MetricKind::Gauge)
                    } else {
                        (unit.apply(raw), unit.kind)
                    };
                    let (metric, help) =
                        (metric_name(&sensor.kind, &e.element, has_bare), help_for(&sensor.kind, &e.element));
                    out.sample_in(&catalogue::HWMON, &metric, &help, kind, labels(), value);
                }
            }
        }
    }

    #[test]
    fn export_by_runs_writes_what_chip_by_chip_writes() {
        let fs = accel_sim::sysfs_tree::FakeSysfs::new();
        // No name file on the first chip, labels on some sensors, a bare value, beep_enable, energy.
        fs.hwmon(0, None, None).attr("temp1_input", "40000").attr("fan1_input", "1200").attr("fan1_min", "300");
        fs.hwmon(1, Some("loihi"), Some("devices/pci0000:00/0000:00:01.0"))
            .attr("temp1_input", "41000")
            .attr("temp1_label", "die")
            .attr("temp2_input", "42000")
            .attr("temp2_crit", "95000")
            .attr("beep_enable", "1")
            .attr("energy1_input", "123456789")
            .attr("in0", "800")
            .attr("in0_input", "801");
        fs.hwmon(2, Some("photonic"), None).attr("temp1_input", "43000").attr("temp1_label", "laser");
        let mut reader = HwmonReader::new(fs.root(), HwmonOptions::default());
        let mut io = SysfsIo::new(super::super::ReadWatch::new(super::super::Quarantine::new()));
        io.begin(std::time::Instant::now());
        let r = reader.collect(&mut io).expect("collects");
        let (mut runs, mut reference) = (Families::new(), Families::new());
        r.export(&mut runs);
        chip_by_chip(&r, &mut reference);
        let all = |f: &Families| f.iter().cloned().collect::<Vec<_>>();
        assert_eq!(all(&runs), all(&reference));
        assert_eq!(runs.value("accel_hwmon_temp_celsius", &[("chip", "photonic"), ("sensor", "temp1")]), Some(43.0));
        assert_eq!(runs.len(), 10, "chip names, labels, and 8 element families");
    }
}
