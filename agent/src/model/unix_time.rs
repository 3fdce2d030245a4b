//! Times in the JSON views: Unix seconds with millisecond precision, or null for an absent time. Both
//! directions live here so that what the agent writes is exactly what agentctl reads back (for
//! `#[serde(with = ...)]`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serializer};

/// Seconds since the epoch to the millisecond; None before it (a clock set to 1970 shows as no time).
fn seconds(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Back to the millisecond that was written (from_secs_f64 alone lands a few nanoseconds off).
fn time<E: serde::de::Error>(secs: f64) -> Result<SystemTime, E> {
    let ms = Duration::try_from_secs_f64(secs).map_err(E::custom)?.as_secs_f64() * 1000.0;
    Ok(UNIX_EPOCH + Duration::from_millis(ms.round() as u64))
}

/// A time that is always there: a number (0 before the epoch, so it is never null on the wire).
pub mod unix {
    use super::*;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(seconds(*t).unwrap_or(0.0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        time(f64::deserialize(d)?)
    }
}

/// A time that may be absent: a number or null.
pub mod opt_unix {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t.and_then(seconds) {
            Some(secs) => s.serialize_f64(secs),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<f64>::deserialize(d)?.map(time).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Times {
        #[serde(with = "unix")]
        at: SystemTime,
        #[serde(with = "opt_unix")]
        until: Option<SystemTime>,
    }

    #[test]
    fn times_read_back_as_written_to_the_millisecond() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_471_200_123);
        let t = Times { at, until: None };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"at":1795471200.123,"until":null}"#);
        assert_eq!(serde_json::from_str::<Times>(&json).unwrap(), t);
        let t = Times { at, until: Some(at) };
        assert_eq!(serde_json::from_str::<Times>(&serde_json::to_string(&t).unwrap()).unwrap(), t);
    }
}
