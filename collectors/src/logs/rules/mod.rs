//! Rules that turn log lines into signals: events (counted) and conditions (set and cleared).
//!
//! A [`RuleSet`] is compiled once from the configuration and shared by every device that uses it; each
//! device has its own [`RuleTracker`] with the counts, windows and conditions.
//!
//! The common case, a line that matches nothing, costs one lazy-DFA scan of the line however many rules
//! there are: a single regex, the alternation of every pattern and clear pattern, answers "does anything
//! match?". Only a line that matches something pays for a [`RegexSet`] search to find out which rules
//! matched. The alternation is used rather than the set's own `is_match` because its leftmost-first DFA
//! is smaller than the set's all-matches DFA: about 1.7x faster with 50 rules, most of them
//! case-insensitive (which defeats literal prefilters). Measured by `benches/log_rules.rs`.

mod tracker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

pub use config::EventSeverity as Severity;
pub use tracker::{ClearReason, RuleTracker, Signal};

/// Compiled size allowed for all patterns together; 50 typical rules need well under 1 MiB.
const SET_SIZE_LIMIT: usize = 64 * 1024 * 1024;
/// Lazy DFA cache. Too small a cache makes the DFA give up and fall back to a much slower engine on
/// long lines; the default (2 MiB) is plenty for dozens of patterns, this leaves headroom for hundreds.
const DFA_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// What a match does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Counted (`accel_log_matches_total`) and reported as an event, every match.
    Event,
    /// Sets the named condition (e.g. "LogErrors") when the threshold is reached.
    Condition { condition: String },
}

/// `count` matches within `window` set a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    pub window: Duration,
}

/// One rule as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    /// Regular expression (Rust `regex` syntax), unanchored.
    pub pattern: String,
    pub action: RuleAction,
    pub severity: Severity,
    /// Conditions only; none means a single match sets the condition.
    pub threshold: Option<Threshold>,
    /// Conditions only: a line matching this clears the condition.
    pub clear_pattern: Option<String>,
    /// Conditions only: the condition clears after this long without a match.
    pub quiet_period: Option<Duration>,
    /// Conditions only: neither the clear pattern nor the quiet period clear the condition; only
    /// [`RuleTracker::clear_latched`] does.
    pub latch: bool,
}

impl RuleSpec {
    /// An event rule with no options.
    pub fn event(name: &str, pattern: &str, severity: Severity) -> RuleSpec {
        RuleSpec {
            name: name.to_owned(),
            pattern: pattern.to_owned(),
            action: RuleAction::Event,
            severity,
            threshold: None,
            clear_pattern: None,
            quiet_period: None,
            latch: false,
        }
    }

    /// A condition rule set by one match, with no options.
    pub fn condition(name: &str, pattern: &str, condition: &str, severity: Severity) -> RuleSpec {
        RuleSpec {
            action: RuleAction::Condition { condition: condition.to_owned() },
            ..Self::event(name, pattern, severity)
        }
    }
}

/// A configuration mistake in a rule, naming the rule.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuleError {
    #[error("log rule {rule:?}: pattern: {source}")]
    Pattern { rule: String, source: regex::Error },
    #[error("log rule {rule:?}: clear_pattern: {source}")]
    ClearPattern { rule: String, source: regex::Error },
    #[error("log rule {rule:?} is defined twice")]
    Duplicate { rule: String },
    #[error("log rule {rule:?}: {problem}")]
    Invalid { rule: String, problem: &'static str },
    /// Every pattern compiles on its own, but not all of them together within the size limit.
    #[error("log rules: the patterns together are too large: {source}")]
    TooLarge { source: regex::Error },
}

/// The compiled form of a rule that a tracker needs.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    pub(crate) severity: Severity,
    pub(crate) kind: RuleKind,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Event,
    Condition {
        condition: Arc<str>,
        count: u32,
        /// None: matches never expire (a count of 1 needs no window).
        window: Option<Duration>,
        quiet: Option<Duration>,
        latch: bool,
    },
}

/// Compiled rules.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Arc<[Rule]>,
    /// All patterns, then all clear patterns.
    all: RegexSet,
    /// Matches when any of `all` matches; `None` if it cannot be built (then `all` answers).
    any: Option<Regex>,
    /// For each clear pattern in `all` (after the patterns), the rule it belongs to.
    clear_owner: Vec<usize>,
}

