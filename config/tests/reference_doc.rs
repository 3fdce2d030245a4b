//! docs/configuration.md must describe exactly the keys the schema accepts, with the defaults the parser
//! fills in, and the shipped files (config/agent.toml, config/examples/) must use only those keys.
//!
//! The key list comes from the schema itself, not from example files: a serde Deserializer walks
//! `Config`, and serde's derive hands it every field of every struct (optional ones included), every
//! variant of every enum. So a key added to model.rs or device.rs fails this test until it is documented.
//!
//! The doc's shape, as this test reads it: a heading naming tables in backticks (`` `[device.thresholds]` ``,
//! `` `[[device.probe]]` ``, several on one heading when they share their keys; "Top-level keys" for the
//! root) starts a section; a table row whose first cell is a backticked key documents that key for those
//! tables; the row's third cell is its default.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

// ------------------------------------------------------------------------------------------ schema walk

/// What the walk learned: the fields of every table (by dotted path, "" for the root) and the variants of
/// every enum-valued key.
#[derive(Default)]
struct Schema {
    tables: BTreeMap<String, Vec<&'static str>>,
    enums: BTreeMap<String, Vec<&'static str>>,
}

#[derive(Debug)]
struct WalkError {
    message: String,
    /// The key whose value the walk could not make up, when known.
    path: Option<String>,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at {:?})", self.message, self.path)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WalkError { message: msg.to_string(), path: None }
    }
}

/// String values to offer a string-typed key, in turn: a duration, an address, anything. Types that parse
/// their string (durations, socket addresses) reject some; the walk retries that key with the next.
const STRING_CANDIDATES: &[&str] = &["1s", "1h", "127.0.0.1:9860", "x", "02:00", "UTC"];

struct Walker<'a> {
    path: String,
    schema: &'a RefCell<Schema>,
    choice: &'a BTreeMap<String, usize>,
}

impl<'a> Walker<'a> {
    fn child(&self, key: &str) -> Walker<'a> {
        let path = if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) };
        Walker { path, schema: self.schema, choice: self.choice }
    }

    fn same(&self) -> Walker<'a> {
        Walker { path: self.path.clone(), schema: self.schema, choice: self.choice }
    }

    fn string(&self) -> &'static str {
        STRING_CANDIDATES[self.choice.get(&self.path).copied().unwrap_or(0)]
    }

    fn located(&self, e: WalkError) -> WalkError {
        WalkError { path: e.path.or_else(|| Some(self.path.clone())), ..e }
    }
}

macro_rules! unsupported {
    ($($name:ident),*) => {$(
        fn $name<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WalkError> {
            Err(WalkError {
                message: format!("the schema walk does not know {}; teach it this type", stringify!($name)),
                path: Some(self.path),
            })
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = WalkError;

    unsupported!(deserialize_any, deserialize_char, deserialize_bytes, deserialize_byte_buf, deserialize_identifier);

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_bool(true).map_err(|e| self.located(e))
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_i8(1).map_err(|e| self.located(e))
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_i16(1).map_err(|e| self.located(e))
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_i32(1).map_err(|e| self.located(e))
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_i64(1).map_err(|e| self.located(e))
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_u8(1).map_err(|e| self.located(e))
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_u16(1).map_err(|e| self.located(e))
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_u32(1).map_err(|e| self.located(e))
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_u64(1).map_err(|e| self.located(e))
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_f32(1.0).map_err(|e| self.located(e))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_f64(1.0).map_err(|e| self.located(e))
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_str(self.string()).map_err(|e| self.located(e))
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_string(self.string().to_owned()).map_err(|e| self.located(e))
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(self.same())
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, WalkError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, WalkError> {
        v.visit_newtype_struct(self)
    }
    /// A list (or an array of tables) gets one element, walked at the list's own path.
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_seq(OneElement(Some(self.same())))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_seq(v)
    }
    /// A map with free-form keys (probe `fields`, `scale`) has no keys of its own to document.
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_map(Fields { fields: &[], next: 0, walker: self.same() })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.schema.borrow_mut().tables.insert(self.path.clone(), fields.to_vec());
        v.visit_map(Fields { fields, next: 0, walker: self.same() })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.schema.borrow_mut().enums.insert(self.path.clone(), variants.to_vec());
        let first = *variants.first().expect("an enum has a variant");
        v.visit_enum(IntoDeserializer::<WalkError>::into_deserializer(first)).map_err(|e| self.located(e))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_unit()
    }
}

struct OneElement<'a>(Option<Walker<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = WalkError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, WalkError> {
        self.0.take().map(|w| seed.deserialize(w)).transpose()
    }
}

