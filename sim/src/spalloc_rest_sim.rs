//! The Java spalloc service (SpiNNaker-allocserv in SpiNNakerManchester/JavaSpiNNaker) as its REST API
//! appears to a client, over HTTPS with a test CA, on loopback.
//!
//! Modelled on the service's published API: `SpallocServiceAPI` (the resources under `srv/spalloc/`),
//! `ServiceDescription` (the root: version, `machines-ref`, `jobs-ref`, `csrf-header`, `csrf-token`),
//! `MachinesResponse` (`dead-boards` as x/y/z, cabinet/frame/board and address; `dead-links`),
//! `ListJobsResponse` (a page of job URIs with `next`/`prev`), `JobStateResponse` (state, owner, times,
//! keepalive host, `machine-ref`, `original-request`) and `JobMachineInfo` (204 while the job has no
//! boards); JSON names in kebab-case. Login is the Spring form login SpiNNMan's
//! `spinnman/spalloc/session.py` drives: `GET system/login.html` gives an anonymous `JSESSIONID` and a
//! `_csrf` hidden field, `POST system/perform_login` with that token and the credentials answers 302
//! with a new session; a bearer token works on any request. Changes (`POST`, `PUT`, `DELETE`) need the
//! session's CSRF token in the header the root names. `sim/tests/spalloc_rest_peer.rs` proves it
//! with SpiNNMan's own `SpallocClient`.
//!
//! The sim keeps what a monitor must never do visible: keepalives and job creations are counted.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

/// Where the service lives under the host, as in the service's default deployment.
pub const CONTEXT: &str = "/spalloc/";
/// The CSRF header Spring Security names by default.
pub const CSRF_HEADER: &str = "X-CSRF-TOKEN";
const SESSION_COOKIE: &str = "JSESSIONID";

/// A board, as `dead-boards` and `JobMachineInfo` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestBoard {
    pub xyz: [u32; 3],
    /// cabinet, frame, board
    pub physical: [u32; 3],
    pub address: String,
}

