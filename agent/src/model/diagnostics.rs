//! Diagnostics as the model sees them: which are queued, which run, each one's last result, and when one
//! is due. Pure: the time is passed in, and what to start comes back as decisions for the runner (in the
//! effects), whose reports come back as evidence.
//!
//! A queued diagnostic starts when nothing else runs on its device and fewer than `concurrency` run on
//! the host; a diagnostic that `requires_idle` is refused, with the reason, while a pod holds the device
//! or a throttle or reconnect is in progress (a diagnostic colliding with a busy device reports a false
//! fatal).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use config::diagnostics::{DiagnosticConfig, FieldLimit};
use config::{Config, DeviceConfig};
use serde::{Deserialize, Serialize};

use super::conditions::Verdict;
use super::health::{Impact, Status};
use super::unix_time::opt_unix;

/// Operator runs remembered for polling (`agentctl diagnose --level N` asks for its run's state).
const RUNS_KEPT: usize = 64;
/// Lines of a failed tool's output kept in its result and event.
pub const OUTPUT_LINES: usize = 10;

/// What started a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Trigger {
    /// `agentctl diagnose --level N`.
    Operator,
    /// A condition set (`on = [...]`). A name rather than ConditionKind: the config's `on` names it.
    Condition { condition: Cow<'static, str> },
    /// An occurrence of a maintenance window (`windows = [...]`).
    Window { window: String },
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Operator => f.write_str("on demand"),
            Trigger::Condition { condition } => write!(f, "on {condition}"),
            Trigger::Window { window } => write!(f, "in maintenance window {window}"),
        }
    }
}

/// How a diagnostic ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// `expectation` says which (exit status, a value out of its limits, the timeout); `output` holds the
    /// tool's last lines, redacted.
    Failed {
        expectation: String,
        output: String,
    },
    /// Not started: the device was busy, or diagnostics are off.
    Refused {
        reason: String,
    },
    /// Not started for the agent's own trouble (out of descriptors, memory, processes): says nothing
    /// about the device.
    NotRun {
        reason: String,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed { .. } => "failed",
            Outcome::Refused { .. } => "refused",
            Outcome::NotRun { .. } => "not_run",
        }
    }

    /// A verdict on the device (passed or failed), as opposed to no run at all.
    pub fn judged(&self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Failed { .. })
    }
}

/// What the runner reports once a diagnostic (and its remedy and second try, if any) is over.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub device: String,
    pub name: String,
    pub outcome: Outcome,
    /// From the start of the first try to the end of the last.
    pub duration: Duration,
    /// The first try failed, the remedy ran: what the first try failed on and how the remedy went.
    pub remedy: Option<RemedyReport>,
    /// The tool could not be started for the agent's own trouble.
    pub fault: Option<collectors::fault::AgentFault>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemedyReport {
    /// What the first try failed on.
    pub first_failure: String,
    /// The remedy exited 0.
    pub ok: bool,
    pub message: String,
}

/// A diagnostic to start now, with everything the runner needs (placeholders already replaced).
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub device: String,
    pub name: String,
    pub level: u8,
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub exit_codes: Vec<i32>,
    pub expect: Vec<FieldLimit>,
    pub remedy: Option<Vec<String>>,
    pub exclusive: bool,
    pub trigger: Trigger,
}

/// A decision about a queued diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Start(Start),
    /// Refused now (requires_idle on a busy device); the result is recorded already.
    Refused {
        device: String,
        name: String,
        level: u8,
        reason: String,
    },
}

/// A finished diagnostic, as the device keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub trigger: Trigger,
    #[serde(with = "opt_unix")]
    pub finished: Option<SystemTime>,
    pub duration_seconds: f64,
    /// The remedy ran after a first failure (the outcome is the second try's).
    pub remedied: bool,
    #[serde(skip)]
    seq: u64,
}

