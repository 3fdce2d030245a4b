//! Status-tool probes against real child processes: small shell scripts written at test time.
//!
//! Scripts are run as `/bin/sh script` rather than executed directly: exec'ing a file that was just
//! written fails with ETXTBSY when another test's fork still holds the write descriptor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use collectors::probes::{
    BaseEnv, CommandProbe, FailReason, FieldMap, OutputFormat, ProbeOutcome, ProbeStatus, ReadingKind, RegexField,
};

/// Slack for "returned promptly" liveness checks, far above any real delay.
const SLACK: Duration = Duration::from_secs(5);

fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("probe.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn sh(script: &Path, args: &[&str], timeout: Duration) -> CommandProbe {
    let mut argv = vec!["/bin/sh".to_owned(), script.display().to_string()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    CommandProbe::new(argv, timeout)
}

async fn run_script(body: &str) -> ProbeOutcome {
    let dir = tempfile::tempdir().unwrap();
    sh(&script(dir.path(), body), &[], Duration::from_secs(30)).run().await
}

/// Reads a pid a script wrote to a file.
fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

/// Dead means gone, or a zombie waiting for its (new) parent: a container's init may never reap it.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_dead(pid: i32) -> bool {
    for _ in 0..50 {
        if is_dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn kill(pid: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[tokio::test]
async fn exit_codes_map_to_status() {
    let ok = run_script("echo fine").await;
    assert_eq!(ok.status, ProbeStatus::Ok);
    assert_eq!(ok.exit_code, Some(0));
    assert_eq!(ok.stdout, "fine\n");

    let problem = run_script("echo 'board 1 degraded' >&2; exit 1").await;
    assert_eq!(problem.status, ProbeStatus::Problem);
    assert_eq!(problem.exit_code, Some(1));
    assert_eq!(problem.stderr_excerpt, "board 1 degraded\n");

    let unknown = run_script("exit 2").await;
    assert_eq!(unknown.status, ProbeStatus::Unknown);
    assert_eq!(unknown.exit_code, Some(2));

    let odd = run_script("exit 3").await;
    assert_eq!(odd.status, ProbeStatus::Failed(FailReason::ExitCode(3)));
    assert_eq!(odd.exit_code, Some(3));

    let crashed = run_script("kill -SEGV $$").await;
    assert_eq!(crashed.status, ProbeStatus::Failed(FailReason::Signal(libc::SIGSEGV)));
    assert_eq!(crashed.exit_code, None);
}

#[tokio::test]
async fn hung_probe_is_killed_with_its_group_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("helper.pid");
    let body = r#"sleep 1000 &
echo $! > "$1"
echo started
exec sleep 1000"#;
    let timeout = Duration::from_secs(2);
    let probe = sh(&script(dir.path(), body), &[pidfile.to_str().unwrap()], timeout);

    let outcome = probe.run().await;

    assert_eq!(outcome.status, ProbeStatus::Failed(FailReason::Timeout));
    assert_eq!(outcome.exit_code, None);
    assert!(outcome.duration < timeout + SLACK, "took {:?}", outcome.duration);
    assert_eq!(outcome.stdout, "started\n", "output before the timeout is kept");
    let helper = pid_in(&pidfile);
    assert!(wait_dead(helper).await, "helper {helper} in the probe's process group survived");
}

#[tokio::test]
async fn grandchild_holding_the_pipe_does_not_hold_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("helper.pid");
    let body = r#"sleep 1000 &
echo $! > "$1"
echo ok"#;
    let probe = sh(&script(dir.path(), body), &[pidfile.to_str().unwrap()], Duration::from_secs(60));

    let outcome = probe.run().await;
    kill(pid_in(&pidfile));

    assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
    assert_eq!(outcome.stdout, "ok\n");
    assert!(outcome.duration < SLACK, "took {:?}", outcome.duration);
}

#[tokio::test]
async fn helper_that_left_the_group_does_not_hold_a_timed_out_probe() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("helper.pid");
    let body = r#"setsid sleep 1000 &
echo $! > "$1"
echo started
exec sleep 1000"#;
    let timeout = Duration::from_secs(2);
    let probe = sh(&script(dir.path(), body), &[pidfile.to_str().unwrap()], timeout);

    let outcome = probe.run().await;
    kill(pid_in(&pidfile));

    assert_eq!(outcome.status, ProbeStatus::Failed(FailReason::Timeout));
    assert_eq!(outcome.stdout, "started\n");
    assert!(outcome.duration < timeout + SLACK, "took {:?}", outcome.duration);
}

