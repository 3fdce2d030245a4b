//! The landing page: the page an operator keeps open. Every device with its state, readings, throttle
//! level, reconnect circuit, maintenance and failing conditions; the latest events; what the host's
//! collectors found. It is rendered from the cached snapshot (cheap: no journal query, nothing read from
//! the hardware) and complete without JavaScript; a small embedded script (nothing loaded from the
//! network) then refreshes the devices and fills in the events from the JSON API every few seconds,
//! without reloading the page.

use std::fmt::Write as _;

use collectors::HostReadings;
use config::CollectorKind;

use crate::effects::journal::rfc3339_utc_ms;
use crate::publish::api::{DeviceStatus, StatusReport};
use crate::publish::plot;
use crate::publish::state::Snapshot;

pub use crate::publish::html::esc;

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v} {unit}").trim_end().to_owned())
}

/// How often the page's script refreshes, in milliseconds.
pub const REFRESH_MS: u64 = 5000;

/// The style shared by the landing and device pages; no external fonts or files.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#1f2328;background:#fff}\
    h1{margin:0 0 .2em}h2{margin:1.4em 0 .4em;font-size:1.2em}\
    table{border-collapse:collapse;margin:.3em 0 1em}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}\
    th{background:#f6f8fa}nav a{margin-right:1em}.muted{color:#656d76}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}\
    .state{display:inline-block;padding:0 .5em;border-radius:1em;font-weight:600;color:#fff;background:#656d76}\
    .s-healthy{background:#1a7f37}.s-degraded{background:#bf8700}.s-unhealthy{background:#cf222e}.s-maintenance{background:#0969da}\
    .sev-warning{color:#9a6700;font-weight:600}.sev-critical,.sev-fatal{color:#cf222e;font-weight:600}\
    .note{border-left:4px solid #bf8700;background:#fff8c5;padding:.6em 1em;max-width:60em}td.num{text-align:right;white-space:nowrap}\
    #devices td:nth-child(-n+2),#events td:first-child{white-space:nowrap}\
    figure.plot{margin:.3em 0;overflow-x:auto}.legend span{margin-right:1.2em;white-space:nowrap}\
    .legend i{display:inline-block;width:1.6em;height:3px;vertical-align:middle;margin-right:.4em}.legend i.mk{width:3px;height:1em}\
    svg.spark{vertical-align:middle}";

/// The links every page carries.
pub const NAV: &str = "<nav><a href=\"/\">devices</a><a href=\"/health\">/health</a>\
    <a href=\"/api/v1/status\">/api/v1/status</a><a href=\"/api/v1/devices\">/api/v1/devices</a>\
    <a href=\"/api/v1/events\">/api/v1/events</a><a href=\"/metrics\">/metrics</a>\
    <a href=\"/-/healthy\">/-/healthy</a><a href=\"/-/ready\">/-/ready</a></nav>";

/// The start of a page, up to and including the navigation.
pub fn page_head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{STYLE}</style></head><body data-refreshed=\"0\">",
        esc(title)
    )
}

/// "1h 5m", "5m 3s", "42s": how long the agent has been up.
pub fn uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (1.., _, _) => format!("{d}d {h}h"),
        (0, 1.., _) => format!("{h}h {m}m"),
        (0, 0, 1..) => format!("{m}m {s}s"),
        _ => format!("{s}s"),
    }
}

/// A state as a coloured badge.
pub fn badge(state: &str) -> String {
    format!("<span class=\"state s-{0}\">{0}</span>", esc(state))
}

fn value(v: Option<f64>, unit: &str, decimals: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.decimals$} {unit}"))
}

/// The agent line at the top: version, overall state, uptime, actions. The script renders the same.
fn agent_line(s: &StatusReport) -> String {
    let mut line = format!(
        "version {} ({}) · overall {} · up {} · actions {}",
        esc(&s.agent.version),
        esc(&s.agent.revision),
        badge(s.status.name()),
        uptime(s.agent.uptime_seconds),
        esc(s.agent.actions.as_str())
    );
    if !s.agent.ready {
        line.push_str(" · <span class=\"bad\">first collection not done yet</span>");
    }
    for c in &s.agent.collectors_failing {
        let _ = write!(line, " · <span class=\"bad\">collector {} failing: {}</span>", c.collector, esc(&c.error));
    }
    if let Some(j) = &s.agent.journal_unavailable {
        let _ = write!(line, " · <span class=\"bad\">event journal unavailable: {}</span>", esc(j));
    }
    if let Some(why) = &s.agent.actions_stopped {
        let _ = write!(line, " · <span class=\"bad\">actions worker stopped: {}</span>", esc(why));
    }
    if let Some(f) = &s.agent.faults.current {
        let _ = write!(line, " · <span class=\"bad\">agent {}: {} not done</span>", f.reason, esc(&f.what));
    }
    line
}