impl Record {
    /// A result as the agent would have kept it, for tests of what is shown of one.
    #[cfg(test)]
    pub fn for_test(outcome: Outcome, trigger: Trigger, finished: SystemTime, seconds: f64, remedied: bool) -> Record {
        Record { outcome, trigger, finished: Some(finished), duration_seconds: seconds, remedied, seq: 0 }
    }
}

/// Where a diagnostic stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Idle,
    Queued,
    Running,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Queued => "queued",
            Phase::Running => "running",
        }
    }
}

/// One diagnostic of a device, as the API, agentctl, the device page and the bundle show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticView {
    pub name: String,
    pub level: u8,
    pub exclusive: bool,
    pub phase: Phase,
    /// Since when it runs (while running).
    #[serde(with = "opt_unix")]
    pub running_since: Option<SystemTime>,
    pub timeout_seconds: f64,
    pub last: Option<Record>,
    /// The last verdict (passed or failed), which the metrics and DiagnosticFailed follow.
    pub last_verdict: Option<Record>,
}

#[derive(Debug, Clone)]
struct Running {
    since: SystemTime,
    trigger: Trigger,
}

/// One diagnostic of one device.
#[derive(Debug, Clone)]
struct Entry {
    config: DiagnosticConfig,
    /// Queued with this order number and trigger.
    queued: Option<(u64, Trigger)>,
    running: Option<Running>,
    last: Option<Record>,
    last_verdict: Option<Record>,
    /// An operator's set-healthy since the last failure: it no longer sets DiagnosticFailed.
    acknowledged: bool,
    /// When a condition last triggered it, for the cooldown.
    triggered_at: Option<Instant>,
    /// The window occurrences (name, start) it already ran in.
    window_runs: Vec<(String, SystemTime)>,
}

/// A device's diagnostics, kept with what the model learnt about the device (a reload carries them).
#[derive(Debug, Clone, Default)]
pub struct DeviceDiagnostics {
    entries: Vec<Entry>,
}

impl DeviceDiagnostics {
    pub fn new(config: &DeviceConfig) -> DeviceDiagnostics {
        let entries = config.diagnostics.iter().map(|c| Entry::new(c.clone())).collect();
        DeviceDiagnostics { entries }
    }

    /// What was known under the old config, for the diagnostics the new one (`fresh`) still declares.
    pub fn carried_to(self, fresh: &DeviceDiagnostics) -> DeviceDiagnostics {
        let mut old = self.entries;
        let entries = fresh
            .entries
            .iter()
            .map(|f| match old.iter().position(|o| o.config.name == f.config.name) {
                Some(i) => Entry { config: f.config.clone(), ..old.swap_remove(i) },
                None => f.clone(),
            })
            .collect();
        DeviceDiagnostics { entries }
    }

    /// Whether the device declares DiagnosticFailed: it has a diagnostic of level 2 or deeper.
    pub fn declares_condition(config: &DeviceConfig) -> bool {
        config.diagnostics.iter().any(|d| d.level >= 2)
    }

