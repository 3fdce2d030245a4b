//! When to try bringing an offline device back, with what, and when to stop trying.
//!
//! The ladder runs mildest step first, one step per attempt. An attempt fails when the device is still
//! offline `settle` after its step ran; the next attempt then uses the next step, after an exponentially
//! growing, jittered backoff. After `max_failures` failed attempts in a row the circuit opens: no attempt
//! for `cooldown`, then one half-open try. Each time the circuit opens counts toward escalation: after
//! `escalate_after` openings the device needs a human (NeedsHardwareInspection), and the ladder stops.

use std::time::{Duration, Instant};

use config::device::ReconnectStep;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Circuit {
    Closed,
    HalfOpen,
    Open,
}

impl Circuit {
    /// The name in the API and agentctl: "closed", "half-open", "open".
    pub fn name(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::HalfOpen => "half-open",
            Circuit::Open => "open",
        }
    }

    /// accel_reconnect_circuit_state: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Circuit::Closed => 0.0,
            Circuit::HalfOpen => 1.0,
            Circuit::Open => 2.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub steps: Vec<ReconnectStep>,
    pub max_failures: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub cooldown: Duration,
    pub settle: Duration,
    pub escalate_after: u32,
}

/// What the controller wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run this step now.
    Attempt { step: ReconnectStep },
    /// The last attempt failed (the device is still offline after `settle`).
    Failed { step: ReconnectStep },
    /// The device came back after this step.
    Recovered { step: ReconnectStep },
    /// The attempt with this step failed and the circuit opened.
    Opened { step: ReconnectStep },
    /// The attempt with this step failed once too often: stop and call a human.
    Escalate { step: ReconnectStep },
}

#[derive(Debug, Clone)]
pub struct ReconnectController {
    policy: Policy,
    pub circuit: Circuit,
    next_step: usize,
    failures: u32,
    openings: u32,
    backoff: Duration,
    not_before: Option<Instant>,
    /// The attempt in progress: its step and when it was started.
    in_flight: Option<(ReconnectStep, Instant)>,
    pub escalated: bool,
    /// Deterministic jitter source, so tests are reproducible.
    jitter_state: u64,
}

impl ReconnectController {
    pub fn new(policy: Policy, seed: u64) -> Self {
        let backoff = policy.backoff_initial;
        ReconnectController {
            policy,
            circuit: Circuit::Closed,
            next_step: 0,
            failures: 0,
            openings: 0,
            backoff,
            not_before: None,
            in_flight: None,
            escalated: false,
            jitter_state: seed | 1,
        }
    }

    /// Up to +25% of `d`: spreads retries of many devices (or many hosts) apart.
    fn jittered(&mut self, d: Duration) -> Duration {
        // xorshift64: enough randomness for spreading retries, no global state.
        self.jitter_state ^= self.jitter_state << 13;
        self.jitter_state ^= self.jitter_state >> 7;
        self.jitter_state ^= self.jitter_state << 17;
        let frac = (self.jitter_state % 1000) as f64 / 4000.0;
        d + d.mul_f64(frac)
    }

    /// Feeds the device's liveness; returns what to do, if anything.
    /// A step has been started and its settle time has not yet told whether it worked.
    pub fn in_progress(&self) -> Option<ReconnectStep> {
        self.in_flight.map(|(step, _)| step)
    }

    pub fn tick(&mut self, offline: bool, now: Instant) -> Option<Decision> {
        if self.escalated || self.policy.steps.is_empty() {
            return None;
        }
        if let Some((step, started)) = self.in_flight {
            if !offline {
                self.reset();
                return Some(Decision::Recovered { step });
            }
            if now.duration_since(started) < self.policy.settle {
                return None;
            }
            self.in_flight = None;
            self.failures += 1;
            self.next_step = (self.next_step + 1) % self.policy.steps.len();
            if self.circuit == Circuit::HalfOpen || self.failures >= self.policy.max_failures {
                self.circuit = Circuit::Open;
                self.openings += 1;
                self.not_before = Some(now + self.policy.cooldown);
                if self.openings >= self.policy.escalate_after {
                    self.escalated = true;
                    return Some(Decision::Escalate { step });
                }
                return Some(Decision::Opened { step });
            }
            let wait = self.jittered(self.backoff);
            self.not_before = Some(now + wait);
            self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
            return Some(Decision::Failed { step });
        }
        if !offline {
            if self.failures > 0 || self.circuit != Circuit::Closed {
                // Came back on its own.
                self.reset();
            }
            return None;
        }
        if self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        if self.circuit == Circuit::Open {
            self.circuit = Circuit::HalfOpen;
        }
        let step = self.policy.steps[self.next_step];
        self.in_flight = Some((step, now));
        Some(Decision::Attempt { step })
    }

