//! `[diagnostics]` and a device's `[[device.diagnostic]]`: active checks the agent runs on purpose, in
//! tiers like DCGM's diag levels (1 quick, 2 medium, 3 deep), with what a pass is and what to do after a
//! failure.
//!
//! They run commands that may disturb a device (load it, recalibrate it), so they are off unless
//! `[diagnostics] enabled = true`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::{BoundedDuration, Period};
use crate::finding::{Finding, PathSeg};

/// How long one diagnostic may run: 1 s .. 4 h (DCGM's deepest level takes one to two hours).
pub type DiagnosticTimeout = BoundedDuration<1_000, 14_400_000>;

/// The deepest level a diagnostic may have.
pub const MAX_LEVEL: u8 = 3;

/// `[diagnostics]`: off unless enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Diagnostics {
    /// Whether any diagnostic may run (on demand, on a condition or in a window).
    pub enabled: bool,
    /// Diagnostics running at once on the host, over every device (one per device at most).
    pub concurrency: usize,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics { enabled: false, concurrency: 1 }
    }
}

impl Diagnostics {
    pub fn validate(&self, out: &mut Vec<Finding>) {
        if self.concurrency == 0 {
            out.push(Finding {
                path: vec!["diagnostics".into(), "concurrency".into()],
                message: "concurrency must be at least 1 (0 would never run a diagnostic)".into(),
            });
        }
    }
}

/// A condition whose setting can start a diagnostic (`on = ["PowerAnomaly"]`); the names are the
/// conditions' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TriggerCondition {
    /// The hottest sensor above its warning or critical threshold.
    Overheating,
    /// The driver, a liveness probe, the BMP or the SDK says the device does not answer.
    Offline,
    /// The status tool or a log rule reports an SDK problem (e.g. calibration drift in the vendor's log).
    SdkError,
    /// A log rule's error lines.
    LogErrors,
    /// Power, or energy per inference, above its limit: the runbooks' "verify hardware calibration".
    PowerAnomaly,
    /// No fresh reading from the device's host sources.
    DataStale,
}

impl TriggerCondition {
    pub fn name(self) -> &'static str {
        match self {
            TriggerCondition::Overheating => "Overheating",
            TriggerCondition::Offline => "Offline",
            TriggerCondition::SdkError => "SdkError",
            TriggerCondition::LogErrors => "LogErrors",
            TriggerCondition::PowerAnomaly => "PowerAnomaly",
            TriggerCondition::DataStale => "DataStale",
        }
    }
}

/// A limit on one value of the tool's JSON output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldLimit {
    /// RFC 6901 pointer into the tool's standard output, e.g. "/drift_ppm".
    pub field: String,
    /// The value must be at least this.
    #[serde(default)]
    pub min: Option<f64>,
    /// The value must be at most this.
    #[serde(default)]
    pub max: Option<f64>,
}

/// `[[device.diagnostic]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticConfig {
    /// Unique per device; the `diagnostic` label.
    pub name: String,
    /// 1 quick, 2 medium, 3 deep. `agentctl diagnose --level N` runs every level up to N.
    pub level: u8,
    /// Program and arguments, run without a shell; `{id}`, `{kind}`, `{pci_address}` and `{model}` are
    /// replaced by the device's.
    pub argv: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: DiagnosticTimeout,
    /// Exit statuses that pass.
    #[serde(default = "default_exit_codes")]
    pub exit_codes: Vec<i32>,
    /// Values of the tool's JSON output that must lie within limits; a missing or unparsable one fails.
    #[serde(default)]
    pub expect: Vec<FieldLimit>,
    /// The device is in maintenance while this runs (no automatic actions, not counted by NPD,
    /// Unhealthy to kubelet).
    #[serde(default)]
    pub exclusive: bool,
    /// Refused while a pod holds the device or a throttle or reconnect is in progress.
    #[serde(default)]
    pub requires_idle: bool,
    /// Run once after a failure (same placeholders as `argv`), then the diagnostic again.
    #[serde(default)]
    pub remedy: Option<Vec<String>>,
    /// Conditions whose setting runs it (at most once per `cooldown`).
    #[serde(default)]
    pub on: Vec<TriggerCondition>,
    #[serde(default = "default_cooldown")]
    pub cooldown: Period,
    /// Maintenance windows (by name) in which it runs, once per occurrence.
    #[serde(default)]
    pub windows: Vec<String>,
}

