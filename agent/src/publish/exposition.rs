//! /metrics: the snapshot's families, encoded by [`crate::publish::encode`] in the format a scrape asks for.
//!
//! Prometheus asks for OpenMetrics, most other tools for the classic text format 0.0.4. Each format is
//! encoded (and compressed) only when first asked for, and cached per snapshot generation, so any number
//! of scrapes between two collections costs one encode per format.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwapOption;

use bytes::Bytes;
use collectors::catalogue;
use collectors::export::{Families, labels, lv};

use crate::publish::encode;
use crate::publish::gzip::SegmentedGzip;
use crate::publish::state::{AgentState, ConnCap, Snapshot};

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("ACCEL_REVISION");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text004,
    OpenMetrics,
}

impl Format {
    /// Picks the format from an Accept header by q-value; OpenMetrics only when it is preferred.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::Text004 };
        let mut best_om = -1.0f32;
        let mut best_text = -1.0f32;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q =
                parts.filter_map(|p| p.strip_prefix("q=")).filter_map(|q| q.parse::<f32>().ok()).next().unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => best_om = best_om.max(q),
                "text/plain" | "*/*" | "text/*" => best_text = best_text.max(q),
                _ => {}
            }
        }
        if best_om > 0.0 && best_om >= best_text { Format::OpenMetrics } else { Format::Text004 }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text004 => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Everything the agent exports, as families.
pub fn families(snap: &Snapshot) -> Families {
    let mut out = Families::new();
    crate::model::export(&snap.devices, &mut out);
    crate::model::window_set::export(&snap.windows, &mut out);
    crate::publish::spinnaker::export(&snap.spinnaker, &mut out);
    for status in snap.collectors.values() {
        if let Some(r) = &status.readings {
            r.export(&mut out);
        }
    }
    for (kind, c) in &snap.collectors {
        let name = lv(kind.name());
        let l = || labels![("collector", name.clone())];
        out.sample(&catalogue::COLLECTOR_SUCCESS, l(), f64::from(u8::from(c.success)));
        if let Some(d) = c.duration {
            out.sample(&catalogue::COLLECTOR_DURATION, l(), d.as_secs_f64());
        }
        if let Some(t) = c.last_success_unix {
            out.sample(&catalogue::COLLECTOR_LAST_SUCCESS, l(), t);
        }
        out.sample(&catalogue::COLLECTOR_COLLECTIONS, l(), c.collections as f64);
        out.sample(&catalogue::COLLECTOR_STUCK_THREADS, l(), c.stuck_threads as f64);
        // Reasons that mean trouble are there from 0, so increase() sees their first failure; the expected
        // conditions (enodata, eagain, enodev, einval, enoent: ReadFailure::is_expected) appear when they
        // first happen, which saves 40 always-zero series per host.
        for (reason, n) in c.read_errors.iter().filter(|(reason, n)| *n > 0 || !reason.is_expected()) {
            out.sample(
                &catalogue::SYSFS_READ_ERRORS,
                labels![("collector", name.clone()), ("reason", lv(reason.label()))],
                n as f64,
            );
        }
    }
    out.sample(&catalogue::SYSFS_OPEN_FILES, Vec::new(), snap.open_files.open as f64);
    out.sample(&catalogue::SYSFS_OPEN_FILES_LIMIT, Vec::new(), snap.open_files.limit as f64);
    let http = &snap.http_connections;
    out.sample(&catalogue::HTTP_CONNECTIONS_LIMIT, Vec::new(), http.limit as f64);
    // Every cap from 0, so increase() sees the first refusal.
    for cap in ConnCap::ALL {
        out.sample(&catalogue::HTTP_CONNECTIONS_REFUSED, labels![("cap", lv(cap.label()))], http.refused(cap) as f64);
    }
    for cap in ConnCap::SHEDDABLE {
        out.sample(&catalogue::HTTP_CONNECTIONS_SHED, labels![("cap", lv(cap.label()))], http.shed(cap) as f64);
    }
    out.sample(&catalogue::ACTIONS_UP, Vec::new(), if snap.actions_stopped.is_some() { 0.0 } else { 1.0 });
    for t in snap.throttle.iter() {
        let d = || labels![("device", lv(&t.device))];
        out.sample(&catalogue::THROTTLE_LEVEL, d(), t.level as f64);
        out.sample(&catalogue::THROTTLE_MAX_LEVEL, d(), t.max_level as f64);
        for (direction, n) in [("up", t.transitions_up), ("down", t.transitions_down)] {
            out.sample(
                &catalogue::THROTTLE_TRANSITIONS,
                labels![("device", lv(&t.device)), ("direction", lv(direction))],
                n as f64,
            );
        }
    }
    // Pre-initialised for every device, so rate() works from the first event.
    let mut counts: std::collections::BTreeMap<(&str, &str), u64> = std::collections::BTreeMap::new();
    for d in snap.devices.iter() {
        for s in crate::effects::journal::Severity::ALL {
            counts.insert((d.id.as_str(), s.as_str()), 0);
        }
    }
    for (device, severity, n) in snap.event_counts.iter() {
        counts.insert((device.as_str(), severity.as_str()), *n);
    }
    for ((device, severity), n) in counts {
        out.sample(&catalogue::EVENTS, labels![("device", lv(device)), ("severity", lv(severity))], n as f64);
    }
    out.sample(&catalogue::EVENTS_DROPPED, vec![], snap.events_dropped as f64);
    for (fault, n) in &snap.faults.counts {
        out.sample(&catalogue::AGENT_FAULTS, labels![("kind", lv(fault.label()))], *n as f64);
    }
    for (reason, n) in snap.control_refused.iter() {
        out.sample(&catalogue::CONTROL_REFUSED, labels![("reason", lv(reason))], *n as f64);
    }
    out.sample(&catalogue::BUILD_INFO, labels![("version", lv(VERSION)), ("revision", lv(REVISION))], 1.0);
    out.sample(&catalogue::CONFIG_LAST_RELOAD_SUCCESSFUL, vec![], f64::from(u8::from(snap.reload.successful)));
    out.sample(&catalogue::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP, vec![], snap.reload.success_unix);
    out
}

