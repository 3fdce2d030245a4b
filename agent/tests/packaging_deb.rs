//! The .deb and .rpm that packaging/build-packages.sh builds: what they contain, and that the .deb
//! installs, runs, removes and purges cleanly with dpkg on this machine.
//!
//! The packages are built outside `cargo test`, which holds cargo's build-directory lock while tests run,
//! so a test cannot run `cargo build --release` itself. `.ci/run` builds them first and passes their
//! directory in ACCEL_PACKAGES_DIR. By hand:
//!
//! ```sh
//! packaging/build-packages.sh
//! ACCEL_PACKAGES_DIR=target/packages cargo test -p agent --test packaging_deb -- --nocapture
//! ```
//!
//! Installing needs root, dpkg and systemd-analyze; the rpm checks need `rpm` (Debian package `rpm`).
//! When something is missing at build time the test is compiled ignored, with the reason (build.rs,
//! sim/external_tools.rs), unless ACCEL_REQUIRE_EXTERNAL is set, in which case it runs and fails. A host
//! that already has an accel-agent package, /etc/accel-agent or /var/lib/accel-agent is never touched:
//! the install test fails, saying so, without changing anything.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PACKAGE: &str = "accel-agent";
const CONFFILE: &str = "/etc/accel-agent/agent.toml";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the agent crate lies inside the repository").to_owned()
}