/// The sources failing now, each with since and why; hidden (and there for the script) when none is.
fn sources_failing(s: &StatusReport) -> String {
    let items: Vec<String> = s
        .sources_failing
        .iter()
        .map(|f| {
            let since = f.since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let since = rfc3339_utc_ms(since).get(11..19).unwrap_or("").to_owned();
            format!("<li><b>{} {}</b> since {since} UTC: {}</li>", f.source.name(), esc(&f.name), esc(&f.reason))
        })
        .collect();
    format!(
        "<div id=\"sources-failing\" class=\"note\"{}><p><b>Failing sources</b> (their evidence is missing; \
         <code>agentctl diagnose</code> says what to check)</p><ul>{}</ul></div>",
        if items.is_empty() { " hidden" } else { "" },
        items.join("")
    )
}

/// The maintenance windows open now, each with its end and devices; hidden (and there for the script)
/// when none is.
fn windows_open(s: &StatusReport) -> String {
    let items: Vec<String> = s
        .maintenance_windows
        .iter()
        .filter(|w| w.active)
        .map(|w| {
            let devices = if w.devices.is_empty() { "every device".to_owned() } else { w.devices.join(", ") };
            let until = w.ends_local.as_deref().unwrap_or("");
            format!("<li><b>{}</b> until {}: {}</li>", esc(&w.name), esc(until), esc(&devices))
        })
        .collect();
    format!(
        "<div id=\"windows-open\" class=\"note\"{}><p><b>Maintenance windows open</b> (their devices take no \
         automatic actions)</p><ul>{}</ul></div>",
        if items.is_empty() { " hidden" } else { "" },
        items.join("")
    )
}

/// One row of the device table. `ROW_JS` below renders the same cells from /api/v1/status.
fn device_row(d: &DeviceStatus) -> String {
    let throttle = match (d.throttle_level, d.throttle_max_level) {
        (Some(l), Some(m)) => format!("{l}/{m}{}", if d.manual_throttle.is_some() { " (manual)" } else { "" }),
        _ => "—".to_owned(),
    };
    let circuit = match d.circuit {
        Some(c) => {
            let name = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let class = if name == "closed" { "" } else { " class=\"bad\"" };
            let inspect = if d.needs_hardware_inspection { ", needs inspection" } else { "" };
            format!("<span{class}>{}{inspect}</span>", esc(&name))
        }
        None => "—".to_owned(),
    };
    let failing: Vec<String> =
        d.failing.iter().map(|f| format!("<b>{}</b>: {}", esc(f.condition.name()), esc(&f.message))).collect();
    let pods: String = d.pods.iter().map(|p| format!("<br><span class=\"muted\">pod {}</span>", esc(p))).collect();
    format!(
        "<tr><td><a href=\"/devices/{id}\">{id}</a>{pods}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
         <td>{}</td><td class=\"num\">{}</td><td>{throttle}</td><td>{circuit}</td><td>{}</td><td>{}</td></tr>",
        esc(&d.kind),
        badge(d.state.name()),
        value(d.temperature_celsius, "°C", 1),
        plot::sparkline(&d.temperature_recent_celsius),
        value(d.power_watts, "W", 1),
        maintenance_cell(d),
        if failing.is_empty() { "—".to_owned() } else { failing.join("<br>") },
        id = esc(&d.id),
    )
}

/// "on" for an operator's maintenance, the window's name for a window's.
fn maintenance_cell(d: &DeviceStatus) -> String {
    match (d.maintenance, d.maintenance_windows.is_empty()) {
        (false, _) => "—".to_owned(),
        (true, true) => "on".to_owned(),
        (true, false) => format!("window {}", esc(&d.maintenance_windows.join(", "))),
    }
}

