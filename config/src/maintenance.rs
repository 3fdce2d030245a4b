//! `[[maintenance.window]]`: recurring maintenance windows. Inside one, its devices are in maintenance as
//! with `agentctl maintenance ID on`. The start is a wall-clock time in an IANA zone read from the system's
//! tz database (/usr/share/zoneinfo), checked when the file is loaded, so an unknown zone is an error at
//! its line like any other.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::device::DeviceConfig;
use crate::duration::BoundedDuration;
use crate::finding::Finding;
use crate::id::is_id_char;
use crate::spinnaker::Machine;

/// How long one occurrence of a window lasts: 1 s .. 7 days (elapsed time, not wall-clock time).
pub type WindowLength = BoundedDuration<1_000, 604_800_000>;

/// `[maintenance]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Maintenance {
    #[serde(rename = "window")]
    pub windows: Vec<Window>,
}

/// `[[maintenance.window]]`: one recurring window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Unique; the `window` label of `accel_maintenance_window_active`.
    pub name: String,
    /// The days an occurrence starts on (in the window's zone). One that runs past midnight belongs to
    /// the day it started.
    pub days: Vec<Weekday>,
    /// Wall-clock time in `timezone`: "02:00" or "02:00:30".
    pub start: WallTime,
    pub duration: WindowLength,
    pub timezone: Zone,
    /// Device ids; empty: every device.
    #[serde(default)]
    pub devices: Vec<String>,
}

impl Window {
    /// Whether the window covers the device.
    pub fn covers(&self, device: &str) -> bool {
        self.devices.is_empty() || self.devices.iter().any(|d| d == device)
    }
}

/// A day of the week, written "mon" or "monday".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    #[serde(alias = "monday")]
    Mon,
    #[serde(alias = "tuesday")]
    Tue,
    #[serde(alias = "wednesday")]
    Wed,
    #[serde(alias = "thursday")]
    Thu,
    #[serde(alias = "friday")]
    Fri,
    #[serde(alias = "saturday")]
    Sat,
    #[serde(alias = "sunday")]
    Sun,
}

impl Weekday {
    /// The same day as jiff numbers it.
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as J;
        match self {
            Weekday::Mon => J::Monday,
            Weekday::Tue => J::Tuesday,
            Weekday::Wed => J::Wednesday,
            Weekday::Thu => J::Thursday,
            Weekday::Fri => J::Friday,
            Weekday::Sat => J::Saturday,
            Weekday::Sun => J::Sunday,
        }
    }
}

/// A wall-clock time of day, "HH:MM" or "HH:MM:SS" (24-hour).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(jiff::civil::Time);

impl WallTime {
    pub fn time(self) -> jiff::civil::Time {
        self.0
    }
}

/// A start that is not a wall-clock time.
#[derive(Debug, thiserror::Error)]
#[error("invalid start {0:?}: write a 24-hour wall-clock time, \"HH:MM\" or \"HH:MM:SS\"")]
pub struct BadWallTime(String);

impl std::str::FromStr for WallTime {
    type Err = BadWallTime;

    fn from_str(s: &str) -> Result<Self, BadWallTime> {
        let bad = || BadWallTime(s.to_owned());
        let parts: Vec<&str> = s.split(':').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let num = |p: &str| p.parse::<i8>().map_err(|_| bad());
        let (h, m) = (num(parts[0])?, num(parts[1])?);
        let sec = if parts.len() == 3 { num(parts[2])? } else { 0 };
        jiff::civil::Time::new(h, m, sec, 0).map(WallTime).map_err(|_| bad())
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        if t.second() == 0 {
            write!(f, "{:02}:{:02}", t.hour(), t.minute())
        } else {
            write!(f, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
        }
    }
}

impl fmt::Debug for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An IANA time zone, found in the system's tz database when the config is loaded.
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tz(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }
}

