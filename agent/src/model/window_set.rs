//! The configured maintenance windows as the engine holds them: which are open for a device at a given
//! time, which opened or closed since the owner last looked (for the journal), and what the API, the
//! pages and the metrics show of them. The time arithmetic is in the windows module; this one remembers.

use std::sync::Arc;
use std::time::SystemTime;

use collectors::catalogue as c;
use collectors::export::{Families, labels, lv};
use config::maintenance::{Maintenance, Window};
use serde::{Deserialize, Serialize};

use super::unix_time::{opt_unix, unix};
use super::windows::{Occurrence, local_time, next_start, open_at};

/// A window open for a device: the interface scheduled work asks (`DeviceEngine::open_windows`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWindow {
    pub name: Arc<str>,
    pub started: SystemTime,
    pub ends: SystemTime,
}

/// A window holding a device in maintenance, as the device's view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowHold {
    pub name: String,
    #[serde(with = "unix")]
    pub until: SystemTime,
    /// `until` in the window's zone, e.g. "Sun 04:00 UTC".
    pub until_local: String,
}

impl std::fmt::Display for WindowHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "maintenance window {} until {}", self.name, self.until_local)
    }
}

/// A configured window, for `/api/v1/status`, `agentctl status`, the landing page and the metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowView {
    pub name: String,
    pub active: bool,
    /// While open: when this occurrence ends.
    #[serde(with = "opt_unix")]
    pub ends: Option<SystemTime>,
    pub ends_local: Option<String>,
    #[serde(with = "opt_unix")]
    pub next_start: Option<SystemTime>,
    pub next_start_local: Option<String>,
    /// As configured: days, start, duration, zone; `devices` empty means every device.
    pub days: Vec<config::maintenance::Weekday>,
    pub start: String,
    pub duration: String,
    pub timezone: String,
    pub devices: Vec<String>,
}

/// A window opened or closed, with the device ids it names (empty: every device).
#[derive(Debug, Clone, PartialEq)]
pub enum WindowChange {
    Opened { name: Arc<str>, devices: Vec<String>, until: SystemTime, until_local: String },
    Closed { name: Arc<str>, devices: Vec<String> },
}

struct Tracked {
    config: Window,
    name: Arc<str>,
    /// Open at the owner's last look, so opening and closing are journalled once each.
    open: bool,
}

#[derive(Default)]
pub struct WindowSet {
    windows: Vec<Tracked>,
    /// Windows a reload removed while they were open: their close is still to be told.
    closed_by_reload: Vec<Tracked>,
}

impl WindowSet {
    pub fn new(config: &Maintenance) -> Self {
        let mut set = WindowSet::default();
        set.reconfigure(config);
        set
    }

    /// Takes a reloaded config. A window that keeps its name keeps whether it was open, so a reload does
    /// not journal it opening again; one whose new times no longer cover now closes at the next look.
    pub fn reconfigure(&mut self, config: &Maintenance) {
        let mut old = std::mem::take(&mut self.windows);
        for w in &config.windows {
            let open = match old.iter().position(|t| *t.name == *w.name) {
                Some(i) => old.swap_remove(i).open,
                None => false,
            };
            self.windows.push(Tracked { config: w.clone(), name: Arc::from(w.name.as_str()), open });
        }
        self.closed_by_reload.extend(old.into_iter().filter(|t| t.open));
    }

    /// The windows open at `wall`, worked out once for asking about many devices.
    pub fn at(&self, wall: SystemTime) -> OpenAt<'_> {
        OpenAt { open: self.windows.iter().filter_map(|t| Some((t, open_at(&t.config, wall)?))).collect() }
    }

    /// The windows that opened or closed since the last call, as of `wall`.
    pub fn changes(&mut self, wall: SystemTime) -> Vec<WindowChange> {
        let mut out: Vec<WindowChange> = std::mem::take(&mut self.closed_by_reload)
            .into_iter()
            .map(|t| WindowChange::Closed { name: t.name, devices: t.config.devices })
            .collect();
        for t in &mut self.windows {
            let now = open_at(&t.config, wall);
            if now.is_some() == t.open {
                continue;
            }
            t.open = now.is_some();
            let (name, devices) = (Arc::clone(&t.name), t.config.devices.clone());
            out.push(match now {
                Some(o) => {
                    WindowChange::Opened { name, devices, until: o.end, until_local: local_time(&t.config, o.end) }
                }
                None => WindowChange::Closed { name, devices },
            });
        }
        out
    }

    pub fn views(&self, wall: SystemTime) -> Vec<WindowView> {
        self.windows
            .iter()
            .map(|t| {
                let (w, open, next) = (&t.config, open_at(&t.config, wall), next_start(&t.config, wall));
                WindowView {
                    name: t.name.to_string(),
                    active: open.is_some(),
                    ends: open.map(|o| o.end),
                    ends_local: open.map(|o| local_time(w, o.end)),
                    next_start: next,
                    next_start_local: next.map(|n| local_time(w, n)),
                    days: w.days.clone(),
                    start: w.start.to_string(),
                    duration: w.duration.to_string(),
                    timezone: w.timezone.name().to_owned(),
                    devices: w.devices.clone(),
                }
            })
            .collect()
    }
}

/// The windows open at one moment.
pub struct OpenAt<'a> {
    open: Vec<(&'a Tracked, Occurrence)>,
}

impl OpenAt<'_> {
    /// Whether an open window covers `device`.
    pub fn covers(&self, device: &str) -> bool {
        self.open.iter().any(|(t, _)| t.config.covers(device))
    }

    /// The open windows that cover `device`.
    pub fn open_for(&self, device: &str) -> Vec<OpenWindow> {
        self.covering(device)
            .map(|(t, o)| OpenWindow { name: Arc::clone(&t.name), started: o.start, ends: o.end })
            .collect()
    }

    /// The same, as the device's view shows them.
    pub fn holds(&self, device: &str) -> Vec<WindowHold> {
        self.covering(device)
            .map(|(t, o)| WindowHold {
                name: t.name.to_string(),
                until: o.end,
                until_local: local_time(&t.config, o.end),
            })
            .collect()
    }

    fn covering<'b>(&'b self, device: &'b str) -> impl Iterator<Item = (&'b Tracked, Occurrence)> {
        self.open.iter().filter(move |(t, _)| t.config.covers(device)).map(|(t, o)| (*t, *o))
    }
}

/// accel_maintenance_window_active: 1 or 0 for every configured window.
pub fn export(windows: &[WindowView], out: &mut Families) {
    for w in windows {
        out.sample(&c::MAINTENANCE_WINDOW_ACTIVE, labels![("window", lv(&w.name))], f64::from(u8::from(w.active)));
    }
}
