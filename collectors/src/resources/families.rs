//! The metric families of a [`ResourceReadings`]. Names follow node_exporter's with the `accel_` prefix
//! where it has an equivalent, and the Prometheus client libraries' `process_*` for the agent itself.

use super::{ResourceReadings, SourceFile};
use crate::export::{Families, LabelValue, lv};

/// Adds the families of `r` to `out`. A value that was not read has no sample.
pub fn export(r: &ResourceReadings, out: &mut Families) {
    cpu(r, out);
    memory(r, out);
    filesystems(r, out);
    disks(r, out);
    network(r, out);
    process(r, out);
    for file in SourceFile::ALL {
        out.counter(
            "accel_resources_parse_errors_total",
            "Malformed lines skipped in a procfs file by the resources collector since the agent started",
            vec![("file", lv(file.name()))],
            r.parse_errors(file) as f64,
        );
    }
}

fn gauge(out: &mut Families, name: &str, help: &str, v: Option<f64>) {
    if let Some(v) = v {
        out.gauge(name, help, Vec::new(), v);
    }
}

fn counter(out: &mut Families, name: &str, help: &str, v: Option<f64>) {
    if let Some(v) = v {
        out.counter(name, help, Vec::new(), v);
    }
}

fn cpu(r: &ResourceReadings, out: &mut Families) {
    for (mode, secs) in r.cpu.modes() {
        if let Some(s) = secs {
            out.counter(
                "accel_cpu_seconds_total",
                "Seconds all CPUs together spent in each mode, from /proc/stat",
                vec![("mode", lv(mode))],
                s,
            );
        }
    }
    gauge(out, "accel_cpus", "Number of online CPUs", r.cpu.count.map(f64::from));
    gauge(
        out,
        "accel_cpu_utilization_ratio",
        "Share of CPU time not idle or in iowait over the last collection interval, 0 to 1",
        r.cpu.utilization_ratio,
    );
    if let Some(l) = &r.load {
        gauge(out, "accel_load1", "1-minute load average", Some(l.load1));
        gauge(out, "accel_load5", "5-minute load average", Some(l.load5));
        gauge(out, "accel_load15", "15-minute load average", Some(l.load15));
    }
}

fn memory(r: &ResourceReadings, out: &mut Families) {
    let m = &r.memory;
    let b = |v: Option<u64>| v.map(|v| v as f64);
    gauge(out, "accel_memory_total_bytes", "Usable RAM in bytes (MemTotal)", b(m.total_bytes));
    gauge(
        out,
        "accel_memory_available_bytes",
        "Memory available for new work without swapping, in bytes (MemAvailable)",
        b(m.available_bytes),
    );
    gauge(out, "accel_memory_free_bytes", "Unused RAM in bytes (MemFree)", b(m.free_bytes));
    gauge(out, "accel_memory_buffers_bytes", "Block device buffers in bytes (Buffers)", b(m.buffers_bytes));
    gauge(out, "accel_memory_cached_bytes", "Page cache in bytes (Cached)", b(m.cached_bytes));
    gauge(out, "accel_memory_used_ratio", "1 - MemAvailable / MemTotal, 0 to 1", m.used_ratio());
    gauge(out, "accel_swap_total_bytes", "Swap space in bytes (SwapTotal)", b(m.swap_total_bytes));
    gauge(out, "accel_swap_free_bytes", "Unused swap space in bytes (SwapFree)", b(m.swap_free_bytes));
}

fn filesystems(r: &ResourceReadings, out: &mut Families) {
    for fs in &r.filesystems {
        let labels = || -> Vec<(&'static str, LabelValue)> {
            vec![("device", fs.device.clone()), ("mountpoint", fs.mount_point.clone()), ("fstype", fs.fs_type.clone())]
        };
        let mut g = |name: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.gauge(name, help, labels(), v);
            }
        };
        g("accel_filesystem_size_bytes", "Filesystem size in bytes", fs.size_bytes.map(|v| v as f64));
        g(
            "accel_filesystem_free_bytes",
            "Free space in bytes, including root-reserved blocks",
            fs.free_bytes.map(|v| v as f64),
        );
        g(
            "accel_filesystem_avail_bytes",
            "Space available to unprivileged users in bytes",
            fs.avail_bytes.map(|v| v as f64),
        );
        g("accel_filesystem_used_ratio", "Used share as df's Use%: used / (used + avail), 0 to 1", fs.used_ratio());
        g(
            "accel_filesystem_readonly",
            "1 if the filesystem is mounted read-only",
            Some(f64::from(u8::from(fs.read_only))),
        );
        g(
            "accel_filesystem_device_error",
            "1 if statvfs failed for this filesystem, so its sizes are absent",
            Some(f64::from(u8::from(fs.error))),
        );
    }
}

fn disks(r: &ResourceReadings, out: &mut Families) {
    for d in &r.disks {
        let l = || vec![("device", d.device.clone())];
        out.counter("accel_disk_reads_completed_total", "Reads completed", l(), d.reads_completed as f64);
        out.counter("accel_disk_writes_completed_total", "Writes completed", l(), d.writes_completed as f64);
        out.counter("accel_disk_read_bytes_total", "Bytes read", l(), d.read_bytes as f64);
        out.counter("accel_disk_written_bytes_total", "Bytes written", l(), d.written_bytes as f64);
        out.counter("accel_disk_io_time_seconds_total", "Seconds the device had I/O in flight", l(), d.io_time_seconds);
    }
}

fn network(r: &ResourceReadings, out: &mut Families) {
    for n in &r.network {
        let l = || vec![("device", n.device.clone())];
        let mut c = |name: &str, help: &str, v: u64| out.counter(name, help, l(), v as f64);
        c("accel_network_receive_bytes_total", "Bytes received", n.receive_bytes);
        c("accel_network_receive_packets_total", "Packets received", n.receive_packets);
        c("accel_network_receive_errs_total", "Receive errors", n.receive_errs);
        c("accel_network_receive_drop_total", "Received packets dropped", n.receive_drop);
        c("accel_network_transmit_bytes_total", "Bytes transmitted", n.transmit_bytes);
        c("accel_network_transmit_packets_total", "Packets transmitted", n.transmit_packets);
        c("accel_network_transmit_errs_total", "Transmit errors", n.transmit_errs);
        c("accel_network_transmit_drop_total", "Transmitted packets dropped", n.transmit_drop);
    }
}

fn process(r: &ResourceReadings, out: &mut Families) {
    let p = &r.process;
    let f = |v: Option<u64>| v.map(|v| v as f64);
    gauge(out, "accel_process_resident_memory_bytes", "Agent resident memory in bytes", f(p.resident_memory_bytes));
    gauge(out, "accel_process_virtual_memory_bytes", "Agent virtual memory in bytes", f(p.virtual_memory_bytes));
    counter(out, "accel_process_cpu_seconds_total", "Agent user and system CPU time in seconds", p.cpu_seconds);
    gauge(out, "accel_process_open_fds", "Agent open file descriptors", f(p.open_fds));
    gauge(
        out,
        "accel_process_max_fds",
        "Agent soft limit on open file descriptors (+Inf if unlimited)",
        p.max_fds.map(|v| if v == u64::MAX { f64::INFINITY } else { v as f64 }),
    );
    gauge(out, "accel_process_threads", "Agent threads", f(p.threads));
    gauge(
        out,
        "accel_process_start_time_seconds",
        "Agent start time in seconds since the Unix epoch",
        p.start_time_seconds,
    );
}
