//! Running an SDK status tool with a deadline.
//!
//! Vendor tools hang in the driver, fork helpers, and print without bound; the agent runs them every few
//! seconds for weeks. So the tool gets its own process group, killed as a whole at the deadline; its
//! output is capped; and the probe never waits on a pipe that some leftover grandchild keeps open.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use config::redact::redact_text;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::capture::Capture;
use super::readings::{OutputFormat, ReadingKind};
use crate::fault::AgentFault;

pub const DEFAULT_STDOUT_CAP: usize = 64 * 1024;
pub const DEFAULT_STDERR_CAP: usize = 16 * 1024;
/// How long output may still arrive once the tool has exited: its own writes are already in the pipe,
/// anything later comes from a grandchild that outlived it.
pub const DEFAULT_PIPE_GRACE: Duration = Duration::from_millis(100);
/// How long to wait for a SIGKILLed tool to be reapable. A process stuck in the kernel (D state) dies
/// only when the driver lets go; then it is left to tokio's orphan reaper rather than holding the probe.
const REAP_AFTER_KILL: Duration = Duration::from_secs(1);

/// A status tool invocation.
#[derive(Debug, Clone)]
pub struct CommandProbe {
    /// Program and arguments, run directly (no shell: arguments from configuration are never re-parsed).
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// Variables set for the tool, on top of `base_env`.
    pub env: BTreeMap<String, String>,
    pub base_env: BaseEnv,
    pub output: OutputFormat,
    pub stdout_cap: usize,
    pub stderr_cap: usize,
    pub pipe_grace: Duration,
    /// At the deadline, the group first gets SIGTERM and this long to exit before SIGKILL (a diagnostic
    /// may leave a device in a known state when asked to stop); None kills it at once.
    pub term_grace: Option<Duration>,
}

/// What a tool's environment starts from, before `env` is added. Never the agent's whole environment,
/// which holds credentials (see [`super::child_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseEnv {
    /// The allowlist of [`super::child_env::minimal`]: `PATH`, locale and time zone.
    Minimal,
    /// Nothing.
    Empty,
}

/// The verdict, following the convention of monitoring plugins: exit 0 ok, 1 problem, 2 unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeStatus {
    Ok,
    Problem,
    Unknown,
    Failed(FailReason),
    /// The tool was never started because the agent itself is out of a resource: this says nothing about
    /// the device (see [`crate::fault`]).
    NotRun(AgentFault),
}

impl ProbeStatus {
    /// The `status` label value.
    pub fn label(&self) -> &'static str {
        match self {
            ProbeStatus::Ok => "ok",
            ProbeStatus::Problem => "problem",
            ProbeStatus::Unknown => "unknown",
            ProbeStatus::Failed(_) => "failed",
            ProbeStatus::NotRun(_) => "not_run",
        }
    }
}

/// Why a probe gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    #[error("timed out")]
    Timeout,
    /// The program could not be started for a reason of its own (missing, not executable); the message
    /// names it.
    #[error("{0}")]
    Spawn(String),
    #[error("killed by signal {0}")]
    Signal(i32),
    /// An exit code outside 0..=2.
    #[error("exit code {0}")]
    ExitCode(i32),
    /// The tool's exit status could not be collected; the message names it.
    #[error("{0}")]
    Wait(String),
}

impl FailReason {
    /// The `reason` label value.
    pub fn label(&self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::Spawn(_) => "spawn",
            FailReason::Signal(_) => "signal",
            FailReason::ExitCode(_) => "exit_code",
            FailReason::Wait(_) => "wait",
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub status: ProbeStatus,
    /// None when the tool did not exit by itself (signal, timeout, spawn failure).
    pub exit_code: Option<i32>,
    pub duration: Duration,
    /// Standard output up to the cap, invalid UTF-8 replaced, secrets redacted (readings are parsed
    /// before).
    pub stdout: String,
    /// Standard error up to its cap, secrets redacted: it is shown on pages, in the API, events and logs.
    pub stderr_excerpt: String,
    /// Either stream exceeded its cap.
    pub truncated: bool,
    /// Only from a tool that exited 0, 1 or 2: the output of a killed or crashed tool is not trusted.
    pub readings: Vec<(ReadingKind, f64)>,
    /// Configured fields that were missing or unparsable.
    pub parse_errors: u32,
}

/// How the wait for the tool ended.
enum Ended {
    Exited(ExitStatus),
    TimedOut,
    WaitFailed(std::io::Error),
}

impl CommandProbe {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>, timeout: Duration) -> CommandProbe {
        CommandProbe {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout,
            env: BTreeMap::new(),
            base_env: BaseEnv::Minimal,
            output: OutputFormat::None,
            stdout_cap: DEFAULT_STDOUT_CAP,
            stderr_cap: DEFAULT_STDERR_CAP,
            pipe_grace: DEFAULT_PIPE_GRACE,
            term_grace: None,
        }
    }

