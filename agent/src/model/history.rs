//! What each device did recently: its readings (temperature per sensor, power, energy per inference,
//! utilisation), throttle level and state, sampled at most once per poll interval over a configured span,
//! and marks for what changed in between (conditions, throttle steps, reconnects). Kept in memory only,
//! with a bound on what it holds: a sample count per device fixed by span and resolution, a mark count
//! per device, and text lengths. The owner loop writes it in its decision round; HTTP and the control
//! socket read it. Time is always passed in.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::health::{State, Status};
use super::view::{ConditionChange, DeviceView};

/// Marks kept per device, newest last; older ones go first. Enough for a flapping condition to show as
/// such without letting it grow the store.
pub const MAX_MARKS: usize = 128;
/// A mark's text is cut to this many bytes (on a character boundary).
pub const MAX_MARK_TEXT: usize = 120;
/// What the allocator adds to each allocation the store makes, counted so that the bound it states holds
/// for the memory taken, not only the bytes asked for (glibc's chunk header).
const ALLOC_OVERHEAD: usize = 16;

/// How far back, and how finely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    pub span: Duration,
    /// The poll interval: samples closer together than 4/5 of it are not kept, so that collectors whose
    /// rounds fall at different moments of one poll make one sample, not one each.
    pub resolution: Duration,
}

impl HistoryLimits {
    fn min_gap_ms(&self) -> i64 {
        (self.resolution.as_millis() as i64 * 4 / 5).max(1)
    }

    /// The most samples one device holds: the span filled at the smallest gap allowed, and one more.
    pub fn max_samples(&self) -> usize {
        (self.span.as_millis() as i64 / self.min_gap_ms()) as usize + 1
    }
}

impl HistoryLimits {
    /// `[history] span` at the global poll interval's resolution.
    pub fn of(config: &config::Config) -> HistoryLimits {
        HistoryLimits { span: config.history.span.get(), resolution: config.poll_interval.get() }
    }
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { span: Duration::from_secs(3600), resolution: Duration::from_secs(5) }
    }
}

/// What a mark says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    ConditionSet,
    ConditionCleared,
    /// The throttle level moved (up or down).
    Throttle,
    /// A reconnect step was started, or its outcome decided.
    Reconnect,
}

impl MarkKind {
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::ConditionSet => "condition_set",
            MarkKind::ConditionCleared => "condition_cleared",
            MarkKind::Throttle => "throttle",
            MarkKind::Reconnect => "reconnect",
        }
    }
}

/// Absent values are NaN inside the store (4 bytes instead of 8 for an Option<f32>), and absent again
/// (never 0) wherever they leave it.
const ABSENT: f32 = f32::NAN;
const NO_LEVEL: u8 = u8::MAX;

/// Temperatures by index into the device's `sensors`; NaN where the sensor was not read that round. Up
/// to four (every kind of board here has at most four) are held in the sample itself, without an
/// allocation each.
#[derive(Debug, Clone)]
enum Temps {
    Inline([f32; 4]),
    Heap(Box<[f32]>),
}

impl Temps {
    fn new(values: Vec<f32>) -> Temps {
        match <[f32; 4]>::try_from(&values[..]) {
            Ok(a) => Temps::Inline(a),
            Err(_) if values.len() < 4 => {
                let mut a = [ABSENT; 4];
                a[..values.len()].copy_from_slice(&values);
                Temps::Inline(a)
            }
            Err(_) => Temps::Heap(values.into_boxed_slice()),
        }
    }

    fn as_slice(&self) -> &[f32] {
        match self {
            Temps::Inline(a) => a,
            Temps::Heap(b) => b,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Temps::Inline(_) => 0,
            Temps::Heap(b) => b.len() * 4 + ALLOC_OVERHEAD,
        }
    }
}

#[derive(Debug, Clone)]
struct Sample {
    at_ms: i64,
    temps: Temps,
    power: f32,
    energy_per_inference: f32,
    utilization: f32,
    throttle: u8,
    state: State,
}

#[derive(Debug, Clone)]
struct Mark {
    at_ms: i64,
    kind: MarkKind,
    text: Box<str>,
}

#[derive(Debug, Default)]
struct DeviceHistory {
    /// Temperature sensor names, in the order first seen.
    sensors: Vec<Box<str>>,
    samples: VecDeque<Sample>,
    marks: VecDeque<Mark>,
    /// The throttle level last seen, for the next sample and to mark its changes.
    throttle: Option<u8>,
}

