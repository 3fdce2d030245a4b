//! Terminal output: aligned tables, units, and colour only on a terminal with NO_COLOR unset.

use std::io::IsTerminal;

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

/// "3m 20s ago" for a Unix time in seconds.
pub fn ago(unix: Option<f64>) -> String {
    let Some(t) = unix else { return "-".to_owned() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let secs = (now - t).max(0.0) as u64;
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
pub fn temperature_sparkline(h: &serde_json::Value) -> String {
    let (Some(from), Some(to)) = (h["since_unix"].as_f64(), h["now_unix"].as_f64()) else {
        return String::new();
    };
    let width = ((to - from) / SPARK_POINTS as f64).max(1e-3);
    let mut buckets: Vec<Option<f64>> = vec![None; SPARK_POINTS];
    for s in h["samples"].as_array().into_iter().flatten() {
        let (Some(t), Some(temps)) = (s["time_unix"].as_f64(), s["temperature_celsius"].as_object()) else { continue };
        let Some(hottest) = temps.values().filter_map(serde_json::Value::as_f64).reduce(f64::max) else { continue };
        let i = (((t - from) / width).max(0.0) as usize).min(SPARK_POINTS - 1);
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
    let thresholds = match (h["temperature_warn_celsius"].as_f64(), h["temperature_crit_celsius"].as_f64()) {
        (Some(w), Some(c)) => format!("; warn {w:.1}, critical {c:.1}"),
        _ => String::new(),
    };
    format!("temperature, last 15 min: {line} ({lo:.1}–{hi:.1} °C{thresholds})\n")
}

#[cfg(test)]
mod spark_tests {
    use super::*;

    #[test]
    fn the_sparkline_rises_with_the_temperature_and_leaves_gaps() {
        let h = serde_json::json!({
            "since_unix": 0.0, "now_unix": 900.0,
            "temperature_warn_celsius": 80.0, "temperature_crit_celsius": 90.0,
            "samples": [
                {"time_unix": 10.0, "temperature_celsius": {"die": 40.0, "board": 30.0}},
                {"time_unix": 450.0, "temperature_celsius": {}},
                {"time_unix": 890.0, "temperature_celsius": {"die": 86.0}},
            ]
        });
        let line = temperature_sparkline(&h);
        assert_eq!(
            line,
            format!("temperature, last 15 min: ▁{}█ (40.0–86.0 °C; warn 80.0, critical 90.0)\n", " ".repeat(28))
        );
    }
}
