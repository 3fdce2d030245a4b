//! Follows every device's logs on one thread and turns matching lines into events and conditions.
//!
//! Reading a regular file does not hang, but it is blocking I/O; a dedicated thread keeps it off the
//! async workers. Sources are polled twice a second; a source whose file does not exist yet is waited for.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use collectors::logs::{
    FollowOptions, Follower, KmsgOptions, KmsgReader, LogError, RuleAction, RuleSet, RuleSpec, RuleTracker, Signal,
    StartAt, Threshold,
};
use config::device::{LogRuleConfig, LogSourceConfig};
use config::{Config, EventSeverity};
use tokio_util::sync::CancellationToken;

use crate::model::engine::LogUpdate;
use crate::model::evidence::{Evidence, EvidenceTx, LogNote, LogNoteKind};

const POLL_EVERY: Duration = Duration::from_millis(500);
/// Log-rule match events per rule: the first match at once, then at most one event per this window
/// with the count of the matches in it. A flood of matching lines must not flush the journal.
const BURST: Duration = Duration::from_secs(10);
/// Matched lines kept for `agentctl bundle`, newest last.
const RECENT_LINES: usize = 200;
/// Longer matched lines are cut here: a bundle is evidence, not a log archive.
const MAX_LINE: usize = 1024;

/// A log line that matched a rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatchedLine {
    #[serde(with = "crate::model::unix_time::unix")]
    pub at: SystemTime,
    pub device: String,
    pub source: String,
    pub line: String,
}

enum Command {
    /// The operator's `set-healthy`: forget the device's latched rules.
    ClearLatched { device: String },
}

/// The sources a log thread followed, handed back when it stops so a reload keeps their read positions,
/// line counts and rule state, and the recent matched lines (evidence a reload must not forget).
#[derive(Default)]
pub struct LogSources {
    sources: Vec<Source>,
    recent: Recent,
}

type Recent = Arc<Mutex<VecDeque<MatchedLine>>>;

/// The running log thread; joining it returns its sources.
pub struct LogThread(std::thread::JoinHandle<Vec<Source>>);

impl LogThread {
    /// Waits for the thread to notice its cancellation (at most one poll interval); `handle` is the
    /// thread's handle, whose recent lines go on.
    pub fn join(self, handle: &LogHandle) -> LogSources {
        LogSources { sources: self.0.join().unwrap_or_default(), recent: Arc::clone(&handle.recent) }
    }
}

impl LogHandle {
    /// The sources of a generation that had no log thread: nothing followed, the recent lines go on.
    pub fn into_sources(self) -> LogSources {
        LogSources { sources: Vec::new(), recent: self.recent }
    }
}

/// Takes over a source from before a reload: as it was if its config is unchanged; with the new rules
/// (and the same reader, position and counts) if only the rules changed.
fn carry_over(previous: &mut Vec<Source>, device: &str, s: &LogSourceConfig) -> Option<(Source, Vec<Signal>)> {
    let i = previous.iter().position(|p| p.device == device && p.config.path == s.path)?;
    let mut src = previous.swap_remove(i);
    if src.config == *s {
        return Some((src, Vec::new()));
    }
    let specs: Vec<RuleSpec> = s.rules.iter().map(spec).collect();
    let rules = RuleSet::new(&specs).ok()?;
    let signals = src.tracker.adopt(&rules);
    src.rules = rules;
    src.filter = s.filter.clone();
    src.config = s.clone();
    Some((src, signals))
}

/// The control side of the log thread.
#[derive(Clone, Default)]
pub struct LogHandle {
    commands: Option<Sender<Command>>,
    recent: Recent,
}

impl LogHandle {
    /// Clears the device's latched log rules at the thread's next poll.
    pub fn clear_latched(&self, device: &str) {
        if let Some(tx) = &self.commands {
            let _ = tx.send(Command::ClearLatched { device: device.to_owned() });
        }
    }

