//! Host resources and the agent's own footprint, as Prometheus sees them from the real agent.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

#[test]
fn the_host_and_the_agents_own_footprint_are_metrics() {
    let fs = FakeSysfs::new();
    let (agent, _cfg) = Agent::with_config(fs.root(), "poll_interval = \"500ms\"\n");
    agent.wait_ready();
    agent.wait_for("utilisation", || agent.metric("accel_cpu_utilization_ratio", &[]).is_some());
    assert_eq!(agent.metric("accel_collector_success", &[("collector", "resources")]), Some(1.0));
    let rss = agent.metric("accel_process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1e6 && rss < 1e9, "resident memory in bytes: {rss}");
    assert!(agent.metric("accel_process_open_fds", &[]).unwrap() >= 3.0);
    assert!(agent.metric("accel_process_threads", &[]).unwrap() >= 2.0);
    assert!(agent.metric("accel_process_cpu_seconds_total", &[]).unwrap() > 0.0);
    let total = agent.metric("accel_memory_total_bytes", &[]).unwrap();
    let available = agent.metric("accel_memory_available_bytes", &[]).unwrap();
    assert!(total > 1e8 && available <= total, "{available} of {total}");
    let used = agent.metric("accel_memory_used_ratio", &[]).unwrap();
    assert!((used - (1.0 - available / total)).abs() < 0.05, "used ratio {used}");
    assert!(agent.metric("accel_cpus", &[]).unwrap() >= 1.0);
    let ratio = agent.metric("accel_cpu_utilization_ratio", &[]).unwrap();
    assert!((0.0..=1.0).contains(&ratio));
    assert!(agent.metric("accel_cpu_seconds_total", &[("mode", "user")]).unwrap() > 0.0);
}

#[test]
fn a_proc_root_that_is_not_procfs_fails_the_collector_not_the_agent() {
    let fs = FakeSysfs::new();
    let empty = tempfile::tempdir().unwrap();
    let cfg =
        format!("poll_interval = \"500ms\"\n[collectors.resources]\nproc_root = \"{}\"\n", empty.path().display());
    let (agent, _cfg) = Agent::with_config(fs.root(), &cfg);
    agent.wait_ready();
    assert_eq!(agent.metric("accel_collector_success", &[("collector", "resources")]), Some(0.0));
    assert_eq!(agent.metric("accel_memory_total_bytes", &[]), None, "absent, not 0");
    assert_eq!(agent.get("/-/healthy").status, 200);
}
