//! A read-only client of the Java spalloc service's REST API (SpiNNaker-allocserv in
//! SpiNNakerManchester/JavaSpiNNaker), for monitoring: the machines with their dead boards and links, and
//! the live jobs with their state and machine. It logs in as SpiNNMan's `spinnman/spalloc/session.py`
//! does (the form with its `_csrf` field and the `JSESSIONID` cookie, or a bearer token), reads
//! `GET srv/spalloc/` (`machines-ref`, `jobs-ref`, the CSRF header and token), `GET machines`
//! (`MachinesResponse`), `GET jobs?deleted=false` page by page (`ListJobsResponse`), each job
//! (`JobStateResponse`) and `jobs/{id}/machine` (`JobMachineInfo`; 204 while it has no boards). It never
//! creates a job or sends a keepalive, so it keeps nothing alive.
//!
//! HTTPS only, verified against a CA file; one request per connection (`Connection: close`), sent with
//! hyper's client (the crate's http module) and the session's cookies kept in a small jar. The password,
//! token or session cookie never appears in an error, a `Debug` or a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::cookies::{self, CookieJar};
use super::spalloc::JobState;
use crate::http::{self, Reply};

/// How the monitor logs in. The secret is redacted from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum RestAuth {
    Password { username: String, password: String },
    Token(String),
}

impl RestAuth {
    /// The first non-empty line of a credentials file or variable: "Bearer TOKEN" or "username:password"
    /// (split at the first colon). None for anything else; the caller says where, never what.
    pub fn parse(text: &str) -> Option<RestAuth> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        if let Some(token) = line.strip_prefix("Bearer ") {
            let token = token.trim();
            return (!token.is_empty()).then(|| RestAuth::Token(token.to_owned()));
        }
        let (username, password) = line.split_once(':')?;
        (!username.is_empty() && !password.is_empty())
            .then(|| RestAuth::Password { username: username.to_owned(), password: password.to_owned() })
    }
}

impl std::fmt::Debug for RestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestAuth::Password { username, .. } => {
                write!(f, "Password {{ username: {username:?}, password: <redacted> }}")
            }
            RestAuth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestOptions {
    /// The CA certificates (PEM) the service's certificate must chain to.
    pub ca_file: PathBuf,
    /// Connect, TLS handshake and one request, together.
    pub request_timeout: Duration,
    /// Longest response accepted.
    pub max_body: usize,
}

impl Default for RestOptions {
    fn default() -> RestOptions {
        RestOptions {
            ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            request_timeout: Duration::from_secs(10),
            max_body: 8 << 20,
        }
    }
}

/// Why a call failed; every variant names the service (never a credential).
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("spalloc {0:?}: not an https:// URL")]
    Url(String),
    #[error("spalloc {service}: CA file {path}: {reason}")]
    Ca { service: String, path: PathBuf, reason: CaError },
    #[error("spalloc {service}: {url}: {reason}")]
    Http { service: String, url: String, reason: String },
    #[error("spalloc {service}: {url}: HTTP {status}")]
    Status { service: String, url: String, status: u16 },
    #[error("spalloc {service}: login refused ({how})")]
    Login { service: String, how: &'static str },
    #[error("spalloc {service}: {url}: malformed reply: {reason}")]
    Malformed { service: String, url: String, reason: String },
}

/// A board as `dead-boards` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RestBoard {
    pub x: u32,
    pub y: u32,
    pub z: u32,
    #[serde(default)]
    pub cabinet: Option<u32>,
    #[serde(default)]
    pub frame: Option<u32>,
    #[serde(default)]
    pub board: Option<u32>,
    #[serde(default)]
    pub address: Option<String>,
}

/// A machine as `GET machines` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RestMachine {
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub dead_boards: Vec<RestBoard>,
    #[serde(default)]
    pub dead_links: Vec<Value>,
}

/// A live job: its state, and where it counts.
#[derive(Debug, Clone, PartialEq)]
pub struct RestJob {
    pub url: String,
    pub state: JobState,
    pub owner: Option<String>,
    /// The machine its boards are on (from `jobs/{id}/machine`); None while it has none.
    pub machine: Option<String>,
    /// What it asked for (`original-request`): a machine by name, or tags.
    pub requested_machine: Option<String>,
    pub requested_tags: Option<Vec<String>>,
}

