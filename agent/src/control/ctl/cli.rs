//! agentctl's command line (DESIGN.md fixes the verbs and exit codes).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::effects::journal::MAX_QUERY_LIMIT;

#[derive(Debug, Parser)]
#[command(
    name = "agentctl",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ACCEL_REVISION"), ")"),
    about = "Local diagnostics and control of accel-agent",
    long_about = "Talks to the running accel-agent over its control socket: what is wrong with this host's \
                  accelerators, and the only way to change what the agent does.",
    after_help = "Exit codes: 0 healthy/ok, 1 degraded (or a request the agent could not carry out), 2 unhealthy, \
                  3 agent unreachable, 4 refused (not authorised), 64 usage."
)]
pub struct CtlCli {
    /// The agent's control socket.
    #[arg(long, value_name = "PATH", global = true, env = "ACCEL_AGENT_SOCKET", default_value = config::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Machine-readable output (shapes documented in docs/api.md).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// One line per device: state, hottest sensor, power, throttle level, circuit, failing conditions.
    Status,
    /// Every device with its model, driver, PCI address and sources.
    Devices,
    /// One device in detail: readings with thresholds, conditions, probes, actions and its last events.
    Device {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Events from the journal, newest first.
    Events {
        /// Only events this recent, e.g. 30m, 2h, 1d.
        #[arg(long, value_name = "DUR")]
        since: Option<String>,
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Only events at least this severe: info, warning, critical, fatal.
        #[arg(long, value_name = "S")]
        severity: Option<String>,
        /// Only events of this kind, e.g. condition_set, action, operator.
        #[arg(long)]
        kind: Option<String>,
        /// Most events shown, at most 10000 (the agent's maximum; see docs/api.md).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=MAX_QUERY_LIMIT as u64))]
        limit: u64,
    },
    /// Run the device's reconnect ladder now, from its mildest step.
    Reconnect {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Hold a device at a throttle level (0 = unthrottled), optionally for a while.
    Throttle {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(value_name = "LEVEL")]
        level: usize,
        /// Release by itself after this long, e.g. 30m.
        #[arg(long = "for", value_name = "DUR")]
        for_: Option<String>,
    },
    /// Release a manual throttle: back to level 0, automatic throttling resumes.
    Unthrottle {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Maintenance on (no automatic actions; state "maintenance") or off.
    Maintenance {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(value_enum)]
        mode: OnOff,
        /// End by itself after this long, e.g. 2h.
        #[arg(long = "for", value_name = "DUR")]
        for_: Option<String>,
    },
    /// Clear latched conditions and a reconnect ladder that gave up, after a person has looked.
    SetHealthy {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Re-read the config file; an invalid one is reported and the running config kept.
    Reload,
    /// Run every check now; print each finding with the runbook step it replaces and what to do.
    /// With --level 1..3, run the configured diagnostics of that level and below instead (2 includes
    /// 1, as DCGM's r2 includes r1): exit 0 all passed, 1 one could not run, 2 one failed.
    Diagnose {
        /// 0: the passive checks (default); 1 quick, 2 medium, 3 deep diagnostics.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
        level: u8,
        /// Only this device (default: every device).
        #[arg(value_name = "ID")]
        id: Option<String>,
    },
    /// Write a tar.gz with the redacted config, state, events, metrics and matched log lines.
    Bundle {
        /// Where to write it (default: accel-agent-bundle-HOST-TIME.tar.gz here).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace FILE if it exists (it is removed first, a symlink itself rather than its target, and
        /// a new owner-only file written); without it, an existing FILE is refused.
        #[arg(short, long)]
        force: bool,
    },
    /// Validate a config file locally: exit 0 if valid, else 1 with each error as FILE:LINE:COL.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the man page (roff), e.g. `agentctl man > agentctl.1`.
    Man,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}