/// Peak resident memory of this test process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn huge_output_is_capped_and_read_to_the_end() {
    let outcome = run_script("yes accel | head -c 100000000; yes err | head -c 1000000 >&2; exit 1").await;

    assert_eq!(outcome.status, ProbeStatus::Problem, "the tool ran to its own exit");
    assert!(outcome.truncated);
    assert_eq!(outcome.stdout.len(), 64 * 1024);
    assert!(outcome.stdout.starts_with("accel\naccel\n"));
    assert_eq!(outcome.stderr_excerpt.len(), 16 * 1024);
    // Buffering the output would have taken over 100 MB at the peak.
    assert!(peak_rss_kib() < 64 * 1024, "peak RSS {} KiB", peak_rss_kib());
}

#[tokio::test]
async fn tool_reading_stdin_sees_end_of_file() {
    let outcome = CommandProbe::new(["cat"], Duration::from_secs(30)).run().await;
    assert_eq!(outcome.status, ProbeStatus::Ok);
    assert_eq!(outcome.stdout, "");
}

#[tokio::test]
async fn spawn_failure_names_the_program() {
    let outcome = CommandProbe::new(["/nonexistent/accel-smi", "--status"], Duration::from_secs(5)).run().await;
    let ProbeStatus::Failed(FailReason::Spawn(message)) = &outcome.status else {
        panic!("expected a spawn failure, got {:?}", outcome.status);
    };
    assert!(message.contains("/nonexistent/accel-smi"), "{message}");
    assert!(message.contains("No such file"), "{message}");
    assert_eq!(outcome.exit_code, None);
}

#[tokio::test]
async fn arguments_are_not_shell_parsed() {
    let outcome = CommandProbe::new(["echo", "$HOME; exit 1", "*"], Duration::from_secs(5)).run().await;
    assert_eq!(outcome.status, ProbeStatus::Ok);
    assert_eq!(outcome.stdout, "$HOME; exit 1 *\n");
}

#[tokio::test]
async fn environment_is_the_allowlist_and_what_is_set_never_the_agents_own() {
    // Set by cargo for the test process, like a credentials variable set for the agent.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "precondition: cargo sets CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let body =
        r#"echo "board=$ACCEL_BOARD manifest=${CARGO_MANIFEST_DIR:-unset} home=${HOME:-unset} path=${PATH:-unset}""#;
    let path = script(dir.path(), body);

    let minimal = sh(&path, &[], Duration::from_secs(5)).with_env("ACCEL_BOARD", "3").run().await;
    let agent_path = std::env::var("PATH").unwrap_or_else(|_| collectors::probes::child_env::DEFAULT_PATH.to_owned());
    assert_eq!(minimal.stdout, format!("board=3 manifest=unset home=unset path={agent_path}\n"));

    let mut empty = sh(&path, &[], Duration::from_secs(5)).with_env("ACCEL_BOARD", "4");
    empty.base_env = BaseEnv::Empty;
    let out = empty.run().await.stdout;
    assert!(out.starts_with("board=4 manifest=unset home=unset path="), "{out}");
    assert!(!out.contains(&agent_path), "{out}");
}

