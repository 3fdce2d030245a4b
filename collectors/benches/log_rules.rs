//! Matching log lines against 50 realistic rules (PCIe AER, machine checks, thermal throttling, resets,
//! vendor SDK errors...) on one core. The corpus is syslog-style lines of 80-200 bytes of which about
//! 3% match a rule, like a busy host's kernel log and device logs. The target is 1,000,000 lines/s.
//!
//! `match_line` is the RuleSet alone; `tracker` adds the per-device state and signals the agent uses.

use std::hint::black_box;
use std::time::Instant;

use collectors::logs::{RuleSet, RuleSpec, RuleTracker, Severity};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RULES: &[(&str, &str)] = &[
    ("aer_corrected", r"AER: Corrected error received"),
    ("aer_nonfatal", r"AER: Uncorrected \(Non-Fatal\) error received"),
    ("aer_fatal", r"AER: Uncorrected \(Fatal\) error received"),
    ("aer_bad_tlp", r"\bBad TLP\b"),
    ("aer_bad_dllp", r"\bBad DLLP\b"),
    ("aer_receiver", r"RxErr|Receiver Error"),
    ("pcie_link_down", r"(?i)pcie link (down|lost)"),
    ("pcie_bus_error", r"PCIe Bus Error: severity=(Corrected|Uncorrected)"),
    ("mce", r"mce: \[Hardware Error\]: Machine check"),
    ("hardware_error", r"\[Hardware Error\]"),
    ("edac_ue", r"EDAC \w+ MC\d+: \d+ UE\b"),
    ("edac_ce", r"EDAC \w+ MC\d+: \d+ CE\b"),
    ("thermal_throttle", r"(?i)thermal throttl"),
    ("cpu_temp", r"CPU\d+: (Core|Package) temperature above threshold"),
    ("overtemp", r"(?i)over-?temperature|overheat"),
    ("device_reset", r"(?i)\b(device|board|card|chip) reset\b"),
    ("fw_hang", r"(?i)firmware (hang|heartbeat (lost|timeout))"),
    ("fw_crash", r"(?i)firmware (crash|assert)"),
    ("dma_timeout", r"(?i)dma (timeout|error)"),
    ("iommu_fault", r"(DMAR|AMD-Vi): .*(fault|IO_PAGE_FAULT)"),
    ("nv_xid", r"NVRM: Xid \(PCI:[0-9a-f:.]+\): \d+"),
    ("hl_not_usable", r"habanalabs hl\d+: Device is NOT usable"),
    ("hl_heartbeat", r"habanalabs hl\d+: .*heartbeat"),
    ("nxsdk_error", r"NxSDK.*\b(ERROR|FATAL)\b"),
    ("nxsdk_timeout", r"(?i)nxsdk.*(board|chip) (did not respond|timed out)"),
    ("loihi_chip_fault", r"(?i)loihi.*chip \d+ (fault|failed)"),
    ("photon_calibration", r"photon-sdk\[\d+\]: .*calibration failed"),
    ("photon_laser", r"(?i)laser (fault|power low|shutdown)"),
    ("photon_waveguide", r"waveguide (temperature|phase) (out of range|drift)"),
    ("spinnaker_unreachable", r"(?i)spinnaker.*board .*unreachable"),
    ("spinnaker_boot", r"SpiNNaker .*boot failed"),
    ("oom_kill", r"Out of memory: Killed process \d+"),
    ("segfault", r"segfault at [0-9a-f]+ ip [0-9a-f]+"),
    ("kernel_bug", r"BUG: (unable to handle|kernel NULL pointer)"),
    ("hung_task", r"INFO: task .+ blocked for more than \d+ seconds"),
    ("rcu_stall", r"rcu_(sched|preempt) (self-)?detected stalls?"),
    ("nvme_timeout", r"nvme\d+: I/O \d+ QID \d+ timeout"),
    ("io_error", r"(?i)\bI/O error\b"),
    ("nic_link_down", r"NIC Link is Down"),
    ("fan_failure", r"(?i)\bfan\d* (failure|failed|stopped)"),
    ("psu_fault", r"(?i)(psu|power supply) \d* ?(fault|failure|lost)"),
    ("voltage", r"(?i)voltage .*out of range"),
    ("usb_disconnect", r"usb \d+-[\d.]+: USB disconnect"),
    ("fw_load", r"Direct firmware load for \S+ failed"),
    ("probe_fail", r"probe of \S+ failed with error -\d+"),
    ("generic_error", r"(?i)\b(error|fatal|exception)\b"),
    ("watchdog", r"watchdog: (BUG: soft lockup|Watchdog detected hard LOCKUP)"),
    ("memory_failure", r"Memory failure: 0x[0-9a-f]+: "),
    ("cxl_error", r"cxl_\w+ \S+: .*(error|poison)"),
    ("sram_ecc", r"(?i)(sram|hbm) (ecc|parity) error"),
];

