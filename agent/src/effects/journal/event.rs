//! One journal entry, its severity scale, and its stable JSON shape.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize, Serializer};

/// How bad an event is. The order (`Info < Warning < Critical < Fatal`) is what severity thresholds compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
    Fatal,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::Critical, Severity::Fatal];

    /// The name used in the database, in JSON and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}; expected one of info, warning, critical, fatal")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

impl ToSql for Severity {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Severity {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// Well-known values of [`Event::kind`]. Kinds are open-ended strings so that new producers need no schema
/// change; these are the ones the agent itself writes.
pub mod kind {
    pub const CONDITION_SET: &str = "condition_set";
    pub const CONDITION_CLEARED: &str = "condition_cleared";
    pub const PROBE_FAILING: &str = "probe_failing";
    pub const ACTION: &str = "action";
    /// An operator changed something through the control socket (who, from which process, what).
    pub const OPERATOR: &str = "operator";
    /// A peer was refused a mutation on the control socket.
    pub const CONTROL_REFUSED: &str = "control_refused";
    /// Log-rule matches: one event for the first match of a burst, then one per burst window with the
    /// count of the matches since.
    pub const LOG_MATCH: &str = "log_match";
    /// A followed log that cannot be read as one (replaced by a symlink, FIFO or device), and its return.
    pub const LOG_SOURCE: &str = "log_source";
    /// The agent could not do something for want of its own resources (descriptors, memory, processes,
    /// disk): the first of each streak.
    pub const AGENT_FAULT: &str = "agent_fault";
    /// A source of evidence (collector, BMP, spalloc server, probe) started failing: once per streak.
    pub const SOURCE_FAILING: &str = "source_failing";
    /// A failing source answers again.
    pub const SOURCE_RECOVERED: &str = "source_recovered";
    /// What kubelet was told (a device advertised Unhealthy or Healthy again) and learnt from it (the pod
    /// holding a device changed).
    pub const KUBELET: &str = "kubelet";
    /// A configured maintenance window opened or closed: one event per device it covers.
    pub const MAINTENANCE_WINDOW: &str = "maintenance_window";
    /// A diagnostic queued, started, refused, remedied, passed or failed.
    pub const DIAGNOSTIC: &str = "diagnostic";
}

/// Something that happened: a condition change, an action, a probe failure streak.
///
/// JSON shape (stable; consumers parse it):
/// `{"id":1,"time":"2026-11-23T22:00:00.123Z","time_unix_ms":1795471200123,"device":"loihi0",
/// "severity":"warning","kind":"condition_set","message":"..."}`. `device` is `null` for host-wide events.
/// When reading JSON, `time_unix_ms` is authoritative and `time` (for humans) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "EventIn")]
pub struct Event {
    /// Assigned by the journal when the event is stored; never reused, even after retention deletes rows.
    /// The value passed to [`super::JournalWriter::record`] is ignored.
    pub id: i64,
    /// Stored with millisecond precision.
    pub time: SystemTime,
    /// None for events about the host as a whole.
    pub device: Option<String>,
    pub severity: Severity,
    /// See [`kind`] for the well-known values.
    pub kind: String,
    pub message: String,
}

impl Event {
    /// A host-wide event, not yet stored (id 0). Use [`Event::on_device`] to attach it to a device.
    pub fn new(time: SystemTime, severity: Severity, kind: impl Into<String>, message: impl Into<String>) -> Event {
        Event { id: 0, time, device: None, severity, kind: kind.into(), message: message.into() }
    }

    pub fn on_device(mut self, device: impl Into<String>) -> Event {
        self.device = Some(device.into());
        self
    }

    /// Milliseconds since the Unix epoch, rounded down; negative before 1970.
    pub fn time_unix_ms(&self) -> i64 {
        unix_ms(self.time)
    }

    /// The time as RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T22:00:00.123Z`.
    pub fn time_rfc3339(&self) -> String {
        rfc3339_utc_ms(self.time_unix_ms())
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    id: i64,
    time: String,
    time_unix_ms: i64,
    device: Option<&'a str>,
    severity: Severity,
    kind: &'a str,
    message: &'a str,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ms = self.time_unix_ms();
        EventOut {
            id: self.id,
            time: rfc3339_utc_ms(ms),
            time_unix_ms: ms,
            device: self.device.as_deref(),
            severity: self.severity,
            kind: &self.kind,
            message: &self.message,
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
struct EventIn {
    id: i64,
    time_unix_ms: i64,
    device: Option<String>,
    severity: Severity,
    kind: String,
    message: String,
}

impl From<EventIn> for Event {
    fn from(e: EventIn) -> Event {
        Event {
            id: e.id,
            time: from_unix_ms(e.time_unix_ms),
            device: e.device,
            severity: e.severity,
            kind: e.kind,
            message: e.message,
        }
    }
}

/// Milliseconds since the Unix epoch, rounded towards the past (so that times before 1970 sort correctly),
/// saturating at the ends of i64.
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos().div_ceil(1_000_000)).map_or(i64::MIN, |ms| -ms),
    }
}

pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    // i64 milliseconds always fit Linux's 64-bit seconds, so neither direction can overflow.
    if ms >= 0 { UNIX_EPOCH + magnitude } else { UNIX_EPOCH - magnitude }
}

/// Formats Unix milliseconds as RFC 3339 UTC with exactly three fractional digits.
pub(crate) fn rfc3339_utc_ms(ms: i64) -> String {
    const DAY_MS: i64 = 86_400_000;
    let (year, month, day) = civil_from_days(ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS);
    let (hour, minute, second, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's `civil_from_days`,
/// which works in 400-year eras starting on March 1 so that the leap day is the last day of a year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc_with_milliseconds() {
        assert_eq!(rfc3339_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc_ms(1_795_471_200_123), "2026-11-23T22:00:00.123Z");
        assert_eq!(rfc3339_utc_ms(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_utc_ms(951_868_800_000), "2000-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc_ms(951_868_800_000 - 1), "2000-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_utc_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_utc_ms(-14_182_940_000), "1969-07-20T20:17:40.000Z");
    }

    #[test]
    fn unix_ms_rounds_towards_the_past_and_round_trips() {
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_micros(1_999)), 1);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_micros(1_500)), -2);
        for ms in [0, 1, -1, 1_795_471_200_123, -14_182_940_000] {
            assert_eq!(unix_ms(from_unix_ms(ms)), ms);
        }
    }

    #[test]
    fn severities_are_ordered_and_parse_from_their_names() {
        assert!(Severity::Info < Severity::Warning);
        assert!(Severity::Warning < Severity::Critical);
        assert!(Severity::Critical < Severity::Fatal);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        assert_eq!("Warning".parse::<Severity>(), Err(UnknownSeverity("Warning".into())));
    }
}
