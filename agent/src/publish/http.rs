//! The read-only HTTP endpoint: /metrics, /-/healthy, /-/ready and the landing page.
//!
//! Every response is built from the latest snapshot; nothing here waits on hardware. Slow or idle clients
//! are bounded by a header read timeout and by caps on open connections, in all and per client address
//! (`[http]`, within the descriptor budget of `app::fdlimit`), so they cannot starve others nor take the
//! descriptors the agent needs for its own work.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER, VARY,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::effects::events::Events;
use crate::effects::journal::Lane;
use crate::model::State;
use crate::publish::api;
use crate::publish::exposition::{Exposition, Format, accepts_gzip};
use crate::publish::state::{AgentState, ConnCap};
use crate::publish::webconfig::{Tls, Verdict, WebConfig};
use crate::publish::{device_page, landing};

/// One open connection, as the shedder sees it.
struct Conn {
    /// Requests being answered on it now. A request waiting for bcrypt is not counted: a flood of wrong
    /// passwords must not make its connections unsheddable.
    busy: std::sync::atomic::AtomicUsize,
    /// Cancelled to shed the connection.
    shed: CancellationToken,
}

/// The open connections, oldest first (ids grow with each accept), and each client address's own.
#[derive(Default)]
struct Conns {
    next_id: u64,
    open: std::collections::BTreeMap<u64, (IpAddr, Arc<Conn>)>,
    by_addr: std::collections::HashMap<IpAddr, std::collections::BTreeSet<u64>>,
}

/// Idle connections shed to admit a new one, by cap.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Shed {
    address: usize,
    total: usize,
}

/// What [`Conns::admit`] decided about a new connection.
enum Admission {
    /// `shed`: idle connections closed to make room, for the address's cap and for the total.
    Admitted { id: u64, conn: Arc<Conn>, shed: Shed },
    /// Over a cap with every connection under it busy: closed at once. `shed` as above: an address's own
    /// idle connections may have gone before the total cap refused.
    Refused { cap: ConnCap, shed: Shed },
}

impl Conns {
    /// Registers a new connection from `addr`. Past a cap (the address's own first, then the total), the
    /// oldest idle connection under that cap (one not in the middle of a request) is shed for it: waiting
    /// in the kernel's accept queue behind thousands of idle connections, a scrape would miss Prometheus's
    /// timeout. When every connection under the cap is busy, the new one is refused.
    fn admit(&mut self, addr: IpAddr, max_total: usize, max_per_address: usize) -> Admission {
        let mut shed = Shed::default();
        // An address over its share sheds its own idle connections, never another's.
        let own = self.by_addr.get(&addr).map_or(0, |ids| ids.len());
        if own >= max_per_address {
            let ids = self.by_addr.get(&addr).map(|ids| ids.iter().copied().collect::<Vec<_>>()).unwrap_or_default();
            let excess = own + 1 - max_per_address;
            let idle: Vec<u64> = ids.into_iter().filter(|id| self.is_idle(*id)).take(excess).collect();
            if idle.len() < excess {
                return Admission::Refused { cap: ConnCap::Address, shed };
            }
            shed.address = idle.len();
            for id in idle {
                self.shed(id);
            }
        }
        if self.open.len() >= max_total {
            let excess = self.open.len() + 1 - max_total;
            let idle: Vec<u64> = self.open.keys().copied().filter(|id| self.is_idle(*id)).take(excess).collect();
            if idle.len() < excess {
                return Admission::Refused { cap: ConnCap::Total, shed };
            }
            shed.total = idle.len();
            for id in idle {
                self.shed(id);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let conn = Arc::new(Conn { busy: Default::default(), shed: CancellationToken::new() });
        self.open.insert(id, (addr, Arc::clone(&conn)));
        self.by_addr.entry(addr).or_default().insert(id);
        Admission::Admitted { id, conn, shed }
    }

    fn is_idle(&self, id: u64) -> bool {
        self.open.get(&id).is_some_and(|(_, c)| c.busy.load(std::sync::atomic::Ordering::Acquire) == 0)
    }

    fn shed(&mut self, id: u64) {
        if let Some((_, conn)) = self.close(id) {
            conn.shed.cancel();
        }
    }

    fn close(&mut self, id: u64) -> Option<(IpAddr, Arc<Conn>)> {
        let (addr, conn) = self.open.remove(&id)?;
        if let Some(ids) = self.by_addr.get_mut(&addr) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_addr.remove(&addr);
            }
        }
        Some((addr, conn))
    }
}