/// A zone the system's tz database does not have.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown time zone {name:?} ({source}); use an IANA name such as \"UTC\" or \"Europe/London\" from the \
     system's tz database (package tzdata)"
)]
pub struct UnknownZone {
    name: String,
    source: jiff::Error,
}

impl std::str::FromStr for Zone {
    type Err = UnknownZone;

    fn from_str(s: &str) -> Result<Self, UnknownZone> {
        match jiff::tz::TimeZone::get(s) {
            Ok(tz) => Ok(Zone { name: s.to_owned(), tz }),
            Err(source) => Err(UnknownZone { name: s.to_owned(), source }),
        }
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Both types read as strings through `FromStr`, so their errors carry the value's position.
macro_rules! string_serde {
    ($t:ty, $what:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$t, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
string_serde!(WallTime, "a wall-clock time such as \"02:00\"");
string_serde!(Zone, "an IANA time zone name such as \"Europe/London\"");

impl Serialize for WallTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl Maintenance {
    /// Why a diagnostic of `device` could never run in the window `name`: none has that name, or it does
    /// not cover the device.
    pub fn window_problem(&self, name: &str, device: &str) -> Option<String> {
        let Some(window) = self.windows.iter().find(|w| w.name == name) else {
            let known: Vec<&str> = self.windows.iter().map(|w| w.name.as_str()).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Some(format!("no [[maintenance.window]] is named {name:?} (configured: {known})"));
        };
        (!window.covers(device))
            .then(|| format!("maintenance window {name:?} does not cover device {device:?} (its devices list)"))
    }

    /// Names unique and usable as label values, days given, and every device id one the agent can have:
    /// a declared device, a board of a SpiNNaker machine, or (with discovery on) a discovered device's id,
    /// which ends in its PCI address.
    pub fn validate(&self, devices: &[DeviceConfig], machines: &[Machine], discovery: bool, out: &mut Vec<Finding>) {
        let boards: Vec<String> = machines.iter().flat_map(Machine::board_devices).map(|b| b.id).collect();
        let mut seen = std::collections::HashMap::new();
        for (i, w) in self.windows.iter().enumerate() {
            let at = |key: &str| vec!["maintenance".into(), "window".into(), i.into(), key.into()];
            if w.name.is_empty() || !w.name.chars().all(is_id_char) {
                out.push(Finding {
                    path: at("name"),
                    message: format!(
                        "window name {:?} must be non-empty and use only letters, digits and - _ . :",
                        w.name
                    ),
                });
            }
            if let Some(first) = seen.insert(w.name.as_str(), i) {
                out.push(Finding {
                    path: at("name"),
                    message: format!("window name {:?} is already used by window {first}", w.name),
                });
            }
            if w.days.is_empty() {
                out.push(Finding {
                    path: at("days"),
                    message: "days must name at least one day, e.g. [\"sun\"]".into(),
                });
            }
            for id in &w.devices {
                let declared = devices.iter().any(|d| &d.id == id) || boards.iter().any(|b| b == id);
                let may_be_found = discovery && looks_discovered(id);
                if !declared && !may_be_found {
                    out.push(Finding {
                        path: at("devices"),
                        message: format!(
                            "no device {id:?}: name a declared device, a SpiNNaker board, or (with discovery on) a \
                             discovered device's id, which ends in its PCI address"
                        ),
                    });
                }
            }
        }
    }
}

/// Discovery names a device `<name>-<pci address>` (DDDD:BB:DD.F).
fn looks_discovered(id: &str) -> bool {
    let Some(address) = id.len().checked_sub(12).and_then(|at| id.get(at..)) else { return false };
    let b = address.as_bytes();
    id.len() > 13
        && id.as_bytes()[id.len() - 13] == b'-'
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && [0..4, 5..7, 8..10, 11..12].into_iter().all(|r| b[r].iter().all(u8::is_ascii_hexdigit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_parse_and_print_as_written() {
        assert_eq!("02:00".parse::<WallTime>().unwrap().to_string(), "02:00");
        assert_eq!("23:59:30".parse::<WallTime>().unwrap().to_string(), "23:59:30");
        for bad in ["24:00", "2:00", "02:60", "02", "02:00:00:00", "aa:bb", ""] {
            let err = bad.parse::<WallTime>().unwrap_err().to_string();
            assert!(err.contains("HH:MM"), "{bad}: {err}");
        }
    }

    #[test]
    fn discovered_ids_end_in_a_pci_address() {
        assert!(looks_discovered("habanalabs-0000:3b:00.0"));
        assert!(!looks_discovered("0000:3b:00.0"), "the name part is missing");
        assert!(!looks_discovered("loihi0"));
        assert!(!looks_discovered("x-0000:3b:00:0"));
    }

    fn errors(text: &str) -> Vec<String> {
        crate::parse_str(text, "agent.toml").unwrap_err().0.iter().map(ToString::to_string).collect()
    }

    const DEVICE: &str = "[[device]]\nid = \"photon0\"\nkind = \"photonic\"\n";

    #[test]
    fn a_window_parses_with_full_day_names_and_defaults_to_every_device() {
        let text = format!(
            "{DEVICE}[[maintenance.window]]\nname = \"sunday-night\"\ndays = [\"sun\", \"Monday\"]\n\
             start = \"02:00\"\nduration = \"2h\"\ntimezone = \"UTC\"\n"
        );
        let err = crate::parse_str(&text, "agent.toml").unwrap_err().to_string();
        assert!(err.starts_with("agent.toml:6:16: maintenance.window[0].days: unknown value `Monday`"), "{err}");
        let cfg = crate::parse_str(&text.replace("Monday", "monday"), "agent.toml").unwrap();
        let w = &cfg.maintenance.windows[0];
        assert_eq!((w.days.as_slice(), w.start.to_string()), ([Weekday::Sun, Weekday::Mon].as_slice(), "02:00".into()));
        assert_eq!(w.duration.get(), std::time::Duration::from_secs(7200));
        assert_eq!(w.timezone.name(), "UTC");
        assert!(w.covers("photon0") && w.covers("anything"), "no devices: every device");
    }

    #[test]
    fn mistakes_are_located_at_their_key() {
        let window = |name: &str, zone: &str, duration: &str, devices: &str| {
            format!(
                "[[maintenance.window]]\nname = \"{name}\"\ndays = [\"sat\"]\nstart = \"02:00\"\n\
                 duration = \"{duration}\"\ntimezone = \"{zone}\"\ndevices = [{devices}]\n"
            )
        };
        // Values the schema refuses, each at its value.
        let errs = errors(&format!("{DEVICE}{}", window("a", "Mars/Olympus_Mons", "2h", "")));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(
                "agent.toml:9:12: maintenance.window[0].timezone: unknown time zone \"Mars/Olympus_Mons\""
            ),
            "{errs:#?}"
        );
        let errs = errors(&format!("{DEVICE}{}", window("a", "UTC", "8d", "")));
        assert!(
            errs[0].starts_with("agent.toml:8:12: maintenance.window[0].duration: duration 8days is out of range"),
            "{errs:#?}"
        );
        // Findings across keys.
        let text = format!(
            "{DEVICE}{}{}{}",
            window("a", "UTC", "2h", "\"photon0\""),
            window("a", "UTC", "2h", "\"photon9\""),
            window("b", "UTC", "2h", "\"hl-0000:3b:00.0\""),
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].starts_with(
                "agent.toml:12:8: maintenance.window[1].name: window name \"a\" is already used by window 0"
            ),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with("agent.toml:17:11: maintenance.window[1].devices: no device \"photon9\""),
            "{errs:#?}"
        );
        // With discovery off, a discovered device's id cannot exist.
        let errs = errors(&format!("discovery = {{ enabled = false }}\n{text}"));
        assert!(errs.iter().any(|e| e.contains("no device \"hl-0000:3b:00.0\"")), "{errs:#?}");
    }
}
