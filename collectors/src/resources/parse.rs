//! Parsers of the procfs text files, separate from the file reading so each is tested on strings.
//!
//! Every parser skips a line it cannot understand and counts it in a [`Malformed`], so one odd line (a
//! kernel that added a column, a truncated read) costs that line's values, not the whole file's.

use config::Filter;

/// Malformed lines seen in one file during one read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub count: u64,
    /// The first malformed line (1-based) and why, for the log line.
    pub first: Option<(usize, &'static str)>,
}

impl Malformed {
    pub fn note(&mut self, line: usize, reason: &'static str) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((line, reason));
        }
    }
}

/// The CPU modes in /proc/stat order. guest and guest_nice follow them in the file but are already
/// included in user and nice, so adding them would count guest time twice.
pub const CPU_MODES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
pub const IDLE: usize = 3;
pub const IOWAIT: usize = 4;

/// Ticks (USER_HZ) per mode; None where the kernel's line is too short to have the mode.
pub type CpuTicks = [Option<u64>; 8];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct StatFile {
    /// The aggregate `cpu` line: already summed over CPUs by the kernel.
    pub cpu: Option<CpuTicks>,
    /// How many `cpuN` lines there were, i.e. online CPUs.
    pub cpu_lines: u32,
    /// Boot time, seconds since the epoch.
    pub btime: Option<u64>,
}

pub fn stat(text: &str, bad: &mut Malformed) -> StatFile {
    let mut out = StatFile::default();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if key == "cpu" {
            match cpu_ticks(fields) {
                Some(t) => out.cpu = Some(t),
                None => bad.note(i + 1, "cpu line without four numeric fields"),
            }
        } else if let Some(n) = key.strip_prefix("cpu") {
            // A per-CPU line only counts CPUs; the aggregate line carries the times.
            if n.parse::<u32>().is_ok() && cpu_ticks(fields).is_some() {
                out.cpu_lines += 1;
            } else {
                bad.note(i + 1, "malformed per-cpu line");
            }
        } else if key == "btime" {
            match fields.next().and_then(|v| v.parse().ok()) {
                Some(v) => out.btime = Some(v),
                None => bad.note(i + 1, "btime is not a number"),
            }
        }
        // intr, ctxt, processes, softirq, ...: not ours, not checked, so they cost nothing.
    }
    out
}

/// The first eight numeric fields; at least four (user nice system idle, present on every kernel).
fn cpu_ticks<'a>(fields: impl Iterator<Item = &'a str>) -> Option<CpuTicks> {
    let mut t: CpuTicks = [None; 8];
    let mut n = 0;
    for (slot, f) in t.iter_mut().zip(fields) {
        *slot = Some(f.parse().ok()?);
        n += 1;
    }
    (n >= 4).then_some(t)
}

/// /proc/meminfo values we use, in bytes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Meminfo {
    pub total: Option<u64>,
    pub free: Option<u64>,
    pub available: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_free: Option<u64>,
}

pub fn meminfo(text: &str, bad: &mut Malformed) -> Meminfo {
    let mut m = Meminfo::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            bad.note(i + 1, "no ':' after the key");
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut m.total,
            "MemFree" => &mut m.free,
            "MemAvailable" => &mut m.available,
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        let mut f = rest.split_ascii_whitespace();
        // These keys are always in kB (KiB) in the kernel; a bare number would be ambiguous, so it is refused.
        let bytes = match (f.next().map(str::parse::<u64>), f.next(), f.next()) {
            (Some(Ok(v)), Some("kB"), None) => v.checked_mul(1024),
            _ => None,
        };
        match bytes {
            Some(b) => *slot = Some(b),
            None => bad.note(i + 1, "value is not '<number> kB'"),
        }
    }
    m
}

pub fn loadavg(text: &str, bad: &mut Malformed) -> Option<[f64; 3]> {
    let mut f = text.split_ascii_whitespace();
    let mut out = [0.0; 3];
    for slot in &mut out {
        match f.next().and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0) {
            Some(v) => *slot = v,
            None => {
                bad.note(1, "fewer than three load averages");
                return None;
            }
        }
    }
    Some(out)
}

