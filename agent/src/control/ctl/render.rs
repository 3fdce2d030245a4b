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
