use std::path::{Path, PathBuf};

use hyper::header::HeaderValue;
use rcgen::{CertificateParams, KeyPair};

const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

use super::auth::AuthCache;
use super::*;

/// A self-signed certificate and its key, as PEM.
fn self_signed(name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![name.to_owned()]).expect("params").self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// A temp dir holding `web.yml` with `yaml`, and server.crt/server.key.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = Dir { dir: tempfile::tempdir().expect("temp dir") };
        let (cert, key) = self_signed("localhost");
        dir.write("server.crt", &cert);
        dir.write("server.key", &key);
        dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    fn load(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
        self.write("web.yml", yaml);
        WebConfig::load(&self.path("web.yml"))
    }

    fn err(&self, yaml: &str) -> String {
        match self.load(yaml) {
            Ok(_) => panic!("expected an error for:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }
}

/// A bcrypt hash at the lowest cost, to keep the tests fast.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

fn basic(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).expect("header value")
}

#[test]
fn an_empty_file_is_plain_http_without_auth() {
    let d = Dir::new();
    for yaml in ["", "# nothing here\n", "tls_server_config:\n", "basic_auth_users: {}\n"] {
        let c = d.load(yaml).expect("valid");
        assert!(c.tls.is_none(), "{yaml:?}");
        assert!(c.auth.is_none(), "{yaml:?}");
        assert!(c.headers.is_empty());
        assert_eq!(c.describe(), "plain HTTP");
    }
}

#[test]
fn a_full_config_parses() {
    let d = Dir::new();
    let (ca, _) = self_signed("ca");
    d.write("ca.crt", &ca);
    let yaml = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  \
         client_ca_file: ca.crt\n  min_version: TLS12\n  max_version: TLS13\n\
         http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n\
         basic_auth_users:\n  prometheus: '{}'\n  grafana: '{}'\n",
        d.path("server.key").display(),
        hash("secret"),
        hash("other")
    );
    let c = d.load(&yaml).expect("valid");
    let tls = c.tls.as_ref().expect("TLS on");
    assert_eq!(tls.client_auth(), ClientAuth::RequireAndVerifyClientCert);
    assert_eq!(c.auth.as_ref().expect("auth on").user_count(), 2);
    assert_eq!(c.headers.get("x-frame-options").expect("header"), "deny");
    assert_eq!(c.headers.get("strict-transport-security").expect("header"), "max-age=31536000");
    assert_eq!(c.notes, vec!["http_server_config.http2 is ignored: accel-agent serves HTTP/1.1 only".to_owned()]);
    assert_eq!(c.describe(), "HTTPS, client certificates: RequireAndVerifyClientCert, basic auth for 2 user(s)");
}