/// What an empty host says: what was looked at, and what to configure.
fn empty_note(snap: &Snapshot) -> String {
    let looked: Vec<String> = snap
        .collectors
        .iter()
        .map(|(k, c)| match &c.readings {
            Some(r) => format!("{} ({} found)", k.name(), r.object_count()),
            None => format!("{} (not read)", k.name()),
        })
        .collect();
    format!(
        "<div id=\"empty\" class=\"note\"><p><b>No accelerator devices.</b> None is declared in the config, and \
         discovery (when <code>[discovery] enabled</code>, as by default: accel class devices, hwmon chips of \
         PCI accelerators, PCI devices with AER) found none.</p>\
         <p>Looked at: {}.</p><p>To monitor a device, declare it in the config with a <code>[[device]]</code> \
         section (<code>id</code>, <code>kind</code>, and the hwmon chip, PCI address, probe or log it is read \
         from; every key is in <code>config/agent.toml</code>), check it with <code>accel-agent check-config \
         FILE</code>, then <code>agentctl reload</code>. If the hardware is there but not found, check that \
         <code>sysfs_root</code> (or <code>--sysfs-root</code>) points at the host's /sys. The host sensors \
         below are exported as metrics either way.</p></div>",
        if looked.is_empty() { "no collector is enabled".to_owned() } else { esc(&looked.join(", ")) }
    )
}

pub fn render(status: &StatusReport, snap: &Snapshot) -> String {
    let mut h = page_head("accel-agent");
    let _ = write!(
        h,
        "<header><h1>accel-agent</h1><p id=\"agent\">{}</p>{NAV}\
         <p class=\"muted\" id=\"updated\">as of page load; with JavaScript it refreshes every {} s</p></header><main>",
        agent_line(status),
        REFRESH_MS / 1000
    );
    let _ = write!(
        h,
        "<h2>Devices</h2><table id=\"devices\"{}><thead><tr><th>device</th><th>kind</th><th>state</th>\
         <th>temperature</th><th>last 15 min</th><th>power</th><th>throttle</th><th>reconnect circuit</th><th>maintenance</th>\
         <th>failing conditions</th></tr></thead><tbody>",
        if status.devices.is_empty() { " hidden" } else { "" }
    );
    for d in &status.devices {
        h.push_str(&device_row(d));
    }
    h.push_str("</tbody></table>");
    h.push_str(&sources_failing(status));
    h.push_str(&windows_open(status));
    if status.devices.is_empty() {
        h.push_str(&empty_note(snap));
    }
    h.push_str(
        "<h2>Recent events</h2><table id=\"events\"><thead><tr><th>time (UTC)</th><th>severity</th><th>device</th>\
         <th>kind</th><th>message</th></tr></thead><tbody><tr><td colspan=\"5\" class=\"muted\">loaded by the page's \
         script; without JavaScript see <a href=\"/api/v1/events?limit=20\">/api/v1/events</a></td></tr></tbody></table>",
    );
    host_tables(snap, &mut h);
    let _ = writeln!(
        h,
        "</main><script>{}</script></body></html>",
        LANDING_JS.replace("REFRESH_MS", &REFRESH_MS.to_string())
    );
    h
}

