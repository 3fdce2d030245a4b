//! Reading a config file and reporting *every* problem in it as `FILE:LINE:COL: message`.
//!
//! serde stops at the first error. To report all of them the loader parses the document once into a
//! spanned tree, then repeatedly deserializes it; after each failure it records the error at its span and
//! prunes the offending entry from the tree, until what is left deserializes. The schema in `model.rs`
//! stays the single source of truth: nothing here knows which keys exist.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue, Deserializer};

use crate::file::{MAX_CONFIG_BYTES, ReadError, read_text_bounded};
use crate::model::{Config, Finding, PathSeg};

/// Stop after this many errors: a file that is mostly wrong does not need every line listed.
const MAX_ERRORS: usize = 100;

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The dotted key path the error is about ("" for a syntax error).
    pub key: String,
    pub message: String,
}

impl ConfigError {
    /// `FILE:LINE:COL: key: <what kind of mistake>` with every quoted value replaced by `…` and nothing
    /// past the first line (regex errors repeat the pattern below).
    pub fn without_values(&self) -> String {
        let first = self.message.lines().next().unwrap_or("");
        let mut out = String::with_capacity(first.len());
        let mut open: Option<char> = None;
        for c in first.chars() {
            match open {
                Some(q) if c == q => {
                    out.push('…');
                    out.push(c);
                    open = None;
                }
                Some(_) => {}
                None if c == '"' || c == '`' => {
                    out.push(c);
                    open = Some(c);
                }
                None => out.push(c),
            }
        }
        if open.is_some() {
            out.push('…');
        }
        self.located(&out)
    }

    fn located(&self, message: &str) -> String {
        match self.key.as_str() {
            "" => format!("{}:{}:{}: {message}", self.file, self.line, self.column),
            key => format!("{}:{}:{}: {key}: {message}", self.file, self.line, self.column),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.located(&self.message))
    }
}

/// Every problem found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Every error as [`ConfigError::without_values`], one a line.
    pub fn without_values(&self) -> String {
        self.0.iter().map(ConfigError::without_values).collect::<Vec<_>>().join("\n")
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Transparent both ways: the message is printed once, also by error chains (`{:#}`) that would otherwise
/// repeat the source after the outer message.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

impl LoadError {
    /// The errors with every value left out: for logs, events and API replies, which must not quote a
    /// line of the file (it may hold a token). `check-config` prints the full [`Display`](fmt::Display).
    pub fn without_values(&self) -> String {
        match self {
            LoadError::Read(e) => e.to_string(),
            LoadError::Invalid(e) => e.without_values(),
        }
    }
}

/// Reads and validates a config file: a regular file of at most [`MAX_CONFIG_BYTES`].
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let text = read_text_bounded(path, MAX_CONFIG_BYTES)?;
    Ok(parse_str(&text, &path.display().to_string())?)
}

/// Parses and validates config text; `file` is the name used in error messages.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let located = Locator { text, file };
    let mut config: Config = deserialize_all(text, &located)?;
    let findings = config.validate();
    if findings.is_empty() {
        config.expand_spinnaker();
        return Ok(config);
    }
    let (tree, _) = DeTable::parse_recoverable(text);
    let mut errors: Vec<ConfigError> = findings.iter().map(|f| located.finding(&tree, f)).collect();
    errors.sort_by_key(|e| (e.line, e.column));
    Err(ConfigErrors(errors))
}

