//! PowerAnomaly and energy per inference: small functions over named inputs, no clock and no I/O.

use super::health::{Level, Status};

/// An energy counter and an inference counter taken from one read (one probe result), so the energy
/// spent and the inferences done cover the same interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkCounters {
    pub energy_joules: f64,
    pub inferences: f64,
}

/// Energy per inference since the `last` read that advanced the inference count, and the read to keep
/// for the next time. No rate while the count stands still; a counter that went backwards (a reset)
/// starts again from `now`.
pub fn energy_per_inference(last: Option<WorkCounters>, now: WorkCounters) -> (Option<f64>, WorkCounters) {
    match last {
        Some(l) if now.inferences > l.inferences && now.energy_joules >= l.energy_joules => {
            (Some((now.energy_joules - l.energy_joules) / (now.inferences - l.inferences)), now)
        }
        Some(l) if now.inferences == l.inferences && now.energy_joules >= l.energy_joules => (None, l),
        _ => (None, now),
    }
}

/// A value judged against a configured maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub value: f64,
    pub max: f64,
    pub level: Level,
}

/// What PowerAnomaly is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerEvidence {
    /// The device's total power, if any sensor reads it.
    pub watts: Option<f64>,
    /// `watts` against `power_max`, when both exist.
    pub power: Option<Judged>,
    /// The latest energy per inference (J) against `energy_per_inference_max`, when both exist.
    pub per_inference: Option<Judged>,
}

/// PowerAnomaly's status, reason and message. Energy per inference above its maximum wins, then power
/// above its maximum; when clear, the message is about what was judged.
pub fn power_anomaly(e: PowerEvidence) -> (Status, &'static str, String) {
    let mj = |j: f64| j * 1e3;
    if let Some(epi) = e.per_inference.filter(|j| j.level == Level::Above) {
        let message = format!("{:.2} mJ per inference, above {:.2} mJ", mj(epi.value), mj(epi.max));
        return (Status::True, "EnergyPerInferenceAboveMaximum", message);
    }
    if let Some(p) = e.power.filter(|j| j.level == Level::Above) {
        return (Status::True, "PowerAboveMaximum", format!("{:.1} W, above {:.1} W", p.value, p.max));
    }
    if let Some(epi) = e.per_inference {
        let message = format!("{:.2} mJ per inference, within {:.2} mJ", mj(epi.value), mj(epi.max));
        return (Status::False, "EnergyPerInferenceNormal", message);
    }
    match (e.power, e.watts) {
        (Some(p), _) => (Status::False, "PowerNormal", format!("{:.1} W", p.value)),
        (None, Some(w)) => (Status::False, "NoPowerLimit", format!("{w:.1} W; no power_max configured")),
        (None, None) => (Status::Unknown, "NoPowerReading", "no power reading".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(energy_joules: f64, inferences: f64) -> WorkCounters {
        WorkCounters { energy_joules, inferences }
    }

    #[test]
    fn energy_per_inference_over_reads_of_both_counters() {
        // (last, now, rate, kept)
        let cases = [
            (None, work(100.0, 1000.0), None, work(100.0, 1000.0)),
            (Some(work(100.0, 1000.0)), work(100.5, 2000.0), Some(0.0005), work(100.5, 2000.0)),
            // The count stands still: no rate, and the earlier read is kept.
            (Some(work(100.0, 1000.0)), work(100.2, 1000.0), None, work(100.0, 1000.0)),
            // A counter reset: start again.
            (Some(work(100.0, 1000.0)), work(1.0, 10.0), None, work(1.0, 10.0)),
            (Some(work(100.0, 1000.0)), work(90.0, 2000.0), None, work(90.0, 2000.0)),
        ];
        for (last, now, rate, kept) in cases {
            assert_eq!(energy_per_inference(last, now), (rate, kept), "{last:?} -> {now:?}");
        }
    }

    #[test]
    fn power_anomaly_names_what_it_judged() {
        let j = |value, max, level| Some(Judged { value, max, level });
        let ev = |watts, power, per_inference| PowerEvidence { watts, power, per_inference };
        let cases = [
            (ev(None, None, None), Status::Unknown, "NoPowerReading", "no power reading"),
            (ev(Some(12.5), None, None), Status::False, "NoPowerLimit", "12.5 W; no power_max configured"),
            (ev(Some(12.5), j(12.5, 40.0, Level::Below), None), Status::False, "PowerNormal", "12.5 W"),
            (
                ev(Some(45.0), j(45.0, 40.0, Level::Above), None),
                Status::True,
                "PowerAboveMaximum",
                "45.0 W, above 40.0 W",
            ),
            (
                ev(Some(12.5), None, j(0.004, 0.005, Level::Below)),
                Status::False,
                "EnergyPerInferenceNormal",
                "4.00 mJ per inference, within 5.00 mJ",
            ),
            (
                ev(Some(12.5), None, j(0.01, 0.005, Level::Above)),
                Status::True,
                "EnergyPerInferenceAboveMaximum",
                "10.00 mJ per inference, above 5.00 mJ",
            ),
            // Both above: energy per inference is named.
            (
                ev(Some(45.0), j(45.0, 40.0, Level::Above), j(0.01, 0.005, Level::Above)),
                Status::True,
                "EnergyPerInferenceAboveMaximum",
                "10.00 mJ per inference, above 5.00 mJ",
            ),
            (
                ev(Some(45.0), j(45.0, 40.0, Level::Above), j(0.004, 0.005, Level::Below)),
                Status::True,
                "PowerAboveMaximum",
                "45.0 W, above 40.0 W",
            ),
        ];
        for (e, status, reason, message) in cases {
            assert_eq!(power_anomaly(e), (status, reason, message.to_owned()), "{e:?}");
        }
    }
}
