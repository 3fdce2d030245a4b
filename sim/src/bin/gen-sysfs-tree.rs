//! Writes the benchmark sysfs tree (issue 2's large tree) into a directory, for scripts/bench-vs-node-exporter.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen-sysfs-tree DIR");
        return ExitCode::from(64);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gen-sysfs-tree: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    accel_sim::large_tree::generate(&dir, accel_sim::large_tree::TreeSpec::LARGE);
    ExitCode::SUCCESS
}
