//! `agentctl device ID`: one device as the agent's answer has it, a section per part (readings,
//! conditions, probes, diagnostics, actions, kubernetes, events), each empty part left out.

use std::fmt::Write as _;

use super::render::{Style, Table, ago, value};
use crate::model::DeviceView;
use crate::model::kubelet::KubeletView;
use crate::model::{Status, health::Impact};
use crate::publish::api::DeviceDetail;

/// The whole text, sections one blank line apart.
pub(super) fn text(detail: &DeviceDetail<'_>, style: Style) -> String {
    let d = &*detail.device;
    let mut out = header(d, style);
    out.push('\n');
    let readings = readings(d, style);
    out.push_str(if readings.is_empty() { "no readings\n" } else { &readings });
    out.push('\n');
    out.push_str(&conditions(d, style));
    for section in [probes(d, style), super::diagnostics::table(d, style)] {
        if !section.is_empty() {
            out.push('\n');
            out.push_str(&section);
        }
    }
    let actions = actions(d, style);
    if !actions.is_empty() {
        let _ = writeln!(out, "\nactions: {}", actions.join("; "));
    }
    if let Some(k) = &d.kubernetes {
        out.push_str(&kubernetes(k));
    }
    if !detail.events.is_empty() {
        out.push('\n');
        out.push_str(&super::events_text(&detail.events, style));
    }
    out
}

/// "loihi0 (loihi) — healthy" and the line of what the device is.
fn header(d: &DeviceView, style: Style) -> String {
    use super::or_dash;
    format!(
        "{} ({}) — {}\nmodel {} · driver {} · pci {} · sources {}\n",
        style.bold(&or_dash(&d.id)),
        or_dash(&d.kind),
        style.state(d.state.name()),
        or_dash(&d.model),
        or_dash(&d.driver),
        or_dash(&d.pci_address),
        or_dash(&d.sources.join(", ")),
    )
}

/// Each sensor's reading (temperatures with the limits they are judged by), then the probe's figures;
/// "" when there is none.
fn readings(d: &DeviceView, style: Style) -> String {
    let r = &d.readings;
    let mut t = Table::new(&["READING", "SENSOR", "VALUE", "THRESHOLDS"]);
    let sensors = [
        (&r.temperature_celsius, "temperature", "°C", 1),
        (&r.power_watts, "power", "W", 2),
        (&r.energy_joules, "energy", "J", 1),
        (&r.voltage_volts, "voltage", "V", 3),
        (&r.current_amperes, "current", "A", 3),
        (&r.fan_rpm, "fan", "RPM", 0),
    ];
    for (i, (list, label, unit, decimals)) in sensors.into_iter().enumerate() {
        for reading in list {
            // Only temperatures have thresholds (the first row of the table above).
            let limits = if i == 0 { temperature_limits(d, &reading.sensor) } else { String::new() };
            t.row(vec![label.to_owned(), reading.sensor.clone(), value(Some(reading.value), unit, decimals), limits]);
        }
    }
    if let Some(w) = r.power_limit_watts {
        t.row(vec!["power limit".into(), "driver".into(), value(Some(w), "W", 1), String::new()]);
    }
    for (x, label, unit, scale, decimals) in [
        (d.utilization_ratio, "utilization", "%", 100.0, 1),
        (d.energy_per_inference_joules, "energy/inference", "mJ", 1e3, 3),
        (d.inferences_total, "inferences", "", 1.0, 0),
    ] {
        if let Some(x) = x {
            t.row(vec![label.into(), "-".into(), value(Some(x * scale), unit, decimals), String::new()]);
        }
    }
    if t.is_empty() { String::new() } else { t.render(style) }
}

/// "warn 80.0 °C · crit 90.0 °C", and the hardware's own trip points for the sensor when it declares any.
fn temperature_limits(d: &DeviceView, sensor: &str) -> String {
    let warn = value(Some(d.temperature_warn_celsius), "°C", 1);
    let crit = value(Some(d.temperature_crit_celsius), "°C", 1);
    let mut limits = format!("warn {warn} · crit {crit}");
    let hardware: Vec<String> = d
        .readings
        .temperature_threshold_celsius
        .iter()
        .filter(|t| t.sensor == sensor)
        .map(|t| format!("{} {}", t.level, value(Some(t.value), "°C", 1)))
        .collect();
    if !hardware.is_empty() {
        let _ = write!(limits, " · hardware {}", hardware.join(", "));
    }
    limits
}

fn conditions(d: &DeviceView, style: Style) -> String {
    let mut t = Table::new(&["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"]);
    for c in &d.conditions {
        let shown = match c.status {
            Status::True if c.impact == Impact::Unhealthy => style.state("unhealthy"),
            Status::True => style.state("degraded"),
            Status::False => "false".to_owned(),
            Status::Unknown => "unknown".to_owned(),
        };
        let latched = if c.latched { " (latched)" } else { "" };
        t.row(vec![
            c.kind.name().to_owned(),
            format!("{shown}{latched}"),
            c.reason.clone(),
            ago(Some(c.since)),
            c.message.clone(),
        ]);
    }
    t.render(style)
}

