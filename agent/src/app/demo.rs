//! `accel-agent --demo`: the whole agent on a simulated accelerator host (accel_e2e::demo_host) in a
//! temporary directory, with scripted incidents, so a newcomer sees it work on a laptop with no
//! accelerators. Actions are enabled but confined to that directory; it is removed on exit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use accel_e2e::demo_host::DemoHost;

use crate::app::cli::Cli;

/// The demo listens on loopback only: it is a demo, not an exporter for the network.
const DEFAULT_LISTEN: &str = "127.0.0.1:9860";

pub fn run(mut cli: Cli) -> ExitCode {
    let host = match DemoHost::build() {
        Ok(h) => Arc::new(h),
        Err(e) => {
            eprintln!("accel-agent: cannot build the simulated host: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = cli.listen.map_or(DEFAULT_LISTEN.to_owned(), |a| a.to_string());
    let config_path = host.dir().join("agent.toml");
    if let Err(e) = std::fs::write(&config_path, host.config(&listen)) {
        eprintln!("accel-agent: cannot write {}: {e}", config_path.display());
        return ExitCode::FAILURE;
    }
    // The simulated host's own paths win over anything given on the command line.
    cli.config = Some(config_path.clone());
    (cli.sysfs_root, cli.state_dir, cli.socket) = (None, None, None);
    let (config, source) = match crate::app::daemon::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("accel-agent: the demo's config does not load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let socket = config.socket.display().to_string();
    eprintln!(
        "\naccel-agent demo: a simulated host in {dir}\n\
         \x20 devices   loihi0 (Loihi 2), photon0 and photon1 (photonic), spin5-c0-f0-b0..3 (a SpiNNaker frame\n\
         \x20           behind a simulated BMP on {bmp}), hl0 (a habanalabs-like PCIe card)\n\
         \x20 look at   http://{listen}/            the device table\n\
         \x20           http://{listen}/metrics     Prometheus metrics\n\
         \x20           http://{listen}/health      JSON health\n\
         \x20 agentctl  cargo run --bin agentctl -- --socket {socket} status\n\
         \x20           (also: device loihi0, events, diagnose, throttle photon0 1 --for 1m, bundle)\n\
         \x20 incidents play out over about four minutes, then repeat; Ctrl-C stops and removes everything.\n",
        dir = host.dir().display(),
        bmp = host.bmp.addr(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let story = {
        let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
        let started = Instant::now();
        std::thread::Builder::new().name("demo-story".into()).spawn(move || {
            host.run_scenarios(&stop, &|line| {
                let secs = started.elapsed().as_secs();
                let _ = writeln!(std::io::stderr(), "[demo +{:>3}:{:02}] {line}", secs / 60, secs % 60);
            });
        })
    };
    let code = crate::run_with(cli, config, source);
    stop.store(true, Ordering::Relaxed);
    if let Ok(t) = story {
        let _ = t.join();
    }
    let dir = host.dir().to_owned();
    drop(host);
    eprintln!("accel-agent demo: removed {}", dir.display());
    code
}