impl DeviceHistory {
    fn bytes(&self, id: &str) -> usize {
        let heap = |n: usize| if n == 0 { 0 } else { n + ALLOC_OVERHEAD };
        std::mem::size_of::<(String, DeviceHistory)>()
            + heap(id.len())
            + heap(self.sensors.capacity() * std::mem::size_of::<Box<str>>())
            + self.sensors.iter().map(|s| heap(s.len())).sum::<usize>()
            + heap(self.samples.capacity() * std::mem::size_of::<Sample>())
            + self.samples.iter().map(|s| s.temps.heap_bytes()).sum::<usize>()
            + heap(self.marks.capacity() * std::mem::size_of::<Mark>())
            + self.marks.iter().map(|m| heap(m.text.len())).sum::<usize>()
    }

    fn sensor(&mut self, name: &str) -> usize {
        match self.sensors.iter().position(|s| &**s == name) {
            Some(i) => i,
            None => {
                self.sensors.push(name.into());
                self.sensors.len() - 1
            }
        }
    }

    fn forget_before(&mut self, cutoff_ms: i64, limits: &HistoryLimits) {
        while self.samples.front().is_some_and(|s| s.at_ms < cutoff_ms) || self.samples.len() > limits.max_samples() {
            self.samples.pop_front();
        }
        while self.marks.front().is_some_and(|m| m.at_ms < cutoff_ms) || self.marks.len() > MAX_MARKS {
            self.marks.pop_front();
        }
    }

    fn mark(&mut self, at_ms: i64, kind: MarkKind, text: &str) {
        if self.marks.len() >= MAX_MARKS {
            self.marks.pop_front();
        }
        self.marks.push_back(Mark { at_ms, kind, text: cut(text, MAX_MARK_TEXT).into() });
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn present(v: f32) -> Option<f64> {
    (!v.is_nan()).then_some(f64::from(v))
}

fn stored(v: Option<f64>) -> f32 {
    v.map_or(ABSENT, |v| v as f32)
}

#[derive(Debug, Default)]
struct Store {
    limits: HistoryLimits,
    devices: BTreeMap<String, DeviceHistory>,
}

/// The history of every device, shared: the owner writes, readers copy out what they show.
#[derive(Debug, Default)]
pub struct History {
    store: Mutex<Store>,
}

impl History {
    pub fn new(limits: HistoryLimits) -> History {
        History { store: Mutex::new(Store { limits, devices: BTreeMap::new() }) }
    }

    /// A panic elsewhere while holding the lock leaves whole samples behind (each is pushed in one
    /// step), so what is there is still worth reading.
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// New limits (start, reload). A shorter span or a coarser resolution drops what no longer fits now.
    pub fn configure(&self, limits: HistoryLimits, now: SystemTime) {
        let mut store = self.lock();
        store.limits = limits;
        let cutoff = unix_ms(now) - limits.span.as_millis() as i64;
        for d in store.devices.values_mut() {
            d.forget_before(cutoff, &limits);
            d.samples.shrink_to(limits.max_samples());
        }
    }

    pub fn limits(&self) -> HistoryLimits {
        self.lock().limits
    }

    /// The throttle levels in force now; a change is marked, and the next samples carry the level.
    pub fn throttle_levels<'a>(&self, now: SystemTime, levels: impl IntoIterator<Item = (&'a str, usize)>) {
        let at_ms = unix_ms(now);
        let mut store = self.lock();
        for (device, level) in levels {
            let level = u8::try_from(level).unwrap_or(NO_LEVEL - 1);
            // Looked up first: this runs every decision round, and the key is allocated only once.
            let d = match store.devices.get_mut(device) {
                Some(d) => d,
                None => store.devices.entry(device.to_owned()).or_default(),
            };
            match d.throttle {
                Some(was) if was != level => d.mark(at_ms, MarkKind::Throttle, &format!("throttle {was} → {level}")),
                _ => {}
            }
            d.throttle = Some(level);
        }
    }

    /// Something that happened to a device at `now`.
    pub fn mark(&self, now: SystemTime, device: &str, kind: MarkKind, text: &str) {
        let mut store = self.lock();
        store.devices.entry(device.to_owned()).or_default().mark(unix_ms(now), kind, text);
    }

    /// A condition that became true or false (not the first evidence at start, which is no news).
    pub fn condition(&self, now: SystemTime, change: &ConditionChange) {
        let c = &change.condition;
        if c.first_evidence_ok() {
            return;
        }
        let kind = match c.status {
            Status::True => MarkKind::ConditionSet,
            Status::False | Status::Unknown => MarkKind::ConditionCleared,
        };
        let verb = match c.status {
            Status::True => "set",
            Status::False => "cleared",
            Status::Unknown => "unknown",
        };
        self.mark(now, &change.device, kind, &format!("{} {verb}: {}", c.kind.name(), c.reason));
    }

