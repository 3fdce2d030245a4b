// Shared by the build scripts of `agent` and `accel-sim` (each includes it with `#[path]`), so that the
// tests that need something outside the repository are compiled `#[ignore]`d when it is missing, and the
// test summary counts them as ignored instead of reporting a pass for work not done.
//
// Each condition sets a cfg when it holds at build time:
//
//   has_promtool, has_prometheus, has_node_exporter, has_systemd_analyze, has_curl, has_dpkg, has_rpm,
//   has_alertmanager, has_chromium, has_python3: the programs are on PATH (TOOLS below);
//   is_root: the build runs as root (installing the .deb, running agentctl as other users);
//   has_packages_dir: ACCEL_PACKAGES_DIR is set (the .deb/.rpm built by packaging/build-packages.sh);
//   has_spinnaker_venv: the Python venv scripts/spinnaker-venv.sh makes (pinned spalloc-server and
//   SpiNNMan) is complete, at $ACCEL_SPINNAKER_VENV or target/spinnaker-venv. The script touches this
//   file when it creates one, so the build scripts look again.
//
// With ACCEL_REQUIRE_EXTERNAL set (as `.ci/run` does) every cfg is set, so the tests run and fail with a
// message naming what is missing. The script reruns when PATH, those variables or a PATH directory change
// (installing a package changes /usr/bin), so installing a tool is enough to un-ignore its tests.

/// (cfg, programs that must all be on PATH).
const TOOLS: &[(&str, &[&str])] = &[
    ("has_promtool", &["promtool"]),
    ("has_prometheus", &["prometheus"]),
    ("has_node_exporter", &["prometheus-node-exporter"]),
    ("has_systemd_analyze", &["systemd-analyze"]),
    ("has_curl", &["curl"]),
    ("has_dpkg", &["dpkg", "dpkg-deb", "dpkg-query"]),
    ("has_rpm", &["rpm"]),
    ("has_alertmanager", &["prometheus-alertmanager"]),
    ("has_chromium", &["chromium"]),
    ("has_python3", &["python3"]),
];

pub fn emit_external_cfgs() {
    for var in ["PATH", "ACCEL_REQUIRE_EXTERNAL", "ACCEL_PACKAGES_DIR", "ACCEL_SPINNAKER_VENV"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path).filter(|d| d.is_dir()).collect();
    for dir in &dirs {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    let required = std::env::var_os("ACCEL_REQUIRE_EXTERNAL").is_some();
    let on_path = |program: &str| dirs.iter().any(|d| d.join(program).is_file());
    let set = |cfg: &str, holds: bool| {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if holds || required {
            println!("cargo::rustc-cfg={cfg}");
        }
    };
    for (cfg, programs) in TOOLS {
        set(cfg, programs.iter().all(|p| on_path(p)));
    }
    set("is_root", is_root());
    set("has_packages_dir", std::env::var_os("ACCEL_PACKAGES_DIR").is_some());
    // The venv records its pins last, so a half-made one does not count. Watched only once it exists:
    // a missing path would make cargo rerun this script on every build.
    let venv = match std::env::var_os("ACCEL_SPINNAKER_VENV") {
        Some(v) => std::path::PathBuf::from(v),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/spinnaker-venv"),
    };
    let pins = venv.join(".pins");
    if pins.is_file() {
        println!("cargo::rerun-if-changed={}", pins.display());
    }
    set("has_spinnaker_venv", pins.is_file() && venv.join("bin/python").is_file());
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