    pub fn with_term_grace(mut self, grace: Duration) -> CommandProbe {
        self.term_grace = Some(grace);
        self
    }

    pub fn with_output(mut self, output: OutputFormat) -> CommandProbe {
        self.output = output;
        self
    }

    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> CommandProbe {
        self.env.insert(key.into(), value.into());
        self
    }

    /// The program, for messages.
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    pub async fn run(&self) -> ProbeOutcome {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut child = match self.spawn() {
            Ok(child) => GroupChild(child),
            Err(status) => return self.not_started(status, started),
        };
        let mut stdout = Capture::new(self.stdout_cap);
        let mut stderr = Capture::new(self.stderr_cap);
        let out_pipe = child.0.stdout.take();
        let err_pipe = child.0.stderr.take();

        let ended = {
            let pipes = async { tokio::join!(stdout.drain(out_pipe), stderr.drain(err_pipe)) };
            tokio::pin!(pipes);
            let mut pipes_done = false;
            // The pipes are drained while waiting, or a chatty tool would block on a full pipe and never exit.
            let exit = ExitWatch::new(&child.0);
            let ended = loop {
                tokio::select! {
                    status = exit.wait(&mut child) => break match status {
                        Ok(status) => Ended::Exited(status),
                        Err(e) => Ended::WaitFailed(e),
                    },
                    _ = &mut pipes, if !pipes_done => pipes_done = true,
                    () = tokio::time::sleep_until(deadline) => break Ended::TimedOut,
                }
            };
            if matches!(ended, Ended::TimedOut) {
                if let Some(grace) = self.term_grace {
                    child.signal_group(libc::SIGTERM);
                    // Seen exiting through the pidfd, the group is SIGKILLed while the tool is unreaped.
                    let _ = tokio::time::timeout(grace, exit.wait(&mut child)).await;
                }
                child.kill_group();
                if tokio::time::timeout(REAP_AFTER_KILL, child.0.wait()).await.is_err() {
                    tracing::warn!(program = self.program(), "probe killed at its timeout but not yet exited");
                }
            }
            if !pipes_done {
                // Dropping `pipes` afterwards closes our ends: a leftover writer gets EPIPE, not a full pipe.
                let _ = tokio::time::timeout(self.pipe_grace, &mut pipes).await;
            }
            ended
        };

        let (status, exit_code) = match ended {
            Ended::Exited(status) => classify(status),
            Ended::TimedOut => (ProbeStatus::Failed(FailReason::Timeout), None),
            Ended::WaitFailed(e) => {
                (ProbeStatus::Failed(FailReason::Wait(format!("waiting for {}: {e}", self.program()))), None)
            }
        };
        let text = stdout.text();
        let parsed = match status {
            ProbeStatus::Failed(_) => Default::default(),
            _ => self.output.parse(&text),
        };
        // Tools print their own command lines and tokens in errors. This is where their output enters the
        // agent, so it is redacted here once and everything downstream (model, pages, API, bundle, events,
        // log) only ever holds the redacted text.
        ProbeOutcome {
            status,
            exit_code,
            duration: started.elapsed(),
            stdout: redact_text(&text),
            stderr_excerpt: redact_text(&stderr.text()),
            truncated: stdout.truncated() || stderr.truncated(),
            readings: parsed.readings,
            parse_errors: parsed.parse_errors,
        }
    }

