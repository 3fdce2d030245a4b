//! /devices/{id}: one device as a page to read (what /api/v1/devices/{id} holds, laid out for a person):
//! readings with their thresholds, conditions with reason and since, probes, actions, logs, and the
//! device's latest events, and its history drawn as inline SVG (temperature against its thresholds, power,
//! throttle steps, marks for what changed). A small embedded script re-fetches the page every few seconds and swaps its
//! content in place, so it stays current without a reload and without loading anything from the network.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::effects::actions::ThrottleView;
use crate::effects::events::QueryError;
use crate::effects::journal::{Event, rfc3339_utc_ms};
use crate::model::diagnostics::Outcome;
use crate::model::view::{Reading, ThresholdReading};
use crate::model::{DeviceView, Status};
use crate::publish::api::HistoryReport;
use crate::publish::landing::{NAV, REFRESH_MS, badge, esc, page_head};
use crate::publish::plot;

/// "2026-11-30 08:00:01" (UTC), or "—".
fn time(t: Option<SystemTime>) -> String {
    let Some(ms) = t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64) else {
        return "—".to_owned();
    };
    let s = rfc3339_utc_ms(ms);
    s.split_once('.').map_or(s.clone(), |(head, _)| head.to_owned()).replace('T', " ")
}

fn num(v: f64, decimals: usize, unit: &str) -> String {
    format!("{v:.decimals$} {unit}")
}

/// Thresholds of one temperature sensor: the hardware's own (hwmon max/crit, trip points).
fn thresholds_of(sensor: &str, all: &[ThresholdReading]) -> String {
    let own: Vec<String> = all
        .iter()
        .filter(|t| t.sensor == sensor)
        .map(|t| format!("{} {}", esc(&t.level), num(t.value, 1, "°C")))
        .collect();
    own.join(", ")
}

fn reading_rows(
    t: &mut String,
    quantity: &str,
    rows: &[Reading],
    decimals: usize,
    unit: &str,
    extra: &dyn Fn(&str) -> String,
) {
    for r in rows {
        let _ = write!(
            t,
            "<tr><td>{quantity}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&r.sensor),
            num(r.value, decimals, unit),
            extra(&r.sensor)
        );
    }
}

/// Why the device is in maintenance, and until when: each open window, and an operator's.
fn maintenance_actions(d: &DeviceView) -> Vec<String> {
    let mut actions = Vec::new();
    for w in &d.maintenance_windows {
        actions.push(format!("{} (no automatic actions)", esc(&w.to_string())));
    }
    if d.maintenance_manual {
        actions.push(match d.maintenance_until {
            Some(u) => format!("maintenance until {} (no automatic actions)", time(Some(u))),
            None => "maintenance until turned off (no automatic actions)".to_owned(),
        });
    }
    actions
}

pub fn device_page(
    d: &DeviceView,
    throttle: Option<&ThrottleView>,
    history: &HistoryReport,
    events: Result<&[Event], &QueryError>,
) -> String {
    let mut h = page_head(&format!("{} · accel-agent", d.id));
    header_section(&mut h, d);
    history_section(&mut h, &esc(&d.id), history);
    readings_section(&mut h, d);
    conditions_section(&mut h, d);
    diagnostics_section(&mut h, d);
    probes_section(&mut h, d);
    actions_section(&mut h, d, throttle);
    kubernetes_section(&mut h, d);
    logs_section(&mut h, d);
    events_section(&mut h, events);
    let _ = writeln!(
        h,
        "</main><script>{}</script></body></html>",
        DEVICE_JS.replace("REFRESH_MS", &REFRESH_MS.to_string())
    );
    h
}

/// The device's name, state and identity, and where to find the same as JSON.
fn header_section(h: &mut String, d: &DeviceView) {
    let id = esc(&d.id);
    let text = |s: &str| if s.is_empty() { "—".to_owned() } else { esc(s) };
    let _ = write!(
        h,
        "<header><h1>{id} {}</h1><p>kind {} · model {} · driver {} · PCI {} · firmware {}{}</p>{NAV}\
         <p class=\"muted\">the same as JSON: <a href=\"/api/v1/devices/{id}\">/api/v1/devices/{id}</a> · \
         all its events: <a href=\"/api/v1/events?device={id}\">/api/v1/events?device={id}</a></p>\
         <p class=\"muted\" id=\"updated\">as of page load; with JavaScript it refreshes every {} s</p></header><main>",
        badge(d.state.name()),
        esc(&d.kind),
        text(&d.model),
        text(&d.driver),
        text(&d.pci_address),
        text(&d.firmware),
        match (&d.discovered_name, d.discovered) {
            (Some(name), _) => format!(" · found by discovery as “{}”", esc(name)),
            (None, true) => " · found by discovery".to_owned(),
            (None, false) => String::new(),
        },
        REFRESH_MS / 1000
    );
    let sources = if d.sources.is_empty() { "none bound".to_owned() } else { esc(&d.sources.join(", ")) };
    let _ = write!(
        h,
        "<p>reachable: {} · sources: {sources}</p>",
        match d.up {
            Some(true) => "yes",
            Some(false) => "<span class=\"bad\">no</span>",
            None => "—",
        }
    );
}