impl RestBoard {
    fn to_json(&self) -> Value {
        let [x, y, z] = self.xyz;
        let [cabinet, frame, board] = self.physical;
        json!({"x": x, "y": y, "z": z, "cabinet": cabinet, "frame": frame, "board": board, "address": self.address})
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestMachine {
    pub name: String,
    pub tags: Vec<String>,
    pub width: u32,
    pub height: u32,
    pub dead_boards: Vec<RestBoard>,
    /// Each dead link: the board it leaves and its direction name (e.g. "north").
    pub dead_links: Vec<(RestBoard, String)>,
}

/// A job's state as `JobState` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestJobState {
    Queued,
    Power,
    Ready,
    Destroyed,
}

impl RestJobState {
    pub fn name(self) -> &'static str {
        match self {
            RestJobState::Queued => "QUEUED",
            RestJobState::Power => "POWER",
            RestJobState::Ready => "READY",
            RestJobState::Destroyed => "DESTROYED",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestJob {
    pub id: u64,
    pub owner: String,
    pub state: RestJobState,
    /// The machine and boards once allocated.
    pub machine: Option<(String, Vec<RestBoard>)>,
    /// What the job was created with (`CreateJobRequest`), e.g. `{"num-boards": 1, "tags": ["default"]}`.
    pub request: Value,
    pub reason: Option<String>,
}

#[derive(Default)]
struct State {
    machines: Vec<RestMachine>,
    jobs: Vec<RestJob>,
    next_id: u64,
    /// session id -> (CSRF token, user once logged in)
    sessions: BTreeMap<String, (String, Option<String>)>,
    session_counter: u64,
    keepalives: u64,
    created: u64,
    requests: Vec<String>,
    /// The session cookie each request carried, in the order of `requests`.
    session_cookies: Vec<Option<String>>,
}

struct Shared {
    state: Mutex<State>,
    users: Vec<(String, String)>,
    tokens: Vec<(String, String)>,
    page: usize,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who may log in, and how many job URIs one page of `GET jobs` holds.
#[derive(Debug, Clone)]
pub struct RestOptions {
    /// (username, password) pairs for the form login.
    pub users: Vec<(String, String)>,
    /// (bearer token, username) pairs.
    pub tokens: Vec<(String, String)>,
    pub page: usize,
}

impl Default for RestOptions {
    fn default() -> RestOptions {
        RestOptions { users: vec![("monitor".into(), "s3cret pass".into())], tokens: Vec::new(), page: 2 }
    }
}

/// The running service; stops when dropped. Its CA certificate is at [`SpallocRestSim::ca_file`].
pub struct SpallocRestSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
}

impl SpallocRestSim {
    pub fn start(options: RestOptions) -> io::Result<SpallocRestSim> {
        let dir = tempfile::tempdir()?;
        let tls = Arc::new(tls_config(dir.path()).map_err(io::Error::other)?);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { next_id: 1, ..State::default() }),
            users: options.users,
            tokens: options.tokens,
            page: options.page.max(1),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("spalloc-rest-sim".into()).spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (shared, tls) = (Arc::clone(&shared), Arc::clone(&tls));
                    std::thread::spawn(move || serve(stream, &tls, &shared, addr));
                }
            })?
        };
        Ok(SpallocRestSim { shared, addr, dir, thread: Some(thread) })
    }

    /// The service's URL, e.g. `https://127.0.0.1:PORT/spalloc/` (what a client is configured with).
    pub fn url(&self) -> String {
        format!("https://{}{CONTEXT}", self.addr)
    }

    /// The REST API's base: `.../spalloc/srv/spalloc/`.
    pub fn api(&self) -> String {
        format!("{}srv/spalloc/", self.url())
    }

    /// The PEM file of the CA that signed the server's certificate (for 127.0.0.1 and localhost).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn set_machines(&self, machines: Vec<RestMachine>) {
        self.shared.lock().machines = machines;
    }

    /// Adds a job as if created; returns its id.
    pub fn add_job(
        &self,
        owner: &str,
        state: RestJobState,
        machine: Option<(&str, Vec<RestBoard>)>,
        request: Value,
    ) -> u64 {
        let mut s = self.shared.lock();
        let id = s.next_id;
        s.next_id += 1;
        let machine = machine.map(|(m, b)| (m.to_owned(), b));
        s.jobs.push(RestJob { id, owner: owner.into(), state, machine, request, reason: None });
        id
    }

    /// Moves a job on (e.g. to READY with its boards).
    pub fn set_job(&self, id: u64, state: RestJobState, machine: Option<(&str, Vec<RestBoard>)>) -> bool {
        let mut s = self.shared.lock();
        match s.jobs.iter_mut().find(|j| j.id == id) {
            Some(j) => {
                j.state = state;
                j.machine = machine.map(|(m, b)| (m.to_owned(), b));
                true
            }
            None => false,
        }
    }

    pub fn jobs(&self) -> Vec<RestJob> {
        self.shared.lock().jobs.clone()
    }

    /// Forgets every session, as a restarted service does: clients must log in again.
    pub fn expire_sessions(&self) {
        self.shared.lock().sessions.clear();
    }

    /// Keepalives received (`PUT jobs/{id}/keepalive`).
    pub fn keepalives(&self) -> u64 {
        self.shared.lock().keepalives
    }

    /// Jobs created through the API (`POST jobs`).
    pub fn jobs_created(&self) -> u64 {
        self.shared.lock().created
    }

    /// "METHOD path" of every request, in order, authenticated or not.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// The session cookie (`JSESSIONID`) each request carried, in the order of [`SpallocRestSim::requests`].
    pub fn session_cookies(&self) -> Vec<Option<String>> {
        self.shared.lock().session_cookies.clone()
    }

    /// The session ids the service has handed out and still knows, logged in or not.
    pub fn sessions(&self) -> Vec<String> {
        self.shared.lock().sessions.keys().cloned().collect()
    }
}

