//! Host resources (CPU, memory, load, filesystems, disk and network I/O) and the agent's own process, read
//! from procfs and statvfs, for the operators' memory/disk/CPU pages and the agent's own footprint.
//!
//! Parsed by hand rather than with the procfs crate: procfs-core rejects a whole file on one line it does
//! not understand and requires fields we do not use (a meminfo without `Active` yields no MemTotal either),
//! while here a malformed line is counted and costs only its own values. The formats involved are small and
//! have been stable for fifteen years. sysinfo cannot read from a root other than the live /proc.
//!
//! See docs/resources.md for every family, its source and its differences from node_exporter.

mod families;
mod parse;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::{Filter, Pattern};

use crate::export::{LabelValue, lv};
pub use families::export;
use parse::{CPU_MODES, CpuTicks, IDLE, IOWAIT, Malformed};

/// node_exporter's default `--collector.filesystem.fs-types-exclude`, plus memory-backed and container
/// filesystems that are not disks (tmpfs, ramfs, rootfs, lxcfs, ...). Memory-backed ones are covered by the
/// memory families; node_exporter keeps tmpfs.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|\
efivarfs|erofs|fuse\\.lxcfs|fuse\\.gvfsd-fuse|fuse\\.portal|fusectl|hugetlbfs|iso9660|mqueue|nfsd|nsfs|overlay|\
proc|procfs|pstore|ramfs|rootfs|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tmpfs|tracefs)$";

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

/// node_exporter's default `--collector.diskstats.device-exclude`: RAM disks, loop devices, floppies and
/// partitions (whose I/O is already in their disk's line). Device-mapper (dm-N) and md devices are kept.
pub const DEFAULT_DISK_DEVICES_EXCLUDE: &str = "^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";

/// The loopback interface; node_exporter keeps it.
pub const DEFAULT_NETWORK_DEVICES_EXCLUDE: &str = "^lo$";

/// What a [`ResourcesReader`] reads and skips.
#[derive(Debug, Clone)]
pub struct ResourcesOptions {
    /// The mount table; None means `<proc root>/self/mounts`. In a container with the host's PID namespace,
    /// `<proc root>/1/mounts` lists the host's filesystems.
    pub mounts: Option<PathBuf>,
    /// Prefix for the mount points given to statvfs, like node_exporter's `--path.rootfs`: "/host" when the
    /// host's root is mounted there. Labels keep the mount point as the mount table writes it.
    pub rootfs: PathBuf,
    /// Filesystem types (unanchored regex, as node_exporter's flags).
    pub fs_types: Filter,
    pub mount_points: Filter,
    /// Block device names in /proc/diskstats.
    pub disk_devices: Filter,
    /// Interface names in /proc/net/dev.
    pub network_devices: Filter,
    /// USER_HZ, the unit of /proc/stat and /proc/self/stat times. Defaults to sysconf(_SC_CLK_TCK).
    pub clock_ticks_per_second: u64,
    /// The unit of rss in /proc/self/stat. Defaults to sysconf(_SC_PAGESIZE).
    pub page_size: u64,
}

impl Default for ResourcesOptions {
    fn default() -> Self {
        let exclude = |p: &str| Filter::new(None, Pattern::new(p).ok());
        ResourcesOptions {
            mounts: None,
            rootfs: PathBuf::from("/"),
            fs_types: exclude(DEFAULT_FS_TYPES_EXCLUDE),
            mount_points: exclude(DEFAULT_MOUNT_POINTS_EXCLUDE),
            disk_devices: exclude(DEFAULT_DISK_DEVICES_EXCLUDE),
            network_devices: exclude(DEFAULT_NETWORK_DEVICES_EXCLUDE),
            // USER_HZ is 100 on every architecture Linux exports procfs times for; the fallback only matters
            // if sysconf itself fails, which it does not for these names.
            clock_ticks_per_second: sysconf(libc::_SC_CLK_TCK).unwrap_or(100),
            page_size: sysconf(libc::_SC_PAGESIZE).unwrap_or(4096),
        }
    }
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0)
}

