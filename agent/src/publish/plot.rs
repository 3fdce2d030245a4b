//! Server-rendered SVG of a device's history (the device page) and of its recent temperature (the landing
//! page's sparkline): drawn here, inline in the page, so nothing is loaded from the network and the plot
//! is there without JavaScript. A value that was not read leaves a gap in a line, never a dip to 0.

use std::fmt::Write as _;

use crate::effects::journal::rfc3339_utc_ms;
use crate::model::history::MarkKind;
use crate::publish::api::HistoryReport;
use crate::publish::html::esc;

/// Colours of the temperature sensors' lines, in the order the sensors were first seen.
const PALETTE: [&str; 6] = ["#0969da", "#8250df", "#1a7f37", "#bf3989", "#953800", "#1b7c83"];

/// The path of a line through `points` (x, y), broken where a point is None. A point alone between gaps
/// is drawn as a dot (a zero-length segment with round caps).
fn path(points: impl IntoIterator<Item = Option<(f64, f64)>>) -> String {
    let mut d = String::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    let flush = |run: &mut Vec<(f64, f64)>, d: &mut String| {
        for (i, (x, y)) in run.iter().enumerate() {
            let _ = write!(d, "{}{x:.1} {y:.1}", if i == 0 { "M" } else { " L" });
        }
        if run.len() == 1 {
            d.push_str(" h0.1");
        }
        if !run.is_empty() {
            d.push(' ');
        }
        run.clear();
    };
    for p in points {
        match p {
            Some(p) => run.push(p),
            None => flush(&mut run, &mut d),
        }
    }
    flush(&mut run, &mut d);
    d.trim_end().to_owned()
}

/// A small line of `values` (oldest first), 90×22 px, scaled to their own range; gaps where None.
pub fn sparkline(values: &[Option<f64>]) -> String {
    let (w, h, pad) = (90.0, 22.0, 2.0);
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let (Some(lo), Some(hi)) = (present.iter().copied().reduce(f64::min), present.iter().copied().reduce(f64::max))
    else {
        return "<span class=\"muted\">—</span>".to_owned();
    };
    // At least 2 °C of range, so that noise of a tenth of a degree does not look like a swing.
    let (lo, hi) = if hi - lo < 2.0 { ((lo + hi) / 2.0 - 1.0, (lo + hi) / 2.0 + 1.0) } else { (lo, hi) };
    let n = values.len().max(2) as f64 - 1.0;
    let d =
        path(values.iter().enumerate().map(|(i, v)| {
            v.map(|v| (pad + i as f64 * (w - 2.0 * pad) / n, pad + (hi - v) / (hi - lo) * (h - 2.0 * pad)))
        }));
    format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">\
         <title>last 15 min: {lo_shown:.1}–{hi_shown:.1} °C</title>\
         <path d=\"{d}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\" stroke-linecap=\"round\" stroke-linejoin=\"round\"/></svg>",
        lo_shown = present.iter().copied().fold(f64::INFINITY, f64::min),
        hi_shown = present.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// "17:15" (UTC) of a unix time.
fn hhmm(unix: f64) -> String {
    let s = rfc3339_utc_ms((unix * 1000.0) as i64);
    s.get(11..16).unwrap_or("").to_owned()
}

/// "17:15:03" (UTC).
fn hhmmss(unix: f64) -> String {
    let s = rfc3339_utc_ms((unix * 1000.0) as i64);
    s.get(11..19).unwrap_or("").to_owned()
}

fn mark_colour(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::ConditionSet => "#cf222e",
        MarkKind::ConditionCleared => "#1a7f37",
        MarkKind::Throttle => "#bf8700",
        MarkKind::Reconnect => "#8250df",
    }
}

/// Rounds `v` down (or up) to a multiple of `step`.
fn floor_to(v: f64, step: f64) -> f64 {
    (v / step).floor() * step
}

fn ceil_to(v: f64, step: f64) -> f64 {
    (v / step).ceil() * step
}