impl RestJob {
    /// The machines it counts under: its machine, or while it has none the one its request named, or
    /// every machine carrying all the tags it asked for (`["default"]` when it gave neither, as
    /// SpiNNMan's client sends).
    pub fn machines<'a>(&'a self, machines: &'a [RestMachine]) -> Vec<&'a str> {
        if let Some(m) = self.machine.as_deref().or(self.requested_machine.as_deref()) {
            return vec![m];
        }
        let default = vec!["default".to_owned()];
        let tags = self.requested_tags.as_ref().unwrap_or(&default);
        machines.iter().filter(|m| tags.iter().all(|t| m.tags.contains(t))).map(|m| m.name.as_str()).collect()
    }
}

fn job_state(name: &str) -> JobState {
    match name {
        "QUEUED" => JobState::Queued,
        "POWER" => JobState::Power,
        "READY" => JobState::Ready,
        "DESTROYED" => JobState::Destroyed,
        _ => JobState::Unknown,
    }
}

/// `https://host[:port]/path/`, split.
#[derive(Debug, Clone)]
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Option<Url> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 443),
    };
    (!host.is_empty()).then(|| Url { host: host.trim_matches(['[', ']']).to_owned(), port, path })
}

/// The logged-in session: the service's links (its cookies are in the client's jar).
#[derive(Clone)]
struct Session {
    machines_ref: String,
    jobs_ref: String,
}

/// A monitor of one Java spalloc service.
pub struct SpallocRestClient {
    service: String,
    url: Url,
    auth: RestAuth,
    options: RestOptions,
    tls: Option<TlsConnector>,
    session: Option<Session>,
    jar: CookieJar,
    version: Option<String>,
}

impl std::fmt::Debug for SpallocRestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpallocRestClient").field("service", &self.service).field("auth", &self.auth).finish()
    }
}

impl SpallocRestClient {
    /// `service` is the service's URL, e.g. `https://spalloc.example.org/spalloc/`; nothing is read or
    /// connected until the first call.
    pub fn new(service: &str, auth: RestAuth, options: RestOptions) -> Result<SpallocRestClient, RestError> {
        let mut url = parse_url(service).ok_or_else(|| RestError::Url(service.to_owned()))?;
        if !url.path.ends_with('/') {
            url.path.push('/');
        }
        Ok(SpallocRestClient {
            service: service.to_owned(),
            url,
            auth,
            options,
            tls: None,
            session: None,
            jar: CookieJar::default(),
            version: None,
        })
    }

