//! The device model: accelerators as devices with readings, named conditions and an overall state.

mod binding;
pub(crate) mod conditions;
#[cfg(test)]
mod decision_tables;
pub(crate) mod diagnostics;
pub(crate) mod engine;
pub(crate) mod evidence;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod host;
pub(crate) mod kubelet;
pub(crate) mod operator;
pub(crate) mod power;
pub(crate) mod source_health;
pub(crate) mod spinnaker;
pub(crate) mod unix_time;
pub(crate) mod view;
pub(crate) mod window_set;
pub(crate) mod windows;

use collectors::catalogue::{self as c, Spec};
use collectors::export::{Families, labels, lv};

pub use engine::{ConditionChange, DeviceEngine, DeviceView};
pub use health::{ConditionKind, State, Status};

/// The accel_device_* families (DESIGN.md's catalogue).
pub fn export(views: &[DeviceView], out: &mut Families) {
    export_kubelet(views, out);
    for d in views {
        let id = lv(&d.id);
        let kind = lv(&d.kind);
        out.sample(
            &c::DEVICE_INFO,
            vec![
                ("device", id.clone()),
                ("kind", kind.clone()),
                ("model", lv(&d.model)),
                ("driver", lv(&d.driver)),
                ("pci_address", lv(&d.pci_address)),
                ("firmware", lv(&d.firmware)),
            ],
            1.0,
        );
        if let Some(up) = d.up {
            out.sample(&c::DEVICE_UP, labels![("device", id.clone()), ("kind", kind.clone())], f64::from(u8::from(up)));
        }
        for s in State::ALL {
            out.sample(
                &c::DEVICE_HEALTH,
                labels![("device", id.clone()), ("state", lv(s.name()))],
                f64::from(u8::from(d.state == s)),
            );
        }
        for c in &d.conditions {
            out.sample(
                &c::DEVICE_CONDITION,
                labels![("device", id.clone()), ("condition", lv(c.kind.name()))],
                f64::from(u8::from(c.status == Status::True)),
            );
        }
        export_readings(d, &id, out);
        out.sample(&c::MAINTENANCE_MODE, labels![("device", id.clone())], f64::from(u8::from(d.maintenance)));
        if let Some(circuit) = d.circuit {
            out.sample(&c::RECONNECT_CIRCUIT_STATE, labels![("device", id.clone())], circuit.gauge());
        }
        for (step, result, n) in &d.reconnect_attempts {
            out.sample(
                &c::RECONNECT_ATTEMPTS,
                labels![("device", id.clone()), ("step", lv(step)), ("result", lv(result))],
                *n as f64,
            );
        }
        for (rule, n) in &d.log_matches {
            out.sample(&c::LOG_MATCHES, labels![("device", id.clone()), ("rule", lv(rule))], *n as f64);
        }
        for (source, n) in &d.log_lines {
            out.sample(&c::LOG_LINES, labels![("device", id.clone()), ("source", lv(source))], *n as f64);
        }
        for p in &d.probes {
            if p.status == engine::ProbeState::Pending {
                continue;
            }
            let l = || labels![("device", id.clone()), ("probe", lv(&p.name))];
            out.sample(&c::PROBE_SUCCESS, l(), f64::from(u8::from(p.success)));
            out.sample(&c::PROBE_DURATION, l(), p.duration_seconds);
            if let Some(t) = p.last_success.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
                out.sample(&c::PROBE_LAST_SUCCESS, l(), t.as_secs_f64());
            }
        }
        export_diagnostics(d, out);
    }
}

/// A device's readings: per-sensor families, its thresholds (the hardware's and the configured ones), and
/// utilisation, inferences and energy per inference where they are known.
fn export_readings(d: &DeviceView, id: &collectors::export::LabelValue, out: &mut Families) {
    let r = &d.readings;
    let sensor_family = |out: &mut Families, spec: &'static Spec, readings: &[engine::Reading]| {
        for x in readings {
            out.sample(spec, labels![("device", id.clone()), ("sensor", lv(&x.sensor))], x.value);
        }
    };
    sensor_family(out, &c::DEVICE_TEMPERATURE, &r.temperature_celsius);
    for t in &r.temperature_threshold_celsius {
        out.sample(
            &c::DEVICE_TEMPERATURE_THRESHOLD,
            labels![("device", id.clone()), ("sensor", lv(&t.sensor)), ("level", lv(&t.level))],
            t.value,
        );
    }
    // The thresholds the agent judges by, as sensor "configured", so alerts and dashboards compare
    // readings against the same numbers.
    for (level, v) in [("warn", d.temperature_warn_celsius), ("crit", d.temperature_crit_celsius)] {
        out.sample(
            &c::DEVICE_TEMPERATURE_THRESHOLD,
            labels![("device", id.clone()), ("sensor", lv("configured")), ("level", lv(level))],
            v,
        );
    }
    sensor_family(out, &c::DEVICE_POWER, &r.power_watts);
    sensor_family(out, &c::DEVICE_VOLTAGE, &r.voltage_volts);
    sensor_family(out, &c::DEVICE_CURRENT, &r.current_amperes);
    sensor_family(out, &c::DEVICE_FAN, &r.fan_rpm);
    sensor_family(out, &c::DEVICE_ENERGY, &r.energy_joules);
    if let Some(u) = d.utilization_ratio {
        out.sample(&c::DEVICE_UTILIZATION, labels![("device", id.clone())], u);
    }
    if let Some(n) = d.inferences_total {
        out.sample(&c::DEVICE_INFERENCES, labels![("device", id.clone())], n);
    }
    if let Some(e) = d.energy_per_inference_joules {
        out.sample(&c::DEVICE_ENERGY_PER_INFERENCE, labels![("device", id.clone())], e);
    }
}

/// accel_diagnostic_*: each diagnostic's last verdict (none before its first).
fn export_diagnostics(d: &DeviceView, out: &mut Families) {
    for diag in &d.diagnostics {
        let Some(last) = &diag.last_verdict else { continue };
        let l = || labels![("device", lv(&d.id)), ("diagnostic", lv(&diag.name))];
        let level = lv(diag.level.to_string());
        let success = f64::from(u8::from(last.outcome == diagnostics::Outcome::Passed));
        out.sample(
            &c::DIAGNOSTIC_SUCCESS,
            labels![("device", lv(&d.id)), ("diagnostic", lv(&diag.name)), ("level", level)],
            success,
        );
        if let Some(t) = last.finished.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
            out.sample(&c::DIAGNOSTIC_LAST_RUN, l(), t.as_secs_f64());
        }
        out.sample(&c::DIAGNOSTIC_DURATION, l(), last.duration_seconds);
    }
}

/// accel_device_pod_info and accel_kubelet_registered, from what kubelet knows of the devices.
fn export_kubelet(views: &[DeviceView], out: &mut Families) {
    // One series per resource: every device of it carries the same registration.
    let mut registered: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for d in views {
        if let Some(k) = &d.kubernetes {
            if let Some(r) = &k.resource {
                registered.insert(r, k.registered);
            }
            for p in &k.pods {
                out.sample(
                    &c::DEVICE_POD_INFO,
                    labels![
                        ("device", lv(&d.id)),
                        ("namespace", lv(&p.namespace)),
                        ("pod", lv(&p.pod)),
                        ("container", lv(&p.container))
                    ],
                    1.0,
                );
            }
        }
    }
    for (resource, up) in registered {
        out.sample(&c::KUBELET_REGISTERED, labels![("resource", lv(resource))], f64::from(u8::from(up)));
    }
}