/// Why something could not be read. Failures of single files are collected in
/// [`ResourceReadings::problems`]; only [`ResourcesError::NothingReadable`] fails a whole read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResourcesError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("{}: {count} malformed line(s) skipped, first at line {line}: {reason}", path.display())]
    Malformed { path: PathBuf, count: u64, line: usize, reason: &'static str },
    #[error("statvfs {}: {source}", path.display())]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("none of the files under {} could be read; is it a procfs mount?", root.display())]
    NothingReadable { root: PathBuf },
}

/// The files a read parses, for the `file` label of `accel_resources_parse_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceFile {
    Stat,
    Meminfo,
    Loadavg,
    Diskstats,
    NetDev,
    Mounts,
    SelfStat,
    SelfLimits,
}

impl SourceFile {
    pub const ALL: [SourceFile; 8] = [
        SourceFile::Stat,
        SourceFile::Meminfo,
        SourceFile::Loadavg,
        SourceFile::Diskstats,
        SourceFile::NetDev,
        SourceFile::Mounts,
        SourceFile::SelfStat,
        SourceFile::SelfLimits,
    ];

    /// The path under the proc root, which is also the label value.
    pub fn name(self) -> &'static str {
        match self {
            SourceFile::Stat => "stat",
            SourceFile::Meminfo => "meminfo",
            SourceFile::Loadavg => "loadavg",
            SourceFile::Diskstats => "diskstats",
            SourceFile::NetDev => "net/dev",
            SourceFile::Mounts => "self/mounts",
            SourceFile::SelfStat => "self/stat",
            SourceFile::SelfLimits => "self/limits",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// CPU times summed over all CPUs, in seconds; None for a mode the kernel does not report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuReadings {
    pub user: Option<f64>,
    pub nice: Option<f64>,
    pub system: Option<f64>,
    pub idle: Option<f64>,
    pub iowait: Option<f64>,
    pub irq: Option<f64>,
    pub softirq: Option<f64>,
    pub steal: Option<f64>,
    /// Online CPUs (the `cpuN` lines of /proc/stat).
    pub count: Option<u32>,
    /// Busy share of all CPU time since the previous read: 1 - (Δidle + Δiowait) / Δ(all eight modes).
    /// None on the first read and when no tick elapsed.
    pub utilization_ratio: Option<f64>,
}

impl CpuReadings {
    /// (mode label, seconds) in /proc/stat order.
    pub fn modes(&self) -> [(&'static str, Option<f64>); 8] {
        let v = [self.user, self.nice, self.system, self.idle, self.iowait, self.irq, self.softirq, self.steal];
        let mut out = [("", None); 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (CPU_MODES[i], v[i]);
        }
        out
    }
}

/// /proc/meminfo, in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryReadings {
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
}

impl MemoryReadings {
    /// 1 - MemAvailable / MemTotal. None without MemAvailable (kernels before 3.14): free + buffers +
    /// cached overstates what is reclaimable, so no substitute is guessed.
    pub fn used_ratio(&self) -> Option<f64> {
        let (total, avail) = (self.total_bytes?, self.available_bytes?);
        (total > 0).then(|| (1.0 - avail as f64 / total as f64).clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReadings {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// One mounted filesystem. Sizes are None when statvfs failed (see `error`).
#[derive(Debug, Clone, PartialEq)]
pub struct FilesystemReading {
    pub device: LabelValue,
    pub mount_point: LabelValue,
    pub fs_type: LabelValue,
    pub size_bytes: Option<u64>,
    /// Free blocks, including those reserved for root.
    pub free_bytes: Option<u64>,
    /// Free blocks an unprivileged user may use.
    pub avail_bytes: Option<u64>,
    pub read_only: bool,
    /// statvfs failed for this mount.
    pub error: bool,
}

impl FilesystemReading {
    /// df's Use%: used / (used + available), where used = size - free. The root-reserved blocks count as
    /// neither, so 1.0 is the point where unprivileged writes fail.
    pub fn used_ratio(&self) -> Option<f64> {
        let used = self.size_bytes?.saturating_sub(self.free_bytes?);
        let denom = used.checked_add(self.avail_bytes?)?;
        (denom > 0).then(|| used as f64 / denom as f64)
    }
}

/// One block device from /proc/diskstats.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskReading {
    pub device: LabelValue,
    pub reads_completed: u64,
    pub writes_completed: u64,
    /// Sectors x 512: /proc/diskstats counts 512-byte sectors whatever the device's sector size.
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub io_time_seconds: f64,
}

/// One interface from /proc/net/dev.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkReading {
    pub device: LabelValue,
    pub receive_bytes: u64,
    pub receive_packets: u64,
    pub receive_errs: u64,
    pub receive_drop: u64,
    pub transmit_bytes: u64,
    pub transmit_packets: u64,
    pub transmit_errs: u64,
    pub transmit_drop: u64,
}

/// The reading process itself (the agent), from /proc/self.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessReadings {
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    /// utime + stime.
    pub cpu_seconds: Option<f64>,
    /// Entries of /proc/self/fd, including the one the count itself holds open (as client_golang does).
    pub open_fds: Option<u64>,
    /// Soft RLIMIT_NOFILE; `u64::MAX` means unlimited.
    pub max_fds: Option<u64>,
    pub threads: Option<u64>,
    /// Seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct ResourceReadings {
    pub cpu: CpuReadings,
    pub memory: MemoryReadings,
    pub load: Option<LoadReadings>,
    pub filesystems: Vec<FilesystemReading>,
    pub disks: Vec<DiskReading>,
    pub network: Vec<NetworkReading>,
    pub process: ProcessReadings,
    /// Malformed lines skipped since the reader was made, per file; every file present, from 0.
    pub parse_errors: Vec<(SourceFile, u64)>,
    /// What went wrong in this read (unreadable files, malformed lines, failed statvfs), for the log.
    pub problems: Vec<ResourcesError>,
}

impl ResourceReadings {
    pub fn parse_errors(&self, file: SourceFile) -> u64 {
        self.parse_errors.iter().find(|(f, _)| *f == file).map_or(0, |(_, n)| *n)
    }
}

/// Reads host resources and the own process from a procfs root. Keeps the previous CPU times for the
/// utilisation ratio and the parse-error counters, so one reader serves one collection loop.
#[derive(Debug)]
pub struct ResourcesReader {
    root: PathBuf,
    mounts: PathBuf,
    opts: ResourcesOptions,
    /// Reused between files and reads: the files are a few kB and read every poll.
    buf: String,
    /// The highest ticks seen per mode: idle and iowait can step back a little on tickless kernels, and a
    /// counter must not.
    cpu_high: CpuTicks,
    prev_cpu: Option<CpuTicks>,
    parse_errors: [u64; SourceFile::ALL.len()],
}

impl Default for ResourcesReader {
    fn default() -> Self {
        ResourcesReader::new("/proc", ResourcesOptions::default())
    }
}

impl ResourcesReader {
    pub fn new(proc_root: impl Into<PathBuf>, opts: ResourcesOptions) -> Self {
        let root = proc_root.into();
        let mounts = opts.mounts.clone().unwrap_or_else(|| root.join(SourceFile::Mounts.name()));
        ResourcesReader {
            root,
            mounts,
            opts,
            buf: String::with_capacity(16 * 1024),
            cpu_high: [None; 8],
            prev_cpu: None,
            parse_errors: [0; SourceFile::ALL.len()],
        }
    }

