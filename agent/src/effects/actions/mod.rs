//! The actions layer: the only part of the agent that changes the machine.
//!
//! Off unless `[actions] enabled = true` (or `--dry-run`, which records what would be done and writes
//! nothing). One thread applies every change in order, so two decisions never race on a file; the
//! async side only sends requests, and the control socket waits for their outcome. Every write goes to a
//! target resolved once beneath the sysfs root and opened without following symlinks ([`beneath`]), is
//! read back, and is preceded by saving the original value on disk ([`originals`]); originals are
//! restored when a device comes down to level 0, at shutdown, at the next start after a crash, and before
//! a reload that changes the mode or a device's ladder takes effect ([`Actions::reconfigure`]). If the
//! thread ever stops, that is an event, `/-/healthy` and `accel_actions_up` say so, and every request
//! gets an error.

// Public (with effects::actions) while beneath's open_with, path and mechanism have no caller in the
// crate: issue 12's work, left for its owner to use or trim.
pub mod beneath;
pub(crate) mod bmp;
pub(crate) mod originals;
pub(crate) mod write;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use collectors::spinnaker::RetryPolicy;
use config::Config;
use config::device::{ReconnectStep, ThrottleLevel};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::effects::events::Events;
use crate::effects::faults::AgentFault;
use crate::effects::journal::{Event, Severity, kind};
pub use crate::policy::mode::ActionsMode;
use crate::policy::throttle::{all_files, plan};
use beneath::{BeneathError, SysfsRoot, Target};
use originals::{LoadReport, Originals};
use write::{WriteError, write_verified};

/// Outcomes of throttle requests kept per device for [`Actions::outcome_since`].
const KEPT_OUTCOMES: usize = 16;
/// How long a vendor throttle command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reload waits for the actions thread to restore and re-apply throttles under the new
/// config: a few vendor commands' worth.
pub const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);

/// A device's throttle as operators and metrics see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ThrottleView {
    pub device: String,
    /// The level applied (in dry-run: the level that would be applied).
    pub level: usize,
    pub max_level: usize,
    pub transitions_up: u64,
    pub transitions_down: u64,
    /// Files the firmware locked (ENODATA); no longer written.
    pub locked: Vec<String>,
    pub last_error: Option<String>,
    pub dry_run: bool,
}

/// Why a request to the actions layer did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionError {
    #[error("the actions worker is not running ({0}); nothing was changed; restart the agent")]
    Down(String),
    #[error(transparent)]
    Failed(ActionFailure),
    #[error("the actions worker did not answer within {0:?}; the change may still be applied, see `agentctl events`")]
    NoAnswer(Duration),
}

/// What a request did, or why it did not.
type Outcome = Result<String, ActionFailure>;

/// Why the actions thread did not do what a request asked. Kept with the device's recent outcomes and
/// sent to whoever waits, so it is cloned: causes that hold an I/O error hold it in an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionFailure {
    #[error("{device} has no throttle ladder")]
    NoLadder { device: String },
    #[error("{device} has no reconnect ladder")]
    NoReconnectLadder { device: String },
    /// A request asked just before a reload turned actions off.
    #[error("actions are disabled; {device} stays at level {current}")]
    Disabled { device: String, current: usize },
    #[error("throttle {from} -> {to} failed: {cause}; the device stays at level {from}")]
    Throttle { device: String, from: usize, to: usize, cause: LevelError },
    #[error("reconnect step {step} not run: the agent is {fault}; it is tried again later")]
    StepNotRun { device: String, step: ReconnectStep, fault: AgentFault },
    #[error("reconnect step {step} failed: {cause}")]
    Step { device: String, step: ReconnectStep, cause: StepError },
    /// A reload's summary (what was done) and each device it could not put in line.
    #[error("{summary}; {}", join(failed))]
    Reload { summary: String, failed: Vec<ActionFailure> },
}

fn join(failed: &[ActionFailure]) -> String {
    failed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Why a file the config names cannot be reached: the root did not open, or the file does not resolve
/// beneath it (the error names the path).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// Before the first config is taken (which opens the root at once).
    #[error("the sysfs root is not opened yet")]
    NotOpened,
    #[error("cannot open the sysfs root: {0}")]
    Root(Arc<BeneathError>),
    #[error(transparent)]
    Resolve(Arc<BeneathError>),
}

/// Why a throttle level was not reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LevelError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Write(Arc<WriteError>),
    #[error(transparent)]
    Command(#[from] StepError),
}

/// Why a command or reconnect step did not do its work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    /// It never started: the agent's own trouble, not the device's.
    #[error("not run: the agent is {0}")]
    NotRun(AgentFault),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Write(Arc<WriteError>),
    #[error("step {step} needs the device's pci_address")]
    NoPciAddress { step: ReconnectStep },
    #[error("{}: no driver bound", link.display())]
    NoDriver { link: PathBuf },
    #[error("{}: driver name {name:?} is not a plain name", link.display())]
    DriverName { link: PathBuf, name: String },
    #[error("step power_cycle needs the board's BMP")]
    NoBmp,
    #[error("no async runtime for BMP commands")]
    NoRuntime,
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: Arc<std::io::Error> },
    #[error("{program} exited with {status}")]
    Exit { program: String, status: std::process::ExitStatus },
    #[error("{program} did not finish within {after:?}")]
    Timeout { program: String, after: Duration },
    #[error("waiting for {program}: {source}")]
    Wait { program: String, source: Arc<std::io::Error> },
}

/// The outcome of one request, sent back by the actions thread.
type Reply = oneshot::Sender<Outcome>;

/// A request whose outcome someone waits for.
pub struct Pending(oneshot::Receiver<Outcome>);

impl Pending {
    /// Waits for the outcome: what was done, or why it was not.
    pub async fn wait(self, timeout: Duration) -> Result<String, ActionError> {
        match tokio::time::timeout(timeout, self.0).await {
            Ok(Ok(Ok(done))) => Ok(done),
            Ok(Ok(Err(e))) => Err(ActionError::Failed(e)),
            Ok(Err(_)) => Err(ActionError::Down("it stopped while handling the request".into())),
            Err(_) => Err(ActionError::NoAnswer(timeout)),
        }
    }
}

enum Request {
    /// `seq` numbers the request, for [`Actions::outcome_since`].
    SetLevel {
        device: String,
        level: usize,
        seq: u64,
    },
    /// The outcome of the first SetLevel of `device` numbered above `after`.
    Outcome {
        device: String,
        after: u64,
        reply: Reply,
    },
    /// Answered with what the change did to throttled devices and the mode now in force.
    Reconfigure {
        settings: Box<Settings>,
        reply: Reply,
    },
    Reconnect {
        device: String,
        step: ReconnectStep,
        reply: Option<Reply>,
    },
    RestoreAll {
        done: Sender<()>,
    },
}