fn repo_file(relative: &str) -> Vec<u8> {
    let path = repo_root().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails the test when a precondition is missing (the cfgs that ignore these tests are decided at build
/// time; this catches a test run anyway, or a machine changed since).
fn require(present: bool, missing: &str) {
    assert!(present, "{missing}");
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs a command that must succeed; its stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = output(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{program}: output is not UTF-8: {e}"))
}

/// The one package file in ACCEL_PACKAGES_DIR whose name starts with `prefix` and ends with `suffix`.
fn package_file(prefix: &str, suffix: &str) -> PathBuf {
    require(std::env::var_os("ACCEL_PACKAGES_DIR").is_some(), PACKAGES_DIR_UNSET);
    let dir = PathBuf::from(std::env::var_os("ACCEL_PACKAGES_DIR").unwrap_or_default());
    let dir = if dir.is_absolute() { dir } else { repo_root().join(dir) };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("ACCEL_PACKAGES_DIR {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    assert!(found.len() <= 1, "several {prefix}*{suffix} in {}: {found:?}", dir.display());
    found.pop().unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}; run packaging/build-packages.sh", dir.display()))
}

const PACKAGES_DIR_UNSET: &str =
    "ACCEL_PACKAGES_DIR is not set (run packaging/build-packages.sh and point it at target/packages)";

fn the_deb() -> PathBuf {
    require(have("dpkg-deb"), "dpkg-deb is not installed");
    package_file(&format!("{PACKAGE}_"), ".deb")
}

// -------------------------------------------------------------------------------------- what ships where

/// A file every package installs: where, its mode, and the repository file it must be a copy of (None
/// for files built from the binaries).
struct Shipped {
    path: String,
    mode: u32,
    source: Option<String>,
}

/// Everything both packages install, from the repository's own listing of units, examples and docs, so a
/// new example or unit that the metadata misses fails here. `zsh_dir` differs between distributions.
fn shipped(zsh_dir: &str) -> Vec<Shipped> {
    let file = |path: &str, mode: u32, source: Option<&str>| Shipped {
        path: path.to_owned(),
        mode,
        source: source.map(str::to_owned),
    };
    let mut out = vec![
        file("/usr/bin/accel-agent", 0o755, None),
        file("/usr/bin/agentctl", 0o755, None),
        file("/usr/lib/sysusers.d/accel-agent.conf", 0o644, Some("systemd/accel-agent.sysusers")),
        file("/usr/lib/tmpfiles.d/accel-agent.conf", 0o644, Some("systemd/accel-agent.tmpfiles")),
        file(CONFFILE, 0o644, Some("config/agent.toml")),
        file("/usr/share/doc/accel-agent/README.md", 0o644, Some("README.md")),
        file("/usr/share/man/man8/accel-agent.8.gz", 0o644, None),
        file("/usr/share/man/man1/agentctl.1.gz", 0o644, None),
        // The monitoring side, for a fleet that takes it from the hosts' packages.
        file(
            "/usr/share/accel-agent/prometheus/accel-agent.rules.yml",
            0o644,
            Some("packaging/prometheus/accel-agent.rules.yml"),
        ),
        file("/usr/share/accel-agent/grafana/accel-agent.json", 0o644, Some("packaging/grafana/accel-agent.json")),
        file(
            "/usr/share/accel-agent/node-problem-detector/accel-agent-monitor.json",
            0o644,
            Some("packaging/node-problem-detector/accel-agent-monitor.json"),
        ),
    ];
    for bin in ["accel-agent", "agentctl"] {
        out.push(file(&format!("/usr/share/bash-completion/completions/{bin}"), 0o644, None));
        out.push(file(&format!("{zsh_dir}/_{bin}"), 0o644, None));
        out.push(file(&format!("/usr/share/fish/vendor_completions.d/{bin}.fish"), 0o644, None));
    }
    for (dir, ext, dest) in [
        ("systemd", "service", "/usr/lib/systemd/system"),
        ("config/examples", "toml", "/usr/share/doc/accel-agent/examples"),
        // Under docs/, where the README installed beside it links to them.
        ("docs", "md", "/usr/share/doc/accel-agent/docs"),
    ] {
        let mut names: Vec<String> = std::fs::read_dir(repo_root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(&format!(".{ext}")))
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no *.{ext} in {dir}");
        for name in names {
            out.push(file(&format!("{dest}/{name}"), 0o644, Some(&format!("{dir}/{name}"))));
        }
    }
    out
}

const DEB_ZSH: &str = "/usr/share/zsh/vendor-completions";
const RPM_ZSH: &str = "/usr/share/zsh/site-functions";

/// Checks the generated files under `root` (an extracted or installed tree): man pages that man can
/// read, completion scripts for the right command in each shell's format.
fn check_generated_files(root: &Path, zsh_dir: &str) {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    for (bin, section) in [("accel-agent", "8"), ("agentctl", "1")] {
        let page = at(&format!("/usr/share/man/man{section}/{bin}.{section}.gz"));
        let roff = ok("gzip", &["-dc", page.to_str().expect("UTF-8 path")]);
        let header = roff.lines().find(|l| l.starts_with(".TH ")).unwrap_or_else(|| panic!("{page:?}: no .TH"));
        let fields: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(fields[1..3], [bin, section], "{page:?}: {header}");
        assert!(header.contains(&format!("{bin} {VERSION}")), "{page:?} is of another version: {header}");
        assert!(roff.contains(".SH SYNOPSIS"), "{page:?} has no synopsis");

        let bash = at(&format!("/usr/share/bash-completion/completions/{bin}"));
        // Sourcing it registers the completion: the file works, not just exists.
        let registered = ok("bash", &["-c", &format!("source {} && complete -p {bin}", bash.display())]);
        assert!(registered.trim_end().ends_with(&format!(" {bin}")), "{bash:?}: {registered}");

        let zsh = std::fs::read_to_string(at(&format!("{zsh_dir}/_{bin}"))).expect("zsh completion");
        assert_eq!(zsh.lines().next(), Some(format!("#compdef {bin}").as_str()), "zsh completion of {bin}");

        let fish = std::fs::read_to_string(at(&format!("/usr/share/fish/vendor_completions.d/{bin}.fish")))
            .expect("fish completion");
        assert!(fish.contains(&format!("complete -c {bin} ")), "fish completion of {bin}");
    }
    // Both CLIs' verbs are completed, so the completions were generated from the shipped binaries.
    let agentctl = std::fs::read_to_string(at("/usr/share/bash-completion/completions/agentctl")).unwrap();
    for verb in ["status", "set-healthy", "check-config"] {
        assert!(agentctl.contains(verb), "agentctl's bash completion lacks {verb}");
    }
}

// ------------------------------------------------------------------------------------------------ deb

/// `dpkg-deb --field` of the package.
fn deb_field(deb: &Path, field: &str) -> String {
    ok("dpkg-deb", &["--field", deb.to_str().expect("UTF-8 path"), field]).trim().to_owned()
}

#[test]
#[cfg_attr(
    not(all(has_packages_dir, has_dpkg)),
    ignore = "needs dpkg and ACCEL_PACKAGES_DIR (the packages from packaging/build-packages.sh)"
)]
fn deb_metadata_contents_and_conffiles() {
    let deb = the_deb();
    let deb_str = deb.to_str().expect("UTF-8 path");

    assert_eq!(deb_field(&deb, "Package"), PACKAGE);
    assert_eq!(deb_field(&deb, "Version"), format!("{VERSION}-1"), "a package of another version: rebuild it");
    assert_eq!(deb_field(&deb, "Section"), "admin");
    let arch = ok("dpkg", &["--print-architecture"]);
    assert_eq!(deb_field(&deb, "Architecture"), arch.trim());
    let depends = deb_field(&deb, "Depends");
    assert!(depends.starts_with("libc6 (>= "), "Depends: {depends}");

    // The conffile list is exactly the config: units and examples must follow upgrades silently.
    let conffiles = ok("dpkg-deb", &["--info", deb_str, "conffiles"]);
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), [CONFFILE]);

    // The maintainer scripts are the repository's.
    for script in ["postinst", "prerm", "postrm"] {
        let packaged = ok("dpkg-deb", &["--info", deb_str, script]);
        assert_eq!(packaged.as_bytes(), repo_file(&format!("packaging/deb/{script}")), "{script} differs");
    }

    // Every file, with its mode, from the contents listing (tar's "-rwxr-xr-x root/root size date ./path").
    let listing = ok("dpkg-deb", &["--contents", deb_str]);
    let modes: BTreeMap<String, String> = listing
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.last()?.trim_start_matches('.').to_owned();
            Some((path, fields.first()?.to_string()))
        })
        .collect();
    for f in shipped(DEB_ZSH) {
        let mode = modes.get(&f.path).unwrap_or_else(|| panic!("{} is not in the .deb:\n{listing}", f.path));
        let want = if f.mode == 0o755 { "-rwxr-xr-x" } else { "-rw-r--r--" };
        assert_eq!(mode, want, "{}", f.path);
    }
    assert!(modes.keys().all(|p| !p.starts_with("/var/")), "state is created at install, not shipped");

    // Unpacked, each copied file is the repository's, and the generated ones work.
    let tree = tempfile::tempdir().expect("a temp dir");
    ok("dpkg-deb", &["-x", deb_str, tree.path().to_str().expect("UTF-8 path")]);
    for f in shipped(DEB_ZSH) {
        let Some(source) = &f.source else { continue };
        let packaged = std::fs::read(tree.path().join(f.path.trim_start_matches('/'))).expect("unpacked file");
        assert!(packaged == repo_file(source), "{} in the .deb is not {source}: rebuild the package", f.path);
    }
    check_generated_files(tree.path(), DEB_ZSH);
    let agent = tree.path().join("usr/bin/accel-agent").display().to_string();
    let binaries = ok(&agent, &["--version"]);
    assert!(binaries.starts_with(&format!("accel-agent {VERSION} (")), "{binaries}");
    // Built without the `demo` feature: the simulators are not in the package, and --demo says so.
    let demo = output(&agent, &["--demo"]);
    assert_eq!(demo.status.code(), Some(64), "{demo:?}");
    assert!(String::from_utf8_lossy(&demo.stderr).contains("without the `demo` feature"), "{demo:?}");
}

