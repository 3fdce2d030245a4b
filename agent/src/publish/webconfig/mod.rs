//! `--web-config FILE`: TLS and basic auth for the HTTP endpoint, in the YAML format of Prometheus'
//! exporter-toolkit, so a fleet can hand the same web config to node_exporter and accel-agent.
//!
//! As in exporter-toolkit the file is strict (an unknown key is an error, not a silently open endpoint),
//! and relative paths in it are relative to the file's own directory. The certificate, key and client CA
//! files are checked for changes at each TLS handshake and re-read when they changed, so a rotated
//! certificate is served without a restart; everything else is read once at startup.

mod auth;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

#[cfg(test)]
use auth::cache_key;
pub use auth::{BasicAuth, Verdict};
#[cfg(test)]
use tls::ClientAuth;
pub use tls::Tls;

/// The web config in force: plain HTTP with no auth unless the file asks for more.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// Where it was read from, for log lines; `None` without `--web-config`.
    pub path: Option<PathBuf>,
    pub tls: Option<Arc<Tls>>,
    pub auth: Option<Arc<BasicAuth>>,
    /// Added to every response, including 401s.
    pub headers: HeaderMap,
    /// Things accepted but not acted on, worth one log line at startup.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config {}: cannot read it: {}", path.display(), error.reason())]
    Read { path: PathBuf, error: config::file::ReadError },
    /// YAML syntax, a wrong type or an unknown key; serde_yaml's message names the key and its position.
    #[error("web config {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("web config {}: {key}: {message}", path.display())]
    Invalid { path: PathBuf, key: String, message: String },
    #[error("web config {}: {key}: cannot read {}: {}", path.display(), file.display(), error.reason())]
    ReadFile { path: PathBuf, key: String, file: PathBuf, error: config::file::ReadError },
    /// A certificate, key or CA that was read but is unusable; `what` is the file or "inline PEM".
    #[error("web config {}: {key}: {what}: {message}", path.display())]
    BadPem { path: PathBuf, key: String, what: String, message: String },
}

impl WebConfigError {
    fn invalid(path: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        WebConfigError::Invalid { path: path.to_owned(), key: key.into(), message: message.into() }
    }
}

// The raw file, key for key as exporter-toolkit's `web.Config` (web/tls_config.go), so that a file that
// exporter-toolkit accepts parses here too, and one it rejects for an unknown key is rejected here too.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Known to exporter-toolkit; refused with a message rather than as an unknown key.
    rate_limit: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The response headers exporter-toolkit lets a web config set (as written there, and in the lowercase
/// that `HeaderName::from_static` wants), with the values it allows (`None`: any).
const SETTABLE_HEADERS: &[(&str, &str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", "strict-transport-security", None),
    ("X-Content-Type-Options", "x-content-type-options", Some(&["nosniff"])),
    ("X-Frame-Options", "x-frame-options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", "x-xss-protection", None),
    ("Content-Security-Policy", "content-security-policy", None),
];

impl WebConfig {
    /// Reads and validates a web config file, including the certificate, key and CA it names and every
    /// bcrypt hash, so that every mistake is reported at startup rather than at the first scrape.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = config::file::read_text_bounded(path, config::file::MAX_CONFIG_BYTES)
            .map_err(|error| WebConfigError::Read { path: path.to_owned(), error })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the web config at `path` (relative paths in it are taken from `path`'s directory).
    pub fn parse(path: &Path, text: &str) -> Result<WebConfig, WebConfigError> {
        // An empty file (or one of comments only) is a valid, empty config to exporter-toolkit.
        let raw: RawWebConfig = serde_yaml_ng::from_str::<Option<RawWebConfig>>(text)
            .map_err(|e| WebConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?
            .unwrap_or_default();
        if raw.rate_limit.is_some() {
            return Err(WebConfigError::invalid(
                path,
                "rate_limit",
                "is not supported by accel-agent; remove it (failed logins are already bounded by bcrypt's cost)",
            ));
        }
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut notes = Vec::new();
        let tls = match raw.tls_server_config {
            Some(t) => tls::from_raw(path, &base, t, &mut notes)?.map(Arc::new),
            None => None,
        };
        let mut headers = HeaderMap::new();
        if let Some(http) = raw.http_server_config {
            if http.http2 == Some(true) {
                notes.push("http_server_config.http2 is ignored: accel-agent serves HTTP/1.1 only".to_owned());
            }
            for (name, value) in http.headers.unwrap_or_default() {
                let (hname, hvalue) = header(path, &name, &value)?;
                headers.insert(hname, hvalue);
            }
        }
        let users = raw.basic_auth_users.unwrap_or_default();
        // exporter-toolkit: no users, no auth.
        let auth = if users.is_empty() { None } else { Some(Arc::new(BasicAuth::new(path, users)?)) };
        Ok(WebConfig { path: Some(path.to_owned()), tls, auth, headers, notes })
    }

    /// One line for the startup log.
    pub fn describe(&self) -> String {
        let mut parts = vec![if self.tls.is_some() { "HTTPS" } else { "plain HTTP" }.to_owned()];
        if let Some(t) = &self.tls {
            parts.push(format!("client certificates: {:?}", t.client_auth()));
        }
        if let Some(a) = &self.auth {
            parts.push(format!("basic auth for {} user(s)", a.user_count()));
        }
        parts.join(", ")
    }
}

fn header(path: &Path, name: &str, value: &str) -> Result<(HeaderName, HeaderValue), WebConfigError> {
    let key = format!("http_server_config.headers.{name}");
    let Some((_, lowercase, allowed)) = SETTABLE_HEADERS.iter().find(|(h, _, _)| h.eq_ignore_ascii_case(name)) else {
        let names: Vec<&str> = SETTABLE_HEADERS.iter().map(|(h, _, _)| *h).collect();
        return Err(WebConfigError::invalid(
            path,
            key,
            format!("this header cannot be configured; allowed: {}", names.join(", ")),
        ));
    };
    if let Some(allowed) = allowed
        && !allowed.contains(&value)
    {
        return Err(WebConfigError::invalid(path, key, format!("{value:?} is not one of {}", allowed.join(", "))));
    }
    let hvalue = HeaderValue::from_str(value)
        .map_err(|_| WebConfigError::invalid(path, &key, format!("{value:?} is not a valid header value")))?;
    Ok((HeaderName::from_static(lowercase), hvalue))
}

#[cfg(test)]
mod tests;
