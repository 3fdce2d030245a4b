//! Follows every device's logs on one thread and turns matching lines into events and conditions.
//!
//! Reading a regular file does not hang, but it is blocking I/O; a dedicated thread keeps it off the
//! async workers. Sources are polled twice a second; a source whose file does not exist yet is waited for.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use collectors::logs::{
    FollowOptions, Follower, KmsgOptions, KmsgReader, RuleAction, RuleSet, RuleSpec, RuleTracker, Signal, StartAt,
    Threshold,
};
use config::device::{LogRuleConfig, LogSourceConfig};
use config::{Config, EventSeverity};
use tokio_util::sync::CancellationToken;

use crate::devices::DeviceEngine;
use crate::devices::engine::LogUpdate;
use crate::events::Events;
use crate::journal::{Event, Severity};
use crate::state::AgentState;

const POLL_EVERY: Duration = Duration::from_millis(500);

/// One source's round: its update for the engine and the event-rule matches to journal.
struct Polled {
    device: String,
    update: LogUpdate,
    noted: Vec<(Severity, String)>,
}

enum Reader {
    File(Follower),
    Kmsg(KmsgReader),
}

struct Source {
    device: String,
    name: String,
    filter: Option<String>,
    reader: Reader,
    rules: RuleSet,
    tracker: RuleTracker,
    lines: u64,
    /// `lines` when last published, so a poll that read lines publishes new counts.
    published: u64,
}

fn spec(r: &LogRuleConfig) -> RuleSpec {
    let condition = r.action != "event";
    RuleSpec {
        name: r.name.clone(),
        pattern: r.pattern.as_str().to_owned(),
        action: if condition { RuleAction::Condition { condition: r.action.clone() } } else { RuleAction::Event },
        severity: r.severity,
        threshold: match (condition, r.count, r.window) {
            (true, Some(count), Some(window)) => Some(Threshold { count, window: window.get() }),
            (true, Some(count), None) => Some(Threshold { count, window: Duration::from_secs(60) }),
            _ => None,
        },
        clear_pattern: r.clear_pattern.as_ref().filter(|_| condition).map(|p| p.as_str().to_owned()),
        quiet_period: r.quiet_period.filter(|_| condition).map(|p| p.get()),
        latch: condition && r.latch,
    }
}

fn open(device: &str, s: &LogSourceConfig) -> Result<Source, String> {
    let specs: Vec<RuleSpec> = s.rules.iter().map(spec).collect();
    let rules = RuleSet::new(&specs).map_err(|e| e.to_string())?;
    let reader = if s.path == "kmsg" {
        Reader::Kmsg(
            KmsgReader::open("/dev/kmsg", KmsgOptions { from_beginning: false, ..Default::default() })
                .map_err(|e| e.to_string())?,
        )
    } else {
        let start = s.lookback_bytes.map_or(StartAt::End, |bytes| StartAt::Lookback { bytes });
        let path = config::device::expand(&s.path, device);
        Reader::File(Follower::new(path, FollowOptions { start, ..Default::default() }).map_err(|e| e.to_string())?)
    };
    let tracker = RuleTracker::new(&rules);
    Ok(Source {
        device: device.to_owned(),
        name: s.path.replace("{id}", device),
        filter: s.filter.clone(),
        reader,
        rules,
        tracker,
        lines: 0,
        published: 0,
    })
}

fn severity(s: EventSeverity) -> Severity {
    match s {
        EventSeverity::Info => Severity::Info,
        EventSeverity::Warning => Severity::Warning,
        EventSeverity::Critical => Severity::Critical,
        EventSeverity::Fatal => Severity::Fatal,
    }
}

impl Source {
    /// Reads what is new and runs it through the rules.
    fn poll(&mut self, now: Instant) -> Vec<Signal> {
        let mut texts = Vec::new();
        match &mut self.reader {
            Reader::File(f) => {
                let mut lines = Vec::new();
                if let Err(e) = f.poll(&mut lines) {
                    tracing::debug!(device = %self.device, source = %self.name, "log poll: {e}");
                }
                texts.extend(lines.into_iter().map(|l| l.text));
            }
            Reader::Kmsg(k) => {
                let mut records = Vec::new();
                if let Err(e) = k.poll(&mut records) {
                    tracing::debug!(device = %self.device, "kmsg poll: {e}");
                }
                texts.extend(records.into_iter().map(|r| r.message));
            }
        }
        let mut signals = Vec::new();
        for text in texts.iter().filter(|t| self.filter.as_deref().is_none_or(|f| t.contains(f))) {
            self.lines += 1;
            signals.extend(self.tracker.on_line(&self.rules, text, now));
        }
        signals.extend(self.tracker.on_tick(now));
        signals
    }

    fn update(&self, signals: Vec<Signal>) -> LogUpdate {
        LogUpdate {
            source: self.name.clone(),
            lines: self.lines,
            matches: self.tracker.counts().map(|(r, n)| (r.to_owned(), n)).collect(),
            signals,
        }
    }
}

/// Opens every device's log sources and starts the thread that follows them. Returns without starting
/// one when no device has a log.
pub fn spawn(
    config: &Config,
    engine: &Arc<Mutex<DeviceEngine>>,
    state: &Arc<AgentState>,
    events: &Arc<Events>,
    shutdown: &CancellationToken,
) {
    let mut sources = Vec::new();
    for d in &config.devices {
        for s in d.log_sources() {
            match open(&d.id, &s) {
                Ok(src) => sources.push(src),
                Err(e) => tracing::error!(device = %d.id, source = %s.path, "log not followed: {e}"),
            }
        }
    }
    if sources.is_empty() {
        return;
    }
    {
        // Every rule's counter exists from the first scrape.
        let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
        for s in &sources {
            engine.apply_log(&s.device, s.update(Vec::new()), Instant::now(), SystemTime::now());
        }
        state.publish_devices(engine.views(), events.counts());
    }
    let (engine, state, events, shutdown) =
        (Arc::clone(engine), Arc::clone(state), Arc::clone(events), shutdown.clone());
    let spawned = std::thread::Builder::new().name("logwatch".into()).spawn(move || {
        while !shutdown.is_cancelled() {
            let now = Instant::now();
            let mut changed = false;
            let updates: Vec<Polled> = sources
                .iter_mut()
                .map(|s| {
                    let signals = s.poll(now);
                    let noted: Vec<(Severity, String)> = signals
                        .iter()
                        .filter_map(|sig| match sig {
                            Signal::Event { rule } => {
                                let i = s.rules.index_of(rule)?;
                                Some((severity(s.rules.severity(i)?), format!("log rule {rule} matched in {}", s.name)))
                            }
                            _ => None,
                        })
                        .collect();
                    changed |= s.lines != s.published;
                    s.published = s.lines;
                    Polled { device: s.device.clone(), update: s.update(signals), noted }
                })
                .collect();
            let wall = SystemTime::now();
            let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
            for Polled { device, update, noted } in updates {
                for (sev, msg) in noted {
                    events.record(Event::new(wall, sev, "log_match", msg).on_device(&device));
                }
                changed |= !update.signals.is_empty();
                for change in engine.apply_log(&device, update, Instant::now(), wall) {
                    events.condition_changed(&change, wall);
                }
            }
            if changed {
                state.publish_devices(engine.views(), events.counts());
            }
            drop(engine);
            std::thread::sleep(POLL_EVERY);
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the log thread: {e}");
    }
}