/// dpkg's view of the package: "install ok installed", "deinstall ok config-files", or None.
fn dpkg_status() -> Option<String> {
    let out = output("dpkg-query", &["--show", "--showformat=${Status}", PACKAGE]);
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty() && status != "unknown ok not-installed").then_some(status)
}

/// Purges the package if a check fails half-way, so the machine is left as the test found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("dpkg").args(["--purge", PACKAGE]).status();
        }
    }
}

/// dpkg without --force-conf*: keeping an edited conffile must be dpkg's own doing.
fn dpkg(args: &[&str]) -> String {
    ok("dpkg", args)
}

fn gid_of(group: &str) -> u32 {
    let line = ok("getent", &["group", group]);
    line.split(':').nth(2).and_then(|g| g.parse().ok()).unwrap_or_else(|| panic!("getent group {group}: {line}"))
}

fn uid_of(user: &str) -> u32 {
    let line = ok("getent", &["passwd", user]);
    line.split(':').nth(2).and_then(|u| u.parse().ok()).unwrap_or_else(|| panic!("getent passwd {user}: {line}"))
}

/// Runs the installed agent as the service user, on the installed config and the directories the package
/// created (as accel-agent-readonly.service does), and asks the installed agentctl for its status.
fn run_installed_agent_as_service_user() {
    require(have("setpriv"), "setpriv (util-linux) is not installed; cannot run the installed agent");
    let socket = format!("/run/accel-agent/package-test-{}.sock", std::process::id());
    // A file, not a pipe: nobody reads the log while the agent runs, and a full pipe would block it.
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut agent: Child = Command::new("setpriv")
        .args(["--reuid=accel-agent", "--regid=accel-agent", "--init-groups", "--"])
        .args(["/usr/bin/accel-agent", "--config", CONFFILE, "--listen", "127.0.0.1:0"])
        .args(["--state-dir", "/var/lib/accel-agent", "--socket", &socket])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.reopen().expect("the log file")))
        .spawn()
        .expect("start the installed agent");
    struct Stop<'a>(&'a mut Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            // SAFETY: kill with a pid we spawned and have not reaped.
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stop = Stop(&mut agent);

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let out = output("/usr/bin/agentctl", &["--socket", &socket, "--json", "status"]);
        let json: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(json) = json.filter(|j| j["agent"]["ready"] == true) {
            break json;
        }
        if let Ok(Some(exit)) = stop.0.try_wait() {
            let log = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("the installed agent exited ({exit}) as user accel-agent:\n{log}");
        }
        assert!(Instant::now() < deadline, "agentctl status never saw a ready agent: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["agent"]["version"], VERSION, "{status}");
    assert_eq!(status["agent"]["actions"], "disabled", "the shipped config leaves actions off: {status}");
    assert_eq!(status["agent"]["journal_unavailable"], serde_json::Value::Null, "{status}");

    // The socket belongs to the control group the package created, so its members can use agentctl.
    let meta = std::fs::metadata(&socket).expect("the control socket exists");
    assert_eq!(meta.gid(), gid_of("accel-agent"), "socket group");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "socket mode");
    assert!(Path::new("/var/lib/accel-agent/events.db").exists(), "the journal is in the packaged state dir");
    drop(stop);
    assert!(!Path::new(&socket).exists(), "the agent removes its socket when it stops");
}

