//! Regular expressions compiled when the config is read, so a bad pattern is a config error that points
//! at the pattern, not a failure at the first match.

use std::fmt;

use regex::Regex;
use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

/// A compiled regular expression (Rust `regex` syntax). Matching is unanchored, as in node_exporter's
/// include/exclude flags: write `^...$` to match a whole name.
#[derive(Clone)]
pub struct Pattern(Regex);

/// Longest pattern accepted; the regex crate bounds compile cost, this bounds what a typo can cost.
const MAX_PATTERN_LEN: usize = 4096;

/// Why a pattern was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("pattern is {len} bytes long; the limit is {MAX_PATTERN_LEN}")]
    TooLong { len: usize },
    #[error("invalid regular expression: {0}")]
    Invalid(#[from] regex::Error),
}

impl Pattern {
    pub fn new(src: &str) -> Result<Self, PatternError> {
        if src.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong { len: src.len() });
        }
        Ok(Pattern(Regex::new(src)?))
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn regex(&self) -> &Regex {
        &self.0
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(de::Error::custom)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An include/exclude pair. A name passes when it matches `include` (if set) and does not match `exclude`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub include: Option<Pattern>,
    pub exclude: Option<Pattern>,
}

impl Filter {
    pub fn new(include: Option<Pattern>, exclude: Option<Pattern>) -> Self {
        Self { include, exclude }
    }

    pub fn allows(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|p| p.is_match(name))
            && !self.exclude.as_ref().is_some_and(|p| p.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_include_then_exclude() {
        let f = Filter::new(Some(Pattern::new("^platform_").unwrap()), Some(Pattern::new("coretemp_1$").unwrap()));
        assert!(f.allows("platform_coretemp_0"));
        assert!(!f.allows("platform_coretemp_1"));
        assert!(!f.allows("nct6779"));
        assert!(Filter::default().allows("anything"));
    }

    #[test]
    fn bad_regex_is_an_error_not_a_panic() {
        let e = Pattern::new("temp(").unwrap_err().to_string();
        assert!(e.starts_with("invalid regular expression"), "{e}");
    }
}