/// One snapshot generation and its encodings, each made on first request: Prometheus asks for
/// OpenMetrics, curl and most other tools for text 0.0.4, and Prometheus always asks for gzip (a scrape of
/// a large host shrinks ~15x, which is most of what a busy scrape costs).
struct Rendered {
    generation: u64,
    /// What is encoded. Held (shared with the state, not copied) until the next generation replaces this.
    snapshot: Arc<Snapshot>,
    /// The previous generation's encoded sizes (0 if unknown): the next encode's buffers are sized from
    /// them, so a scrape never grows its buffer.
    openmetrics_len: usize,
    text_len: usize,
    openmetrics: OnceLock<Bytes>,
    text: OnceLock<Bytes>,
    openmetrics_gz: OnceLock<Bytes>,
    text_gz: OnceLock<Bytes>,
    /// The previous compressions' segments, shared by every generation.
    gzip: Arc<GzipSegments>,
}

/// Per format, the segments of the last text compressed, which the next compression reuses where the
/// text is unchanged.
#[derive(Default)]
struct GzipSegments {
    openmetrics: Mutex<SegmentedGzip>,
    text: Mutex<SegmentedGzip>,
}

impl Rendered {
    fn new(snapshot: Arc<Snapshot>, previous: Option<&Rendered>, gzip: Arc<GzipSegments>) -> Self {
        let len =
            |plain: fn(&Rendered) -> &OnceLock<Bytes>| previous.and_then(|p| plain(p).get()).map_or(0, Bytes::len);
        Rendered {
            generation: snapshot.generation,
            snapshot,
            openmetrics_len: len(|r| &r.openmetrics),
            text_len: len(|r| &r.text),
            openmetrics: OnceLock::new(),
            text: OnceLock::new(),
            openmetrics_gz: OnceLock::new(),
            text_gz: OnceLock::new(),
            gzip,
        }
    }