/// The last span drawn, before the present in numbers.
fn history_section(h: &mut String, id: &str, history: &HistoryReport) {
    let _ = write!(
        h,
        "<h2>History</h2><figure class=\"plot\">{}{}</figure>\
         <p class=\"muted\">{}; about one sample per {} s; the same as JSON: \
         <a href=\"/api/v1/devices/{id}/history\">/api/v1/devices/{id}/history</a></p>",
        plot::history_svg(history),
        plot::legend(history),
        {
            let (from, to) = plot::window(history);
            let kept = humantime::format_duration(std::time::Duration::from_secs(history.span_seconds as u64));
            if to - from < history.span_seconds - 1.0 {
                format!("since the agent's first sample (it keeps up to {kept})")
            } else {
                format!("the last {kept}")
            }
        },
        history.resolution_seconds
    );
}

/// Every reading with its sensor and thresholds.
fn readings_section(h: &mut String, d: &DeviceView) {
    let mut t = String::new();
    let warn = d.temperature_warn_celsius;
    let crit = d.temperature_crit_celsius;
    let r = &d.readings;
    reading_rows(&mut t, "temperature", &r.temperature_celsius, 1, "°C", &|sensor| {
        let own = thresholds_of(sensor, &r.temperature_threshold_celsius);
        let configured = format!("warn {} · crit {} (configured)", num(warn, 1, "°C"), num(crit, 1, "°C"));
        if own.is_empty() { configured } else { format!("{configured}; {own} (hardware)") }
    });
    let none = |_: &str| String::new();
    reading_rows(&mut t, "power", &r.power_watts, 2, "W", &none);
    reading_rows(&mut t, "energy", &r.energy_joules, 1, "J", &none);
    reading_rows(&mut t, "voltage", &r.voltage_volts, 3, "V", &none);
    reading_rows(&mut t, "current", &r.current_amperes, 3, "A", &none);
    reading_rows(&mut t, "fan", &r.fan_rpm, 0, "rpm", &none);
    let scalars = [
        ("power limit", r.power_limit_watts, 1.0, 1, "W"),
        ("utilization", d.utilization_ratio, 100.0, 0, "%"),
        ("inferences", d.inferences_total, 1.0, 0, ""),
        ("energy per inference", d.energy_per_inference_joules, 1e3, 3, "mJ"),
    ];
    for (name, v, scale, decimals, unit) in scalars {
        if let Some(v) = v {
            let _ = write!(
                t,
                "<tr><td>{name}</td><td>—</td><td class=\"num\">{}</td><td></td></tr>",
                num(v * scale, decimals, unit)
            );
        }
    }
    h.push_str("<h2>Readings</h2>");
    if t.is_empty() {
        h.push_str("<p class=\"muted\">no readings yet</p>");
    } else {
        let _ = write!(
            h,
            "<table id=\"readings\"><thead><tr><th>quantity</th><th>sensor</th><th>value</th><th>thresholds</th></tr></thead>\
             <tbody>{t}</tbody></table>"
        );
    }
}

/// Each condition with its status, reason and since.
fn conditions_section(h: &mut String, d: &DeviceView) {
    h.push_str(
        "<h2>Conditions</h2><table id=\"conditions\"><thead><tr><th>condition</th><th>status</th><th>reason</th>\
         <th>since (UTC)</th><th>message</th></tr></thead><tbody>",
    );
    for c in &d.conditions {
        let status = match c.status {
            Status::True => {
                let impact = serde_json::to_value(c.impact).ok().and_then(|v| v.as_str().map(str::to_owned));
                format!("{}{}", badge(impact.as_deref().unwrap_or("degraded")), if c.latched { " latched" } else { "" })
            }
            Status::False => "<span class=\"ok\">ok</span>".to_owned(),
            Status::Unknown => "<span class=\"muted\">unknown</span>".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.kind.name(),
            esc(&c.reason),
            time(Some(c.since)),
            esc(&c.message)
        );
    }
    h.push_str("</tbody></table>");
}