    pub fn proc_root(&self) -> &Path {
        &self.root
    }

    /// One collection. Blocks in statvfs for as long as a mounted filesystem takes to answer (a hung NFS
    /// server: indefinitely), so run it where a deadline can abandon it, and exclude such mounts.
    pub fn read(&mut self) -> Result<ResourceReadings, ResourcesError> {
        let mut r = ResourceReadings::default();
        let mut any = false;
        let mut bad;

        let mut btime = None;
        if self.load(SourceFile::Stat, &mut r.problems) {
            any = true;
            bad = Malformed::default();
            let s = parse::stat(&self.buf, &mut bad);
            self.note(SourceFile::Stat, bad, &mut r.problems);
            btime = s.btime;
            r.cpu.count = (s.cpu_lines > 0).then_some(s.cpu_lines);
            if let Some(ticks) = s.cpu {
                self.cpu(ticks, &mut r.cpu);
            }
        }

        if self.load(SourceFile::Meminfo, &mut r.problems) {
            any = true;
            bad = Malformed::default();
            let m = parse::meminfo(&self.buf, &mut bad);
            self.note(SourceFile::Meminfo, bad, &mut r.problems);
            r.memory = MemoryReadings {
                total_bytes: m.total,
                available_bytes: m.available,
                free_bytes: m.free,
                buffers_bytes: m.buffers,
                cached_bytes: m.cached,
                swap_total_bytes: m.swap_total,
                swap_free_bytes: m.swap_free,
            };
        }

        if self.load(SourceFile::Loadavg, &mut r.problems) {
            any = true;
            bad = Malformed::default();
            r.load =
                parse::loadavg(&self.buf, &mut bad).map(|[a, b, c]| LoadReadings { load1: a, load5: b, load15: c });
            self.note(SourceFile::Loadavg, bad, &mut r.problems);
        }

        if self.load(SourceFile::Diskstats, &mut r.problems) {
            any = true;
            bad = Malformed::default();
            r.disks = parse::diskstats(&self.buf, &self.opts.disk_devices, &mut bad)
                .into_iter()
                .map(|d| DiskReading {
                    device: lv(d.device),
                    reads_completed: d.reads_completed,
                    writes_completed: d.writes_completed,
                    read_bytes: d.sectors_read.saturating_mul(512),
                    written_bytes: d.sectors_written.saturating_mul(512),
                    io_time_seconds: d.io_time_ms as f64 / 1000.0,
                })
                .collect();
            self.note(SourceFile::Diskstats, bad, &mut r.problems);
        }

        if self.load(SourceFile::NetDev, &mut r.problems) {
            any = true;
            bad = Malformed::default();
            r.network = parse::net_dev(&self.buf, &self.opts.network_devices, &mut bad)
                .into_iter()
                .map(|n| NetworkReading {
                    device: lv(n.device),
                    receive_bytes: n.receive_bytes,
                    receive_packets: n.receive_packets,
                    receive_errs: n.receive_errs,
                    receive_drop: n.receive_drop,
                    transmit_bytes: n.transmit_bytes,
                    transmit_packets: n.transmit_packets,
                    transmit_errs: n.transmit_errs,
                    transmit_drop: n.transmit_drop,
                })
                .collect();
            self.note(SourceFile::NetDev, bad, &mut r.problems);
        }

        any |= self.process(btime, &mut r);
        any |= self.filesystems(&mut r);

        if !any {
            return Err(ResourcesError::NothingReadable { root: self.root.clone() });
        }
        r.parse_errors = SourceFile::ALL.iter().map(|f| (*f, self.parse_errors[f.index()])).collect();
        Ok(r)
    }

