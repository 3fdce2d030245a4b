//! The read-only HTTP endpoint: /metrics, /-/healthy, /-/ready and the landing page.
//!
//! Every response is built from the latest snapshot; nothing here waits on hardware. Slow or idle clients
//! are bounded by a header read timeout and a cap on open connections, so they cannot starve others.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY, WWW_AUTHENTICATE,
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
use crate::model::State;
use crate::publish::api;
use crate::publish::exposition::{Exposition, Format, accepts_gzip};
use crate::publish::state::AgentState;
use crate::publish::webconfig::{Tls, WebConfig};
use crate::publish::{device_page, landing};

/// Open connections held at once. Past this, a new connection sheds the oldest idle one (one not in the
/// middle of a request): waiting in the kernel's accept queue behind thousands of idle connections, a
/// scrape would miss Prometheus's timeout.
const MAX_CONNECTIONS: usize = 4096;

/// One open connection, as the shedder sees it.
struct Conn {
    /// Requests being answered on it now.
    busy: std::sync::atomic::AtomicUsize,
    /// Cancelled to shed the connection.
    shed: CancellationToken,
}

/// The open connections, oldest first (ids grow with each accept).
#[derive(Default)]
struct Conns {
    next_id: u64,
    open: std::collections::BTreeMap<u64, Arc<Conn>>,
}

impl Conns {
    /// Registers a new connection, shedding the oldest idle one if the cap is reached. None when every
    /// open connection is busy: then the new one is refused.
    fn admit(conns: &std::sync::Mutex<Conns>) -> Option<(u64, Arc<Conn>)> {
        use std::sync::atomic::Ordering;
        let mut c = conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.open.len() >= MAX_CONNECTIONS {
            let idle = c.open.iter().find(|(_, conn)| conn.busy.load(Ordering::Acquire) == 0).map(|(id, _)| *id)?;
            if let Some(conn) = c.open.remove(&idle) {
                conn.shed.cancel();
            }
        }
        let id = c.next_id;
        c.next_id += 1;
        let conn = Arc::new(Conn { busy: Default::default(), shed: CancellationToken::new() });
        c.open.insert(id, Arc::clone(&conn));
        Some((id, conn))
    }

    fn close(conns: &std::sync::Mutex<Conns>, id: u64) {
        conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).open.remove(&id);
    }
}
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(1000);

/// What `/-/healthy` reports: every collection loop making progress and the actions worker running; else
/// what is wrong, one line each.
pub fn healthy(snap: &crate::publish::state::Snapshot, now: Instant, started: Instant) -> Result<(), String> {
    let stalled = snap.stalled(now, started);
    let mut problems = Vec::new();
    if !stalled.is_empty() {
        let names: Vec<&str> = stalled.iter().map(|k| k.name()).collect();
        problems.push(format!("collection loops stalled: {}", names.join(", ")));
    }
    if let Some(why) = &snap.actions_stopped {
        problems.push(format!("the actions worker stopped: {why}"));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
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
            version: crate::publish::exposition::VERSION,
            revision: crate::publish::exposition::REVISION,
            uptime_seconds: self.state.started.elapsed().as_secs_f64(),
            ready: snap.ready(),
            // The mode in force, as the actions thread last published it (a reload may change it).
            actions: snap.actions_mode.as_str(),
            collectors_failing: snap
                .collectors
                .iter()
                .filter(|(_, c)| c.collections > 0 && !c.success)
                .map(|(k, c)| api::CollectorFailing {
                    collector: k.name(),
                    error: c.error.clone().unwrap_or_else(|| "failed".into()),
                })
                .collect(),
            journal_unavailable: self.events.unavailable.clone(),
            journal_degraded: self.events.degraded(),
            actions_stopped: snap.actions_stopped.as_deref().map(str::to_owned),
            faults: api::AgentFaults::of(&snap.faults, SystemTime::now()),
            kubelet: api::KubeletStatus::of(&snap.devices),
        };
        api::status(&snap, agent)
    }

    pub async fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        if get && req.uri().path() == "/metrics" {
            return self.metrics(req).await;
        }
        if let (true, Some(id)) = (get, req.uri().path().strip_prefix("/api/v1/devices/")) {
            return self.device(id).await;
        }
        if let (true, Some(id)) = (get, req.uri().path().strip_prefix("/devices/")) {
            return self.device_page(id).await;
        }
        if req.uri().path() == "/api/v1/events" && (req.method() == Method::GET || req.method() == Method::HEAD) {
            return match api::event_filter(req.uri().query().unwrap_or("")) {
                Ok(filter) => match self.events.query(filter).await {
                    Ok(events) => {
                        let mut r = json(StatusCode::OK, &events);
                        // The answer is what the journal holds; say so when that is not everything.
                        if let Some(why) = self.events.degraded() {
                            let v = HeaderValue::from_str(&why.replace(['\r', '\n'], " "))
                                .unwrap_or_else(|_| HeaderValue::from_static("incomplete"));
                            r.headers_mut().insert("x-accel-journal-incomplete", v);
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
    async fn device(&self, id: &str) -> Response<Full<Bytes>> {
        let snap = self.state.snapshot();
        let Some(device) = snap.devices.iter().find(|d| d.id == id) else {
            return json(StatusCode::NOT_FOUND, &api::unknown_device(id, &snap.devices));
        };
        let filter =
            crate::effects::journal::EventFilter { device: Some(id.to_owned()), limit: 20, ..Default::default() };
        // Without a journal the device is still worth showing; the events are then just absent.
        let events = self.events.query(filter).await.unwrap_or_default();
        json(StatusCode::OK, &api::DeviceDetail { device, events })
    }

    /// One device as a page to read: the same data as /api/v1/devices/{id}.
    async fn device_page(&self, id: &str) -> Response<Full<Bytes>> {
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
        let events = self.events.query(filter).await;
        let throttle = snap.throttle.iter().find(|t| t.device == id);
        respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(device_page::device_page(device, throttle, events.as_deref().map_err(|e| e.to_string()))),
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
        let Some((id, conn)) = Conns::admit(&conns) else {
            tracing::debug!(%peer, "refused: all {MAX_CONNECTIONS} connections are answering requests");
            continue;
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
            Conns::close(&conns, id);
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
        async move {
            use std::sync::atomic::Ordering;
            // Busy while answering: a connection in the middle of a request is never shed.
            conn.busy.fetch_add(1, Ordering::AcqRel);
            let response = respond_to(&http, &web, req, peer).await;
            conn.busy.fetch_sub(1, Ordering::AcqRel);
            Ok::<_, Infallible>(response)
        }
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

/// Basic auth, when configured, in front of every endpoint; the configured headers on every response.
async fn respond_to(http: &Http, web: &WebConfig, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let allowed = match &web.auth {
        Some(auth) => auth.check(req.headers().get(AUTHORIZATION), peer.ip()).await,
        None => true,
    };
    let mut response = if allowed {
        http.handle(&req).await
    } else {
        tracing::debug!(%peer, path = req.uri().path(), "401: missing or wrong credentials");
        let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"accel-agent\""));
        r
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