/// Every field of a struct, each once, with a made-up value.
struct Fields<'a> {
    fields: &'static [&'static str],
    next: usize,
    walker: Walker<'a>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = WalkError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, WalkError> {
        let Some(field) = self.fields.get(self.next) else { return Ok(None) };
        seed.deserialize(IntoDeserializer::<WalkError>::into_deserializer(*field)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let field = self.fields[self.next];
        self.next += 1;
        seed.deserialize(self.walker.child(field))
    }
}

/// Walks `Config`, retrying a key with the next string candidate when its type rejects the current one.
fn schema() -> Schema {
    let mut choice: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let schema = RefCell::new(Schema::default());
        let walker = Walker { path: String::new(), schema: &schema, choice: &choice };
        match config::Config::deserialize(walker) {
            Ok(_) => return schema.into_inner(),
            Err(WalkError { path: Some(path), message }) => {
                let next = choice.get(&path).map_or(1, |i| i + 1);
                assert!(
                    next < STRING_CANDIDATES.len(),
                    "no made-up value satisfies {path}: {message}; add one to STRING_CANDIDATES"
                );
                choice.insert(path, next);
            }
            Err(e) => panic!("the schema walk failed: {e}"),
        }
    }
}

/// Every (table, key) of the schema, as dotted paths ("device.thresholds.hysteresis").
fn schema_keys(schema: &Schema) -> BTreeSet<String> {
    schema.tables.iter().flat_map(|(table, fields)| fields.iter().map(move |f| join(table, f))).collect()
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") }
}

// ---------------------------------------------------------------------------------------------- the doc

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("config/ lies in the repository").to_owned()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One documented key: its row's cells.
struct Row {
    line: usize,
    cells: Vec<String>,
}

/// The doc's rows by dotted key path, and the tables that have a section.
struct Doc {
    rows: BTreeMap<String, Row>,
    sections: BTreeSet<String>,
}

const DOC: &str = "docs/configuration.md";

fn doc() -> Doc {
    let text = read(DOC);
    let mut rows = BTreeMap::new();
    let mut sections = BTreeSet::new();
    let mut current: Vec<String> = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            current = heading_tables(line);
            if line.contains("Top-level keys") {
                current.push(String::new());
            }
            sections.extend(current.iter().cloned());
            continue;
        }
        let Some(cells) = row_cells(line) else { continue };
        let Some(key) = backticked(&cells[0]) else { continue };
        for table in &current {
            let path = join(table, &key);
            let previous = rows.insert(path.clone(), Row { line: i + 1, cells: cells.clone() });
            assert!(previous.is_none(), "{DOC}:{}: {path} is documented twice", i + 1);
        }
    }
    Doc { rows, sections }
}

/// The `[table]` and `[[table]]` names in backticks on a heading line.
fn heading_tables(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|s| s.strip_prefix('[').and_then(|s| s.strip_suffix(']')))
        .map(|s| s.trim_start_matches('[').trim_end_matches(']').to_owned())
        .collect()
}

fn row_cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// A cell that is exactly one backticked key, e.g. `` `poll_interval` ``.
fn backticked(cell: &str) -> Option<String> {
    let key = cell.strip_prefix('`')?.strip_suffix('`')?;
    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then(|| key.to_owned())
}

// ------------------------------------------------------------------------------------------- defaults

