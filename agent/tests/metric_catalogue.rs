//! The metric catalogue (collectors/src/catalogue.rs), the documentation and the contract say the same:
//! every family is documented in docs/metrics.md (or docs/resources.md, which metrics.md links to for the
//! host-resource families) with the same labels and every documented family is in the catalogue; every
//! family of the contract's catalogue (docs/design-contract-metrics.txt, a copy of ../shared/DESIGN.md's
//! block) is in the catalogue with the same labels; and the copy matches ../shared/DESIGN.md when that is
//! present (it is not in a fresh clone or in CI).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use collectors::MetricKind;
use collectors::catalogue::{self, PATTERNS, Pattern, Spec};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("agent/ lies in the repository").to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A family as a documentation table row names it.
#[derive(Debug)]
struct Documented {
    /// `page:line`, for messages.
    at: String,
    name: String,
    labels: BTreeSet<String>,
    optional: BTreeSet<String>,
    kind: Option<MetricKind>,
}

fn cells(line: &str) -> Vec<String> {
    line.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect()
}

fn label_set(text: &str) -> BTreeSet<String> {
    text.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The families of every table with a `family` and a `labels` column. A family cell names one or more
/// families in backticks (what follows an opening parenthesis is an example, not a family); a name may
/// add labels in braces (`accel_class_clock_hertz{clock}`). A labels cell lists names separated by
/// commas, then optionally `; optional: ...` for labels a sample has only when the value exists.
fn documented(page: &str) -> Vec<Documented> {
    let text = read(&repo().join("docs").join(page));
    let mut out = Vec::new();
    let mut columns: Option<(usize, usize, Option<usize>)> = None;
    for (i, line) in text.lines().enumerate() {
        if !line.trim_start().starts_with('|') {
            columns = None;
            continue;
        }
        let row = cells(line);
        if row.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':' || ch == ' ')) {
            continue;
        }
        let Some((family, labels, kind)) = columns else {
            let at = |name: &str| row.iter().position(|c| c == name);
            columns = at("family").zip(at("labels")).map(|(f, l)| (f, l, at("type")));
            if columns.is_none() {
                // A table about something else: skip its rows (an impossible column index).
                columns = Some((usize::MAX, usize::MAX, None));
            }
            continue;
        };
        if family == usize::MAX {
            continue;
        }
        let cell = &row[family];
        let names = cell.split('(').next().unwrap_or_default();
        let (mandatory, optional) = match row[labels].split_once("; optional:") {
            Some((m, o)) => (label_set(m), label_set(o)),
            None => (label_set(&row[labels]), BTreeSet::new()),
        };
        let kind = kind.map(|k| match row[k].as_str() {
            "gauge" => MetricKind::Gauge,
            "counter" => MetricKind::Counter,
            other => panic!("{page}:{}: unknown type {other:?}", i + 1),
        });
        for name in names.split('`').skip(1).step_by(2) {
            let (name, extra) = match name.split_once('{') {
                Some((n, rest)) => (n, label_set(rest.trim_end_matches('}'))),
                None => (name, BTreeSet::new()),
            };
            out.push(Documented {
                at: format!("docs/{page}:{}", i + 1),
                name: name.to_owned(),
                labels: mandatory.union(&extra).cloned().collect(),
                optional: optional.clone(),
                kind,
            });
        }
        assert!(names.contains('`'), "docs/{page}:{}: a family row names no family in backticks: {cell:?}", i + 1);
    }
    out
}

fn set(labels: &[&str]) -> BTreeSet<String> {
    labels.iter().map(|l| (*l).to_owned()).collect()
}

#[test]
fn every_family_is_documented_with_its_labels_and_every_documented_family_exists() {
    let docs: Vec<Documented> = ["metrics.md", "resources.md"].iter().flat_map(|p| documented(p)).collect();
    assert!(docs.len() > 100, "the family tables were not found: {} rows", docs.len());
    let mut problems = Vec::new();
    for spec in catalogue::ALL {
        let rows: Vec<&Documented> = docs.iter().filter(|d| d.name == spec.name).collect();
        match rows.as_slice() {
            [] => problems.push(format!("{} is not documented", spec.name)),
            [d] => {
                if d.labels != set(spec.labels) || d.optional != set(spec.optional_labels) {
                    problems.push(format!(
                        "{}: {} documents labels {:?} (optional {:?}), the catalogue declares {:?} (optional {:?})",
                        spec.name, d.at, d.labels, d.optional, spec.labels, spec.optional_labels
                    ));
                }
                if d.kind.is_some_and(|k| k != spec.kind) {
                    problems
                        .push(format!("{}: {} documents type {:?}, declared {:?}", spec.name, d.at, d.kind, spec.kind));
                }
            }
            more => problems.push(format!("{} is documented {} times", spec.name, more.len())),
        }
    }
    for pattern in PATTERNS {
        match docs.iter().find(|d| d.name == pattern.doc) {
            None => problems.push(format!("{} is not documented", pattern.doc)),
            Some(d) if d.labels != set(pattern.labels) => problems.push(format!(
                "{}: {} documents labels {:?}, the catalogue declares {:?}",
                pattern.doc, d.at, d.labels, pattern.labels
            )),
            Some(_) => {}
        }
    }
    for d in &docs {
        if catalogue::spec(&d.name).is_some() || PATTERNS.iter().any(|p| p.doc == d.name) {
            continue;
        }
        // An example of a group (e.g. accel_hwmon_freq_hertz) has the group's labels.
        match PATTERNS.iter().find(|p| p.matches(&d.name)) {
            Some(p) if d.labels == set(p.labels) => {}
            Some(p) => problems.push(format!(
                "{}: {} documents labels {:?}, its group {} has {:?}",
                d.name, d.at, d.labels, p.doc, p.labels
            )),
            None => problems.push(format!("{}: {} documents a family the catalogue does not declare", d.name, d.at)),
        }
    }
    assert!(problems.is_empty(), "docs and catalogue disagree:\n{}", problems.join("\n"));
}