    /// One sample per device from the views of this round, unless its last one is closer than the
    /// resolution allows. Devices no longer among the views (removed by a reload) are forgotten.
    pub fn sample(&self, now: SystemTime, views: &[DeviceView]) {
        let at_ms = unix_ms(now);
        let mut store = self.lock();
        let limits = store.limits;
        let cutoff = at_ms - limits.span.as_millis() as i64;
        // A set, not a scan per device: a SpiNNaker machine has over a thousand boards.
        let ids: std::collections::BTreeSet<&str> = views.iter().map(|v| v.id.as_str()).collect();
        store.devices.retain(|id, _| ids.contains(id.as_str()));
        for v in views {
            let d = match store.devices.get_mut(&v.id) {
                Some(d) => d,
                None => store.devices.entry(v.id.clone()).or_default(),
            };
            if let Some(last) = d.samples.back() {
                // The wall clock went back: what is kept would be out of order. Start again.
                if at_ms < last.at_ms {
                    d.samples.clear();
                    d.marks.clear();
                } else if at_ms - last.at_ms < limits.min_gap_ms() {
                    continue;
                }
            }
            // Room made before the push: a full history never grows its buffer further. The buffer grows
            // as samples come (a fresh start holds little), to at most the next power of two.
            d.forget_before(cutoff, &limits);
            while d.samples.len() >= limits.max_samples() {
                d.samples.pop_front();
            }
            let mut temps = vec![ABSENT; d.sensors.len()];
            for r in &v.readings.temperature_celsius {
                let i = d.sensor(&r.sensor);
                if i >= temps.len() {
                    temps.resize(i + 1, ABSENT);
                }
                temps[i] = r.value as f32;
            }
            let power =
                (!v.readings.power_watts.is_empty()).then(|| v.readings.power_watts.iter().map(|r| r.value).sum());
            d.samples.push_back(Sample {
                at_ms,
                temps: Temps::new(temps),
                power: stored(power),
                energy_per_inference: stored(v.energy_per_inference_joules),
                utilization: stored(v.utilization_ratio),
                throttle: d.throttle.unwrap_or(NO_LEVEL),
                state: v.state,
            });
        }
    }

    /// The bytes the store holds, by its own count: every sample, mark and name, the capacity reserved
    /// for them, and the allocator's overhead per allocation.
    pub fn bytes(&self) -> usize {
        let store = self.lock();
        std::mem::size_of::<History>() + store.devices.iter().map(|(id, d)| d.bytes(id)).sum::<usize>()
    }

    /// The hottest temperature of a device in each of `points` equal slices of [from, to], None where no
    /// sample falls: a sparkline, read from the store directly (the status answers it for every device,
    /// and building whole samples for a thousand boards every few seconds would cost far more).
    pub fn recent_max(&self, device: &str, from: SystemTime, to: SystemTime, points: usize) -> Vec<Option<f64>> {
        let mut out = vec![None; points];
        let (from, to) = (unix_ms(from), unix_ms(to));
        if points == 0 || to <= from {
            return out;
        }
        let store = self.lock();
        let Some(d) = store.devices.get(device) else { return out };
        for s in d.samples.iter().filter(|s| s.at_ms >= from && s.at_ms <= to) {
            let Some(t) = s.temps.as_slice().iter().copied().filter(|t| !t.is_nan()).reduce(f32::max) else {
                continue;
            };
            let i = (((s.at_ms - from) as u128 * points as u128 / (to - from) as u128) as usize).min(points - 1);
            let t = f64::from(t);
            out[i] = Some(out[i].map_or(t, |m: f64| m.max(t)));
        }
        out
    }

