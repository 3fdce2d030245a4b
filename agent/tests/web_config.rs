//! `--web-config`: the real agent behind TLS and basic auth, spoken to by a rustls client (tokio-rustls)
//! and by curl (OpenSSL), with certificates made by rcgen for each test.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, BIN, Response};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

/// A CA, a server certificate for localhost signed by it, a client certificate signed by it, and a
/// self-signed client certificate it knows nothing of; all as files in one temp dir, beside which the
/// tests write web.yml.
struct Pki {
    dir: tempfile::TempDir,
    sysfs: FakeSysfs,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new().prefix("web-config-").tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.distinguished_name.push(DnType::CommonName, "accel test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let pki = Pki { dir, sysfs: FakeSysfs::new(), ca: Issuer::new(ca, ca_key) };
        pki.sysfs.hwmon(0, Some("board"), Some("devices/platform/board.0")).attr("temp1_input", "45000");
        pki.write("ca.crt", &ca_cert.pem());
        pki.issue("server", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, true);
        pki.issue("client", &[], ExtendedKeyUsagePurpose::ClientAuth, true);
        pki.issue("stranger", &[], ExtendedKeyUsagePurpose::ClientAuth, false);
        pki
    }

    /// Writes NAME.crt and NAME.key, signed by the CA or else self-signed; via rename, as a
    /// certificate manager would, so a reader never sees half a file.
    fn issue(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose, by_ca: bool) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = if by_ca {
            params.signed_by(&key, &self.ca).expect("sign")
        } else {
            params.self_signed(&key).expect("self-sign")
        };
        self.write(&format!("{name}.crt"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.path(name)).expect("rename");
    }

    /// Starts the agent with `yaml` as its web config.
    fn start(&self, yaml: &str) -> Agent {
        self.write("web.yml", yaml);
        let web = self.path("web.yml");
        Agent::start(&[
            "--sysfs-root",
            self.sysfs.root().to_str().expect("utf-8"),
            "--web-config",
            web.to_str().expect("utf-8"),
        ])
    }