/// A family of the contract's block: a name (ending in `*` for a group) and, if given, its labels.
#[derive(Debug)]
struct Contracted {
    name: String,
    labels: Option<BTreeSet<String>>,
}

/// The families of a metric catalogue block: every token starting with `accel_`, with its `{labels}`.
fn contracted(block: &str) -> Vec<Contracted> {
    block
        .split_whitespace()
        .filter(|t| t.starts_with("accel_"))
        .map(|t| match t.split_once('{') {
            Some((name, rest)) => Contracted {
                name: name.to_owned(),
                labels: Some(label_set(rest.strip_suffix('}').expect("a label list ends with }"))),
            },
            None => Contracted { name: t.to_owned(), labels: None },
        })
        .collect()
}

/// The checked-in copy without its header.
fn contract_copy() -> String {
    read(&repo().join("docs/design-contract-metrics.txt"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn every_family_of_the_contract_is_in_the_catalogue_with_its_labels() {
    let families = contracted(&contract_copy());
    assert!(families.len() > 40, "the contract lists {} families", families.len());
    let mut problems = Vec::new();
    for f in &families {
        if let Some(prefix) = f.name.strip_suffix('*') {
            let group: Option<&&Pattern> = PATTERNS.iter().find(|p| p.prefix == prefix);
            match (group, &f.labels) {
                (None, _) => problems.push(format!("{}: no group of the catalogue is named {prefix}...", f.name)),
                (Some(p), Some(labels)) if *labels != set(p.labels) => problems
                    .push(format!("{}{:?}: the catalogue's {} has labels {:?}", f.name, labels, p.doc, p.labels)),
                _ => {}
            }
            continue;
        }
        let spec: Option<&Spec> = catalogue::spec(&f.name);
        let want = f.labels.clone().unwrap_or_default();
        match spec {
            None => problems.push(format!("{}: not in the catalogue", f.name)),
            Some(s) if want != set(s.labels) => {
                problems.push(format!("{}{:?}: the catalogue declares labels {:?}", f.name, want, s.labels))
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "the contract and the catalogue disagree:\n{}", problems.join("\n"));
}

#[test]
fn the_contract_parser_sees_names_labels_and_groups() {
    let f = contracted("accel_hwmon_*   like node_hwmon_*\naccel_x{a,b}  accel_y 1 reachable, accel_z_total{c}\n");
    let got: Vec<(&str, Option<Vec<&str>>)> = f
        .iter()
        .map(|c| (c.name.as_str(), c.labels.as_ref().map(|l| l.iter().map(String::as_str).collect())))
        .collect();
    assert_eq!(
        got,
        vec![
            ("accel_hwmon_*", None),
            ("accel_x", Some(vec!["a", "b"])),
            ("accel_y", None),
            ("accel_z_total", Some(vec!["c"])),
        ]
    );
}

/// The block under "## Metric catalogue" in a DESIGN.md.
fn design_block(design: &str) -> String {
    let mut lines = design.lines().skip_while(|l| l.trim() != "## Metric catalogue");
    assert!(lines.next().is_some(), "DESIGN.md has no \"## Metric catalogue\" section");
    let mut lines = lines.skip_while(|l| !l.starts_with("```"));
    assert!(lines.next().is_some(), "the Metric catalogue section has no code block");
    lines.take_while(|l| !l.starts_with("```")).map(|l| format!("{l}\n")).collect()
}

#[test]
#[cfg_attr(
    not(has_shared_design),
    ignore = "../shared/DESIGN.md is absent (a fresh clone, CI); the checked-in copy is tested instead. \
              The build script looks for it: after adding it, `touch agent/build.rs`"
)]
fn the_checked_in_contract_copy_matches_shared_design() {
    let design = read(&repo().join("../shared/DESIGN.md"));
    let block = design_block(&design);
    let copy = contract_copy();
    let built = copy.strip_prefix(block.as_str()).unwrap_or_else(|| {
        panic!(
            "docs/design-contract-metrics.txt differs from ../shared/DESIGN.md's metric catalogue: copy the block again"
        )
    });
    // DESIGN.md names what the open issues add in a second block, whose lines move into the catalogue as
    // they are built (DESIGN.md itself is read-only here): each line after the first block is one of them.
    let added = added_block(&design);
    for line in built.lines() {
        assert!(
            added.lines().any(|l| l == line),
            "{line:?} in docs/design-contract-metrics.txt is in neither of ../shared/DESIGN.md's catalogue blocks"
        );
    }
}

/// The second code block of the "## Metric catalogue" section: names the open issues add.
fn added_block(design: &str) -> String {
    let mut lines = design.lines().skip_while(|l| l.trim() != "## Metric catalogue");
    lines.next();
    let mut lines = lines.skip_while(|l| !l.starts_with("```")).skip(1).skip_while(|l| !l.starts_with("```")).skip(1);
    let mut lines = lines.by_ref().skip_while(|l| !l.starts_with("```"));
    lines.next();
    lines.take_while(|l| !l.starts_with("```")).map(|l| format!("{l}\n")).collect()
}