/// "" when the device has no probes.
fn probes(d: &DeviceView, style: Style) -> String {
    let mut t = Table::new(&["PROBE", "STATUS", "LAST SUCCESS", "DURATION", "FAILURES", "MESSAGE"]);
    for p in &d.probes {
        t.row(vec![
            p.name.clone(),
            p.status.name().to_owned(),
            ago(p.last_success),
            value(Some(p.duration_seconds * 1e3), "ms", 0),
            p.consecutive_failures.to_string(),
            p.message.clone(),
        ]);
    }
    if t.is_empty() { String::new() } else { t.render(style) }
}

/// What holds the device or was done to it: maintenance, a manual throttle, the reconnect circuit.
fn actions(d: &DeviceView, style: Style) -> Vec<String> {
    let mut actions = maintenance_lines(d);
    if let Some(m) = &d.manual_throttle {
        actions.push(format!("manual throttle at level {}", m.level));
    }
    if let Some(c) = d.circuit {
        actions.push(format!("reconnect circuit {}", c.name()));
    }
    if d.needs_hardware_inspection {
        actions.push(style.state("critical") + ": needs hardware inspection (reconnects gave up)");
    }
    for (step, result, attempts) in &d.reconnect_attempts {
        actions.push(format!("reconnect step {step}: {result} x{attempts}"));
    }
    actions
}

/// Why the device is in maintenance: each open window with its end, and an operator's, with its own.
fn maintenance_lines(d: &DeviceView) -> Vec<String> {
    let mut lines: Vec<String> = d.maintenance_reason.iter().map(|why| format!("maintenance: {why}")).collect();
    lines.extend(d.maintenance_windows.iter().map(ToString::to_string));
    if d.maintenance_manual {
        let until = d
            .maintenance_until
            .map_or("until turned off".to_owned(), |t| format!("for {} more", crate::control::diagnose::remaining(t)));
        lines.push(format!("maintenance {until}"));
    }
    lines
}

