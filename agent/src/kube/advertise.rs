//! What a device is to kubelet: `Unhealthy` while one of `[kubernetes] unhealthy_on` holds (by default:
//! the device is unhealthy, in maintenance, or its reconnect circuit is open), `Healthy` otherwise. The
//! model's hysteresis and minimum durations keep the state from flapping, so this adds none of its own.

use config::kubernetes::UnhealthyOn;

use crate::model::kubelet::Advertised;
use crate::model::{DeviceView, State, Status};
use crate::policy::reconnect::Circuit;

/// The health to advertise for `d`, and why when Unhealthy (e.g. "Overheating").
pub fn advertised(d: &DeviceView, unhealthy_on: &[UnhealthyOn]) -> (Advertised, Option<String>) {
    let mut reasons: Vec<String> = Vec::new();
    let failing = || {
        d.conditions.iter().filter(|c| c.status == Status::True).map(|c| c.kind.name().to_owned()).collect::<Vec<_>>()
    };
    for on in unhealthy_on {
        match on {
            UnhealthyOn::Unhealthy if d.state == State::Unhealthy => reasons.extend(failing()),
            UnhealthyOn::Degraded if d.state == State::Degraded => reasons.extend(failing()),
            UnhealthyOn::Unknown if d.state == State::Unknown => reasons.push("state unknown".to_owned()),
            UnhealthyOn::Maintenance if d.maintenance => reasons.push("maintenance".to_owned()),
            UnhealthyOn::CircuitOpen if d.circuit == Some(Circuit::Open) || d.needs_hardware_inspection => {
                reasons.push("reconnect circuit open".to_owned())
            }
            _ => {}
        }
    }
    let hit = unhealthy_on.iter().any(|on| match on {
        UnhealthyOn::Unhealthy => d.state == State::Unhealthy,
        UnhealthyOn::Degraded => d.state == State::Degraded,
        UnhealthyOn::Unknown => d.state == State::Unknown,
        UnhealthyOn::Maintenance => d.maintenance,
        UnhealthyOn::CircuitOpen => d.circuit == Some(Circuit::Open) || d.needs_hardware_inspection,
    });
    if !hit {
        return (Advertised::Healthy, None);
    }
    reasons.dedup();
    let reason = if reasons.is_empty() { d.state.name().to_owned() } else { reasons.join(", ") };
    (Advertised::Unhealthy, Some(reason))
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::model::DeviceEngine;

    /// A device inside an open maintenance window is Unhealthy to kubelet, as with manual maintenance;
    /// once the window has closed it is what its state says.
    #[test]
    fn a_maintenance_window_makes_its_device_unhealthy_to_kubelet() {
        let cfg = config::parse_str(
            "[[device]]\nid = \"photon0\"\nkind = \"photonic\"\n[[maintenance.window]]\nname = \"sunday-night\"\n\
             days = [\"sun\"]\nstart = \"02:00\"\nduration = \"2h\"\ntimezone = \"UTC\"\n",
            "t.toml",
        )
        .unwrap();
        let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
        let e = DeviceEngine::new(&cfg, Instant::now(), at("2026-12-06T01:00:00Z"));
        let on = [UnhealthyOn::Maintenance];
        let inside = &e.views(at("2026-12-06T03:00:00Z"))[0];
        assert_eq!(advertised(inside, &on), (Advertised::Unhealthy, Some("maintenance".to_owned())));
        let after = &e.views(at("2026-12-06T04:00:00Z"))[0];
        assert_eq!(advertised(after, &on), (Advertised::Healthy, None));
    }
}