fn lock(conns: &std::sync::Mutex<Conns>) -> std::sync::MutexGuard<'_, Conns> {
    conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Refusals are logged at most this often, with the count since the last line: a flood must not flood
/// the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts refusals between two log lines.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    /// Counts one refusal; returns how many to report now, if a line is due at `now`.
    fn refused(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(1000);

/// Why `/-/healthy` fails: collection loops that stalled, the actions worker stopped. Its text is one
/// line for each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.lines().join("\n"))]
pub struct Unhealthy {
    pub stalled: Vec<config::CollectorKind>,
    pub actions_stopped: Option<Arc<str>>,
}

impl Unhealthy {
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.stalled.is_empty() {
            let names: Vec<&str> = self.stalled.iter().map(|k| k.name()).collect();
            lines.push(format!("collection loops stalled: {}", names.join(", ")));
        }
        if let Some(why) = &self.actions_stopped {
            lines.push(format!("the actions worker stopped: {why}"));
        }
        lines
    }
}

/// What `/-/healthy` reports: every collection loop making progress and the actions worker running; else
/// what is wrong.
pub fn healthy(snap: &crate::publish::state::Snapshot, now: Instant, started: Instant) -> Result<(), Unhealthy> {
    let stalled = snap.stalled(now, started);
    if stalled.is_empty() && snap.actions_stopped.is_none() {
        return Ok(());
    }
    Err(Unhealthy { stalled, actions_stopped: snap.actions_stopped.clone() })
}

pub struct Http {
    pub state: Arc<AgentState>,
    pub exposition: Arc<Exposition>,
    pub events: Arc<Events>,
}

impl Http {
    pub fn new(state: Arc<AgentState>, events: Arc<Events>) -> Arc<Self> {
        Arc::new(Http { exposition: Arc::new(Exposition::new(Arc::clone(&state))), state, events })
    }

    /// What `agentctl status` shows: every device's state and key readings, and the agent's own health.
    pub fn status(&self) -> api::StatusReport {
        let snap = self.state.snapshot();
        let agent = api::AgentStatus {
            version: crate::publish::exposition::VERSION.into(),
            revision: crate::publish::exposition::REVISION.into(),
            uptime_seconds: self.state.started.elapsed().as_secs_f64(),
            ready: snap.ready(),
            // The mode in force, as the actions thread last published it (a reload may change it).
            actions: snap.actions_mode,
            collectors_failing: snap
                .collectors
                .iter()
                .filter(|(_, c)| c.collections > 0 && !c.success)
                .map(|(k, c)| api::CollectorFailing {
                    collector: k.name().into(),
                    error: c.error.clone().unwrap_or_else(|| "failed".into()),
                })
                .collect(),
            journal_unavailable: self.events.unavailable(),
            journal_degraded: self.events.degraded(),
            actions_stopped: snap.actions_stopped.as_deref().map(str::to_owned),
            faults: api::AgentFaults::of(&snap.faults, SystemTime::now()),
            kubelet: api::KubeletStatus::of(&snap.devices),
        };
        let mut report = api::status(&snap, agent);
        let now = SystemTime::now();
        let from = now.checked_sub(api::RECENT).unwrap_or(std::time::UNIX_EPOCH);
        for d in &mut report.devices {
            d.temperature_recent_celsius = self.state.history.recent_max(&d.id, from, now, api::RECENT_POINTS);
        }
        report
    }

