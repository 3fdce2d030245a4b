//! One full resources collection (read + export) against this machine's real /proc, as the agent does it
//! every poll.

use collectors::Families;
use collectors::resources::{self, ResourcesReader};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut reader = ResourcesReader::default();
    let first = reader.read().expect("read /proc");
    let mut f = Families::new();
    resources::export(&first, &mut f);
    eprintln!(
        "real /proc: {} families, {} samples, {} filesystems, {} disks, {} interfaces",
        f.len(),
        f.iter().map(|f| f.samples.len()).sum::<usize>(),
        first.filesystems.len(),
        first.disks.len(),
        first.network.len()
    );

    c.bench_function("resources_read_and_export", |b| {
        b.iter(|| {
            let r = reader.read().expect("read /proc");
            let mut f = Families::new();
            resources::export(&r, &mut f);
            std::hint::black_box(f);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