    fn path(&self, file: SourceFile) -> PathBuf {
        match file {
            SourceFile::Mounts => self.mounts.clone(),
            f => self.root.join(f.name()),
        }
    }

    /// Reads `file` into `self.buf`; false (and a problem) when it cannot be read.
    fn load(&mut self, file: SourceFile, problems: &mut Vec<ResourcesError>) -> bool {
        self.buf.clear();
        let path = self.path(file);
        // procfs files report size 0, so read_to_string's size hint is useless; the buffer is reused.
        match File::open(&path).and_then(|mut f| f.read_to_string(&mut self.buf)) {
            Ok(_) => true,
            Err(e) => {
                problems.push(ResourcesError::Io { path, source: Arc::new(e) });
                false
            }
        }
    }

    fn note(&mut self, file: SourceFile, bad: Malformed, problems: &mut Vec<ResourcesError>) {
        self.parse_errors[file.index()] += bad.count;
        if let Some((line, reason)) = bad.first {
            problems.push(ResourcesError::Malformed { path: self.path(file), count: bad.count, line, reason });
        }
    }

    fn cpu(&mut self, ticks: CpuTicks, out: &mut CpuReadings) {
        for (high, t) in self.cpu_high.iter_mut().zip(ticks) {
            *high = match (*high, t) {
                (Some(h), Some(t)) => Some(h.max(t)),
                (_, t) => t,
            };
        }
        let cur = self.cpu_high;
        let hz = self.opts.clock_ticks_per_second as f64;
        let s = |i: usize| cur[i].map(|t| t as f64 / hz);
        *out = CpuReadings {
            user: s(0),
            nice: s(1),
            system: s(2),
            idle: s(3),
            iowait: s(4),
            irq: s(5),
            softirq: s(6),
            steal: s(7),
            count: out.count,
            utilization_ratio: self.prev_cpu.and_then(|prev| utilization(&prev, &cur)),
        };
        self.prev_cpu = Some(cur);
    }

