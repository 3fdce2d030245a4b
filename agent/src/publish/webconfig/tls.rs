//! `tls_server_config`: a rustls `ServerConfig` built from the web config, rebuilt when the certificate,
//! key or client CA files change.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, Error as TlsError, InconsistentKeys, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};

use super::{RawTls, WebConfigError};

/// Largest certificate, key or CA bundle file read (a system CA bundle is about 250 KiB).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// exporter-toolkit's `client_auth_type`, with Go's `crypto/tls` meaning of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// One is asked for, but the client may send none, and one it sends is not verified.
    RequestClientCert,
    /// One must be sent, but it is not verified against any CA.
    RequireAnyClientCert,
    /// The client may send none; one it sends must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// One must be sent, and it must chain to `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &[(&str, ClientAuth)] = &[
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        // exporter-toolkit still accepts this older spelling.
        ("RequireClientCert", ClientAuth::RequireAnyClientCert),
        ("VerifyClientCertIfGiven", ClientAuth::VerifyClientCertIfGiven),
        ("RequireAndVerifyClientCert", ClientAuth::RequireAndVerifyClientCert),
    ];

    fn parse(s: &str) -> Option<ClientAuth> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    fn verifies(self) -> bool {
        matches!(self, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
    }
}

/// A PEM input: a file (re-read when it changes) or a string inline in the web config.
#[derive(Debug, Clone)]
enum Pem {
    File { key: &'static str, path: PathBuf },
    Inline { key: &'static str, text: String },
}

impl Pem {
    /// The key in the web config, for error messages.
    fn key(&self) -> String {
        match self {
            Pem::File { key, .. } | Pem::Inline { key, .. } => format!("tls_server_config.{key}"),
        }
    }

    fn what(&self) -> String {
        match self {
            Pem::File { path, .. } => path.display().to_string(),
            Pem::Inline { .. } => "inline PEM".to_owned(),
        }
    }

    fn read(&self, web_config: &Path) -> Result<Vec<u8>, WebConfigError> {
        match self {
            // Certificates are a few KiB; a FIFO or a device at the path must not hang startup.
            Pem::File { path, .. } => config::file::read_bounded(path, MAX_PEM_BYTES).map_err(|error| {
                WebConfigError::ReadFile { path: web_config.to_owned(), key: self.key(), file: path.clone(), error }
            }),
            Pem::Inline { text, .. } => Ok(text.as_bytes().to_vec()),
        }
    }

    fn bad(&self, web_config: &Path, message: impl Into<String>) -> WebConfigError {
        WebConfigError::BadPem {
            path: web_config.to_owned(),
            key: self.key(),
            what: self.what(),
            message: message.into(),
        }
    }

    fn certs(&self, web_config: &Path) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
        let bytes = self.read(web_config)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.bad(web_config, format!("not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(self.bad(web_config, "no CERTIFICATE block found"));
        }
        Ok(certs)
    }

    fn private_key(&self, web_config: &Path) -> Result<PrivateKeyDer<'static>, WebConfigError> {
        let bytes = self.read(web_config)?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                self.bad(web_config, "no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1) found")
            }
            e => self.bad(web_config, format!("not valid PEM: {e}")),
        })
    }

    fn stamp(&self) -> Option<Stamp> {
        match self {
            Pem::File { path, .. } => std::fs::metadata(path).ok().map(|m| Stamp {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            }),
            Pem::Inline { .. } => None,
        }
    }
}

/// What identifies one version of a file cheaply: a rotation by rename changes the inode, one in place
/// changes mtime and ctime; Kubernetes' symlink swap is followed by `metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The state of the files as last seen, guarded by one lock so that only one connection re-reads them.
#[derive(Debug, Default)]
struct Seen {
    loaded: Vec<Option<Stamp>>,
    /// Files that failed to build a config; not retried (nor warned about again) until they change.
    failed: Option<Vec<Option<Stamp>>>,
}

/// What the files say: what `Tls` rebuilds its `ServerConfig` from.
struct Settings {
    web_config: PathBuf,
    cert: Pem,
    key: Pem,
    client_ca: Option<Pem>,
    client_auth: ClientAuth,
    versions: Vec<&'static SupportedProtocolVersion>,
    provider: Arc<CryptoProvider>,
}

