//! Durations written as strings ("5s", "250ms", "1m30s") with a range checked at parse time, so an
//! out-of-range value is reported with the position of the value in the file.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A duration in `[MIN_MS, MAX_MS]` milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedDuration<const MIN_MS: u64, const MAX_MS: u64>(Duration);

/// How often a source is polled: 100 ms .. 1 h.
pub type Interval = BoundedDuration<100, 3_600_000>;
/// How long one read, command or request may take: 10 ms .. 10 min.
pub type Timeout = BoundedDuration<10, 600_000>;
/// How long a value must persist before an action reacts: 0 (react at once) .. 1 h.
pub type Hold = BoundedDuration<0, 3_600_000>;
/// Why a duration was refused, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {text:?}: {source}; write a number with a unit, e.g. \"500ms\", \"5s\", \"2m\"")]
    Unreadable { text: String, source: humantime::DurationError },
    #[error("duration {value} is out of range: must be between {min} and {max}")]
    OutOfRange {
        value: humantime::FormattedDuration,
        min: humantime::FormattedDuration,
        max: humantime::FormattedDuration,
    },
}

/// Windows, quiet periods, retention ages: 1 s .. 400 days.
pub type Period = BoundedDuration<1_000, 34_560_000_000>;

impl<const MIN_MS: u64, const MAX_MS: u64> BoundedDuration<MIN_MS, MAX_MS> {
    pub const MIN: Duration = Duration::from_millis(MIN_MS);
    pub const MAX: Duration = Duration::from_millis(MAX_MS);

    /// Checks the bounds; the error says what was wrong in words an operator can act on.
    pub fn new(d: Duration) -> Result<Self, DurationError> {
        if d < Self::MIN || d > Self::MAX {
            return Err(DurationError::OutOfRange {
                value: humantime::format_duration(d),
                min: humantime::format_duration(Self::MIN),
                max: humantime::format_duration(Self::MAX),
            });
        }
        Ok(Self(d))
    }

    /// For defaults written in code; panics at compile time in const contexts if out of range.
    pub const fn from_millis(ms: u64) -> Self {
        assert!(ms >= MIN_MS && ms <= MAX_MS, "default duration out of range");
        Self(Duration::from_millis(ms))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> From<BoundedDuration<MIN_MS, MAX_MS>> for Duration {
    fn from(d: BoundedDuration<MIN_MS, MAX_MS>) -> Duration {
        d.0
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> std::str::FromStr for BoundedDuration<MIN_MS, MAX_MS> {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|source| DurationError::Unreadable { text: s.to_owned(), source })?;
        Self::new(d)
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> fmt::Display for BoundedDuration<MIN_MS, MAX_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> fmt::Debug for BoundedDuration<MIN_MS, MAX_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de, const MIN_MS: u64, const MAX_MS: u64> Deserialize<'de> for BoundedDuration<MIN_MS, MAX_MS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const A: u64, const B: u64>;
        impl<const A: u64, const B: u64> Visitor<'_> for V<A, B> {
            type Value = BoundedDuration<A, B>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"5s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V::<MIN_MS, MAX_MS>)
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> Serialize for BoundedDuration<MIN_MS, MAX_MS> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_checks_bounds() {
        let i: Interval = "250ms".parse().unwrap();
        assert_eq!(i.get(), Duration::from_millis(250));
        let i: Interval = "1m30s".parse().unwrap();
        assert_eq!(i.get(), Duration::from_secs(90));
        let err = "50ms".parse::<Interval>().unwrap_err().to_string();
        assert!(err.contains("between 100ms and 1h"), "{err}");
        let err = "5 parsecs".parse::<Interval>().unwrap_err().to_string();
        assert!(err.contains("invalid duration"), "{err}");
        assert!("5".parse::<Interval>().is_err(), "a bare number has no unit");
    }

    #[test]
    fn displays_in_the_form_it_parses() {
        let t: Timeout = "1500ms".parse().unwrap();
        assert_eq!(t.to_string(), "1s 500ms");
        assert_eq!(t.to_string().parse::<Timeout>().unwrap(), t);
    }
}