impl Drop for SpallocRestSim {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 and localhost; writes the CA's PEM to `dir/ca.pem`.
fn tls_config(dir: &Path) -> Result<rustls::ServerConfig, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let ca_key = KeyPair::generate().map_err(|x| e(&x))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|x| e(&x))?;
    ca.distinguished_name.push(DnType::CommonName, "spalloc test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(|x| e(&x))?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).map_err(|x| e(&x))?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(|x| e(&x))?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(|x| e(&x))?;
    params.distinguished_name.push(DnType::CommonName, "spalloc");
    let cert = params.signed_by(&key, &issuer).map_err(|x| e(&x))?;
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|x| e(&x))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|x| e(&x))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .map_err(|x| e(&x))
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Request {
    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get("cookie")?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }
    fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }
    fn with(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.into(), value));
        self
    }
}

fn serve(stream: TcpStream, tls: &Arc<rustls::ServerConfig>, shared: &Shared, addr: SocketAddr) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(Arc::clone(tls)) else { return };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    // One request per connection: every response says Connection: close.
    let Some(req) = read_request(&mut tls) else { return };
    let resp = handle(&req, shared, addr);
    let reason = match resp.status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Not Found",
    };
    let mut out =
        format!("HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n", resp.status, resp.body.len());
    for (k, v) in &resp.headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let _ = tls.write_all(out.as_bytes());
    let _ = tls.write_all(&resp.body);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request { method, path: path.to_owned(), query: form(query), headers, body })
}

/// `a=1&b=x%20y` (also `+` for space, as HTML forms send it).
fn form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(req: &Request, shared: &Shared, addr: SocketAddr) -> Response {
    let base = format!("https://{addr}{CONTEXT}");
    let mut s = shared.lock();
    s.requests.push(format!("{} {}", req.method, req.path));
    s.session_cookies.push(req.cookie(SESSION_COOKIE).map(str::to_owned));
    let Some(rest) = req.path.strip_prefix(CONTEXT) else { return Response::empty(404) };
    let rest = rest.trim_end_matches('/');
    let bearer_user = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| shared.tokens.iter().find(|(tok, _)| tok == t))
        .map(|(_, user)| user.clone());
    if req.headers.contains_key("authorization") && bearer_user.is_none() {
        return Response::empty(401);
    }
    match (req.method.as_str(), rest) {
        ("GET", "system/login.html") => return login_page(&mut s, bearer_user),
        ("POST", "system/perform_login") => return perform_login(req, shared, &mut s, &base),
        _ => {}
    }

    let Some(path) = rest.strip_prefix("srv/spalloc").map(|p| p.trim_start_matches('/')) else {
        return Response::empty(404);
    };
    let session = req.cookie(SESSION_COOKIE).and_then(|id| s.sessions.get(id).map(|(t, u)| (t.clone(), u.clone())));
    let user = bearer_user.or_else(|| session.as_ref().and_then(|(_, u)| u.clone()));
    let Some(user) = user else { return Response::empty(401) };
    // Changes need the session's CSRF token (a bearer-token request has no session to steal).
    if req.method != "GET" && !req.headers.contains_key("authorization") {
        let sent = req.headers.get(&CSRF_HEADER.to_ascii_lowercase());
        if session.as_ref().map(|(t, _)| t) != sent {
            return Response::empty(403);
        }
    }
    let api = format!("{base}srv/spalloc/");
    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", []) => service_root(&mut s, &api, session.map(|(token, _)| token), user),
        ("GET", ["machines"]) => machines(&s, &api),
        ("GET", ["jobs"]) => list_jobs(req, &s, &api, shared.page),
        ("POST", ["jobs"]) => create_job(req, &mut s, &api, user),
        (method, ["jobs", id, rest @ ..]) => {
            let state = &mut *s;
            match id.parse::<u64>().ok().and_then(|id| state.jobs.iter_mut().find(|j| j.id == id)) {
                Some(job) => job_request(req, method, rest, job, &api, &mut state.keepalives),
                None => Response::empty(404),
            }
        }
        _ => Response::empty(404),
    }
}

