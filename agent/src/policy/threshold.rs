//! The model's judgement of a noisy value against a threshold: which side of it the value is on (with
//! hysteresis), since when, and when that has lasted long enough to count. Conditions (Overheating,
//! PowerAnomaly) read its level; the throttle ladder reads its zone, so both act on one judgement.

use std::time::{Duration, Instant};

/// A level for a threshold tracker: which side of the threshold a value is on, with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Below,
    Above,
}

/// Where the last value stands: above the threshold, in the hysteresis band (at or below the threshold
/// and at or above threshold minus hysteresis), or below the band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Over,
    Band,
    Under,
}

/// Decides when a noisy value has really crossed a threshold: it must stay above `threshold` for
/// `min_duration` to go Above, and stay below `threshold - hysteresis` for `min_duration` to go back.
#[derive(Debug, Clone)]
pub struct ThresholdTracker {
    pub threshold: f64,
    pub hysteresis: f64,
    pub min_duration: Duration,
    level: Level,
    /// The zone of the last value and since when the values have stayed in it (None before the first).
    zone: Option<(Zone, Instant)>,
}

impl ThresholdTracker {
    pub fn new(threshold: f64, hysteresis: f64, min_duration: Duration) -> Self {
        ThresholdTracker { threshold, hysteresis, min_duration, level: Level::Below, zone: None }
    }

    /// Feeds a value observed at `now`; returns the (possibly new) level.
    pub fn observe(&mut self, value: f64, now: Instant) -> Level {
        let zone = if value > self.threshold {
            Zone::Over
        } else if value < self.threshold - self.hysteresis {
            Zone::Under
        } else {
            Zone::Band
        };
        if self.zone.is_none_or(|(z, _)| z != zone) {
            self.zone = Some((zone, now));
        }
        if let Some(since) = self.pending_since()
            && now.duration_since(since) >= self.min_duration
        {
            self.level = if self.level == Level::Below { Level::Above } else { Level::Below };
        }
        self.level
    }

    /// The zone of the last value observed, and since when the values have stayed in it.
    pub fn zone(&self) -> Option<(Zone, Instant)> {
        self.zone
    }

    /// Whether the value is on the other side and the tracker waits out `min_duration` before flipping:
    /// observing the same value later may change the level.
    pub fn is_pending(&self) -> bool {
        self.pending_since().is_some()
    }

    /// Since when the values have been on the side that flips the level, if they are.
    fn pending_since(&self) -> Option<Instant> {
        match (self.level, self.zone?) {
            (Level::Below, (Zone::Over, since)) | (Level::Above, (Zone::Under, since)) => Some(since),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_noisy_value_does_not_flap() {
        let t0 = Instant::now();
        let mut t = ThresholdTracker::new(80.0, 3.0, 10 * S);
        // Spikes above the threshold shorter than min_duration change nothing.
        for (i, v) in [81.0, 79.0, 82.0, 79.5, 85.0, 78.0].iter().enumerate() {
            assert_eq!(t.observe(*v, t0 + (i as u32) * 3 * S), Level::Below, "sample {i}");
        }
        // Staying above for 10 s sets it.
        assert_eq!(t.observe(81.0, t0 + 20 * S), Level::Below);
        assert_eq!(t.observe(83.0, t0 + 25 * S), Level::Below);
        assert_eq!(t.observe(81.0, t0 + 30 * S), Level::Above);
        // Dropping below the threshold but inside the hysteresis band keeps it set.
        assert_eq!(t.observe(78.0, t0 + 45 * S), Level::Above);
        assert_eq!(t.observe(77.5, t0 + 60 * S), Level::Above);
        // Below threshold - hysteresis for 10 s clears it.
        assert_eq!(t.observe(76.0, t0 + 61 * S), Level::Above);
        assert_eq!(t.observe(76.5, t0 + 71 * S), Level::Below);
    }

    #[test]
    fn zero_min_duration_reacts_immediately() {
        let t0 = Instant::now();
        let mut t = ThresholdTracker::new(50.0, 0.0, Duration::ZERO);
        assert_eq!(t.observe(51.0, t0), Level::Above);
        assert_eq!(t.observe(49.0, t0), Level::Below);
    }

    #[test]
    fn the_zone_and_since_when_follow_the_values_whatever_the_level() {
        let t0 = Instant::now();
        let mut t = ThresholdTracker::new(80.0, 5.0, 10 * S);
        assert_eq!(t.zone(), None, "nothing observed yet");
        t.observe(85.0, t0);
        t.observe(86.0, t0 + 4 * S);
        assert_eq!(t.zone(), Some((Zone::Over, t0)), "still over since the first value over");
        t.observe(80.0, t0 + 5 * S);
        assert_eq!(t.zone(), Some((Zone::Band, t0 + 5 * S)), "exactly the threshold is in the band");
        t.observe(75.0, t0 + 6 * S);
        assert_eq!(t.zone(), Some((Zone::Band, t0 + 5 * S)), "threshold - hysteresis is still the band");
        t.observe(74.9, t0 + 7 * S);
        assert_eq!(t.zone(), Some((Zone::Under, t0 + 7 * S)));
        assert!(!t.is_pending(), "below the band while Below: nothing to wait for");
    }
}
