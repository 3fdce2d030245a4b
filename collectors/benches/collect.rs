//! One full collection (all six host collectors) of issue 2's large tree: 64 hwmon chips x 24 sensors,
//! 64 thermal zones, 32 cooling devices, 16 powercap zones, 128 PCI devices with AER.
//!
//! `steady` is what the agent does every poll (discovery already done, one pread per value that changes
//! between polls; limits and labels were read at discovery); `steady_no_open_files` is the same with
//! `[collectors] max_open_files = 0` (every value opened, read and closed), the cost of running beyond
//! the budget; `discovery` is the first collection, one after the set of devices changed, and the one
//! every `rediscover_interval`.

use collectors::sysfs::{OpenFiles, Quarantine, ReadWatch, SysfsIo};
use collectors::{Families, HostCollector};
use config::{CollectorKind, Config};
use criterion::{Criterion, criterion_group, criterion_main};

fn collectors(root: &std::path::Path) -> Vec<HostCollector> {
    let cfg = Config::default();
    CollectorKind::ALL.iter().map(|k| HostCollector::new(&cfg.collector(*k), root)).collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    accel_sim::large_tree::generate(dir.path(), accel_sim::large_tree::TreeSpec::LARGE);
    let mut io = SysfsIo::new(ReadWatch::new(Quarantine::new()));

    let mut all = collectors(dir.path());
    let mut values = 0;
    for col in &mut all {
        let mut f = Families::new();
        col.collect(&mut io).expect("collect").export(&mut f);
        values += f.iter().map(|f| f.samples.len()).sum::<usize>();
    }
    eprintln!("large tree: {values} samples per collection");

    let mut g = c.benchmark_group("large_tree");
    g.bench_function("steady", |b| {
        b.iter(|| {
            for col in &mut all {
                std::hint::black_box(col.collect(&mut io).expect("collect"));
            }
        })
    });
    g.bench_function("steady_and_export", |b| {
        b.iter(|| {
            let mut f = Families::new();
            for col in &mut all {
                col.collect(&mut io).expect("collect").export(&mut f);
            }
            std::hint::black_box(f);
        })
    });
    let mut closed_io = SysfsIo::new(ReadWatch::new(Quarantine::new())).with_open_files(OpenFiles::new(0));
    let mut closed = collectors(dir.path());
    for col in &mut closed {
        col.collect(&mut closed_io).expect("collect");
    }
    g.bench_function("steady_no_open_files", |b| {
        b.iter(|| {
            for col in &mut closed {
                std::hint::black_box(col.collect(&mut closed_io).expect("collect"));
            }
        })
    });
    g.sample_size(20);
    g.bench_function("discovery", |b| {
        b.iter(|| {
            for col in &mut collectors(dir.path()) {
                std::hint::black_box(col.collect(&mut io).expect("collect"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