    /// The exclusive diagnostic running now, if any: the device is in maintenance for it.
    pub fn exclusive_running(&self) -> Option<&str> {
        self.entries.iter().find(|e| e.running.is_some() && e.config.exclusive).map(|e| e.config.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn running(&self) -> bool {
        self.entries.iter().any(|e| e.running.is_some())
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.config.name == name)
    }

    /// DiagnosticFailed: set while the last verdict of a level-2 or level-3 diagnostic is a failure no
    /// operator has acknowledged (the deepest failing one gives the reason; a failed level 3 makes the
    /// device unhealthy, a failed level 2 degraded); cleared by its next pass or by set-healthy. None
    /// until one of them has a verdict.
    pub fn verdict(&self) -> Option<Verdict> {
        let judged = self.entries.iter().filter(|e| e.config.level >= 2 && e.last_verdict.is_some());
        let mut any = false;
        let mut worst: Option<(&Entry, &str, &str)> = None;
        for e in judged {
            any = true;
            if let Some(Record { outcome: Outcome::Failed { expectation, output }, .. }) = &e.last_verdict
                && !e.acknowledged
                && worst.is_none_or(|(w, _, _)| w.config.level < e.config.level)
            {
                worst = Some((e, expectation, output));
            }
        }
        match worst {
            Some((e, expectation, output)) => Some(Verdict {
                status: Status::True,
                impact: if e.config.level >= 3 { Impact::Unhealthy } else { Impact::Degraded },
                reason: format!("{}: {expectation}", e.config.name).into(),
                message: format!(
                    "diagnostic {} (level {}) failed: {expectation}; {}",
                    e.config.name,
                    e.config.level,
                    last_line(output)
                ),
            }),
            None if any => Some(Verdict {
                status: Status::False,
                impact: Impact::Degraded,
                reason: "DiagnosticsPassed".into(),
                message: "the last run of every level 2 and 3 diagnostic passed or was acknowledged".into(),
            }),
            None => None,
        }
    }

    /// set-healthy: the failures shown so far are acknowledged. Returns the names acknowledged.
    pub fn acknowledge(&mut self) -> Vec<String> {
        let failed = self.entries.iter_mut().filter(|e| {
            !e.acknowledged
                && e.config.level >= 2
                && matches!(e.last_verdict, Some(Record { outcome: Outcome::Failed { .. }, .. }))
        });
        failed
            .map(|e| {
                e.acknowledged = true;
                format!("DiagnosticFailed (diagnostic {})", e.config.name)
            })
            .collect()
    }

    pub fn views(&self) -> Vec<DiagnosticView> {
        self.entries
            .iter()
            .map(|e| DiagnosticView {
                name: e.config.name.clone(),
                level: e.config.level,
                exclusive: e.config.exclusive,
                phase: e.phase(),
                running_since: e.running.as_ref().map(|r| r.since),
                timeout_seconds: e.config.timeout.get().as_secs_f64(),
                last: e.last.clone(),
                last_verdict: e.last_verdict.clone(),
            })
            .collect()
    }
}

impl Entry {
    fn new(config: DiagnosticConfig) -> Entry {
        Entry {
            config,
            queued: None,
            running: None,
            last: None,
            last_verdict: None,
            acknowledged: false,
            triggered_at: None,
            window_runs: Vec::new(),
        }
    }

    fn phase(&self) -> Phase {
        match (&self.running, &self.queued) {
            (Some(_), _) => Phase::Running,
            (None, Some(_)) => Phase::Queued,
            (None, None) => Phase::Idle,
        }
    }

    fn busy(&self) -> bool {
        self.queued.is_some() || self.running.is_some()
    }

    fn record(
        &mut self,
        outcome: Outcome,
        trigger: Trigger,
        duration: Duration,
        remedied: bool,
        wall: SystemTime,
        seq: u64,
    ) {
        let record =
            Record { outcome, trigger, finished: Some(wall), duration_seconds: duration.as_secs_f64(), remedied, seq };
        if record.outcome.judged() {
            self.acknowledged = false;
            self.last_verdict = Some(record.clone());
        }
        self.last = Some(record);
    }
}

/// The last non-empty line of a tool's output, for one-line messages.
fn last_line(output: &str) -> &str {
    output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output")
}

/// Why a request for diagnostics cannot be met.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Device(#[from] super::operator::OperatorError),
    #[error(
        "diagnostics are off on this host: set [diagnostics] enabled = true and reload (they run commands that may disturb a device)"
    )]
    Disabled,
    #[error("level {0} is not 1 (quick), 2 (medium) or 3 (deep); level 0 is the passive checks")]
    Level(u8),
    #[error("no diagnostic of level {level} or below is configured{}", device.as_deref().map(|d| format!(" for device {d}")).unwrap_or_default())]
    NoneConfigured { level: u8, device: Option<String> },
}

