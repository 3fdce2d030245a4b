//! When to throttle: one step up after the value has stayed above the threshold for `hold`, one step
//! down after it has stayed below threshold minus hysteresis for as long. Which side the value is on, and
//! since when, is the model's threshold tracker's judgement; the ladder only remembers its last step.
//! And what each level means on disk.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use config::device::ThrottleLevel;

use super::threshold::Zone;

#[derive(Debug, Clone)]
pub struct ThrottleLadder {
    pub hold: Duration,
    pub max: usize,
    /// When the ladder last asked for a level: the next step waits a hold of its own from there.
    last_step: Option<Instant>,
}

impl ThrottleLadder {
    pub fn new(hold: Duration, max: usize) -> Self {
        ThrottleLadder { hold, max, last_step: None }
    }

    /// Given the tracker's zone (and since when the value has stayed in it) and the level currently
    /// applied, the level to apply (if different). Steps are relative to what is applied, so a write that
    /// failed is simply tried again after `hold`. Inside the hysteresis band the level holds.
    pub fn next(&mut self, (zone, since): (Zone, Instant), applied: usize, now: Instant) -> Option<usize> {
        let since = self.last_step.map_or(since, |step| step.max(since));
        if now.duration_since(since) < self.hold {
            return None;
        }
        let level = match zone {
            Zone::Over if applied < self.max => applied + 1,
            Zone::Under if applied > 0 => applied - 1,
            _ => return None,
        };
        self.last_step = Some(now);
        Some(level)
    }

    /// Forgets the last step (actions went off and put the originals back): the next step is judged on
    /// the tracker's zone alone.
    pub fn forget(&mut self) {
        self.last_step = None;
    }

    /// Starts the hold afresh at `now` (an operator's level was released and level 0 asked for).
    pub fn restart(&mut self, now: Instant) {
        self.last_step = Some(now);
    }
}

/// The value every throttled file must have at `level` (1-based; 0 means originals): the value from the
/// highest level at or below it that names the file. Files only named by higher levels are absent and
/// must hold their original value.
pub fn plan(levels: &[ThrottleLevel], level: usize) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in levels.iter().take(level) {
        for (path, value) in l.writes() {
            out.insert(path, value);
        }
    }
    out
}

/// Every file any level writes: the set a device may touch, and what is restored at level 0.
pub fn all_files(levels: &[ThrottleLevel]) -> Vec<String> {
    let mut v: Vec<String> = levels.iter().flat_map(|l| l.writes().into_iter().map(|(p, _)| p)).collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::threshold::ThresholdTracker;
    use config::device::{CoolingStep, PowercapStep};

    const S: Duration = Duration::from_secs(1);

    /// The ladder fed by a tracker at 80 with hysteresis 5, as the model feeds it.
    fn ladder_on(values: &[(u32, f64, usize, Option<usize>)], hold: Duration, max: usize) {
        let t0 = Instant::now();
        let mut tracker = ThresholdTracker::new(80.0, 5.0, hold);
        let mut ladder = ThrottleLadder::new(hold, max);
        for &(t, value, applied, want) in values {
            let now = t0 + t * S;
            tracker.observe(value, now);
            let zone = tracker.zone().expect("observed");
            assert_eq!(ladder.next(zone, applied, now), want, "{value} at {t}s with level {applied} applied");
        }
    }

    #[test]
    fn steps_up_one_level_per_hold_and_down_the_same_way() {
        ladder_on(
            &[
                (0, 85.0, 0, None),
                (9, 86.0, 0, None),
                (10, 86.0, 0, Some(1)),
                (15, 86.0, 1, None), // each step waits its own hold
                (20, 86.0, 1, Some(2)),
                (40, 77.0, 2, None), // in the band (75..80): hold
                (41, 74.0, 2, None),
                (51, 74.0, 2, Some(1)), // below 75 for 10 s: one step down, then another
                (61, 70.0, 1, Some(0)),
                (90, 60.0, 0, None),
            ],
            10 * S,
            3,
        );
    }

    #[test]
    fn never_beyond_the_ladder() {
        ladder_on(&[(0, 99.0, 0, Some(1)), (1, 99.0, 1, None)], Duration::ZERO, 1);
    }

    #[test]
    fn a_restart_waits_a_whole_hold() {
        let t0 = Instant::now();
        let mut ladder = ThrottleLadder::new(10 * S, 2);
        ladder.restart(t0 + 30 * S);
        assert_eq!(ladder.next((Zone::Over, t0), 0, t0 + 35 * S), None, "over for long, but just restarted");
        assert_eq!(ladder.next((Zone::Over, t0), 0, t0 + 40 * S), Some(1));
    }

    #[test]
    fn a_file_keeps_the_highest_value_at_or_below_the_level() {
        let levels = vec![
            ThrottleLevel {
                cooling_device: Some(CoolingStep { device: "cooling_device0".into(), state: 1 }),
                ..Default::default()
            },
            ThrottleLevel {
                powercap_limit: Some(PowercapStep { zone: "intel-rapl:0".into(), constraint: 0, watts: 100.0 }),
                ..Default::default()
            },
            ThrottleLevel {
                cooling_device: Some(CoolingStep { device: "cooling_device0".into(), state: 3 }),
                ..Default::default()
            },
        ];
        assert!(plan(&levels, 0).is_empty());
        assert_eq!(plan(&levels, 1)["class/thermal/cooling_device0/cur_state"], "1");
        let p2 = plan(&levels, 2);
        assert_eq!(p2["class/thermal/cooling_device0/cur_state"], "1");
        assert_eq!(p2["class/powercap/intel-rapl:0/constraint_0_power_limit_uw"], "100000000");
        assert_eq!(plan(&levels, 3)["class/thermal/cooling_device0/cur_state"], "3");
        assert_eq!(all_files(&levels).len(), 2);
    }
}
