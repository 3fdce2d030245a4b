//! Rules over log lines, driven by explicit instants: events and their counts, conditions with a
//! threshold in a window, clearing by pattern, by quiet period, latching and the operator's reset.

use std::time::{Duration, Instant};

use collectors::logs::{ClearReason, RuleAction, RuleSet, RuleSpec, RuleTracker, Severity, Signal, Threshold};

const AER: &str = "pcieport 0000:00:1c.0: AER: Corrected error received: 0000:3b:00.0";
const XID: &str = "photon-sdk[881]: ERROR: waveguide calibration failed (code 17)";
const RECOVERED: &str = "photon-sdk[881]: calibration recovered";
const NOISE: &str = "photon-sdk[881]: inference batch 41 done in 3.2 ms";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn condition(threshold: Option<(u32, u64)>, clear: Option<&str>, quiet: Option<u64>, latch: bool) -> RuleSpec {
    RuleSpec {
        threshold: threshold.map(|(count, w)| Threshold { count, window: secs(w) }),
        clear_pattern: clear.map(str::to_owned),
        quiet_period: quiet.map(secs),
        latch,
        ..RuleSpec::condition("calibration", r"ERROR: waveguide calibration failed", "LogErrors", Severity::Critical)
    }
}

fn set(rule: RuleSpec) -> RuleSet {
    RuleSet::new(&[RuleSpec::event("aer", r"AER: (Corrected|Uncorrected)", Severity::Warning), rule]).unwrap()
}

fn is_set(count: u32) -> Signal {
    Signal::ConditionSet { rule: "calibration".into(), condition: "LogErrors".into(), count_in_window: count }
}

fn is_cleared(reason: ClearReason) -> Signal {
    Signal::ConditionCleared { rule: "calibration".into(), condition: "LogErrors".into(), reason }
}

fn active(t: &RuleTracker) -> Vec<(String, String)> {
    t.active_conditions().map(|(r, c)| (r.to_owned(), c.to_owned())).collect()
}