/// What a device's reconnect steps act on.
#[derive(Debug, Clone, Default)]
struct ReconnectTarget {
    /// For the "vendor" step.
    command: Option<Vec<String>>,
    pci: Option<String>,
    /// For "power_cycle": the frame's BMP and the board's number.
    bmp: Option<(SocketAddr, u8)>,
}

/// What the actions thread needs from the config; replaced as a whole by a reload.
struct Settings {
    reconnects: BTreeMap<String, ReconnectTarget>,
    /// SCP timing for BMP power commands.
    scp_policy: RetryPolicy,
    root: PathBuf,
    /// Writes really happen (enabled and not dry-run).
    write: bool,
    dry_run: bool,
    ladders: BTreeMap<String, Vec<ThrottleLevel>>,
}

impl Settings {
    fn of(config: &Config, dry_run_flag: bool) -> Settings {
        let dry_run = dry_run_flag || config.actions.dry_run;
        Settings {
            reconnects: config
                .devices
                .iter()
                .filter_map(|d| {
                    let target = ReconnectTarget {
                        command: d.reconnect.as_ref()?.command.clone(),
                        pci: d.pci_address.clone(),
                        bmp: d.bmp.as_ref().and_then(|b| Some((b.bmp_addr()?, b.board))),
                    };
                    Some((d.id.clone(), target))
                })
                .collect(),
            scp_policy: crate::model::spinnaker::retry_policy(config),
            root: config.sysfs_root.clone(),
            write: config.actions.enabled && !dry_run,
            dry_run,
            ladders: config
                .devices
                .iter()
                .filter_map(|d| Some((d.id.clone(), d.throttle.as_ref()?.levels.clone())))
                .collect(),
        }
    }

    fn mode(&self) -> ActionsMode {
        mode_of(self.write, self.dry_run)
    }

    /// Every file the config lets the agent write, relative to the root as the config names them.
    fn files(&self) -> BTreeSet<String> {
        let mut files: BTreeSet<String> = self.ladders.values().flat_map(|l| all_files(l)).collect();
        for pci in self.reconnects.values().filter_map(|r| r.pci.as_deref()) {
            for attr in ["hard_reset", "reset", "remove"] {
                files.insert(format!("bus/pci/devices/{pci}/{attr}"));
            }
        }
        if !self.reconnects.is_empty() {
            files.insert("bus/pci/rescan".into());
        }
        files
    }
}

/// The async side's handle.
#[derive(Clone)]
pub struct Actions {
    requests: Option<Sender<Request>>,
    views: Arc<Mutex<BTreeMap<String, ThrottleView>>>,
    /// The mode asked for last ([`ActionsMode::to_u8`]); a reload may change it. The published state
    /// shows it only once the actions thread has put the machine in line with it.
    mode: Arc<AtomicU8>,
    /// Set once the agent is shutting down: the thread ending then is no failure.
    stopping: Arc<AtomicBool>,
    /// Numbers SetLevel requests.
    seq: Arc<AtomicU64>,
    state: Arc<dyn ActionsStatus>,
}

/// What the actions thread tells the rest of the agent, and reads back (the app links it to the owner of
/// the published state; a trait so that effects do not depend on what publishes them).
pub trait ActionsStatus: Send + Sync {
    /// The mode in force, once the machine is in line with it.
    fn publish_actions_mode(&self, mode: ActionsMode);
    fn publish_actions_stopped(&self, why: String);
    fn actions_stopped(&self) -> Option<String>;
    /// A reconnect step could not be started for want of the agent's own resources (out of descriptors,
    /// say): it is no attempt, and the model must not judge the ladder on it.
    fn step_not_run(&self, device: &str, step: ReconnectStep, fault: AgentFault);
}

impl Actions {
    /// Starts the actions thread. Leftovers of a previous run (originals of a crash) are restored first,
    /// even with actions disabled now: undoing the agent's own writes to files the config names is safe.
    pub fn start(config: &Config, dry_run_flag: bool, events: Arc<Events>, state: Arc<dyn ActionsStatus>) -> Actions {
        Actions::start_with(config, dry_run_flag, events, state, Box::new(write_verified))
    }