    pub async fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        if get && req.uri().path() == "/metrics" {
            return self.metrics(req).await;
        }
        // The control socket marks its requests, so that their queries run on its own journal connection.
        let lane = req.extensions().get::<Lane>().copied().unwrap_or(Lane::Http);
        if let (true, Some(id)) = (get, req.uri().path().strip_prefix("/api/v1/devices/")) {
            if let Some(id) = id.strip_suffix("/history") {
                return self.history(id, req.uri().query().unwrap_or(""));
            }
            return self.device(id, lane).await;
        }
        if let (true, Some(id)) = (get, req.uri().path().strip_prefix("/devices/")) {
            return self.device_page(id, lane).await;
        }
        if req.uri().path() == "/api/v1/events" && (req.method() == Method::GET || req.method() == Method::HEAD) {
            return match api::event_filter(req.uri().query().unwrap_or("")) {
                Ok(filter) => match self.events.query_json(lane, filter).await {
                    Ok(answer) => {
                        let mut r = respond(StatusCode::OK, "application/json", answer.body);
                        // The answer is what the journal holds; say so when that is not everything.
                        if let Some(why) = self.events.degraded() {
                            let v = HeaderValue::from_str(&why.replace(['\r', '\n'], " "))
                                .unwrap_or_else(|_| HeaderValue::from_static("incomplete"));
                            r.headers_mut().insert("x-accel-journal-incomplete", v);
                        }
                        if answer.truncated {
                            r.headers_mut().insert("x-accel-events-truncated", HeaderValue::from(answer.events));
                        }
                        r
                    }
                    Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}\n")),
                },
                Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
            };
        }
        self.handle_snapshot(req)
    }

    /// The exposition, encoded once per snapshot generation, off the async workers.
    async fn metrics(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let header = |h| req.headers().get(h).and_then(|v: &HeaderValue| v.to_str().ok());
        let format = Format::negotiate(header(ACCEPT));
        let gzip = accepts_gzip(header(ACCEPT_ENCODING));
        let mut r = respond(StatusCode::OK, format.content_type(), self.exposition.serve(format, gzip).await);
        r.headers_mut().insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if gzip {
            r.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    }

    /// One device with its most recent events.
    async fn device(&self, id: &str, lane: Lane) -> Response<Full<Bytes>> {
        let snap = self.state.snapshot();
        let Some(device) = snap.devices.iter().find(|d| d.id == id) else {
            return json(StatusCode::NOT_FOUND, &api::unknown_device(id, &snap.devices));
        };
        let filter =
            crate::effects::journal::EventFilter { device: Some(id.to_owned()), limit: 20, ..Default::default() };
        // Without a journal the device is still worth showing; the events are then just absent.
        let events = self.events.query(lane, filter).await.unwrap_or_default();
        json(StatusCode::OK, &api::DeviceDetail { device: std::borrow::Cow::Borrowed(device), events })
    }

    /// One device's recent readings and changes, since `?since=` (default: all that is kept).
    fn history(&self, id: &str, query: &str) -> Response<Full<Bytes>> {
        let snap = self.state.snapshot();
        let Some(device) = snap.devices.iter().find(|d| d.id == id) else {
            return json(StatusCode::NOT_FOUND, &api::unknown_device(id, &snap.devices));
        };
        let since = match api::history_since(query) {
            Ok(since) => since,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        };
        json(StatusCode::OK, &history_report(&self.state, device, since, SystemTime::now()))
    }

    /// One device as a page to read: the same data as /api/v1/devices/{id}.
    async fn device_page(&self, id: &str, lane: Lane) -> Response<Full<Bytes>> {
        let snap = self.state.snapshot();
        let Some(device) = snap.devices.iter().find(|d| d.id == id) else {
            let mut r = respond(
                StatusCode::NOT_FOUND,
                "text/html; charset=utf-8",
                Bytes::from(device_page::unknown_device_page(id, &snap.devices)),
            );
            r.headers_mut().insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        };
        let filter =
            crate::effects::journal::EventFilter { device: Some(id.to_owned()), limit: 20, ..Default::default() };
        let events = self.events.query(lane, filter).await;
        let throttle = snap.throttle.iter().find(|t| t.device == id);
        respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(device_page::device_page(
                device,
                throttle,
                &history_report(&self.state, device, None, SystemTime::now()),
                events.as_deref(),
            )),
        )
    }

    /// Everything answered from the snapshot alone.
    fn handle_snapshot(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n");
        }
        match req.uri().path() {
            "/-/healthy" => match healthy(&self.state.snapshot(), Instant::now(), self.state.started) {
                Ok(()) => text(StatusCode::OK, "OK\n"),
                Err(problems) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{problems}\n")),
            },
            "/-/ready" => {
                let snap = self.state.snapshot();
                if snap.ready() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    let waiting: Vec<&str> = snap
                        .collectors
                        .iter()
                        .filter(|(_, c)| {
                            !c.ever_read && c.consecutive_failures < crate::publish::state::READY_AFTER_FAILURES
                        })
                        .map(|(k, _)| k.name())
                        .collect();
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("waiting for the first collection of: {}\n", waiting.join(", ")),
                    )
                }
            }
            "/" => respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from(landing::render(&self.status(), &self.state.snapshot())),
            ),
            "/api/v1/status" => json(StatusCode::OK, &self.status()),
            "/health" => {
                let snap = self.state.snapshot();
                let report = api::health(&snap.devices, self.events.degraded());
                let status =
                    if report.status == State::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
                json(status, &report)
            }
            "/api/v1/devices" => json(StatusCode::OK, &*self.state.snapshot().devices),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /health, /api/v1/status, /api/v1/devices, /api/v1/events, /-/healthy, /-/ready or /\n",
            ),
        }
    }
}

