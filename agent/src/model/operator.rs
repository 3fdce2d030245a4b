//! What an operator set on a device through the control socket (maintenance, a manual throttle level),
//! and the errors a request about a device can meet. The engine honours these over its own decisions.

use std::time::SystemTime;

use thiserror::Error;

/// Why an operator's request about a device cannot be done. Each says what would make it possible.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OperatorError {
    #[error("no device {id:?}; known devices: {}", known_list(known))]
    UnknownDevice { id: String, known: Vec<String> },
    #[error("device {id} has no throttle ladder; add [device.throttle] with levels to its config")]
    NoThrottleLadder { id: String },
    #[error("device {id} has throttle levels 0..={max}; {level} is out of range")]
    LevelOutOfRange { id: String, level: usize, max: usize },
    #[error("device {id} has no reconnect ladder; add [device.reconnect] with steps to its config")]
    NoReconnectLadder { id: String },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
}

/// A manual throttle level, held until `until` (or until released).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManualThrottle {
    pub level: usize,
    #[serde(with = "super::unix_time::opt_unix")]
    pub until: Option<SystemTime>,
}

/// What has run out, for the journal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expired {
    Maintenance,
    Throttle { level: usize },
}

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// In maintenance: Some(until), where until None means until turned off.
    pub maintenance: Option<Option<SystemTime>>,
    pub throttle: Option<ManualThrottle>,
    /// A manual throttle ended: the device goes back to level 0 once, then automatic control resumes.
    pub throttle_released: bool,
    /// The manual level last asked of the actions layer: asked once, not at every evaluation (a write
    /// that fails is reported once, and the operator decides).
    pub throttle_requested: Option<usize>,
}

/// A device's manual-throttle state as it was before an operator's change, to put back when applying the
/// change failed (the operator was told it failed; the engine must not hold the level anyway).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleOverride {
    throttle: Option<ManualThrottle>,
    released: bool,
    requested: Option<usize>,
}

impl Overrides {
    pub fn throttle_override(&self) -> ThrottleOverride {
        ThrottleOverride {
            throttle: self.throttle,
            released: self.throttle_released,
            requested: self.throttle_requested,
        }
    }

    pub fn restore_throttle(&mut self, saved: ThrottleOverride) {
        self.throttle = saved.throttle;
        self.throttle_released = saved.released;
        self.throttle_requested = saved.requested;
    }

    pub fn in_maintenance(&self, now: SystemTime) -> bool {
        self.maintenance.is_some_and(|until| until.is_none_or(|u| now < u))
    }

    /// When maintenance ends, if it has an end.
    pub fn maintenance_until(&self) -> Option<SystemTime> {
        self.maintenance.flatten()
    }

    pub fn release_throttle(&mut self) {
        if self.throttle.take().is_some() {
            self.throttle_released = true;
        }
    }

    /// Ends whatever has run out by `now`.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Expired> {
        let mut out = Vec::new();
        if let Some(Some(until)) = self.maintenance
            && now >= until
        {
            self.maintenance = None;
            out.push(Expired::Maintenance);
        }
        if let Some(t) = self.throttle
            && t.until.is_some_and(|u| now >= u)
        {
            self.release_throttle();
            out.push(Expired::Throttle { level: t.level });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn windows_end_by_themselves_or_when_released() {
        let t0 = SystemTime::now();
        let h = Duration::from_secs(3600);
        let mut o = Overrides { maintenance: Some(Some(t0 + h)), ..Default::default() };
        o.throttle = Some(ManualThrottle { level: 2, until: Some(t0 + 2 * h) });
        assert!(o.in_maintenance(t0));
        assert!(o.expire(t0).is_empty());
        assert_eq!(o.expire(t0 + h), vec![Expired::Maintenance]);
        assert!(!o.in_maintenance(t0 + h));
        assert_eq!(o.expire(t0 + 2 * h), vec![Expired::Throttle { level: 2 }]);
        assert!(o.throttle.is_none() && o.throttle_released);

        let mut forever = Overrides { maintenance: Some(None), ..Default::default() };
        assert!(forever.in_maintenance(t0 + 1000 * h));
        assert!(forever.expire(t0 + 1000 * h).is_empty());
        forever.release_throttle();
        assert!(!forever.throttle_released, "nothing was held");
    }
}
