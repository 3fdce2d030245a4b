//! Turning a status tool's standard output into readings.
//!
//! SDK status tools print JSON or free text; the probe configuration says where each value sits and how
//! to scale it to the exported unit. A value that is missing or unparsable is left out and counted, never
//! reported as zero: a zero temperature or power would be believed.

use regex::Regex;

/// What a value measures. The unit is the exported one, after `scale`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadingKind {
    Temperature,
    Power,
    Energy,
    Inferences,
    Utilization,
    /// 1 when the device answers as online, 0 when it reports itself offline.
    Online,
    Custom(String),
}

impl ReadingKind {
    /// A stable name for labels and logs.
    pub fn name(&self) -> &str {
        match self {
            ReadingKind::Temperature => "temperature",
            ReadingKind::Power => "power",
            ReadingKind::Energy => "energy",
            ReadingKind::Inferences => "inferences",
            ReadingKind::Utilization => "utilization",
            ReadingKind::Online => "online",
            ReadingKind::Custom(name) => name,
        }
    }
}

/// One value of a JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    pub reading: ReadingKind,
    /// RFC 6901 pointer, e.g. `/boards/0/temp_c`.
    pub pointer: String,
    /// Multiplier to the exported unit, e.g. 0.001 for millidegrees. Ignored for [`ReadingKind::Online`].
    pub scale: f64,
}

/// One value of free text: the first match of `pattern`, whose single capture group holds the value.
#[derive(Debug, Clone)]
pub struct RegexField {
    pub reading: ReadingKind,
    pattern: Regex,
    /// Multiplier to the exported unit. Ignored for [`ReadingKind::Online`].
    pub scale: f64,
}

/// A regex that cannot serve as a field pattern.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PatternError {
    #[error("field pattern {pattern:?}: {source}")]
    Invalid { pattern: String, source: regex::Error },
    #[error("field pattern {pattern:?}: needs exactly one capture group, has {groups}")]
    Groups { pattern: String, groups: usize },
}

impl RegexField {
    pub fn new(reading: ReadingKind, pattern: &str, scale: f64) -> Result<RegexField, PatternError> {
        let compiled =
            Regex::new(pattern).map_err(|source| PatternError::Invalid { pattern: pattern.to_owned(), source })?;
        // Group 0 is the whole match; the value must come from one explicit group, or which one is ambiguous.
        let groups = compiled.captures_len() - 1;
        if groups != 1 {
            return Err(PatternError::Groups { pattern: pattern.to_owned(), groups });
        }
        Ok(RegexField { reading, pattern: compiled, scale })
    }

    pub fn pattern(&self) -> &Regex {
        &self.pattern
    }
}

/// How a probe's standard output is read.
#[derive(Debug, Clone, Default)]
pub enum OutputFormat {
    /// Only the exit code counts.
    #[default]
    None,
    Json {
        fields: Vec<FieldMap>,
    },
    Regex {
        fields: Vec<RegexField>,
    },
}

/// The readings found in one output, and how many configured fields were not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub readings: Vec<(ReadingKind, f64)>,
    pub parse_errors: u32,
}

impl Parsed {
    fn push(&mut self, reading: &ReadingKind, value: Option<f64>) {
        match value {
            Some(v) => self.readings.push((reading.clone(), v)),
            None => self.parse_errors += 1,
        }
    }
}

impl OutputFormat {
    pub fn parse(&self, stdout: &str) -> Parsed {
        let mut parsed = Parsed::default();
        match self {
            OutputFormat::None => {}
            OutputFormat::Json { fields } => {
                // A broken document (e.g. cut off at the output cap) fails every field, each counted.
                let doc = serde_json::from_str::<serde_json::Value>(stdout).ok();
                for field in fields {
                    let value = doc.as_ref().and_then(|d| d.pointer(&field.pointer)).and_then(|v| json_value(v, field));
                    parsed.push(&field.reading, value);
                }
            }
            OutputFormat::Regex { fields } => {
                for field in fields {
                    let text = field.pattern.captures(stdout).and_then(|c| c.get(1)).map(|m| m.as_str());
                    let value = text.and_then(|t| text_value(t, &field.reading, field.scale));
                    parsed.push(&field.reading, value);
                }
            }
        }
        parsed
    }
}

fn json_value(value: &serde_json::Value, field: &FieldMap) -> Option<f64> {
    use serde_json::Value;
    match (value, &field.reading) {
        (Value::Bool(b), ReadingKind::Online) => Some(if *b { 1.0 } else { 0.0 }),
        (Value::Number(n), ReadingKind::Online) => n.as_f64().filter(|v| v.is_finite()).map(online_from_number),
        (Value::Number(n), _) => scaled(n.as_f64()?, field.scale),
        // Many tools quote their numbers ("45.0"), and print states as words.
        (Value::String(s), reading) => text_value(s, reading, field.scale),
        _ => None,
    }
}

