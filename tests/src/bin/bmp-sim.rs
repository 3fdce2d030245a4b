//! Runs simulated SpiNNaker frames on loopback until stdin closes: `bmp-sim FRAMES [BOARDS]` prints one
//! BMP address per line, then serves. For measuring a whole agent against a large machine
//! (scripts/bench-spinnaker.sh) without the simulators' CPU time counting as the agent's.

use std::io::{Read, Write};

use accel_e2e::bmp_sim::BmpSim;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(frames), boards) = (args.first().and_then(|a| a.parse::<usize>().ok()), args.get(1)) else {
        eprintln!("usage: bmp-sim FRAMES [BOARDS]   (serves until stdin closes)");
        return std::process::ExitCode::from(64);
    };
    let boards: u8 = boards.and_then(|b| b.parse().ok()).unwrap_or(24);
    let mut sims = Vec::new();
    let mut out = std::io::stdout().lock();
    for _ in 0..frames {
        match BmpSim::start(boards) {
            Ok(sim) => {
                let _ = writeln!(out, "{}", sim.addr());
                sims.push(sim);
            }
            Err(e) => {
                eprintln!("bmp-sim: cannot start a frame: {e}");
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