/// A built config and the certificate it serves.
struct Loaded {
    config: Arc<ServerConfig>,
    /// For tests that check what is served after a rotation.
    #[cfg(test)]
    leaf: CertificateDer<'static>,
}

/// The TLS side of a web config: settings, and the `ServerConfig` built from their files' current contents.
pub struct Tls {
    settings: Settings,
    current: ArcSwap<Loaded>,
    seen: Arc<tokio::sync::Mutex<Seen>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: an inline key must not end up in a log line.
        f.debug_struct("Tls")
            .field("cert", &self.settings.cert.what())
            .field("client_auth", &self.settings.client_auth)
            .field("versions", &self.settings.versions)
            .finish_non_exhaustive()
    }
}

/// Validates `tls_server_config` and builds the first `ServerConfig`; `None` when the section sets nothing
/// (exporter-toolkit then serves plain HTTP).
pub(super) fn from_raw(
    path: &Path,
    base: &Path,
    raw: RawTls,
    notes: &mut Vec<String>,
) -> Result<Option<Tls>, WebConfigError> {
    // Stricter than exporter-toolkit, which serves plain HTTP when no certificate is set whatever else
    // the section says: a section with only `min_version` was surely meant to turn TLS on.
    if sets_nothing(&raw) {
        return Ok(None);
    }
    let set = |s: Option<String>| s.filter(|s| !s.is_empty());
    let (cert_file, key_file, cert, key) = (set(raw.cert_file), set(raw.key_file), set(raw.cert), set(raw.key));
    let (ca_file, ca, auth_type) = (set(raw.client_ca_file), set(raw.client_ca), set(raw.client_auth_type));
    let invalid = |key: &str, msg: &str| WebConfigError::invalid(path, format!("tls_server_config.{key}"), msg);
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() { p.to_owned() } else { base.join(p) }
    };
    let pem = |file: Option<String>, inline: Option<String>, file_key, inline_key| match (file, inline) {
        (Some(_), Some(_)) => Err(invalid(file_key, &format!("set either {file_key} or {inline_key}, not both"))),
        (Some(f), None) => Ok(Some(Pem::File { key: file_key, path: resolve(&f) })),
        (None, Some(text)) => Ok(Some(Pem::Inline { key: inline_key, text })),
        (None, None) => Ok(None),
    };
    let cert = pem(cert_file, cert, "cert_file", "cert")?
        .ok_or_else(|| invalid("cert_file", "missing: set cert_file (or cert) to the server certificate"))?;
    let key = pem(key_file, key, "key_file", "key")?
        .ok_or_else(|| invalid("key_file", "missing: set key_file (or key) to the server's private key"))?;
    let client_ca = pem(ca_file, ca, "client_ca_file", "client_ca")?;

    let client_auth = client_auth(auth_type.as_deref(), client_ca.is_some()).map_err(|(k, m)| invalid(k, &m))?;
    if raw.client_allowed_sans.is_some_and(|s| !s.is_empty()) {
        return Err(invalid(
            "client_allowed_sans",
            "is not supported by accel-agent; issue client certificates from a dedicated CA instead",
        ));
    }
    if raw.prefer_server_cipher_suites.is_some() {
        notes.push("tls_server_config.prefer_server_cipher_suites is ignored (as by Go since 1.17)".to_owned());
    }

    let versions =
        versions(raw.min_version.as_deref(), raw.max_version.as_deref(), notes).map_err(|(k, m)| invalid(k, &m))?;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = raw.cipher_suites.filter(|n| !n.is_empty()) {
        provider.cipher_suites =
            cipher_suites(&provider, &names).map_err(|e| invalid("cipher_suites", &e.to_string()))?;
    }
    if let Some(names) = raw.curve_preferences.filter(|n| !n.is_empty()) {
        provider.kx_groups = curves(&provider, &names).map_err(|e| invalid("curve_preferences", &e.to_string()))?;
    }

    let settings = Settings {
        web_config: path.to_owned(),
        cert,
        key,
        client_ca,
        client_auth,
        versions,
        provider: Arc::new(provider),
    };
    let stamps = settings.stamps();
    let loaded = settings.build()?;
    Ok(Some(Tls {
        settings,
        current: ArcSwap::from_pointee(loaded),
        seen: Arc::new(tokio::sync::Mutex::new(Seen { loaded: stamps, failed: None })),
    }))
}