/// One block device's counters from /proc/diskstats.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskLine<'a> {
    pub device: &'a str,
    pub reads_completed: u64,
    pub sectors_read: u64,
    pub writes_completed: u64,
    pub sectors_written: u64,
    pub io_time_ms: u64,
}

/// Lines whose device `devices` refuses are skipped before their numbers are parsed.
pub fn diskstats<'a>(text: &'a str, devices: &Filter, bad: &mut Malformed) -> Vec<DiskLine<'a>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        // major minor name, then at least the 11 fields every kernel since 2.6.25 prints (later ones add
        // discard and flush columns, which we ignore).
        if f.len() < 14 {
            bad.note(i + 1, "fewer than 14 fields");
            continue;
        }
        if !devices.allows(f[2]) {
            continue;
        }
        let num = |k: usize| f[k].parse::<u64>().ok();
        match (num(3), num(5), num(7), num(9), num(12)) {
            (Some(r), Some(sr), Some(w), Some(sw), Some(t)) => out.push(DiskLine {
                device: f[2],
                reads_completed: r,
                sectors_read: sr,
                writes_completed: w,
                sectors_written: sw,
                io_time_ms: t,
            }),
            _ => bad.note(i + 1, "non-numeric counter"),
        }
    }
    out
}

/// One interface's counters from /proc/net/dev.
#[derive(Debug, Clone, PartialEq)]
pub struct NetLine<'a> {
    pub device: &'a str,
    pub receive_bytes: u64,
    pub receive_packets: u64,
    pub receive_errs: u64,
    pub receive_drop: u64,
    pub transmit_bytes: u64,
    pub transmit_packets: u64,
    pub transmit_errs: u64,
    pub transmit_drop: u64,
}

pub fn net_dev<'a>(text: &'a str, devices: &Filter, bad: &mut Malformed) -> Vec<NetLine<'a>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // Interface names cannot contain ':' (the kernel refuses them), so the first one ends the name.
        // Old kernels print no space after it when the byte count is wide.
        let Some((name, rest)) = line.split_once(':') else {
            // The two header lines are column titles separated by '|'.
            if !line.contains('|') && !line.trim().is_empty() {
                bad.note(i + 1, "no ':' after the interface name");
            }
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            bad.note(i + 1, "empty interface name");
            continue;
        }
        if !devices.allows(name) {
            continue;
        }
        let mut v = [0u64; 16];
        let mut n = 0;
        for (slot, f) in v.iter_mut().zip(rest.split_ascii_whitespace()) {
            match f.parse() {
                Ok(x) => *slot = x,
                Err(_) => break,
            }
            n += 1;
        }
        if n < 16 {
            bad.note(i + 1, "fewer than 16 numeric fields");
            continue;
        }
        out.push(NetLine {
            device: name,
            receive_bytes: v[0],
            receive_packets: v[1],
            receive_errs: v[2],
            receive_drop: v[3],
            transmit_bytes: v[8],
            transmit_packets: v[9],
            transmit_errs: v[10],
            transmit_drop: v[11],
        });
    }
    out
}

/// The fields of /proc/self/stat we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfStat {
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: u64,
}

pub fn self_stat(text: &str, bad: &mut Malformed) -> Option<SelfStat> {
    // comm (field 2) is in parentheses and may itself contain spaces and ')', so fields are counted from
    // the last ')'.
    let Some(close) = text.rfind(')') else {
        bad.note(1, "no ')' after the command name");
        return None;
    };
    // f[0] is field 3 (state), so field N is f[N - 3].
    let f: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let num = |field: usize| f.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    let parsed = (|| {
        Some(SelfStat {
            utime: num(14)?,
            stime: num(15)?,
            num_threads: num(20)?,
            starttime: num(22)?,
            vsize: num(23)?,
            rss_pages: num(24)?,
        })
    })();
    if parsed.is_none() {
        bad.note(1, "missing or non-numeric field");
    }
    parsed
}