fn text_value(text: &str, reading: &ReadingKind, scale: f64) -> Option<f64> {
    let text = text.trim();
    match reading {
        ReadingKind::Online => online_from_word(text).or_else(|| parse_number(text).map(online_from_number)),
        _ => scaled(parse_number(text)?, scale),
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn scaled(value: f64, scale: f64) -> Option<f64> {
    Some(value * scale).filter(|v| v.is_finite())
}

fn online_from_number(v: f64) -> f64 {
    if v == 0.0 { 0.0 } else { 1.0 }
}

fn online_from_word(word: &str) -> Option<f64> {
    const ONLINE: [&str; 6] = ["online", "up", "true", "yes", "ok", "ready"];
    const OFFLINE: [&str; 5] = ["offline", "down", "false", "no", "absent"];
    if ONLINE.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        Some(1.0)
    } else if OFFLINE.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        Some(0.0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(fields: &[(ReadingKind, &str, f64)]) -> OutputFormat {
        OutputFormat::Json {
            fields: fields
                .iter()
                .map(|(reading, pointer, scale)| FieldMap {
                    reading: reading.clone(),
                    pointer: (*pointer).to_owned(),
                    scale: *scale,
                })
                .collect(),
        }
    }

    #[test]
    fn json_fields_are_scaled_and_missing_ones_absent() {
        let format = json(&[
            (ReadingKind::Temperature, "/boards/0/temp_mc", 0.001),
            (ReadingKind::Power, "/boards/0/power_w", 1.0),
            (ReadingKind::Energy, "/boards/0/energy_j", 1.0),
        ]);
        let parsed = format.parse(r#"{"boards":[{"temp_mc":45500,"power_w":"12.5"}]}"#);
        assert_eq!(parsed.readings, vec![(ReadingKind::Temperature, 45.5), (ReadingKind::Power, 12.5)]);
        assert_eq!(parsed.parse_errors, 1);
    }

    #[test]
    fn null_bool_and_garbage_are_not_numbers() {
        let format = json(&[
            (ReadingKind::Temperature, "/a", 1.0),
            (ReadingKind::Power, "/b", 1.0),
            (ReadingKind::Utilization, "/c", 1.0),
        ]);
        let parsed = format.parse(r#"{"a":null,"b":true,"c":"N/A"}"#);
        assert!(parsed.readings.is_empty());
        assert_eq!(parsed.parse_errors, 3);
    }

    #[test]
    fn broken_json_fails_every_field() {
        let format = json(&[(ReadingKind::Temperature, "/a", 1.0), (ReadingKind::Power, "/b", 1.0)]);
        let parsed = format.parse(r#"{"a":1,"b":"#);
        assert!(parsed.readings.is_empty());
        assert_eq!(parsed.parse_errors, 2);
    }

    #[test]
    fn online_accepts_bools_numbers_and_words() {
        let format = json(&[
            (ReadingKind::Online, "/a", 1.0),
            (ReadingKind::Online, "/b", 1.0),
            (ReadingKind::Online, "/c", 1.0),
            (ReadingKind::Online, "/d", 1.0),
            (ReadingKind::Online, "/e", 1.0),
            (ReadingKind::Online, "/f", 1.0),
        ]);
        let parsed = format.parse(r#"{"a":false,"b":3,"c":0,"d":"Offline","e":"up","f":"degraded"}"#);
        let values: Vec<f64> = parsed.readings.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, vec![0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(parsed.parse_errors, 1, "an unknown state word is not guessed");
    }

    #[test]
    fn regex_fields_take_the_first_match() {
        let format = OutputFormat::Regex {
            fields: vec![
                RegexField::new(ReadingKind::Temperature, r"Temp:\s*(-?[0-9.]+)\s*mC", 0.001).unwrap(),
                RegexField::new(ReadingKind::Online, r"State:\s*(\w+)", 1.0).unwrap(),
                RegexField::new(ReadingKind::Power, r"Power:\s*(\S+)", 1.0).unwrap(),
            ],
        };
        let parsed = format.parse("Board 0\nTemp: 41000 mC\nState: down\nPower: N/A\nTemp: 99000 mC\n");
        assert_eq!(parsed.readings, vec![(ReadingKind::Temperature, 41.0), (ReadingKind::Online, 0.0)]);
        assert_eq!(parsed.parse_errors, 1);
    }

    #[test]
    fn patterns_need_exactly_one_group() {
        assert!(matches!(
            RegexField::new(ReadingKind::Power, r"Power: \d+", 1.0),
            Err(PatternError::Groups { groups: 0, .. })
        ));
        assert!(matches!(
            RegexField::new(ReadingKind::Power, r"(a)(b)", 1.0),
            Err(PatternError::Groups { groups: 2, .. })
        ));
        let err = RegexField::new(ReadingKind::Power, r"(unclosed", 1.0).unwrap_err();
        assert!(err.to_string().contains("(unclosed"), "{err}");
        assert!(RegexField::new(ReadingKind::Power, r"(?:W|mW): (\d+)", 1.0).is_ok(), "non-capturing groups are fine");
    }
}