    fn get(&self, format: Format, gzip: bool) -> Bytes {
        let (plain, gz, segments) = match format {
            Format::OpenMetrics => (&self.openmetrics, &self.openmetrics_gz, &self.gzip.openmetrics),
            Format::Text004 => (&self.text, &self.text_gz, &self.gzip.text),
        };
        let plain = plain.get_or_init(|| self.encode(format));
        if gzip { gz.get_or_init(|| compress(segments, plain)).clone() } else { plain.clone() }
    }

    fn encode(&self, format: Format) -> Bytes {
        let families = families(&self.snapshot);
        let previous = match format {
            Format::OpenMetrics => self.openmetrics_len,
            Format::Text004 => self.text_len,
        };
        // Some room for a few more series than last time.
        let capacity = if previous > 0 { previous + 4096 } else { encode::estimated_len(&families) };
        let mut out = Vec::with_capacity(capacity);
        // The families are consumed, each freed once written: on a large host they and the text are each
        // a few hundred KiB, and this way both are never whole at once (the buffer's pages are only
        // touched as it fills).
        match format {
            Format::OpenMetrics => encode::openmetrics(families, &mut out),
            Format::Text004 => encode::text_004(families, &mut out),
        }
        Bytes::from(out)
    }

    /// Whether `get` would return at once, without encoding or compressing.
    fn ready(&self, format: Format, gzip: bool) -> bool {
        match (format, gzip) {
            (Format::OpenMetrics, false) => self.openmetrics.get().is_some(),
            (Format::OpenMetrics, true) => self.openmetrics_gz.get().is_some(),
            (Format::Text004, false) => self.text.get().is_some(),
            (Format::Text004, true) => self.text_gz.get().is_some(),
        }
    }
}

/// The encoded output of the latest generation a scrape asked for.
pub struct Exposition {
    state: Arc<AgentState>,
    latest: ArcSwapOption<Rendered>,
    gzip: Arc<GzipSegments>,
    /// Held by the one request that encodes a new generation.
    encoding: tokio::sync::Mutex<()>,
}

impl Exposition {
    pub fn new(state: Arc<AgentState>) -> Self {
        Exposition {
            state,
            latest: ArcSwapOption::empty(),
            gzip: Arc::default(),
            encoding: tokio::sync::Mutex::new(()),
        }
    }

    /// The current exposition in `format`, encoded (and compressed, if `gzip`) at most once per snapshot
    /// generation. Blocks while encoding; the HTTP server uses [`serve`](Self::serve).
    pub fn render(&self, format: Format, gzip: bool) -> Bytes {
        let snapshot = self.state.snapshot();
        match self.latest.load_full() {
            Some(r) if r.generation == snapshot.generation => r.get(format, gzip),
            _ => {
                let r = Arc::new(self.next(snapshot));
                self.latest.store(Some(Arc::clone(&r)));
                r.get(format, gzip)
            }
        }
    }

    /// Like [`render`](Self::render), without ever blocking an async worker, and without making
    /// concurrent scrapers queue behind one encode: encoding and compressing (a few milliseconds on a
    /// large host) run on a blocking thread, one request encodes a new generation, and requests that
    /// arrive meanwhile get the previous generation at once, as if they had come those milliseconds
    /// earlier. A request with nothing encoded yet waits for the first encode.
    pub async fn serve(self: &Arc<Self>, format: Format, gzip: bool) -> Bytes {
        let snapshot = self.state.snapshot();
        let generation = snapshot.generation;
        let latest = self.latest.load_full();
        let rendered = match latest {
            Some(r) if r.generation == generation => r,
            stale => {
                let guard = match (self.encoding.try_lock(), stale) {
                    (Ok(guard), _) => guard,
                    (Err(_), Some(previous)) => return self.finish(previous, format, gzip).await,
                    (Err(_), None) => self.encoding.lock().await,
                };
                let r = match self.latest.load_full() {
                    // Encoded by another request while this one waited for the lock.
                    Some(r) if r.generation >= generation => r,
                    _ => {
                        let this = Arc::clone(self);
                        // The form this request wants is made in the same blocking task, before the generation
                        // is published, so the requests that follow find it ready.
                        let encoded = tokio::task::spawn_blocking(move || {
                            let r = Arc::new(this.next(snapshot));
                            r.get(format, gzip);
                            r
                        })
                        .await;
                        let Ok(r) = encoded else {
                            tracing::error!("encoding metrics panicked");
                            return Bytes::new();
                        };
                        self.latest.store(Some(Arc::clone(&r)));
                        r
                    }
                };
                drop(guard);
                r
            }
        };
        self.finish(rendered, format, gzip).await
    }

