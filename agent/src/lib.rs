//! accel-agent: reads this host's sysfs thermal and power data on background threads with deadlines and
//! serves it as Prometheus metrics. The binary is a thin wrapper around [`main_with_args`].

pub mod app;
pub mod control;
pub mod effects;
pub mod kube;
pub(crate) mod man;
pub(crate) mod model;
pub(crate) mod policy;
pub mod publish;
pub mod sources;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::app::cli::{Cli, Command};
use crate::app::{daemon, loading, logging, scan};
use crate::control::npd;

/// Runs accel-agent with the process's arguments.
pub fn main_with_args() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => check_config(file),
        Some(Command::Scan) => run_scan(&cli),
        Some(Command::Npd { condition, timeout }) => {
            npd::run(*condition, cli.socket.clone().unwrap_or_else(|| config::DEFAULT_SOCKET.into()), *timeout)
        }
        // Section 8: a system daemon (the units' Documentation= says accel-agent(8)).
        Some(Command::Man) => generate(|cmd, out| man::render(cmd, "8", out)),
        Some(Command::Completions { shell }) => generate(|mut cmd, out| {
            clap_complete::generate(*shell, &mut cmd, "accel-agent", out);
            Ok(())
        }),
        None => run_daemon(cli),
    }
}

/// Writes something generated from the clap definitions to stdout.
fn generate(f: impl FnOnce(clap::Command, &mut dyn std::io::Write) -> std::io::Result<()>) -> ExitCode {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    match f(Cli::command(), &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `accel-agent man | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accel-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_file(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_scan(cli: &Cli) -> ExitCode {
    if let Err(e) = logging::init(cli.log_format, "warn") {
        eprintln!("accel-agent: {e}");
        return ExitCode::FAILURE;
    }
    let (config, _) = match loading::load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accel-agent: cannot start the async runtime: {e}");
            return ExitCode::from(64);
        }
    };
    let (table, code) = runtime.block_on(scan::scan(&config));
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    print!("{table}");
    ExitCode::from(code)
}

fn run_daemon(cli: Cli) -> ExitCode {
    daemon::tune_malloc();
    if let Err(e) = logging::init(cli.log_format, &cli.log_level) {
        eprintln!("accel-agent: {e}");
        return ExitCode::FAILURE;
    }
    if cli.demo {
        return run_demo(cli);
    }
    let (config, source) = match loading::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    run_with(cli, config, source, CancellationToken::new())
}

#[cfg(feature = "demo")]
fn run_demo(cli: Cli) -> ExitCode {
    app::demo::run(cli)
}

/// Packaged builds leave the simulators out (the `demo` feature is off).
#[cfg(not(feature = "demo"))]
fn run_demo(_: Cli) -> ExitCode {
    eprintln!(
        "accel-agent: this build has no --demo (it was built without the `demo` feature, as packages are); \
         from a source checkout run: cargo run --release --bin accel-agent -- --demo"
    );
    ExitCode::from(64)
}

/// Runs the daemon on a loaded config until SIGTERM or SIGINT, or until `stop` is cancelled.
fn run_with(cli: Cli, config: config::Config, source: loading::ConfigSource, stop: CancellationToken) -> ExitCode {
    // Blocking work (encoding and compressing scrapes, journal queries, password checks) queues for 16
    // threads rather than growing the pool to tokio's default of 512 under a burst of scrapes.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accel-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(daemon::run(cli, config, source, stop));
    // Worker threads stuck in the kernel must not hold up exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accel-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