#[test]
#[cfg_attr(
    not(all(has_packages_dir, has_dpkg, is_root, has_systemd_analyze)),
    ignore = "needs root, dpkg, systemd-analyze and ACCEL_PACKAGES_DIR (the packages from packaging/build-packages.sh)"
)]
fn deb_installs_runs_removes_and_purges() {
    let deb = the_deb();
    require(is_root(), "not root: installing the .deb needs root");
    require(have("dpkg") && have("dpkg-query"), "dpkg is not installed");
    require(have("systemd-analyze"), "systemd-analyze is not installed; cannot verify the installed units");
    // Never replace or purge what is already there; say so instead of passing without the work.
    if let Some(status) = dpkg_status() {
        panic!(
            "package {PACKAGE} is already on this machine ({status}); not replacing it (remove it to run this test)"
        );
    }
    for dir in ["/etc/accel-agent", "/var/lib/accel-agent"] {
        assert!(!Path::new(dir).exists(), "{dir} exists (an agent installed by hand?); a purge would delete it");
    }
    let deb_str = deb.to_str().expect("UTF-8 path");
    let installed = Installed;

    dpkg(&["--install", deb_str]);
    assert_eq!(dpkg_status().as_deref(), Some("install ok installed"));
    let conffiles = ok("dpkg-query", &["--show", "--showformat=${Conffiles}", PACKAGE]);
    assert_eq!(conffiles.split_whitespace().next(), Some(CONFFILE), "{conffiles}");

    for f in shipped(DEB_ZSH) {
        let meta = std::fs::metadata(&f.path).unwrap_or_else(|e| panic!("{} after install: {e}", f.path));
        assert_eq!(meta.permissions().mode() & 0o777, f.mode, "{}", f.path);
        if let Some(source) = &f.source {
            assert!(std::fs::read(&f.path).unwrap() == repo_file(source), "{} is not {source}", f.path);
        }
    }
    check_generated_files(Path::new("/"), DEB_ZSH);

    let version = ok("/usr/bin/accel-agent", &["--version"]);
    assert!(version.starts_with(&format!("accel-agent {VERSION} (")), "{version}");
    let help = ok("/usr/bin/agentctl", &["--help"]);
    assert!(help.contains("status") && help.contains("set-healthy"), "{help}");
    // The shipped config and examples are valid for the shipped binary.
    assert_eq!(ok("/usr/bin/accel-agent", &["check-config", CONFFILE]).trim(), format!("{CONFFILE}: ok"));
    for f in shipped(DEB_ZSH).iter().filter(|f| f.path.contains("/examples/")) {
        ok("/usr/bin/accel-agent", &["check-config", &f.path]);
    }
    // verify also checks that ExecStart's /usr/bin/accel-agent exists, which it now does.
    for unit in ["accel-agent.service", "accel-agent-readonly.service"] {
        let out = output("systemd-analyze", &["verify", "--man=no", &format!("/usr/lib/systemd/system/{unit}")]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !text.contains("accel-agent"), "{unit}: {text}");
    }

    // postinst: the service user, the control group and the directories from sysusers.d and tmpfiles.d.
    let members = ok("id", &["-nG", "accel-agent"]);
    assert!(members.split_whitespace().any(|g| g == "adm"), "accel-agent reads logs through adm: {members}");
    let (uid, gid) = (uid_of("accel-agent"), gid_of("accel-agent"));
    for dir in ["/var/lib/accel-agent", "/run/accel-agent"] {
        let meta = std::fs::metadata(dir).unwrap_or_else(|e| panic!("{dir} after install: {e}"));
        assert_eq!((meta.uid(), meta.gid(), meta.permissions().mode() & 0o777), (uid, gid, 0o750), "{dir}");
    }
    run_installed_agent_as_service_user();

    // Remove: programs go, the admin's config and the state stay.
    let mut edited = std::fs::read_to_string(CONFFILE).expect("the conffile");
    edited.push_str("\n# edited by the packaging test\n");
    std::fs::write(CONFFILE, &edited).expect("edit the conffile");
    dpkg(&["--remove", PACKAGE]);
    assert_eq!(dpkg_status().as_deref(), Some("deinstall ok config-files"));
    for gone in ["/usr/bin/accel-agent", "/usr/bin/agentctl", "/usr/lib/systemd/system/accel-agent.service"] {
        assert!(!Path::new(gone).exists(), "{gone} is still there after dpkg --remove");
    }
    assert_eq!(std::fs::read_to_string(CONFFILE).expect("the conffile survives remove"), edited);
    assert!(Path::new("/var/lib/accel-agent").is_dir(), "remove keeps the state");

    // Reinstalling (as an upgrade does) keeps the edited conffile.
    dpkg(&["--install", deb_str]);
    assert_eq!(std::fs::read_to_string(CONFFILE).expect("the conffile"), edited, "the edit was replaced");
    assert!(Path::new("/usr/bin/accel-agent").exists());

    // Purge: config and state go too.
    dpkg(&["--purge", PACKAGE]);
    assert_eq!(dpkg_status(), None);
    for gone in [CONFFILE, "/etc/accel-agent", "/var/lib/accel-agent", "/usr/bin/agentctl"] {
        assert!(!Path::new(gone).exists(), "{gone} is still there after dpkg --purge");
    }
    drop(installed);
}