/// Leaf values of a TOML tree by dotted path; arrays of tables contribute their elements' keys.
fn leaves(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                leaves(&join(prefix, k), v, out);
            }
        }
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) && !items.is_empty() => {
            for item in items {
                leaves(prefix, item, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// How a default is written in the doc's Default column.
fn literal(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("`\"{s}\"`"),
        toml::Value::Array(a) if a.is_empty() => "`[]`".to_owned(),
        other => format!("`{other}`"),
    }
}

/// A config naming every table, with only the keys that have no default: what the parser adds when
/// serializing it back is every serde default below the top level.
const MINIMAL: &str = r#"
[[actions.hook]]
on = ["unhealthy"]
command = ["true"]

[[device]]
id = "d0"
kind = "generic"
pci_address = "0000:00:00.0"

[[device.log]]
path = "kmsg"

[[device.log.rule]]
name = "r"
pattern = "x"

[[device.probe]]
name = "p"
command = ["true"]

[device.reconnect]
steps = ["function_reset"]

[device.throttle]
[[device.throttle.level]]
command = ["true"]
cooling_device = { device = "cooling_device0", state = 1 }
hwmon_power_cap = { chip = "hwmon0", watts = 1.0 }
powercap_limit = { zone = "intel-rapl:0", watts = 1.0 }
cpufreq_max = { policy = 0, khz = 1000000 }
habanalabs_max_power = { pci_address = "0000:00:00.0", watts = 1.0 }

[device.thresholds]

[[device.diagnostic]]
name = "g"
level = 1
argv = ["true"]
[[device.diagnostic.expect]]
field = "/x"

[device.kubernetes]
[[device.kubernetes.device_node]]
host_path = "/dev/d0"
[[device.kubernetes.mount]]
host_path = "/opt/d0"

[[device]]
id = "board"
kind = "spinnaker-board"
bmp = { address = "10.0.0.1", board = 0 }

[[spinnaker.machine]]
name = "m"
[[spinnaker.machine.frame]]
bmp = "10.0.0.1"
boards = 1
[spinnaker.machine.reconnect]
steps = ["power_cycle"]
[spinnaker.machine.thresholds]

[[maintenance.window]]
name = "w"
days = ["sun"]
start = "02:00"
duration = "2h"
timezone = "UTC"
"#;

/// The dotted paths of every table in a TOML tree, elements of arrays of tables included.
fn table_paths(prefix: &str, value: &toml::Value, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(t) => {
            out.insert(prefix.to_owned());
            for (k, v) in t {
                table_paths(&join(prefix, k), v, out);
            }
        }
        toml::Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_table()) {
                table_paths(prefix, item, out);
            }
        }
        _ => {}
    }
}