/// The device's `kubernetes` part: what kubelet was told and who holds the device.
fn kubernetes(k: &KubeletView) -> String {
    let mut out = String::from("\nkubernetes: ");
    match (&k.resource, k.advertised) {
        (Some(r), Some(a)) => {
            let _ = write!(out, "{r}, advertised {}", a.name());
            if let Some(why) = &k.advertised_reason {
                let _ = write!(out, " ({why})");
            }
        }
        (Some(r), None) => {
            let _ = write!(out, "{r}, not listed yet");
        }
        (None, _) => out.push_str("not advertised by the agent"),
    }
    if k.resource.is_some() && !k.registered {
        out.push_str("; NOT registered with kubelet");
        if let Some(e) = &k.registration_error {
            let _ = write!(out, ": {e}");
        }
    }
    let pods: Vec<String> = k.pods.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "\npods: {}", if pods.is_empty() { "none".to_owned() } else { pods.join(", ") });
    if let Some(e) = &k.pods_error {
        let _ = writeln!(out, "pod-resources failing: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::effects::journal::{Event, Severity};
    use crate::model::diagnostics::{DiagnosticView, Outcome, Phase, Record, Trigger};
    use crate::model::health::{Condition, ConditionKind};
    use crate::model::kubelet::{Advertised, PodRef};
    use crate::model::operator::ManualThrottle;
    use crate::model::view::{ProbeState, ProbeView, Reading, Readings, ThresholdReading};
    use crate::model::window_set::WindowHold;
    use crate::policy::reconnect::Circuit;

    /// A device with every part agentctl shows filled in, times on whole milliseconds (as on the wire).
    fn full_view() -> DeviceView {
        let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64);
        let reading = |sensor: &str, value: f64| Reading { sensor: sensor.to_owned(), value };
        let mut overheating = Condition::unknown(ConditionKind::Overheating, now);
        overheating.set(Status::True, Impact::Unhealthy, "TemperatureAboveCritical", "93.5 °C".into(), now);
        overheating.previous = Status::Unknown;
        let failed =
            Outcome::Failed { expectation: "exit status 3, expected 0".into(), output: "ECC: 2 errors".into() };
        let record = Record::for_test(failed, Trigger::Operator, now, 12.5, true);
        DeviceView {
            id: "loihi0".into(),
            kind: Cow::Borrowed("loihi"),
            model: "Kapoho Point".into(),
            driver: "loihi2".into(),
            pci_address: "0000:3b:00.0".into(),
            firmware: "2.1".into(),
            state: crate::model::State::Unhealthy,
            up: Some(true),
            conditions: vec![overheating],
            readings: Readings {
                temperature_celsius: vec![reading("die", 93.5)],
                temperature_threshold_celsius: vec![ThresholdReading {
                    sensor: "die".into(),
                    level: "crit".into(),
                    value: 105.0,
                }],
                power_watts: vec![reading("board", 31.25)],
                power_limit_watts: Some(45.0),
                ..Readings::default()
            },
            sources: vec!["hwmon:loihi".into()],
            discovered: false,
            discovered_name: None,
            probes: vec![ProbeView {
                name: "sdk".into(),
                liveness: true,
                status: ProbeState::Problem,
                success: false,
                duration_seconds: 0.042,
                last_success: Some(now),
                consecutive_failures: 3,
                message: "board not responding".into(),
                not_run: Some(collectors::fault::AgentFault::Descriptors),
            }],
            utilization_ratio: Some(0.5),
            inferences_total: Some(1234.0),
            energy_per_inference_joules: Some(0.002),
            log_lines: vec![("dmesg".into(), 10)],
            log_matches: vec![("dma".into(), 1)],
            maintenance: true,
            maintenance_manual: true,
            maintenance_until: Some(now + Duration::from_secs(90 * 60)),
            maintenance_windows: vec![WindowHold {
                name: "sunday-firmware".into(),
                until: now + Duration::from_secs(7200),
                until_local: "Sun 04:00 UTC".into(),
            }],
            maintenance_reason: Some("exclusive diagnostic memtest running".into()),
            manual_throttle: Some(ManualThrottle { level: 2, until: None }),
            circuit: Some(Circuit::HalfOpen),
            needs_hardware_inspection: true,
            reconnect_attempts: vec![("rebind".into(), "failed".into(), 4)],
            temperature_warn_celsius: 80.0,
            temperature_crit_celsius: 90.0,
            kubernetes: Some(KubeletView {
                resource: Some("intel.com/loihi".into()),
                advertised: Some(Advertised::Unhealthy),
                advertised_reason: Some("Overheating".into()),
                registered: false,
                registration_error: Some("kubelet socket missing".into()),
                pods: vec![PodRef { namespace: "ml".into(), pod: "trainer-0".into(), container: "main".into() }],
                pods_error: Some("pod-resources unavailable".into()),
            }),
            diagnostics: vec![DiagnosticView {
                name: "memtest".into(),
                level: 3,
                exclusive: true,
                phase: Phase::Idle,
                running_since: None,
                timeout_seconds: 600.0,
                last: Some(record.clone()),
                last_verdict: Some(record),
            }],
        }
    }

    /// The agent's answer to /api/v1/devices/{id}, as bytes on the wire.
    fn answer(view: &DeviceView) -> Vec<u8> {
        let event = Event::new(SystemTime::now(), Severity::Critical, "condition_set", "Overheating set: 93.5 °C");
        let detail = DeviceDetail { device: Cow::Borrowed(view), events: vec![event.on_device("loihi0")] };
        serde_json::to_vec(&detail).unwrap()
    }

    #[test]
    fn a_full_device_view_reads_back_whole_and_shows_every_part() {
        let view = full_view();
        let read: DeviceDetail<'static> = serde_json::from_slice(&answer(&view)).unwrap();
        assert_eq!(*read.device, view, "the view agentctl reads is the one the agent wrote");
        let out = text(&read, Style { color: false });
        for expected in [
            "loihi0 (loihi) — unhealthy",
            "model Kapoho Point · driver loihi2 · pci 0000:3b:00.0 · sources hwmon:loihi",
            "93.5 °C",
            "warn 80.0 °C · crit 90.0 °C · hardware crit 105.0 °C",
            "31.25 W",
            "45.0 W",
            "50.0 %",
            "2.000 mJ",
            "Overheating",
            "unhealthy",
            "TemperatureAboveCritical",
            "board not responding",
            "42 ms",
            "memtest",
            "failed (after remedy)",
            "12.5 s",
            "exit status 3, expected 0",
            "maintenance: exclusive diagnostic memtest running",
            "maintenance window sunday-firmware until Sun 04:00 UTC",
            "maintenance for 1h 29m",
            "manual throttle at level 2",
            "reconnect circuit half-open",
            "critical: needs hardware inspection (reconnects gave up)",
            "reconnect step rebind: failed x4",
            "kubernetes: intel.com/loihi, advertised Unhealthy (Overheating); NOT registered with kubelet: kubelet socket missing",
            "pods: ml/trainer-0 (container main)",
            "pod-resources failing: pod-resources unavailable",
            "Overheating set: 93.5 °C",
        ] {
            assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
        }
    }

    #[test]
    fn fields_a_newer_agent_adds_are_ignored() {
        let view = full_view();
        let mut wire: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&answer(&view)).unwrap();
        let added = || serde_json::json!({"something": ["new", 1]});
        wire.insert("added_by_a_newer_agent".into(), added());
        for part in ["readings", "kubernetes", "manual_throttle"] {
            wire.get_mut(part).and_then(|p| p.as_object_mut()).unwrap().insert("added".into(), added());
        }
        let read: DeviceDetail<'static> = serde_json::from_value(serde_json::Value::Object(wire)).unwrap();
        assert_eq!(*read.device, view);
    }
}