/// Whether the section sets nothing at all (an empty string or list counts as unset).
fn sets_nothing(raw: &RawTls) -> bool {
    let unset = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
    let none = |v: &Option<Vec<String>>| v.as_ref().is_none_or(Vec::is_empty);
    [&raw.cert_file, &raw.key_file, &raw.cert, &raw.key, &raw.client_ca_file, &raw.client_ca]
        .into_iter()
        .chain([&raw.client_auth_type, &raw.min_version, &raw.max_version])
        .all(unset)
        && [&raw.cipher_suites, &raw.curve_preferences, &raw.client_allowed_sans].into_iter().all(none)
        && raw.prefer_server_cipher_suites.is_none()
}

/// `client_auth_type`, checked against whether a client CA is set: a CA that would never be used, or a
/// verifying mode without one, is an error (the key to name, and why).
fn client_auth(auth_type: Option<&str>, has_ca: bool) -> Result<ClientAuth, (&'static str, String)> {
    let client_auth = match auth_type {
        None => ClientAuth::NoClientCert,
        Some(s) => ClientAuth::parse(s).ok_or_else(|| {
            let names: Vec<&str> = ClientAuth::NAMES.iter().map(|(n, _)| *n).collect();
            ("client_auth_type", format!("{s:?} is not one of {}", names.join(", ")))
        })?,
    };
    if has_ca && client_auth == ClientAuth::NoClientCert {
        return Err((
            "client_auth_type",
            "client_ca_file is set but client_auth_type is NoClientCert, so it would never be used; \
             set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
                .to_owned(),
        ));
    }
    if !has_ca && client_auth.verifies() {
        return Err((
            "client_ca_file",
            format!("client_auth_type {client_auth:?} verifies client certificates, which needs client_ca_file"),
        ));
    }
    Ok(client_auth)
}

/// The protocol versions from `min_version`/`max_version` (TLS10..TLS13; rustls has 1.2 and 1.3 only).
pub(super) fn versions(
    min: Option<&str>,
    max: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Vec<&'static SupportedProtocolVersion>, (&'static str, String)> {
    let rank = |key: &'static str, v: &str| match v {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err((key, format!("{other:?} is not one of TLS10, TLS11, TLS12, TLS13"))),
    };
    let min = min.filter(|s| !s.is_empty()).map(|v| rank("min_version", v)).transpose()?.unwrap_or(12);
    let max = max.filter(|s| !s.is_empty()).map(|v| rank("max_version", v)).transpose()?.unwrap_or(13);
    if max < 12 {
        return Err(("max_version", "TLS 1.0 and 1.1 are not supported; the lowest is TLS12".to_owned()));
    }
    if min > max {
        return Err(("min_version", "is above max_version".to_owned()));
    }
    if min < 12 {
        notes.push(format!(
            "tls_server_config.min_version TLS{min} is raised to TLS12: older versions are not supported"
        ));
    }
    let mut out = Vec::new();
    if min <= 13 && max >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// A cipher suite or curve name that rustls does not offer, with those it does (Go's names).
#[derive(Debug, thiserror::Error)]
#[error("{name:?} is unknown or not supported; supported: {}", supported.join(", "))]
struct Unsupported {
    name: String,
    supported: Vec<String>,
}

/// Restricts the TLS 1.2 suites to those named (Go's names); as in Go, TLS 1.3 suites are not configurable.
fn cipher_suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, Unsupported> {
    let tls13 = provider.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS13);
    let tls12: Vec<_> = provider.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS12).collect();
    let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
    for name in names {
        // Go also knows the ChaCha20 suites without the hash in their names.
        let full = if name.ends_with("_POLY1305") { format!("{name}_SHA256") } else { name.clone() };
        // Go's name of a TLS 1.3 suite is accepted and, as in Go, has no effect.
        let is_tls13 = tls13.clone().any(|s| format!("{:?}", s.suite()).replacen("TLS13_", "TLS_", 1) == full);
        match tls12.iter().find(|s| format!("{:?}", s.suite()) == full) {
            Some(s) => chosen.push(**s),
            None if is_tls13 => {}
            None => {
                let supported = tls12.iter().map(|s| format!("{:?}", s.suite())).collect();
                return Err(Unsupported { name: name.clone(), supported });
            }
        }
    }
    chosen.extend(tls13.copied());
    Ok(chosen)
}

