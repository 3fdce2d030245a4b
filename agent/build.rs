//! Records the git revision for accel_build_info and --version, and sets the cfgs that ignore the tests
//! whose tools are missing (see tests/external_tools.rs).
use std::process::Command;

#[path = "../tests/external_tools.rs"]
mod external_tools;

fn main() {
    external_tools::emit_external_cfgs();
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