    fn start_with(
        config: &Config,
        dry_run_flag: bool,
        events: Arc<Events>,
        state: Arc<dyn ActionsStatus>,
        writer: WriteFn,
    ) -> Actions {
        let settings = Settings::of(config, dry_run_flag);
        let mode = Arc::new(AtomicU8::new(settings.mode().to_u8()));
        state.publish_actions_mode(settings.mode());
        let stopping = Arc::new(AtomicBool::new(false));
        let views = Arc::new(Mutex::new(BTreeMap::new()));
        let (tx, rx) = channel();
        let mut worker = Worker {
            writer,
            // Power commands to BMPs are async; they run on the agent's runtime, not on this thread.
            runtime: tokio::runtime::Handle::try_current().ok(),
            scp_policy: settings.scp_policy,
            reconnects: BTreeMap::new(),
            root: Err(TargetError::NotOpened),
            root_path: PathBuf::new(),
            targets: BTreeMap::new(),
            state_dir: config.state_dir.clone(),
            write: false,
            dry_run: false,
            ladders: BTreeMap::new(),
            views: Arc::clone(&views),
            events: Arc::clone(&events),
            locked: BTreeSet::new(),
            state: Arc::clone(&state),
        };
        worker.adopt(settings);
        let (watch_events, watch_state, watch_stopping) =
            (Arc::clone(&events), Arc::clone(&state), Arc::clone(&stopping));
        let spawned = std::thread::Builder::new().name("actions".into()).spawn(move || {
            // The thread must not end unnoticed: a panic anywhere in it is caught here and reported.
            let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run(rx)));
            let why = match ended {
                Ok(()) if watch_stopping.load(Ordering::SeqCst) => return,
                Ok(()) => "it returned".to_owned(),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown".into());
                    format!("it panicked: {what}")
                }
            };
            stopped(&*watch_state, &watch_events, &why);
        });
        let requests = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                stopped(&*state, &events, &format!("cannot start the actions thread: {e}"));
                None
            }
        };
        Actions { requests, views, mode, stopping, seq: Arc::new(AtomicU64::new(0)), state }
    }

    /// Whether anything is decided at all (enabled, or dry-run).
    pub fn active(&self) -> bool {
        self.mode().decides()
    }

    /// The mode asked for last.
    pub fn mode(&self) -> ActionsMode {
        ActionsMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// Why the actions thread is not running, if it is not.
    pub fn down(&self) -> Option<String> {
        self.state.actions_stopped()
    }

    fn send(&self, request: Request) -> Result<(), ActionError> {
        let down = || ActionError::Down(self.down().unwrap_or_else(|| "it stopped".into()));
        let tx = self.requests.as_ref().ok_or_else(down)?;
        tx.send(request).map_err(|_| down())
    }

    /// Takes a reloaded config; the outcome to wait for comes once the machine is in line with it: what
    /// that took, and the mode now in force (within [`RECONFIGURE_TIMEOUT`], a few vendor commands). A device whose ladder changed or went, and every device when the mode
    /// changes, is first brought back to its original values under the old config (each written value
    /// read back); then the level it was held at is applied under the new one, when something is decided
    /// there. Targets are resolved anew under the new config.
    pub fn reconfigure(&self, config: &Config, dry_run_flag: bool) -> Result<Pending, ActionError> {
        let settings = Settings::of(config, dry_run_flag);
        // Asked now, so that no new throttle is decided under a mode that is going away; the published
        // mode follows once the thread has restored what the new mode does not keep.
        self.mode.store(settings.mode().to_u8(), Ordering::SeqCst);
        let (reply, pending) = oneshot::channel();
        self.send(Request::Reconfigure { settings: Box::new(settings), reply })?;
        Ok(Pending(pending))
    }

    /// The level applied to a device (0 if it has no throttle).
    pub fn level(&self, device: &str) -> usize {
        self.views.lock().unwrap_or_else(PoisonError::into_inner).get(device).map_or(0, |v| v.level)
    }

    /// Runs one reconnect step for a device (its PCI address and command come from the config); the
    /// outcome is an event.
    pub fn reconnect(&self, device: &str, step: ReconnectStep) {
        if let Err(e) = self.send(Request::Reconnect { device: device.to_owned(), step, reply: None }) {
            tracing::error!(device, "reconnect step {step} not run: {e}");
        }
    }

    /// Runs one reconnect step and hands back its outcome to wait for.
    pub fn request_reconnect(&self, device: &str, step: ReconnectStep) -> Result<Pending, ActionError> {
        let (reply, pending) = oneshot::channel();
        self.send(Request::Reconnect { device: device.to_owned(), step, reply: Some(reply) })?;
        Ok(Pending(pending))
    }

    /// Asks for a throttle level; the outcome is an event (and, for whoever took a [`Actions::mark`]
    /// before, the answer of [`Actions::outcome_since`]).
    pub fn set_level(&self, device: &str, level: usize) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        if let Err(e) = self.send(Request::SetLevel { device: device.to_owned(), level, seq }) {
            tracing::error!(device, "throttle level {level} not applied: {e}");
        }
    }

    /// Marks the throttle requests asked so far, for [`Actions::outcome_since`].
    pub fn mark(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// The outcome of the first throttle level asked for `device` after `mark` (or "nothing to apply"
    /// when none was). Requests are handled in order, so one asked before this call is answered.
    pub fn outcome_since(&self, device: &str, mark: u64) -> Result<Pending, ActionError> {
        let (reply, pending) = oneshot::channel();
        self.send(Request::Outcome { device: device.to_owned(), after: mark, reply })?;
        Ok(Pending(pending))
    }

    pub fn views(&self) -> Vec<ThrottleView> {
        self.views.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Restores every original value; returns when done or after `timeout`. The agent is shutting down:
    /// the thread ending from here on is expected.
    pub fn restore_all(&self, timeout: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let (done, wait) = channel();
        match self.send(Request::RestoreAll { done }) {
            Ok(()) if wait.recv_timeout(timeout).is_err() => {
                tracing::warn!("restoring throttled devices did not finish within {timeout:?}");
            }
            Ok(()) => {}
            Err(e) => tracing::error!("cannot restore throttled devices at shutdown: {e}"),
        }
    }
}

/// Records that the actions thread is gone: an event, the log, and the published state behind
/// `/-/healthy` and `accel_actions_up`.
fn stopped(state: &dyn ActionsStatus, events: &Events, why: &str) {
    let message = format!(
        "the actions worker stopped ({why}): no throttle, restore or reconnect will be applied until the agent restarts"
    );
    tracing::error!("{message}");
    events.record(Event::new(SystemTime::now(), Severity::Critical, kind::ACTION, message));
    state.publish_actions_stopped(why.to_owned());
}

/// Writes and verifies one value. A seam for tests: kernels answer ENODATA for locked limits, regular
/// files cannot.
type WriteFn = Box<dyn Fn(&SysfsRoot, &Target, &str) -> Result<(), WriteError> + Send>;

struct Worker {
    writer: WriteFn,
    runtime: Option<tokio::runtime::Handle>,
    scp_policy: RetryPolicy,
    reconnects: BTreeMap<String, ReconnectTarget>,
    /// The sysfs root, held open; every target is opened relative to it.
    root: Result<Arc<SysfsRoot>, TargetError>,
    root_path: PathBuf,
    /// Files as the config names them -> their canonical target, resolved when the config was taken
    /// (or, for a file missing then, when it first appears).
    targets: BTreeMap<String, Result<Target, TargetError>>,
    state_dir: PathBuf,
    /// Writes really happen (enabled and not dry-run).
    write: bool,
    dry_run: bool,
    ladders: BTreeMap<String, Vec<ThrottleLevel>>,
    views: Arc<Mutex<BTreeMap<String, ThrottleView>>>,
    events: Arc<Events>,
    /// Files the firmware locked.
    locked: BTreeSet<Target>,
    /// Where the mode in force is published, and a step not run is told.
    state: Arc<dyn ActionsStatus>,
}

/// The mode of a worker's or a config's `write` and `dry_run`.
fn mode_of(write: bool, dry_run: bool) -> ActionsMode {
    match (write, dry_run) {
        (true, _) => ActionsMode::Enabled,
        (false, true) => ActionsMode::DryRun,
        (false, false) => ActionsMode::Disabled,
    }
}

impl Worker {
    fn run(mut self, rx: Receiver<Request>) {
        let allowed = self.allowed();
        let (mut originals, report) = Originals::load(&self.state_dir, &self.root_path, &allowed);
        self.report_load(&originals, &report, &allowed);
        self.restore(&mut originals, None, "restored after a restart");
        let mut outcomes: BTreeMap<String, VecDeque<(u64, Outcome)>> = BTreeMap::new();
        while let Ok(req) = rx.recv() {
            match req {
                Request::SetLevel { device, level, seq } => {
                    let outcome = self.set_level(&mut originals, &device, level);
                    let kept = outcomes.entry(device).or_default();
                    if kept.len() == KEPT_OUTCOMES {
                        kept.pop_front();
                    }
                    kept.push_back((seq, outcome));
                }
                Request::Outcome { device, after, reply } => {
                    let outcome = outcomes
                        .get(&device)
                        .and_then(|kept| kept.iter().find(|(seq, _)| *seq > after))
                        .map_or_else(|| Ok("nothing to apply".to_owned()), |(_, o)| o.clone());
                    let _ = reply.send(outcome);
                }
                Request::Reconfigure { settings, reply } => {
                    let done = self.reconfigure(&mut originals, *settings);
                    let _ = reply.send(done);
                }
                Request::Reconnect { device, step, reply } => {
                    let outcome = self.reconnect(&device, step);
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
                Request::RestoreAll { done } => {
                    for v in self.views.lock().unwrap_or_else(PoisonError::into_inner).values_mut() {
                        v.level = 0;
                    }
                    self.restore(&mut originals, None, "restored at shutdown");
                    let _ = done.send(());
                }
            }
        }
    }

    /// Puts the machine in line with a reloaded config, then switches to it and publishes its mode.
    /// A level held by a device whose ladder changed, or by every device when the mode changes, cannot
    /// stay as it is: under a new ladder its files may be others, a dry run or disabled actions must
    /// leave nothing written, and a dry run's levels were never written. So it is released under the old
    /// config (originals written back and read back) and applied again under the new one.
    fn reconfigure(&mut self, originals: &mut Originals, settings: Settings) -> Outcome {
        let (old, new) = (self.mode(), settings.mode());
        let moved: Vec<(String, usize)> = {
            let views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
            self.ladders
                .iter()
                .filter(|(id, ladder)| old != new || settings.ladders.get(*id) != Some(*ladder))
                .map(|(id, _)| (id.clone(), views.get(id).map_or(0, |v| v.level)))
                .collect()
        };
        let mut failed = Vec::new();
        let mut released = Vec::new();
        for (device, level) in &moved {
            match self.set_level(originals, device, 0) {
                Ok(_) if *level > 0 => released.push(device.clone()),
                Ok(_) => {}
                Err(e) => failed.push(e),
            }
        }
        self.adopt(settings);
        let mut reapplied = Vec::new();
        if new.decides() {
            for (device, level) in moved.iter().filter(|(d, l)| *l > 0 && released.contains(d)) {
                let Some(max) = self.ladders.get(device).map(Vec::len) else { continue };
                let level = (*level).min(max);
                match self.set_level(originals, device, level) {
                    Ok(_) => reapplied.push(format!("{device} at level {level}")),
                    Err(e) => failed.push(e),
                }
            }
        }
        let mut done = Vec::new();
        if !released.is_empty() {
            let how = if old.writes() { "original values restored" } else { "dry-run level released" };
            done.push(format!("{how} for {}", released.join(", ")));
        }
        if !reapplied.is_empty() {
            let how = if new.writes() { "applied again" } else { "would be applied again (dry run)" };
            done.push(format!("{how}: {}", reapplied.join(", ")));
        }
        let mut summary = if old == new { format!("actions {new}") } else { format!("actions {new} (was {old})") };
        for d in &done {
            summary.push_str(&format!("; {d}"));
        }
        if old != new || !done.is_empty() {
            self.event(None, Severity::Info, format!("{summary} (config reload)"));
        }
        self.state.publish_actions_mode(new);
        if failed.is_empty() { Ok(summary) } else { Err(ActionFailure::Reload { summary, failed }) }
    }

    /// Switches to new settings; throttle views of unchanged ladders keep their level and counts. Opens
    /// the root and resolves every file the config names, once.
    fn adopt(&mut self, s: Settings) {
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        let mut kept = BTreeMap::new();
        for (id, ladder) in &s.ladders {
            let view = match views.remove(id) {
                Some(v) if self.ladders.get(id) == Some(ladder) => ThrottleView { dry_run: s.dry_run, ..v },
                _ => ThrottleView {
                    device: id.clone(),
                    max_level: ladder.len(),
                    dry_run: s.dry_run,
                    ..Default::default()
                },
            };
            kept.insert(id.clone(), view);
        }
        *views = kept;
        drop(views);
        let files = s.files();
        self.root = SysfsRoot::open(&s.root).map(Arc::new).map_err(|e| TargetError::Root(Arc::new(e)));
        self.root_path = s.root;
        self.targets = files
            .into_iter()
            .map(|f| {
                let resolved = match &self.root {
                    Ok(root) => root.resolve(&f).map_err(|e| TargetError::Resolve(Arc::new(e))),
                    Err(e) => Err(e.clone()),
                };
                (f, resolved)
            })
            .collect();
        self.reconnects = s.reconnects;
        self.scp_policy = s.scp_policy;
        self.write = s.write;
        self.dry_run = s.dry_run;
        self.ladders = s.ladders;
    }

    fn mode(&self) -> ActionsMode {
        mode_of(self.write, self.dry_run)
    }

    /// The canonical target of a file the config names: resolved when the config was taken, or now if
    /// it could not be then (its device may have appeared since).
    fn target(&mut self, rel: &str) -> Result<(Arc<SysfsRoot>, Target), TargetError> {
        let root = self.root.clone()?;
        if let Some(Ok(t)) = self.targets.get(rel) {
            return Ok((root, t.clone()));
        }
        let resolved = root.resolve(rel).map_err(|e| TargetError::Resolve(Arc::new(e)));
        self.targets.insert(rel.to_owned(), resolved.clone());
        resolved.map(|t| (root, t))
    }

    /// Every target a throttle ladder of the current config writes, with its device: all that an
    /// originals file may name.
    fn allowed(&self) -> BTreeMap<Target, String> {
        let mut out = BTreeMap::new();
        for (device, ladder) in &self.ladders {
            for file in all_files(ladder) {
                if let Some(Ok(t)) = self.targets.get(&file) {
                    out.insert(t.clone(), device.clone());
                }
            }
        }
        out
    }

    /// Says what reading the originals file found: damage, entries set aside, and throttle values that
    /// nothing can restore any more.
    fn report_load(&self, originals: &Originals, report: &LoadReport, allowed: &BTreeMap<Target, String>) {
        let file = self.state_dir.join(originals::ORIGINALS_FILE);
        let aside =
            report.moved_to.as_ref().map(|p| format!("; the file was moved to {}", p.display())).unwrap_or_default();
        if let Some(why) = &report.damaged {
            self.event(
                None,
                Severity::Critical,
                format!("{}: damaged ({why}); {} saved originals recovered{aside}", file.display(), report.recovered),
            );
        }
        for r in &report.rejected {
            self.event(
                None,
                Severity::Critical,
                format!(
                    "{}: ignored the entry {:?} = {:?}: {}; nothing is written there{aside}",
                    file.display(),
                    r.path,
                    r.value,
                    r.why
                ),
            );
        }
        if report.damaged.is_none() {
            return;
        }
        // Entries lost with the damage: a configured file holding one of its ladder's throttle values
        // now, with no original saved, may stay throttled. Say so; guessing an original would be worse.
        let Ok(root) = &self.root else { return };
        for (target, device) in allowed.iter().filter(|(t, _)| !originals.entries.contains_key(*t)) {
            let Ok(now) = write::read_value(root, target) else { continue };
            let throttle_values: BTreeSet<String> = self
                .ladders
                .get(device)
                .into_iter()
                .flatten()
                .flat_map(|l| l.writes())
                .filter(|(f, _)| matches!(self.targets.get(f), Some(Ok(t)) if t == target))
                .map(|(_, v)| v)
                .collect();
            if throttle_values.contains(&now) {
                self.event(
                    Some(device),
                    Severity::Critical,
                    format!(
                        "cannot restore {}: it holds {now}, a throttle value, and its original was lost with the damaged originals file; set it back by hand",
                        root.display(target).display()
                    ),
                );
            }
        }
    }

    fn event(&self, device: Option<&str>, severity: Severity, message: String) {
        match severity {
            Severity::Info => tracing::info!(device = device.unwrap_or(""), "{message}"),
            _ => tracing::warn!(device = device.unwrap_or(""), "{message}"),
        }
        let mut e = Event::new(SystemTime::now(), severity, kind::ACTION, message);
        if let Some(d) = device {
            e = e.on_device(d);
        }
        self.events.record(e);
    }

    /// Writes back saved originals (of one device, or all), forgetting each that is restored. Only
    /// targets of the current config are in `originals` (checked when the file was read).
    fn restore(&mut self, originals: &mut Originals, device: Option<&str>, why: &str) {
        let entries: Vec<(Target, originals::Original)> = originals
            .entries
            .iter()
            .filter(|(_, o)| device.is_none_or(|d| o.device == d))
            .map(|(p, o)| (p.clone(), o.clone()))
            .collect();
        for (target, original) in entries {
            let root = match &self.root {
                Ok(root) => root,
                Err(e) => {
                    let message = format!("{why} failed: {target}: {e}");
                    self.event(Some(&original.device), Severity::Critical, message);
                    continue;
                }
            };
            match (self.writer)(root, &target, &original.value).map(|()| root.display(&target)) {
                Ok(path) => {
                    if let Err(e) = originals.forget(&target) {
                        self.event(Some(&original.device), Severity::Critical, e.to_string());
                    }
                    self.event(
                        Some(&original.device),
                        Severity::Info,
                        format!("{why}: {} = {}", path.display(), original.value),
                    );
                }
                Err(e) => self.event(Some(&original.device), Severity::Critical, format!("{why} failed: {e}")),
            }
        }
    }

    /// Applies a level; says what was written, or why the level was not reached.
    fn set_level(&mut self, originals: &mut Originals, device: &str, target: usize) -> Outcome {
        let Some(levels) = self.ladders.get(device).cloned() else {
            return Err(ActionFailure::NoLadder { device: device.to_owned() });
        };
        let target = target.min(levels.len());
        let current = self.views.lock().unwrap_or_else(PoisonError::into_inner).get(device).map_or(0, |v| v.level);
        if target == current {
            return Ok(format!("already at level {target}"));
        }
        // A request asked just before a reload turned actions off arrives after it: nothing to do.
        if !self.mode().decides() {
            return Err(ActionFailure::Disabled { device: device.to_owned(), current });
        }
        let want = plan(&levels, target);
        let held = plan(&levels, current);
        let mut done = Vec::new();
        let mut failed: Option<LevelError> = None;
        for file in all_files(&levels) {
            let (root, path) = match self.target(&file) {
                Ok(t) => t,
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            };
            if self.locked.contains(&path) {
                continue;
            }
            let shown = root.display(&path);
            let value = match want.get(&file) {
                Some(v) => v.clone(),
                // Not throttled at this level: back to the original, if we ever changed it.
                None => match originals.entries.get(&path) {
                    Some(o) => o.value.clone(),
                    // A dry run saved no original: say that it would be restored.
                    None if !self.write && held.contains_key(&file) => {
                        done.push(format!("would restore {} to its original value", shown.display()));
                        continue;
                    }
                    None => continue,
                },
            };
            if !self.write {
                done.push(format!("would write {} = {value}", shown.display()));
                continue;
            }
            match self.write_one(originals, &root, &path, device, &value, want.contains_key(&file)) {
                Ok(()) => done.push(format!("{} = {value}", shown.display())),
                Err(e) if e.is_locked() => {
                    self.locked.insert(path.clone());
                    self.event(Some(device), Severity::Critical, format!("{e}; throttling continues without it"));
                }
                Err(e) => {
                    failed = Some(LevelError::Write(Arc::new(e)));
                    break;
                }
            }
        }
        if failed.is_none() {
            failed = self.run_command(&levels, device, target).err().map(LevelError::Command);
        }
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(view) = views.get_mut(device) else {
            return Err(ActionFailure::NoLadder { device: device.to_owned() });
        };
        view.locked = match &self.root {
            Ok(root) => self.locked.iter().map(|t| root.display(t).display().to_string()).collect(),
            Err(_) => self.locked.iter().map(ToString::to_string).collect(),
        };
        match failed {
            Some(cause) => {
                view.last_error = Some(cause.to_string());
                drop(views);
                // A failed or unverified write is not a state change: the level stays where it was.
                let failure = ActionFailure::Throttle { device: device.to_owned(), from: current, to: target, cause };
                self.event(Some(device), Severity::Critical, failure.to_string());
                Err(failure)
            }
            None => {
                view.level = target;
                view.last_error = None;
                if target > current {
                    view.transitions_up += 1;
                } else {
                    view.transitions_down += 1;
                }
                drop(views);
                let how = if self.dry_run { "dry run: " } else { "" };
                let severity = if target > current { Severity::Warning } else { Severity::Info };
                let message = format!("{how}throttle level {current} -> {target}: {}", done.join(", "));
                self.event(Some(device), severity, message.clone());
                Ok(message)
            }
        }
    }

    fn write_one(
        &mut self,
        originals: &mut Originals,
        root: &SysfsRoot,
        target: &Target,
        device: &str,
        value: &str,
        throttling: bool,
    ) -> Result<(), WriteError> {
        if throttling {
            originals.save_first(root, target, device)?;
        }
        (self.writer)(root, target, value)?;
        if !throttling {
            originals.forget(target)?;
        }
        Ok(())
    }

    /// One reconnect step. Whether it worked is judged later, by the device coming back; what is
    /// returned is whether the step itself ran.
    fn reconnect(&mut self, device: &str, step: ReconnectStep) -> Outcome {
        let Some(target) = self.reconnects.get(device).cloned() else {
            return Err(ActionFailure::NoReconnectLadder { device: device.to_owned() });
        };
        let outcome = if !self.write {
            Ok(format!("dry run: would run reconnect step {step}"))
        } else {
            self.run_step(device, step, &target)
        };
        match outcome {
            Ok(what) => {
                self.event(Some(device), Severity::Warning, format!("reconnect step {step}: {what}"));
                Ok(what)
            }
            // Not an attempt: the ladder must neither count it nor move on to a harsher step for it.
            Err(StepError::NotRun(fault)) => {
                self.state.step_not_run(device, step, fault);
                Err(ActionFailure::StepNotRun { device: device.to_owned(), step, fault })
            }
            Err(cause) => {
                let failure = ActionFailure::Step { device: device.to_owned(), step, cause };
                self.event(Some(device), Severity::Critical, failure.to_string());
                Err(failure)
            }
        }
    }

    /// Writes a write-only attribute beneath the root.
    fn poke(&mut self, rel: &str, value: &str) -> Result<(), StepError> {
        let (root, target) = self.target(rel)?;
        write::write_once(&root, &target, value).map_err(|e| StepError::Write(Arc::new(e)))
    }

    fn run_step(&mut self, device: &str, step: ReconnectStep, target: &ReconnectTarget) -> Result<String, StepError> {
        let pci = || target.pci.as_deref().ok_or(StepError::NoPciAddress { step });
        match step {
            ReconnectStep::PowerCycle => Ok(self.power_cycle(device, target.bmp)?),
            ReconnectStep::Vendor => {
                let argv: Vec<String> =
                    target.command.as_deref().unwrap_or_default().iter().map(|a| a.replace("{id}", device)).collect();
                self.run_argv(&argv)?;
                Ok(format!("ran {}", argv.join(" ")))
            }
            ReconnectStep::DriverReset => {
                self.poke(&format!("bus/pci/devices/{}/hard_reset", pci()?), "1")?;
                Ok("wrote 1 to hard_reset".into())
            }
            ReconnectStep::FunctionReset => {
                self.poke(&format!("bus/pci/devices/{}/reset", pci()?), "1")?;
                Ok("wrote 1 to reset".into())
            }
            ReconnectStep::Rebind => {
                let addr = pci()?;
                let driver = self.driver_of(addr)?;
                self.poke(&format!("bus/pci/drivers/{driver}/unbind"), addr)?;
                self.poke(&format!("bus/pci/drivers/{driver}/bind"), addr)?;
                Ok(format!("unbound and bound {driver}"))
            }
            ReconnectStep::RemoveRescan => {
                self.poke(&format!("bus/pci/devices/{}/remove", pci()?), "1")?;
                self.poke("bus/pci/rescan", "1")?;
                Ok("removed the function and rescanned the bus".into())
            }
        }
    }

    /// The name of the driver bound to a PCI function: the last component of its `driver` link, which
    /// must be a plain name (it becomes part of the unbind and bind paths).
    fn driver_of(&mut self, addr: &str) -> Result<String, StepError> {
        let rel = format!("bus/pci/devices/{addr}/driver");
        let (root, link) = self.target(&rel)?;
        let link = root.display(&link);
        let Some(name) =
            std::fs::read_link(&link).ok().and_then(|t| t.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        else {
            return Err(StepError::NoDriver { link });
        };
        match Target::parse(&name) {
            Ok(t) if !t.as_str().contains('/') => Ok(name),
            _ => Err(StepError::DriverName { link, name }),
        }
    }

    /// Power-cycles a SpiNNaker board through its frame's BMP, off then on. It runs on the agent's runtime
    /// (power-on takes seconds) so throttling is not held up; its outcome is an event of its own, and
    /// the reconnect ladder judges success by the board answering again after `settle`.
    fn power_cycle(&self, device: &str, bmp: Option<(SocketAddr, u8)>) -> Result<String, StepError> {
        let (addr, board) = bmp.ok_or(StepError::NoBmp)?;
        let runtime = self.runtime.clone().ok_or(StepError::NoRuntime)?;
        let (events, device, policy) = (Arc::clone(&self.events), device.to_owned(), self.scp_policy);
        runtime.spawn(async move {
            let result = crate::effects::actions::bmp::power_cycle(policy, addr, board).await;
            let (severity, message) = match result {
                Ok(()) => (Severity::Info, format!("power cycle through BMP {addr}: board {board} off and on again")),
                Err(e) => (Severity::Critical, format!("power cycle through BMP {addr} failed: {e}")),
            };
            events.record(Event::new(SystemTime::now(), severity, kind::ACTION, message).on_device(device));
        });
        Ok(format!("power cycle of board {board} sent to BMP {addr}"))
    }

    /// Runs the vendor command of the level entered (for level 0, level 1's command with level 0).
    fn run_command(&self, levels: &[ThrottleLevel], device: &str, target: usize) -> Result<(), StepError> {
        let Some(argv) = levels.get(target.saturating_sub(1)).and_then(|l| l.command.as_ref()) else { return Ok(()) };
        let argv: Vec<String> =
            argv.iter().map(|a| a.replace("{id}", device).replace("{level}", &target.to_string())).collect();
        if !self.write {
            return Ok(());
        }
        self.run_argv(&argv)
    }

    /// Runs a command without a shell, in its own process group, killed as a group at the deadline.
    fn run_argv(&self, argv: &[String]) -> Result<(), StepError> {
        let Some((program, args)) = argv.split_first() else { return Ok(()) };
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(program)
                .args(args)
                // Not the agent's environment, which holds the spalloc credentials: the same allowlist
                // probes and hooks get.
                .env_clear()
                .envs(collectors::probes::child_env::minimal(std::env::vars_os()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|e| match AgentFault::of(&e) {
                    Some(fault) => StepError::NotRun(fault),
                    None => StepError::Spawn { program: program.clone(), source: Arc::new(e) },
                })?
        };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(StepError::Exit { program: program.clone(), status }),
                Ok(None) if started.elapsed() > COMMAND_TIMEOUT => {
                    // SAFETY: signalling the process group we created for this child.
                    unsafe {
                        libc::kill(-(child.id() as i32), libc::SIGKILL);
                    }
                    let _ = child.wait();
                    return Err(StepError::Timeout { program: program.clone(), after: COMMAND_TIMEOUT });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(StepError::Wait { program: program.clone(), source: Arc::new(e) }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::device::{CoolingStep, PowercapStep};
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the actions thread told the rest of the agent (the daemon links it to the owner instead).
    #[derive(Default)]
    struct Recorder {
        mode: Mutex<Option<ActionsMode>>,
        stopped: Mutex<Option<String>>,
    }

    impl Recorder {
        fn mode(&self) -> Option<ActionsMode> {
            *self.mode.lock().unwrap()
        }
    }

    impl ActionsStatus for Recorder {
        fn publish_actions_mode(&self, mode: ActionsMode) {
            *self.mode.lock().unwrap() = Some(mode);
        }

        fn publish_actions_stopped(&self, why: String) {
            *self.stopped.lock().unwrap() = Some(why);
        }

        fn actions_stopped(&self) -> Option<String> {
            self.stopped.lock().unwrap().clone()
        }

        fn step_not_run(&self, _: &str, _: ReconnectStep, _: AgentFault) {}
    }

    fn worker(root: &Path, state: &Path, ladders: BTreeMap<String, Vec<ThrottleLevel>>, writer: WriteFn) -> Worker {
        let views = ladders
            .iter()
            .map(|(id, l)| (id.clone(), ThrottleView { device: id.clone(), max_level: l.len(), ..Default::default() }))
            .collect();
        let mut w = Worker {
            writer,
            runtime: None,
            scp_policy: RetryPolicy::default(),
            reconnects: BTreeMap::new(),
            root: Err(TargetError::NotOpened),
            root_path: PathBuf::new(),
            targets: BTreeMap::new(),
            state_dir: state.to_owned(),
            write: true,
            dry_run: false,
            ladders: BTreeMap::new(),
            views: Arc::new(Mutex::new(views)),
            events: Arc::new(Events::without_journal("test".into())),
            locked: BTreeSet::new(),
            state: Arc::new(Recorder::default()),
        };
        w.adopt(Settings {
            reconnects: BTreeMap::new(),
            scp_policy: RetryPolicy::default(),
            root: root.to_owned(),
            write: true,
            dry_run: false,
            ladders,
        });
        w
    }

    #[test]
    fn a_locked_powercap_is_skipped_from_then_on_and_throttling_goes_on() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let limit = root.path().join("class/powercap/intel-rapl:0/constraint_0_power_limit_uw");
        let cooling = root.path().join("class/thermal/cooling_device0/cur_state");
        for (p, v) in [(&limit, "150000000\n"), (&cooling, "0\n")] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        }
        let levels = vec![
            ThrottleLevel {
                powercap_limit: Some(PowercapStep { zone: "intel-rapl:0".into(), constraint: 0, watts: 100.0 }),
                cooling_device: Some(CoolingStep { device: "cooling_device0".into(), state: 2 }),
                ..Default::default()
            },
            ThrottleLevel {
                cooling_device: Some(CoolingStep { device: "cooling_device0".into(), state: 4 }),
                ..Default::default()
            },
        ];
        let limit_writes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&limit_writes);
        let writer: WriteFn = Box::new(move |r: &SysfsRoot, t: &Target, v: &str| {
            if t.as_str().ends_with("constraint_0_power_limit_uw") {
                counter.fetch_add(1, Ordering::SeqCst);
                return Err(WriteError::Locked { path: r.display(t) });
            }
            write_verified(r, t, v)
        });
        let mut w = worker(root.path(), state.path(), BTreeMap::from([("d0".to_owned(), levels)]), writer);
        let (mut originals, _) = Originals::load(state.path(), root.path(), &w.allowed());
        assert!(w.set_level(&mut originals, "d0", 1).is_ok());
        let v = w.views.lock().unwrap().get("d0").cloned().unwrap();
        assert_eq!(v.level, 1, "the rest of the level still applied");
        assert_eq!(v.locked.len(), 1);
        assert!(v.locked[0].ends_with("constraint_0_power_limit_uw"));
        assert_eq!(std::fs::read_to_string(&cooling).unwrap(), "2\n");
        assert_eq!(std::fs::read_to_string(&limit).unwrap(), "150000000\n", "untouched");
        let critical =
            w.events.counts().iter().filter(|(_, s, _)| *s == Severity::Critical).map(|(_, _, n)| *n).sum::<u64>();
        assert_eq!(critical, 1, "said once");
        // Up and down again: the locked limit is not tried again.
        assert!(w.set_level(&mut originals, "d0", 2).is_ok());
        assert!(w.set_level(&mut originals, "d0", 0).is_ok());
        assert_eq!(limit_writes.load(Ordering::SeqCst), 1);
        assert_eq!(std::fs::read_to_string(&cooling).unwrap(), "0\n", "the original state is back");
    }

    /// A one-level ladder on `cooling_device{n}` (whose cur_state starts at 0).
    fn cooling_ladder(root: &Path, n: u32) -> Vec<ThrottleLevel> {
        let file = root.join(format!("class/thermal/cooling_device{n}/cur_state"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "0\n").unwrap();
        vec![ThrottleLevel {
            cooling_device: Some(CoolingStep { device: format!("cooling_device{n}"), state: 2 }),
            ..Default::default()
        }]
    }

    fn settings(root: &Path, ladder: Vec<ThrottleLevel>, mode: ActionsMode) -> Settings {
        Settings {
            reconnects: BTreeMap::new(),
            scp_policy: RetryPolicy::default(),
            root: root.to_owned(),
            write: mode.writes(),
            dry_run: mode == ActionsMode::DryRun,
            ladders: BTreeMap::from([("d0".to_owned(), ladder)]),
        }
    }

    fn cur_state(root: &Path, n: u32) -> String {
        std::fs::read_to_string(root.join(format!("class/thermal/cooling_device{n}/cur_state"))).unwrap()
    }

    #[test]
    fn a_reload_to_dry_run_restores_first_then_holds_the_level_as_would_be_and_publishes_the_mode() {
        let root = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let ladder = cooling_ladder(root.path(), 0);
        let mut w = worker(
            root.path(),
            state_dir.path(),
            BTreeMap::from([("d0".to_owned(), ladder.clone())]),
            Box::new(write_verified),
        );
        let state = Arc::new(Recorder::default());
        w.state = state.clone();
        let (mut originals, _) = Originals::load(state_dir.path(), root.path(), &w.allowed());
        w.set_level(&mut originals, "d0", 1).unwrap();
        assert_eq!(cur_state(root.path(), 0), "2\n");

        let done = w.reconfigure(&mut originals, settings(root.path(), ladder, ActionsMode::DryRun));
        assert_eq!(
            done.as_deref().map_err(ToString::to_string),
            Ok("actions dry-run (was enabled); original values restored for d0; \
                would be applied again (dry run): d0 at level 1")
        );
        assert_eq!(cur_state(root.path(), 0), "0\n", "the original is back");
        assert!(originals.entries.is_empty(), "nothing left to restore");
        let view = w.views.lock().unwrap().get("d0").cloned().unwrap();
        assert_eq!((view.level, view.dry_run), (1, true), "the level that would be applied");
        assert_eq!(state.mode(), Some(ActionsMode::DryRun));
        // Released in dry run: nothing written, and the event says what would be.
        w.set_level(&mut originals, "d0", 0).unwrap();
        assert_eq!(cur_state(root.path(), 0), "0\n");
    }

    #[test]
    fn a_reload_whose_restore_fails_says_so_and_keeps_showing_the_level_on_the_machine() {
        let root = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let ladder = cooling_ladder(root.path(), 0);
        // Throttle values stick; the original does not (a driver that refuses to lift a limit).
        let writer: WriteFn = Box::new(|r: &SysfsRoot, t: &Target, v: &str| {
            if v == "0" {
                return Err(WriteError::DidNotStick { path: r.display(t), wrote: v.into(), read: "2".into() });
            }
            write_verified(r, t, v)
        });
        let mut w = worker(root.path(), state_dir.path(), BTreeMap::from([("d0".to_owned(), ladder.clone())]), writer);
        let state = Arc::new(Recorder::default());
        w.state = state.clone();
        let (mut originals, _) = Originals::load(state_dir.path(), root.path(), &w.allowed());
        w.set_level(&mut originals, "d0", 1).unwrap();

        let e = w.reconfigure(&mut originals, settings(root.path(), ladder, ActionsMode::Disabled)).unwrap_err();
        assert!(matches!(&e, ActionFailure::Reload { failed, .. } if failed.len() == 1), "{e}");
        let e = e.to_string();
        assert!(e.starts_with("actions disabled (was enabled); throttle 1 -> 0 failed: "), "{e}");
        assert!(e.contains("the device stays at level 1"), "{e}");
        assert_eq!(cur_state(root.path(), 0), "2\n");
        assert_eq!(w.views.lock().unwrap().get("d0").map(|v| v.level), Some(1), "status shows what is on the machine");
        assert_eq!(originals.entries.len(), 1, "the original is kept for shutdown to restore");
        assert_eq!(state.mode(), Some(ActionsMode::Disabled));
    }

    #[test]
    fn a_retarget_restores_the_old_file_and_applies_the_level_to_the_new_one() {
        let root = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let (old, new) = (cooling_ladder(root.path(), 0), cooling_ladder(root.path(), 1));
        let mut w =
            worker(root.path(), state_dir.path(), BTreeMap::from([("d0".to_owned(), old)]), Box::new(write_verified));
        let (mut originals, _) = Originals::load(state_dir.path(), root.path(), &w.allowed());
        w.set_level(&mut originals, "d0", 1).unwrap();

        let done = w.reconfigure(&mut originals, settings(root.path(), new, ActionsMode::Enabled));
        assert_eq!(
            done.as_deref().map_err(ToString::to_string),
            Ok("actions enabled; original values restored for d0; applied again: d0 at level 1")
        );
        assert_eq!((cur_state(root.path(), 0), cur_state(root.path(), 1)), ("0\n".into(), "2\n".into()));
        assert_eq!(w.views.lock().unwrap().get("d0").map(|v| v.level), Some(1));
        assert_eq!(originals.entries.len(), 1, "the new file's original is saved");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_that_dies_is_reported_everywhere_and_requests_get_an_error() {
        let root = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "sysfs_root = {:?}\nstate_dir = {:?}\n[actions]\nenabled = true\n[discovery]\nenabled = false\n\
             [[device]]\nid = \"d0\"\nkind = \"loihi\"\n[device.throttle]\nthreshold = 80.0\n\
             [[device.throttle.level]]\ncooling_device = {{ device = \"cooling_device0\", state = 2 }}\n",
            root.path(),
            state_dir.path()
        );
        let config = config::parse_str(&toml, "test.toml").unwrap();
        let state = crate::publish::state::AgentState::new([]);
        let events = Arc::new(Events::without_journal("test".into()));
        let writer: WriteFn = Box::new(|_: &SysfsRoot, _: &Target, _: &str| panic!("a bug in the writer"));
        std::fs::create_dir_all(root.path().join("class/thermal/cooling_device0")).unwrap();
        std::fs::write(root.path().join("class/thermal/cooling_device0/cur_state"), "0\n").unwrap();
        // Linked to a running owner, as in the daemon: the stop reaches the published state through it.
        let (evidence, evidence_rx) = crate::model::evidence::channel();
        let link = crate::app::owner::ActionsLink {
            state: Arc::clone(&state),
            events: Arc::clone(&events),
            evidence: evidence.clone(),
        };
        let actions = Actions::start_with(&config, false, Arc::clone(&events), Arc::new(link), writer);
        let engine = crate::model::DeviceEngine::new(&config, std::time::Instant::now(), SystemTime::now());
        let effects = crate::app::owner::Effects {
            state: Arc::clone(&state),
            events: Arc::clone(&events),
            actions: actions.clone(),
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let owner = tokio::spawn(crate::app::owner::run(engine, evidence_rx, effects, shutdown.clone()));
        assert_eq!(crate::publish::http::healthy(&state.snapshot(), Instant::now(), state.started), Ok(()));

        let mark = actions.mark();
        actions.set_level("d0", 1);
        let e = actions.outcome_since("d0", mark).unwrap().wait(Duration::from_secs(10)).await.unwrap_err();
        assert!(matches!(e, ActionError::Down(_)), "{e}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while actions.down().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let why = actions.down().expect("the stop is published");
        evidence.flush().await;
        assert_eq!(why, "it panicked: a bug in the writer");
        let e = actions.outcome_since("d0", actions.mark()).err().expect("no request is taken any more");
        assert!(matches!(&e, ActionError::Down(w) if *w == why), "{e}");
        assert!(e.to_string().contains("restart the agent"), "{e}");
        let critical: u64 =
            events.counts().iter().filter(|(_, s, _)| *s == Severity::Critical).map(|(_, _, n)| *n).sum();
        assert_eq!(critical, 1, "one event says it");
        let healthy = crate::publish::http::healthy(&state.snapshot(), Instant::now(), state.started);
        assert_eq!(healthy.map_err(|e| e.to_string()), Err(format!("the actions worker stopped: {why}")));
        let scrape = crate::publish::exposition::Exposition::new(Arc::clone(&state))
            .render(crate::publish::exposition::Format::Text004, false);
        let scrape = String::from_utf8_lossy(&scrape);
        let up = scrape.lines().find_map(|l| l.strip_prefix("accel_actions_up ")).and_then(|v| v.parse::<f64>().ok());
        assert_eq!(up, Some(0.0), "{scrape}");
        shutdown.cancel();
        let _ = owner.await;
    }
}