/// Lines a healthy host writes all day.
const NOISE: &[&str] = &[
    "kernel: [{t}] EXT4-fs (nvme0n1p2): re-mounted {h}. Quota mode: none.",
    "systemd[1]: Started Session {n} of User accel.",
    "sshd[{n}]: Accepted publickey for accel from 10.{a}.{b}.{c} port {n} ssh2: ED25519 SHA256:{h}",
    "CRON[{n}]: (root) CMD (/usr/lib/accel-agent/rotate --quiet >/dev/null 2>&1)",
    "NetworkManager[{n}]: <info>  [{t}] dhcp4 (eno1): state changed new lease, address=10.{a}.{b}.{c}",
    "photon-sdk[{n}]: inference batch {n} done in {a}.{b} ms, {c} samples, queue depth {a}",
    "NxSDK[{n}]: run {n} completed on board {a}: {b} timesteps, {c} spikes/s, energy {a}.{b} uJ",
    "kernel: [{t}] pcieport 0000:00:1c.{a}: PME: Spurious native interrupt!",
    "kernel: [{t}] nvme nvme0: {a}/0/0 default/read/poll queues",
    "loihi2-mgr[{n}]: chip {a} temperature {b}.{c} C, power {a}.{b} W, within limits",
    "spinnaker-ctl[{n}]: board 10.{a}.{b}.{c} boot completed in {n} ms (48 chips, {c} cores)",
    "kernel: [{t}] audit: type=1400 audit({t}:{n}): apparmor=\"STATUS\" operation=\"profile_load\" name=\"accel\"",
    "dockerd[{n}]: time=\"2026-03-21T10:{a}:{b}Z\" level=info msg=\"container {h} health status healthy\"",
    "kubelet[{n}]: I0321 10:{a}:{b}.{n} {n} kubelet_node_status.go:{c}] \"Node status updated\" node=\"gpu-{a}\"",
    "chronyd[{n}]: Selected source 10.{a}.{b}.{c} (ntp{a}.example.net), offset {a}.{b}us",
    "accel-agent[{n}]: collected {n} samples from {c} collectors in {a}.{b} ms",
];

/// Lines the rules are for.
const TROUBLE: &[&str] = &[
    "kernel: [{t}] pcieport 0000:00:1c.{a}: AER: Corrected error received: 0000:3b:00.0",
    "kernel: [{t}] pcieport 0000:00:1c.{a}: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)",
    "kernel: [{t}] mce: [Hardware Error]: Machine check events logged",
    "kernel: [{t}] EDAC skx MC{a}: 1 CE memory read error on CPU_SrcID#0_MC#{a}_Chan#{b}_DIMM#0",
    "kernel: [{t}] CPU{a}: Package temperature above threshold, cpu clock throttled (total events = {n})",
    "kernel: [{t}] habanalabs hl{a}: Device is NOT usable; hard reset required",
    "NxSDK[{n}]: ERROR: board {a} did not respond to barrier sync after {b} ms",
    "photon-sdk[{n}]: ERROR: waveguide calibration failed on channel {a} (code {b})",
    "kernel: [{t}] NVRM: Xid (PCI:0000:3b:00): 79, pid={n}, GPU has fallen off the bus.",
    "kernel: [{t}] nvme0: I/O {n} QID {a} timeout, aborting",
    "loihi2-mgr[{n}]: chip {a} thermal throttling engaged at {b}.{c} C",
];

/// A deterministic generator, so every run measures the same corpus.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn render(template: &str, rng: &mut Lcg) -> String {
    let mut s = format!("Mar 21 10:{:02}:{:02} node{:02} ", rng.next() % 60, rng.next() % 60, rng.next() % 64);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        s.push_str(&rest[..i]);
        let end = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        match &rest[i..end] {
            "{t}" => s.push_str(&format!("{}.{:06}", rng.next() % 900_000, rng.next() % 1_000_000)),
            "{n}" => s.push_str(&(rng.next() % 100_000).to_string()),
            "{h}" => s.push_str(&format!("{:016x}", rng.next() << 20 | rng.next())),
            _ => s.push_str(&(rng.next() % 256).to_string()),
        }
        rest = &rest[end..];
    }
    s.push_str(rest);
    s
}

/// About 3% of lines match a rule.
fn corpus(n: usize) -> Vec<String> {
    let mut rng = Lcg(0x5eed);
    (0..n)
        .map(|_| {
            if rng.next() % 100 < 3 {
                render(TROUBLE[rng.next() as usize % TROUBLE.len()], &mut rng)
            } else {
                render(NOISE[rng.next() as usize % NOISE.len()], &mut rng)
            }
        })
        .collect()
}

fn rules() -> RuleSet {
    let specs: Vec<RuleSpec> = RULES
        .iter()
        .map(|(name, pattern)| {
            if *name == "generic_error" {
                RuleSpec::condition(name, pattern, "LogErrors", Severity::Warning)
            } else {
                RuleSpec::event(name, pattern, Severity::Warning)
            }
        })
        .collect();
    RuleSet::new(&specs).expect("benchmark rules compile")
}

fn bench(c: &mut Criterion) {
    let set = rules();
    assert_eq!(set.len(), 50);
    let lines = corpus(100_000);
    let (mut hits, mut clears) = (Vec::new(), Vec::new());
    let matching = lines
        .iter()
        .filter(|l| {
            set.match_line(l, &mut hits, &mut clears);
            !hits.is_empty()
        })
        .count();
    let avg = lines.iter().map(String::len).sum::<usize>() / lines.len();
    eprintln!("corpus: {} lines, {avg} bytes on average, {matching} match a rule", lines.len());

    let mut g = c.benchmark_group("log_rules_50");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("match_line", |b| {
        b.iter(|| {
            let mut n = 0;
            for line in &lines {
                set.match_line(line, &mut hits, &mut clears);
                n += hits.len();
            }
            black_box(n)
        })
    });
    g.bench_function("tracker", |b| {
        let mut tracker = RuleTracker::new(&set);
        let now = Instant::now();
        b.iter(|| {
            let mut n = 0;
            for line in &lines {
                n += tracker.on_line(&set, line, now).len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
