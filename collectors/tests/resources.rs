//! The resources reader against fake /proc trees with hand-written content (exact values), malformed and
//! missing files, fake mount tables over real temp dirs (statvfs works on them), and this machine's /proc.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use collectors::Families;
use collectors::export::MetricKind;
use collectors::resources::{self, ResourceReadings, ResourcesError, ResourcesOptions, ResourcesReader, SourceFile};

const STAT: &str = "\
cpu  10000 500 3000 80000 1000 200 300 0 0 0
cpu0 5000 250 1500 40000 500 100 150 0 0 0
cpu1 5000 250 1500 40000 500 100 150 0 0 0
intr 123456 0 0 0
ctxt 987654
btime 1700000000
processes 4321
procs_running 2
procs_blocked 0
softirq 1 2 3
";

const MEMINFO: &str = "\
MemTotal:       16384000 kB
MemFree:         2048000 kB
MemAvailable:    4096000 kB
Buffers:          512000 kB
Cached:          1024000 kB
SwapCached:            0 kB
Active:          8000000 kB
SwapTotal:       2097152 kB
SwapFree:        1048576 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

const LOADAVG: &str = "0.50 1.25 2.00 3/456 7890\n";

const DISKSTATS: &str = "\
   7       0 loop0 100 0 200 10 0 0 0 0 0 10 10 0 0 0 0 0 0
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0
   8       0 sda 1000 10 20000 500 2000 20 40000 900 0 1500 1400 0 0 0 0 0 0
   8       1 sda1 900 10 18000 450 1900 20 38000 850 0 1400 1300 0 0 0 0 0 0
 259       0 nvme0n1 5000 0 100000 2000 6000 0 200000 3000 1 2500 5000
 259       1 nvme0n1p1 4000 0 90000 1800 5000 0 180000 2800 0 2400 4600
 253       0 dm-0 7 0 8 0 9 0 10 0 0 1234 0
";

const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
  eth0: 1000000 2000 3 4 0 0 0 7 3000000 4000 5 6 0 0 0 0
wlan0:12345 10 0 1 0 0 0 0 54321 20 0 2 0 0 0 0
";

// utime 250, stime 150, num_threads 7, starttime 12345, vsize 104857600, rss 2560 pages. The command name
// has a space and a ')' in it, as a thread renamed by its program may.
const SELF_STAT: &str = "4242 (accel agent) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 12345 \
104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0\n";

const SELF_LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            65536                524288               files
Max locked memory         8388608              8388608              bytes
";

struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn empty() -> Self {
        FakeProc { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn full() -> Self {
        let p = FakeProc::empty();
        p.write("stat", STAT);
        p.write("meminfo", MEMINFO);
        p.write("loadavg", LOADAVG);
        p.write("diskstats", DISKSTATS);
        p.write("net/dev", NET_DEV);
        p.write("self/stat", SELF_STAT);
        p.write("self/limits", SELF_LIMITS);
        p.write("self/mounts", "");
        for fd in ["0", "1", "2", "5"] {
            p.write(&format!("self/fd/{fd}"), "");
        }
        p
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    fn reader(&self) -> ResourcesReader {
        ResourcesReader::new(self.root(), opts())
    }
}

/// Fixed units, so the expected values do not depend on this machine's USER_HZ and page size.
fn opts() -> ResourcesOptions {
    ResourcesOptions { clock_ticks_per_second: 100, page_size: 4096, ..ResourcesOptions::default() }
}

fn families(r: &ResourceReadings) -> Families {
    let mut f = Families::new();
    resources::export(r, &mut f);
    f
}

fn names(f: &Families) -> Vec<&str> {
    f.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn cpu_memory_load_from_hand_written_files() {
    let p = FakeProc::full();
    let r = p.reader().read().expect("read");
    assert_eq!(r.cpu.user, Some(100.0));
    assert_eq!(r.cpu.nice, Some(5.0));
    assert_eq!(r.cpu.system, Some(30.0));
    assert_eq!(r.cpu.idle, Some(800.0));
    assert_eq!(r.cpu.iowait, Some(10.0));
    assert_eq!(r.cpu.irq, Some(2.0));
    assert_eq!(r.cpu.softirq, Some(3.0));
    assert_eq!(r.cpu.steal, Some(0.0));
    assert_eq!(r.cpu.count, Some(2));
    assert_eq!(r.cpu.utilization_ratio, None, "no previous read");

    assert_eq!(r.memory.total_bytes, Some(16_777_216_000));
    assert_eq!(r.memory.free_bytes, Some(2_097_152_000));
    assert_eq!(r.memory.available_bytes, Some(4_194_304_000));
    assert_eq!(r.memory.buffers_bytes, Some(524_288_000));
    assert_eq!(r.memory.cached_bytes, Some(1_048_576_000));
    assert_eq!(r.memory.swap_total_bytes, Some(2_147_483_648));
    assert_eq!(r.memory.swap_free_bytes, Some(1_073_741_824));
    assert_eq!(r.memory.used_ratio(), Some(0.75));

    let f = families(&r);
    assert_eq!(f.value("accel_cpu_seconds_total", &[("mode", "idle")]), Some(800.0));
    assert_eq!(f.value("accel_cpu_seconds_total", &[("mode", "softirq")]), Some(3.0));
    assert_eq!(f.get("accel_cpu_seconds_total").unwrap().samples.len(), 8, "guest modes are not added");
    assert_eq!(f.value("accel_cpus", &[]), Some(2.0));
    assert!(f.get("accel_cpu_utilization_ratio").is_none());
    assert_eq!(f.value("accel_memory_total_bytes", &[]), Some(16_777_216_000.0));
    assert_eq!(f.value("accel_memory_available_bytes", &[]), Some(4_194_304_000.0));
    assert_eq!(f.value("accel_memory_free_bytes", &[]), Some(2_097_152_000.0));
    assert_eq!(f.value("accel_memory_buffers_bytes", &[]), Some(524_288_000.0));
    assert_eq!(f.value("accel_memory_cached_bytes", &[]), Some(1_048_576_000.0));
    assert_eq!(f.value("accel_memory_used_ratio", &[]), Some(0.75));
    assert_eq!(f.value("accel_swap_total_bytes", &[]), Some(2_147_483_648.0));
    assert_eq!(f.value("accel_swap_free_bytes", &[]), Some(1_073_741_824.0));
    assert_eq!(f.value("accel_load1", &[]), Some(0.5));
    assert_eq!(f.value("accel_load5", &[]), Some(1.25));
    assert_eq!(f.value("accel_load15", &[]), Some(2.0));
    for file in SourceFile::ALL {
        assert_eq!(f.value("accel_resources_parse_errors_total", &[("file", file.name())]), Some(0.0), "{file:?}");
    }
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn utilisation_from_the_deltas_of_two_reads() {
    let p = FakeProc::full();
    let mut reader = p.reader();
    reader.read().expect("first read");
    // +300 user, +100 system, +500 idle, +100 iowait: 1000 ticks, 600 of them idle or iowait.
    p.write("stat", "cpu  10300 500 3100 80500 1100 200 300 0 0 0\ncpu0 1 1 1 1\nbtime 1700000000\n");
    let r = reader.read().expect("second read");
    assert_eq!(r.cpu.utilization_ratio, Some(0.4));
    assert_eq!(r.cpu.user, Some(103.0));
    assert_eq!(r.cpu.count, Some(1));
    assert_eq!(families(&r).value("accel_cpu_utilization_ratio", &[]), Some(0.4));

    // No tick elapsed: no ratio rather than 0 or NaN.
    let r = reader.read().expect("third read");
    assert_eq!(r.cpu.utilization_ratio, None);

    // iowait stepping back (tickless kernels do this) neither lowers the counter nor breaks the ratio.
    p.write("stat", "cpu  10400 500 3100 80500 1050 200 300 0 0 0\n");
    let r = reader.read().expect("fourth read");
    assert_eq!(r.cpu.iowait, Some(11.0), "a counter does not go backwards");
    assert_eq!(r.cpu.utilization_ratio, Some(1.0));
}

#[test]
fn disks_skip_loop_ram_and_partitions_keep_dm() {
    let r = FakeProc::full().reader().read().expect("read");
    let devices: Vec<&str> = r.disks.iter().map(|d| &*d.device).collect();
    assert_eq!(devices, ["sda", "nvme0n1", "dm-0"]);
    let f = families(&r);
    let v = |name: &str, dev: &str| f.value(name, &[("device", dev)]);
    assert_eq!(v("accel_disk_reads_completed_total", "sda"), Some(1000.0));
    assert_eq!(v("accel_disk_writes_completed_total", "sda"), Some(2000.0));
    assert_eq!(v("accel_disk_read_bytes_total", "sda"), Some(20000.0 * 512.0));
    assert_eq!(v("accel_disk_written_bytes_total", "sda"), Some(40000.0 * 512.0));
    assert_eq!(v("accel_disk_io_time_seconds_total", "sda"), Some(1.5));
    assert_eq!(v("accel_disk_io_time_seconds_total", "nvme0n1"), Some(2.5), "a kernel without discard columns");
    assert_eq!(v("accel_disk_io_time_seconds_total", "dm-0"), Some(1.234));
    assert_eq!(v("accel_disk_reads_completed_total", "loop0"), None);
}

#[test]
fn network_skips_lo_and_reads_all_counters() {
    let r = FakeProc::full().reader().read().expect("read");
    let devices: Vec<&str> = r.network.iter().map(|d| &*d.device).collect();
    assert_eq!(devices, ["eth0", "wlan0"]);
    let f = families(&r);
    let v = |name: &str, dev: &str| f.value(name, &[("device", dev)]);
    assert_eq!(v("accel_network_receive_bytes_total", "eth0"), Some(1_000_000.0));
    assert_eq!(v("accel_network_receive_packets_total", "eth0"), Some(2000.0));
    assert_eq!(v("accel_network_receive_errs_total", "eth0"), Some(3.0));
    assert_eq!(v("accel_network_receive_drop_total", "eth0"), Some(4.0));
    assert_eq!(v("accel_network_transmit_bytes_total", "eth0"), Some(3_000_000.0));
    assert_eq!(v("accel_network_transmit_packets_total", "eth0"), Some(4000.0));
    assert_eq!(v("accel_network_transmit_errs_total", "eth0"), Some(5.0));
    assert_eq!(v("accel_network_transmit_drop_total", "eth0"), Some(6.0));
    assert_eq!(v("accel_network_receive_bytes_total", "wlan0"), Some(12345.0), "no space after the colon");
    assert_eq!(v("accel_network_transmit_drop_total", "wlan0"), Some(2.0));

    let with_lo = ResourcesOptions { network_devices: config::Filter::default(), ..opts() };
    let p = FakeProc::full();
    let r = ResourcesReader::new(p.root(), with_lo).read().expect("read");
    assert_eq!(r.network.len(), 3);
}

#[test]
fn own_process_from_self() {
    let r = FakeProc::full().reader().read().expect("read");
    let p = &r.process;
    assert_eq!(p.resident_memory_bytes, Some(2560 * 4096));
    assert_eq!(p.virtual_memory_bytes, Some(104_857_600));
    assert_eq!(p.cpu_seconds, Some(4.0));
    assert_eq!(p.threads, Some(7));
    assert_eq!(p.start_time_seconds, Some(1_700_000_123.45));
    assert_eq!(p.open_fds, Some(4));
    assert_eq!(p.max_fds, Some(65536));
    let f = families(&r);
    assert_eq!(f.value("accel_process_resident_memory_bytes", &[]), Some(10_485_760.0));
    assert_eq!(f.value("accel_process_virtual_memory_bytes", &[]), Some(104_857_600.0));
    assert_eq!(f.value("accel_process_cpu_seconds_total", &[]), Some(4.0));
    assert_eq!(f.value("accel_process_open_fds", &[]), Some(4.0));
    assert_eq!(f.value("accel_process_max_fds", &[]), Some(65536.0));
    assert_eq!(f.value("accel_process_threads", &[]), Some(7.0));
    assert_eq!(f.value("accel_process_start_time_seconds", &[]), Some(1_700_000_123.45));
}

#[test]
fn malformed_lines_are_counted_per_file_and_skipped() {
    let p = FakeProc::full();
    p.write("meminfo", "MemTotal:       16384000 kB\ngarbage\nMemFree: lots kB\nMemAvailable: 4096000 kB\n");
    p.write("diskstats", "   8       0 sda 1 2 3\n   8      16 sdb 1000 10 20000 500 2000 20 40000 900 0 1500 1400\n");
    p.write(
        "net/dev",
        "Inter-| x\n face | y\n  eth0: 1 2 3\nnonsense\n  eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
    );
    p.write("loadavg", "0.1 nan\n");
    p.write("stat", "cpu 1 2\ncpu0 1 2 3 4\nbtime 1700000000\n");
    p.write("self/stat", "4242 (agent) S 1 2 3\n");
    p.write("self/limits", "Max open files            lots                 lots                 files\n");
    p.write("self/mounts", "proc\n");
    let mut reader = p.reader();
    let r = reader.read().expect("read");

    assert_eq!(r.memory.total_bytes, Some(16_777_216_000));
    assert_eq!(r.memory.free_bytes, None, "unparsable: absent, not 0");
    assert_eq!(r.memory.used_ratio(), Some(0.75));
    assert_eq!(r.disks.iter().map(|d| &*d.device).collect::<Vec<_>>(), ["sdb"]);
    assert_eq!(r.network.iter().map(|d| &*d.device).collect::<Vec<_>>(), ["eth1"]);
    assert_eq!(r.load, None);
    assert_eq!(r.cpu.user, None);
    assert_eq!(r.cpu.count, Some(1));
    assert_eq!(r.process.cpu_seconds, None);
    assert_eq!(r.process.start_time_seconds, None);
    assert_eq!(r.process.max_fds, None);
    assert_eq!(r.process.open_fds, Some(4), "other sources are unaffected");

    let expected = [
        (SourceFile::Meminfo, 2),
        (SourceFile::Diskstats, 1),
        (SourceFile::NetDev, 2),
        (SourceFile::Loadavg, 1),
        (SourceFile::Stat, 1),
        (SourceFile::SelfStat, 1),
        (SourceFile::SelfLimits, 1),
        (SourceFile::Mounts, 1),
    ];
    for (file, n) in expected {
        assert_eq!(r.parse_errors(file), n, "{file:?}");
    }
    let first = r.problems.iter().find_map(|e| match e {
        ResourcesError::Malformed { path, count, line, .. } if path.ends_with("meminfo") => Some((*count, *line)),
        _ => None,
    });
    assert_eq!(first, Some((2, 2)), "the log line names the count and the first bad line");

    let f = families(&r);
    assert!(f.get("accel_cpu_seconds_total").is_none());
    assert!(f.get("accel_memory_free_bytes").is_none());
    assert!(f.get("accel_load1").is_none());

    // The counters accumulate over reads, as a counter must.
    let r = reader.read().expect("read");
    let f = families(&r);
    assert_eq!(f.value("accel_resources_parse_errors_total", &[("file", "meminfo")]), Some(4.0));
    assert_eq!(f.value("accel_resources_parse_errors_total", &[("file", "net/dev")]), Some(4.0));
}

#[test]
fn missing_files_give_absent_values_and_problems_with_paths() {
    let p = FakeProc::empty();
    p.write("meminfo", MEMINFO);
    let r = p.reader().read().expect("one readable file is enough");
    assert_eq!(r.memory.total_bytes, Some(16_777_216_000));
    assert_eq!(r.cpu, Default::default());
    assert_eq!(r.process, Default::default());
    assert_eq!(r.load, None);
    assert!(r.disks.is_empty() && r.network.is_empty() && r.filesystems.is_empty());

    let unreadable: HashSet<PathBuf> = r
        .problems
        .iter()
        .filter_map(|e| match e {
            ResourcesError::Io { path, .. } => Some(path.strip_prefix(p.root()).expect("under root").to_owned()),
            _ => None,
        })
        .collect();
    for rel in ["stat", "loadavg", "diskstats", "net/dev", "self/stat", "self/limits", "self/fd", "self/mounts"] {
        assert!(unreadable.contains(Path::new(rel)), "{rel} missing from {unreadable:?}");
    }
    let f = families(&r);
    assert_eq!(
        names(&f),
        [
            "accel_memory_total_bytes",
            "accel_memory_available_bytes",
            "accel_memory_free_bytes",
            "accel_memory_buffers_bytes",
            "accel_memory_cached_bytes",
            "accel_memory_used_ratio",
            "accel_swap_total_bytes",
            "accel_swap_free_bytes",
            "accel_resources_parse_errors_total",
        ]
    );

    let nothing = FakeProc::empty();
    match nothing.reader().read() {
        Err(ResourcesError::NothingReadable { root }) => assert_eq!(root, nothing.root()),
        other => panic!("expected NothingReadable, got {other:?}"),
    }
    let gone = ResourcesReader::new("/nonexistent/proc", opts()).read();
    assert!(matches!(gone, Err(ResourcesError::NothingReadable { .. })), "{gone:?}");
}

#[test]
fn filesystems_from_a_fake_mount_table_over_real_dirs() {
    let p = FakeProc::full();
    let data = tempfile::tempdir().expect("temp dir");
    let d = |name: &str| {
        let path = data.path().join(name);
        fs::create_dir_all(&path).expect("mkdir");
        path.to_str().expect("utf-8 temp path").to_owned()
    };
    let (a, b, t, o, s) = (d("a"), d("my disk"), d("tmp"), d("overlay"), d("stacked"));
    let b_escaped = b.replace(' ', "\\040");
    let mounts = format!(
        "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=8000000k 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0
/dev/sda1 {a} ext4 rw,relatime 0 0
/dev/sdb1 {b_escaped} xfs ro,relatime 0 0
tmpfs {t} tmpfs rw,nosuid 0 0
overlay {o} overlay rw,lowerdir=/x 0 0
/dev/loop3 /snap/core/1 squashfs ro 0 0
/dev/sdc1 {s} ext4 rw 0 0
/dev/sdd1 {s} ext4 rw 0 0
/dev/sde1 /nonexistent/mount ext4 rw 0 0
"
    );
    p.write("self/mounts", &mounts);
    let r = p.reader().read().expect("read");

    let got: Vec<(&str, &str, &str)> =
        r.filesystems.iter().map(|f| (&*f.device, &*f.mount_point, &*f.fs_type)).collect();
    assert_eq!(
        got,
        [
            ("/dev/sda1", a.as_str(), "ext4"),
            ("/dev/sdb1", b.as_str(), "xfs"),
            ("/dev/sdd1", s.as_str(), "ext4"),
            ("/dev/sde1", "/nonexistent/mount", "ext4"),
        ],
        "pseudo filesystems skipped, the escaped space decoded, the stacked mount point once (the top mount)"
    );
    for fs in &r.filesystems[..3] {
        let (size, free, avail) = (fs.size_bytes.unwrap(), fs.free_bytes.unwrap(), fs.avail_bytes.unwrap());
        assert!(size > 0 && size >= free && free >= avail, "{fs:?}");
        let used = fs.used_ratio().unwrap();
        assert!((0.0..=1.0).contains(&used), "{used}");
        assert!(!fs.error);
    }
    assert!(r.filesystems[1].read_only && !r.filesystems[0].read_only);
    let missing = &r.filesystems[3];
    assert!(missing.error && missing.size_bytes.is_none() && missing.used_ratio().is_none());
    assert!(
        r.problems
            .iter()
            .any(|e| matches!(e, ResourcesError::Statvfs { path, .. } if path.ends_with("nonexistent/mount")))
    );

    let f = families(&r);
    let l = [("mountpoint", a.as_str()), ("fstype", "ext4"), ("device", "/dev/sda1")];
    let size = f.value("accel_filesystem_size_bytes", &l).unwrap();
    assert!(size >= f.value("accel_filesystem_avail_bytes", &l).unwrap());
    assert!(size >= f.value("accel_filesystem_free_bytes", &l).unwrap());
    assert!(f.value("accel_filesystem_used_ratio", &l).is_some());
    assert_eq!(f.value("accel_filesystem_readonly", &[("mountpoint", b.as_str())]), Some(1.0));
    let gone = [("mountpoint", "/nonexistent/mount")];
    assert_eq!(f.value("accel_filesystem_device_error", &gone), Some(1.0));
    assert_eq!(f.value("accel_filesystem_size_bytes", &gone), None, "absent, not 0");
    assert_eq!(f.value("accel_filesystem_device_error", &l), Some(0.0));
}

#[test]
fn rootfs_prefix_and_separate_mount_table() {
    let p = FakeProc::full();
    let host = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(host.path().join("data")).expect("mkdir");
    let table = host.path().join("host-mounts");
    fs::write(&table, "/dev/nvme0n1p2 / ext4 rw 0 0\n/dev/nvme1n1 /data xfs rw 0 0\n/dev/x /missing ext4 rw 0 0\n")
        .expect("write");
    let o = ResourcesOptions { mounts: Some(table), rootfs: host.path().to_owned(), ..opts() };
    let r = ResourcesReader::new(p.root(), o).read().expect("read");
    let mps: Vec<&str> = r.filesystems.iter().map(|f| &*f.mount_point).collect();
    assert_eq!(mps, ["/", "/data", "/missing"], "labels keep the host's mount points");
    assert!(r.filesystems[0].size_bytes.is_some() && r.filesystems[1].size_bytes.is_some());
    assert!(r.filesystems[2].error, "statvfs ran under the rootfs prefix, where /missing does not exist");
}

#[test]
fn families_follow_the_naming_rules_and_have_unique_series() {
    let p = FakeProc::full();
    let dir = tempfile::tempdir().expect("temp dir");
    p.write("self/mounts", &format!("/dev/sda1 {} ext4 rw 0 0\n", dir.path().display()));
    let mut reader = p.reader();
    reader.read().expect("read");
    p.write("stat", "cpu  10300 500 3100 80500 1100 200 300 0 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n");
    let f = families(&reader.read().expect("read"));
    for fam in f.iter() {
        assert!(fam.name.starts_with("accel_"), "{}", fam.name);
        assert_eq!(fam.kind == MetricKind::Counter, fam.name.ends_with("_total"), "{}", fam.name);
        assert!(!fam.help.is_empty() && !fam.samples.is_empty(), "{}", fam.name);
        let mut seen = HashSet::new();
        for s in &fam.samples {
            let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
            labels.sort();
            assert!(seen.insert(labels), "duplicate series in {}", fam.name);
            assert!(s.value.is_finite() && s.value >= 0.0, "{} = {}", fam.name, s.value);
        }
    }
    for ratio in f.iter().filter(|f| f.name.ends_with("_ratio")) {
        assert!(ratio.samples.iter().all(|s| (0.0..=1.0).contains(&s.value)), "{}", ratio.name);
    }
    let mut got = names(&f);
    got.sort_unstable();
    let mut want = [
        "accel_cpus",
        "accel_cpu_seconds_total",
        "accel_cpu_utilization_ratio",
        "accel_disk_io_time_seconds_total",
        "accel_disk_read_bytes_total",
        "accel_disk_reads_completed_total",
        "accel_disk_writes_completed_total",
        "accel_disk_written_bytes_total",
        "accel_filesystem_avail_bytes",
        "accel_filesystem_device_error",
        "accel_filesystem_free_bytes",
        "accel_filesystem_readonly",
        "accel_filesystem_size_bytes",
        "accel_filesystem_used_ratio",
        "accel_load1",
        "accel_load15",
        "accel_load5",
        "accel_memory_available_bytes",
        "accel_memory_buffers_bytes",
        "accel_memory_cached_bytes",
        "accel_memory_free_bytes",
        "accel_memory_total_bytes",
        "accel_memory_used_ratio",
        "accel_network_receive_bytes_total",
        "accel_network_receive_drop_total",
        "accel_network_receive_errs_total",
        "accel_network_receive_packets_total",
        "accel_network_transmit_bytes_total",
        "accel_network_transmit_drop_total",
        "accel_network_transmit_errs_total",
        "accel_network_transmit_packets_total",
        "accel_process_cpu_seconds_total",
        "accel_process_max_fds",
        "accel_process_open_fds",
        "accel_process_resident_memory_bytes",
        "accel_process_start_time_seconds",
        "accel_process_threads",
        "accel_process_virtual_memory_bytes",
        "accel_resources_parse_errors_total",
        "accel_swap_free_bytes",
        "accel_swap_total_bytes",
    ];
    want.sort_unstable();
    assert_eq!(got, want, "every family, as docs/resources.md lists them");
}

#[test]
fn real_proc_of_this_machine_is_sane() {
    let mut reader = ResourcesReader::default();
    let first = reader.read().expect("read /proc");
    // Some work between reads so at least one tick elapses on a busy or idle machine alike.
    let start = std::time::Instant::now();
    let mut spin = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(50) {
        spin = std::hint::black_box(spin.wrapping_add(1));
    }
    let r = reader.read().expect("read /proc");

    assert!(r.cpu.count.unwrap() >= 1);
    let total_cpu: f64 = r.cpu.modes().iter().filter_map(|(_, s)| *s).sum();
    assert!(total_cpu > 0.0);
    assert!(r.cpu.user.unwrap() >= first.cpu.user.unwrap());
    let util = r.cpu.utilization_ratio.expect("a tick elapsed in 50 ms");
    assert!((0.0..=1.0).contains(&util), "{util}");

    let m = &r.memory;
    assert!(m.total_bytes.unwrap() > 0);
    assert!(m.available_bytes.unwrap() <= m.total_bytes.unwrap());
    assert!(m.free_bytes.unwrap() <= m.total_bytes.unwrap());
    assert!(m.swap_free_bytes.unwrap() <= m.swap_total_bytes.unwrap());
    assert!((0.0..=1.0).contains(&m.used_ratio().unwrap()));
    assert!(r.load.is_some());

    let p = &r.process;
    assert!(p.resident_memory_bytes.unwrap() > 0);
    assert!(p.virtual_memory_bytes.unwrap() >= p.resident_memory_bytes.unwrap());
    assert!(p.open_fds.unwrap() > 0);
    assert!(p.open_fds.unwrap() <= p.max_fds.unwrap());
    assert!(p.threads.unwrap() >= 1);
    assert!(p.cpu_seconds.unwrap() > 0.0, "the spin above used CPU");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = p.start_time_seconds.unwrap();
    assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0, "start {started}, now {now}");

    for fs in &r.filesystems {
        assert!(!["proc", "sysfs", "tmpfs", "devtmpfs", "cgroup2", "overlay"].contains(&&*fs.fs_type), "{fs:?}");
        if let (Some(size), Some(avail)) = (fs.size_bytes, fs.avail_bytes) {
            assert!(size >= avail, "{fs:?}");
        }
    }
    for file in SourceFile::ALL {
        assert_eq!(r.parse_errors(file), 0, "{file:?}: {:?}", r.problems);
    }
    assert!(r.disks.iter().all(|d| !d.device.starts_with("loop")));
    assert!(r.network.iter().all(|n| &*n.device != "lo"));
}
