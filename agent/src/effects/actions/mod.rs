//! The actions layer: the only part of the agent that changes the machine.
//!
//! Off unless `[actions] enabled = true` (or `--dry-run`, which records what would be done and writes
//! nothing). One thread applies every change in order, so two decisions never race on a file; the
//! async side only sends requests. Every write is confined to the files the config names, read back,
//! and preceded by saving the original value on disk; originals are restored when a device comes down
//! to level 0, at shutdown, and at the next start after a crash.

pub mod hooks;
pub mod reconnect;
pub mod throttle;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use collectors::spinnaker::RetryPolicy;
use config::Config;
use config::device::ThrottleLevel;
use serde::Serialize;

use crate::effects::journal::{Event, Severity, kind};
use crate::model::events::Events;
use throttle::{all_files, plan};
use write::{Originals, WriteError, confine, write_verified};

/// How long a vendor throttle command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

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

enum Request {
    SetLevel { device: String, level: usize },
    Reconfigure(Box<Settings>),
    Reconnect { device: String, step: String },
    RestoreAll { done: Sender<()> },
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
            scp_policy: crate::sources::spinnaker::retry_policy(config),
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

    fn active(&self) -> bool {
        self.write || self.dry_run
    }
}

/// The async side's handle.
#[derive(Clone)]
pub struct Actions {
    requests: Option<Sender<Request>>,
    views: Arc<Mutex<BTreeMap<String, ThrottleView>>>,
    /// Whether anything is decided at all (enabled, or dry-run); a reload may change it.
    active: Arc<AtomicBool>,
}

impl Actions {
    /// Starts the actions thread. Leftovers of a previous run (originals of a crash) are restored first,
    /// even with actions disabled now: undoing the agent's own writes is always safe.
    pub fn start(config: &Config, dry_run_flag: bool, events: Arc<Events>) -> Actions {
        let settings = Settings::of(config, dry_run_flag);
        let active = Arc::new(AtomicBool::new(settings.active()));
        let views = Arc::new(Mutex::new(BTreeMap::new()));
        let (tx, rx) = channel();
        let mut worker = Worker {
            writer: Box::new(write_verified),
            // Power commands to BMPs are async; they run on the agent's runtime, not on this thread.
            runtime: tokio::runtime::Handle::try_current().ok(),
            scp_policy: settings.scp_policy,
            reconnects: BTreeMap::new(),
            root: settings.root.clone(),
            state_dir: config.state_dir.clone(),
            write: false,
            dry_run: false,
            ladders: BTreeMap::new(),
            views: Arc::clone(&views),
            events,
            locked: BTreeSet::new(),
        };
        worker.adopt(settings);
        let spawned = std::thread::Builder::new().name("actions".into()).spawn(move || worker.run(rx));
        let requests = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!("cannot start the actions thread; no actions will be taken: {e}");
                None
            }
        };
        Actions { requests, views, active }
    }

    /// Whether anything is decided at all (enabled, or dry-run).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes a reloaded config. A device whose ladder changed or went is first brought back to its
    /// original values under the old ladder; levels of unchanged ladders stay as they are.
    pub fn reconfigure(&self, config: &Config, dry_run_flag: bool) {
        let settings = Settings::of(config, dry_run_flag);
        self.active.store(settings.active(), Ordering::Relaxed);
        if let Some(tx) = &self.requests {
            let _ = tx.send(Request::Reconfigure(Box::new(settings)));
        }
    }

    /// The level applied to a device (0 if it has no throttle).
    pub fn level(&self, device: &str) -> usize {
        self.views.lock().unwrap_or_else(PoisonError::into_inner).get(device).map_or(0, |v| v.level)
    }

    /// Runs one reconnect step for a device (its ladder and PCI address come from the config).
    pub fn reconnect(&self, device: &str, step: &str) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(Request::Reconnect { device: device.to_owned(), step: step.to_owned() });
        }
    }

    pub fn set_level(&self, device: &str, level: usize) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(Request::SetLevel { device: device.to_owned(), level });
        }
    }

    pub fn views(&self) -> Vec<ThrottleView> {
        self.views.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Restores every original value; returns when done or after `timeout`.
    pub fn restore_all(&self, timeout: Duration) {
        if let Some(tx) = &self.requests {
            let (done, wait) = channel();
            if tx.send(Request::RestoreAll { done }).is_ok() && wait.recv_timeout(timeout).is_err() {
                tracing::warn!("restoring throttled devices did not finish within {timeout:?}");
            }
        }
    }
}

