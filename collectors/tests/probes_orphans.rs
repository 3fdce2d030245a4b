//! A probe that leaves a helper running in the background (`sleep 300 &`) and exits leaves nothing
//! behind: its process group is killed when it exits. Its own test binary: it counts processes by their
//! command line, so nothing else may be starting them meanwhile.

use std::time::{Duration, Instant};

use collectors::probes::{CommandProbe, ProbeStatus};

/// Live (not zombie) processes whose command line is exactly `argv`.
fn running(argv: &[&str]) -> usize {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if cmdline == want && state != Some("Z") {
            n += 1;
        }
    }
    n
}

const RUNS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_probe_run_200_times_leaves_no_process_behind() {
    // A duration no other process on the machine uses, to count ours by.
    let helper = ["sleep", "2999.25"];
    let probe = CommandProbe::new(["/bin/sh", "-c", "sleep 2999.25 & exit 0"], Duration::from_secs(10));
    for i in 0..RUNS {
        let outcome = probe.run().await;
        assert_eq!(outcome.status, ProbeStatus::Ok, "run {i}: {outcome:?}");
    }
    // SIGKILL is delivered at once, but a killed process needs a moment to stop being "running".
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(&helper) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(running(&helper), 0, "helpers left behind after {RUNS} runs");
}
