//! The landing page: what the agent found on this host, at a glance.

use std::fmt::Write as _;

use collectors::HostReadings;
use config::CollectorKind;

use crate::publish::exposition::{REVISION, VERSION};
use crate::publish::state::Snapshot;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v} {unit}").trim_end().to_owned())
}

pub fn render(snap: &Snapshot) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>accel-agent</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}th{{background:#f4f4f4}}\
         .ok{{color:#1a7f37}}.bad{{color:#cf222e}}</style></head><body>\
         <h1>accel-agent</h1><p>version {} ({}) · <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/-/healthy\">/-/healthy</a> · <a href=\"/-/ready\">/-/ready</a></p>",
        esc(VERSION),
        esc(REVISION)
    );
    if !snap.devices.is_empty() {
        h.push_str("<h2>Devices</h2><table><tr><th>device</th><th>kind</th><th>state</th><th>hottest</th><th>failing conditions</th><th>sources</th></tr>");
        for d in snap.devices.iter() {
            let class = match d.state {
                crate::model::State::Healthy => "ok",
                crate::model::State::Unhealthy | crate::model::State::Degraded => "bad",
                _ => "",
            };
            let hottest = d
                .readings
                .temperature_celsius
                .iter()
                .max_by(|a, b| a.value.total_cmp(&b.value))
                .map_or("—".to_owned(), |r| format!("{:.1} °C ({})", r.value, esc(&r.sensor)));
            let failing: Vec<String> = d
                .conditions
                .iter()
                .filter(|c| c.status == crate::model::Status::True)
                .map(|c| format!("{}: {}", c.kind.name(), esc(&c.message)))
                .collect();
            let _ = write!(
                h,
                "<tr><td><a href=\"/api/v1/devices/{id}\">{id}</a></td><td>{}</td><td class=\"{class}\">{}</td><td>{hottest}</td><td>{}</td><td>{}</td></tr>",
                esc(d.kind),
                d.state.name(),
                failing.join("<br>"),
                esc(&d.sources.join(", ")),
                id = esc(&d.id),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Collectors</h2><table><tr><th>collector</th><th>status</th><th>found</th><th>last duration</th><th>read errors</th><th>problem</th></tr>");
    for (kind, c) in &snap.collectors {
        let status = match (c.collections, c.success) {
            (0, _) => "<td>pending</td>".to_owned(),
            (_, true) => "<td class=\"ok\">ok</td>".to_owned(),
            (_, false) => "<td class=\"bad\">failing</td>".to_owned(),
        };
        let found = c.readings.as_ref().map_or("—".to_owned(), |r| r.object_count().to_string());
        let dur = c.duration.map_or("—".to_owned(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3));
        let _ = write!(
            h,
            "<tr><td>{}</td>{status}<td>{found}</td><td>{dur}</td><td>{}</td><td>{}</td></tr>",
            kind.name(),
            c.read_errors.total(),
            esc(c.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");

    if let Some(HostReadings::Hwmon(r)) = snap.readings(CollectorKind::Hwmon) {
        h.push_str("<h2>hwmon chips</h2><table><tr><th>chip</th><th>name</th><th>hwmon</th><th>PCI address</th><th>sensors</th></tr>");
        for c in &r.layout.chips {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.chip),
                esc(c.chip_name.as_deref().unwrap_or("")),
                esc(&c.hwmon),
                esc(c.pci_address.as_deref().unwrap_or("")),
                c.sensors.len()
            );
        }
        h.push_str("</table>");
    }
    if let Some(HostReadings::ThermalZone(r)) = snap.readings(CollectorKind::ThermalZone) {
        h.push_str(
            "<h2>Thermal zones</h2><table><tr><th>zone</th><th>type</th><th>temperature</th><th>trip points</th></tr>",
        );
        for z in &r.zones {
            let trips: Vec<String> =
                z.trips.iter().map(|t| format!("{} {}", esc(&t.trip_type), fmt_opt(t.temp_celsius, "°C"))).collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&z.zone),
                esc(&z.zone_type),
                fmt_opt(z.temp_celsius, "°C"),
                trips.join(", ")
            );
        }
        h.push_str("</table>");
    }
    if let Some(HostReadings::CoolingDevice(r)) = snap.readings(CollectorKind::CoolingDevice) {
        h.push_str("<h2>Cooling devices</h2><table><tr><th>device</th><th>type</th><th>state</th></tr>");
        for d in &r.devices {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{} / {}</td></tr>",
                esc(&d.name),
                esc(&d.device_type),
                fmt_opt(d.cur_state, ""),
                fmt_opt(d.max_state, "")
            );
        }
        h.push_str("</table>");
    }
    if let Some(HostReadings::PowerSupply(r)) = snap.readings(CollectorKind::PowerSupply) {
        h.push_str("<h2>Power supplies</h2><table><tr><th>name</th><th>type</th><th>attributes read</th></tr>");
        for s in &r.supplies {
            let ty = s.info.iter().find(|(k, _)| *k == "type").map_or("", |(_, v)| &**v);
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&s.name), esc(ty), s.values.len());
        }
        h.push_str("</table>");
    }
    if let Some(HostReadings::Powercap(r)) = snap.readings(CollectorKind::Powercap) {
        h.push_str("<h2>Powercap zones</h2><table><tr><th>zone</th><th>name</th><th>energy</th><th>limits</th></tr>");
        for z in &r.zones {
            let limits: Vec<String> = z
                .constraints
                .iter()
                .map(|c| format!("{} {}", esc(&c.name), fmt_opt(c.power_limit_watts, "W")))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&z.zone),
                esc(&z.name),
                fmt_opt(z.energy_joules, "J"),
                limits.join(", ")
            );
        }
        h.push_str("</table>");
    }
    if let Some(HostReadings::PciAer(r)) = snap.readings(CollectorKind::PciAer) {
        h.push_str("<h2>PCI devices with AER</h2><table><tr><th>address</th><th>correctable</th><th>non-fatal</th><th>fatal</th></tr>");
        for d in &r.devices {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.address),
                d.total("correctable"),
                d.total("nonfatal"),
                d.total("fatal")
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