    async fn finish(&self, r: Arc<Rendered>, format: Format, gzip: bool) -> Bytes {
        if r.ready(format, gzip) {
            return r.get(format, gzip);
        }
        // Compressing takes milliseconds: off the async workers. Concurrent first requests for the same
        // form wait for one compression (OnceLock), on blocking threads.
        tokio::task::spawn_blocking(move || r.get(format, gzip)).await.unwrap_or_default()
    }

    /// A new generation, to be encoded on demand.
    fn next(&self, snapshot: Arc<Snapshot>) -> Rendered {
        Rendered::new(snapshot, self.latest.load().as_deref(), Arc::clone(&self.gzip))
    }
}

/// `plain` gzipped, compressing only the segments that changed since the last text of its format.
fn compress(segments: &Mutex<SegmentedGzip>, plain: &Bytes) -> Bytes {
    // Formats are compressed one generation at a time (the lock), so each reuses the last one's segments.
    let mut segments = segments.lock().unwrap_or_else(PoisonError::into_inner);
    segments.compress(plain).unwrap_or_else(|e| {
        // Deflating into memory at a valid level does not fail; if it did, the scrape gets no body.
        tracing::error!("compressing metrics failed: {e}");
        Bytes::new()
    })
}

/// Whether an Accept-Encoding header accepts gzip (and does not refuse it with q=0).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|h| {
        h.split(',').any(|part| {
            let mut it = part.split(';').map(str::trim);
            let coding = it.next().unwrap_or("");
            let q = it.filter_map(|p| p.strip_prefix("q=")).filter_map(|q| q.parse::<f32>().ok()).next().unwrap_or(1.0);
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
        })
    })
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        assert_eq!(Format::negotiate(None), Format::Text004);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text004);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5")),
            Format::Text004
        );
    }

    fn gunzip(b: &[u8]) -> String {
        use std::io::Read;
        let mut out = String::new();
        flate2::read::GzDecoder::new(b).read_to_string(&mut out).expect("valid gzip");
        out
    }

    #[tokio::test]
    async fn serve_encodes_each_generation_once_and_never_queues_behind_an_encode() {
        let state = AgentState::new([]);
        let expo = Arc::new(Exposition::new(Arc::clone(&state)));
        let first = expo.serve(Format::Text004, false).await;
        assert!(std::str::from_utf8(&first).unwrap().contains("\naccel_config_last_reload_successful 1"));
        assert_eq!(gunzip(&expo.serve(Format::Text004, true).await), std::str::from_utf8(&first).unwrap());
        // Same generation: the very same bytes, not a new encode.
        assert_eq!(expo.serve(Format::Text004, false).await.as_ptr(), first.as_ptr());

        state.record_reload(false);
        // While another request encodes the new generation, this one gets the previous at once.
        let busy = expo.encoding.try_lock().expect("free");
        assert_eq!(expo.serve(Format::Text004, false).await, first);
        drop(busy);
        let second = expo.serve(Format::Text004, false).await;
        assert!(std::str::from_utf8(&second).unwrap().contains("\naccel_config_last_reload_successful 0"));
        assert_eq!(expo.render(Format::Text004, false), second, "render and serve share the cache");
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