    /// A device's history since `since` (all of it when None), or None for a device it has nothing of.
    pub fn device(&self, device: &str, since: Option<SystemTime>) -> Option<DeviceHistoryView> {
        let store = self.lock();
        let d = store.devices.get(device)?;
        let from = since.map_or(i64::MIN, unix_ms);
        let secs = |ms: i64| ms as f64 / 1000.0;
        let samples = d
            .samples
            .iter()
            .filter(|s| s.at_ms >= from)
            .map(|s| HistorySample {
                time_unix: secs(s.at_ms),
                temperature_celsius: d
                    .sensors
                    .iter()
                    .zip(s.temps.as_slice())
                    .filter_map(|(name, t)| Some((name.to_string(), present(*t)?)))
                    .collect(),
                power_watts: present(s.power),
                energy_per_inference_joules: present(s.energy_per_inference),
                utilization_ratio: present(s.utilization),
                throttle_level: (s.throttle != NO_LEVEL).then_some(s.throttle),
                state: s.state,
            })
            .collect();
        let marks = d
            .marks
            .iter()
            .filter(|m| m.at_ms >= from)
            .map(|m| HistoryMark { time_unix: secs(m.at_ms), kind: m.kind, text: m.text.to_string() })
            .collect();
        Some(DeviceHistoryView { sensors: d.sensors.iter().map(|s| s.to_string()).collect(), samples, marks })
    }
}