/// The login form: an anonymous session with its CSRF token in a hidden field.
fn login_page(s: &mut State, bearer_user: Option<String>) -> Response {
    let (id, token) = new_session(s, bearer_user);
    let html = format!(
        "<html><body><form method=\"POST\" action=\"perform_login\">\n\
         <input type=\"text\" name=\"username\" />\n<input type=\"password\" name=\"password\" />\n\
         <input type=\"hidden\" name=\"_csrf\" value=\"{token}\" />\n\
         <input type=\"submit\" name=\"submit\" value=\"submit\" /></form></body></html>\n"
    );
    Response { status: 200, headers: vec![("Content-Type".into(), "text/html".into())], body: html.into_bytes() }
        .with("Set-Cookie", cookie(&id))
}

/// The form's POST: the anonymous session's CSRF token and a known user and password, or back to the form.
fn perform_login(req: &Request, shared: &Shared, s: &mut State, base: &str) -> Response {
    let f = form(&String::from_utf8_lossy(&req.body));
    let anon = req.cookie(SESSION_COOKIE).and_then(|id| s.sessions.get(id)).map(|(t, _)| t.clone());
    let ok_csrf = anon.is_some() && anon.as_deref() == f.get("_csrf").map(String::as_str);
    let user = shared
        .users
        .iter()
        .find(|(u, p)| Some(u) == f.get("username") && Some(p) == f.get("password"))
        .map(|(u, _)| u.clone());
    match (ok_csrf, user) {
        (true, Some(user)) => {
            // A new session on login (Spring's session-fixation protection).
            if let Some(old) = req.cookie(SESSION_COOKIE) {
                s.sessions.remove(old);
            }
            let (id, _) = new_session(s, Some(user));
            Response::empty(302).with("Location", format!("{base}system/")).with("Set-Cookie", cookie(&id))
        }
        _ => Response::empty(302).with("Location", format!("{base}system/login.html?error")),
    }
}

/// The service root: version, where machines and jobs are, and the CSRF header and token. A bearer-token
/// client without a session gets one here, as from the real service.
fn service_root(s: &mut State, api: &str, session_token: Option<String>, user: String) -> Response {
    let (token, id) = match session_token {
        Some(t) => (t, None),
        None => {
            let (id, t) = new_session(s, Some(user));
            (t, Some(id))
        }
    };
    let body = json!({
        "version": {"major-version": 7, "minor-version": 1, "revision": 0},
        "machines-ref": format!("{api}machines"),
        "jobs-ref": format!("{api}jobs"),
        "csrf-header": CSRF_HEADER,
        "csrf-token": token,
    });
    let r = Response::json(200, &body);
    match id {
        Some(id) => r.with("Set-Cookie", cookie(&id)),
        None => r,
    }
}

