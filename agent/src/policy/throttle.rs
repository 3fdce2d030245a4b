//! When to throttle: one step up after the value stays above the threshold for `hold`, one step down
//! after it stays below threshold minus hysteresis for as long. And what each level means on disk.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use config::device::ThrottleLevel;

#[derive(Debug, Clone)]
pub struct ThrottleController {
    pub threshold: f64,
    pub hysteresis: f64,
    pub hold: Duration,
    pub max: usize,
    above_since: Option<Instant>,
    below_since: Option<Instant>,
}

impl ThrottleController {
    pub fn new(threshold: f64, hysteresis: f64, hold: Duration, max: usize) -> Self {
        ThrottleController { threshold, hysteresis, hold, max, above_since: None, below_since: None }
    }

    /// Given the value now and the level currently applied, the level to apply (if different). Steps
    /// are relative to what is applied, so a write that failed is simply tried again after `hold`.
    pub fn observe(&mut self, value: f64, applied: usize, now: Instant) -> Option<usize> {
        if value > self.threshold {
            self.below_since = None;
            let since = *self.above_since.get_or_insert(now);
            if applied < self.max && now.duration_since(since) >= self.hold {
                // The next step needs its own hold period.
                self.above_since = Some(now);
                return Some(applied + 1);
            }
        } else if value < self.threshold - self.hysteresis {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            if applied > 0 && now.duration_since(since) >= self.hold {
                self.below_since = Some(now);
                return Some(applied - 1);
            }
        } else {
            // Inside the hysteresis band: hold the level, restart both clocks.
            self.above_since = None;
            self.below_since = None;
        }
        None
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
    use config::device::{CoolingStep, PowercapStep};

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn steps_up_one_level_per_hold_and_down_the_same_way() {
        let t0 = Instant::now();
        let mut c = ThrottleController::new(80.0, 5.0, 10 * S, 3);
        assert_eq!(c.observe(85.0, 0, t0), None);
        assert_eq!(c.observe(86.0, 0, t0 + 9 * S), None);
        assert_eq!(c.observe(86.0, 0, t0 + 10 * S), Some(1));
        assert_eq!(c.observe(86.0, 1, t0 + 15 * S), None, "each step waits its own hold");
        assert_eq!(c.observe(86.0, 1, t0 + 20 * S), Some(2));
        // In the band (75..80): hold.
        assert_eq!(c.observe(77.0, 2, t0 + 40 * S), None);
        // Below 75 for 10 s: one step down, then another.
        assert_eq!(c.observe(74.0, 2, t0 + 41 * S), None);
        assert_eq!(c.observe(74.0, 2, t0 + 51 * S), Some(1));
        assert_eq!(c.observe(70.0, 1, t0 + 61 * S), Some(0));
        assert_eq!(c.observe(60.0, 0, t0 + 90 * S), None);
    }

    #[test]
    fn never_beyond_the_ladder() {
        let t0 = Instant::now();
        let mut c = ThrottleController::new(50.0, 0.0, Duration::ZERO, 1);
        assert_eq!(c.observe(99.0, 0, t0), Some(1));
        assert_eq!(c.observe(99.0, 1, t0 + S), None);
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