/// Deserializes `T` from TOML text, collecting every syntax and schema error.
pub fn deserialize_all<T: DeserializeOwned>(text: &str, at: &Locator<'_>) -> Result<T, ConfigErrors> {
    let (tree, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The recovered tree of a syntactically broken file would produce misleading schema errors.
        let mut errors: Vec<ConfigError> = syntax
            .iter()
            .map(|e| at.error(e.span().map_or(0, |s| s.start), String::new(), e.message().trim().to_owned()))
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        return Err(ConfigErrors(errors));
    }
    let mut work = tree;
    let mut errors = Vec::new();
    let mut pruned_keys: Vec<String> = Vec::new();
    loop {
        match T::deserialize(Deserializer::from(work.clone())) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(e) => {
                let message = e.message().trim().to_owned();
                let Some(span) = e.span() else {
                    errors.push(at.error(0, String::new(), humanize(&message)));
                    break;
                };
                let pruned = prune(work.get_mut(), &span, &mut Vec::new());
                // Removing a bad required key makes serde also report it missing; that is the same mistake.
                let echo = missing_field(&message).is_some_and(|k| pruned_keys.iter().any(|p| p == k));
                if !echo {
                    let key_path = pruned.as_ref().map(|(path, _)| path.clone()).unwrap_or_default();
                    errors.push(at.error(span.start, key_path, humanize(&message)));
                }
                match pruned {
                    Some((_, key)) if errors.len() < MAX_ERRORS => pruned_keys.push(key),
                    _ => break,
                }
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    Err(ConfigErrors(errors))
}

/// Maps byte offsets and key paths to `FILE:LINE:COL`.
pub struct Locator<'a> {
    pub text: &'a str,
    pub file: &'a str,
}

impl Locator<'_> {
    pub fn error(&self, offset: usize, key: String, message: String) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError { file: self.file.to_owned(), line, column, key, message }
    }

    /// Locates a semantic finding at its value, or at the nearest enclosing table that exists in the file.
    pub fn finding(&self, tree: &Spanned<DeTable<'_>>, f: &Finding) -> ConfigError {
        let offset = span_of(tree, &f.path).map_or(0, |s| s.start);
        self.error(offset, display_path(&f.path), f.message.clone())
    }
}

