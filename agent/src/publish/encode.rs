//! [`Families`] written as Prometheus text format 0.0.4 or OpenMetrics 1.0 text, straight into bytes.
//!
//! Both writers produce exactly what the agent produced when it encoded through the prometheus-client
//! crate and derived text 0.0.4 from its OpenMetrics output (an oracle test in `exposition` compares the
//! two byte for byte): the same `# HELP`/`# TYPE` lines (no `# UNIT`), label values with `\`, `"` and
//! newlines escaped, values formatted by the same `dtoa` crate, families without samples left out, and
//! counters described under their name without `_total` in OpenMetrics but with it in text 0.0.4.
//! Writing bytes directly costs a fraction of going through `fmt::Write` trait objects and then
//! re-parsing the OpenMetrics text, and the encode is paid once per collection (issue 17).
//!
//! Help texts are escaped as each format requires: `\\` and line feeds in both, and `"` as well in
//! OpenMetrics, whose help is an escaped string. The catalogue's own help texts need none, so for them the
//! output is still prometheus-client's (which wrote help as it was); a help text built from a sysfs file
//! name could need it, and without it one newline in a file name ended the scrape (issue 23).

use std::borrow::Borrow;

use collectors::export::{Families, Family, LabelValue, MetricKind};

/// Appends the OpenMetrics 1.0 exposition of `families` to `out`, `# EOF` included. Given the families
/// themselves (not a reference), each is freed once written.
pub fn openmetrics<F: Borrow<Family>>(families: impl IntoIterator<Item = F>, out: &mut Vec<u8>) {
    write(families, Flavor::OpenMetrics, out);
    out.extend_from_slice(b"# EOF\n");
}

/// Appends the Prometheus text format 0.0.4 exposition of `families` to `out`. Given the families
/// themselves (not a reference), each is freed once written.
pub fn text_004<F: Borrow<Family>>(families: impl IntoIterator<Item = F>, out: &mut Vec<u8>) {
    write(families, Flavor::Text004, out);
}

/// A guess at the encoded size, for sizing the buffer of a first encode (later ones use the previous size).
pub fn estimated_len(families: &Families) -> usize {
    // A header of about two names and the help, and per sample the name, a few labels and the value.
    families.iter().map(|f| 2 * f.name.len() + f.help.len() + 32 + f.samples.len() * (f.name.len() + 64)).sum()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenMetrics,
    Text004,
}

fn write<F: Borrow<Family>>(families: impl IntoIterator<Item = F>, flavor: Flavor, out: &mut Vec<u8>) {
    for f in families {
        let f = f.borrow();
        if !f.samples.is_empty() {
            family(f, flavor, out);
        }
    }
}

fn family(f: &Family, flavor: Flavor, out: &mut Vec<u8>) {
    // Counter samples are always `<base>_total`. OpenMetrics names the family `<base>`; text 0.0.4 has
    // no family name of its own and describes the samples' name.
    let (base, suffix, type_name): (&str, &[u8], &[u8]) = match f.kind {
        MetricKind::Gauge => (&f.name, b"", b"gauge"),
        MetricKind::Counter => (f.name.strip_suffix("_total").unwrap_or(&f.name), b"_total", b"counter"),
    };
    let described_suffix = if flavor == Flavor::Text004 { suffix } else { b"" };
    let header = |out: &mut Vec<u8>, line: &[u8]| {
        out.extend_from_slice(line);
        out.extend_from_slice(base.as_bytes());
        out.extend_from_slice(described_suffix);
        out.push(b' ');
    };
    header(out, b"# HELP ");
    match flavor {
        Flavor::OpenMetrics => escaped(&f.help, out),
        Flavor::Text004 => escaped_help_004(&f.help, out),
    }
    out.push(b'\n');
    header(out, b"# TYPE ");
    out.extend_from_slice(type_name);
    out.push(b'\n');
    let mut floats = dtoa::Buffer::new();
    let mut integers = itoa::Buffer::new();
    for s in &f.samples {
        out.extend_from_slice(base.as_bytes());
        out.extend_from_slice(suffix);
        // A sample without labels is `name value`, not `name{} value`.
        if !s.labels.is_empty() {
            labels(&s.labels, out);
        }
        out.push(b' ');
        value(s.value, &mut floats, &mut integers, out);
        out.push(b'\n');
    }
}

/// Integers below this in magnitude are exact in an f64, and dtoa writes them as their digits and `.0`.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A value as dtoa writes it, which is what prometheus-client used: `1.0` for integers, `1e21`, `1e-9`,
/// `-0.0`, `NaN`, `inf`, `-inf`. Most values are integers (counters, states, whole degrees); itoa writes
/// those several times faster than dtoa works out the shortest digits.
fn value(v: f64, floats: &mut dtoa::Buffer, integers: &mut itoa::Buffer, out: &mut Vec<u8>) {
    // NaN and the infinities have a NaN fraction; -0.0 needs its sign, which an i64 loses.
    if v.fract() == 0.0 && v.abs() < EXACT_INTEGERS && !(v == 0.0 && v.is_sign_negative()) {
        // Exact: |v| < 2^53 fits an i64 with nothing cut off.
        out.extend_from_slice(integers.format(v as i64).as_bytes());
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(floats.format(v).as_bytes());
    }
}