    /// The service's version as its root reports it, once logged in.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    fn connector(&mut self) -> Result<TlsConnector, RestError> {
        if let Some(c) = &self.tls {
            return Ok(c.clone());
        }
        let c = connector(&self.options.ca_file).map_err(|reason| RestError::Ca {
            service: self.service.clone(),
            path: self.options.ca_file.clone(),
            reason,
        })?;
        self.tls = Some(c.clone());
        Ok(c)
    }

    fn http_err(&self, url: &str, reason: impl Into<String>) -> RestError {
        RestError::Http { service: self.service.clone(), url: url.to_owned(), reason: reason.into() }
    }

    /// One request on its own connection, with the jar's cookies (and the bearer token, where that is
    /// how we log in); cookies the reply sets go into the jar.
    async fn request(
        &mut self,
        method: Method,
        url: &str,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    ) -> Result<Reply, RestError> {
        let target = parse_url(url).ok_or_else(|| self.http_err(url, "not an https:// URL"))?;
        if (target.host.as_str(), target.port) != (self.url.host.as_str(), self.url.port) {
            // The service's links point back at itself; anything else is not followed with our cookie.
            return Err(self.http_err(url, "points away from the service"));
        }
        let connector = self.connector()?;
        let name = ServerName::try_from(target.host.clone()).map_err(|e| self.http_err(url, e.to_string()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(target.path.as_str())
            .header(header::HOST, format!("{}:{}", target.host, target.port))
            .header(header::CONNECTION, "close")
            .header(header::ACCEPT, "application/json, text/html")
            .header(header::USER_AGENT, "accel-agent");
        if let Some(cookies) = self.jar.header() {
            request = request.header(header::COOKIE, cookies);
        }
        if let RestAuth::Token(t) = &self.auth {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(c) = content_type {
            request = request.header(header::CONTENT_TYPE, c);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| self.http_err(url, e.to_string()))?;
        let max = self.options.max_body;
        let exchange = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|e| e.to_string())?;
            let tls = connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
            http::exchange(tls, request, max).await.map_err(|e| e.to_string())
        };
        let reply = match timeout(self.options.request_timeout, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(reason)) => return Err(self.http_err(url, reason)),
            Err(_) => return Err(self.http_err(url, format!("no answer within {:?}", self.options.request_timeout))),
        };
        self.jar.store(&reply);
        Ok(reply)
    }

    fn page(&self, rel: &str) -> String {
        format!("https://{}:{}{}{rel}", self.url.host, self.url.port, self.url.path)
    }

    /// Logs in with a fresh jar and reads the service's root.
    async fn login(&mut self) -> Result<Session, RestError> {
        self.jar.clear();
        let form_url = self.page("system/login.html");
        match self.auth.clone() {
            RestAuth::Token(_) => {
                // The token goes with every request; this GET gives the session its cookie.
                let r = self.request(Method::GET, &form_url, None, Vec::new()).await?;
                if r.status.as_u16() >= 400 {
                    return Err(RestError::Login { service: self.service.clone(), how: "bearer token" });
                }
            }
            RestAuth::Password { username, password } => self.submit_form(&form_url, &username, &password).await?,
        }
        let root_url = self.page("srv/spalloc/");
        let root: Value = self.get_json(&root_url).await?.ok_or_else(|| self.malformed(&root_url, "no content"))?;
        let text = |k: &str| root.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(machines_ref), Some(jobs_ref)) = (text("machines-ref"), text("jobs-ref")) else {
            return Err(self.malformed(&root_url, "no machines-ref or jobs-ref"));
        };
        let v = &root["version"];
        self.version = match (v["major-version"].as_u64(), v["minor-version"].as_u64(), v["revision"].as_u64()) {
            (Some(a), Some(b), Some(c)) => Some(format!("{a}.{b}.{c}")),
            _ => v.as_str().map(str::to_owned),
        };
        Ok(Session { machines_ref, jobs_ref })
    }

    /// The login form: its anonymous session cookie and `_csrf` field, then the form sent back with the
    /// credentials. A new session cookie and no redirect to the error page is a login.
    async fn submit_form(&mut self, form_url: &str, username: &str, password: &str) -> Result<(), RestError> {
        let r = self.request(Method::GET, form_url, None, Vec::new()).await?;
        let csrf = csrf_field(&String::from_utf8_lossy(&r.body));
        let (Some(_), Some(csrf)) = (self.jar.get(cookies::SESSION), csrf) else {
            return Err(self.malformed(form_url, "no session cookie or _csrf field on the login form"));
        };
        let body = format!(
            "_csrf={}&username={}&password={}&submit=submit",
            form_escape(&csrf),
            form_escape(username),
            form_escape(password)
        );
        let submit = self.page("system/perform_login");
        let form = Some("application/x-www-form-urlencoded");
        let r = self.request(Method::POST, &submit, form, body.into_bytes()).await?;
        let to_error_page = r.header_values("location").any(|l| l.contains("error"));
        let new_session = r.header_values("set-cookie").any(|c| c.starts_with(&format!("{}=", cookies::SESSION)));
        if to_error_page || !new_session {
            return Err(RestError::Login { service: self.service.clone(), how: "username and password" });
        }
        Ok(())
    }

    fn malformed(&self, url: &str, reason: &str) -> RestError {
        RestError::Malformed { service: self.service.clone(), url: url.to_owned(), reason: reason.to_owned() }
    }

    /// GET with the jar's cookies; None for 204.
    async fn get_json(&mut self, url: &str) -> Result<Option<Value>, RestError> {
        let r = self.request(Method::GET, url, None, Vec::new()).await?;
        match r.status.as_u16() {
            204 => Ok(None),
            200 => serde_json::from_slice(&r.body).map(Some).map_err(|e| self.malformed(url, &e.to_string())),
            status => Err(RestError::Status { service: self.service.clone(), url: url.to_owned(), status }),
        }
    }

    /// GET in the session, logging in first or again (once) when the session has lapsed.
    async fn get(&mut self, url: &str) -> Result<Option<Value>, RestError> {
        self.session().await?;
        match self.get_json(url).await {
            Err(RestError::Status { status: 401, .. }) => {
                self.session = None;
                self.session().await?;
                self.get_json(url).await
            }
            other => other,
        }
    }

    async fn session(&mut self) -> Result<Session, RestError> {
        if self.session.is_none() {
            let s = self.login().await?;
            self.session = Some(s);
        }
        self.session.clone().ok_or_else(|| RestError::Login { service: self.service.clone(), how: "session" })
    }

    pub async fn list_machines(&mut self) -> Result<Vec<RestMachine>, RestError> {
        let url = self.session().await?.machines_ref;
        let v = self.get(&url).await?.ok_or_else(|| self.malformed(&url, "no content"))?;
        serde_json::from_value(v.get("machines").cloned().unwrap_or(Value::Null))
            .map_err(|e| self.malformed(&url, &e.to_string()))
    }

    /// Every live job (`deleted=false`, every page), each with its state and machine.
    pub async fn list_jobs(&mut self) -> Result<Vec<RestJob>, RestError> {
        let jobs_ref = self.session().await?.jobs_ref;
        let mut next = Some(format!("{jobs_ref}?deleted=false"));
        let mut urls = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(self.malformed(&url, "more than 10,000 pages of jobs"));
            }
            let page = self.get(&url).await?.ok_or_else(|| self.malformed(&url, "no content"))?;
            let listed =
                page.get("jobs").and_then(Value::as_array).ok_or_else(|| self.malformed(&url, "no jobs list"))?;
            urls.extend(listed.iter().filter_map(Value::as_str).map(str::to_owned));
            next = page.get("next").and_then(Value::as_str).filter(|_| !listed.is_empty()).map(str::to_owned);
        }
        let mut jobs = Vec::with_capacity(urls.len());
        for url in urls {
            let Some(state) = self.get(&url).await? else { continue };
            let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_owned);
            let request = state.get("original-request");
            let machine_url = text("machine-ref").unwrap_or_else(|| format!("{}/machine", url.trim_end_matches('/')));
            let job_state = job_state(state.get("state").and_then(Value::as_str).unwrap_or(""));
            let machine = match job_state {
                JobState::Power | JobState::Ready => self
                    .get(&machine_url)
                    .await?
                    .and_then(|m| m.get("machine-name").and_then(Value::as_str).map(str::to_owned)),
                _ => None,
            };
            jobs.push(RestJob {
                url,
                state: job_state,
                owner: text("owner"),
                machine,
                requested_machine: request
                    .and_then(|r| r.get("machine-name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                requested_tags: request
                    .and_then(|r| r.get("tags"))
                    .and_then(Value::as_array)
                    .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
            });
        }
        Ok(jobs)
    }
}

