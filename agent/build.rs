//! Records the git revision for accel_build_info and --version, and sets the cfgs that ignore the tests
//! whose tools are missing (see sim/external_tools.rs).
use std::process::Command;

#[path = "../sim/external_tools.rs"]
mod external_tools;

fn main() {
    external_tools::emit_external_cfgs();
    shared_design_cfg();
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ACCEL_REVISION={revision}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
}

/// `has_shared_design` when the contract, ../shared/DESIGN.md, lies beside the repository (the developers'
/// machines; not a fresh clone or CI), so the test comparing docs/design-contract-metrics.txt with it runs
/// there and is ignored elsewhere. Not forced by ACCEL_REQUIRE_EXTERNAL: CI never has it.
fn shared_design_cfg() {
    println!("cargo::rustc-check-cfg=cfg(has_shared_design)");
    let design = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/DESIGN.md");
    if design.is_file() {
        // Watched only while it exists: a missing path would make cargo rerun this script on every build.
        println!("cargo::rerun-if-changed={}", design.display());
        println!("cargo::rustc-cfg=has_shared_design");
    }
}