/// The landing page's script: polls /api/v1/status and /api/v1/events and re-renders the agent line, the
/// device rows (as `device_row` does) and the events; on failure it says so and keeps trying.
const LANDING_JS: &str = r##"(function () {
  'use strict';
  var n = 0;
  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function value(v, unit, dec) { return v == null ? '\u2014' : v.toFixed(dec) + ' ' + unit; }
  function badge(s) { return '<span class="state s-' + esc(s) + '">' + esc(s) + '</span>'; }
  function uptime(secs) {
    var s = Math.max(0, Math.floor(secs)), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24,
        m = Math.floor(s / 60) % 60;
    s = s % 60;
    return d > 0 ? d + 'd ' + h + 'h' : h > 0 ? h + 'h ' + m + 'm' : m > 0 ? m + 'm ' + s + 's' : s + 's';
  }
  function agentLine(st) {
    var a = st.agent;
    var line = 'version ' + esc(a.version) + ' (' + esc(a.revision) + ') \u00b7 overall ' + badge(st.status) +
        ' \u00b7 up ' + uptime(a.uptime_seconds) + ' \u00b7 actions ' + esc(a.actions);
    if (!a.ready) line += ' \u00b7 <span class="bad">first collection not done yet</span>';
    (a.collectors_failing || []).forEach(function (c) {
      line += ' \u00b7 <span class="bad">collector ' + esc(c.collector) + ' failing: ' + esc(c.error) + '</span>';
    });
    if (a.journal_unavailable) line += ' \u00b7 <span class="bad">event journal unavailable: ' + esc(a.journal_unavailable) + '</span>';
    if (a.actions_stopped) line += ' \u00b7 <span class="bad">actions worker stopped: ' + esc(a.actions_stopped) + '</span>';
    if (a.faults && a.faults.current) line += ' \u00b7 <span class="bad">agent ' + esc(a.faults.current.reason) + ': ' + esc(a.faults.current.what) + ' not done</span>';
    return line;
  }
  function sparkline(values) {
    var w = 90, h = 22, pad = 2, present = values.filter(function (v) { return v != null; });
    if (!present.length) return '<span class="muted">\u2014</span>';
    var lo = Math.min.apply(null, present), hi = Math.max.apply(null, present), loShown = lo, hiShown = hi;
    if (hi - lo < 2) { var mid = (lo + hi) / 2; lo = mid - 1; hi = mid + 1; }
    var n = Math.max(values.length, 2) - 1, d = '', run = [];
    function flush() {
      run.forEach(function (p, i) { d += (i ? ' L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1); });
      if (run.length === 1) d += ' h0.1';
      if (run.length) d += ' ';
      run = [];
    }
    values.forEach(function (v, i) {
      if (v == null) { flush(); return; }
      run.push([pad + i * (w - 2 * pad) / n, pad + (hi - v) / (hi - lo) * (h - 2 * pad)]);
    });
    flush();
    return '<svg class="spark" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '" role="img">' +
        '<title>last 15 min: ' + loShown.toFixed(1) + '\u2013' + hiShown.toFixed(1) + ' \u00b0C</title><path d="' +
        d.trim() + '" fill="none" stroke="#0969da" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round"/></svg>';
  }
  function sourcesFailing(list) {
    var box = document.getElementById('sources-failing');
    box.hidden = !list.length;
    box.querySelector('ul').innerHTML = list.map(function (f) {
      var since = new Date(f.since * 1000).toISOString().slice(11, 19);
      return '<li><b>' + esc(f.source) + ' ' + esc(f.name) + '</b> since ' + since + ' UTC: ' + esc(f.reason) + '</li>';
    }).join('');
  }
  function windowsOpen(list) {
    var open = list.filter(function (w) { return w.active; });
    var box = document.getElementById('windows-open');
    box.hidden = !open.length;
    box.querySelector('ul').innerHTML = open.map(function (w) {
      var devices = w.devices.length ? w.devices.join(', ') : 'every device';
      return '<li><b>' + esc(w.name) + '</b> until ' + esc(w.ends_local) + ': ' + esc(devices) + '</li>';
    }).join('');
  }
  function row(d) {
    var throttle = d.throttle_level == null || d.throttle_max_level == null ? '\u2014' :
        d.throttle_level + '/' + d.throttle_max_level + (d.manual_throttle ? ' (manual)' : '');
    var circuit = d.circuit == null ? '\u2014' :
        '<span' + (d.circuit === 'closed' ? '' : ' class="bad"') + '>' + esc(d.circuit) +
        (d.needs_hardware_inspection ? ', needs inspection' : '') + '</span>';
    var failing = (d.failing || []).map(function (f) {
      return '<b>' + esc(f.condition) + '</b>: ' + esc(f.message);
    });
    var pods = (d.pods || []).map(function (p) { return '<br><span class="muted">pod ' + esc(p) + '</span>'; }).join('');
    return '<tr><td><a href="/devices/' + esc(d.id) + '">' + esc(d.id) + '</a>' + pods + '</td><td>' + esc(d.kind) +
        '</td><td>' + badge(d.state) + '</td><td class="num">' + value(d.temperature_celsius, '\u00b0C', 1) +
        '</td><td>' + sparkline(d.temperature_recent_celsius || []) +
        '</td><td class="num">' + value(d.power_watts, 'W', 1) + '</td><td>' + throttle + '</td><td>' + circuit +
        '</td><td>' + (!d.maintenance ? '\u2014' : (d.maintenance_windows || []).length ?
            'window ' + esc(d.maintenance_windows.join(', ')) : 'on') + '</td><td>' +
        (failing.length ? failing.join('<br>') : '\u2014') + '</td></tr>';
  }
  function eventRow(e) {
    var device = e.device ? '<a href="/devices/' + esc(e.device) + '">' + esc(e.device) + '</a>' : 'host';
    return '<tr><td>' + esc(String(e.time).replace('T', ' ').replace(/\.\d+Z$/, '')) + '</td><td class="sev-' +
        esc(e.severity) + '">' + esc(e.severity) + '</td><td>' + device + '</td><td>' + esc(e.kind) +
        '</td><td>' + esc(e.message) + '</td></tr>';
  }
  function get(url) {
    return fetch(url, {cache: 'no-store'}).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(url + ': ' + r.status + ' ' + t.trim()); });
      return r.json();
    });
  }
  var updated = document.getElementById('updated');
  function refresh() {
    var events = get('/api/v1/events?limit=15').catch(function (e) { return {error: e.message}; });
    Promise.all([get('/api/v1/status'), events]).then(function (res) {
      var st = res[0], ev = res[1];
      document.getElementById('agent').innerHTML = agentLine(st);
      document.querySelector('#devices tbody').innerHTML = st.devices.map(row).join('');
      sourcesFailing(st.sources_failing || []);
      windowsOpen(st.maintenance_windows || []);
      var empty = document.getElementById('empty');
      if (empty) empty.hidden = st.devices.length > 0;
      document.getElementById('devices').hidden = st.devices.length === 0;
      document.querySelector('#events tbody').innerHTML = Array.isArray(ev)
          ? (ev.length ? ev.map(eventRow).join('') : '<tr><td colspan="5" class="muted">no events yet</td></tr>')
          : '<tr><td colspan="5" class="bad">events unavailable: ' + esc(ev.error) + '</td></tr>';
      n += 1;
      document.body.setAttribute('data-refreshed', String(n));
      updated.className = 'muted';
      updated.textContent = 'updated ' + new Date().toLocaleTimeString() + '; refreshes every ' + REFRESH_MS / 1000 + ' s';
    }).catch(function (e) {
      updated.className = 'bad';
      updated.textContent = 'refresh failed (' + e.message + '); trying again';
    }).then(function () { setTimeout(refresh, REFRESH_MS); });
  }
  refresh();
})();
"##;