/// A device's history as the API serves it and the pages draw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceHistoryView {
    /// Every temperature sensor seen in the span, in the order first seen.
    pub sensors: Vec<String>,
    /// Oldest first.
    pub samples: Vec<HistorySample>,
    /// Oldest first.
    pub marks: Vec<HistoryMark>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySample {
    pub time_unix: f64,
    /// By sensor; a sensor not read that round is left out (absent, never 0).
    pub temperature_celsius: BTreeMap<String, f64>,
    /// Summed over the device's power sensors.
    pub power_watts: Option<f64>,
    pub energy_per_inference_joules: Option<f64>,
    pub utilization_ratio: Option<f64>,
    /// Present for devices with a throttle ladder.
    pub throttle_level: Option<u8>,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryMark {
    pub time_unix: f64,
    pub kind: MarkKind,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::view::{Reading, Readings};

    fn view(id: &str, temps: &[(&str, f64)], power: Option<f64>) -> DeviceView {
        let reading = |(sensor, value): &(&str, f64)| Reading { sensor: (*sensor).to_owned(), value: *value };
        DeviceView {
            id: id.to_owned(),
            kind: "loihi".into(),
            model: String::new(),
            driver: String::new(),
            pci_address: String::new(),
            firmware: String::new(),
            state: State::Healthy,
            up: Some(true),
            conditions: Vec::new(),
            readings: Readings {
                temperature_celsius: temps.iter().map(reading).collect(),
                power_watts: power.map(|p| vec![reading(&("power1", p))]).unwrap_or_default(),
                ..Readings::default()
            },
            sources: Vec::new(),
            discovered: false,
            discovered_name: None,
            kubernetes: None,
            diagnostics: Vec::new(),
            maintenance_reason: None,
            probes: Vec::new(),
            utilization_ratio: None,
            inferences_total: None,
            energy_per_inference_joules: None,
            log_lines: Vec::new(),
            log_matches: Vec::new(),
            maintenance: false,
            maintenance_manual: false,
            maintenance_until: None,
            maintenance_windows: Vec::new(),
            manual_throttle: None,
            circuit: None,
            needs_hardware_inspection: false,
            reconnect_attempts: Vec::new(),
            temperature_warn_celsius: 80.0,
            temperature_crit_celsius: 95.0,
        }
    }

    fn at(secs: f64) -> SystemTime {
        let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        if secs >= 0.0 { base + Duration::from_secs_f64(secs) } else { base - Duration::from_secs_f64(-secs) }
    }

    #[test]
    fn a_sensor_not_read_is_absent_and_readings_keep_their_values() {
        let h = History::new(HistoryLimits::default());
        h.throttle_levels(at(0.0), [("loihi0", 1)]);
        h.sample(at(0.0), &[view("loihi0", &[("die", 70.5), ("board", 41.0)], Some(12.5))]);
        h.sample(at(5.0), &[view("loihi0", &[("die", 86.0)], None)]);
        let d = h.device("loihi0", None).unwrap();
        assert_eq!(d.sensors, ["die", "board"]);
        assert_eq!(d.samples.len(), 2);
        assert_eq!(d.samples[0].temperature_celsius.get("board"), Some(&41.0));
        assert_eq!(d.samples[0].power_watts, Some(12.5));
        assert_eq!(d.samples[0].throttle_level, Some(1));
        assert_eq!(d.samples[1].temperature_celsius.get("die"), Some(&86.0));
        assert_eq!(d.samples[1].temperature_celsius.get("board"), None, "not read: absent, not 0");
        assert_eq!(d.samples[1].power_watts, None, "no power reading: absent, not 0");
        assert_eq!(h.recent_max("loihi0", at(-5.0), at(5.0), 4), [None, None, Some(70.5), Some(86.0)]);
        assert_eq!(h.recent_max("photon0", at(-5.0), at(5.0), 2), [None, None]);
        assert!(h.device("photon0", None).is_none());
    }

    #[test]
    fn samples_closer_than_the_resolution_make_one_and_old_ones_go() {
        let limits = HistoryLimits { span: Duration::from_secs(60), resolution: Duration::from_secs(5) };
        let h = History::new(limits);
        // Two collectors' rounds a second apart: one sample per poll.
        for t in [0.0, 1.0, 5.0, 6.0, 10.0] {
            h.sample(at(t), &[view("d", &[("t", t)], None)]);
        }
        let times: Vec<f64> = h.device("d", None).unwrap().samples.iter().map(|s| s.time_unix - 1.8e9).collect();
        assert_eq!(times, [0.0, 5.0, 10.0]);
        // Two minutes on: only the last minute is kept.
        for i in 0..=24 {
            h.sample(at(10.0 + 5.0 * f64::from(i)), &[view("d", &[("t", 1.0)], None)]);
        }
        let d = h.device("d", None).unwrap();
        let first = d.samples.first().unwrap().time_unix - 1.8e9;
        assert_eq!(first, 70.0, "older than now (130 s) - span (60 s) is gone");
        assert_eq!(d.samples.len(), 13);
        let since = h.device("d", Some(at(120.0))).unwrap();
        assert_eq!(since.samples.len(), 3, "120, 125, 130");
    }

    #[test]
    fn changes_are_marked_and_the_clock_going_back_starts_again() {
        let h = History::new(HistoryLimits::default());
        h.throttle_levels(at(0.0), [("d", 0)]);
        h.sample(at(0.0), &[view("d", &[("t", 50.0)], None)]);
        h.throttle_levels(at(3.0), [("d", 0)]);
        h.throttle_levels(at(4.0), [("d", 2)]);
        h.mark(at(4.5), "d", MarkKind::Reconnect, &"x".repeat(500));
        let d = h.device("d", None).unwrap();
        assert_eq!(d.marks.len(), 2, "{:?}", d.marks);
        assert_eq!((d.marks[0].kind, d.marks[0].text.as_str()), (MarkKind::Throttle, "throttle 0 → 2"));
        assert_eq!(d.marks[1].text.len(), MAX_MARK_TEXT);
        h.sample(at(-100.0), &[view("d", &[("t", 50.0)], None)]);
        assert_eq!(h.device("d", None).unwrap().samples.len(), 1);
    }

    /// docs/performance.md states this bound: 100 devices for 1 h at a 5 s poll, with four temperature
    /// sensors each and every mark slot full of the longest text, stay under 8 MiB by the store's count.
    #[test]
    fn a_hundred_devices_for_an_hour_at_a_5s_poll_stay_under_the_stated_bound() {
        let h = History::new(HistoryLimits::default());
        let sensors = [("die", 70.0), ("board", 40.0), ("ext0", 30.0), ("ext1", 31.0)];
        let views: Vec<DeviceView> =
            (0..100).map(|i| view(&format!("spin5-c0-f0-b{i}"), &sensors, Some(30.0))).collect();
        // Rounds every 4 s (the closest kept), for an hour and a half, with marks at every round.
        let mut t = 0.0;
        while t <= 5400.0 {
            h.throttle_levels(at(t), views.iter().map(|v| (v.id.as_str(), (t as usize / 4) % 3)));
            for v in &views {
                h.mark(at(t), &v.id, MarkKind::ConditionSet, &"é".repeat(100));
            }
            h.sample(at(t), &views);
            t += 4.0;
        }
        let d = h.device("spin5-c0-f0-b7", None).unwrap();
        assert_eq!(d.samples.len(), HistoryLimits::default().max_samples());
        assert_eq!(d.samples.len(), 901, "an hour at the 4 s minimum gap, and one");
        assert_eq!(d.marks.len(), MAX_MARKS);
        let bytes = h.bytes();
        eprintln!("history of 100 devices, 1 h at 5 s: {bytes} bytes ({:.2} MiB)", bytes as f64 / 1048576.0);
        assert!(bytes < 8 << 20, "{bytes} bytes");
        // And the count is not a fiction: at least the samples' own size.
        assert!(bytes > 100 * 901 * std::mem::size_of::<Sample>(), "{bytes} bytes");
        // A reload to a shorter span gives the memory back.
        h.configure(HistoryLimits { span: Duration::from_secs(600), ..HistoryLimits::default() }, at(t));
        assert!(h.bytes() < bytes / 2, "{} bytes after a 10 min span", h.bytes());
    }
}