fn labels(labels: &[(&'static str, LabelValue)], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"=\"");
        escaped(value, out);
        out.push(b'"');
    }
    out.push(b'}');
}

/// A label value with `\`, `"` and line feeds escaped, as both formats require. Other bytes (carriage
/// returns, any UTF-8) are written as they are.
fn escaped(value: &str, out: &mut Vec<u8>) {
    let bytes = value.as_bytes();
    let mut from = 0;
    // Most values need no escape at all; memchr scans for the three bytes many at a time, where a
    // byte-by-byte loop was the largest part of an encode.
    for i in memchr::memchr3_iter(b'\\', b'"', b'\n', bytes) {
        let escape: &[u8] = match bytes[i] {
            b'\\' => b"\\\\",
            b'"' => b"\\\"",
            _ => b"\\n",
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escape);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

/// A help text in text format 0.0.4, which escapes only `\\` and line feeds there (a `\\"` would be read
/// back as two characters).
fn escaped_help_004(help: &str, out: &mut Vec<u8>) {
    let bytes = help.as_bytes();
    let mut from = 0;
    for i in memchr::memchr2_iter(b'\\', b'\n', bytes) {
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(if bytes[i] == b'\\' { b"\\\\" } else { b"\\n" });
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use collectors::catalogue;
    use collectors::export::lv;

    fn encoded(families: &Families) -> (String, String) {
        let (mut om, mut text) = (Vec::new(), Vec::new());
        openmetrics(families, &mut om);
        text_004(families, &mut text);
        let (mut om_owned, mut text_owned) = (Vec::new(), Vec::new());
        openmetrics(families.clone(), &mut om_owned);
        text_004(families.clone(), &mut text_owned);
        assert_eq!((&om_owned, &text_owned), (&om, &text), "consuming writes the same");
        (String::from_utf8(om).expect("UTF-8"), String::from_utf8(text).expect("UTF-8"))
    }

    #[test]
    fn counters_are_described_without_total_in_openmetrics_only() {
        let mut f = Families::new();
        f.sample(&catalogue::EVENTS_DROPPED, vec![], 3.0);
        f.sample(&catalogue::THROTTLE_LEVEL, vec![("device", lv("d0"))], 1.5);
        let (om, text) = encoded(&f);
        let help = catalogue::EVENTS_DROPPED.help;
        let base = catalogue::EVENTS_DROPPED.name.strip_suffix("_total").expect("a counter");
        let gauge = catalogue::THROTTLE_LEVEL.name;
        let gauge_help = catalogue::THROTTLE_LEVEL.help;
        assert_eq!(
            om,
            format!(
                "# HELP {base} {help}\n# TYPE {base} counter\n{base}_total 3.0\n\
                 # HELP {gauge} {gauge_help}\n# TYPE {gauge} gauge\n{gauge}{{device=\"d0\"}} 1.5\n# EOF\n"
            )
        );
        assert_eq!(
            text,
            format!(
                "# HELP {base}_total {help}\n# TYPE {base}_total counter\n{base}_total 3.0\n\
                 # HELP {gauge} {gauge_help}\n# TYPE {gauge} gauge\n{gauge}{{device=\"d0\"}} 1.5\n"
            )
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed_only() {
        let mut out = Vec::new();
        escaped("a\\b\"c\nd\re λ", &mut out);
        assert_eq!(out, b"a\\\\b\\\"c\\nd\re \xce\xbb");
    }

    /// The integer path against dtoa itself, over every magnitude it takes (the oracle tests compare the
    /// whole output with prometheus-client's as well).
    #[test]
    fn integers_are_written_as_dtoa_writes_them() {
        let (mut floats, mut integers) = (dtoa::Buffer::new(), itoa::Buffer::new());
        let mut check = |v: f64| {
            let mut ours = Vec::new();
            value(v, &mut floats, &mut integers, &mut ours);
            assert_eq!(std::str::from_utf8(&ours).expect("UTF-8"), dtoa::Buffer::new().format(v), "{v:e}");
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..200_000u64 {
            check(i as f64);
            check(-(i as f64));
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Integers of every bit length up to and beyond 2^53.
            let n = x >> (x % 64);
            check(n as f64);
            check(-(n as f64));
            check((n % (1 << 53)) as f64);
        }
        for e in 0..64 {
            for d in [-1.0, 0.0, 1.0] {
                check(2f64.powi(e) + d);
                check(-(2f64.powi(e) + d));
            }
        }
        for e in 0..23 {
            check(10f64.powi(e));
            check(10f64.powi(e) - 1.0);
        }
        for v in [-0.0, 0.0, 0.5, -0.5, 1e-9, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, EXACT_INTEGERS - 1.0] {
            check(v);
        }
    }

    #[test]
    fn help_texts_are_escaped_as_each_format_requires() {
        let mut f = Families::new();
        let name = "accel_hwmon_temp_x_celsius";
        let labels = vec![("chip", lv("c")), ("sensor", lv("temp1"))];
        f.sample_in(&catalogue::HWMON, name, "a\\b\"c\nd\re", MetricKind::Gauge, labels, 1.0);
        let (om, text) = encoded(&f);
        assert_eq!(om.lines().next(), Some("# HELP accel_hwmon_temp_x_celsius a\\\\b\\\"c\\nd\re"));
        assert_eq!(text.lines().next(), Some("# HELP accel_hwmon_temp_x_celsius a\\\\b\"c\\nd\re"));
    }

    #[test]
    fn nothing_but_eof_for_no_families() {
        assert_eq!(encoded(&Families::new()), ("# EOF\n".to_owned(), String::new()));
    }
}
