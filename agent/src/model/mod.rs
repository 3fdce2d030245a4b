//! The device model: accelerators as devices with readings, named conditions and an overall state.

pub(crate) mod engine;
pub(crate) mod evidence;
pub(crate) mod health;
pub(crate) mod operator;
pub(crate) mod power;
pub(crate) mod spinnaker;
pub(crate) mod view;

use collectors::export::{Families, lv};

pub use engine::{ConditionChange, DeviceEngine, DeviceView};
pub use health::{ConditionKind, State, Status};

/// The accel_device_* families (DESIGN.md's catalogue).
pub fn export(views: &[DeviceView], out: &mut Families) {
    for d in views {
        let id = lv(&d.id);
        let kind = lv(d.kind);
        out.gauge(
            "accel_device_info",
            "Static facts of a device",
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
            out.gauge(
                "accel_device_up",
                "1 if the device is reachable/online, 0 if not",
                vec![("device", id.clone()), ("kind", kind.clone())],
                f64::from(u8::from(up)),
            );
        }
        for s in State::ALL {
            out.gauge(
                "accel_device_health",
                "1 on the device's current state (healthy, degraded, unhealthy, unknown, maintenance)",
                vec![("device", id.clone()), ("state", lv(s.name()))],
                f64::from(u8::from(d.state == s)),
            );
        }
        for c in &d.conditions {
            out.gauge(
                "accel_device_condition",
                "1 while the condition is true, 0 while false or unknown",
                vec![("device", id.clone()), ("condition", lv(c.kind.name()))],
                f64::from(u8::from(c.status == Status::True)),
            );
        }
        let r = &d.readings;
        let sensor_family = |out: &mut Families, name: &str, help: &str, readings: &[engine::Reading]| {
            for x in readings {
                out.gauge(name, help, vec![("device", id.clone()), ("sensor", lv(&x.sensor))], x.value);
            }
        };
        sensor_family(out, "accel_device_temperature_celsius", "Device temperature", &r.temperature_celsius);
        for t in &r.temperature_threshold_celsius {
            out.gauge(
                "accel_device_temperature_threshold_celsius",
                "Temperature threshold of a device sensor, by level",
                vec![("device", id.clone()), ("sensor", lv(&t.sensor)), ("level", lv(&t.level))],
                t.value,
            );
        }
        // The thresholds the agent judges by, as sensor "configured", so alerts and dashboards compare
        // readings against the same numbers.
        for (level, v) in [("warn", d.temperature_warn_celsius), ("crit", d.temperature_crit_celsius)] {
            out.gauge(
                "accel_device_temperature_threshold_celsius",
                "Temperature threshold of a device sensor, by level",
                vec![("device", id.clone()), ("sensor", lv("configured")), ("level", lv(level))],
                v,
            );
        }
        sensor_family(out, "accel_device_power_watts", "Device power draw", &r.power_watts);
        sensor_family(out, "accel_device_voltage_volts", "Device voltage", &r.voltage_volts);
        sensor_family(out, "accel_device_current_amperes", "Device current", &r.current_amperes);
        sensor_family(out, "accel_device_fan_rpm", "Device fan speed", &r.fan_rpm);
        if let Some(u) = d.utilization_ratio {
            out.gauge("accel_device_utilization_ratio", "Device utilization, 0..1", vec![("device", id.clone())], u);
        }
        if let Some(n) = d.inferences_total {
            out.counter(
                "accel_device_inferences_total",
                "Inferences completed by the device",
                vec![("device", id.clone())],
                n,
            );
        }
        if let Some(e) = d.energy_per_inference_joules {
            out.gauge(
                "accel_device_energy_per_inference_joules",
                "Energy used between the last two probe results divided by the inferences completed between them",
                vec![("device", id.clone())],
                e,
            );
        }
        out.gauge(
            "accel_maintenance_mode",
            "1 while the device is in maintenance (no automatic actions; alerts may be inhibited)",
            vec![("device", id.clone())],
            f64::from(u8::from(d.maintenance)),
        );
        if let Some(c) = d.circuit {
            out.gauge(
                "accel_reconnect_circuit_state",
                "Reconnect circuit breaker: 0 closed, 1 half-open, 2 open",
                vec![("device", id.clone())],
                c.gauge(),
            );
        }
        for (step, result, n) in &d.reconnect_attempts {
            out.counter(
                "accel_reconnect_attempts_total",
                "Reconnect attempts by ladder step and result",
                vec![("device", id.clone()), ("step", lv(step)), ("result", lv(result))],
                *n as f64,
            );
        }
        for (rule, n) in &d.log_matches {
            out.counter(
                "accel_log_matches_total",
                "Log lines that matched the rule",
                vec![("device", id.clone()), ("rule", lv(rule))],
                *n as f64,
            );
        }
        for (source, n) in &d.log_lines {
            out.counter(
                "accel_log_lines_total",
                "Log lines read from the source",
                vec![("device", id.clone()), ("source", lv(source))],
                *n as f64,
            );
        }
        for p in &d.probes {
            if p.status == "pending" {
                continue;
            }
            let l = || vec![("device", id.clone()), ("probe", lv(&p.name))];
            out.gauge(
                "accel_probe_success",
                "Whether the probe's last run succeeded",
                l(),
                f64::from(u8::from(p.success)),
            );
            out.gauge("accel_probe_duration_seconds", "Duration of the probe's last run", l(), p.duration_seconds);
            if let Some(t) = p.last_success.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
                out.gauge(
                    "accel_probe_last_success_timestamp_seconds",
                    "Unix time of the probe's last success",
                    l(),
                    t.as_secs_f64(),
                );
            }
        }
        for x in &r.energy_joules {
            out.counter(
                "accel_device_energy_joules_total",
                "Energy used by the device",
                vec![("device", id.clone()), ("sensor", lv(&x.sensor))],
                x.value,
            );
        }
    }
}