/// A device's history over the last `since` (at most the span kept) up to `now`.
pub(crate) fn history_report(
    state: &AgentState,
    device: &crate::model::DeviceView,
    since: Option<Duration>,
    now: SystemTime,
) -> api::HistoryReport {
    let limits = state.history.limits();
    let back = since.map_or(limits.span, |s| s.min(limits.span));
    let from = now.checked_sub(back).unwrap_or(std::time::UNIX_EPOCH);
    let unix = |t: SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    api::HistoryReport {
        device: device.id.clone(),
        span_seconds: limits.span.as_secs_f64(),
        resolution_seconds: limits.resolution.as_secs_f64(),
        since_unix: unix(from),
        now_unix: unix(now),
        temperature_warn_celsius: device.temperature_warn_celsius,
        temperature_crit_celsius: device.temperature_crit_celsius,
        history: state.history.device(&device.id, Some(from)).unwrap_or_default(),
    }
}

pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            respond(status, "application/json", Bytes::from(body))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot encode JSON: {e}\n")),
    }
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", Bytes::copy_from_slice(body.as_bytes()))
}

/// Binds the listener; separate from serving so a bind error is reported before anything starts.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A client must finish its TLS handshake within this time, as it must send its headers within
/// `HEADER_TIMEOUT`: one that connects and sends nothing holds a connection slot no longer than that.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` is cancelled, then drains in-flight requests for up to a second. `web` adds TLS,
/// basic auth and response headers (see [`crate::publish::webconfig`]); `WebConfig::default()` is plain HTTP.
pub async fn serve(listener: TcpListener, http: Arc<Http>, web: Arc<WebConfig>, shutdown: CancellationToken) {
    if let Some(path) = &web.path {
        tracing::info!(web_config = %path.display(), "serving {}", web.describe());
        for note in &web.notes {
            tracing::info!(web_config = %path.display(), "{note}");
        }
    }
    let graceful = GracefulShutdown::new();
    let conns = Arc::new(std::sync::Mutex::new(Conns::default()));
    let counters = Arc::clone(&http.state.http_connections);
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let (max_total, max_per_address) = counters.caps();
        let admission = lock(&conns).admit(peer.ip(), max_total, max_per_address);
        let (id, conn) = match admission {
            Admission::Admitted { id, conn, shed } => {
                counters.count_shed(ConnCap::Address, shed.address);
                counters.count_shed(ConnCap::Total, shed.total);
                (id, conn)
            }
            Admission::Refused { cap, shed } => {
                counters.count_shed(ConnCap::Address, shed.address);
                // Closed here, holding its descriptor for no longer than the accept.
                drop(stream);
                counters.count_refused(cap);
                if let Some(n) = refusals.refused(Instant::now()) {
                    tracing::warn!(
                        %peer,
                        cap = cap.label(),
                        max_connections = max_total,
                        max_connections_per_address = max_per_address,
                        "refused {n} HTTP connection(s): over the cap, and every connection under it is \
                         answering a request"
                    );
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (http, web, shutdown) = (Arc::clone(&http), Arc::clone(&web), shutdown.clone());
        // Taken now, so that shutdown waits for this connection once it is past the handshake.
        let watcher = graceful.watcher();
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            let shed = conn.shed.clone();
            tokio::select! {
                () = serve_one(stream, http, web, peer, watcher, shutdown, conn) => {}
                // Dropping the connection's future closes it.
                () = shed.cancelled() => tracing::debug!(%peer, "idle connection shed for a new one"),
            }
            lock(&conns).close(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::debug!("some HTTP connections did not close within {DRAIN_TIMEOUT:?}");
    }
}

/// One accepted connection: the TLS handshake if configured, then HTTP/1.1.
async fn serve_one(
    stream: tokio::net::TcpStream,
    http: Arc<Http>,
    web: Arc<WebConfig>,
    peer: SocketAddr,
    watcher: Watcher,
    shutdown: CancellationToken,
    conn: Arc<Conn>,
) {
    let Some(tls) = web.tls.clone() else {
        return serve_connection(stream, http, web, peer, watcher, conn).await;
    };
    let stream = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls_handshake(&tls, stream, peer)) => match r {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        // Not yet a request in flight: nothing to drain.
        _ = shutdown.cancelled() => return,
    };
    serve_connection(stream, http, web, peer, watcher, conn).await
}

/// HTTP/1.1 on one connection, plain or TLS.
async fn serve_connection<I>(
    io: I,
    http: Arc<Http>,
    web: Arc<WebConfig>,
    peer: SocketAddr,
    watcher: Watcher,
    conn: Arc<Conn>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let (http, web, conn) = (Arc::clone(&http), Arc::clone(&web), Arc::clone(&conn));
        async move { Ok::<_, Infallible>(respond_to(&http, &web, req, peer, &conn).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection ended: {e}");
    }
}

/// Marks a connection busy while a request on it is answered: a connection in the middle of a request is
/// never shed.
struct Busy<'a>(&'a Conn);

impl<'a> Busy<'a> {
    fn mark(conn: &'a Conn) -> Self {
        conn.busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What a client over the bcrypt queue's cap is told to wait before it tries again.
const AUTH_RETRY_AFTER: &str = "1";

/// Basic auth, when configured, in front of every endpoint; the configured headers on every response.
async fn respond_to(
    http: &Http,
    web: &WebConfig,
    req: Request<Incoming>,
    peer: SocketAddr,
    conn: &Conn,
) -> Response<Full<Bytes>> {
    // Waiting for bcrypt does not make the connection busy: only a request that got past auth does.
    let verdict = match &web.auth {
        Some(auth) => auth.check(req.headers().get(AUTHORIZATION), peer.ip()).await,
        None => Verdict::Allowed,
    };
    let mut response = match verdict {
        Verdict::Allowed => {
            let _busy = Busy::mark(conn);
            http.handle(&req).await
        }
        Verdict::Denied => {
            tracing::debug!(%peer, path = req.uri().path(), "401: missing or wrong credentials");
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"accel-agent\""));
            r
        }
        Verdict::Busy => {
            // The queue of logins waiting for bcrypt is full (for this client or for all): answered at
            // once, and the connection closes, so a flood holds neither a queue place nor a connection.
            tracing::debug!(%peer, path = req.uri().path(), "429: too many logins waiting for bcrypt");
            http.state.http_connections.count_refused(ConnCap::AuthQueue);
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "Too many logins being checked; try again shortly\n");
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(AUTH_RETRY_AFTER));
            r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            r
        }
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// What Go's server answers to plain HTTP on a TLS port, so a scrape config left on `http://` says what is
/// wrong instead of failing with a reset.
const PLAIN_HTTP_TO_TLS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The TLS handshake on an accepted connection; `None` if it fails (logged at debug only: port scanners
/// and clients without the right certificate are routine, and the client sees the reason itself).
async fn tls_handshake(tls: &Arc<Tls>, mut stream: TcpStream, peer: SocketAddr) -> Option<TlsStream<TcpStream>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut first = [0u8; 1];
    if !matches!(stream.peek(&mut first).await, Ok(1)) {
        return None;
    }
    // 0x16 starts every TLS handshake record; an HTTP request starts with an upper-case method.
    if first[0] != 0x16 {
        tracing::debug!(%peer, "plain HTTP (or something else) on the TLS port");
        if first[0].is_ascii_uppercase() {
            let _ = stream.write_all(PLAIN_HTTP_TO_TLS).await;
            let _ = stream.shutdown().await;
            // Closing with the request unread would reset the connection and lose the answer; read
            // what the client sent (bounded) until it closes its side.
            let mut sink = [0u8; 4096];
            let drain = async {
                let mut total = 0;
                while let Ok(n @ 1..) = stream.read(&mut sink).await {
                    total += n;
                    if total > 64 * 1024 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
        return None;
    }
    match TlsAcceptor::from(tls.server_config().await).accept(stream).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn admitted(a: Admission) -> (u64, Arc<Conn>, Shed) {
        match a {
            Admission::Admitted { id, conn, shed } => (id, conn, shed),
            Admission::Refused { cap, .. } => panic!("refused at the {} cap", cap.label()),
        }
    }

    #[test]
    fn an_address_over_its_cap_sheds_its_own_oldest_idle_connection_never_anothers() {
        let mut c = Conns::default();
        let (other, other_conn, _) = admitted(c.admit(ip(9), 100, 2));
        let (first, first_conn, _) = admitted(c.admit(ip(1), 100, 2));
        let (_, _, shed) = admitted(c.admit(ip(1), 100, 2));
        assert_eq!(shed, Shed::default());
        let (_, _, shed) = admitted(c.admit(ip(1), 100, 2));
        assert_eq!(shed, Shed { address: 1, total: 0 });
        assert!(first_conn.shed.is_cancelled(), "its own oldest went");
        assert!(!c.open.contains_key(&first));
        assert!(
            !other_conn.shed.is_cancelled() && c.open.contains_key(&other),
            "the older one of another address stays"
        );
        assert_eq!(c.by_addr[&ip(1)].len(), 2);
    }

    #[test]
    fn a_busy_address_at_its_cap_is_refused_and_others_still_get_in() {
        let mut c = Conns::default();
        let conns: Vec<_> = (0..2).map(|_| admitted(c.admit(ip(1), 100, 2)).1).collect();
        let busy: Vec<_> = conns.iter().map(|conn| Busy::mark(conn)).collect();
        assert!(matches!(c.admit(ip(1), 100, 2), Admission::Refused { cap: ConnCap::Address, .. }));
        assert_eq!(c.open.len(), 2, "a refusal registers nothing");
        admitted(c.admit(ip(2), 100, 2));
        drop(busy);
        // Once a request is answered its connection is idle again, and can make room.
        assert_eq!(admitted(c.admit(ip(1), 100, 2)).2, Shed { address: 1, total: 0 });
    }

    #[test]
    fn over_the_total_cap_the_oldest_idle_goes_and_all_busy_refuses() {
        let mut c = Conns::default();
        let a = admitted(c.admit(ip(1), 3, 10));
        let b = admitted(c.admit(ip(2), 3, 10));
        let _busy_a = Busy::mark(&a.1);
        admitted(c.admit(ip(3), 3, 10));
        // a is busy, so b (the oldest idle) makes room.
        assert_eq!(admitted(c.admit(ip(4), 3, 10)).2, Shed { address: 0, total: 1 });
        assert!(b.1.shed.is_cancelled() && !a.1.shed.is_cancelled());
        assert!(!c.by_addr.contains_key(&ip(2)), "an address with no connection left is forgotten");
        let rest: Vec<_> = c.open.values().map(|(_, conn)| Arc::clone(conn)).collect();
        let _busy: Vec<_> = rest.iter().filter(|conn| !Arc::ptr_eq(conn, &a.1)).map(|conn| Busy::mark(conn)).collect();
        assert!(matches!(c.admit(ip(5), 3, 10), Admission::Refused { cap: ConnCap::Total, .. }));
        assert_eq!(c.open.len(), 3);
    }

    #[test]
    fn a_cap_lowered_by_a_reload_sheds_down_to_it_as_connections_arrive() {
        let mut c = Conns::default();
        for i in 0..5 {
            admitted(c.admit(ip(i), 10, 10));
        }
        assert_eq!(admitted(c.admit(ip(9), 2, 10)).2, Shed { address: 0, total: 4 });
        assert_eq!(c.open.len(), 2);
        for _ in 0..3 {
            admitted(c.admit(ip(7), 10, 10));
        }
        assert_eq!(admitted(c.admit(ip(7), 10, 1)).2, Shed { address: 3, total: 0 });
    }

    #[test]
    fn refusals_are_logged_once_per_interval_with_the_count_since() {
        let mut log = RefusalLog::default();
        let t = Instant::now();
        assert_eq!(log.refused(t), Some(1));
        assert_eq!(log.refused(t + Duration::from_secs(1)), None);
        assert_eq!(log.refused(t + Duration::from_secs(9)), None);
        assert_eq!(log.refused(t + REFUSAL_LOG_EVERY), Some(3));
    }
}
