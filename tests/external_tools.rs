// Shared by the build scripts of `agent` and `accel-e2e` (each includes it with `#[path]`), so that the
// tests that need something outside the repository are compiled `#[ignore]`d when it is missing, and the
// test summary counts them as ignored instead of reporting a pass for work not done.
//
// Each condition sets a cfg when it holds at build time:
//
//   has_promtool, has_prometheus, has_node_exporter, has_systemd_analyze, has_curl, has_dpkg, has_rpm,
//   has_alertmanager, has_chromium: the programs are on PATH (TOOLS below);
//   is_root: the build runs as root (installing the .deb, running agentctl as other users);
//   has_packages_dir: ACCEL_PACKAGES_DIR is set (the .deb/.rpm built by packaging/build-packages.sh).
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
];

pub fn emit_external_cfgs() {
    for var in ["PATH", "ACCEL_REQUIRE_EXTERNAL", "ACCEL_PACKAGES_DIR"] {
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
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