/// One diagnostic of an operator's run.
#[derive(Debug, Clone, PartialEq)]
struct RunItem {
    device: String,
    name: String,
    /// Results recorded after this number answer the run.
    after: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Run {
    id: u64,
    level: u8,
    items: Vec<RunItem>,
}

/// One diagnostic of a run, as `agentctl diagnose --level N` polls it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunItemView {
    pub device: String,
    pub name: String,
    pub level: u8,
    pub phase: Phase,
    #[serde(with = "opt_unix")]
    pub running_since: Option<SystemTime>,
    pub timeout_seconds: f64,
    /// The result, once this run's diagnostic is over.
    pub result: Option<Record>,
}

/// An operator's run: done when every item has its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub id: u64,
    pub level: u8,
    pub done: bool,
    pub items: Vec<RunItemView>,
}

/// The host-wide part: whether diagnostics may run, how many at once, and the operator runs.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    enabled: bool,
    concurrency: usize,
    /// Orders the queue and tells a run's results from older ones.
    seq: u64,
    runs: VecDeque<Run>,
    next_run: u64,
}

impl Diagnostics {
    pub fn new(config: &Config) -> Diagnostics {
        let mut d = Diagnostics::default();
        d.configure(config);
        d
    }

    pub fn configure(&mut self, config: &Config) {
        self.enabled = config.diagnostics.enabled;
        self.concurrency = config.diagnostics.concurrency.max(1);
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Queues the diagnostics of level `level` and below of the devices given (id, diagnostics) for an
    /// operator; one already queued or running is not queued twice (its result answers the run too).
    /// Returns the run's id.
    pub fn request<'a>(
        &mut self,
        level: u8,
        device: Option<&str>,
        devices: impl Iterator<Item = (&'a str, &'a mut DeviceDiagnostics)>,
    ) -> Result<u64, RequestError> {
        if !self.enabled {
            return Err(RequestError::Disabled);
        }
        if !(1..=config::diagnostics::MAX_LEVEL).contains(&level) {
            return Err(RequestError::Level(level));
        }
        let after = self.seq;
        let mut items = Vec::new();
        for (id, diags) in devices {
            for e in diags.entries.iter_mut().filter(|e| e.config.level <= level) {
                if !e.busy() {
                    self.seq += 1;
                    e.queued = Some((self.seq, Trigger::Operator));
                }
                items.push(RunItem { device: id.to_owned(), name: e.config.name.clone(), after });
            }
        }
        if items.is_empty() {
            return Err(RequestError::NoneConfigured { level, device: device.map(str::to_owned) });
        }
        self.next_run += 1;
        let id = self.next_run;
        self.runs.push_back(Run { id, level, items });
        while self.runs.len() > RUNS_KEPT {
            self.runs.pop_front();
        }
        Ok(id)
    }