    /// A rustls client that trusts our CA, offers `versions`, and presents NAME.crt if `cert` is given.
    fn client(&self, cert: Option<&str>, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.path("ca.crt")).expect("ca.crt") {
            roots.add(c.expect("CA PEM")).expect("CA");
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.crt")))
                    .expect("crt")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("PEM");
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).expect("key");
                builder.with_client_auth_cert(chain, key).expect("client cert")
            }
        };
        Arc::new(config)
    }

    fn default_client(&self) -> Arc<ClientConfig> {
        self.client(None, rustls::DEFAULT_VERSIONS)
    }

    fn web_yml(&self) -> String {
        self.path("web.yml").display().to_string()
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

/// What a TLS client got: the response and the server certificate it was shown.
struct TlsReply {
    response: Response,
    server_cert: Vec<u8>,
}

/// GET over TLS with tokio-rustls and the tests' shared request helper; `Err` says how it failed
/// (handshake, or the connection dropped before a response, which is how TLS 1.3 reports a refused client
/// certificate).
fn tls_get(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TlsReply, String> {
    let mut server_cert = Vec::new();
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("localhost").expect("name");
        let tls =
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
        server_cert =
            tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
        Ok(tls)
    };
    let request = common::request("GET", "localhost", path, headers, "");
    let response = common::send(connect, request, Duration::from_secs(10), Instant::now())?;
    Ok(TlsReply { response, server_cert })
}

/// What curl got: its exit code and, if it got a response, the status and body.
struct Curl {
    code: i32,
    status: u16,
    body: String,
    stderr: String,
}

fn curl(agent: &Agent, pki: &Pki, path: &str, args: &[&str]) -> Curl {
    let port = agent.addr.port();
    let body = pki.path("curl-body");
    let _ = std::fs::remove_file(&body);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(pki.path("ca.crt"))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(format!("https://localhost:{port}{path}"))
        .current_dir(pki.dir.path())
        .output()
        .expect("run curl");
    Curl {
        code: out.status.code().unwrap_or(-1),
        status: String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0),
        body: std::fs::read_to_string(&body).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// bcrypt at its lowest cost keeps the tests quick; the agent does not care which cost a hash has.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

#[test]
fn https_scrape_serves_metrics_and_plain_http_gets_told_to_use_https() {
    let pki = Pki::new();
    let agent = pki.start(&format!(
        "{TLS}http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    ));
    // The hwmon series exist once the first collection is done; a scrape before that is (rightly) without
    // them, and the test raced the agent under load.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tls_get(agent.addr, pki.default_client(), "/-/ready", &[]).map(|r| r.response.status).ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "the agent never became ready over HTTPS");
        std::thread::sleep(Duration::from_millis(20));
    }

    let reply = tls_get(agent.addr, pki.default_client(), "/metrics", &[]).expect("HTTPS scrape");
    assert_eq!(reply.response.status, 200);
    assert!(reply.response.body.contains("accel_build_info{"), "{}", reply.response.body);
    assert!(reply.response.body.contains("accel_hwmon_temp_celsius{chip=\"platform_board_0\""));
    assert_eq!(reply.response.headers.get("x-frame-options").map(String::as_str), Some("deny"));
    assert_eq!(reply.response.headers.get("x-content-type-options").map(String::as_str), Some("nosniff"));
    let served = CertificateDer::from_pem_file(pki.path("server.crt")).expect("server.crt");
    assert_eq!(reply.server_cert, served.to_vec());
    let health = tls_get(agent.addr, pki.default_client(), "/-/healthy", &[]).expect("HTTPS");
    assert_eq!((health.response.status, health.response.body.as_str()), (200, "OK\n"));

    // Plain HTTP to the TLS port gets no metrics, only the hint Go's servers give.
    let plain = common::http_get(agent.addr, "/metrics", &[], Duration::from_secs(5));
    assert_eq!(plain.status, 400);
    assert_eq!(plain.body, "Client sent an HTTP request to an HTTPS server.\n");

    // A client that does not trust the server's CA refuses it.
    let stranger_roots = {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(pki.path("stranger.crt")).expect("crt")).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions();
        Arc::new(builder.expect("versions").with_root_certificates(roots).with_no_client_auth())
    };
    let err = tls_get(agent.addr, stranger_roots, "/metrics", &[]).err().expect("untrusted server");
    assert!(err.starts_with("handshake:"), "{err}");
}

#[test]
fn basic_auth_guards_every_endpoint_over_https() {
    let pki = Pki::new();
    let agent = pki.start(&format!(
        "{TLS}http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\nbasic_auth_users:\n  prometheus: '{}'\n  grafana: '{}'\n",
        hash("scrape-me"),
        hash("dashboards")
    ));
    let client = pki.default_client();
    let right = basic("prometheus", "scrape-me");
    for path in [
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/",
        "/devices/loihi0",
        "/health",
        "/api/v1/status",
        "/api/v1/devices",
        "/api/v1/events",
        "/nope",
    ] {
        let anonymous = tls_get(agent.addr, client.clone(), path, &[]).expect("HTTPS").response;
        assert_eq!(anonymous.status, 401, "{path} without credentials");
        assert_eq!(anonymous.headers.get("www-authenticate").map(String::as_str), Some("Basic realm=\"accel-agent\""));
        assert_eq!(anonymous.headers.get("x-frame-options").map(String::as_str), Some("sameorigin"), "on 401 too");
        assert!(!anonymous.body.contains("accel_"), "{path}: {}", anonymous.body);

        let ok = tls_get(agent.addr, client.clone(), path, &[("Authorization", &right)]).expect("HTTPS").response;
        assert_ne!(ok.status, 401, "{path} with the right credentials");
    }
    for (user, password) in [("prometheus", "wrong"), ("nobody", "scrape-me"), ("grafana", "scrape-me"), ("", "")] {
        let r = tls_get(agent.addr, client.clone(), "/metrics", &[("Authorization", &basic(user, password))])
            .expect("HTTPS")
            .response;
        assert_eq!(r.status, 401, "{user}:{password}");
        assert!(r.headers.get("www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    }
    let r = tls_get(agent.addr, client.clone(), "/metrics", &[("Authorization", &right)]).expect("HTTPS").response;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("accel_build_info{"));
    let r = tls_get(agent.addr, client, "/metrics", &[("Authorization", &basic("grafana", "dashboards"))])
        .expect("HTTPS")
        .response;
    assert_eq!(r.status, 200);
}

#[test]
fn basic_auth_works_without_tls_too() {
    let pki = Pki::new();
    let agent = pki.start(&format!("basic_auth_users:\n  prometheus: '{}'\n", hash("pw")));
    let r = agent.get("/metrics");
    assert_eq!(r.status, 401);
    assert_eq!(r.headers.get("www-authenticate").map(String::as_str), Some("Basic realm=\"accel-agent\""));
    assert_eq!(agent.get_with("/metrics", &[("Authorization", &basic("prometheus", "nope"))]).status, 401);
    let r = agent.get_with("/metrics", &[("Authorization", &basic("prometheus", "pw"))]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("accel_build_info{"));
}

#[test]
fn require_and_verify_client_cert_accepts_only_certificates_from_the_ca() {
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"));
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let err = tls_get(agent.addr, pki.client(None, versions), "/metrics", &[]).err();
        assert!(err.is_some(), "{versions:?}: no client certificate must not get a response");
        let err = tls_get(agent.addr, pki.client(Some("stranger"), versions), "/metrics", &[]).err();
        assert!(err.is_some(), "{versions:?}: a certificate from another CA must not get a response");
        let reply = tls_get(agent.addr, pki.client(Some("client"), versions), "/metrics", &[]).expect("CA's client");
        assert_eq!(reply.response.status, 200, "{versions:?}");
        assert!(reply.response.body.contains("accel_build_info{"));
    }
}

#[test]
fn verify_client_cert_if_given_lets_anonymous_clients_in_but_checks_a_certificate_sent() {
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"));
    let v = rustls::DEFAULT_VERSIONS;
    assert_eq!(tls_get(agent.addr, pki.client(None, v), "/metrics", &[]).expect("anonymous").response.status, 200);
    assert_eq!(tls_get(agent.addr, pki.client(Some("client"), v), "/metrics", &[]).expect("CA's").response.status, 200);
    assert!(tls_get(agent.addr, pki.client(Some("stranger"), v), "/metrics", &[]).is_err());
}

#[test]
fn require_any_client_cert_wants_one_but_not_from_a_particular_ca() {
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  client_auth_type: RequireAnyClientCert\n"));
    let v = rustls::DEFAULT_VERSIONS;
    assert!(tls_get(agent.addr, pki.client(None, v), "/metrics", &[]).is_err());
    assert_eq!(tls_get(agent.addr, pki.client(Some("stranger"), v), "/", &[]).expect("any").response.status, 200);
}

#[test]
fn min_version_tls13_refuses_a_tls12_client() {
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  min_version: TLS13\n"));
    let err = tls_get(agent.addr, pki.client(None, &[&rustls::version::TLS12]), "/metrics", &[]).err();
    assert!(err.as_deref().is_some_and(|e| e.starts_with("handshake:")), "{err:?}");
    let ok = tls_get(agent.addr, pki.client(None, &[&rustls::version::TLS13]), "/metrics", &[]).expect("TLS 1.3");
    assert_eq!(ok.response.status, 200);
}

#[test]
fn max_version_tls12_is_honoured() {
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  max_version: TLS12\n"));
    assert!(tls_get(agent.addr, pki.client(None, &[&rustls::version::TLS13]), "/metrics", &[]).is_err());
    let ok = tls_get(agent.addr, pki.client(None, &[&rustls::version::TLS12]), "/metrics", &[]).expect("TLS 1.2");
    assert_eq!(ok.response.status, 200);
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let pki = Pki::new();
    let mut agent = pki.start(TLS);
    let before = tls_get(agent.addr, pki.default_client(), "/metrics", &[]).expect("HTTPS");
    assert_eq!(before.server_cert, CertificateDer::from_pem_file(pki.path("server.crt")).expect("crt").to_vec());

    // A renewed certificate from the same CA, as cert-manager or certbot would leave it.
    pki.issue("server", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth, true);
    let renewed = CertificateDer::from_pem_file(pki.path("server.crt")).expect("crt").to_vec();
    assert_ne!(renewed, before.server_cert);
    let after = tls_get(agent.addr, pki.default_client(), "/metrics", &[]).expect("HTTPS after renewal");
    assert_eq!(after.server_cert, renewed, "the next handshake presents the renewed certificate");
    assert_eq!(after.response.status, 200);

    // A half-done rotation (new certificate, old key) keeps the last good pair in force.
    pki.issue("half", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth, true);
    std::fs::copy(pki.path("half.crt"), pki.path("server.crt")).expect("copy");
    let during = tls_get(agent.addr, pki.default_client(), "/metrics", &[]).expect("HTTPS mid-rotation");
    assert_eq!(during.server_cert, renewed);
    std::fs::copy(pki.path("half.key"), pki.path("server.key")).expect("copy");
    let done = tls_get(agent.addr, pki.default_client(), "/metrics", &[]).expect("HTTPS after rotation");
    assert_eq!(done.server_cert, CertificateDer::from_pem_file(pki.path("half.crt")).expect("crt").to_vec());
    assert!(agent.child.try_wait().map(|s| s.is_none()).unwrap_or(false), "the same process throughout");
}

#[test]
fn a_silent_client_does_not_hold_up_others() {
    let pki = Pki::new();
    let agent = pki.start(TLS);
    // One connection that never speaks, one that stops halfway through a ClientHello.
    let _silent = std::net::TcpStream::connect(agent.addr).expect("connect");
    let mut half = std::net::TcpStream::connect(agent.addr).expect("connect");
    std::io::Write::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).expect("partial hello");
    for _ in 0..3 {
        let r = tls_get(agent.addr, pki.default_client(), "/-/healthy", &[]).expect("HTTPS while others idle");
        assert_eq!(r.response.status, 200);
    }
}

/// Runs the agent with a web config and expects it to exit non-zero before listening; returns stderr.
fn refused(pki: &Pki, yaml: &str) -> String {
    pki.write("web.yml", yaml);
    let state = tempfile::tempdir().expect("state dir");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--sysfs-root", pki.sysfs.root().to_str().expect("utf-8")])
        .arg("--state-dir")
        .arg(state.path())
        .arg("--socket")
        .arg(state.path().join("agent.sock"))
        .arg("--web-config")
        .arg(pki.path("web.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start accel-agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("accel-agent kept running with web config:\n{yaml}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!status.success(), "exit status {status:?} for:\n{yaml}");
    assert!(!stderr.contains("accel-agent started"), "it listened before failing: {stderr}");
    stderr
}

#[test]
fn invalid_web_configs_stop_the_agent_naming_the_file_and_the_key() {
    let pki = Pki::new();
    let web = pki.web_yml();
    let dir = pki.dir.path().display().to_string();
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("{TLS}  cert_fil: server.crt\n"),
            vec![format!("web config {web}: "), "unknown field `cert_fil`".into()],
        ),
        (
            "tls_config:\n  cert_file: server.crt\n".into(),
            vec![format!("web config {web}: "), "unknown field `tls_config`".into()],
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".into(),
            vec![format!("web config {web}: tls_server_config.cert_file: cannot read {dir}/missing.crt")],
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n".into(),
            vec![format!(
                "web config {web}: tls_server_config.key_file: {dir}/client.key: this private key does not belong \
                 to the certificate in {dir}/server.crt"
            )],
        ),
        (
            format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
            vec![format!(
                "web config {web}: tls_server_config.client_ca_file: client_auth_type RequireAndVerifyClientCert"
            )],
        ),
        (
            format!("{TLS}  min_version: TLS14\n"),
            vec![format!("web config {web}: tls_server_config.min_version: \"TLS14\" is not one of")],
        ),
        (
            "basic_auth_users:\n  prometheus: plaintext-password\n".into(),
            vec![format!("web config {web}: basic_auth_users.prometheus: not a bcrypt hash")],
        ),
        (
            "http_server_config:\n  headers:\n    Set-Cookie: x\n".into(),
            vec![format!("web config {web}: http_server_config.headers.Set-Cookie: this header cannot be configured")],
        ),
    ];
    for (yaml, expected) in cases {
        let stderr = refused(&pki, &yaml);
        for e in expected {
            assert!(stderr.contains(&e), "expected {e:?} in:\n{stderr}\nfor:\n{yaml}");
        }
    }

    // The file itself missing.
    std::fs::remove_file(pki.path("web.yml")).expect("rm");
    let state = tempfile::tempdir().expect("state dir");
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--sysfs-root", pki.sysfs.root().to_str().expect("utf-8")])
        .arg("--state-dir")
        .arg(state.path())
        .arg("--socket")
        .arg(state.path().join("agent.sock"))
        .arg("--web-config")
        .arg(pki.path("web.yml"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("web config {web}: cannot read it: No such file")), "{stderr}");
}

// curl as a second, independent client (compiled ignored where curl is not installed).

#[test]
#[cfg_attr(not(has_curl), ignore = "curl is not installed")]
fn curl_gets_metrics_over_https_with_http2_and_http1() {
    common::require_tool("curl");
    let pki = Pki::new();
    let agent = pki.start(&format!(
        "{TLS}http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    ));
    let c = curl(&agent, &pki, "/metrics", &[]);
    assert_eq!((c.code, c.status), (0, 200), "{}", c.stderr);
    assert!(c.body.contains("accel_build_info{"));
    let c = curl(&agent, &pki, "/metrics", &["--http1.1"]);
    assert_eq!(c.status, 200, "{}", c.stderr);
}

#[test]
#[cfg_attr(not(has_curl), ignore = "curl is not installed")]
fn curl_is_refused_without_the_right_basic_auth_credentials() {
    common::require_tool("curl");
    let pki = Pki::new();
    let agent = pki.start(&format!(
        "{TLS}http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\nbasic_auth_users:\n  prometheus: '{}'\n  grafana: '{}'\n",
        hash("scrape-me"),
        hash("dashboards")
    ));
    let c = curl(&agent, &pki, "/metrics", &[]);
    assert_eq!(c.status, 401, "{}", c.stderr);
    let c = curl(&agent, &pki, "/metrics", &["-u", "prometheus:wrong"]);
    assert_eq!(c.status, 401, "{}", c.stderr);
    let c = curl(&agent, &pki, "/metrics", &["-u", "intruder:scrape-me"]);
    assert_eq!(c.status, 401, "{}", c.stderr);
    let c = curl(&agent, &pki, "/metrics", &["-u", "prometheus:scrape-me"]);
    assert_eq!(c.status, 200, "{}", c.stderr);
    assert!(c.body.contains("accel_build_info{"));
}

#[test]
#[cfg_attr(not(has_curl), ignore = "curl is not installed")]
fn curl_needs_a_client_certificate_from_the_ca() {
    common::require_tool("curl");
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"));
    let c = curl(&agent, &pki, "/metrics", &[]);
    assert_ne!(c.code, 0, "curl without a client certificate succeeded");
    assert_ne!(c.status, 200);
    let c = curl(&agent, &pki, "/metrics", &["--cert", "stranger.crt", "--key", "stranger.key"]);
    assert_ne!(c.code, 0, "curl with a self-signed client certificate succeeded");
    assert_ne!(c.status, 200);
    let c = curl(&agent, &pki, "/metrics", &["--cert", "client.crt", "--key", "client.key"]);
    assert_eq!((c.code, c.status), (0, 200), "{}", c.stderr);
    assert!(c.body.contains("accel_build_info{"));
}

#[test]
#[cfg_attr(not(has_curl), ignore = "curl is not installed")]
fn curl_limited_to_tls12_is_refused_by_min_version_tls13() {
    common::require_tool("curl");
    let pki = Pki::new();
    let agent = pki.start(&format!("{TLS}  min_version: TLS13\n"));
    let c = curl(&agent, &pki, "/metrics", &["--tls-max", "1.2"]);
    assert_ne!(c.code, 0, "a TLS 1.2-only curl got through");
    assert_eq!(c.status, 0);
    let c = curl(&agent, &pki, "/metrics", &["--tlsv1.3"]);
    assert_eq!((c.code, c.status), (0, 200), "{}", c.stderr);
}