impl RuleSet {
    pub fn new(specs: &[RuleSpec]) -> Result<RuleSet, RuleError> {
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(specs.len());
        let mut clears = Vec::new();
        let mut clear_owner = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let invalid = |problem| RuleError::Invalid { rule: spec.name.clone(), problem };
            if spec.name.is_empty() {
                return Err(invalid("the name is empty"));
            }
            if !names.insert(spec.name.as_str()) {
                return Err(RuleError::Duplicate { rule: spec.name.clone() });
            }
            // Compiled alone first: a RegexSet error does not say which pattern is wrong.
            Regex::new(&spec.pattern).map_err(|source| RuleError::Pattern { rule: spec.name.clone(), source })?;
            if let Some(clear) = &spec.clear_pattern {
                Regex::new(clear).map_err(|source| RuleError::ClearPattern { rule: spec.name.clone(), source })?;
                clears.push(clear.as_str());
                clear_owner.push(i);
            }
            let kind = match &spec.action {
                RuleAction::Event => {
                    if spec.threshold.is_some()
                        || spec.clear_pattern.is_some()
                        || spec.quiet_period.is_some()
                        || spec.latch
                    {
                        return Err(invalid(
                            "threshold, clear_pattern, quiet_period and latch apply to conditions only",
                        ));
                    }
                    RuleKind::Event
                }
                RuleAction::Condition { condition } => {
                    if condition.is_empty() {
                        return Err(invalid("the condition name is empty"));
                    }
                    let (count, window) = match spec.threshold {
                        None => (1, None),
                        Some(Threshold { count: 0, .. }) => return Err(invalid("threshold count must be at least 1")),
                        Some(Threshold { count: 1, .. }) => (1, None),
                        Some(Threshold { window, .. }) if window.is_zero() => {
                            return Err(invalid("a threshold of several matches needs a window longer than 0"));
                        }
                        Some(Threshold { count, window }) => (count, Some(window)),
                    };
                    if spec.quiet_period.is_some_and(|q| q.is_zero()) {
                        return Err(invalid("quiet_period must be longer than 0"));
                    }
                    RuleKind::Condition {
                        condition: condition.as_str().into(),
                        count,
                        window,
                        quiet: spec.quiet_period,
                        latch: spec.latch,
                    }
                }
            };
            rules.push(Rule { name: spec.name.as_str().into(), severity: spec.severity, kind });
        }
        let patterns: Vec<&str> = specs.iter().map(|s| s.pattern.as_str()).chain(clears).collect();
        let all = RegexSetBuilder::new(&patterns)
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .map_err(|source| RuleError::TooLarge { source })?;
        Ok(RuleSet { rules: rules.into(), all, any: alternation(&patterns), clear_owner })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The name of rule `index` (as in [`matches`](Self::matches)).
    pub fn name(&self, index: usize) -> Option<&str> {
        self.rules.get(index).map(|r| &*r.name)
    }

    pub fn severity(&self, index: usize) -> Option<Severity> {
        self.rules.get(index).map(|r| r.severity)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| &*r.name == name)
    }

    /// Replaces `hits` with the indexes of the rules whose pattern matches `line`, in rule order.
    pub fn matches(&self, line: &str, hits: &mut Vec<usize>) {
        let mut clears = Vec::new();
        self.match_line(line, hits, &mut clears);
    }

    /// Replaces `hits` with the indexes of the rules whose clear pattern matches `line`, in rule order.
    pub fn clear_matches(&self, line: &str, hits: &mut Vec<usize>) {
        let mut pattern_hits = Vec::new();
        self.match_line(line, &mut pattern_hits, hits);
    }

    /// Both at once, in one scan of the line: what [`RuleTracker`] uses.
    pub fn match_line(&self, line: &str, hits: &mut Vec<usize>, clear_hits: &mut Vec<usize>) {
        hits.clear();
        clear_hits.clear();
        let any = match &self.any {
            Some(any) => any.is_match(line),
            None => self.all.is_match(line),
        };
        if !any {
            return;
        }
        let n = self.rules.len();
        for i in self.all.matches(line).iter() {
            match i.checked_sub(n) {
                None => hits.push(i),
                Some(c) => clear_hits.extend(self.clear_owner.get(c)),
            }
        }
        // Several clear patterns are in pattern order already, but keep the promise explicit.
        clear_hits.sort_unstable();
    }

    pub(crate) fn rules(&self) -> &Arc<[Rule]> {
        &self.rules
    }
}