// ------------------------------------------------------------------------------------------------ rpm

#[test]
fn rpm_scripts_are_valid_shell() {
    for script in ["post.sh", "preun.sh", "postun.sh"] {
        ok("sh", &["-n", &repo_root().join("packaging/rpm").join(script).display().to_string()]);
    }
}

#[test]
#[cfg_attr(
    not(all(has_packages_dir, has_rpm)),
    ignore = "needs rpm and ACCEL_PACKAGES_DIR (the packages from packaging/build-packages.sh)"
)]
fn rpm_metadata_and_contents() {
    require(have("rpm"), "rpm is not installed (Debian package: rpm)");
    let rpm = package_file(&format!("{PACKAGE}-"), ".rpm");
    let rpm = rpm.to_str().expect("UTF-8 path");
    let query = |format: &str| ok("rpm", &["-qp", "--queryformat", format, rpm]);

    assert_eq!(query("%{NAME} %{VERSION} %{RELEASE}"), format!("{PACKAGE} {VERSION} 1"));
    assert_eq!(query("%{LICENSE}"), "Apache-2.0");

    let files: BTreeMap<String, (String, String)> = query("[%{FILENAMES}\t%{FILEMODES:perms}\t%{FILEFLAGS:fflags}\n]")
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let name = f.next().unwrap_or_default().to_owned();
            (name, (f.next().unwrap_or_default().to_owned(), f.next().unwrap_or_default().to_owned()))
        })
        .collect();
    for f in shipped(RPM_ZSH) {
        let (mode, _) = files.get(&f.path).unwrap_or_else(|| panic!("{} is not in the .rpm: {files:#?}", f.path));
        let want = if f.mode == 0o755 { "-rwxr-xr-x" } else { "-rw-r--r--" };
        assert_eq!(mode, want, "{}", f.path);
    }
    // %config(noreplace): an edited config survives upgrades, as the deb's conffile does.
    let (_, flags) = &files[CONFFILE];
    assert!(flags.contains('c') && flags.contains('n'), "{CONFFILE} flags {flags:?}");
    let configs: Vec<&String> = files.iter().filter(|(_, (_, f))| f.contains('c')).map(|(p, _)| p).collect();
    assert_eq!(configs, [CONFFILE]);

    // cargo-generate-rpm takes a script path that does not resolve as the script's text: make sure each
    // scriptlet is the file's contents.
    for (tag, script) in [("POSTIN", "post.sh"), ("PREUN", "preun.sh"), ("POSTUN", "postun.sh")] {
        let packaged = query(&format!("%{{{tag}}}"));
        let source = String::from_utf8(repo_file(&format!("packaging/rpm/{script}"))).expect("UTF-8");
        assert_eq!(packaged.trim_end(), source.trim_end(), "%{tag} is not packaging/rpm/{script}");
    }
    let requires = ok("rpm", &["-qp", "--requires", rpm]);
    assert!(requires.lines().any(|r| r.starts_with("libc.so.6")), "{requires}");
}