/// The time the plot spans: the report's window, or from shortly before the first sample when the agent
/// has not been running that long (so that a fresh start is not a sliver at the right edge), and at
/// least a minute.
pub fn window(r: &HistoryReport) -> (f64, f64) {
    let to = r.now_unix;
    let first = r.history.samples.first().map_or(r.since_unix, |s| s.time_unix - r.resolution_seconds);
    let from = r.since_unix.max(first).min(to - 60.0);
    (from, to)
}

/// The plot's geometry: the time window mapped onto the width, and where each panel sits.
struct Frame {
    from: f64,
    to: f64,
}

impl Frame {
    const W: f64 = 960.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const PLOT_W: f64 = Frame::W - Frame::LEFT - Frame::RIGHT;
    /// (top, height) of each panel.
    const TEMP: (f64, f64) = (24.0, 200.0);
    const POWER: (f64, f64) = (256.0, 90.0);
    const THROTTLE: (f64, f64) = (380.0, 60.0);
    const AXIS: f64 = Frame::THROTTLE.0 + Frame::THROTTLE.1;
    const H: f64 = Frame::AXIS + 44.0;

    fn x(&self, t: f64) -> f64 {
        Frame::LEFT + (t - self.from) / (self.to - self.from) * Frame::PLOT_W
    }
}

/// The device's history as one SVG: temperature per sensor with the warn and critical lines, power,
/// throttle level as steps, marks for condition changes, throttles and reconnects across all three, and
/// time (UTC) along the bottom.
pub fn history_svg(r: &HistoryReport) -> String {
    let (from, to) = window(r);
    let f = Frame { from, to };
    let (w, h, left, plot_w, axis) = (Frame::W, Frame::H, Frame::LEFT, Frame::PLOT_W, Frame::AXIS);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"history\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         role=\"img\" font-family=\"system-ui,sans-serif\" font-size=\"11\" data-since=\"{from}\" data-now=\"{to}\">\
         <title>{} over the last {} min</title><rect x=\"{left}\" y=\"0\" width=\"{plot_w}\" height=\"{axis}\" fill=\"#fff\"/>",
        esc(&r.device),
        ((to - from) / 60.0).round()
    );
    temperature_panel(&mut s, r, &f);
    power_panel(&mut s, r, &f);
    throttle_panel(&mut s, r, &f);
    marks(&mut s, r, &f);
    time_axis(&mut s, &f);
    s
}

/// Temperature, with the thresholds always in range so that their lines are there to compare with.
fn temperature_panel(s: &mut String, r: &HistoryReport, f: &Frame) {
    let (left, plot_w) = (Frame::LEFT, Frame::PLOT_W);
    let temps: Vec<f64> = r.history.samples.iter().flat_map(|s| s.temperature_celsius.values().copied()).collect();
    let lo = floor_to(temps.iter().copied().fold(r.temperature_warn_celsius - 20.0, f64::min), 10.0);
    let hi = ceil_to(temps.iter().copied().fold(r.temperature_crit_celsius + 5.0, f64::max), 10.0);
    let (top, h) = Frame::TEMP;
    let ty = |v: f64| top + (hi - v) / (hi - lo) * h;
    panel(s, "temperature (°C)", Frame::TEMP, plot_w, left);
    let mut v = lo;
    while v <= hi {
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eaeef2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#656d76\">{v:.0}</text>",
            left + plot_w,
            left - 6.0,
            ty(v) + 4.0,
            y = ty(v)
        );
        v += if hi - lo > 60.0 { 20.0 } else { 10.0 };
    }
    for (id, name, value, colour) in [
        ("warn-line", "warn", r.temperature_warn_celsius, "#bf8700"),
        ("crit-line", "critical", r.temperature_crit_celsius, "#cf222e"),
    ] {
        let y = ty(value);
        let _ = write!(
            s,
            "<line id=\"{id}\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" \
             stroke-width=\"1.5\" stroke-dasharray=\"6 4\" data-celsius=\"{value:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{name} {value:.1} °C</text>",
            left + plot_w,
            // On the left, where the oldest readings are: the newest, on the right, matter most.
            left + 4.0,
            y - 4.0
        );
    }
    for (i, sensor) in r.history.sensors.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points =
            r.history.samples.iter().map(|p| p.temperature_celsius.get(sensor).map(|v| (f.x(p.time_unix), ty(*v))));
        let _ = write!(
            s,
            "<path class=\"temp\" data-sensor=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" \
             stroke-linecap=\"round\" stroke-linejoin=\"round\"/>",
            esc(sensor),
            path(points)
        );
        // The latest reading of each sensor as a point to read off against the lines.
        if let Some((t, v)) =
            r.history.samples.iter().rev().find_map(|p| p.temperature_celsius.get(sensor).map(|v| (p.time_unix, *v)))
        {
            let _ = write!(
                s,
                "<circle class=\"temp-point\" data-sensor=\"{}\" data-celsius=\"{v:.1}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" \
                 fill=\"{colour}\"><title>{} {v:.1} °C at {} UTC</title></circle>",
                esc(sensor),
                f.x(t),
                ty(v),
                esc(sensor),
                hhmmss(t)
            );
        }
    }
    if temps.is_empty() {
        nothing(s, "no temperature read in this window", Frame::TEMP);
    }
}