    /// Starts the tool; the error is the outcome: the agent's own fault, or a failure of the tool's.
    fn spawn(&self) -> Result<Child, ProbeStatus> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(ProbeStatus::Failed(FailReason::Spawn("empty command line".to_owned())));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that the helpers it forks can be killed with it.
            .process_group(0)
            // Covers the caller dropping `run` midway; `GroupChild` takes the rest of the group.
            .kill_on_drop(true);
        cmd.env_clear();
        if self.base_env == BaseEnv::Minimal {
            cmd.envs(super::child_env::minimal(std::env::vars_os()));
        }
        cmd.envs(&self.env);
        cmd.spawn().map_err(|e| match AgentFault::of(&e) {
            Some(fault) => ProbeStatus::NotRun(fault),
            None => ProbeStatus::Failed(FailReason::Spawn(format!("spawning {program}: {e}"))),
        })
    }

    fn not_started(&self, status: ProbeStatus, started: Instant) -> ProbeOutcome {
        ProbeOutcome {
            status,
            exit_code: None,
            duration: started.elapsed(),
            stdout: String::new(),
            stderr_excerpt: String::new(),
            truncated: false,
            readings: Vec::new(),
            parse_errors: 0,
        }
    }
}

fn classify(status: ExitStatus) -> (ProbeStatus, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (ProbeStatus::Ok, Some(0)),
        (Some(1), _) => (ProbeStatus::Problem, Some(1)),
        (Some(2), _) => (ProbeStatus::Unknown, Some(2)),
        (Some(code), _) => (ProbeStatus::Failed(FailReason::ExitCode(code)), Some(code)),
        (None, Some(signal)) => (ProbeStatus::Failed(FailReason::Signal(signal)), None),
        // Neither code nor signal: only stopped/continued states, which `wait` does not report.
        (None, None) => (ProbeStatus::Failed(FailReason::Wait(format!("unexpected wait status {status}"))), None),
    }
}

/// Waits for the tool to exit so that what it forked dies with it: the exit is seen through a pidfd,
/// which reports it without reaping, so the tool's pid (and with it the group id) cannot be reused while
/// the group is killed; only then is the tool reaped. A helper left running in the background (`sleep
/// 300 &`) would otherwise outlive every run of the probe. Without pidfds (Linux < 5.3) the tool is reaped
/// first and its group is left alone, as killing a group whose leader is gone could hit a reused id.
struct ExitWatch(Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>);

impl ExitWatch {
    fn new(child: &Child) -> ExitWatch {
        let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) else { return ExitWatch(None) };
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let Ok(fd) = std::os::fd::RawFd::try_from(fd) else { return ExitWatch(None) };
        if fd < 0 {
            return ExitWatch(None);
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the descriptor, so it stays open for as long as it is registered.
        let registered =
            unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) };
        ExitWatch(registered.ok())
    }

    /// The tool's exit status, after its process group was killed (with a pidfd).
    async fn wait(&self, child: &mut GroupChild) -> std::io::Result<ExitStatus> {
        if let Some(fd) = &self.0 {
            // Readable once the tool has exited; it stays a zombie, holding its pid, until reaped below.
            let _ = fd.readable().await?;
            child.signal_group(libc::SIGKILL);
        }
        child.0.wait().await
    }
}

/// A spawned tool whose whole process group is killed if it is dropped before being reaped.
struct GroupChild(Child);

impl GroupChild {
    /// SIGKILLs the tool's process group. Only while the tool is unreaped: its pid, which is the group id,
    /// cannot have been reused until then, so the signal cannot reach an unrelated group.
    fn kill_group(&mut self) {
        if self.signal_group(libc::SIGKILL) {
            // The tool may have moved itself to another group; it must die in any case.
            let _ = self.0.start_kill();
        }
    }

    /// Signals the process group while the tool is unreaped (running or a zombie); false once reaped.
    fn signal_group(&self, signal: libc::c_int) -> bool {
        let Some(pid) = self.0.id().and_then(|pid| i32::try_from(pid).ok()) else { return false };
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, signal);
        }
        true
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_plugin_convention() {
        let of = |code: i32| classify(ExitStatus::from_raw(code << 8));
        assert_eq!(of(0), (ProbeStatus::Ok, Some(0)));
        assert_eq!(of(1), (ProbeStatus::Problem, Some(1)));
        assert_eq!(of(2), (ProbeStatus::Unknown, Some(2)));
        assert_eq!(of(3), (ProbeStatus::Failed(FailReason::ExitCode(3)), Some(3)));
        assert_eq!(classify(ExitStatus::from_raw(libc::SIGSEGV)), (ProbeStatus::Failed(FailReason::Signal(11)), None));
    }

    #[tokio::test]
    async fn empty_argv_is_a_spawn_failure() {
        let probe = CommandProbe::new(Vec::<String>::new(), Duration::from_secs(1));
        let outcome = probe.run().await;
        assert_eq!(outcome.status, ProbeStatus::Failed(FailReason::Spawn("empty command line".to_owned())));
    }
}
