//! The metric families of a [`ResourceReadings`]. Names follow node_exporter's with the `accel_` prefix
//! where it has an equivalent, and the Prometheus client libraries' `process_*` for the agent itself.

use super::{ResourceReadings, SourceFile};
use crate::catalogue::{self as c, Spec};
use crate::export::{Families, Labels, labels, lv};

/// Adds the families of `r` to `out`. A value that was not read has no sample.
pub fn export(r: &ResourceReadings, out: &mut Families) {
    cpu(r, out);
    memory(r, out);
    filesystems(r, out);
    disks(r, out);
    network(r, out);
    process(r, out);
    for file in SourceFile::ALL {
        out.sample(&c::RESOURCES_PARSE_ERRORS, labels![("file", lv(file.name()))], r.parse_errors(file) as f64);
    }
}

/// A sample without labels, if the value was read.
fn single(out: &mut Families, spec: &'static Spec, v: Option<f64>) {
    if let Some(v) = v {
        out.sample(spec, Vec::new(), v);
    }
}

fn cpu(r: &ResourceReadings, out: &mut Families) {
    for (mode, secs) in r.cpu.modes() {
        if let Some(s) = secs {
            out.sample(&c::CPU_SECONDS, labels![("mode", lv(mode))], s);
        }
    }
    single(out, &c::CPUS, r.cpu.count.map(f64::from));
    single(out, &c::CPU_UTILIZATION, r.cpu.utilization_ratio);
    if let Some(l) = &r.load {
        single(out, &c::LOAD1, Some(l.load1));
        single(out, &c::LOAD5, Some(l.load5));
        single(out, &c::LOAD15, Some(l.load15));
    }
}

fn memory(r: &ResourceReadings, out: &mut Families) {
    let m = &r.memory;
    let b = |v: Option<u64>| v.map(|v| v as f64);
    single(out, &c::MEMORY_TOTAL, b(m.total_bytes));
    single(out, &c::MEMORY_AVAILABLE, b(m.available_bytes));
    single(out, &c::MEMORY_FREE, b(m.free_bytes));
    single(out, &c::MEMORY_BUFFERS, b(m.buffers_bytes));
    single(out, &c::MEMORY_CACHED, b(m.cached_bytes));
    single(out, &c::MEMORY_USED_RATIO, m.used_ratio());
    single(out, &c::SWAP_TOTAL, b(m.swap_total_bytes));
    single(out, &c::SWAP_FREE, b(m.swap_free_bytes));
}

fn filesystems(r: &ResourceReadings, out: &mut Families) {
    for fs in &r.filesystems {
        let labels = || -> Labels {
            labels![
                ("device", fs.device.clone()),
                ("mountpoint", fs.mount_point.clone()),
                ("fstype", fs.fs_type.clone())
            ]
        };
        let mut g = |spec: &'static Spec, v: Option<f64>| {
            if let Some(v) = v {
                out.sample(spec, labels(), v);
            }
        };
        g(&c::FILESYSTEM_SIZE, fs.size_bytes.map(|v| v as f64));
        g(&c::FILESYSTEM_FREE, fs.free_bytes.map(|v| v as f64));
        g(&c::FILESYSTEM_AVAIL, fs.avail_bytes.map(|v| v as f64));
        g(&c::FILESYSTEM_USED_RATIO, fs.used_ratio());
        g(&c::FILESYSTEM_READONLY, Some(f64::from(u8::from(fs.read_only))));
        g(&c::FILESYSTEM_DEVICE_ERROR, Some(f64::from(u8::from(fs.error))));
    }
}

fn disks(r: &ResourceReadings, out: &mut Families) {
    for d in &r.disks {
        let l = || labels![("device", d.device.clone())];
        out.sample(&c::DISK_READS_COMPLETED, l(), d.reads_completed as f64);
        out.sample(&c::DISK_WRITES_COMPLETED, l(), d.writes_completed as f64);
        out.sample(&c::DISK_READ_BYTES, l(), d.read_bytes as f64);
        out.sample(&c::DISK_WRITTEN_BYTES, l(), d.written_bytes as f64);
        out.sample(&c::DISK_IO_TIME, l(), d.io_time_seconds);
    }
}

fn network(r: &ResourceReadings, out: &mut Families) {
    for n in &r.network {
        let l = || labels![("device", n.device.clone())];
        let mut counter = |spec: &'static Spec, v: u64| out.sample(spec, l(), v as f64);
        counter(&c::NETWORK_RECEIVE_BYTES, n.receive_bytes);
        counter(&c::NETWORK_RECEIVE_PACKETS, n.receive_packets);
        counter(&c::NETWORK_RECEIVE_ERRS, n.receive_errs);
        counter(&c::NETWORK_RECEIVE_DROP, n.receive_drop);
        counter(&c::NETWORK_TRANSMIT_BYTES, n.transmit_bytes);
        counter(&c::NETWORK_TRANSMIT_PACKETS, n.transmit_packets);
        counter(&c::NETWORK_TRANSMIT_ERRS, n.transmit_errs);
        counter(&c::NETWORK_TRANSMIT_DROP, n.transmit_drop);
    }
}

fn process(r: &ResourceReadings, out: &mut Families) {
    let p = &r.process;
    let f = |v: Option<u64>| v.map(|v| v as f64);
    single(out, &c::PROCESS_RESIDENT_MEMORY, f(p.resident_memory_bytes));
    single(out, &c::PROCESS_VIRTUAL_MEMORY, f(p.virtual_memory_bytes));
    single(out, &c::PROCESS_CPU_SECONDS, p.cpu_seconds);
    single(out, &c::PROCESS_OPEN_FDS, f(p.open_fds));
    single(out, &c::PROCESS_MAX_FDS, p.max_fds.map(|v| if v == u64::MAX { f64::INFINITY } else { v as f64 }));
    single(out, &c::PROCESS_THREADS, f(p.threads));
    single(out, &c::PROCESS_START_TIME, p.start_time_seconds);
}
