//! Many probe runs leave no child processes behind. Its own test binary: no other test may be spawning
//! children while this one counts them.

use std::time::Duration;

use collectors::probes::{CommandProbe, FailReason, ProbeStatus};

/// Children of this process that still exist (running or zombie), as (pid, state).
fn our_children() -> Vec<(i32, char)> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The command name may contain spaces and parentheses; the fields after the last ')' do not.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let mut fields = rest.split_whitespace();
        let (Some(state), Some(ppid)) = (fields.next(), fields.next()) else { continue };
        if ppid == me {
            let pid = head.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0);
            found.push((pid, state.chars().next().unwrap_or('?')));
        }
    }
    found
}

/// 10,000 runs of `true` take about 9 s in a debug build.
const RUNS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_leave_no_zombies() {
    let quick = CommandProbe::new(["true"], Duration::from_secs(30));
    for i in 0..RUNS {
        let outcome = quick.run().await;
        assert_eq!(outcome.status, ProbeStatus::Ok, "run {i}: {outcome:?}");
    }
    let hung = CommandProbe::new(["sleep", "1000"], Duration::from_millis(20));
    for _ in 0..20 {
        assert_eq!(hung.run().await.status, ProbeStatus::Failed(FailReason::Timeout));
    }

    assert_eq!(our_children(), vec![], "children left behind (pid, state)");
    // SAFETY: waitpid with a null status pointer has no memory-safety preconditions.
    let waited = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    assert_eq!(waited, -1, "a child was still waitable");
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ECHILD));
}