    fn process(&mut self, btime: Option<u64>, r: &mut ResourceReadings) -> bool {
        let mut any = false;
        let p = &mut r.process;
        if self.load(SourceFile::SelfStat, &mut r.problems) {
            any = true;
            let mut bad = Malformed::default();
            if let Some(s) = parse::self_stat(&self.buf, &mut bad) {
                let hz = self.opts.clock_ticks_per_second as f64;
                p.resident_memory_bytes = Some(s.rss_pages.saturating_mul(self.opts.page_size));
                p.virtual_memory_bytes = Some(s.vsize);
                p.cpu_seconds = Some(s.utime.saturating_add(s.stime) as f64 / hz);
                p.threads = Some(s.num_threads);
                p.start_time_seconds = btime.map(|b| b as f64 + s.starttime as f64 / hz);
            }
            self.note(SourceFile::SelfStat, bad, &mut r.problems);
        }
        if self.load(SourceFile::SelfLimits, &mut r.problems) {
            any = true;
            let mut bad = Malformed::default();
            r.process.max_fds = parse::max_open_files(&self.buf, &mut bad);
            self.note(SourceFile::SelfLimits, bad, &mut r.problems);
        }
        let fd_dir = self.root.join("self/fd");
        match std::fs::read_dir(&fd_dir) {
            Ok(entries) => {
                any = true;
                r.process.open_fds = Some(entries.filter(|e| e.is_ok()).count() as u64);
            }
            Err(e) => r.problems.push(ResourcesError::Io { path: fd_dir, source: Arc::new(e) }),
        }
        any
    }