/// One regex matching wherever any of `patterns` matches. Each pattern is wrapped in a group, which
/// scopes its inline flags. Only a verbose-mode (`(?x)`) comment running to the end of a pattern can
/// escape the group: it swallows the closing parenthesis, which leaves the group open, so the
/// alternation fails to compile and the set answers alone.
fn alternation(patterns: &[&str]) -> Option<Regex> {
    if patterns.is_empty() {
        return None;
    }
    let mut src = String::with_capacity(patterns.iter().map(|p| p.len() + 5).sum());
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            src.push('|');
        }
        src.push_str("(?:");
        src.push_str(p);
        src.push(')');
    }
    RegexBuilder::new(&src).size_limit(SET_SIZE_LIMIT).dfa_size_limit(DFA_SIZE_LIMIT).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_rule_and_the_problem() {
        let bad = RuleSpec::event("aer", r"AER: (unclosed", Severity::Warning);
        let e = RuleSet::new(&[bad]).unwrap_err();
        assert!(matches!(&e, RuleError::Pattern { rule, .. } if rule == "aer"), "{e}");
        assert!(e.to_string().starts_with("log rule \"aer\": pattern: "), "{e}");

        let bad_clear =
            RuleSpec { clear_pattern: Some("[".into()), ..RuleSpec::condition("x", "x", "C", Severity::Info) };
        assert!(matches!(RuleSet::new(&[bad_clear]), Err(RuleError::ClearPattern { .. })));

        let twice = [RuleSpec::event("a", "x", Severity::Info), RuleSpec::event("a", "y", Severity::Info)];
        assert_eq!(RuleSet::new(&twice).unwrap_err().to_string(), "log rule \"a\" is defined twice");

        let event_with_latch = RuleSpec { latch: true, ..RuleSpec::event("e", "x", Severity::Info) };
        assert!(matches!(RuleSet::new(&[event_with_latch]), Err(RuleError::Invalid { .. })));

        let zero = RuleSpec {
            threshold: Some(Threshold { count: 0, window: Duration::from_secs(1) }),
            ..RuleSpec::condition("c", "x", "C", Severity::Info)
        };
        assert_eq!(
            RuleSet::new(&[zero]).unwrap_err().to_string(),
            "log rule \"c\": threshold count must be at least 1"
        );
    }

    #[test]
    fn verbose_patterns_keep_their_meaning() {
        let set = RuleSet::new(&[
            RuleSpec::event("verbose", "(?x) thermal \\s throttl # what the driver says", Severity::Info),
            RuleSpec::event("plain", "AER:", Severity::Info),
        ])
        .unwrap();
        assert!(set.any.is_none(), "the comment swallowed the group's end: the set answers alone");
        let mut hits = Vec::new();
        set.matches("cpu0: thermal throttling", &mut hits);
        assert_eq!(hits, [0]);
        set.matches("AER: x", &mut hits);
        assert_eq!(hits, [1]);
        set.matches("# what the driver says", &mut hits);
        assert!(hits.is_empty());
    }

    #[test]
    fn the_alternation_agrees_with_the_set() {
        let specs = [
            RuleSpec::event("a", r"(?i)\bERROR\b", Severity::Info),
            RuleSpec::event("b", r"^starts", Severity::Info),
            RuleSpec::event("c", r"ends$", Severity::Info),
            RuleSpec {
                clear_pattern: Some("(?i)RECOVERED".into()),
                ..RuleSpec::condition("d", "x{3}", "C", Severity::Info)
            },
            // A comment that a newline ends stays inside its group.
            RuleSpec::event("e", "(?x) link \\s (down|lost) # carrier\n", Severity::Info),
        ];
        let set = RuleSet::new(&specs).unwrap();
        assert!(set.any.is_some());
        for line in [
            "an error here",
            "errors",
            "starts here",
            "it starts",
            "it ends",
            "ends not",
            "xxx",
            "xx",
            "Recovered",
            "",
            "link down",
            "linkdown",
            "# carrier",
        ] {
            let any = set.any.as_ref().map(|r| r.is_match(line));
            assert_eq!(any, Some(set.all.is_match(line)), "{line:?}");
        }
    }

    #[test]
    fn matches_report_rule_indexes_and_clear_owners() {
        let set = RuleSet::new(&[
            RuleSpec::event("aer", r"AER: (Corrected|Uncorrected)", Severity::Warning),
            RuleSpec {
                clear_pattern: Some("link up".into()),
                ..RuleSpec::condition("down", "link down", "LinkDown", Severity::Critical)
            },
            RuleSpec::event("any-error", r"(?i)\berror\b", Severity::Info),
        ])
        .unwrap();
        let (mut hits, mut clears) = (Vec::new(), Vec::new());
        set.match_line("pcieport 0000:00:1c.0: AER: Corrected error received", &mut hits, &mut clears);
        assert_eq!((hits.as_slice(), clears.as_slice()), (&[0, 2][..], &[][..]));
        set.match_line("eth0: link up", &mut hits, &mut clears);
        assert_eq!((hits.as_slice(), clears.as_slice()), (&[][..], &[1][..]));
        set.matches("eth0: link down", &mut hits);
        assert_eq!(hits, [1]);
        set.clear_matches("nothing here", &mut clears);
        assert!(clears.is_empty());
        assert_eq!(set.index_of("any-error"), Some(2));
        assert_eq!(set.name(1), Some("down"));
        assert_eq!(set.severity(1), Some(Severity::Critical));
    }
}