/// The key exchange groups from Go's curve names, in the order given.
fn curves(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, Unsupported> {
    names
        .iter()
        .map(|name| {
            let group = match name.as_str() {
                "X25519" => Some(rustls::NamedGroup::X25519),
                "CurveP256" => Some(rustls::NamedGroup::secp256r1),
                "CurveP384" => Some(rustls::NamedGroup::secp384r1),
                _ => None,
            };
            group.and_then(|g| provider.kx_groups.iter().find(|k| k.name() == g).copied()).ok_or_else(|| Unsupported {
                name: name.clone(),
                supported: ["X25519", "CurveP256", "CurveP384"].map(str::to_owned).to_vec(),
            })
        })
        .collect()
}

impl Tls {
    pub fn client_auth(&self) -> ClientAuth {
        self.settings.client_auth
    }

    /// The config for the next handshake, re-reading the files first if they changed since last seen.
    pub async fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        // One connection re-checks at a time; the others meanwhile use the config in force, so a
        // certificate on hung storage delays one handshake rather than piling up blocked threads.
        if let Ok(mut seen) = Arc::clone(&self.seen).try_lock_owned() {
            let this = Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || this.refresh(&mut seen)).await;
        }
        Arc::clone(&self.current.load().config)
    }

    /// The end-entity certificate currently served.
    #[cfg(test)]
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.current.load().leaf.clone()
    }

    /// Rebuilds the config if the files changed; returns whether it did. On failure the previous config
    /// stays in force (a rotation writes the certificate and the key one after the other).
    fn refresh(&self, seen: &mut Seen) -> bool {
        let now = self.settings.stamps();
        if now == seen.loaded || seen.failed.as_ref() == Some(&now) {
            return false;
        }
        match self.settings.build() {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                seen.loaded = now;
                seen.failed = None;
                tracing::info!(cert = %self.settings.cert.what(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!("keeping the previous TLS certificate: {e}");
                seen.failed = Some(now);
                false
            }
        }
    }

    /// The synchronous core of [`Tls::server_config`], for callers without a runtime.
    #[cfg(test)]
    pub fn refresh_blocking(&self) -> bool {
        let mut seen = self.seen.blocking_lock();
        self.refresh(&mut seen)
    }
}

impl Settings {
    fn stamps(&self) -> Vec<Option<Stamp>> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()].into_iter().flatten().map(Pem::stamp).collect()
    }

    /// Reads the files and builds a `ServerConfig`, checking everything rustls would otherwise only
    /// notice at the first handshake.
    fn build(&self) -> Result<Loaded, WebConfigError> {
        let path = &self.web_config;
        let certs = self.cert.certs(path)?;
        #[cfg(test)]
        let leaf = certs[0].clone();
        let key = self.key.private_key(path)?;
        let verifier: Arc<dyn ClientCertVerifier> = match self.client_auth {
            ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => Arc::new(AnyClientCert {
                mandatory: self.client_auth == ClientAuth::RequireAnyClientCert,
                algorithms: self.provider.signature_verification_algorithms,
            }),
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
                let ca = self
                    .client_ca
                    .as_ref()
                    .ok_or_else(|| WebConfigError::invalid(path, "tls_server_config.client_ca_file", "missing"))?;
                let mut roots = RootCertStore::empty();
                for cert in ca.certs(path)? {
                    roots.add(cert).map_err(|e| ca.bad(path, format!("not a usable CA certificate: {e}")))?;
                }
                let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider));
                let builder = if self.client_auth == ClientAuth::VerifyClientCertIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder.build().map_err(|e| ca.bad(path, e.to_string()))?
            }
        };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&self.versions)
            .map_err(|e| WebConfigError::invalid(path, "tls_server_config", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| match e {
                TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch) => self
                    .key
                    .bad(path, format!("this private key does not belong to the certificate in {}", self.cert.what())),
                e => self.key.bad(path, format!("cannot use this key with the certificate: {e}")),
            })?;
        // As Go's server does with HTTP/2 off; clients that offer ALPN then know what they get.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Loaded {
            config: Arc::new(config),
            #[cfg(test)]
            leaf,
        })
    }
}

/// RequestClientCert and RequireAnyClientCert: Go checks neither the chain nor the names of such a
/// certificate, only (in the handshake) that the client holds its key; so does this.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
