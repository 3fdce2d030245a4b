//! Terminal output: aligned tables, units, and colour only on a terminal with NO_COLOR unset.

use std::io::IsTerminal;
use std::time::SystemTime;

use crate::publish::api::HistoryReport;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal, NO_COLOR is unset (https://no-color.org) and TERM is not "dumb".
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style { color: std::io::stdout().is_terminal() && !no_color && !dumb }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }

    /// A device state or finding level in its colour.
    pub fn state(&self, s: &str) -> String {
        match s {
            "healthy" | "ok" => self.paint("32", s),
            "degraded" | "warning" => self.paint("33", s),
            "unhealthy" | "critical" | "fatal" => self.paint("1;31", s),
            "maintenance" | "info" => self.paint("36", s),
            _ => self.paint("2", s),
        }
    }

    /// A diagnostic's result in its colour: passed green, failed red, anything else (refused, not run)
    /// yellow.
    pub fn result(&self, s: &str) -> String {
        match s {
            "passed" => self.paint("32", s),
            "failed" => self.paint("1;31", s),
            _ => self.paint("33", s),
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// Width as the terminal shows it: escape sequences take no room, "°C" takes two.
fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Columns padded to their widest cell, two spaces apart; the last column is not padded.
    pub fn render(&self, style: Style) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(visible_width(cell));
            }
        }
        let mut out = String::new();
        let line = |cells: &mut dyn Iterator<Item = String>, out: &mut String| {
            let mut parts = Vec::new();
            for (i, cell) in cells.enumerate().take(n) {
                let pad = if i + 1 == n { 0 } else { widths[i].saturating_sub(visible_width(&cell)) };
                parts.push(format!("{cell}{}", " ".repeat(pad)));
            }
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        let header = self.headers.iter().map(|h| style.bold(h)).collect::<Vec<_>>();
        line(&mut header.into_iter(), &mut out);
        for row in &self.rows {
            line(&mut row.iter().cloned(), &mut out);
        }
        out
    }
}

/// A value with its unit, or "-" when absent (never 0 for a value that could not be read).
pub fn value(v: Option<f64>, unit: &str, decimals: usize) -> String {
    match v {
        Some(v) if unit.is_empty() => format!("{v:.decimals$}"),
        Some(v) => format!("{v:.decimals$} {unit}"),
        None => "-".to_owned(),
    }
}

/// "3m 20s ago", or "-" for no time.
pub fn ago(t: Option<SystemTime>) -> String {
    let Some(t) = t else { return "-".to_owned() };
    let secs = SystemTime::now().duration_since(t).map_or(0, |d| d.as_secs());
    let text = humantime::format_duration(std::time::Duration::from_secs(secs)).to_string();
    // Two largest units are enough to read at a glance.
    let short: Vec<&str> = text.split(' ').take(2).collect();
    format!("{} ago", short.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_colour_and_units() {
        let mut t = Table::new(&["DEVICE", "TEMP", "STATE"]);
        t.row(vec!["loihi0".into(), value(Some(71.26), "°C", 1), Style { color: true }.state("degraded")]);
        t.row(vec!["photonic-card-1".into(), value(None, "°C", 1), "healthy".into()]);
        let out = t.render(Style { color: false });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "DEVICE           TEMP     STATE");
        assert_eq!(lines[1], "loihi0           71.3 °C  \x1b[33mdegraded\x1b[0m");
        assert_eq!(lines[2], "photonic-card-1  -        healthy");
        assert_eq!(visible_width("\x1b[1;31munhealthy\x1b[0m"), 9);
    }
}

/// Characters of the sparkline, one per 30 s of the last 15 minutes.
const SPARK_POINTS: usize = 30;
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// "temperature, last 15 min: ▁▁▂▅▇█ (41.0–86.0 °C; warn 80.0, critical 90.0)" from a history answer
/// (/api/v1/devices/{id}/history?since=15m): the hottest sensor per 30 s, a space where nothing was read.
/// The blocks span the readings' own range, so the numbers beside them say what they mean.
pub fn temperature_sparkline(h: &HistoryReport) -> String {
    let (from, to) = (h.since_unix, h.now_unix);
    let width = ((to - from) / SPARK_POINTS as f64).max(1e-3);
    let mut buckets: Vec<Option<f64>> = vec![None; SPARK_POINTS];
    for s in &h.history.samples {
        let Some(hottest) = s.temperature_celsius.values().copied().reduce(f64::max) else { continue };
        let i = (((s.time_unix - from) / width).max(0.0) as usize).min(SPARK_POINTS - 1);
        buckets[i] = Some(buckets[i].map_or(hottest, |m: f64| m.max(hottest)));
    }
    let present: Vec<f64> = buckets.iter().flatten().copied().collect();
    let (Some(lo), Some(hi)) = (present.iter().copied().reduce(f64::min), present.iter().copied().reduce(f64::max))
    else {
        return "temperature, last 15 min: no readings\n".to_owned();
    };
    let line: String = buckets
        .iter()
        .map(|b| match b {
            None => ' ',
            // A flat line: mid-height, so it does not read as "cold".
            Some(_) if hi - lo < 0.5 => BLOCKS[3],
            Some(v) => BLOCKS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect();
    let thresholds = format!("; warn {:.1}, critical {:.1}", h.temperature_warn_celsius, h.temperature_crit_celsius);
    format!("temperature, last 15 min: {line} ({lo:.1}–{hi:.1} °C{thresholds})\n")
}

#[cfg(test)]
mod spark_tests {
    use super::*;

    #[test]
    fn the_sparkline_rises_with_the_temperature_and_leaves_gaps() {
        // As the agent answers /api/v1/devices/{id}/history?since=15m.
        let h: HistoryReport = serde_json::from_value(serde_json::json!({
            "device": "loihi0", "span_seconds": 3600.0, "resolution_seconds": 5.0,
            "since_unix": 0.0, "now_unix": 900.0,
            "temperature_warn_celsius": 80.0, "temperature_crit_celsius": 90.0,
            "sensors": ["die", "board"], "marks": [],
            "samples": [
                {"time_unix": 10.0, "temperature_celsius": {"die": 40.0, "board": 30.0}, "state": "healthy"},
                {"time_unix": 450.0, "temperature_celsius": {}, "state": "healthy"},
                {"time_unix": 890.0, "temperature_celsius": {"die": 86.0}, "state": "degraded"},
            ]
        }))
        .unwrap();
        let line = temperature_sparkline(&h);
        assert_eq!(
            line,
            format!("temperature, last 15 min: ▁{}█ (40.0–86.0 °C; warn 80.0, critical 90.0)\n", " ".repeat(28))
        );
    }
}