    /// Queues the diagnostics of a device that run when `condition` sets, unless one ran on it within its
    /// cooldown (counted from `now`) or it is queued or running already. Returns the names queued.
    pub fn on_condition(
        &mut self,
        diags: &mut DeviceDiagnostics,
        condition: &'static str,
        now: Instant,
    ) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let mut queued = Vec::new();
        for e in &mut diags.entries {
            let wanted = e.config.on.iter().any(|c| c.name() == condition);
            let cooled = e.triggered_at.is_none_or(|t| now.saturating_duration_since(t) >= e.config.cooldown.get());
            if wanted && cooled && !e.busy() {
                self.seq += 1;
                e.queued = Some((self.seq, Trigger::Condition { condition: condition.into() }));
                e.triggered_at = Some(now);
                queued.push(e.config.name.clone());
            }
        }
        queued
    }

    /// Queues the diagnostics of a device that run in the window `name` which opened at `started`, once
    /// per occurrence. Returns the names queued.
    pub fn in_window(&mut self, diags: &mut DeviceDiagnostics, name: &str, started: SystemTime) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let mut queued = Vec::new();
        for e in &mut diags.entries {
            let wanted = e.config.windows.iter().any(|w| w == name);
            let done = e.window_runs.iter().any(|(w, s)| w == name && *s == started);
            if wanted && !done && !e.busy() {
                self.seq += 1;
                e.queued = Some((self.seq, Trigger::Window { window: name.to_owned() }));
                e.window_runs.retain(|(w, _)| w != name);
                e.window_runs.push((name.to_owned(), started));
                queued.push(e.config.name.clone());
            }
        }
        queued
    }

    /// What to start (or refuse) now, oldest request first: a device runs one diagnostic at a time and
    /// the host at most `concurrency`. `busy` says why a device is not idle (a pod holds it, a throttle
    /// or reconnect is in progress), for diagnostics that require it to be.
    pub fn decide<'a>(
        &mut self,
        devices: impl Iterator<Item = (&'a DeviceConfig, &'a mut DeviceDiagnostics, Option<String>)>,
        wall: SystemTime,
    ) -> Vec<Decision> {
        let mut devices: Vec<_> = devices.collect();
        let mut running = devices.iter().filter(|(_, d, _)| d.running()).count();
        let mut out = Vec::new();
        loop {
            // The oldest queued diagnostic of a device that runs nothing.
            let next = devices
                .iter()
                .enumerate()
                .filter(|(_, (_, d, _))| !d.running())
                .flat_map(|(i, (_, d, _))| {
                    d.entries.iter().enumerate().filter_map(move |(j, e)| e.queued.as_ref().map(|(n, _)| (*n, i, j)))
                })
                .min();
            let Some((_, i, j)) = next else { break };
            let (config, diags, busy) = &mut devices[i];
            // A reload may have turned diagnostics off with some still queued: they end, refused.
            let refused = match self.enabled {
                false => Some("diagnostics were turned off ([diagnostics] enabled = false)".to_owned()),
                true => diags.entries[j].config.requires_idle.then(|| busy.clone()).flatten(),
            };
            if refused.is_none() && running >= self.concurrency {
                break;
            }
            let seq = self.next_seq();
            let e = &mut diags.entries[j];
            let Some((_, trigger)) = e.queued.take() else { break };
            if let Some(reason) = refused {
                let reason = format!("refused: {reason}");
                e.record(Outcome::Refused { reason: reason.clone() }, trigger, Duration::ZERO, false, wall, seq);
                out.push(Decision::Refused {
                    device: config.id.clone(),
                    name: e.config.name.clone(),
                    level: e.config.level,
                    reason,
                });
                continue;
            }
            running += 1;
            e.running = Some(Running { since: wall, trigger: trigger.clone() });
            out.push(Decision::Start(start(config, &e.config, trigger)));
        }
        out
    }

    /// Records what the runner reported. Returns whether the device knew the diagnostic as running.
    pub fn finished(&mut self, diags: &mut DeviceDiagnostics, report: &Report, wall: SystemTime) -> bool {
        let seq = self.next_seq();
        let Some(e) = diags.entry_mut(&report.name) else { return false };
        let Some(running) = e.running.take() else { return false };
        e.record(report.outcome.clone(), running.trigger, report.duration, report.remedy.is_some(), wall, seq);
        true
    }

    /// The state of an operator's run (None: unknown, or too old to be kept).
    pub fn run<'a>(&self, id: u64, mut device: impl FnMut(&str) -> Option<&'a DeviceDiagnostics>) -> Option<RunView> {
        let run = self.runs.iter().find(|r| r.id == id)?;
        let items: Vec<RunItemView> = run
            .items
            .iter()
            .filter_map(|item| {
                let e = device(&item.device)?.entries.iter().find(|e| e.config.name == item.name)?;
                Some(RunItemView {
                    device: item.device.clone(),
                    name: item.name.clone(),
                    level: e.config.level,
                    phase: e.phase(),
                    running_since: e.running.as_ref().map(|r| r.since),
                    timeout_seconds: e.config.timeout.get().as_secs_f64(),
                    result: e.last.clone().filter(|r| r.seq > item.after),
                })
            })
            .collect();
        let done = items.iter().all(|i| i.result.is_some());
        Some(RunView { id: run.id, level: run.level, done, items })
    }
}

