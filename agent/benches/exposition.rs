//! Encoding a scrape of issue 2's large tree: the families from one collection of every host collector,
//! written as text format 0.0.4 (what a plain scrape asks for). This is paid once per collection and
//! format (the result is cached until the next one), not once per scrape.

use std::time::Duration;

use agent::publish::exposition::{Exposition, Format};
use agent::publish::state::AgentState;
use agent::sources::collect::Outcome;
use collectors::HostCollector;
use collectors::sysfs::{Quarantine, ReadStats, ReadWatch, SysfsIo};
use config::{CollectorKind, Config};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    accel_sim::large_tree::generate(dir.path(), accel_sim::large_tree::TreeSpec::LARGE);
    let cfg = Config::default();
    let state =
        AgentState::new(CollectorKind::ALL.iter().map(|k| (*k, Duration::from_secs(5), Duration::from_secs(2))));
    let mut io = SysfsIo::new(ReadWatch::new(Quarantine::new()));
    let mut pci = None;
    for kind in CollectorKind::ALL {
        let mut col = HostCollector::new(&cfg.collector(kind), dir.path());
        let readings = col.collect(&mut io).expect("collect");
        if kind == CollectorKind::PciAer {
            pci = Some(readings.clone());
        }
        state.record(
            kind,
            Outcome { result: Ok(readings), stats: ReadStats::default(), duration: Duration::from_millis(1) },
            0,
            0,
        );
    }
    let pci = pci.expect("pci_aer collected");
    let exposition = Exposition::new(state.clone());
    let bytes = exposition.render(Format::Text004, false).len();
    eprintln!("large tree scrape: {bytes} bytes of text format");

    c.bench_function("encode_large_tree", |b| {
        b.iter(|| {
            // A new generation each time, so the cache cannot answer.
            let outcome = Outcome { result: Ok(pci.clone()), stats: ReadStats::default(), duration: Duration::ZERO };
            state.record(CollectorKind::PciAer, outcome, 0, 0);
            std::hint::black_box(exposition.render(Format::Text004, false));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