#[test]
fn every_event_match_is_signalled_and_counted() {
    let set = set(condition(None, None, None, false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    let aer = || vec![Signal::Event { rule: "aer".into() }];
    assert_eq!(t.on_line(&set, AER, t0), aer());
    assert_eq!(t.on_line(&set, NOISE, t0), []);
    assert_eq!(t.on_line(&set, AER, t0), aer());
    assert_eq!(t.on_line(&set, AER, t0 + secs(1)), aer());
    let counts: Vec<(&str, u64)> = t.counts().collect();
    assert_eq!(counts, [("aer", 3), ("calibration", 0)]);
}

#[test]
fn a_condition_without_threshold_sets_on_the_first_match_once() {
    let set = set(condition(None, None, None, false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), [is_set(1)]);
    assert_eq!(t.on_line(&set, XID, t0 + secs(1)), [], "already set: no new signal");
    assert_eq!(active(&t), [("calibration".to_owned(), "LogErrors".to_owned())]);
    assert_eq!(t.counts().find(|(r, _)| *r == "calibration"), Some(("calibration", 2)));
    assert_eq!(t.on_tick(t0 + secs(100_000)), [], "no quiet period: stays set");
}

#[test]
fn a_threshold_needs_count_matches_within_the_window() {
    let set = set(condition(Some((3, 60)), None, None, false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), []);
    assert_eq!(t.on_line(&set, XID, t0 + secs(30)), []);
    // The first match is 61 s old at the third: only two in the window.
    assert_eq!(t.on_line(&set, XID, t0 + secs(61)), []);
    assert!(active(&t).is_empty());
    assert_eq!(t.on_line(&set, XID, t0 + secs(62)), [is_set(3)], "30 s, 61 s and 62 s are within 60 s");
}

#[test]
fn a_window_is_inclusive_at_its_edge() {
    let set = set(condition(Some((2, 10)), None, None, false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), []);
    assert_eq!(t.on_line(&set, XID, t0 + secs(10)), [is_set(2)]);
}

#[test]
fn the_clear_pattern_clears_and_forgets_partial_counts() {
    let set = set(condition(Some((2, 60)), Some("calibration recovered"), None, false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), []);
    assert_eq!(t.on_line(&set, RECOVERED, t0 + secs(1)), [], "not set: nothing to clear");
    assert_eq!(t.on_line(&set, XID, t0 + secs(2)), [], "the match before the recovery no longer counts");
    assert_eq!(t.on_line(&set, XID, t0 + secs(3)), [is_set(2)]);
    assert_eq!(t.on_line(&set, RECOVERED, t0 + secs(4)), [is_cleared(ClearReason::Pattern)]);
    assert!(active(&t).is_empty());
    assert_eq!(t.on_line(&set, XID, t0 + secs(5)), [], "the threshold applies again");
}

#[test]
fn the_quiet_period_clears_after_the_last_match() {
    let set = set(condition(None, None, Some(300), false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), [is_set(1)]);
    assert_eq!(t.on_line(&set, XID, t0 + secs(200)), []);
    assert_eq!(t.on_tick(t0 + secs(499)), [], "299 s since the last match");
    assert_eq!(t.on_tick(t0 + secs(500)), [is_cleared(ClearReason::Quiet)]);
    assert_eq!(t.on_tick(t0 + secs(900)), [], "cleared once");
    assert_eq!(t.on_line(&set, XID, t0 + secs(901)), [is_set(1)]);
}

#[test]
fn a_quiet_period_that_passed_between_ticks_still_clears_before_the_next_match() {
    let set = set(condition(None, None, Some(300), false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), [is_set(1)]);
    assert_eq!(t.on_line(&set, XID, t0 + secs(1000)), [is_cleared(ClearReason::Quiet), is_set(1)]);
}

#[test]
fn a_latched_condition_clears_only_by_reset() {
    let set = set(condition(None, Some("calibration recovered"), Some(10), true));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    assert_eq!(t.on_line(&set, XID, t0), [is_set(1)]);
    assert_eq!(t.on_line(&set, RECOVERED, t0 + secs(1)), []);
    assert_eq!(t.on_tick(t0 + secs(3600)), []);
    assert_eq!(active(&t).len(), 1);
    assert_eq!(t.clear_latched("aer"), None, "an event rule has no condition");
    assert_eq!(t.clear_latched("no-such-rule"), None);
    assert_eq!(t.clear_latched("calibration"), Some(is_cleared(ClearReason::Reset)));
    assert_eq!(t.clear_latched("calibration"), None, "already clear");
    assert!(active(&t).is_empty());
    assert_eq!(t.on_line(&set, XID, t0 + secs(3601)), [is_set(1)]);
}

#[test]
fn a_window_keeps_at_most_count_timestamps() {
    // A flood of matches must not grow the tracker; observable as the count reported at the set.
    let set = set(condition(Some((5, 1_000_000)), None, None, false));
    let mut t = RuleTracker::new(&set);
    let t0 = Instant::now();
    let mut sets = Vec::new();
    for i in 0..100_000u64 {
        sets.extend(t.on_line(&set, XID, t0 + Duration::from_millis(i)));
    }
    assert_eq!(sets, [is_set(5)]);
    assert_eq!(t.counts().find(|(r, _)| *r == "calibration"), Some(("calibration", 100_000)));
}

#[test]
fn a_reloaded_rule_set_keeps_the_state_of_unchanged_rules() {
    let old = set(condition(None, None, None, false));
    let mut t = RuleTracker::new(&old);
    let t0 = Instant::now();
    t.on_line(&old, AER, t0);
    t.on_line(&old, XID, t0);
    // Same rules, newly compiled: counts and the set condition carry over.
    let same = set(condition(None, None, None, false));
    assert_eq!(t.on_line(&same, NOISE, t0), []);
    assert_eq!(t.counts().collect::<Vec<_>>(), [("aer", 1), ("calibration", 1)]);
    assert_eq!(active(&t).len(), 1);
    // The condition rule removed: its condition is cleared rather than left set for ever.
    let without = RuleSet::new(&[RuleSpec::event("aer", "AER:", Severity::Warning)]).unwrap();
    assert_eq!(t.on_line(&without, AER, t0), [is_cleared(ClearReason::Reset), Signal::Event { rule: "aer".into() }]);
    assert_eq!(t.counts().collect::<Vec<_>>(), [("aer", 2)]);
}

#[test]
fn one_line_can_match_several_rules() {
    let set = RuleSet::new(&[
        RuleSpec::event("aer", "AER:", Severity::Warning),
        RuleSpec {
            action: RuleAction::Condition { condition: "PcieErrors".into() },
            ..RuleSpec::event("aer-device", r"AER: .* 0000:3b:00\.0", Severity::Critical)
        },
    ])
    .unwrap();
    let mut t = RuleTracker::new(&set);
    let signals = t.on_line(&set, AER, Instant::now());
    assert_eq!(
        signals,
        [
            Signal::Event { rule: "aer".into() },
            Signal::ConditionSet { rule: "aer-device".into(), condition: "PcieErrors".into(), count_in_window: 1 },
        ]
    );
}
