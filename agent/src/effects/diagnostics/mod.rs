//! Runs the diagnostics the model decided to start, each in its own task and process group, and reports
//! each one's result back to the model's owner as evidence.
//!
//! The model already keeps to one diagnostic per device and the host's concurrency limit; this side
//! makes a run safe: argv run without a shell and with the minimal environment of every child, output
//! capped and redacted at capture, the whole process group sent SIGTERM at the deadline and SIGKILL a
//! moment later (and killed as well when the agent stops), so a hanging tool fails its diagnostic and
//! leaves nothing behind.

mod verdict;

use std::time::Duration;

use collectors::fault::AgentFault;
use collectors::probes::{CommandProbe, ProbeStatus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::diagnostics::{Outcome, RemedyReport, Report, Start};
use crate::model::evidence::{Evidence, EvidenceTx};

/// How long a tool has between SIGTERM at its deadline and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// Starts diagnostics; their reports go to the owner.
pub struct DiagnosticsRunner {
    evidence: EvidenceTx,
    shutdown: CancellationToken,
    tasks: std::sync::Mutex<JoinSet<()>>,
}

impl DiagnosticsRunner {
    pub fn new(evidence: EvidenceTx, shutdown: CancellationToken) -> DiagnosticsRunner {
        DiagnosticsRunner { evidence, shutdown, tasks: Default::default() }
    }

    /// Runs `start` in the background. At shutdown the run is dropped, which kills its process group.
    pub fn start(&self, start: Start) {
        let (evidence, shutdown) = (self.evidence.clone(), self.shutdown.clone());
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Finished runs are reaped here, so the set holds only what runs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            tokio::select! {
                report = run(start) => { evidence.send(Evidence::Diagnostic(report)); }
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// One diagnostic: the tool; after a failure, the remedy once and the tool again.
pub async fn run(start: Start) -> Report {
    let began = tokio::time::Instant::now();
    let first = try_once(&start).await;
    let ((outcome, fault), remedy) = match (&first.0, &start.remedy) {
        (Outcome::Failed { expectation, .. }, Some(remedy)) => {
            let (ok, message) = run_remedy(remedy, start.timeout).await;
            let remedy = RemedyReport { first_failure: expectation.clone(), ok, message };
            (try_once(&start).await, Some(remedy))
        }
        _ => (first, None),
    };
    Report { device: start.device, name: start.name, outcome, duration: began.elapsed(), remedy, fault }
}

/// One run of the tool, and the agent's own fault if that kept it from starting.
async fn try_once(start: &Start) -> (Outcome, Option<AgentFault>) {
    let probe = CommandProbe::new(start.argv.clone(), start.timeout)
        .with_output(verdict::output_format(&start.expect))
        .with_term_grace(TERM_GRACE);
    let outcome = probe.run().await;
    let fault = match outcome.status {
        ProbeStatus::NotRun(fault) => Some(fault),
        _ => None,
    };
    (verdict::judge(&outcome, &start.exit_codes, &start.expect, start.timeout), fault)
}

/// Runs a remedy with the diagnostic's timeout; whether it exited 0, and what it said.
async fn run_remedy(argv: &[String], timeout: Duration) -> (bool, String) {
    let o = CommandProbe::new(argv.to_vec(), timeout).with_term_grace(TERM_GRACE).run().await;
    let ok = o.status == ProbeStatus::Ok;
    let message = match &o.status {
        ProbeStatus::Ok => "exited 0".to_owned(),
        ProbeStatus::NotRun(fault) => format!("not run: the agent is {fault}"),
        ProbeStatus::Failed(reason) => reason.to_string(),
        _ => format!("exit status {}", o.exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())),
    };
    let tail = verdict::tail(&o);
    (ok, if tail.is_empty() || ok { message } else { format!("{message}: {}", tail.lines().last().unwrap_or("")) })
}
