//! `accel-agent --demo`: the whole agent on a simulated accelerator host (accel_sim::demo_host) in a
//! temporary directory, with scripted incidents, so a newcomer sees it work on a laptop with no
//! accelerators. Actions are enabled but confined to that directory; it is removed on exit.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use accel_sim::demo_host::DemoHost;
use tokio_util::sync::CancellationToken;

use crate::app::cli::Cli;

/// The demo listens on loopback only: it is a demo, not an exporter for the network.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9860);

/// Writes to stderr, ignoring failure: with the output piped into `head`, a line that can no longer be
/// written must not panic the demo before it has stopped the agent and removed its directory.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub fn run(mut cli: Cli) -> ExitCode {
    let wanted = cli.listen.unwrap_or(DEFAULT_LISTEN);
    // Try the address before announcing it; port 0 becomes the free port the system picked. The agent
    // binds it again a moment later.
    let listen = match TcpListener::bind(wanted).and_then(|l| l.local_addr()) {
        Ok(addr) => addr,
        Err(e) => {
            let other = SocketAddr::new(wanted.ip(), wanted.port().wrapping_add(1).max(1024));
            say!(
                "accel-agent: the demo cannot listen on {wanted}: {e}\n\
                 another program (another demo?) may use that port: pick another with --listen, e.g.\n\
                 \x20 cargo run --release --bin accel-agent -- --demo --listen {other}"
            );
            return ExitCode::FAILURE;
        }
    };
    let host = match DemoHost::build() {
        Ok(h) => Arc::new(h),
        Err(e) => {
            say!("accel-agent: cannot build the simulated host: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_path = host.dir().join("agent.toml");
    if let Err(e) = std::fs::write(&config_path, host.config(&listen.to_string())) {
        say!("accel-agent: cannot write {}: {e}", config_path.display());
        return ExitCode::FAILURE;
    }
    // The simulated host's own paths win over anything given on the command line.
    cli.config = Some(config_path.clone());
    cli.listen = Some(listen);
    (cli.sysfs_root, cli.state_dir, cli.socket) = (None, None, None);
    let (config, source) = match crate::app::loading::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            say!("accel-agent: the demo's config does not load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    say!("{}", banner(&host, listen, &config.socket.display().to_string()));
    let stop = Arc::new(AtomicBool::new(false));
    let story = {
        let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
        let started = Instant::now();
        std::thread::Builder::new().name("demo-story".into()).spawn(move || {
            host.run_scenarios(&stop, &|line| {
                let secs = started.elapsed().as_secs();
                say!("[demo +{:>3}:{:02}] {line}", secs / 60, secs % 60);
            });
        })
    };
    // The agent stops when the demo's output is gone (`accel-agent --demo 2>&1 | head`), as it does on
    // Ctrl-C, so the directory is removed either way.
    let agent_stop = CancellationToken::new();
    let watcher = {
        let (stop, agent_stop) = (Arc::clone(&stop), agent_stop.clone());
        std::thread::Builder::new().name("demo-output".into()).spawn(move || {
            let mut outputs = [1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
            while !stop.load(Ordering::Relaxed) {
                if output_closed(&mut outputs, Duration::from_millis(250)) {
                    agent_stop.cancel();
                    break;
                }
            }
        })
    };
    let code = crate::run_with(cli, config, source, agent_stop);
    stop.store(true, Ordering::Relaxed);
    for thread in [story, watcher].into_iter().flatten() {
        let _ = thread.join();
    }
    let dir = host.dir().to_owned();
    drop(host);
    say!("accel-agent demo: removed {}", dir.display());
    code
}

/// What the demo prints first: where to look and commands that work when pasted.
fn banner(host: &DemoHost, listen: SocketAddr, socket: &str) -> String {
    let ctl = format!("cargo run --release --bin agentctl -- --socket {socket}");
    format!(
        "\naccel-agent demo: a simulated host in {dir}\n\
         \x20 devices   loihi0 (Loihi 2), photon0 and photon1 (photonic), spin5-c0-f0-b0..3 (a SpiNNaker frame\n\
         \x20           behind a simulated BMP on {bmp}), hl0 (a habanalabs-like PCIe card)\n\
         \x20 kubelet   a fake kubelet in {dir}/kubelet: the boards are advertised to it, each runs a pod\n\
         \x20 look at   http://{listen}/            the device table\n\
         \x20           http://{listen}/metrics     Prometheus metrics\n\
         \x20           http://{listen}/health      JSON health\n\
         \x20 agentctl  {ctl} status\n\
         \x20           {ctl} device loihi0\n\
         \x20           {ctl} throttle loihi0 1 --for 1m\n\
         \x20           {ctl} diagnose --level 2 photon0\n\
         \x20           (also: events, diagnose, bundle)\n\
         \x20 incidents play out over about four minutes, then repeat; Ctrl-C stops and removes everything.\n",
        dir = host.dir().display(),
        bmp = host.bmp.addr(),
    )
}

/// Whether stdout or stderr is a pipe whose reader has gone (poll reports POLLERR on the write end),
/// waiting up to `timeout` for that to happen. A terminal or a file never reports it; a descriptor that
/// is not open is left out from then on (poll ignores negative ones).
fn output_closed(fds: &mut [libc::pollfd; 2], timeout: Duration) -> bool {
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: fds is a valid array of pollfd of the length given; poll only writes their revents.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if n <= 0 {
        return false;
    }
    for f in fds.iter_mut() {
        if f.revents & libc::POLLNVAL != 0 {
            f.fd = -1;
        }
    }
    fds.iter().any(|f| f.revents & (libc::POLLERR | libc::POLLHUP) != 0)
}