    /// The step in flight never ran: the agent could not start it for want of its own resources. That is
    /// not an attempt: no failure counts, the ladder does not move on to a harsher step, and the same step
    /// is tried again after the initial backoff. False if that step is not the one in flight.
    pub fn not_run(&mut self, step: ReconnectStep, now: Instant) -> bool {
        if self.in_flight.map(|(s, _)| s) != Some(step) {
            return false;
        }
        self.in_flight = None;
        self.not_before = Some(now + self.policy.backoff_initial);
        true
    }

    /// An operator's reconnect: the circuit closes, escalation is forgotten, and the mildest step runs
    /// now; its outcome is judged like any attempt's. None when the ladder is empty.
    pub fn start_manual(&mut self, now: Instant) -> Option<ReconnectStep> {
        self.clear();
        let step = *self.policy.steps.first()?;
        self.in_flight = Some((step, now));
        Some(step)
    }

    /// Forgets failures, openings and escalation (`agentctl set-healthy`).
    pub fn clear(&mut self) {
        self.reset();
        self.openings = 0;
        self.escalated = false;
    }

    fn reset(&mut self) {
        self.circuit = Circuit::Closed;
        self.next_step = 0;
        self.failures = 0;
        self.backoff = self.policy.backoff_initial;
        self.not_before = None;
        self.in_flight = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> Policy {
        Policy {
            steps: vec![ReconnectStep::Vendor, ReconnectStep::DriverReset, ReconnectStep::FunctionReset],
            max_failures: 3,
            backoff_initial: 2 * S,
            backoff_max: 60 * S,
            cooldown: 100 * S,
            settle: 5 * S,
            escalate_after: 2,
        }
    }

    #[test]
    fn a_step_the_agent_could_not_start_is_no_attempt() {
        let t0 = Instant::now();
        let mut c = ReconnectController::new(policy(), 7);
        assert_eq!(c.tick(true, t0), Some(Decision::Attempt { step: ReconnectStep::Vendor }));
        assert!(c.not_run(ReconnectStep::Vendor, t0));
        assert!(!c.not_run(ReconnectStep::Vendor, t0), "only the step in flight");
        assert_eq!(c.tick(true, t0 + S), None, "backing off");
        // The same, mildest step again: nothing failed, so nothing escalates.
        assert_eq!(c.tick(true, t0 + 2 * S), Some(Decision::Attempt { step: ReconnectStep::Vendor }));
        assert_eq!((c.circuit, c.failures), (Circuit::Closed, 0));
    }

    #[test]
    fn comes_back_on_the_second_step() {
        let t0 = Instant::now();
        let mut c = ReconnectController::new(policy(), 7);
        assert_eq!(c.tick(true, t0), Some(Decision::Attempt { step: ReconnectStep::Vendor }));
        assert_eq!(c.tick(true, t0 + S), None, "settling");
        assert_eq!(c.tick(true, t0 + 5 * S), Some(Decision::Failed { step: ReconnectStep::Vendor }));
        assert_eq!(c.tick(true, t0 + 6 * S), None, "backing off");
        assert_eq!(c.tick(true, t0 + 8 * S), Some(Decision::Attempt { step: ReconnectStep::DriverReset }));
        assert_eq!(c.tick(false, t0 + 9 * S), Some(Decision::Recovered { step: ReconnectStep::DriverReset }));
        assert_eq!(c.circuit, Circuit::Closed);
        // The next outage starts from the mildest step again.
        assert_eq!(c.tick(true, t0 + 20 * S), Some(Decision::Attempt { step: ReconnectStep::Vendor }));
    }

    #[test]
    fn never_comes_back_opens_the_circuit_then_escalates() {
        let t0 = Instant::now();
        let mut c = ReconnectController::new(policy(), 7);
        let mut t = t0;
        let mut decisions = Vec::new();
        for _ in 0..2000 {
            if let Some(d) = c.tick(true, t) {
                decisions.push(d);
            }
            t += S;
        }
        let attempts = decisions.iter().filter(|d| matches!(d, Decision::Attempt { .. })).count();
        assert_eq!(decisions.iter().filter(|d| matches!(d, Decision::Opened { .. })).count(), 1);
        assert_eq!(decisions.last(), Some(&Decision::Escalate { step: ReconnectStep::Vendor }));
        // Three attempts close the circuit's first run, one half-open try after the cooldown, then stop.
        assert_eq!(attempts, 4);
        assert_eq!(c.circuit, Circuit::Open);
        assert!(c.escalated);
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut c = ReconnectController::new(policy(), 99);
        let b = c.jittered(10 * S);
        assert!(b >= 10 * S && b <= 12_500 * Duration::from_millis(1), "{b:?}");
    }
}