    /// The most recent matched lines, oldest first.
    pub fn recent(&self) -> Vec<MatchedLine> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

/// One source's round: its update for the engine and the event-rule matches to journal.
struct Polled {
    device: String,
    update: Option<LogUpdate>,
    noted: Vec<LogNote>,
}

/// The match events of one rule: when the last one was recorded and the matches since.
#[derive(Debug, Default)]
struct Burst {
    last_event: Option<Instant>,
    pending: u64,
}

impl Burst {
    /// A match: Some(count) if it is recorded now (1 for the first of a burst).
    fn on_match(&mut self, now: Instant) -> Option<u64> {
        match self.last_event {
            Some(at) if now.duration_since(at) < BURST => {
                self.pending += 1;
                None
            }
            _ => {
                self.last_event = Some(now);
                self.pending = 0;
                Some(1)
            }
        }
    }

    /// The matches held back, once the window since the last event is over.
    fn flush(&mut self, now: Instant) -> Option<u64> {
        let at = self.last_event?;
        if self.pending == 0 || now.duration_since(at) < BURST {
            return None;
        }
        self.last_event = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

enum Reader {
    File(Follower),
    Kmsg(KmsgReader),
}

struct Source {
    device: String,
    /// As configured, so a reload can tell an unchanged source from a changed one.
    config: LogSourceConfig,
    name: String,
    filter: Option<String>,
    reader: Reader,
    rules: RuleSet,
    tracker: RuleTracker,
    lines: u64,
    /// `lines` when last published, so a poll that read lines publishes new counts.
    published: u64,
    /// Why the source cannot be read now (reported once, when it starts and when it ends).
    problem: Option<String>,
    /// Match events per rule name.
    bursts: std::collections::HashMap<String, Burst>,
    /// Events for the journal gathered by the last poll.
    notes: Vec<LogNote>,
}

fn spec(r: &LogRuleConfig) -> RuleSpec {
    let condition = r.action.condition();
    RuleSpec {
        name: r.name.clone(),
        pattern: r.pattern.as_str().to_owned(),
        action: match condition {
            Some(condition) => RuleAction::Condition { condition: condition.to_owned() },
            None => RuleAction::Event,
        },
        severity: r.severity,
        threshold: match (condition.is_some(), r.count, r.window) {
            (true, Some(count), Some(window)) => Some(Threshold { count, window: window.get() }),
            (true, Some(count), None) => Some(Threshold { count, window: Duration::from_secs(60) }),
            _ => None,
        },
        clear_pattern: r.clear_pattern.as_ref().filter(|_| condition.is_some()).map(|p| p.as_str().to_owned()),
        quiet_period: r.quiet_period.filter(|_| condition.is_some()).map(|p| p.get()),
        latch: condition.is_some() && r.latch,
    }
}

/// Why a configured log source is not followed (the caller names the device and the source).
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Rules(#[from] collectors::logs::RuleError),
    #[error(transparent)]
    Reader(#[from] collectors::logs::LogError),
}

fn open(device: &str, s: &LogSourceConfig) -> Result<Source, OpenError> {
    let specs: Vec<RuleSpec> = s.rules.iter().map(spec).collect();
    let rules = RuleSet::new(&specs)?;
    let reader = if s.path == "kmsg" {
        Reader::Kmsg(KmsgReader::open("/dev/kmsg", KmsgOptions { from_beginning: false, ..Default::default() })?)
    } else {
        let start = s.lookback_bytes.map_or(StartAt::End, |bytes| StartAt::Lookback { bytes });
        let path = config::device::expand(&s.path, device);
        Reader::File(Follower::new(path, FollowOptions { start, ..Default::default() })?)
    };
    let tracker = RuleTracker::new(&rules);
    Ok(Source {
        device: device.to_owned(),
        config: s.clone(),
        name: s.path.replace("{id}", device),
        filter: s.filter.clone(),
        reader,
        rules,
        tracker,
        lines: 0,
        published: 0,
        problem: None,
        bursts: Default::default(),
        notes: Vec::new(),
    })
}

fn source_note(source: &str, severity: EventSeverity, message: String) -> LogNote {
    LogNote { source: source.to_owned(), severity, about: LogNoteKind::Source, message }
}

fn match_note(source: &str, severity: EventSeverity, message: String) -> LogNote {
    LogNote { source: source.to_owned(), severity, about: LogNoteKind::Match, message }
}

impl Source {
    /// Reads what is new and runs it through the rules; lines that matched go to `recent`.
    fn poll(&mut self, now: Instant, recent: &Mutex<VecDeque<MatchedLine>>) -> Vec<Signal> {
        let mut texts = Vec::new();
        match &mut self.reader {
            Reader::File(f) => {
                let mut lines = Vec::new();
                match f.poll(&mut lines) {
                    // Not a file to read any more: said once, as a warning event, until a file is back.
                    Err(e @ (LogError::Symlink { .. } | LogError::NotAFile { .. })) => {
                        let message = format!("log source {} is not read: {e}", self.name);
                        if self.problem.as_deref() != Some(message.as_str()) {
                            tracing::warn!(device = %self.device, "{message}");
                            self.notes.push(source_note(&self.name, EventSeverity::Warning, message.clone()));
                            self.problem = Some(message);
                        }
                    }
                    Err(e) => tracing::debug!(device = %self.device, source = %self.name, "log poll: {e}"),
                    Ok(_) if f.is_open() && self.problem.take().is_some() => {
                        let message = format!("log source {} is a regular file again and is read", self.name);
                        tracing::info!(device = %self.device, "{message}");
                        self.notes.push(source_note(&self.name, EventSeverity::Info, message));
                    }
                    Ok(_) => {}
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
        let mut matched = Vec::new();
        let total = |t: &RuleTracker| t.counts().map(|(_, n)| n).sum::<u64>();
        for text in texts.iter().filter(|t| self.filter.as_deref().is_none_or(|f| t.contains(f))) {
            self.lines += 1;
            let before = total(&self.tracker);
            signals.extend(self.tracker.on_line(&self.rules, text, now));
            if total(&self.tracker) != before {
                matched.push(text);
            }
        }
        if !matched.is_empty() {
            let mut recent = recent.lock().unwrap_or_else(PoisonError::into_inner);
            for text in matched {
                if recent.len() == RECENT_LINES {
                    recent.pop_front();
                }
                let mut cut = text.len().min(MAX_LINE);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                recent.push_back(MatchedLine {
                    at: SystemTime::now(),
                    device: self.device.clone(),
                    source: self.name.clone(),
                    line: text[..cut].to_owned(),
                });
            }
        }
        signals.extend(self.tracker.on_tick(now));
        signals
    }

    /// Clears every latched rule of this source; the signals say which conditions cleared.
    fn clear_latched(&mut self) -> Vec<Signal> {
        let names: Vec<String> = (0..self.rules.len()).filter_map(|i| self.rules.name(i).map(str::to_owned)).collect();
        names.iter().filter_map(|rule| self.tracker.clear_latched(rule)).collect()
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

/// Opens every device's log sources (taking over those of `previous` that are still configured) and
/// starts the thread that follows them. Starts none when no device has a log.
pub fn spawn(
    config: &Config,
    previous: LogSources,
    evidence: &EvidenceTx,
    shutdown: &CancellationToken,
) -> (LogHandle, Option<LogThread>) {
    let LogSources { sources: mut previous, recent } = previous;
    let mut sources = Vec::new();
    let mut adopted = Vec::new();
    for d in &config.devices {
        for s in d.log_sources() {
            if let Some((src, signals)) = carry_over(&mut previous, &d.id, &s) {
                adopted.push((sources.len(), signals));
                sources.push(src);
                continue;
            }
            match open(&d.id, &s) {
                Ok(src) => sources.push(src),
                Err(e) => tracing::error!(device = %d.id, source = %s.path, "log not followed: {e}"),
            }
        }
    }
    if sources.is_empty() {
        return (LogHandle { commands: None, recent }, None);
    }
    let (tx, commands) = channel();
    let handle = LogHandle { commands: Some(tx), recent: Arc::clone(&recent) };
    // Every rule's counter exists from the first scrape.
    for (i, s) in sources.iter().enumerate() {
        let signals = adopted.iter_mut().find(|(j, _)| *j == i).map(|(_, sig)| std::mem::take(sig));
        let update = Some(s.update(signals.unwrap_or_default()));
        evidence.send(Evidence::Log { device: s.device.clone(), update, notes: Vec::new() });
    }
    let (evidence, shutdown) = (evidence.clone(), shutdown.clone());
    let spawned = std::thread::Builder::new().name("logwatch".into()).spawn(move || {
        while !shutdown.is_cancelled() {
            let now = Instant::now();
            let cleared = take_clears(&commands);
            let updates: Vec<Polled> = sources
                .iter_mut()
                .map(|s| {
                    // Clear before reading: a line written after the operator's reset must count again.
                    let mut signals = if cleared.contains(&s.device) { s.clear_latched() } else { Vec::new() };
                    signals.extend(s.poll(now, &recent));
                    let mut noted = std::mem::take(&mut s.notes);
                    for sig in &signals {
                        let Signal::Event { rule } = sig else { continue };
                        let Some(sev) = s.rules.index_of(rule).and_then(|i| s.rules.severity(i)) else {
                            continue;
                        };
                        if s.bursts.entry(rule.to_string()).or_default().on_match(now).is_some() {
                            noted.push(match_note(&s.name, sev, format!("log rule {rule} matched in {}", s.name)));
                        }
                    }
                    for (rule, burst) in &mut s.bursts {
                        if let Some(n) = burst.flush(now) {
                            let sev = s
                                .rules
                                .index_of(rule)
                                .and_then(|i| s.rules.severity(i))
                                .unwrap_or(EventSeverity::Warning);
                            noted.push(match_note(
                                &s.name,
                                sev,
                                format!(
                                    "log rule {rule} matched {n} more time(s) in {} within {}s",
                                    s.name,
                                    BURST.as_secs()
                                ),
                            ));
                        }
                    }
                    let changed = s.lines != s.published || !signals.is_empty();
                    s.published = s.lines;
                    Polled { device: s.device.clone(), update: changed.then(|| s.update(signals)), noted }
                })
                .collect();
            for Polled { device, update, noted } in updates {
                // Only news goes to the model: a quiet log is not evidence of anything.
                if update.is_some() || !noted.is_empty() {
                    evidence.send(Evidence::Log { device, update, notes: noted });
                }
            }
            std::thread::sleep(POLL_EVERY);
        }
        sources
    });
    match spawned {
        Ok(thread) => (handle, Some(LogThread(thread))),
        Err(e) => {
            tracing::error!("cannot start the log thread: {e}");
            (handle, None)
        }
    }
}

/// The devices whose latched rules an operator cleared since the last poll.
fn take_clears(commands: &Receiver<Command>) -> Vec<String> {
    commands.try_iter().map(|Command::ClearLatched { device }| device).collect()
}

#[cfg(test)]
mod burst_tests {
    use super::*;

    #[test]
    fn a_burst_is_one_event_then_one_with_the_count_per_window() {
        let t0 = Instant::now();
        let mut b = Burst::default();
        assert_eq!(b.on_match(t0), Some(1), "the first match is recorded at once");
        for i in 1..=1000 {
            assert_eq!(b.on_match(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(b.flush(t0 + Duration::from_secs(5)), None, "the window is not over");
        assert_eq!(b.flush(t0 + BURST), Some(1000));
        assert_eq!(b.flush(t0 + BURST * 3), None, "nothing pending");
        assert_eq!(b.on_match(t0 + BURST * 3), Some(1), "a quiet window later, a new burst");
    }
}
