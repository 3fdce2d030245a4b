//! One whole-machine poll per cycle: 50 simulated frames x 24 boards, VER + ADC for every board.
//!
//! The simulators run in a child process (this same binary, re-executed), so getrusage(RUSAGE_SELF)
//! measures the client alone: its runtime threads, its socket, its decoding. The target is every one of
//! the 1,200 boards fresh in each 5 s cycle.
//!
//! `cargo bench --bench spinnaker_poll` runs the full measurement; without `--bench` (cargo test
//! --all-targets) it runs one small cycle as a smoke test. Environment overrides, to compare settings:
//! SPINNAKER_BENCH_CYCLES, SPINNAKER_BENCH_IN_FLIGHT (PollOptions::max_in_flight), SPINNAKER_BENCH_RCVBUF
//! (bytes for ClientOptions::recv_buffer, or "system" for the kernel default).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use collectors::spinnaker::{ClientOptions, Frame, PollOptions, ScpClient, ScpError};

const CHILD_ENV: &str = "SPINNAKER_POLL_BENCH_SIMULATORS";

fn main() {
    if let Some(spec) = std::env::var_os(CHILD_ENV) {
        run_simulators(&spec.to_string_lossy());
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (frames, boards, cycles) = if full { (50, 24, 20) } else { (2, 4, 1) };
    let env = |name: &str| std::env::var(name).ok();
    let cycles = env("SPINNAKER_BENCH_CYCLES").and_then(|s| s.parse().ok()).unwrap_or(cycles);
    let mut client_options = ClientOptions::default();
    match env("SPINNAKER_BENCH_RCVBUF").as_deref() {
        Some("system") => client_options.recv_buffer = None,
        Some(bytes) => client_options.recv_buffer = Some(bytes.parse().expect("SPINNAKER_BENCH_RCVBUF")),
        None => {}
    }
    let mut options = PollOptions::default();
    if let Some(n) = env("SPINNAKER_BENCH_IN_FLIGHT") {
        options.max_in_flight = n.parse().expect("SPINNAKER_BENCH_IN_FLIGHT");
    }

    let (mut child, addrs) = spawn_simulators(frames, boards);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = ScpClient::with_options(client_options).await.expect("client");
        let machine: Vec<Frame> = addrs.iter().map(|&addr| Frame { addr, boards: (0..boards).collect() }).collect();
        println!(
            "settings: per_frame {}, max_in_flight {}, SO_RCVBUF granted {:?} bytes",
            options.per_frame,
            options.max_in_flight,
            client.recv_buffer()
        );

        // Warm up: first-use allocations, the table's per-address entries, the child's page faults.
        client.poll_frames(&machine, &options).await;
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for _ in 0..cycles {
            let (cpu0, t0) = (cpu_time(), Instant::now());
            let polls = client.poll_frames(&machine, &options).await;
            let (wall, cpu) = (t0.elapsed(), cpu_time().saturating_sub(cpu0));
            let fresh = polls.iter().filter(|p| p.alive() && p.status.is_ok()).count();
            assert_eq!(fresh, machine.len() * usize::from(boards), "every board fresh");
            walls.push(wall);
            cpus.push(cpu);
        }
        let n = machine.len() * usize::from(boards);
        report(&format!("{} frames x {boards} boards, all answering", machine.len()), n, &walls, &cpus);
        let stats = client.stats();
        println!(
            "  client stats, warm-up cycle included: sent {} replies {} retries {} timeouts {} foreign {} late {}",
            stats.sent, stats.replies, stats.retries, stats.timeouts, stats.foreign, stats.late_or_duplicate
        );

        // One frame whose BMP never answers: a socket nobody reads.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("dead socket");
        let dead_addr = dead.local_addr().expect("dead addr");
        let mut with_dead = machine.clone();
        with_dead.push(Frame { addr: dead_addr, boards: (0..boards).collect() });
        let (cpu0, t0) = (cpu_time(), Instant::now());
        let polls = client.poll_frames(&with_dead, &options).await;
        let (wall, cpu) = (t0.elapsed(), cpu_time().saturating_sub(cpu0));
        let fresh = polls.iter().filter(|p| p.alive() && p.status.is_ok()).count();
        let skipped = polls.iter().filter(|p| matches!(p.version, Err(ScpError::FrameUnreachable { .. }))).count();
        assert_eq!(fresh, n);
        println!(
            "{} frames + 1 silent frame: wall {:.3} s, cpu {:.1} ms; {fresh} fresh, {skipped} skipped after the \
             silent frame's first board timed out",
            machine.len(),
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e3
        );
    });

    // Closing the child's stdin tells it to exit.
    drop(child.stdin.take());
    let _ = child.wait();
}

fn report(what: &str, boards: usize, walls: &[Duration], cpus: &[Duration]) {
    let mut sorted = walls.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    let cpu_mean = cpus.iter().sum::<Duration>() / cpus.len() as u32;
    println!(
        "{what}: {} cycles; wall per cycle median {:.1} ms, max {:.1} ms; client cpu per cycle mean {:.1} ms \
         ({:.1} us per board, {:.2}% of one core at a 5 s interval)",
        walls.len(),
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        cpu_mean.as_secs_f64() * 1e3,
        cpu_mean.as_secs_f64() * 1e6 / boards as f64,
        cpu_mean.as_secs_f64() / 5.0 * 100.0
    );
}

/// User + system CPU time of this process, all threads.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn spawn_simulators(frames: usize, boards: u8) -> (Child, Vec<SocketAddr>) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, format!("{frames}x{boards}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn simulators");
    let stdout = child.stdout.take().expect("child stdout");
    let addrs: Vec<SocketAddr> = BufReader::new(stdout)
        .lines()
        .take(frames)
        .map(|l| l.expect("read simulator address").parse().expect("simulator address"))
        .collect();
    assert_eq!(addrs.len(), frames, "simulators started");
    (child, addrs)
}

fn run_simulators(spec: &str) {
    let (frames, boards) = spec.split_once('x').expect("FRAMESxBOARDS");
    let frames: usize = frames.parse().expect("frames");
    let boards: u8 = boards.parse().expect("boards");
    let sims: Vec<_> = (0..frames).map(|_| accel_sim::bmp_sim::BmpSim::start(boards).expect("simulator")).collect();
    let mut out = std::io::stdout().lock();
    for sim in &sims {
        writeln!(out, "{}", sim.addr()).expect("write address");
    }
    out.flush().expect("flush");
    drop(out);
    // Serve until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
