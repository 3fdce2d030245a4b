//! Runs simulated SpiNNaker frames until stdin closes: `bmp-sim [--bind IP[:PORT]] FRAMES [BOARDS]` prints
//! one BMP address per line, then serves. Without `--bind` each frame takes a fresh port on 127.0.0.1 (for
//! measuring a whole agent against a large machine, scripts/bench-spinnaker.sh, without the simulators'
//! CPU time counting as the agent's). With `--bind`, frame i listens on the i-th address from IP, all at
//! PORT (default 17893, the only port spalloc-server talks to BMPs on), e.g. `--bind 127.0.1.1` gives
//! 127.0.1.1:17893, 127.0.1.2:17893, ...

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use accel_sim::bmp_sim::{BmpSim, SimOptions};

const USAGE: &str = "usage: bmp-sim [--bind IP[:PORT]] FRAMES [BOARDS]   (serves until stdin closes)";

/// "IP" or "IP:PORT"; an IPv4 address, since frames take successive addresses.
fn parse_bind(s: &str) -> Option<(Ipv4Addr, u16)> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return match addr.ip() {
            IpAddr::V4(ip) => Some((ip, addr.port())),
            IpAddr::V6(_) => None,
        };
    }
    s.parse::<Ipv4Addr>().ok().map(|ip| (ip, 17893))
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut bind = None;
    if args.first().map(String::as_str) == Some("--bind") {
        let Some(b) = args.get(1).and_then(|s| parse_bind(s)) else {
            eprintln!("bmp-sim: --bind needs an IPv4 address, optionally with :PORT\n{USAGE}");
            return std::process::ExitCode::from(64);
        };
        bind = Some(b);
        args.drain(..2);
    }
    let (Some(frames), boards) = (args.first().and_then(|a| a.parse::<u32>().ok()), args.get(1)) else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(64);
    };
    let boards: u8 = boards.and_then(|b| b.parse().ok()).unwrap_or(24);
    let mut sims = Vec::new();
    let mut out = std::io::stdout().lock();
    for i in 0..frames {
        let mut options = SimOptions { boards, ..SimOptions::default() };
        if let Some((ip, port)) = bind {
            options.bind = SocketAddr::from((Ipv4Addr::from(u32::from(ip).wrapping_add(i)), port));
        }
        match BmpSim::with_options(options) {
            Ok(sim) => {
                let _ = writeln!(out, "{}", sim.addr());
                sims.push(sim);
            }
            Err(e) => {
                eprintln!("bmp-sim: cannot start frame {i}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let _ = out.flush();
    drop(out);
    // Serve until whoever started us goes away.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::ExitCode::SUCCESS
}