fn default_timeout() -> DiagnosticTimeout {
    DiagnosticTimeout::from_millis(60_000)
}

fn default_exit_codes() -> Vec<i32> {
    vec![0]
}

fn default_cooldown() -> Period {
    Period::from_millis(3_600_000)
}

/// The placeholders an argv may hold.
pub const PLACEHOLDERS: [&str; 4] = ["{id}", "{kind}", "{pci_address}", "{model}"];

/// What a device's diagnostics are checked against: whether it has a PCI address (for `{pci_address}`),
/// and why a maintenance window a diagnostic names could never run it (None: it can).
pub struct DeviceFacts<'a> {
    pub index: usize,
    pub has_pci_address: bool,
    pub window_problem: &'a dyn Fn(&str) -> Option<String>,
}

/// Checks a device's diagnostics; `facts.index` locates the findings.
pub fn validate_device(diagnostics: &[DiagnosticConfig], facts: &DeviceFacts<'_>, out: &mut Vec<Finding>) {
    let index = facts.index;
    let mut names = BTreeMap::new();
    for (i, diag) in diagnostics.iter().enumerate() {
        let at = |key: &str| -> Vec<PathSeg> {
            vec!["device".into(), index.into(), "diagnostic".into(), i.into(), key.into()]
        };
        let mut push = |key: &str, message: String| out.push(Finding { path: at(key), message });
        if diag.name.is_empty() || !diag.name.chars().all(crate::id::is_id_char) {
            push(
                "name",
                format!("diagnostic name {:?} must be non-empty and use only letters, digits and - _ . :", diag.name),
            );
        }
        if let Some(first) = names.insert(diag.name.as_str(), i) {
            push(
                "name",
                format!("diagnostic {:?} is already declared as diagnostic {first} of this device", diag.name),
            );
        }
        if !(1..=MAX_LEVEL).contains(&diag.level) {
            push("level", format!("level {} is not 1 (quick), 2 (medium) or 3 (deep)", diag.level));
        }
        for (key, argv) in [("argv", Some(&diag.argv)), ("remedy", diag.remedy.as_ref())] {
            let Some(argv) = argv else { continue };
            if argv.first().is_none_or(String::is_empty) {
                push(key, format!("{key} must name a program"));
            }
            if let Some(problem) = argv.iter().find_map(|a| placeholder_problem(a, facts.has_pci_address)) {
                push(key, problem);
            }
        }
        for name in &diag.windows {
            if let Some(problem) = (facts.window_problem)(name) {
                push("windows", problem);
            }
        }
        if diag.exit_codes.is_empty() {
            push("exit_codes", "exit_codes must list at least one passing exit status".into());
        }
        for limit in &diag.expect {
            if !limit.field.starts_with('/') {
                push("expect", format!("field {:?} must be a JSON pointer such as \"/drift_ppm\"", limit.field));
            }
            let bounds = [limit.min, limit.max];
            if bounds.iter().flatten().any(|v| !v.is_finite()) || bounds.iter().all(Option::is_none) {
                push("expect", format!("field {:?} needs a finite min, max or both", limit.field));
            }
        }
    }
}