/// Each probe's last result.
fn probes_section(h: &mut String, d: &DeviceView) {
    if !d.probes.is_empty() {
        h.push_str(
            "<h2>Probes</h2><table id=\"probes\"><thead><tr><th>probe</th><th>status</th><th>last success (UTC)</th>\
             <th>duration</th><th>failures in a row</th><th>message</th></tr></thead><tbody>",
        );
        for p in &d.probes {
            let class = if p.success {
                "ok"
            } else if p.status == crate::model::engine::ProbeState::Pending {
                "muted"
            } else {
                "bad"
            };
            let _ = write!(
                h,
                "<tr><td>{}{}</td><td class=\"{class}\">{}</td><td>{}</td><td class=\"num\">{:.0} ms</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&p.name),
                if p.liveness { " (liveness)" } else { "" },
                esc(p.status.name()),
                time(p.last_success),
                p.duration_seconds * 1e3,
                p.consecutive_failures,
                match p.not_run {
                    // The fields before are from the run before: say why this one is missing.
                    Some(fault) => format!("not run: the agent is {fault} (not the device's trouble)"),
                    None => esc(&p.message).to_string(),
                }
            );
        }
        h.push_str("</tbody></table>");
    }
}

/// The throttle, maintenance and reconnect state.
fn actions_section(h: &mut String, d: &DeviceView, throttle: Option<&ThrottleView>) {
    let id = esc(&d.id);
    let mut actions = Vec::new();
    if let Some(t) = throttle {
        let manual = d.manual_throttle.map_or(String::new(), |m| match m.until {
            Some(u) => format!(", held by an operator until {}", time(Some(u))),
            None => ", held by an operator".to_owned(),
        });
        actions.push(format!(
            "throttle level {}/{}{manual}{} ({} up, {} down since start)",
            t.level,
            t.max_level,
            if t.dry_run { " (dry run)" } else { "" },
            t.transitions_up,
            t.transitions_down
        ));
        if let Some(e) = &t.last_error {
            actions.push(format!("<span class=\"bad\">last throttle error: {}</span>", esc(e)));
        }
    }
    actions.extend(maintenance_actions(d));
    if let Some(c) = d.circuit {
        let name = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        actions.push(format!("reconnect circuit {}", esc(&name)));
    }
    if d.needs_hardware_inspection {
        actions.push(
            "<span class=\"bad\">needs hardware inspection: reconnects gave up</span> (after looking: \
             <code>agentctl set-healthy ID</code>)"
                .replace("ID", &id),
        );
    }
    for (step, result, n) in &d.reconnect_attempts {
        actions.push(format!("reconnect step {}: {} ×{n}", esc(step), esc(result)));
    }
    h.push_str("<h2>Actions</h2>");
    if actions.is_empty() {
        h.push_str("<p class=\"muted\">no throttle ladder, reconnect ladder or maintenance</p>");
    } else {
        let _ = write!(h, "<ul id=\"actions\"><li>{}</li></ul>", actions.join("</li><li>"));
    }
}

/// What kubelet was told, and who holds the device.
fn kubernetes_section(h: &mut String, d: &DeviceView) {
    if let Some(k) = &d.kubernetes {
        let mut lines = Vec::new();
        match (&k.resource, k.advertised) {
            (Some(r), Some(a)) => lines.push(format!(
                "advertised to kubelet as <code>{}</code>: {}{}",
                esc(r),
                if a == crate::model::kubelet::Advertised::Unhealthy {
                    "<span class=\"bad\">Unhealthy</span>"
                } else {
                    "Healthy"
                },
                k.advertised_reason.as_deref().map(|w| format!(" ({})", esc(w))).unwrap_or_default()
            )),
            (Some(r), None) => lines.push(format!("advertised to kubelet as <code>{}</code> (not listed yet)", esc(r))),
            (None, _) => lines.push("not advertised by the agent (a vendor plugin owns it)".to_owned()),
        }
        if k.resource.is_some() && !k.registered {
            lines.push(format!(
                "<span class=\"bad\">not registered with kubelet</span>{}",
                k.registration_error.as_deref().map(|e| format!(": {}", esc(e))).unwrap_or_default()
            ));
        }
        if k.pods.is_empty() {
            lines.push("held by no pod".to_owned());
        }
        for p in &k.pods {
            lines.push(format!("held by pod {}", esc(&p.to_string())));
        }
        if let Some(e) = &k.pods_error {
            lines.push(format!("<span class=\"bad\">pod-resources failing: {}</span>", esc(e)));
        }
        let _ = write!(h, "<h2>Kubernetes</h2><ul id=\"kubernetes\"><li>{}</li></ul>", lines.join("</li><li>"));
    }
}

/// Lines read and rule matches per followed log.
fn logs_section(h: &mut String, d: &DeviceView) {
    if !d.log_lines.is_empty() || !d.log_matches.is_empty() {
        h.push_str("<h2>Logs</h2><ul>");
        for (source, lines) in &d.log_lines {
            let _ = write!(h, "<li>{}: {lines} lines read</li>", esc(source));
        }
        for (rule, n) in &d.log_matches {
            let _ = write!(h, "<li>rule {}: {n} matches</li>", esc(rule));
        }
        h.push_str("</ul>");
    }
}