#[tokio::test]
async fn secrets_in_output_are_redacted_where_it_is_captured_and_readings_still_parsed() {
    let body = r#"echo '{"temp": 41.5, "token": "x"}' ; echo "tool --token s3cr3tOUT"
echo "login failed: password=hunter2xyz Authorization: Bearer abc.def.ghi" >&2
exit 1"#;
    let dir = tempfile::tempdir().unwrap();
    let probe = sh(&script(dir.path(), body), &[], Duration::from_secs(5)).with_output(OutputFormat::Regex {
        fields: vec![RegexField::new(ReadingKind::Temperature, r#""temp": ([0-9.]+)"#, 1.0).unwrap()],
    });
    let outcome = probe.run().await;
    assert_eq!(outcome.status, ProbeStatus::Problem);
    assert_eq!(outcome.readings, vec![(ReadingKind::Temperature, 41.5)]);
    assert_eq!(outcome.stderr_excerpt, "login failed: password=<redacted> Authorization: Bearer <redacted>\n");
    assert!(outcome.stdout.ends_with("tool --token <redacted>\n"), "{}", outcome.stdout);
}

#[tokio::test]
async fn json_fields_become_scaled_readings_and_missing_ones_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"echo '{"boards":[{"temp_mc":45500,"power_mw":12000,"state":"offline"}]}'"#;
    let field = |reading, pointer: &str, scale| FieldMap { reading, pointer: pointer.to_owned(), scale };
    let probe = sh(&script(dir.path(), body), &[], Duration::from_secs(5)).with_output(OutputFormat::Json {
        fields: vec![
            field(ReadingKind::Temperature, "/boards/0/temp_mc", 0.001),
            field(ReadingKind::Power, "/boards/0/power_mw", 0.001),
            field(ReadingKind::Energy, "/boards/0/energy_uj", 1e-6),
            field(ReadingKind::Online, "/boards/0/state", 1.0),
            field(ReadingKind::Temperature, "/boards/1/temp_mc", 0.001),
        ],
    });

    let outcome = probe.run().await;

    assert_eq!(outcome.status, ProbeStatus::Ok);
    assert_eq!(
        outcome.readings,
        vec![(ReadingKind::Temperature, 45.5), (ReadingKind::Power, 12.0), (ReadingKind::Online, 0.0)]
    );
    assert_eq!(outcome.parse_errors, 2, "energy and board 1 are missing");
}

#[tokio::test]
async fn regex_fields_read_text_output() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"printf 'Device 0\n  Temperature : 61 C\n  Power : 35.5 W\n  Status : offline\n  Inferences : N/A\n'
exit 1"#;
    let probe = sh(&script(dir.path(), body), &[], Duration::from_secs(5)).with_output(OutputFormat::Regex {
        fields: vec![
            RegexField::new(ReadingKind::Temperature, r"Temperature\s*:\s*(\S+)", 1.0).unwrap(),
            RegexField::new(ReadingKind::Power, r"Power\s*:\s*(\S+)", 1.0).unwrap(),
            RegexField::new(ReadingKind::Online, r"Status\s*:\s*(\S+)", 1.0).unwrap(),
            RegexField::new(ReadingKind::Inferences, r"Inferences\s*:\s*(\S+)", 1.0).unwrap(),
        ],
    });

    let outcome = probe.run().await;

    assert_eq!(outcome.status, ProbeStatus::Problem, "readings are kept when the tool reports a problem");
    assert_eq!(
        outcome.readings,
        vec![(ReadingKind::Temperature, 61.0), (ReadingKind::Power, 35.5), (ReadingKind::Online, 0.0)]
    );
    assert_eq!(outcome.parse_errors, 1, "N/A is not a number");
}

#[tokio::test]
async fn output_of_a_timed_out_tool_gives_no_readings() {
    let dir = tempfile::tempdir().unwrap();
    let probe = sh(&script(dir.path(), "echo '{\"t\":40}'; exec sleep 1000"), &[], Duration::from_millis(500))
        .with_output(OutputFormat::Json {
            fields: vec![FieldMap { reading: ReadingKind::Temperature, pointer: "/t".to_owned(), scale: 1.0 }],
        });
    let outcome = probe.run().await;
    assert_eq!(outcome.status, ProbeStatus::Failed(FailReason::Timeout));
    assert!(outcome.readings.is_empty());
}

/// With a grace period the tool is asked to stop (SIGTERM) at its deadline and may tidy up; one that
/// ignores it is SIGKILLed with its group when the grace ends.
#[tokio::test]
async fn at_the_deadline_sigterm_comes_first_then_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let polite = script(dir.path(), &format!("trap 'echo stopped > {d}/tidy; exit 0' TERM\nsleep 30 &\nwait"));
    let started = std::time::Instant::now();
    let o = sh(&polite, &[], Duration::from_millis(300)).with_term_grace(Duration::from_secs(5)).run().await;
    assert_eq!(o.status, ProbeStatus::Failed(FailReason::Timeout), "past its deadline it failed, however it ended");
    assert_eq!(std::fs::read_to_string(dir.path().join("tidy")).unwrap(), "stopped\n", "it was asked to stop");
    assert!(started.elapsed() < Duration::from_secs(5), "it stopped when asked, before the grace ran out");

    let stubborn = dir.path().join("stubborn.sh");
    std::fs::write(&stubborn, format!("trap '' TERM\nsleep 30 &\necho $! > {d}/child\nwait\n")).unwrap();
    let started = std::time::Instant::now();
    let o = sh(&stubborn, &[], Duration::from_millis(300)).with_term_grace(Duration::from_millis(500)).run().await;
    assert_eq!(o.status, ProbeStatus::Failed(FailReason::Timeout));
    assert!(started.elapsed() < SLACK, "SIGKILL once the grace ran out");
    assert!(wait_dead(pid_in(&dir.path().join("child"))).await, "its helper died with it");
}