pub fn display_path(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Finds the span of the value at `path`, falling back to the deepest enclosing entry present.
fn span_of(tree: &Spanned<DeTable<'_>>, path: &[PathSeg]) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    let mut table: Option<&DeTable<'_>> = Some(tree.get_ref());
    for seg in path {
        let next = match (seg, table, value.map(|v| v.get_ref())) {
            (PathSeg::Key(k), Some(t), _) => t.get(k.as_str()),
            (PathSeg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
        value = Some(next);
    }
    best
}

/// Removes the entry the error at `span` is about. Returns its dotted key path and its key name.
fn prune(table: &mut DeTable<'_>, span: &Range<usize>, path: &mut Vec<String>) -> Option<(String, String)> {
    let mut hit: Option<String> = None;
    for (key, value) in table.iter_mut() {
        path.push(key.get_ref().to_string());
        if key.span() == *span || value.span() == *span {
            hit = Some(key.get_ref().to_string());
        } else if let Some(found) = prune_value(value, span, path) {
            return Some(found);
        } else if contains(&value.span(), span) && !matches!(value.get_ref(), DeValue::Table(_)) {
            hit = Some(key.get_ref().to_string());
        }
        if hit.is_some() {
            break;
        }
        path.pop();
    }
    let key = hit?;
    table.remove(key.as_str());
    Some((path.join("."), key))
}

fn prune_value(
    value: &mut Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> Option<(String, String)> {
    match value.get_mut() {
        DeValue::Table(t) => prune(t, span, path),
        DeValue::Array(items) => {
            let mut drop_index = None;
            for (i, item) in items.iter_mut().enumerate() {
                if let DeValue::Table(t) = item.get_mut() {
                    let mark = path.len();
                    if let Some(last) = path.last_mut() {
                        last.push_str(&format!("[{i}]"));
                    }
                    if let Some(found) = prune(t, span, path) {
                        return Some(found);
                    }
                    path.truncate(mark);
                    if let Some(last) = path.last_mut()
                        && let Some(cut) = last.rfind('[')
                    {
                        last.truncate(cut);
                    }
                    // An error about the element itself (e.g. a missing required key): drop the element.
                    if item.span() == *span || contains(&item.span(), span) {
                        drop_index = Some(i);
                        break;
                    }
                }
            }
            let i = drop_index?;
            let mut kept = DeArray::new();
            let old = std::mem::replace(items, DeArray::new());
            for (j, item) in old.iter().enumerate() {
                if j != i {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            let key = path.last().cloned().unwrap_or_default();
            Some((format!("{}[{i}]", path.join(".")), key))
        }
        _ => None,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Rewrites serde's messages into the words an operator expects, with a suggestion for typos.
fn humanize(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return unknown("key", rest);
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return unknown("value", rest);
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        return format!("wrong type: found {rest}");
    }
    if let Some(field) = missing_field(message) {
        return format!("missing required key `{field}`");
    }
    message.to_owned()
}

/// "`colour`, expected one of `id`, `kind`" -> "unknown key `colour`; valid keys: id, kind".
fn unknown(what: &str, rest: &str) -> String {
    let ticked: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let Some((given, valid)) = ticked.split_first() else {
        return format!("unknown {what} {rest}");
    };
    let mut out = format!("unknown {what} `{given}`");
    if let Some(best) = closest(given, valid) {
        out.push_str(&format!(" (did you mean `{best}`?)"));
    }
    if valid.is_empty() {
        out.push_str("; this table takes no keys");
    } else {
        out.push_str(&format!("; valid {what}s: {}", valid.join(", ")));
    }
    out
}

/// The valid name closest to a typo, if any is close enough to be a plausible intent.
pub fn closest<'a>(given: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(given, v), *v))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_str(text, "agent.toml").unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn empty_file_is_the_default_config() {
        assert_eq!(parse_str("", "agent.toml").unwrap(), Config::default());
    }

    #[test]
    fn http_caps_default_and_zero_is_an_error() {
        let c = parse_str("", "agent.toml").unwrap();
        assert_eq!((c.http.max_connections, c.http.max_connections_per_address), (1024, 256));
        let c = parse_str("[http]\nmax_connections = 200\nmax_connections_per_address = 8\n", "agent.toml").unwrap();
        assert_eq!((c.http.max_connections, c.http.max_connections_per_address), (200, 8));
        assert_eq!(
            errors("[http]\nmax_connections = 0\nmax_connections_per_address = 0\n"),
            vec![
                "agent.toml:2:19: http.max_connections: max_connections must be at least 1 (0 would refuse every connection)",
                "agent.toml:3:31: http.max_connections_per_address: max_connections_per_address must be at least 1 (0 would refuse every connection)",
            ]
        );
        assert_eq!(errors("[http]\nmax_connections = -1\n").len(), 1, "a negative cap is a type error");
    }

    #[test]
    fn reports_every_error_with_position_key_and_suggestion() {
        let text = "\
listen = 5
poll_intervl = \"5s\"
[collectors.hwmon]
enabled = \"yes\"
interval = \"5 parsecs\"
chip_include = \"coretemp(\"
[collectors.powercap]
interval = \"10ms\"
";
        let got = errors(text);
        assert_eq!(
            got,
            vec![
                "agent.toml:1:10: listen: wrong type: found integer `5`, expected socket address",
                "agent.toml:2:1: poll_intervl: unknown key `poll_intervl` (did you mean `poll_interval`?); valid keys: listen, sysfs_root, state_dir, socket, poll_interval, collectors, actions, discovery, control, http, spinnaker, history, kubernetes, maintenance, diagnostics, device",
                "agent.toml:4:11: collectors.hwmon.enabled: wrong type: found string \"yes\", expected a boolean",
                "agent.toml:5:12: collectors.hwmon.interval: invalid duration \"5 parsecs\": unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations); write a number with a unit, e.g. \"500ms\", \"5s\", \"2m\"",
                "agent.toml:6:16: collectors.hwmon.chip_include: invalid regular expression: regex parse error:\n    coretemp(\n            ^\nerror: unclosed group",
                "agent.toml:8:12: collectors.powercap.interval: duration 10ms is out of range: must be between 100ms and 1h",
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let got = errors("listen = \"0.0.0.0:9860\"\n[collectors\nfoo = 1\n");
        assert!(got[0].starts_with("agent.toml:2:"), "{got:?}");
    }

    #[test]
    fn semantic_findings_point_at_the_key() {
        let got = errors("[collectors.pci_aer]\ninterval = \"1s\"\ntimeout = \"3s\"\n");
        assert_eq!(
            got,
            vec![
                "agent.toml:3:11: collectors.pci_aer.timeout: timeout 3s is longer than the interval 1s; a read may not outlive its poll"
            ]
        );
        let got = errors("sysfs_root = \"sys\"\n");
        assert_eq!(got, vec!["agent.toml:1:14: sysfs_root: sys must be an absolute path"]);
    }

    #[test]
    fn aer_per_error_is_a_choice_and_declared_addresses_reach_the_collector() {
        let cfg = parse_str(
            "[collectors.pci_aer]\nper_error = \"all\"\n[[device]]\nid = \"a0\"\nkind = \"pci-accel\"\npci_address = \"0000:3b:00.0\"\n",
            "agent.toml",
        )
        .unwrap();
        let settings = cfg.collector(crate::CollectorKind::PciAer).pci_aer.expect("pci_aer settings");
        assert_eq!(settings.per_error, crate::AerPerError::All);
        assert_eq!(settings.device_addresses, vec!["0000:3b:00.0".to_owned()]);
        assert_eq!(
            Config::default().collector(crate::CollectorKind::PciAer).pci_aer.unwrap().per_error,
            crate::AerPerError::Relevant
        );
        let got = errors("[collectors.pci_aer]\nper_error = \"some\"\n");
        assert_eq!(
            got,
            vec![
                "agent.toml:2:13: collectors.pci_aer.per_error: unknown value `some`; valid values: relevant, all, none"
            ]
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("a\nbµc", 5), (2, 3));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn closest_needs_a_plausible_match() {
        assert_eq!(closest("intervl", &["interval", "timeout"]), Some("interval"));
        assert_eq!(closest("zzz", &["interval", "timeout"]), None);
    }
}

#[cfg(test)]
mod shipped_file {
    use super::*;

    const SHIPPED: &str = include_str!("../agent.toml");

    #[test]
    fn the_shipped_config_is_valid_and_is_the_default() {
        assert_eq!(parse_str(SHIPPED, "agent.toml").unwrap(), Config::default());
    }

    #[test]
    fn uncommenting_the_shipped_defaults_changes_nothing() {
        // Lines like `#listen = "0.0.0.0:9860"` document a default; uncommented they must parse to it.
        let defaults: String = SHIPPED
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !rest.contains("_include") && !rest.contains("_exclude") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let (got, want) = (parse_str(&defaults, "agent.toml").unwrap(), Config::default());
        // Compare what the agent acts on: an explicit default and an absent key must behave the same.
        for kind in crate::CollectorKind::ALL {
            assert_eq!(got.collector(kind), want.collector(kind), "{}", kind.name());
        }
        assert_eq!(
            (got.listen, &got.sysfs_root, &got.state_dir, &got.socket, got.poll_interval, &got.actions),
            (want.listen, &want.sysfs_root, &want.state_dir, &want.socket, want.poll_interval, &want.actions)
        );
    }
}

#[cfg(test)]
mod examples {
    use super::*;
    use crate::DeviceKind;

    #[test]
    fn every_example_passes_check_config_and_there_is_one_per_kind() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let cfg = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!cfg.devices.is_empty(), "{} declares a device", path.display());
            kinds.extend(cfg.devices.iter().map(|d| d.kind));
        }
        let all = [
            DeviceKind::Loihi,
            DeviceKind::SpinnakerBoard,
            DeviceKind::Photonic,
            DeviceKind::PciAccel,
            DeviceKind::Generic,
        ];
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), all);
    }

    #[test]
    fn device_mistakes_are_located() {
        let text = "\
[[device]]
id = \"a\"
kind = \"loihi\"
pci_address = \"3b:00.0\"
[device.thresholds]
temperature_warn = 90.0
[[device]]
id = \"a\"
kind = \"toaster\"
[[device]]
id = \"b\"
kind = \"generic\"
[[device.probe]]
name = \"both\"
command = [\"x\"]
tcp = \"h:1\"
";
        let got: Vec<String> = parse_str(text, "d.toml").unwrap_err().0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "d.toml:9:8: device[1].kind: unknown value `toaster`; valid values: loihi, spinnaker-board, photonic, pci-accel, generic",
            ],
            "schema errors come first; semantic checks run once the file parses"
        );
        let fixed = text.replace("toaster", "generic");
        let got: Vec<String> = parse_str(&fixed, "d.toml").unwrap_err().0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "d.toml:4:15: device[0].pci_address: \"3b:00.0\" is not a PCI address like \"0000:3b:00.0\"",
                "d.toml:6:20: device[0].thresholds.temperature_warn: temperature_warn (90) must be below temperature_crit (85)",
                "d.toml:8:6: device[1].id: device id \"a\" is already used by device 0",
                "d.toml:14:8: device[2].probe[0].name: probe \"both\" needs exactly one of command, tcp or udp",
            ]
        );
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_str(text, "h.toml").unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    /// Every choice written as a string is parsed once, here: an unknown value is an error at its place,
    /// naming the key and the values that exist, and the agent never meets the string again.
    #[test]
    fn an_unknown_choice_is_located_and_lists_the_valid_values() {
        let text = "\
[[device]]
id = \"a\"
kind = \"generic\"
pci_address = \"0000:3b:00.0\"
[[device.log]]
path = \"/var/log/a.log\"
[[device.log.rule]]
name = \"err\"
pattern = \"error\"
action = \"LogError\"
severity = \"critcal\"
[[device.probe]]
name = \"sdk\"
command = [\"sdk-status\"]
format = \"yaml\"
[device.throttle]
metric = \"temprature\"
[[device.throttle.level]]
cooling_device = { device = \"cooling_device0\", state = 1 }
[device.reconnect]
steps = [\"function_reset\", \"reboot\"]
";
        assert_eq!(
            errors(text),
            vec![
                "h.toml:10:10: device[0].log[0].rule[0].action: unknown value `LogError` (did you mean `LogErrors`?); valid values: event, LogErrors, SdkError",
                "h.toml:11:12: device[0].log[0].rule[0].severity: unknown value `critcal` (did you mean `critical`?); valid values: info, warning, critical, fatal",
                "h.toml:15:10: device[0].probe[0].format: unknown value `yaml`; valid values: none, json, regex",
                "h.toml:17:10: device[0].throttle.metric: unknown value `temprature` (did you mean `temperature`?); valid values: temperature, power",
                "h.toml:21:28: device[0].reconnect.steps: unknown value `reboot`; valid values: vendor, driver_reset, function_reset, rebind, remove_rescan, power_cycle",
            ]
        );
    }

    #[test]
    fn non_finite_and_negative_quantities_are_rejected() {
        let text = "\
[[device]]
id = \"a\"
kind = \"loihi\"
[device.thresholds]
temperature_warn = nan
temperature_crit = inf
hysteresis = -1.0
power_max = -5.0
[device.throttle]
hysteresis = -2.0
[[device.throttle.level]]
hwmon_power_cap = { chip = \"loihi\", watts = -100.0 }
[[device.throttle.level]]
powercap_limit = { zone = \"intel-rapl:0\", watts = nan }
";
        assert_eq!(
            errors(text),
            vec![
                "h.toml:5:20: device[0].thresholds.temperature_warn: temperature_warn must be a finite number",
                "h.toml:6:20: device[0].thresholds.temperature_crit: temperature_crit must be a finite number",
                "h.toml:7:14: device[0].thresholds.hysteresis: hysteresis must not be negative",
                "h.toml:8:13: device[0].thresholds.power_max: power_max must be greater than 0 and at most 1000000 W",
                "h.toml:10:14: device[0].throttle.hysteresis: hysteresis must not be negative",
                "h.toml:12:45: device[0].throttle.level[0].hwmon_power_cap.watts: watts must be greater than 0 and at most 1000000 W",
                "h.toml:14:51: device[0].throttle.level[1].powercap_limit.watts: watts must be a finite number",
            ]
        );
    }

    #[test]
    fn rules_and_probes_that_could_never_work_are_rejected() {
        let text = "\
[[device]]
id = \"a\"
kind = \"generic\"
[[device.log]]
path = \"/var/log/a.log\"
[[device.log.rule]]
name = \"err\"
pattern = \"error\"
action = \"LogErrors\"
count = 0
[[device.log]]
path = \"/var/log/b.log\"
[[device.log.rule]]
name = \"err\"
pattern = \"fail\"
[[device.probe]]
name = \"sdk\"
command = [\"sdk-status\"]
format = \"regex\"
fields = { temperature = \"Temp: (\", power = \"Power: \\\\d+\" }
[[device.probe]]
name = \"sdk\"
udp = \"127.0.0.1:9\"
udp_payload_hex = \"0g\"
[[device.probe]]
name = \"odd\"
udp = \"127.0.0.1:9\"
udp_payload_hex = \"abc\"
";
        assert_eq!(
            errors(text),
            vec![
                "h.toml:10:9: device[0].log[0].rule[0].count: count must be at least 1 (a rule with count 0 could never set its condition)",
                "h.toml:14:8: device[0].log[1].rule[0].name: rule name \"err\" is already used by log[0].rule[0] of this device; rule names must be unique within a device",
                "h.toml:20:26: device[0].probe[0].fields.temperature: field \"temperature\" is not a valid regular expression: error: unclosed group",
                "h.toml:20:45: device[0].probe[0].fields.power: field \"power\" needs exactly one capture group (the value), has 0",
                "h.toml:22:8: device[0].probe[1].name: probe name \"sdk\" is already used by probe[0] of this device",
                "h.toml:24:19: device[0].probe[1].udp_payload_hex: udp_payload_hex has a character that is not a hex digit at position 2",
                "h.toml:28:19: device[0].probe[2].udp_payload_hex: udp_payload_hex has an odd number of hex digits",
            ]
        );
    }

    #[test]
    fn hex_payloads_decode_with_whitespace() {
        assert_eq!(crate::device::decode_hex("00 ff 10").unwrap(), vec![0, 255, 16]);
        assert_eq!(crate::device::decode_hex("").unwrap(), Vec::<u8>::new());
        assert!(crate::device::decode_hex("zz").is_err());
    }

    #[test]
    fn without_values_keeps_place_and_key_and_drops_every_value() {
        let semantic = "[[device]]\nid = \"a\"\nkind = \"generic\"\npci_address = \"--api-key s3cr3t\"\n";
        let schema = "[[device]]\nid = \"a\"\nkind = \"generic\"\n\
                      [[device.probe]]\nname = \"p\"\ncommand = [\"x\"]\ninterval = \"--token s3cr3t\"\n";
        let mut safe = Vec::new();
        for text in [semantic, schema] {
            let err = LoadError::Invalid(parse_str(text, "h.toml").unwrap_err());
            let full = err.to_string();
            assert!(full.contains("s3cr3t"), "check-config shows the operator the value: {full}");
            safe.push(err.without_values());
        }
        assert_eq!(
            safe,
            vec![
                "h.toml:4:15: device[0].pci_address: \"…\" is not a PCI address like \"…\"",
                "h.toml:7:12: device[0].probe[0].interval: invalid duration \"…\": expected number at 0; write a number with a unit, e.g. \"…\", \"…\", \"…\"",
            ]
        );
    }

    #[test]
    fn a_load_error_is_printed_once_by_error_chains() {
        use std::error::Error;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "listen = 5\n").unwrap();
        let err = load_file(&p).unwrap_err();
        assert!(err.source().is_none(), "a chain printer (anyhow's {{:#}}) would repeat the message");
        assert_eq!(err.to_string().matches("agent.toml:1:10").count(), 1);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let err = load_file(&p).unwrap_err();
        assert!(err.to_string().ends_with("is a character device, not a regular file; refusing to read it"), "{err}");
    }
    #[test]
    fn two_devices_without_an_address_binding_the_same_chip_name_are_an_error() {
        let text = "\
[[device]]
id = \"loihi0\"
kind = \"loihi\"
[[device]]
id = \"loihi1\"
kind = \"loihi\"
[[device]]
id = \"x0\"
kind = \"generic\"
hwmon = \"xdma\"
[[device]]
id = \"x1\"
kind = \"generic\"
hwmon = \"xdma\"
";
        assert_eq!(
            errors(text),
            vec![
                "h.toml:6:8: device[1].kind: device \"loihi1\" and device 0 both bind hwmon chips named \"loihi\" and neither has a pci_address, so each would take the other's chips; set pci_address on both",
                "h.toml:14:9: device[3].hwmon: device \"x1\" and device 2 both bind hwmon chips named \"xdma\" and neither has a pci_address, so each would take the other's chips; set pci_address on both",
            ]
        );
        // With an address each, every device binds only the chips at its own address.
        let addressed = text
            .replace("id = \"loihi0\"", "id = \"loihi0\"\npci_address = \"0000:00:01.0\"")
            .replace("id = \"loihi1\"", "id = \"loihi1\"\npci_address = \"0000:00:02.0\"")
            .replace("id = \"x1\"", "id = \"x1\"\npci_address = \"0000:00:03.0\"");
        assert!(parse_str(&addressed, "h.toml").is_ok());
    }
}