/// Why the CA file gave no TLS client configuration.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{0}")]
    Read(#[from] std::io::Error),
    #[error("{0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("no certificates in it")]
    Empty,
}

fn connector(ca_file: &Path) -> Result<TlsConnector, CaError> {
    let bytes = std::fs::read(ca_file)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        return Err(CaError::Empty);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The value of the login form's hidden `_csrf` input.
fn csrf_field(html: &str) -> Option<String> {
    let at = html.find("name=\"_csrf\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    Some(tag[v..v + tag[v..].find('"')?].to_owned())
}

/// application/x-www-form-urlencoded.
fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_forms_and_credentials() {
        let u = parse_url("https://spalloc.example.org/spalloc/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("spalloc.example.org", 443, "/spalloc/"));
        let u = parse_url("https://127.0.0.1:8443/spalloc").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8443, "/spalloc"));
        assert!(parse_url("http://x/").is_none());
        assert_eq!(form_escape("s3cret pass&=%"), "s3cret+pass%26%3D%25");
        let html = "<form><input type=\"hidden\" name=\"_csrf\" value=\"ab-12\" /></form>";
        assert_eq!(csrf_field(html).as_deref(), Some("ab-12"));
        assert_eq!(
            RestAuth::parse("\n  monitor:pa:ss word \n"),
            Some(RestAuth::Password { username: "monitor".into(), password: "pa:ss word".into() })
        );
        assert_eq!(RestAuth::parse("Bearer abc.def\n"), Some(RestAuth::Token("abc.def".into())));
        assert_eq!(RestAuth::parse("just-a-word"), None);
        assert_eq!(RestAuth::parse(":nouser"), None);
        let secret = RestAuth::Password { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{:?}", RestAuth::Token("tok".into())).contains("tok\""));
    }
}
