//! Metric families as readers describe them, independent of the exposition library.
//!
//! Readers know which names, units and labels their values have; the agent writes [`Families`] as
//! Prometheus text and OpenMetrics (its `publish::encode`). Keeping the mapping next to the parsing keeps
//! each reader testable on its own. Every family is declared in [`crate::catalogue`]; samples are added
//! through its declarations, never by a name made up at the call site.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use smallvec::SmallVec;

pub use crate::catalogue::MetricKind;
use crate::catalogue::{Pattern, Spec};

/// A label value. Shared so that building families does not copy names read at discovery time.
pub type LabelValue = Arc<str>;

/// A sample's labels. Inline up to three (nearly every family has at most three), so building a scrape
/// does not allocate a list per sample: that was most of the allocation of an encode.
pub type Labels = SmallVec<[(&'static str, LabelValue); 3]>;

pub use smallvec::smallvec as labels;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| &**v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The full sample name, e.g. `accel_hwmon_temp_celsius` or `accel_pci_aer_errors_total`.
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub samples: Vec<Sample>,
}

/// A multiply-rotate hash taking eight bytes at a time (the FxHash step, finished as rustc-hash 2 does).
/// Every sample of a scrape looks its family up by name; the names are our own (not attacker chosen), so
/// the DoS resistance of the standard SipHash buys nothing and cost 3% of a scrape's CPU, and FNV-1a's
/// one multiply per byte still made this lookup a tenth of an encode.
#[derive(Default)]
struct NameHash(u64);

impl NameHash {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for NameHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.add(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        // The product's best bits are its high ones; the table indexes by the low ones.
        self.0.rotate_left(26)
    }
}

/// An ordered set of families, each name at most once.
#[derive(Debug, Clone, Default)]
pub struct Families {
    families: Vec<Family>,
    index: HashMap<String, usize, BuildHasherDefault<NameHash>>,
    /// The family the last sample went to: readers often add a run of samples to one family (a device's
    /// error counters, every device's event counts), and comparing one name is cheaper than hashing it.
    last: usize,
}

impl Families {
    pub fn new() -> Self {
        Self::default()
    }

    /// The family `name`, created on first use. The first caller's help text and kind win.
    fn family(&mut self, name: &str, help: &str, kind: MetricKind) -> &mut Family {
        debug_assert!(kind != MetricKind::Counter || name.ends_with("_total"), "counter {name} must end in _total");
        if self.families.get(self.last).is_some_and(|f| f.name == name) {
            return &mut self.families[self.last];
        }
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(Family { name: name.to_owned(), help: help.to_owned(), kind, samples: Vec::new() });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        self.last = i;
        &mut self.families[i]
    }

    /// Adds a sample of the catalogue family `spec`. Debug builds check that the label names are the
    /// declared ones, in order.
    pub fn sample(&mut self, spec: &'static Spec, labels: impl Into<Labels>, value: f64) {
        self.extend(spec, std::iter::once((labels.into(), value)));
    }

    /// Adds a sample to the family `name` of the catalogue group `pattern` (a name built from a sysfs file
    /// name, with its help text). Debug builds check the name and the label names against the pattern.
    pub fn sample_in(
        &mut self,
        pattern: &'static Pattern,
        name: &str,
        help: &str,
        kind: MetricKind,
        labels: impl Into<Labels>,
        value: f64,
    ) {
        self.extend_in(pattern, name, help, kind, std::iter::once((labels.into(), value)));
    }

    /// Adds a run of samples of the catalogue family `spec`, looking the family up once.
    pub fn extend(&mut self, spec: &'static Spec, samples: impl Iterator<Item = (Labels, f64)>) {
        let family = self.family(spec.name, spec.help, spec.kind);
        family.samples.reserve(samples.size_hint().1.unwrap_or(0));
        for (labels, value) in samples {
            debug_assert!(
                spec.accepts(labels.iter().map(|(k, _)| *k)),
                "{}: labels {:?} are not the declared {:?} (then optionally {:?})",
                spec.name,
                labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                spec.labels,
                spec.optional_labels,
            );
            family.samples.push(Sample { labels, value });
        }
    }

    /// Adds a run of samples to the family `name` of the catalogue group `pattern`, looking the family up
    /// once.
    pub fn extend_in(
        &mut self,
        pattern: &'static Pattern,
        name: &str,
        help: &str,
        kind: MetricKind,
        samples: impl Iterator<Item = (Labels, f64)>,
    ) {
        debug_assert!(pattern.matches(name), "{name} is not a family of {}", pattern.doc);
        let family = self.family(name, help, kind);
        family.samples.reserve(samples.size_hint().1.unwrap_or(0));
        for (labels, value) in samples {
            debug_assert!(
                pattern.accepts(labels.iter().map(|(k, _)| *k)),
                "{name}: labels {:?} are not the declared {:?}",
                labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                pattern.labels,
            );
            family.samples.push(Sample { labels, value });
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Family> {
        self.families.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Family> {
        self.index.get(name).map(|&i| &self.families[i])
    }

    /// The value of the sample of `name` whose labels include all of `labels`; for tests and lookups.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.get(name)?.samples.iter().find(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v))).map(|s| s.value)
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    pub fn len(&self) -> usize {
        self.families.len()
    }

    /// Moves every family of `other` into `self`, merging families of the same name.
    pub fn append(&mut self, other: Families) {
        for f in other.families {
            let target = self.family(&f.name, &f.help, f.kind);
            target.samples.extend(f.samples);
        }
    }
}

/// The families in order, each given up as it is taken: a writer that consumes them frees each family's
/// samples once written, so a scrape's families and its encoded text are not both whole at once.
impl IntoIterator for Families {
    type Item = Family;
    type IntoIter = std::vec::IntoIter<Family>;

    fn into_iter(self) -> Self::IntoIter {
        self.families.into_iter()
    }
}

impl<'a> IntoIterator for &'a Families {
    type Item = &'a Family;
    type IntoIter = std::slice::Iter<'a, Family>;

    fn into_iter(self) -> Self::IntoIter {
        self.families.iter()
    }
}

/// Shorthand for a label value from any string.
pub fn lv(s: impl AsRef<str>) -> LabelValue {
    Arc::from(s.as_ref())
}
