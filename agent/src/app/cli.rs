//! Command-line interface of accel-agent (DESIGN.md fixes the flags).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "accel-agent",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ACCEL_REVISION"), ")"),
    about = "Node-local hardware health agent for accelerator hosts",
    long_about = "Reads sysfs thermal and power data of this host and serves it as Prometheus metrics.\n\
                  With no --config it reads /etc/accel-agent/agent.toml if present, else runs on the embedded default."
)]
pub struct Cli {
    /// Config file (TOML).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address of the HTTP endpoint; overrides `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Root of the sysfs tree to read; overrides `sysfs_root`.
    #[arg(long, value_name = "DIR", global = true)]
    pub sysfs_root: Option<PathBuf>,
    /// Directory for durable state; overrides `state_dir`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Control socket path; overrides `socket` (for `npd`: the socket to ask, default /run/accel-agent/agent.sock).
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// TLS and basic auth for the HTTP endpoint: a web config in the YAML format of Prometheus'
    /// exporter-toolkit (tls_server_config, http_server_config, basic_auth_users); see docs/security.md.
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Decide and record actions (throttling) without writing anything to the machine.
    #[arg(long)]
    pub dry_run: bool,
    /// Run on a simulated accelerator host in a temporary directory (Loihi, photonic, SpiNNaker and PCIe
    /// devices with scripted incidents); nothing outside it is touched, and it is removed on exit. Not in
    /// packaged builds (built without the `demo` feature).
    #[arg(long)]
    pub demo: bool,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A tracing filter: error, warn, info, debug, trace, or per-module directives.
    #[arg(long, value_name = "LEVEL", default_value = "info", env = "ACCEL_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Validate a config file: exit 0 if valid, else print each error as FILE:LINE:COL: message and exit 1.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the man page (roff) generated from these definitions, e.g. `accel-agent man > accel-agent.8`.
    Man,
    /// Print a shell completion script, e.g. `accel-agent completions bash > /etc/bash_completion.d/accel-agent`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Collect and probe once, print each device's state, failing conditions and the next step; exit 0
    /// if every device is healthy, 1 if any is degraded or unknown, 2 if any is unhealthy.
    Scan,
    /// One node-problem-detector custom-plugin check: ask the running agent whether a NodeCondition holds;
    /// print one line (at most 80 bytes) and exit 0 if not, 1 if it does, 2 if that cannot be told (agent
    /// down, slow or starting). See docs/kubernetes.md.
    Npd {
        /// The NodeCondition to answer.
        #[arg(long, value_enum, value_name = "TYPE")]
        condition: crate::control::npd::NodeCondition,
        /// Answer "unknown" (exit 2) if the agent has not replied within this long; keep it below the
        /// rule's timeout in the NPD config.
        #[arg(long, value_name = "DUR", default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
