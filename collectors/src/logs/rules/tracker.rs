//! The per-device state of a rule set: match counts, threshold windows, and which conditions are set.
//!
//! Time only enters through the `now` arguments, so the agent drives it with the clock and tests with
//! explicit instants. Memory is bounded by the rules: a window keeps at most `count` timestamps.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::{Rule, RuleKind, RuleSet};

/// What a line (or the passing of time) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// An event rule matched.
    Event {
        rule: Arc<str>,
    },
    /// A condition rule reached its threshold; `count_in_window` matches were in its window.
    ConditionSet {
        rule: Arc<str>,
        condition: Arc<str>,
        count_in_window: u32,
    },
    ConditionCleared {
        rule: Arc<str>,
        condition: Arc<str>,
        reason: ClearReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearReason {
    /// A line matched the rule's clear pattern.
    Pattern,
    /// No match for the rule's quiet period.
    Quiet,
    /// [`RuleTracker::clear_latched`], or the rule was removed from the configuration.
    Reset,
}

#[derive(Debug, Default)]
struct RuleState {
    total: u64,
    /// Times of the latest matches still in the window, oldest first; at most `count`.
    recent: VecDeque<Instant>,
    active: bool,
    last_match: Option<Instant>,
}

/// Counts and conditions of one device's log.
#[derive(Debug)]
pub struct RuleTracker {
    rules: Arc<[Rule]>,
    states: Vec<RuleState>,
    hits: Vec<usize>,
    clear_hits: Vec<usize>,
}

impl RuleTracker {
    pub fn new(set: &RuleSet) -> RuleTracker {
        let rules = Arc::clone(set.rules());
        let states = rules.iter().map(|_| RuleState::default()).collect();
        RuleTracker { rules, states, hits: Vec::new(), clear_hits: Vec::new() }
    }

    /// Matches one line. Clear patterns apply before patterns, so a line matching both leaves the
    /// condition set. A clear pattern also forgets matches counted toward a threshold not yet reached:
    /// the recovery message says the earlier errors are over.
    pub fn on_line(&mut self, set: &RuleSet, line: &str, now: Instant) -> Vec<Signal> {
        let mut signals = Vec::new();
        if !Arc::ptr_eq(set.rules(), &self.rules) {
            signals = self.adopt(set);
        }
        set.match_line(line, &mut self.hits, &mut self.clear_hits);
        for &i in &self.clear_hits {
            let (Some(rule), Some(state)) = (self.rules.get(i), self.states.get_mut(i)) else { continue };
            let RuleKind::Condition { condition, latch, .. } = &rule.kind else { continue };
            if *latch && state.active {
                continue;
            }
            state.recent.clear();
            if std::mem::take(&mut state.active) {
                signals.push(cleared(rule, condition, ClearReason::Pattern));
            }
        }
        for &i in &self.hits {
            let (Some(rule), Some(state)) = (self.rules.get(i), self.states.get_mut(i)) else { continue };
            state.total += 1;
            match &rule.kind {
                RuleKind::Event => signals.push(Signal::Event { rule: Arc::clone(&rule.name) }),
                RuleKind::Condition { condition, count, window, quiet, latch } => {
                    // Without a tick in between, a condition past its quiet period is still set: clear it
                    // first, so the result does not depend on how often the agent ticks.
                    if state.active && !*latch && quiet_elapsed(state, *quiet, now) {
                        state.active = false;
                        state.recent.clear();
                        signals.push(cleared(rule, condition, ClearReason::Quiet));
                    }
                    state.last_match = Some(now);
                    if let Some(window) = window {
                        while state.recent.front().is_some_and(|t| now.saturating_duration_since(*t) > *window) {
                            state.recent.pop_front();
                        }
                    }
                    if state.recent.len() >= *count as usize {
                        state.recent.pop_front();
                    }
                    state.recent.push_back(now);
                    if !state.active && state.recent.len() >= *count as usize {
                        state.active = true;
                        signals.push(Signal::ConditionSet {
                            rule: Arc::clone(&rule.name),
                            condition: Arc::clone(condition),
                            count_in_window: state.recent.len() as u32,
                        });
                    }
                }
            }
        }
        signals
    }

    /// Clears conditions whose quiet period has passed without a match. Call it at the agent's interval.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Signal> {
        let mut signals = Vec::new();
        for (rule, state) in self.rules.iter().zip(&mut self.states) {
            let RuleKind::Condition { condition, quiet, latch: false, .. } = &rule.kind else { continue };
            if state.active && quiet_elapsed(state, *quiet, now) {
                state.active = false;
                state.recent.clear();
                signals.push(cleared(rule, condition, ClearReason::Quiet));
            }
        }
        signals
    }

    /// The operator's reset (`agentctl set-healthy`): clears the rule's condition, latched or not.
    /// `None` if the rule is unknown or its condition is not set.
    pub fn clear_latched(&mut self, rule: &str) -> Option<Signal> {
        let i = self.rules.iter().position(|r| &*r.name == rule)?;
        let (rule, state) = (self.rules.get(i)?, self.states.get_mut(i)?);
        let RuleKind::Condition { condition, .. } = &rule.kind else { return None };
        if !std::mem::take(&mut state.active) {
            return None;
        }
        state.recent.clear();
        Some(cleared(rule, condition, ClearReason::Reset))
    }

    /// Matches per rule since the tracker was created, for `accel_log_matches_total{device,rule}`.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.rules.iter().zip(&self.states).map(|(r, s)| (&*r.name, s.total))
    }

    /// The (rule, condition) pairs currently set.
    pub fn active_conditions(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.rules.iter().zip(&self.states).filter(|(_, s)| s.active).filter_map(|(r, _)| match &r.kind {
            RuleKind::Condition { condition, .. } => Some((&*r.name, &**condition)),
            RuleKind::Event => None,
        })
    }

    /// Switches to a new rule set (configuration reload). Counts, windows and conditions of rules kept
    /// under the same name and kind carry over; conditions of rules that are gone or changed are
    /// cleared (reason [`ClearReason::Reset`]) so the agent does not keep them set forever.
    pub fn adopt(&mut self, set: &RuleSet) -> Vec<Signal> {
        let new_rules = Arc::clone(set.rules());
        let mut old: Vec<Option<RuleState>> = std::mem::take(&mut self.states).into_iter().map(Some).collect();
        let mut signals = Vec::new();
        let states = new_rules
            .iter()
            .map(|rule| {
                let same = self.rules.iter().position(|r| r.name == rule.name && r.kind == rule.kind);
                same.and_then(|i| old.get_mut(i).and_then(Option::take)).unwrap_or_default()
            })
            .collect();
        for (rule, state) in self.rules.iter().zip(old) {
            if let (Some(state), RuleKind::Condition { condition, .. }) = (state, &rule.kind)
                && state.active
            {
                signals.push(cleared(rule, condition, ClearReason::Reset));
            }
        }
        self.rules = new_rules;
        self.states = states;
        signals
    }
}

fn quiet_elapsed(state: &RuleState, quiet: Option<std::time::Duration>, now: Instant) -> bool {
    match (quiet, state.last_match) {
        (Some(q), Some(last)) => now.saturating_duration_since(last) >= q,
        _ => false,
    }
}

fn cleared(rule: &Rule, condition: &Arc<str>, reason: ClearReason) -> Signal {
    Signal::ConditionCleared { rule: Arc::clone(&rule.name), condition: Arc::clone(condition), reason }
}