/// What is wrong with an argument's placeholders, if anything.
fn placeholder_problem(arg: &str, has_pci_address: bool) -> Option<String> {
    if arg.contains("{pci_address}") && !has_pci_address {
        return Some(format!("{arg:?} uses {{pci_address}} but the device has no pci_address"));
    }
    let rest = PLACEHOLDERS.iter().fold(arg.to_owned(), |s, p| s.replace(p, ""));
    (rest.contains('{') || rest.contains('}'))
        .then(|| format!("{arg:?}: only {} can be replaced", PLACEHOLDERS.join(", ")))
}

#[cfg(test)]
mod tests {
    fn errors(text: &str) -> Vec<String> {
        crate::parse_str(text, "g.toml").unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn defaults_are_off_and_one_at_a_time() {
        let c = crate::parse_str("", "g.toml").expect("valid");
        assert_eq!(c.diagnostics, super::Diagnostics { enabled: false, concurrency: 1 });
    }

    #[test]
    fn mistakes_are_located_by_file_line_column_and_key() {
        let text = "\
[diagnostics]
concurrency = 0
[[device]]
id = \"p\"
kind = \"photonic\"
[[device.diagnostic]]
name = \"verify\"
level = 4
argv = [\"lightmatter-cli\", \"--device\", \"{serial}\"]
expect = [{ field = \"drift\", max = 50.0 }]
[[device.diagnostic]]
name = \"verify\"
level = 2
argv = []
remedy = [\"calibrate\", \"{pci_address}\"]
";
        assert_eq!(
            errors(text),
            vec![
                "g.toml:2:15: diagnostics.concurrency: concurrency must be at least 1 (0 would never run a diagnostic)",
                "g.toml:8:9: device[0].diagnostic[0].level: level 4 is not 1 (quick), 2 (medium) or 3 (deep)",
                "g.toml:9:8: device[0].diagnostic[0].argv: \"{serial}\": only {id}, {kind}, {pci_address}, {model} can be replaced",
                "g.toml:10:10: device[0].diagnostic[0].expect: field \"drift\" must be a JSON pointer such as \"/drift_ppm\"",
                "g.toml:12:8: device[0].diagnostic[1].name: diagnostic \"verify\" is already declared as diagnostic 0 of this device",
                "g.toml:14:8: device[0].diagnostic[1].argv: argv must name a program",
                "g.toml:15:10: device[0].diagnostic[1].remedy: \"{pci_address}\" uses {pci_address} but the device has no pci_address",
            ]
        );
        let unknown = errors(
            "[[device]]\nid = \"p\"\nkind = \"photonic\"\n[[device.diagnostic]]\nname = \"v\"\nlevel = 1\nargv = [\"x\"]\non = [\"Hot\"]\n",
        );
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(unknown[0].starts_with("g.toml:8:7: device[0].diagnostic[0].on"), "{unknown:?}");
        assert!(unknown[0].contains("PowerAnomaly"), "the valid names are listed: {unknown:?}");
    }

    #[test]
    fn a_window_named_must_exist_and_cover_the_device() {
        let text = "\
[[maintenance.window]]
name = \"nightly\"
days = [\"sun\"]
start = \"02:00\"
duration = \"2h\"
timezone = \"UTC\"
devices = [\"q\"]
[[device]]
id = \"q\"
kind = \"photonic\"
[[device]]
id = \"p\"
kind = \"photonic\"
[[device.diagnostic]]
name = \"verify\"
level = 2
argv = [\"lightmatter-cli\"]
windows = [\"nightly\", \"weekly\"]
";
        let got = errors(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0],
            "g.toml:18:11: device[1].diagnostic[0].windows: maintenance window \"nightly\" does not cover device \"p\" (its devices list)"
        );
        assert_eq!(
            got[1],
            "g.toml:18:11: device[1].diagnostic[0].windows: no [[maintenance.window]] is named \"weekly\" (configured: nightly)"
        );
        let fine = text.replace("devices = [\"q\"]\n", "").replace(", \"weekly\"", "");
        assert!(crate::parse_str(&fine, "g.toml").is_ok(), "a window over every device that exists is fine");
    }
}