/// Every key the parser fills in by itself, with the value it fills in.
fn defaults() -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    let top = toml::Value::try_from(config::Config::default()).expect("the default config serializes");
    leaves("", &top, &mut out);

    // Straight through serde: the loader would also add a device per SpiNNaker board, whose values are
    // the machine's, not defaults.
    let minimal: config::Config = toml::from_str(MINIMAL).unwrap_or_else(|e| panic!("MINIMAL: {e}"));
    let written: toml::Value = toml::from_str(MINIMAL).expect("MINIMAL is TOML");
    let mut given = BTreeMap::new();
    leaves("", &written, &mut given);
    let mut filled = BTreeMap::new();
    leaves("", &toml::Value::try_from(minimal).expect("a config serializes"), &mut filled);
    for (path, value) in filled {
        if !given.contains_key(&path) {
            out.entry(path).or_insert(value);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------- tests

#[test]
fn every_schema_key_is_documented_and_every_documented_key_exists() {
    let schema = schema();
    let keys = schema_keys(&schema);
    // A walk that stopped early would make this test vacuous.
    for expected in
        ["listen", "collectors.hwmon.sensor_exclude", "control.group", "device.throttle.level.cpufreq_max.khz"]
    {
        assert!(keys.contains(expected), "the schema walk missed {expected}: {keys:#?}");
    }
    let doc = doc();

    let missing: Vec<&String> = keys.iter().filter(|k| !doc.rows.contains_key(*k)).collect();
    assert!(missing.is_empty(), "{DOC} does not document these keys of the schema: {missing:#?}");

    let stale: Vec<String> =
        doc.rows.iter().filter(|(k, _)| !keys.contains(*k)).map(|(k, r)| format!("{DOC}:{}: {k}", r.line)).collect();
    assert!(stale.is_empty(), "{DOC} documents keys the schema does not have: {stale:#?}");

    let tables: Vec<&String> = schema.tables.keys().filter(|t| !t.is_empty() && !doc.sections.contains(*t)).collect();
    assert!(tables.is_empty(), "{DOC} has no section for these tables: {tables:#?}");
}

#[test]
fn documented_defaults_are_the_parsers() {
    // The defaults below the top level come from MINIMAL, so it must name every table of the schema.
    let mut named = BTreeSet::new();
    table_paths("", &toml::from_str(MINIMAL).expect("MINIMAL is TOML"), &mut named);
    table_paths("", &toml::Value::try_from(config::Config::default()).expect("serializes"), &mut named);
    let unnamed: Vec<String> = schema().tables.into_keys().filter(|t| !named.contains(t)).collect();
    assert!(unnamed.is_empty(), "add these tables to MINIMAL so their defaults are checked: {unnamed:?}");

    let doc = doc();
    let mut wrong = Vec::new();
    for (path, value) in defaults() {
        let Some(row) = doc.rows.get(&path) else {
            wrong.push(format!("{path}: not documented (default {})", literal(&value)));
            continue;
        };
        let cell = row.cells.get(2).map(String::as_str).unwrap_or("");
        let want = literal(&value);
        if !cell.contains(&want) {
            wrong.push(format!("{DOC}:{}: {path}: the Default column says {cell:?}, the parser uses {want}", row.line));
        }
    }
    assert!(wrong.is_empty(), "defaults in {DOC} disagree with the parser:\n{}", wrong.join("\n"));
}

#[test]
fn every_enum_value_is_documented_on_its_key() {
    let schema = schema();
    let doc = doc();
    let mut missing = Vec::new();
    for (path, variants) in &schema.enums {
        let row = doc.rows.get(path).unwrap_or_else(|| panic!("{path} is not documented"));
        let text = row.cells.join("|");
        for v in variants {
            if !text.contains(&format!("`{v}`")) && !text.contains(&format!("`\"{v}\"`")) {
                missing.push(format!("{DOC}:{}: {path} does not list {v:?}", row.line));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The shipped files use only schema keys (and load): the examples as they are, and config/agent.toml
/// with every commented-out `key = value` line uncommented, since an admin may uncomment any of them.
/// Where the parser has a default, agent.toml's commented value must be it: the file says so.
#[test]
fn shipped_configs_use_schema_keys_and_agent_toml_shows_the_defaults() {
    let keys = schema_keys(&schema());
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("config/examples"))
        .expect("config/examples exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected one example per device kind, found {files:?}");

    let mut texts: Vec<(String, String)> = files
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))))
        .collect();
    let uncommented: String = read("config/agent.toml")
        .lines()
        .map(|l| match l.strip_prefix('#') {
            // `#key = value`, not prose: prose comments start with "# ".
            Some(rest)
                if !rest.starts_with(' ')
                    && rest.split_once('=').is_some_and(|(k, _)| backticked(&format!("`{}`", k.trim())).is_some()) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    texts.push(("config/agent.toml (uncommented)".to_owned(), uncommented.clone()));

    for (name, text) in &texts {
        config::parse_str(text, name).unwrap_or_else(|e| panic!("{name} does not load:\n{e}"));
        let value: toml::Value = toml::from_str(text).expect("it loaded, so it is TOML");
        let mut used = BTreeMap::new();
        leaves("", &value, &mut used);
        for path in used.keys() {
            // Free-form maps (probe fields and scale) have keys of the user's choosing.
            let known = keys.contains(path) || path.rsplit_once('.').is_some_and(|(parent, _)| keys.contains(parent));
            assert!(known, "{name} uses {path}, which the schema does not have");
        }
    }

    let value: toml::Value = toml::from_str(&uncommented).expect("TOML");
    let mut shown = BTreeMap::new();
    leaves("", &value, &mut shown);
    let defaults = defaults();
    let mut differ = Vec::new();
    for (path, v) in &shown {
        if let Some(d) = defaults.get(path)
            && d != v
        {
            differ.push(format!("{path}: agent.toml shows {v}, the default is {d}"));
        }
    }
    assert!(differ.is_empty(), "config/agent.toml's commented values are not the defaults:\n{}", differ.join("\n"));
    assert!(shown.len() >= 10, "agent.toml should show the top-level keys and every section: {shown:?}");
}