/// The device's recent events, or why they are unavailable.
fn events_section(h: &mut String, events: Result<&[Event], &QueryError>) {
    h.push_str("<h2>Recent events</h2>");
    match events {
        Ok([]) => h.push_str("<p class=\"muted\">no events for this device</p>"),
        Ok(events) => {
            h.push_str(
                "<table id=\"events\"><thead><tr><th>time (UTC)</th><th>severity</th><th>kind</th><th>message</th></tr>\
                 </thead><tbody>",
            );
            for e in events {
                let severity = serde_json::to_value(e.severity).ok().and_then(|v| v.as_str().map(str::to_owned));
                let severity = esc(severity.as_deref().unwrap_or("?"));
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"sev-{severity}\">{severity}</td><td>{}</td><td>{}</td></tr>",
                    time(Some(e.time)),
                    esc(&e.kind),
                    esc(&e.message)
                );
            }
            h.push_str("</tbody></table>");
        }
        Err(e) => {
            let _ = write!(h, "<p class=\"bad\">events unavailable: {}</p>", esc(&e.to_string()));
        }
    }
}

/// Re-fetches this page and swaps its header and content in place.
const DEVICE_JS: &str = r#"(function () {
  'use strict';
  var n = 0;
  function refresh() {
    fetch(location.pathname, {cache: 'no-store'}).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, 'text/html');
      ['header', 'main'].forEach(function (sel) {
        var fresh = doc.querySelector(sel);
        if (fresh) document.querySelector(sel).replaceWith(fresh);
      });
      n += 1;
      document.body.setAttribute('data-refreshed', String(n));
      var updated = document.getElementById('updated');
      updated.className = 'muted';
      updated.textContent = 'updated ' + new Date().toLocaleTimeString() + '; refreshes every ' + REFRESH_MS / 1000 + ' s';
    }).catch(function (e) {
      var updated = document.getElementById('updated');
      updated.className = 'bad';
      updated.textContent = 'refresh failed (' + e.message + '); trying again';
    }).then(function () { setTimeout(refresh, REFRESH_MS); });
  }
  setTimeout(refresh, REFRESH_MS);
})();
"#;

/// 404 for /devices/{id}: which devices there are.
/// Each diagnostic: where it stands and its last result, with the failed expectation and the tool's last
/// lines (redacted at capture).
fn diagnostics_section(h: &mut String, d: &DeviceView) {
    if d.diagnostics.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Diagnostics</h2><table id=\"diagnostics\"><thead><tr><th>diagnostic</th><th>level</th><th>now</th>\
         <th>last result</th><th>finished (UTC)</th><th>duration</th><th>detail</th></tr></thead><tbody>",
    );
    for diag in &d.diagnostics {
        let last = diag.last.as_ref();
        let result = last.map_or("never run", |l| l.outcome.name());
        let class = match result {
            "passed" => "ok",
            "failed" => "bad",
            _ => "muted",
        };
        let detail = match last.map(|l| &l.outcome) {
            Some(Outcome::Failed { expectation, output }) => {
                format!("{}<pre>{}</pre>", esc(expectation), esc(output))
            }
            Some(Outcome::Refused { reason } | Outcome::NotRun { reason }) => esc(reason).to_string(),
            _ => String::new(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"{class}\">{}{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{detail}</td></tr>",
            esc(&diag.name),
            diag.level,
            diag.phase.name(),
            esc(result),
            if last.is_some_and(|l| l.remedied) { " (after remedy)" } else { "" },
            time(last.and_then(|l| l.finished)),
            last.map_or_else(|| "-".to_owned(), |l| format!("{:.1} s", l.duration_seconds)),
        );
    }
    h.push_str("</tbody></table>");
    if let Some(why) = &d.maintenance_reason {
        let _ = write!(h, "<p id=\"maintenance-reason\">In maintenance: {}.</p>", esc(why));
    }
}

pub fn unknown_device_page(id: &str, devices: &[DeviceView]) -> String {
    let mut h = page_head("no such device · accel-agent");
    let _ = write!(h, "<header><h1>No device {}</h1>{NAV}</header><main><p>Known devices:</p><ul>", esc(id));
    for d in devices {
        let _ = write!(h, "<li><a href=\"/devices/{0}\">{0}</a> ({1})</li>", esc(&d.id), esc(&d.kind));
    }
    if devices.is_empty() {
        h.push_str("<li>none</li>");
    }
    h.push_str("</ul></main></body></html>\n");
    h
}
