//! The collection supervisor around a read that hangs and then comes back.

use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use accel_sim::sysfs_tree::FakeSysfs;
use agent::sources::collect::{CollectError, Supervisor};
use collectors::sysfs::{OpenFiles, ReadFailure};
use collectors::{Families, HostReadings};
use config::{CollectorKind, Config};

fn temp2(readings: &HostReadings) -> Option<f64> {
    let mut f = Families::new();
    readings.export(&mut f);
    f.value("accel_hwmon_temp_celsius", &[("sensor", "temp2")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_read_that_returns_frees_its_thread_and_the_collector_recovers() {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("board"), Some("devices/platform/board.0")).attr("temp1_input", "45000");
    let fifo = "devices/platform/board.0/hwmon/hwmon0/temp2_input";
    fs.fifo(fifo);
    let mut cfg = Config::default();
    cfg.collectors.hwmon.timeout = Some("50ms".parse().unwrap());
    let mut sup = Supervisor::new(cfg.collector(CollectorKind::Hwmon), fs.root(), OpenFiles::new(usize::MAX));

    // Round 1 blocks opening the FIFO: that read, and only it, is blamed.
    let out = sup.collect().await;
    match out.result {
        Err(CollectError::Hung { path, .. }) => assert!(path.ends_with("temp2_input"), "{path:?}"),
        other => panic!("expected a hung read, got {other:?}"),
    }
    assert_eq!((sup.stuck_threads(), sup.quarantined()), (1, 1));

    // Round 2 runs on a fresh worker that skips the quarantined file and reads the rest.
    let out = sup.collect().await;
    assert_eq!(out.stats.get(ReadFailure::Hung), 1);
    assert_eq!(temp2(out.result.as_ref().unwrap()), None);

    // A writer appears: the stuck open() returns and the thread is freed, exactly once.
    let writer =
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(fs.path(fifo)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sup.stuck_threads() != 0 {
        assert!(Instant::now() < deadline, "the stuck thread was not released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sup.quarantined(), 0);

    // The FIFO is replaced by a working file: the collector reads it and is whole again.
    fs.remove(fifo).write(fifo, "47000\n");
    drop(writer);
    let out = sup.collect().await;
    assert_eq!(out.stats.total(), 0, "{:?}", out.stats);
    assert_eq!(temp2(out.result.as_ref().unwrap()), Some(47.0));
    for _ in 0..3 {
        assert!(sup.collect().await.result.is_ok());
    }
    assert_eq!((sup.stuck_threads(), sup.quarantined()), (0, 0), "counts never wrap");
}