/// Writes and verifies one value. A seam for tests: kernels answer ENODATA for locked limits, regular
/// files cannot.
type WriteFn = Box<dyn Fn(&Path, &str) -> Result<(), WriteError> + Send>;

struct Worker {
    writer: WriteFn,
    runtime: Option<tokio::runtime::Handle>,
    scp_policy: RetryPolicy,
    reconnects: BTreeMap<String, ReconnectTarget>,
    root: PathBuf,
    state_dir: PathBuf,
    /// Writes really happen (enabled and not dry-run).
    write: bool,
    dry_run: bool,
    ladders: BTreeMap<String, Vec<ThrottleLevel>>,
    views: Arc<Mutex<BTreeMap<String, ThrottleView>>>,
    events: Arc<Events>,
    /// Files the firmware locked.
    locked: BTreeSet<PathBuf>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Request>) {
        let mut originals = match Originals::load(&self.state_dir) {
            Ok(o) => o,
            Err(e) => {
                self.event(None, Severity::Critical, format!("cannot read saved originals, actions disabled: {e}"));
                return;
            }
        };
        self.restore(&mut originals, None, "restored after a restart");
        while let Ok(req) = rx.recv() {
            match req {
                Request::SetLevel { device, level } => self.set_level(&mut originals, &device, level),
                Request::Reconfigure(settings) => {
                    let changed: Vec<String> = self
                        .ladders
                        .iter()
                        .filter(|(id, ladder)| settings.ladders.get(*id) != Some(ladder))
                        .map(|(id, _)| id.clone())
                        .collect();
                    for device in changed {
                        self.set_level(&mut originals, &device, 0);
                    }
                    self.adopt(*settings);
                }
                Request::Reconnect { device, step } => self.reconnect(&device, &step),
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

    /// Switches to new settings; throttle views of unchanged ladders keep their level and counts.
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
        self.reconnects = s.reconnects;
        self.scp_policy = s.scp_policy;
        self.root = s.root;
        self.write = s.write;
        self.dry_run = s.dry_run;
        self.ladders = s.ladders;
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

    /// Writes back saved originals (of one device, or all), forgetting each that is restored.
    fn restore(&mut self, originals: &mut Originals, device: Option<&str>, why: &str) {
        let entries: Vec<(PathBuf, write::Original)> = originals
            .entries
            .iter()
            .filter(|(_, o)| device.is_none_or(|d| o.device == d))
            .map(|(p, o)| (p.clone(), o.clone()))
            .collect();
        for (path, original) in entries {
            match write_verified(&path, &original.value) {
                Ok(()) => {
                    let _ = originals.forget(&path);
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

    fn set_level(&mut self, originals: &mut Originals, device: &str, target: usize) {
        let Some(levels) = self.ladders.get(device).cloned() else { return };
        let target = target.min(levels.len());
        let current = self.views.lock().unwrap_or_else(PoisonError::into_inner).get(device).map_or(0, |v| v.level);
        if target == current {
            return;
        }
        let want = plan(&levels, target);
        let mut done = Vec::new();
        let mut failed: Option<String> = None;
        for file in all_files(&levels) {
            let path = match confine(&self.root, &file) {
                Ok(p) => p,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            if self.locked.contains(&path) {
                continue;
            }
            let value = match want.get(&file) {
                Some(v) => v.clone(),
                // Not throttled at this level: back to the original, if we ever changed it.
                None => match originals.entries.get(&path) {
                    Some(o) => o.value.clone(),
                    None => continue,
                },
            };
            if !self.write {
                done.push(format!("would write {} = {value}", path.display()));
                continue;
            }
            match self.write_one(originals, &path, device, &value, want.contains_key(&file)) {
                Ok(()) => done.push(format!("{} = {value}", path.display())),
                Err(e) if e.is_locked() => {
                    self.locked.insert(path.clone());
                    self.event(Some(device), Severity::Critical, format!("{e}; throttling continues without it"));
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if failed.is_none() {
            failed = self.run_command(&levels, device, target).err();
        }
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(view) = views.get_mut(device) else { return };
        view.locked = self.locked.iter().map(|p| p.display().to_string()).collect();
        match failed {
            Some(e) => {
                view.last_error = Some(e.clone());
                drop(views);
                // A failed or unverified write is not a state change: the level stays where it was.
                self.event(Some(device), Severity::Critical, format!("throttle {current} -> {target} failed: {e}"));
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
                self.event(
                    Some(device),
                    severity,
                    format!("{how}throttle level {current} -> {target}: {}", done.join(", ")),
                );
            }
        }
    }

    fn write_one(
        &mut self,
        originals: &mut Originals,
        path: &Path,
        device: &str,
        value: &str,
        throttling: bool,
    ) -> Result<(), WriteError> {
        if throttling {
            originals.save_first(path, device)?;
        }
        (self.writer)(path, value)?;
        if !throttling {
            originals.forget(path)?;
        }
        Ok(())
    }

    /// One reconnect step. Whether it worked is judged later, by the device coming back.
    fn reconnect(&mut self, device: &str, step: &str) {
        let Some(target) = self.reconnects.get(device).cloned() else { return };
        let outcome = if !self.write {
            Ok(format!("dry run: would run reconnect step {step}"))
        } else if step == "power_cycle" {
            self.power_cycle(device, target.bmp)
        } else {
            self.run_step(device, step, target.command.as_deref(), target.pci.as_deref())
        };
        match outcome {
            Ok(what) => self.event(Some(device), Severity::Warning, format!("reconnect step {step}: {what}")),
            Err(e) => self.event(Some(device), Severity::Critical, format!("reconnect step {step} failed: {e}")),
        }
    }

    fn run_step(
        &self,
        device: &str,
        step: &str,
        command: Option<&[String]>,
        pci: Option<&str>,
    ) -> Result<String, String> {
        let poke = |rel: &str, value: &str| -> Result<(), String> {
            let path = confine(&self.root, rel).map_err(|e| e.to_string())?;
            write::write_once(&path, value).map_err(|e| e.to_string())
        };
        let pci = || pci.ok_or_else(|| format!("step {step} needs the device's pci_address"));
        match step {
            "vendor" => {
                let argv: Vec<String> = command.unwrap_or_default().iter().map(|a| a.replace("{id}", device)).collect();
                self.run_argv(&argv)?;
                Ok(format!("ran {}", argv.join(" ")))
            }
            "driver_reset" => {
                poke(&format!("bus/pci/devices/{}/hard_reset", pci()?), "1")?;
                Ok("wrote 1 to hard_reset".into())
            }
            "function_reset" => {
                poke(&format!("bus/pci/devices/{}/reset", pci()?), "1")?;
                Ok("wrote 1 to reset".into())
            }
            "rebind" => {
                let addr = pci()?;
                let driver_link = self.root.join(format!("bus/pci/devices/{addr}/driver"));
                let driver = std::fs::read_link(&driver_link)
                    .ok()
                    .and_then(|t| t.file_name().and_then(|n| n.to_str()).map(str::to_owned))
                    .ok_or_else(|| format!("{}: no driver bound", driver_link.display()))?;
                poke(&format!("bus/pci/drivers/{driver}/unbind"), addr)?;
                poke(&format!("bus/pci/drivers/{driver}/bind"), addr)?;
                Ok(format!("unbound and bound {driver}"))
            }
            "remove_rescan" => {
                poke(&format!("bus/pci/devices/{}/remove", pci()?), "1")?;
                poke("bus/pci/rescan", "1")?;
                Ok("removed the function and rescanned the bus".into())
            }
            other => Err(format!("unknown step {other}")),
        }
    }

    /// Power-cycles a SpiNNaker board through its frame's BMP, off then on. It runs on the agent's runtime
    /// (power-on takes seconds) so throttling is not held up; its outcome is an event of its own, and
    /// the reconnect ladder judges success by the board answering again after `settle`.
    fn power_cycle(&self, device: &str, bmp: Option<(SocketAddr, u8)>) -> Result<String, String> {
        let (addr, board) = bmp.ok_or("step power_cycle needs the board's BMP")?;
        let runtime = self.runtime.clone().ok_or("no async runtime for BMP commands")?;
        let (events, device, policy) = (Arc::clone(&self.events), device.to_owned(), self.scp_policy);
        runtime.spawn(async move {
            let result = crate::sources::spinnaker::power_cycle(policy, addr, board).await;
            let (severity, message) = match result {
                Ok(()) => (Severity::Info, format!("power cycle through BMP {addr}: board {board} off and on again")),
                Err(e) => (Severity::Critical, format!("power cycle through BMP {addr} failed: {e}")),
            };
            events.record(Event::new(SystemTime::now(), severity, kind::ACTION, message).on_device(device));
        });
        Ok(format!("power cycle of board {board} sent to BMP {addr}"))
    }

    /// Runs the vendor command of the level entered (for level 0, level 1's command with level 0).
    fn run_command(&self, levels: &[ThrottleLevel], device: &str, target: usize) -> Result<(), String> {
        let Some(argv) = levels.get(target.saturating_sub(1)).and_then(|l| l.command.as_ref()) else { return Ok(()) };
        let argv: Vec<String> =
            argv.iter().map(|a| a.replace("{id}", device).replace("{level}", &target.to_string())).collect();
        if !self.write {
            return Ok(());
        }
        self.run_argv(&argv)
    }

    /// Runs a command without a shell, in its own process group, killed as a group at the deadline.
    fn run_argv(&self, argv: &[String]) -> Result<(), String> {
        let Some((program, args)) = argv.split_first() else { return Ok(()) };
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot run {program}: {e}"))?
        };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{program} exited with {status}")),
                Ok(None) if started.elapsed() > COMMAND_TIMEOUT => {
                    // SAFETY: signalling the process group we created for this child.
                    unsafe {
                        libc::kill(-(child.id() as i32), libc::SIGKILL);
                    }
                    let _ = child.wait();
                    return Err(format!("{program} did not finish within {COMMAND_TIMEOUT:?}"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for {program}: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::device::{CoolingStep, PowercapStep};
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        let events = Arc::new(Events::without_journal("test".into()));
        let views = Arc::new(Mutex::new(BTreeMap::from([(
            "d0".to_owned(),
            ThrottleView { device: "d0".into(), max_level: 2, ..Default::default() },
        )])));
        let mut w = Worker {
            writer: Box::new(move |p: &Path, v: &str| {
                if p.ends_with("constraint_0_power_limit_uw") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    return Err(WriteError::Locked { path: p.to_owned() });
                }
                write_verified(p, v)
            }),
            runtime: None,
            scp_policy: RetryPolicy::default(),
            reconnects: BTreeMap::new(),
            root: root.path().to_owned(),
            state_dir: state.path().to_owned(),
            write: true,
            dry_run: false,
            ladders: BTreeMap::from([("d0".to_owned(), levels)]),
            views: Arc::clone(&views),
            events: Arc::clone(&events),
            locked: BTreeSet::new(),
        };
        let mut originals = Originals::load(state.path()).unwrap();
        w.set_level(&mut originals, "d0", 1);
        let v = views.lock().unwrap().get("d0").cloned().unwrap();
        assert_eq!(v.level, 1, "the rest of the level still applied");
        assert_eq!(v.locked.len(), 1);
        assert!(v.locked[0].ends_with("constraint_0_power_limit_uw"));
        assert_eq!(std::fs::read_to_string(&cooling).unwrap(), "2\n");
        assert_eq!(std::fs::read_to_string(&limit).unwrap(), "150000000\n", "untouched");
        let critical =
            events.counts().iter().filter(|(_, s, _)| *s == Severity::Critical).map(|(_, _, n)| *n).sum::<u64>();
        assert_eq!(critical, 1, "said once");
        // Up and down again: the locked limit is not tried again.
        w.set_level(&mut originals, "d0", 2);
        w.set_level(&mut originals, "d0", 0);
        assert_eq!(limit_writes.load(Ordering::SeqCst), 1);
        assert_eq!(std::fs::read_to_string(&cooling).unwrap(), "0\n", "the original state is back");
    }
}
