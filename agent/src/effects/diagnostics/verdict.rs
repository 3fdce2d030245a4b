//! Whether one run of a diagnostic passed: its exit status, and each JSON value within its limits. The
//! values are read by the probes' output parser (the same pointers, the same rules for what is a number).

use collectors::probes::{FailReason, FieldMap, OutputFormat, ProbeOutcome, ProbeStatus, ReadingKind};
use config::diagnostics::FieldLimit;

use crate::model::diagnostics::{OUTPUT_LINES, Outcome};

/// The output format that reads the values `expect` limits (a reading per JSON pointer).
pub fn output_format(expect: &[FieldLimit]) -> OutputFormat {
    if expect.is_empty() {
        return OutputFormat::None;
    }
    let fields = expect
        .iter()
        .map(|l| FieldMap { reading: ReadingKind::Custom(l.field.clone()), pointer: l.field.clone(), scale: 1.0 })
        .collect();
    OutputFormat::Json { fields }
}

/// The outcome of one run: passed, failed on the first expectation not met, or not run for the agent's
/// own trouble.
pub fn judge(o: &ProbeOutcome, exit_codes: &[i32], expect: &[FieldLimit], timeout: std::time::Duration) -> Outcome {
    let failed = |expectation: String| Outcome::Failed { expectation, output: tail(o) };
    match &o.status {
        ProbeStatus::NotRun(fault) => return Outcome::NotRun { reason: format!("not run: the agent is {fault}") },
        ProbeStatus::Failed(FailReason::Timeout) => {
            return failed(format!("timed out after {}", humantime::format_duration(timeout)));
        }
        ProbeStatus::Failed(FailReason::ExitCode(_)) => {}
        ProbeStatus::Failed(other) => return failed(other.to_string()),
        _ => {}
    }
    match o.exit_code {
        Some(code) if exit_codes.contains(&code) => {}
        Some(code) => return failed(format!("exit status {code}, expected {}", list(exit_codes))),
        None => return failed("no exit status".to_owned()),
    }
    for limit in expect {
        let value = o.readings.iter().find(|(k, _)| k.name() == limit.field).map(|(_, v)| *v);
        let Some(v) = value else {
            return failed(format!("{} missing from the output or not a number", limit.field));
        };
        if let Some(min) = limit.min.filter(|m| v < *m) {
            return failed(format!("{} = {v} below the minimum {min}", limit.field));
        }
        if let Some(max) = limit.max.filter(|m| v > *m) {
            return failed(format!("{} = {v} above the maximum {max}", limit.field));
        }
    }
    Outcome::Passed
}

fn list(codes: &[i32]) -> String {
    codes.iter().map(i32::to_string).collect::<Vec<_>>().join(" or ")
}

/// The tool's last lines of output, standard output then standard error (both redacted at capture).
pub fn tail(o: &ProbeOutcome) -> String {
    let lines: Vec<&str> = o.stdout.lines().chain(o.stderr_excerpt.lines()).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(OUTPUT_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn outcome(status: ProbeStatus, exit_code: Option<i32>, readings: Vec<(ReadingKind, f64)>) -> ProbeOutcome {
        ProbeOutcome {
            status,
            exit_code,
            duration: Duration::from_millis(5),
            stdout: (1..=12).map(|i| format!("line {i}\n")).collect(),
            stderr_excerpt: String::new(),
            truncated: false,
            readings,
            parse_errors: 0,
        }
    }

    fn limit(field: &str, min: Option<f64>, max: Option<f64>) -> FieldLimit {
        FieldLimit { field: field.into(), min, max }
    }

    #[test]
    fn exit_status_and_limits_decide_and_name_what_failed() {
        let t = Duration::from_secs(30);
        let drift = |v| vec![(ReadingKind::Custom("/drift_ppm".into()), v)];
        let expect = [limit("/drift_ppm", None, Some(50.0))];
        assert_eq!(judge(&outcome(ProbeStatus::Ok, Some(0), drift(12.0)), &[0], &expect, t), Outcome::Passed);
        let Outcome::Failed { expectation, output } =
            judge(&outcome(ProbeStatus::Ok, Some(0), drift(72.5)), &[0], &expect, t)
        else {
            panic!("a value above its maximum fails")
        };
        assert_eq!(expectation, "/drift_ppm = 72.5 above the maximum 50");
        assert_eq!(output.lines().count(), OUTPUT_LINES, "only the last lines are kept");
        assert!(output.ends_with("line 12"), "{output}");
        let failed = judge(&outcome(ProbeStatus::Problem, Some(1), drift(1.0)), &[0], &expect, t);
        assert!(
            matches!(failed, Outcome::Failed { ref expectation, .. } if expectation == "exit status 1, expected 0")
        );
        let missing = judge(&outcome(ProbeStatus::Ok, Some(0), vec![]), &[0], &expect, t);
        assert!(matches!(missing, Outcome::Failed { ref expectation, .. } if expectation.contains("missing")));
        let timeout = judge(&outcome(ProbeStatus::Failed(FailReason::Timeout), None, vec![]), &[0], &[], t);
        assert!(matches!(timeout, Outcome::Failed { ref expectation, .. } if expectation == "timed out after 30s"));
        let code3 = outcome(ProbeStatus::Failed(FailReason::ExitCode(3)), Some(3), vec![]);
        assert_eq!(judge(&code3, &[0, 3], &[], t), Outcome::Passed, "a listed status passes, whatever it is");
    }

    #[test]
    fn the_agents_own_trouble_is_no_verdict() {
        let o = outcome(ProbeStatus::NotRun(collectors::fault::AgentFault::Descriptors), None, vec![]);
        assert!(matches!(judge(&o, &[0], &[], Duration::from_secs(1)), Outcome::NotRun { .. }));
    }
}
