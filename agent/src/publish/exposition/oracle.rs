//! The proof that the hand-written encoder is faithful: the agent's previous encoding path (families
//! through the prometheus-client crate, text 0.0.4 derived from its OpenMetrics by `to_text_004`), kept
//! here verbatim as an oracle, must produce the very same bytes as `publish::encode` in both formats,
//! for hostile values and for the real snapshots of a large host and of the demo host.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use collectors::HostCollector;
use collectors::catalogue;
use collectors::export::{Families, LabelValue, MetricKind, lv};
use collectors::sysfs::{Quarantine, ReadStats, ReadWatch, SysfsIo};
use config::{CollectorKind, Config};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::families;
use crate::effects::journal::Severity;
use crate::model::evidence::Outcome;
use crate::publish::encode;
use crate::publish::state::AgentState;

/// The agent's former collector, encoding given families instead of the live snapshot's.
#[derive(Debug)]
struct OracleCollector(Families);

struct Labels<'a>(&'a [(&'static str, LabelValue)]);

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (k, v) in self.0 {
            EncodeLabel::encode(&(*k, &**v), encoder.encode_label())?;
        }
        Ok(())
    }
}

impl Collector for OracleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.0.iter().filter(|f| !f.samples.is_empty()) {
            let (name, ty) = match f.kind {
                MetricKind::Gauge => (f.name.as_str(), MetricType::Gauge),
                MetricKind::Counter => (f.name.strip_suffix("_total").unwrap_or(&f.name), MetricType::Counter),
            };
            let mut family = encoder.encode_descriptor(name, &f.help, None, ty)?;
            for s in &f.samples {
                let labels = Labels(&s.labels);
                if s.labels.is_empty() {
                    encode_value(&mut family, f.kind, s.value)?;
                } else {
                    encode_value(&mut family.encode_family(&labels)?, f.kind, s.value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(m: &mut MetricEncoder, kind: MetricKind, value: f64) -> Result<(), std::fmt::Error> {
    match kind {
        MetricKind::Gauge => m.encode_gauge(&value),
        MetricKind::Counter => m.encode_counter::<NoLabelSet, _, f64>(&value, None),
    }
}

/// The former conversion of prometheus-client's OpenMetrics text to Prometheus text format 0.0.4.
fn to_text_004(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = pending_help.take() {
                let _ = writeln!(out, "# HELP {h}");
            }
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (name, ty) = match ty {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                "info" => (format!("{name}_info"), "gauge"),
                other => (name.to_owned(), other),
            };
            if let Some(h) = pending_help.take() {
                let help = h.split_once(' ').map_or("", |(_, text)| text);
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {ty}");
            continue;
        }
        if let Some(h) = pending_help.take() {
            let _ = writeln!(out, "# HELP {h}");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// OpenMetrics and text 0.0.4 as the former path wrote them.
fn oracle(families: Families) -> (String, String) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(OracleCollector(families)));
    let mut om = String::new();
    prometheus_client::encoding::text::encode(&mut om, &registry).expect("writing to a String");
    let text = to_text_004(&om);
    (om, text)
}

/// Compares both formats, reporting the first differing line rather than two whole scrapes.
fn assert_faithful(families: Families) -> (String, String) {
    let (mut om, mut text) = (Vec::new(), Vec::new());
    encode::openmetrics(&families, &mut om);
    encode::text_004(&families, &mut text);
    let (om, text) = (String::from_utf8(om).expect("UTF-8"), String::from_utf8(text).expect("UTF-8"));
    let (oracle_om, oracle_text) = oracle(families);
    for (format, ours, theirs) in [("OpenMetrics", &om, &oracle_om), ("text 0.0.4", &text, &oracle_text)] {
        if let Some((n, (a, b))) = ours.split('\n').zip(theirs.split('\n')).enumerate().find(|(_, (a, b))| a != b) {
            panic!("{format}, line {}: ours\n{a:?}\nprometheus-client\n{b:?}", n + 1);
        }
        assert_eq!(ours.len(), theirs.len(), "{format}: one output is a prefix of the other");
        assert_eq!(ours, theirs, "{format}");
    }
    (om, text)
}

/// Deterministic values across the whole f64 range, and integers of every magnitude.
fn many_floats() -> Vec<f64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for _ in 0..2000 {
        // Any bit pattern: subnormals, huge and tiny exponents, NaNs with payloads.
        out.push(f64::from_bits(next()));
        // Integers below and beyond 2^53, as counters are.
        let bits = next() % 64;
        out.push((next() >> bits) as f64);
        out.push(-((next() >> bits) as f64));
        // Readings as sysfs gives them: millidegrees, microwatts, converted.
        out.push((next() % 200_000) as f64 / 1000.0);
        out.push((next() % 1_000_000_000) as f64 / 1e6);
    }
    for e in -30..=30 {
        out.push(10f64.powi(e));
        out.push(-(10f64.powi(e)));
        out.push(2f64.powi(e * 2));
        out.push(10f64.powi(e) - 1.0);
    }
    out
}

#[test]
fn hostile_labels_and_edge_floats_encode_as_prometheus_client_did() {
    let nasty = [
        "",
        "plain",
        "quote\"d",
        "back\\slash",
        "trailing\\",
        "new\nline",
        "\\n is not a newline",
        "crlf\r\n",
        "cr\r",
        "\"",
        "\\\"\n",
        "unicode λ ☃ 😀",
        "a,b=c}{",
        "# EOF",
        "\n# EOF\n# HELP x y",
        "tab\there",
        "line\u{2028}separator",
        "nul\0byte",
    ];
    let edges = [
        0.0,
        -0.0,
        1e-9,
        1e21,
        1e22,
        1e20,
        123_456_789.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        u64::MAX as f64,
        (1u64 << 53) as f64,
        ((1u64 << 53) + 1) as f64,
        i64::MIN as f64,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        5e-324,
        0.1,
        1.0 / 3.0,
        -3.25,
        1.5,
        45.5,
        1e15,
        1e16,
        1e17,
        123456.789,
    ];
    let mut f = Families::new();
    for (i, device) in nasty.iter().enumerate() {
        f.sample(&catalogue::THROTTLE_LEVEL, vec![("device", lv(device))], edges[i % edges.len()]);
        for severity in nasty {
            f.sample(&catalogue::EVENTS, vec![("device", lv(device)), ("severity", lv(severity))], u64::MAX as f64);
        }
    }
    for (i, v) in edges.iter().chain(&many_floats()).enumerate() {
        let i = lv(i.to_string());
        f.sample(&catalogue::THROTTLE_MAX_LEVEL, vec![("device", i.clone())], *v);
        f.sample(&catalogue::THROTTLE_TRANSITIONS, vec![("device", i), ("direction", lv("up"))], *v);
    }
    f.sample(&catalogue::ACTIONS_UP, vec![], -0.0);
    f.sample(&catalogue::EVENTS_DROPPED, vec![], 1e21);

    let (om, text) = assert_faithful(f);
    // What a reader of the scrape sees, so a wrong oracle cannot pass unnoticed.
    assert!(om.contains("accel_throttle_level{device=\"plain\"} -0.0\n"), "{om}");
    assert!(om.contains("accel_throttle_level{device=\"quote\\\"d\"} 1e-9\n"), "{om}");
    assert!(om.contains("accel_throttle_level{device=\"new\\nline\"} 100000000000000000000.0\n"), "{om}");
    assert!(text.contains("accel_throttle_level{device=\"back\\\\slash\"} 1e21\n"), "{text}");
    assert!(text.contains("accel_throttle_level{device=\"trailing\\\\\"} 1e22\n"), "{text}");
    assert!(text.contains("accel_actions_up -0.0\n"), "{text}");
    assert!(text.contains("# TYPE accel_events_dropped_total counter\naccel_events_dropped_total 1e21\n"), "{text}");
    assert!(om.contains("# TYPE accel_events_dropped counter\naccel_events_dropped_total 1e21\n"), "{om}");
    assert!(
        om.ends_with("\n# EOF\n") && !text.contains("\n# EOF\n"),
        "the hostile # EOF labels stay inside their lines"
    );
}

/// Collects every host collector over `root` into a fresh state.
fn collect(cfg: &Config, root: &std::path::Path) -> Arc<AgentState> {
    let state =
        AgentState::new(CollectorKind::ALL.iter().map(|k| (*k, Duration::from_secs(5), Duration::from_secs(2))));
    let mut io = SysfsIo::new(ReadWatch::new(Quarantine::new()));
    for kind in CollectorKind::ALL {
        let mut col = HostCollector::new(&cfg.collector(kind), root);
        let readings = col.collect(&mut io).expect("collect");
        let outcome = Outcome { result: Ok(readings), stats: ReadStats::default(), duration: Duration::from_millis(3) };
        state.record(kind, outcome, 0, 0);
    }
    state
}

#[test]
fn large_tree_scrape_encodes_as_prometheus_client_did() {
    let dir = tempfile::tempdir().expect("temp dir");
    accel_sim::large_tree::generate(dir.path(), accel_sim::large_tree::TreeSpec::LARGE);
    let state = collect(&Config::default(), dir.path());
    state.publish_event_counts(vec![("".into(), Severity::Warning, 3), ("x".into(), Severity::Critical, 1)], 2);
    let fams = families(&state.snapshot());
    let series: usize = fams.iter().map(|f| f.samples.len()).sum();
    assert!(series > 4000, "the large tree gives {series} series");
    let (om, text) = assert_faithful(fams);
    assert!(text.contains("\naccel_hwmon_temp_celsius{"), "{text}");
    assert!(om.contains("\n# TYPE accel_pci_aer_device_errors counter\n"), "{om}");
}

#[test]
fn demo_host_scrape_with_its_devices_encodes_as_prometheus_client_did() {
    let host = accel_sim::demo_host::DemoHost::build().expect("demo host");
    let cfg = config::parse_str(&host.config("127.0.0.1:0"), "demo.toml").expect("the demo's config");
    let state = collect(&cfg, &cfg.sysfs_root);
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut engine = crate::model::DeviceEngine::new(&cfg, now, wall);
    engine.evaluate(&state.snapshot().host(), now, wall);
    state.publish_devices(engine.views(wall), vec![("loihi0".into(), Severity::Warning, 2)], 0);
    let fams = families(&state.snapshot());
    let info = fams.get(catalogue::DEVICE_INFO.name).expect("device info");
    for id in ["loihi0", "photon0", "photon1", "hl0"] {
        assert!(info.samples.iter().any(|s| s.label("device") == Some(id)), "{id} in {info:?}");
    }
    let (_, text) = assert_faithful(fams);
    assert!(text.contains("\naccel_events_total{device=\"loihi0\",severity=\"warning\"} 2.0\n"), "{text}");
}