/// Power, from 0 so that the height reads as the amount.
fn power_panel(s: &mut String, r: &HistoryReport, f: &Frame) {
    let (top, h) = Frame::POWER;
    panel(s, "power (W)", Frame::POWER, Frame::PLOT_W, Frame::LEFT);
    let powers: Vec<f64> = r.history.samples.iter().filter_map(|p| p.power_watts).collect();
    let Some(max) = powers.iter().copied().reduce(f64::max) else {
        return nothing(s, "no power read in this window", Frame::POWER);
    };
    let max = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let py = |v: f64| top + (max - v) / max * h;
    scale(s, &format!("{max:.1}"), Frame::POWER);
    let d = path(r.history.samples.iter().map(|p| p.power_watts.map(|v| (f.x(p.time_unix), py(v)))));
    let _ = write!(
        s,
        "<path class=\"power\" d=\"{d}\" fill=\"none\" stroke=\"#1a7f37\" stroke-width=\"1.5\" stroke-linecap=\"round\"/>"
    );
}

/// Throttle level as steps: each level holds until the next sample says otherwise.
fn throttle_panel(s: &mut String, r: &HistoryReport, f: &Frame) {
    let (top, h) = Frame::THROTTLE;
    panel(s, "throttle level", Frame::THROTTLE, Frame::PLOT_W, Frame::LEFT);
    let Some(max_level) = r.history.samples.iter().filter_map(|p| p.throttle_level).max() else {
        return nothing(s, "no throttle ladder", Frame::THROTTLE);
    };
    let max = f64::from(max_level.max(1));
    let ly = |l: u8| top + (max - f64::from(l)) / max * h;
    let mut d = String::new();
    let mut last: Option<u8> = None;
    for p in &r.history.samples {
        match (p.throttle_level, last) {
            (Some(l), Some(_)) => {
                let _ = write!(d, " H{:.1} V{:.1}", f.x(p.time_unix), ly(l));
            }
            (Some(l), None) => {
                let _ = write!(d, " M{:.1} {:.1}", f.x(p.time_unix), ly(l));
            }
            (None, _) => {}
        }
        last = p.throttle_level;
    }
    if let Some(l) = last {
        let _ = write!(d, " H{:.1} V{:.1}", f.x(f.to), ly(l));
    }
    scale(s, &format!("{max:.0}"), Frame::THROTTLE);
    let _ =
        write!(s, "<path class=\"throttle\" d=\"{}\" fill=\"none\" stroke=\"#bf8700\" stroke-width=\"2\"/>", d.trim());
}

/// Marks across all panels, each with what happened when.
fn marks(s: &mut String, r: &HistoryReport, f: &Frame) {
    let axis = Frame::AXIS;
    for m in r.history.marks.iter().filter(|m| m.time_unix >= f.from && m.time_unix <= f.to) {
        let colour = mark_colour(m.kind);
        let mx = f.x(m.time_unix);
        let _ = write!(
            s,
            "<g class=\"mark mark-{kind}\"><line x1=\"{mx:.1}\" x2=\"{mx:.1}\" y1=\"{:.1}\" y2=\"{axis}\" stroke=\"{colour}\" \
             stroke-width=\"1\" stroke-dasharray=\"2 3\"/><path d=\"M{:.1} {:.1} l5 -8 h-10 z\" fill=\"{colour}\"/>\
             <title>{} UTC: {}</title></g>",
            Frame::TEMP.0,
            mx,
            Frame::TEMP.0,
            hhmmss(m.time_unix),
            esc(&m.text),
            kind = m.kind.name(),
        );
    }
}