    fn filesystems(&mut self, r: &mut ResourceReadings) -> bool {
        if !self.load(SourceFile::Mounts, &mut r.problems) {
            return false;
        }
        let mut bad = Malformed::default();
        let mut mounts = parse::mounts(&self.buf, &mut bad);
        self.note(SourceFile::Mounts, bad, &mut r.problems);

        mounts.retain(|m| self.opts.fs_types.allows(&m.fs_type) && self.opts.mount_points.allows(&m.mount_point));
        // A mount point mounted over is hidden by the later mount, and statvfs would report the top one's
        // figures for both; keep the last, which is the visible one, so each mount point is one series.
        let mut seen = std::collections::HashSet::with_capacity(mounts.len());
        let mut keep = vec![false; mounts.len()];
        for (i, m) in mounts.iter().enumerate().rev() {
            keep[i] = seen.insert(m.mount_point.as_str());
        }

        for (m, _) in mounts.iter().zip(&keep).filter(|(_, k)| **k) {
            let path = self.opts.rootfs.join(m.mount_point.trim_start_matches('/'));
            let mut fs = FilesystemReading {
                device: lv(&m.device),
                mount_point: lv(&m.mount_point),
                fs_type: lv(&m.fs_type),
                size_bytes: None,
                free_bytes: None,
                avail_bytes: None,
                read_only: m.read_only,
                error: false,
            };
            match nix::sys::statvfs::statvfs(&path) {
                Ok(st) => {
                    // f_blocks and friends are in units of f_frsize (POSIX); f_bsize is only the preferred
                    // I/O size. Linux fills f_frsize for every filesystem, the fallback covers those that
                    // leave it 0.
                    let unit = match st.fragment_size() {
                        0 => st.block_size(),
                        f => f,
                    };
                    let bytes = |blocks: u64| blocks.saturating_mul(unit);
                    fs.size_bytes = Some(bytes(st.blocks()));
                    fs.free_bytes = Some(bytes(st.blocks_free()));
                    fs.avail_bytes = Some(bytes(st.blocks_available()));
                }
                Err(source) => {
                    fs.error = true;
                    r.problems.push(ResourcesError::Statvfs { path, source });
                }
            }
            r.filesystems.push(fs);
        }
        true
    }
}

/// 1 - (Δidle + Δiowait) / Δtotal over the modes present in both reads.
fn utilization(prev: &CpuTicks, cur: &CpuTicks) -> Option<f64> {
    let (mut total, mut idle) = (0u64, 0u64);
    for (i, (p, c)) in prev.iter().zip(cur).enumerate() {
        if let (Some(p), Some(c)) = (p, c) {
            let d = c.saturating_sub(*p);
            total = total.saturating_add(d);
            if i == IDLE || i == IOWAIT {
                idle = idle.saturating_add(d);
            }
        }
    }
    // busy / total rather than 1 - idle / total: one rounding, so 400 of 1000 ticks is exactly 0.4.
    (total > 0).then(|| (total - idle.min(total)) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_patterns_compile() {
        let o = ResourcesOptions::default();
        for f in [&o.fs_types, &o.mount_points, &o.disk_devices, &o.network_devices] {
            assert!(f.exclude.is_some(), "a default exclude pattern failed to compile");
        }
        assert!(!o.fs_types.allows("tmpfs") && !o.fs_types.allows("cgroup2") && o.fs_types.allows("ext4"));
        assert!(!o.fs_types.allows("fuse.lxcfs") && o.fs_types.allows("fuse.sshfs"));
        assert!(!o.mount_points.allows("/proc/sys/fs/binfmt_misc") && o.mount_points.allows("/data"));
        for d in ["loop0", "ram1", "zram0", "sda1", "nvme0n1p2", "vdb3"] {
            assert!(!o.disk_devices.allows(d), "{d}");
        }
        for d in ["sda", "nvme0n1", "dm-0", "md127", "vdb"] {
            assert!(o.disk_devices.allows(d), "{d}");
        }
        assert!(!o.network_devices.allows("lo") && o.network_devices.allows("lo1") && o.network_devices.allows("eth0"));
    }

    #[test]
    fn utilization_ignores_steps_back_and_missing_modes() {
        let prev = [Some(100), Some(0), Some(100), Some(800), Some(7), None, None, None];
        let cur = [Some(200), Some(0), Some(200), Some(900), Some(3), None, None, Some(5)];
        assert_eq!(utilization(&prev, &cur), Some(2.0 / 3.0));
        assert_eq!(utilization(&prev, &prev), None, "no tick elapsed");
    }
}