/// The start of one diagnostic of `device`, its placeholders replaced.
fn start(device: &DeviceConfig, c: &DiagnosticConfig, trigger: Trigger) -> Start {
    let expand = |argv: &[String]| argv.iter().map(|a| device.expand_placeholders(a)).collect::<Vec<_>>();
    Start {
        device: device.id.clone(),
        name: c.name.clone(),
        level: c.level,
        argv: expand(&c.argv),
        timeout: c.timeout.get(),
        exit_codes: c.exit_codes.clone(),
        expect: c.expect.clone(),
        remedy: c.remedy.as_deref().map(expand),
        exclusive: c.exclusive,
        trigger,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(diagnostics: &str, concurrency: usize) -> Config {
        let text = format!(
            "[diagnostics]\nenabled = true\nconcurrency = {concurrency}\n\
             [[maintenance.window]]\nname = \"sunday\"\ndays = [\"sun\"]\nstart = \"02:00\"\n\
             duration = \"2h\"\ntimezone = \"UTC\"\n\
             [[device]]\nid = \"a\"\nkind = \"generic\"\n{diagnostics}\
             [[device]]\nid = \"b\"\nkind = \"generic\"\n{diagnostics}"
        );
        config::parse_str(&text, "t.toml").expect("valid config")
    }

    const TWO: &str = "[[device.diagnostic]]\nname = \"quick\"\nlevel = 1\nargv = [\"q\", \"{id}\"]\n\
                       [[device.diagnostic]]\nname = \"deep\"\nlevel = 3\nargv = [\"d\", \"--device\", \"{id}\"]\n\
                       requires_idle = true\non = [\"PowerAnomaly\"]\ncooldown = \"10m\"\nwindows = [\"sunday\"]\n";

    struct Host {
        config: Config,
        model: Diagnostics,
        devices: Vec<DeviceDiagnostics>,
    }

    impl Host {
        fn new(diagnostics: &str, concurrency: usize) -> Host {
            let config = config(diagnostics, concurrency);
            let devices = config.devices.iter().map(DeviceDiagnostics::new).collect();
            Host { model: Diagnostics::new(&config), config, devices }
        }

        fn request(&mut self, level: u8, device: Option<&str>) -> Result<u64, RequestError> {
            let ids = self.config.devices.iter().map(|d| d.id.as_str());
            let devices = ids.zip(self.devices.iter_mut()).filter(|(id, _)| device.is_none_or(|d| d == *id));
            self.model.request(level, device, devices)
        }

        fn decide(&mut self, busy: &[(&str, &str)]) -> Vec<Decision> {
            let devices = self.config.devices.iter().zip(self.devices.iter_mut()).map(|(c, d)| {
                let why = busy.iter().find(|(id, _)| *id == c.id).map(|(_, why)| (*why).to_owned());
                (c, d, why)
            });
            self.model.decide(devices, SystemTime::UNIX_EPOCH)
        }

        fn finish(&mut self, device: usize, name: &str, outcome: Outcome) {
            let report = Report {
                device: self.config.devices[device].id.clone(),
                name: name.into(),
                outcome,
                duration: Duration::from_secs(1),
                remedy: None,
                fault: None,
            };
            assert!(self.model.finished(&mut self.devices[device], &report, SystemTime::UNIX_EPOCH));
        }

        fn run(&self, id: u64) -> RunView {
            let devices = &self.devices;
            let ids: Vec<&str> = self.config.devices.iter().map(|d| d.id.as_str()).collect();
            self.model.run(id, |dev| ids.iter().position(|i| *i == dev).map(|i| &devices[i])).expect("kept")
        }
    }

    fn started(decisions: &[Decision]) -> Vec<(String, String)> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start(s) => Some((s.device.clone(), s.name.clone())),
                Decision::Refused { .. } => None,
            })
            .collect()
    }

    fn failed(expectation: &str) -> Outcome {
        Outcome::Failed { expectation: expectation.into(), output: "drift 72 ppm".into() }
    }

    #[test]
    fn one_per_device_and_the_host_limit_oldest_first() {
        let mut h = Host::new(TWO, 1);
        let run = h.request(3, None).expect("queued");
        let first = h.decide(&[]);
        assert_eq!(started(&first), vec![("a".into(), "quick".into())], "the host runs one at a time");
        let Decision::Start(s) = &first[0] else { panic!("a start") };
        assert_eq!(s.argv, vec!["q", "a"], "placeholders are the device's");
        assert!(h.decide(&[]).is_empty(), "nothing more while it runs");
        h.finish(0, "quick", Outcome::Passed);
        assert_eq!(started(&h.decide(&[])), vec![("a".into(), "deep".into())], "the older request goes first");
        assert!(!h.run(run).done);

        let mut h = Host::new(TWO, 4);
        let _ = h.request(3, None).expect("queued");
        assert_eq!(
            started(&h.decide(&[])),
            vec![("a".into(), "quick".into()), ("b".into(), "quick".into())],
            "never two on one device, even with room on the host"
        );
    }

    #[test]
    fn levels_include_the_ones_below_and_a_run_ends_with_its_results() {
        let mut h = Host::new(TWO, 4);
        let run = h.request(2, Some("b")).expect("queued");
        assert_eq!(started(&h.decide(&[])), vec![("b".into(), "quick".into())], "level 2 runs 1 and 2, not 3");
        assert_eq!(h.run(run).items.len(), 1);
        h.finish(1, "quick", Outcome::Passed);
        let view = h.run(run);
        assert!(view.done);
        assert_eq!(view.items[0].result.as_ref().map(|r| &r.outcome), Some(&Outcome::Passed));
        assert_eq!(h.request(0, None), Err(RequestError::Level(0)));
        let mut none = Host::new("", 1);
        assert_eq!(none.request(3, None), Err(RequestError::NoneConfigured { level: 3, device: None }));
        let mut off = Host::new(TWO, 1);
        let queued = off.request(1, None).expect("queued");
        off.model.enabled = false;
        assert_eq!(off.request(1, None), Err(RequestError::Disabled));
        let refused = off.decide(&[]);
        assert_eq!(refused.len(), 2, "turned off by a reload: what was queued ends, refused");
        assert!(refused.iter().all(|d| matches!(d, Decision::Refused { reason, .. } if reason.contains("turned off"))));
        assert!(off.run(queued).done);
    }

    #[test]
    fn requires_idle_is_refused_on_a_busy_device_and_says_why() {
        let mut h = Host::new(TWO, 4);
        let run = h.request(3, Some("a")).expect("queued");
        let decisions = h.decide(&[("a", "pod ml/train holds the device")]);
        assert_eq!(started(&decisions), vec![("a".into(), "quick".into())], "quick does not require idle");
        h.finish(0, "quick", Outcome::Passed);
        let decisions = h.decide(&[("a", "pod ml/train holds the device")]);
        assert_eq!(
            decisions,
            vec![Decision::Refused {
                device: "a".into(),
                name: "deep".into(),
                level: 3,
                reason: "refused: pod ml/train holds the device".into()
            }]
        );
        assert!(h.run(run).done, "a refusal is the run's answer");
        assert_eq!(h.devices[0].verdict(), None, "a refusal is no verdict on the device");
    }

    #[test]
    fn the_agents_own_trouble_is_no_verdict_on_the_device() {
        let mut h = Host::new(TWO, 4);
        let _ = h.request(3, Some("a"));
        let _ = h.decide(&[]);
        h.finish(0, "quick", Outcome::Passed);
        let _ = h.decide(&[]);
        h.finish(0, "deep", Outcome::NotRun { reason: "not run: the agent is out of file descriptors".into() });
        assert_eq!(h.devices[0].verdict(), None, "no condition from a tool that never started");
        let view = &h.devices[0].views()[1];
        assert_eq!(view.last.as_ref().map(|r| r.outcome.name()), Some("not_run"));
        assert_eq!(view.last_verdict, None, "the metrics keep no verdict either");
    }

    #[test]
    fn a_condition_triggers_once_per_cooldown() {
        let mut h = Host::new(TWO, 4);
        let t0 = Instant::now();
        assert_eq!(h.model.on_condition(&mut h.devices[0], "Overheating", t0), Vec::<String>::new());
        assert_eq!(h.model.on_condition(&mut h.devices[0], "PowerAnomaly", t0), vec!["deep".to_owned()]);
        let d = h.decide(&[]);
        let Decision::Start(s) = &d[0] else { panic!("a start") };
        assert_eq!(s.trigger, Trigger::Condition { condition: "PowerAnomaly".into() });
        h.finish(0, "deep", Outcome::Passed);
        let within = t0 + Duration::from_secs(9 * 60);
        assert!(h.model.on_condition(&mut h.devices[0], "PowerAnomaly", within).is_empty(), "within the cooldown");
        let after = t0 + Duration::from_secs(10 * 60);
        assert_eq!(h.model.on_condition(&mut h.devices[0], "PowerAnomaly", after), vec!["deep".to_owned()]);
    }

    #[test]
    fn a_window_runs_it_once_per_occurrence() {
        let mut h = Host::new(TWO, 4);
        let sunday = SystemTime::UNIX_EPOCH + Duration::from_secs(3 * 86_400);
        assert_eq!(h.model.in_window(&mut h.devices[0], "sunday", sunday), vec!["deep".to_owned()]);
        let _ = h.decide(&[]);
        h.finish(0, "deep", Outcome::Passed);
        assert!(h.model.in_window(&mut h.devices[0], "sunday", sunday).is_empty(), "the same occurrence");
        assert!(h.model.in_window(&mut h.devices[0], "monday", sunday).is_empty(), "not its window");
        let next = sunday + Duration::from_secs(7 * 86_400);
        assert_eq!(h.model.in_window(&mut h.devices[0], "sunday", next), vec!["deep".to_owned()]);
    }

    #[test]
    fn diagnostic_failed_follows_the_last_verdict_until_acknowledged() {
        let mut h = Host::new(TWO, 4);
        assert_eq!(h.devices[0].verdict(), None, "unknown before any verdict");
        let _ = h.request(3, Some("a"));
        let _ = h.decide(&[]);
        h.finish(0, "quick", failed("exit status 1, expected 0"));
        assert_eq!(h.devices[0].verdict(), None, "a level 1 failure sets nothing");
        let _ = h.decide(&[]);
        h.finish(0, "deep", failed("/drift_ppm = 72 above the maximum 50"));
        let v = h.devices[0].verdict().expect("judged");
        assert_eq!((v.status, v.impact), (Status::True, Impact::Unhealthy), "level 3 makes the device unhealthy");
        assert_eq!(v.reason, "deep: /drift_ppm = 72 above the maximum 50");
        assert!(v.message.ends_with("drift 72 ppm"), "{}", v.message);
        assert_eq!(h.devices[0].acknowledge(), vec!["DiagnosticFailed (diagnostic deep)".to_owned()]);
        assert_eq!(h.devices[0].verdict().map(|v| v.status), Some(Status::False), "set-healthy clears it");
        assert!(h.devices[0].acknowledge().is_empty(), "nothing left to acknowledge");
        let _ = h.request(3, Some("a"));
        let _ = h.decide(&[]);
        h.finish(0, "quick", Outcome::Passed);
        let _ = h.decide(&[]);
        h.finish(0, "deep", failed("exit status 2, expected 0"));
        assert_eq!(h.devices[0].verdict().map(|v| v.status), Some(Status::True), "a new failure sets it again");
        let _ = h.request(3, Some("a"));
        let _ = h.decide(&[]);
        h.finish(0, "quick", Outcome::Passed);
        let _ = h.decide(&[]);
        h.finish(0, "deep", Outcome::Passed);
        assert_eq!(h.devices[0].verdict().map(|v| v.status), Some(Status::False), "the next pass clears it");
    }
}