/// Time along the bottom: a tick every "round" interval that gives at most 8 of them.
fn time_axis(s: &mut String, f: &Frame) {
    let (left, plot_w, axis) = (Frame::LEFT, Frame::PLOT_W, Frame::AXIS);
    let span = f.to - f.from;
    let step = [10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0]
        .into_iter()
        .find(|step| span / step <= 8.0)
        .unwrap_or(21600.0);
    let mut t = ceil_to(f.from, step);
    while t <= f.to {
        let tx = f.x(t);
        let _ = write!(
            s,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{axis}\" y2=\"{:.1}\" stroke=\"#656d76\"/>\
             <text class=\"tick\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#1f2328\">{}</text>",
            axis + 5.0,
            axis + 18.0,
            if step < 60.0 { hhmmss(t) } else { hhmm(t) }
        );
        t += step;
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{axis}\" y2=\"{axis}\" stroke=\"#656d76\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#656d76\">time (UTC); now {}</text></svg>",
        left + plot_w,
        left + plot_w / 2.0,
        axis + 36.0,
        hhmmss(f.to)
    );
}

/// A panel's top and bottom values, on its left.
fn scale(s: &mut String, top_label: &str, (top, h): (f64, f64)) {
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#656d76\">{top_label}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#656d76\">0</text>",
        Frame::LEFT - 6.0,
        top + 4.0,
        Frame::LEFT - 6.0,
        top + h
    );
}

/// What a panel says when it has nothing to draw.
fn nothing(s: &mut String, text: &str, (top, h): (f64, f64)) {
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#656d76\">{text}</text>",
        Frame::LEFT + Frame::PLOT_W / 2.0,
        top + h / 2.0
    );
}

/// A panel's frame and title.
fn panel(s: &mut String, title: &str, (top, h): (f64, f64), plot_w: f64, left: f64) {
    let _ = write!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{h}\" fill=\"none\" stroke=\"#d0d7de\"/>\
         <text x=\"{left}\" y=\"{:.1}\" font-weight=\"600\" fill=\"#1f2328\">{title}</text>",
        top - 6.0
    );
}

/// The key to the plot: one entry per sensor and per kind of mark.
pub fn legend(r: &HistoryReport) -> String {
    let mut s = String::from("<p class=\"legend\">");
    for (i, sensor) in r.history.sensors.iter().enumerate() {
        let _ = write!(s, "<span><i style=\"background:{}\"></i>{}</span>", PALETTE[i % PALETTE.len()], esc(sensor));
    }
    for (kind, what) in [
        (MarkKind::ConditionSet, "condition set"),
        (MarkKind::ConditionCleared, "condition cleared"),
        (MarkKind::Throttle, "throttle step"),
        (MarkKind::Reconnect, "reconnect"),
    ] {
        let _ = write!(s, "<span><i class=\"mk\" style=\"background:{}\"></i>{what}</span>", mark_colour(kind));
    }
    s.push_str("</p>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_at_gaps_and_a_lone_point_is_a_dot() {
        let d = path([Some((1.0, 2.0)), Some((3.0, 4.0)), None, Some((5.0, 6.0)), None]);
        assert_eq!(d, "M1.0 2.0 L3.0 4.0 M5.0 6.0 h0.1");
        assert_eq!(sparkline(&[None, None]), "<span class=\"muted\">—</span>");
        let s = sparkline(&[Some(50.0), None, Some(60.0)]);
        assert!(s.contains("d=\"M2.0 20.0 h0.1 M88.0 2.0 h0.1\""), "{s}");
        assert!(s.contains("50.0–60.0 °C"), "{s}");
    }
}