#[test]
fn relative_paths_are_relative_to_the_web_config() {
    let d = Dir::new();
    std::fs::create_dir(d.path("tls")).expect("mkdir");
    std::fs::rename(d.path("server.crt"), d.path("tls/server.crt")).expect("move");
    let e = d.err("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    assert!(e.contains(&format!("cannot read {}", d.path("server.crt").display())), "{e}");
    // From another working directory the same relative name still finds the file beside web.yml.
    let c = d.load("tls_server_config:\n  cert_file: tls/server.crt\n  key_file: server.key\n").expect("valid");
    assert!(c.tls.is_some());
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_the_file() {
    let d = Dir::new();
    let file = d.path("web.yml").display().to_string();
    for (yaml, key) in [
        ("tls_config:\n  cert_file: a\n", "tls_config"),
        ("tls_server_config:\n  cert_fil: server.crt\n  key_file: server.key\n", "cert_fil"),
        ("http_server_config:\n  http3: true\n", "http3"),
        ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
    ] {
        let e = d.err(yaml);
        assert!(e.starts_with(&format!("web config {file}: ")), "{e}");
        assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
    }
}

#[test]
fn syntax_and_type_errors_name_the_file() {
    let d = Dir::new();
    let file = d.path("web.yml").display().to_string();
    let e = d.err("tls_server_config: [\n");
    assert!(e.starts_with(&format!("web config {file}: ")), "{e}");
    let e = d.err("basic_auth_users: [a, b]\n");
    assert!(e.contains("basic_auth_users"), "{e}");
    let e = WebConfig::load(&d.path("absent.yml")).expect_err("absent").to_string();
    assert!(e.starts_with(&format!("web config {}: cannot read it", d.path("absent.yml").display())), "{e}");
}

#[test]
fn missing_or_broken_certificate_files_are_named() {
    let d = Dir::new();
    let e = d.err("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n");
    assert!(e.contains("tls_server_config.cert_file: cannot read"), "{e}");
    assert!(e.contains(&d.path("nope.crt").display().to_string()), "{e}");

    let e = d.err("tls_server_config:\n  cert_file: server.crt\n");
    assert!(e.contains("tls_server_config.key_file: missing"), "{e}");
    let e = d.err("tls_server_config:\n  key_file: server.key\n");
    assert!(e.contains("tls_server_config.cert_file: missing"), "{e}");
    let e = d.err("tls_server_config:\n  min_version: TLS13\n");
    assert!(e.contains("tls_server_config.cert_file: missing"), "TLS settings without a certificate: {e}");

    d.write("empty.crt", "not a certificate\n");
    let e = d.err("tls_server_config:\n  cert_file: empty.crt\n  key_file: server.key\n");
    assert!(e.contains(&format!("cert_file: {}: no CERTIFICATE block found", d.path("empty.crt").display())), "{e}");

    // A certificate where the key should be.
    let e = d.err("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n");
    assert!(e.contains(&format!("key_file: {}: no PRIVATE KEY block", d.path("server.crt").display())), "{e}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_an_error() {
    let d = Dir::new();
    let (_, other_key) = self_signed("other");
    d.write("other.key", &other_key);
    let e = d.err("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n");
    assert!(
        e.contains(&format!(
            "tls_server_config.key_file: {}: this private key does not belong to the certificate in {}",
            d.path("other.key").display(),
            d.path("server.crt").display()
        )),
        "{e}"
    );
}

#[test]
fn inline_certificate_and_key_work_and_exclude_the_file_keys() {
    let d = Dir::new();
    let (cert, key) = self_signed("inline");
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let yaml = format!("tls_server_config:\n  cert: |\n{}  key: |\n{}", indent(&cert), indent(&key));
    let c = d.load(&yaml).expect("valid");
    assert!(c.tls.is_some());
    let e = d.err(&format!("{yaml}  cert_file: server.crt\n"));
    assert!(e.contains("tls_server_config.cert_file: set either cert_file or cert, not both"), "{e}");
    // The inline key must not leak through Debug.
    assert!(!format!("{c:?}").contains("PRIVATE KEY"));
}

#[test]
fn client_auth_types_and_their_ca_requirements() {
    let d = Dir::new();
    let (ca, _) = self_signed("ca");
    d.write("ca.crt", &ca);
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    for name in ["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "RequireClientCert"] {
        let c = d.load(&format!("{tls}  client_auth_type: {name}\n")).expect(name);
        let expected = if name == "RequireClientCert" { "RequireAnyClientCert" } else { name };
        assert_eq!(format!("{:?}", c.tls.expect("tls").client_auth()), expected);
    }
    for name in ["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"] {
        let e = d.err(&format!("{tls}  client_auth_type: {name}\n"));
        assert!(e.contains(&format!("tls_server_config.client_ca_file: client_auth_type {name} verifies")), "{e}");
        let c = d.load(&format!("{tls}  client_auth_type: {name}\n  client_ca_file: ca.crt\n")).expect(name);
        assert_eq!(format!("{:?}", c.tls.expect("tls").client_auth()), name);
    }
    let e = d.err(&format!("{tls}  client_ca_file: ca.crt\n"));
    assert!(
        e.contains("tls_server_config.client_auth_type: client_ca_file is set but client_auth_type is NoClientCert")
    );
    let e = d.err(&format!("{tls}  client_auth_type: Sometimes\n"));
    assert!(e.contains("tls_server_config.client_auth_type: \"Sometimes\" is not one of NoClientCert,"), "{e}");
    let e = d.err(&format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing.crt\n"));
    assert!(e.contains(&format!("client_ca_file: cannot read {}", d.path("missing.crt").display())), "{e}");
}

#[test]
fn versions() {
    let mut notes = Vec::new();
    let names = |v: Vec<&'static rustls::SupportedProtocolVersion>| {
        v.iter().map(|v| format!("{:?}", v.version)).collect::<Vec<_>>()
    };
    assert_eq!(names(tls::versions(None, None, &mut notes).expect("ok")), ["TLSv1_3", "TLSv1_2"]);
    assert_eq!(names(tls::versions(Some("TLS13"), None, &mut notes).expect("ok")), ["TLSv1_3"]);
    assert_eq!(names(tls::versions(None, Some("TLS12"), &mut notes).expect("ok")), ["TLSv1_2"]);
    assert!(notes.is_empty());
    assert_eq!(names(tls::versions(Some("TLS10"), None, &mut notes).expect("ok")), ["TLSv1_3", "TLSv1_2"]);
    assert_eq!(notes, ["tls_server_config.min_version TLS10 is raised to TLS12: older versions are not supported"]);

    let d = Dir::new();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let e = d.err(&format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"));
    assert!(e.contains("tls_server_config.min_version: is above max_version"), "{e}");
    let e = d.err(&format!("{tls}  max_version: TLS11\n"));
    assert!(e.contains("tls_server_config.max_version: TLS 1.0 and 1.1 are not supported"), "{e}");
    let e = d.err(&format!("{tls}  min_version: SSL3\n"));
    assert!(e.contains("tls_server_config.min_version: \"SSL3\" is not one of TLS10, TLS11, TLS12, TLS13"), "{e}");
}

#[test]
fn cipher_suites_and_curves_use_go_names() {
    let d = Dir::new();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    d.load(&format!(
        "{tls}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, TLS_AES_128_GCM_SHA256]\n  \
         curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n"
    ))
    .expect("valid");
    let e = d.err(&format!("{tls}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"));
    assert!(
        e.contains("tls_server_config.cipher_suites: \"TLS_RSA_WITH_AES_128_CBC_SHA\" is unknown or not supported")
    );
    let e = d.err(&format!("{tls}  curve_preferences: [CurveP521]\n"));
    assert!(e.contains("tls_server_config.curve_preferences: \"CurveP521\" is unknown or not supported"), "{e}");
}

#[test]
fn known_but_unsupported_keys_are_refused_by_name() {
    let d = Dir::new();
    let e = d.err("rate_limit:\n  interval: 1s\n  burst: 10\n");
    assert!(e.contains(": rate_limit: is not supported by accel-agent"), "{e}");
    let e = d.err(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [a.example]\n",
    );
    assert!(e.contains("tls_server_config.client_allowed_sans: is not supported"), "{e}");
}

#[test]
fn only_exporter_toolkits_headers_can_be_set() {
    let d = Dir::new();
    let e = d.err("http_server_config:\n  headers:\n    Server: accel\n");
    assert!(e.contains("http_server_config.headers.Server: this header cannot be configured"), "{e}");
    let e = d.err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
    assert!(e.contains("http_server_config.headers.X-Frame-Options: \"allow\" is not one of deny, sameorigin"), "{e}");
    let c = d.load("http_server_config:\n  headers:\n    x-content-type-options: nosniff\n").expect("valid");
    assert_eq!(c.headers.get("X-Content-Type-Options").expect("set"), "nosniff");
}

#[test]
fn unsupported_hashes_and_user_names_are_errors_naming_the_user() {
    let d = Dir::new();
    let file = d.path("web.yml").display().to_string();
    for hash in ["secret", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="] {
        let e = d.err(&format!("basic_auth_users:\n  alice: '{hash}'\n"));
        assert!(e.starts_with(&format!("web config {file}: basic_auth_users.alice: not a bcrypt hash")), "{e}");
    }
    let e = d.err(&format!("basic_auth_users:\n  'a:b': '{}'\n", hash("x")));
    assert!(e.contains("basic_auth_users.a:b: a user name cannot contain ':'"), "{e}");
    // Cost 03 is below bcrypt's minimum.
    let e = d.err(&format!("basic_auth_users:\n  bob: '$2b$03${}'\n", ".".repeat(53)));
    assert!(e.contains("basic_auth_users.bob"), "{e}");
}

#[test]
fn the_dummy_hash_costs_as_much_as_the_costliest_user_and_matches_nothing() {
    let d = Dir::new();
    let slow = bcrypt::hash("x", 6).expect("bcrypt");
    let c = d.load(&format!("basic_auth_users:\n  a: '{}'\n  b: '{slow}'\n", hash("y"))).expect("valid");
    let dummy = c.auth.expect("auth").dummy().to_owned();
    let parts: bcrypt::HashParts = dummy.parse().expect("well-formed");
    assert_eq!(parts.get_cost(), 6);
    assert!(!bcrypt::verify("", &dummy).expect("verifies"));
    assert!(!bcrypt::verify("x", &dummy).expect("verifies"));
}

#[tokio::test]
async fn basic_auth_checks_and_caches_only_successes() {
    let d = Dir::new();
    let c = d.load(&format!("basic_auth_users:\n  prometheus: '{}'\n", hash("s3cret"))).expect("valid");
    let auth = c.auth.expect("auth");
    assert!(!auth.check(None, LOCAL).await.is_allowed(), "no header");
    assert!(!auth.check(Some(&HeaderValue::from_static("Bearer abc")), LOCAL).await.is_allowed());
    assert!(!auth.check(Some(&HeaderValue::from_static("Basic !!!notbase64")), LOCAL).await.is_allowed());
    assert!(!auth.check(Some(&basic("prometheus", "wrong")), LOCAL).await.is_allowed());
    assert!(!auth.check(Some(&basic("nobody", "s3cret")), LOCAL).await.is_allowed());
    assert!(
        !auth.check(Some(&basic("Prometheus", "s3cret")), LOCAL).await.is_allowed(),
        "user names are case-sensitive"
    );
    assert_eq!(auth.cached_logins(), 0, "failures are not remembered");
    assert!(auth.check(Some(&basic("prometheus", "s3cret")), LOCAL).await.is_allowed());
    assert_eq!(auth.cached_logins(), 1);
    // The second check is answered from the cache, which does not grow.
    assert!(auth.check(Some(&basic("prometheus", "s3cret")), LOCAL).await.is_allowed());
    assert_eq!(auth.cached_logins(), 1);
    // A cached success says nothing about another password.
    assert!(!auth.check(Some(&basic("prometheus", "s3cret2")), LOCAL).await.is_allowed());
    // The scheme is case-insensitive; a password may contain ':'.
    let c = d.load(&format!("basic_auth_users:\n  u: '{}'\n", hash("a:b"))).expect("valid");
    let auth = c.auth.expect("auth");
    let lower = basic("u", "a:b").to_str().expect("ascii").replacen("Basic", "basic", 1);
    assert!(auth.check(Some(&HeaderValue::from_str(&lower).expect("value")), LOCAL).await.is_allowed());
}

#[test]
fn cache_keys_separate_every_input() {
    let k = cache_key("ab", b"c", "h");
    assert_eq!(k, cache_key("ab", b"c", "h"));
    assert_ne!(k, cache_key("a", b"bc", "h"), "the boundary between user and password matters");
    assert_ne!(k, cache_key("ab", b"c", "h2"), "a changed hash never matches");
    assert_ne!(k, cache_key("ab", b"d", "h"));
}

#[test]
fn the_auth_cache_is_bounded_and_forgets_the_oldest() {
    let mut cache = AuthCache::new(2);
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert!(cache.is_empty());
    cache.insert(a);
    cache.insert(a);
    assert_eq!(cache.len(), 1, "no duplicates");
    cache.insert(b);
    assert!(cache.contains(&a) && cache.contains(&b));
    cache.insert(c);
    assert_eq!(cache.len(), 2);
    assert!(!cache.contains(&a), "the oldest went");
    assert!(cache.contains(&b) && cache.contains(&c));
    let mut near = c;
    near[31] ^= 1;
    assert!(!cache.contains(&near));
}

#[test]
fn a_rotated_certificate_is_picked_up_and_a_half_written_one_is_not() {
    let d = Dir::new();
    let c = d.load("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n").expect("valid");
    let tls = c.tls.expect("tls");
    let first = tls.certificate();
    assert_eq!(first.as_ref(), pem_der(&d.path("server.crt")).as_slice());
    assert!(!tls.refresh_blocking(), "nothing changed");

    let (cert, key) = self_signed("rotated");
    // The certificate lands before its key: the pair does not match yet, so the old one stays.
    d.write("server.crt", &cert);
    assert!(!tls.refresh_blocking());
    assert_eq!(tls.certificate(), first);
    d.write("server.key", &key);
    assert!(tls.refresh_blocking());
    assert_eq!(tls.certificate().as_ref(), pem_der(&d.path("server.crt")).as_slice());
    assert_ne!(tls.certificate(), first);

    // Removed files keep the config in force too.
    std::fs::remove_file(d.path("server.key")).expect("rm");
    assert!(!tls.refresh_blocking());
    assert_eq!(tls.certificate().as_ref(), pem_der(&d.path("server.crt")).as_slice());
}

fn pem_der(path: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).expect("certificate").to_vec()
}

#[tokio::test]
async fn the_example_in_the_security_doc_is_valid() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md"))
        .expect("docs/security.md");
    let start = doc.find("```yaml\ntls_server_config:").expect("example") + "```yaml\n".len();
    let example = &doc[start..start + doc[start..].find("```").expect("end of example")];
    let d = Dir::new();
    std::fs::create_dir(d.path("tls")).expect("mkdir");
    std::fs::rename(d.path("server.crt"), d.path("tls/server.crt")).expect("move");
    std::fs::rename(d.path("server.key"), d.path("tls/server.key")).expect("move");
    d.write("tls/clients-ca.crt", &self_signed("clients CA").0);
    let c = d.load(example).expect("the documented example loads");
    assert_eq!(c.tls.expect("tls").client_auth(), ClientAuth::RequireAndVerifyClientCert);
    assert_eq!(c.headers.len(), 3);
    assert!(
        c.auth.expect("auth").check(Some(&basic("prometheus", "change-me")), LOCAL).await.is_allowed(),
        "the documented password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_delays_another_clients_first_login_by_at_most_one_check() {
    let d = Dir::new();
    // Cost 10, the documented default: 50-100 ms per check.
    let hash = bcrypt::hash("s3cret", 10).expect("bcrypt");
    let c = d.load(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("valid");
    let auth = Arc::new(c.auth.expect("auth"));
    let attacker: std::net::IpAddr = "192.0.2.66".parse().expect("ip");
    let started = std::time::Instant::now();
    let one = {
        let t = std::time::Instant::now();
        assert!(!auth.check(Some(&basic("prometheus", "calibrate")), LOCAL).await.is_allowed());
        t.elapsed()
    };
    let flood: Vec<_> = (0..100)
        .map(|i| {
            let auth = Arc::clone(&auth);
            tokio::spawn(async move { auth.check(Some(&basic("prometheus", &format!("guess{i}"))), attacker).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let t = std::time::Instant::now();
    assert!(auth.check(Some(&basic("prometheus", "s3cret")), LOCAL).await.is_allowed());
    let waited = t.elapsed();
    // The valid login waits for the attacker's check in progress and does its own: about two checks,
    // while the hundred queued ones would take a hundred.
    assert!(waited < one * 4 + std::time::Duration::from_millis(200), "valid login took {waited:?}; one check {one:?}");
    let mut busy = 0;
    for f in flood {
        let verdict = f.await.expect("task");
        assert_ne!(verdict, Verdict::Allowed);
        busy += usize::from(verdict == Verdict::Busy);
    }
    // One checked, one next; the other 98 were answered Busy at once instead of queueing.
    assert_eq!(busy, 100 - super::auth::MAX_PENDING_PER_CLIENT);
    eprintln!("one check {one:?}; valid login during the flood {waited:?}; flood done after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bcrypt_queue_is_bounded_in_all_and_a_remembered_login_never_waits() {
    let d = Dir::new();
    let hash = bcrypt::hash("s3cret", 10).expect("bcrypt");
    let c = d.load(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("valid");
    let auth = Arc::new(c.auth.expect("auth"));
    // Remembered before the flood, as a scraper's login is after its first scrape.
    assert_eq!(auth.check(Some(&basic("prometheus", "s3cret")), LOCAL).await, Verdict::Allowed);
    // 100 addresses with 2 logins each: 200 wanted places, 64 in all.
    let flood: Vec<_> = (0..200u32)
        .map(|i| {
            let auth = Arc::clone(&auth);
            let addr = std::net::IpAddr::from([10, 0, (i / 2 / 256) as u8, (i / 2 % 256) as u8]);
            tokio::spawn(async move { auth.check(Some(&basic("prometheus", &format!("guess{i}"))), addr).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let t = std::time::Instant::now();
    assert_eq!(auth.check(Some(&basic("prometheus", "s3cret")), LOCAL).await, Verdict::Allowed);
    assert!(t.elapsed() < std::time::Duration::from_millis(100), "a remembered login waited {:?}", t.elapsed());
    // A login from a new address that would need bcrypt finds the queue full.
    let stranger: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
    assert_eq!(auth.check(Some(&basic("prometheus", "wrong")), stranger).await, Verdict::Busy);
    let mut busy = 0;
    for f in flood {
        let verdict = f.await.expect("task");
        assert_ne!(verdict, Verdict::Allowed);
        busy += usize::from(verdict == Verdict::Busy);
    }
    assert_eq!(busy, 200 - super::auth::MAX_PENDING);
    // Once the queue has drained, the same login is checked again: a wrong password, not a busy queue.
    assert_eq!(auth.check(Some(&basic("prometheus", "wrong")), stranger).await, Verdict::Denied);
}