fn machines(s: &State, api: &str) -> Response {
    let machines: Vec<Value> = s
        .machines
        .iter()
        .map(|m| {
            json!({
                "name": m.name, "tags": m.tags, "uri": format!("{api}machines/{}", m.name),
                "width": m.width, "height": m.height,
                "dead-boards": m.dead_boards.iter().map(RestBoard::to_json).collect::<Vec<_>>(),
                "dead-links": m.dead_links.iter().map(|(b, dir)| {
                    let mut v = b.to_json();
                    v["direction"] = json!(dir);
                    v
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    Response::json(200, &json!({ "machines": machines }))
}

/// One page of job URLs, with `next` and `prev` links as the real service pages them.
fn list_jobs(req: &Request, s: &State, api: &str, page_size: usize) -> Response {
    let deleted = req.query.get("deleted").is_some_and(|d| d == "true");
    let start: usize = req.query.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = req.query.get("limit").and_then(|v| v.parse().ok()).unwrap_or(page_size).max(1);
    let listed: Vec<u64> =
        s.jobs.iter().filter(|j| deleted || j.state != RestJobState::Destroyed).map(|j| j.id).collect();
    let page: Vec<String> = listed.iter().skip(start).take(limit).map(|id| format!("{api}jobs/{id}")).collect();
    let mut body = json!({ "jobs": page });
    if start + limit < listed.len() {
        body["next"] = json!(format!("{api}jobs?deleted={deleted}&start={}&limit={limit}", start + limit));
    }
    if start > 0 {
        body["prev"] =
            json!(format!("{api}jobs?deleted={deleted}&start={}&limit={limit}", start.saturating_sub(limit)));
    }
    Response::json(200, &body)
}

fn create_job(req: &Request, s: &mut State, api: &str, user: String) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&req.body) else { return Response::empty(400) };
    let id = s.next_id;
    s.next_id += 1;
    s.created += 1;
    let owner = request.get("owner").and_then(Value::as_str).map_or(user, str::to_owned);
    s.jobs.push(RestJob { id, owner, state: RestJobState::Queued, machine: None, request, reason: None });
    Response::json(201, &json!({"id": id})).with("Location", format!("{api}jobs/{id}"))
}

/// `jobs/{id}/...`: the job, its machine, a keepalive, or its deletion.
fn job_request(
    req: &Request,
    method: &str,
    rest: &[&str],
    j: &mut RestJob,
    api: &str,
    keepalives: &mut u64,
) -> Response {
    let url = format!("{api}jobs/{}", j.id);
    match (method, rest) {
        ("GET", []) => {
            let mut body = json!({
                "state": j.state.name(), "owner": j.owner, "start-time": "2026-11-30T08:00:00Z",
                "keepalive-ref": format!("{url}/keepalive"), "machine-ref": format!("{url}/machine"),
                "power-ref": format!("{url}/machine/power"), "chip-ref": format!("{url}/chip"),
                "original-request": j.request,
            });
            if j.state == RestJobState::Destroyed {
                body["reason"] = json!(j.reason);
                body["finish-time"] = json!("2026-11-30T09:00:00Z");
            } else {
                body["keepalive-host"] = json!("127.0.0.1");
            }
            Response::json(200, &body)
        }
        ("GET", ["machine"]) => match &j.machine {
            None => Response::empty(204),
            Some((m, boards)) => Response::json(
                200,
                &json!({
                    "machine-name": m, "machine-ref": format!("{api}machines/{m}"),
                    "boards": boards.iter().map(RestBoard::to_json).collect::<Vec<_>>(),
                    "connections": boards.iter().map(|b| json!([[0, 0], b.address])).collect::<Vec<_>>(),
                    "width": 8, "height": 8,
                }),
            ),
        },
        ("PUT", ["keepalive"]) => {
            *keepalives += 1;
            Response { status: 200, headers: vec![("Content-Type".into(), "text/plain".into())], body: b"ok".to_vec() }
        }
        ("DELETE", []) => {
            j.state = RestJobState::Destroyed;
            j.machine = None;
            j.reason = req.query.get("reason").cloned();
            Response::empty(204)
        }
        _ => Response::empty(404),
    }
}

fn new_session(s: &mut State, user: Option<String>) -> (String, String) {
    s.session_counter += 1;
    let n = s.session_counter;
    let salt = std::process::id();
    let id = format!("{:016X}{n:08X}", u64::from(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
    let token = format!("{:08x}-csrf-{n:04x}-{:08x}", salt.rotate_left(7) ^ n as u32, n.wrapping_mul(2_654_435_761));
    s.sessions.insert(id.clone(), (token.clone(), user));
    (id, token)
}

fn cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path={CONTEXT}; Secure; HttpOnly")
}