/// The host's own sensors and the collectors' state: as of page load (the script does not refresh them).
/// The host's own tables: the collectors, then what each one found.
fn host_tables(snap: &Snapshot, h: &mut String) {
    collectors_table(snap, h);
    if let Some(HostReadings::Hwmon(r)) = snap.readings(CollectorKind::Hwmon) {
        hwmon_table(r, h);
    }
    if let Some(HostReadings::ThermalZone(r)) = snap.readings(CollectorKind::ThermalZone) {
        thermal_zone_table(r, h);
    }
    if let Some(HostReadings::CoolingDevice(r)) = snap.readings(CollectorKind::CoolingDevice) {
        cooling_device_table(r, h);
    }
    if let Some(HostReadings::PowerSupply(r)) = snap.readings(CollectorKind::PowerSupply) {
        power_supply_table(r, h);
    }
    if let Some(HostReadings::Powercap(r)) = snap.readings(CollectorKind::Powercap) {
        powercap_table(r, h);
    }
    if let Some(HostReadings::PciAer(r)) = snap.readings(CollectorKind::PciAer) {
        pci_aer_table(r, h);
    }
}

fn collectors_table(snap: &Snapshot, h: &mut String) {
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
}

fn hwmon_table(r: &collectors::sysfs::hwmon::HwmonReadings, h: &mut String) {
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

fn thermal_zone_table(r: &collectors::sysfs::thermal::ThermalReadings, h: &mut String) {
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

fn cooling_device_table(r: &collectors::sysfs::cooling::CoolingReadings, h: &mut String) {
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

fn power_supply_table(r: &collectors::sysfs::power_supply::PowerSupplyReadings, h: &mut String) {
    h.push_str("<h2>Power supplies</h2><table><tr><th>name</th><th>type</th><th>attributes read</th></tr>");
    for s in &r.supplies {
        let ty = s.info.iter().find(|(k, _)| *k == "type").map_or("", |(_, v)| &**v);
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&s.name), esc(ty), s.values.len());
    }
    h.push_str("</table>");
}

fn powercap_table(r: &collectors::sysfs::powercap::PowercapReadings, h: &mut String) {
    h.push_str("<h2>Powercap zones</h2><table><tr><th>zone</th><th>name</th><th>energy</th><th>limits</th></tr>");
    for z in &r.zones {
        let limits: Vec<String> =
            z.constraints.iter().map(|c| format!("{} {}", esc(&c.name), fmt_opt(c.power_limit_watts, "W"))).collect();
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

fn pci_aer_table(r: &collectors::sysfs::pci_aer::PciAerReadings, h: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