/// The soft limit on open files from /proc/self/limits; `u64::MAX` stands for "unlimited".
pub fn max_open_files(text: &str, bad: &mut Malformed) -> Option<u64> {
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("Max open files") else { continue };
        return match rest.split_ascii_whitespace().next() {
            Some("unlimited") => Some(u64::MAX),
            Some(v) => match v.parse() {
                Ok(v) => Some(v),
                Err(_) => {
                    bad.note(i + 1, "soft limit is not a number");
                    None
                }
            },
            None => {
                bad.note(i + 1, "no soft limit");
                None
            }
        };
    }
    None
}

/// One line of /proc/self/mounts, with the kernel's octal escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
}

pub fn mounts(text: &str, bad: &mut Malformed) -> Vec<Mount> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some(dev), Some(mp), Some(ty), Some(opts)) => out.push(Mount {
                device: unescape(dev),
                mount_point: unescape(mp),
                fs_type: unescape(ty),
                read_only: opts.split(',').any(|o| o == "ro"),
            }),
            (None, ..) => {}
            _ => bad.note(i + 1, "fewer than four fields"),
        }
    }
    out
}

/// The kernel writes space, tab, newline and backslash in mount fields as `\ooo` octal.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
                // \400 and above do not fit a byte; keep such text as written.
                match u8::try_from(v) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 4;
                    }
                    Err(_) => {
                        out.push(b[i]);
                        i += 1;
                    }
                }
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_old_kernel_without_steal_and_odd_lines() {
        let mut bad = Malformed::default();
        let s = stat("cpu 1 2 3 4 5\ncpu0 1 2 3 4 5\ncpuX 1 2\ncpu1 a b c d\nbtime x\nintr 1 2 3\n", &mut bad);
        assert_eq!(s.cpu, Some([Some(1), Some(2), Some(3), Some(4), Some(5), None, None, None]));
        assert_eq!(s.cpu_lines, 1);
        assert_eq!(s.btime, None);
        assert_eq!(bad.count, 3);
        assert_eq!(bad.first, Some((3, "malformed per-cpu line")));
    }

    #[test]
    fn meminfo_units_and_overflow() {
        let mut bad = Malformed::default();
        let m = meminfo("MemTotal: 2 kB\nMemFree: 3\nCached: 18446744073709551615 kB\nHugePages_Total: 0\n", &mut bad);
        assert_eq!(m.total, Some(2048));
        assert_eq!(m.free, None);
        assert_eq!(m.cached, None);
        assert_eq!(bad.count, 2, "unitless MemFree and overflowing Cached; HugePages_Total is not ours");
    }

    #[test]
    fn mounts_unescape() {
        let mut bad = Malformed::default();
        let m = mounts("/dev/sda1 /mnt/my\\040disk\\134x ext4 ro,relatime 0 0\nbroken line\n", &mut bad);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, "/mnt/my disk\\x");
        assert!(m[0].read_only);
        assert_eq!(bad.count, 1);
        assert_eq!(unescape("a\\0"), "a\\0");
        assert_eq!(unescape("a\\777b"), "a\\777b");
    }

    #[test]
    fn self_stat_comm_with_parens_and_spaces() {
        let mut bad = Malformed::default();
        let line = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 12345 1000000 300 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = self_stat(line, &mut bad).unwrap();
        assert_eq!(
            (s.utime, s.stime, s.num_threads, s.starttime, s.vsize, s.rss_pages),
            (250, 50, 7, 12345, 1000000, 300)
        );
        assert_eq!(self_stat("42 (x) S 1 2", &mut bad), None);
        assert_eq!(bad.count, 1);
    }

    #[test]
    fn limits_unlimited() {
        let mut bad = Malformed::default();
        let t = "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(t, &mut bad), Some(u64::MAX));
        assert_eq!(max_open_files("Limit x\n", &mut bad), None);
        assert_eq!(bad.count, 0, "a missing row is absent, not malformed");
    }
}
