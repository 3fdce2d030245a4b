//! A simulated accelerator host, for `accel-agent --demo` and the end-to-end suite: a fake sysfs tree,
//! device logs, vendor status and reconnect commands (shell scripts), and a SpiNNaker frame behind a
//! simulated BMP on loopback. Everything lives in one temporary directory, removed when the host drops.
//!
//! - `loihi0`: an hwmon chip "loihi" (temperature), the `loihi2` power supply (energy_now, power_now), a
//!   device log, and a status command reporting inferences and utilisation; throttled through
//!   cooling_device0.
//! - `photon0`, `photon1`: photonic cards with a status command (online, temperature, power), a reconnect
//!   command, and a log each.
//! - `spin5-c0-f0-b0..3`: a SpiNNaker frame of four boards behind a BMP simulator; board 3's SC&MP is a
//!   second simulator that can be silenced (a board that does not boot).
//! - `hl0`: a habanalabs-like PCIe card: accel class device with driver status, hwmon chip, AER
//!   counters, and hard_reset/reset files.
//!
//! - a fake kubelet (crate::kubelet_sim) in `kubelet/`: the agent registers its device plugins with it,
//!   and its pod-resources API shows a pod on each board (hl0's through the habanalabs plugin's id, its
//!   PCI address).
//!
//! The knobs below change what the agent sees; [`DemoHost::run_scenarios`] plays them as a story.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bmp_sim::{BmpSim, Fault, SimBoard, SimOptions};
use crate::kubelet_sim::{FakeKubelet, FakePod};
use crate::sysfs_tree::FakeSysfs;

pub const LOIHI_TEMP: &str = "devices/platform/loihi.0/hwmon/hwmon0/temp1_input";
pub const COOLING_STATE: &str = "devices/virtual/thermal/cooling_device0/cur_state";
pub const HL_PCI: &str = "0000:3b:00.0";
pub const HL_STATUS: &str = "devices/pci0000:00/0000:00:02.0/0000:3b:00.0/status";
pub const HL_HARD_RESET: &str = "devices/pci0000:00/0000:3b:00.0/hard_reset";
const HL_TEMP: &str = "devices/pci0000:00/0000:00:02.0/0000:3b:00.0/hwmon/hwmon1/temp1_input";
const ENERGY: &str = "class/power_supply/loihi2/energy_now";

pub struct DemoHost {
    pub sysfs: FakeSysfs,
    pub bmp: BmpSim,
    /// Board 3's SC&MP.
    pub scamp: BmpSim,
    /// kubelet, as far as the agent sees it: registration, ListAndWatch, pod-resources.
    pub kubelet: FakeKubelet,
    /// Declared last: fields drop in order, and the tree inside it goes first.
    dir: tempfile::TempDir,
}

const PHOTON_STATUS: &str = r#"#!/bin/sh
# Stand-in for `photon-debug --list-devices --device ID --format json`.
state="$(dirname "$0")/../state"
# A hung vendor tool, for fault injection.
[ -e "$state/$1.hang" ] && sleep 60
online=$(cat "$state/$1.online" 2>/dev/null || echo 1)
temp=$(cat "$state/$1.temp" 2>/dev/null || echo 45.0)
printf '{"device": "%s", "status": %s, "temp_c": %s, "power_w": 38.5}\n' "$1" "$online" "$temp"
"#;

const PHOTON_RECONNECT: &str = r#"#!/bin/sh
# Stand-in for `photon-debug --reconnect-device ID`: brings the card back unless it is stuck.
state="$(dirname "$0")/../state"
[ -e "$state/$1.stuck" ] && exit 1
echo 1 > "$state/$1.online"
"#;

const LIGHTMATTER_CLI: &str = r#"#!/bin/sh
# Stand-in for `lightmatter-cli calibrate --device ID [--verify] [--json]`: --verify reports the card's
# calibration drift (after a couple of seconds of measuring); without it the card is recalibrated.
state="$(dirname "$0")/../state"
[ "$1" = calibrate ] && [ "$2" = --device ] || { echo "usage: lightmatter-cli calibrate --device ID [--verify] [--json]" >&2; exit 64; }
id="$3"
if [ "$4" = --verify ]; then
  echo "measuring phase drift of $id on 64 channels" >&2
  sleep 2
  printf '{"device": "%s", "drift_ppm": %s}\n' "$id" "$(cat "$state/$id.drift" 2>/dev/null || echo 4)"
else
  sleep 1
  echo 3 > "$state/$id.drift"
  echo "$id recalibrated"
fi
"#;

const LOIHI_STATUS: &str = r#"#!/bin/sh
# Stand-in for the NxSDK board status: online, inferences and energy (µWh) so far, read together from
# one file, and chip utilisation.
state="$(dirname "$0")/../state"
read -r n e < "$state/loihi0.work" || { n=0; e=0; }
printf '{"online": 1, "inferences": %s, "energy_uwh": %s, "utilization": 0.62}\n' "$n" "$e"
"#;

impl DemoHost {
    pub fn build() -> std::io::Result<DemoHost> {
        let dir = tempfile::Builder::new().prefix("accel-demo-").tempdir()?;
        for sub in ["bin", "state", "logs", "run"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        for (name, text) in [
            ("photon-status", PHOTON_STATUS),
            ("photon-reconnect", PHOTON_RECONNECT),
            ("loihi-status", LOIHI_STATUS),
            ("lightmatter-cli", LIGHTMATTER_CLI),
        ] {
            let path = dir.path().join("bin").join(name);
            std::fs::write(&path, text)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        for log in ["loihi0.log", "photon0.log", "photon1.log"] {
            std::fs::File::create(dir.path().join("logs").join(log))?;
        }
        let fs = FakeSysfs::new_in(dir.path())?;
        fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "55000");
        fs.power_supply(
            "loihi2",
            &[("type", "Mains"), ("online", "1"), ("energy_now", "1000000"), ("power_now", "12500000")],
        );
        fs.cooling_device(0, "Processor", 0, 10);
        fs.accel_device(
            0,
            HL_PCI,
            "habanalabs",
            &[("status", "Operational"), ("max_power", "350000000"), ("hard_reset_cnt", "0")],
        );
        fs.hwmon(1, Some("habanalabs"), Some("devices/pci0000:00/0000:00:02.0/0000:3b:00.0"))
            .attr("temp1_input", "52000")
            .attr("power1_input", "182000000");
        fs.pci_device(HL_PCI, &[("RxErr", 0), ("Bad TLP", 0)], &[("Undefined", 0)], &[("DLP", 0)]);
        fs.write(HL_HARD_RESET, "0\n");
        fs.write("devices/pci0000:00/0000:3b:00.0/reset", "0\n");
        let bmp = BmpSim::start(4)?;
        bmp.set_board(1, SimBoard { temp_top: 38.0, fan0: Some(2200), ..SimBoard::default() });
        let scamp =
            BmpSim::with_options(SimOptions { boards: 1, text: "SC&MP/SpiNNaker".into(), ..SimOptions::default() })?;
        let kubelet = FakeKubelet::start(
            &dir.path().join("kubelet/device-plugins"),
            &dir.path().join("kubelet/pod-resources/kubelet.sock"),
        )?;
        kubelet.set_pods(demo_pods());
        let host = DemoHost { dir, sysfs: fs, bmp, scamp, kubelet };
        host.loihi_work(0, 1_000_000)?;
        Ok(host)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self, device: &str) -> PathBuf {
        self.dir().join("logs").join(format!("{device}.log"))
    }

    fn set_state(&self, name: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(self.dir().join("state").join(name), format!("{value}\n"))
    }

    /// The agent's config for this host. `listen` is e.g. "127.0.0.1:9860" or "127.0.0.1:0".
    pub fn config(&self, listen: &str) -> String {
        let d = self.dir().display();
        // SAFETY: getegid has no preconditions and cannot fail.
        let gid = unsafe { libc::getegid() };
        format!(
            r#"# The simulated host of `accel-agent --demo`; everything below lives in {d}.
listen = "{listen}"
sysfs_root = "{root}"
state_dir = "{d}/state/agent"
socket = "{d}/run/agent.sock"
poll_interval = "1s"

# The control group is the group of the user running the demo, so agentctl can change things without
# sudo (and nothing warns that the packaged accel-agent group is missing on this host).
[control]
group = "{gid}"

# The agent as a kubelet device plugin, against the fake kubelet in {d}/kubelet. A device that is
# degraded (e.g. loihi0 running hot) is already Unhealthy to kubelet: no new pods are placed on it.
[kubernetes]
enabled = true
device_plugin_dir = "{d}/kubelet/device-plugins"
pod_resources_socket = "{d}/kubelet/pod-resources/kubelet.sock"
interval = "2s"
timeout = "1s"
unhealthy_on = ["unhealthy", "degraded", "maintenance", "circuit_open"]

# Actions are on, confined to the simulated tree and scripts above.
[actions]
enabled = true

# Diagnostics too: photon0's calibration check runs when its log shows errors (and with
# `agentctl diagnose --level 2 photon0`).
[diagnostics]
enabled = true

[spinnaker]
timeout = "200ms"
tries = 2
[[spinnaker.machine]]
name = "spin5"
thresholds = {{ temperature_warn = 60.0, temperature_crit = 75.0, min_duration = "2s" }}
reconnect = {{ steps = ["power_cycle"], settle = "4s", max_failures = 2, backoff_initial = "2s", cooldown = "20s", escalate_after = 2 }}
[[spinnaker.machine.frame]]
bmp = "{bmp}"
boards = 4
scamp = ["", "", "", "{scamp}"]

{loihi}{photonic}[[device]]
id = "hl0"
kind = "pci-accel"
model = "Gaudi-like card (simulated)"
pci_address = "{pci}"
[device.kubernetes]
vendor_resource = "habana.ai/gaudi"
vendor_device_id = "{{pci_address}}"
[device.reconnect]
steps = ["driver_reset"]
settle = "4s"
backoff_initial = "2s"
"#,
            root = self.sysfs.root().display(),
            bmp = self.bmp.addr(),
            scamp = self.scamp.addr(),
            pci = HL_PCI,
            loihi = loihi_device(&d.to_string()),
            photonic = ["photon0", "photon1"].map(|id| photonic_device(id, &d.to_string())).concat(),
        )
    }

    pub fn set_loihi_temp(&self, celsius: f64) {
        self.sysfs.write(LOIHI_TEMP, &format!("{}\n", (celsius * 1000.0).round() as i64));
    }

    pub fn loihi_temp(&self) -> Option<f64> {
        let raw = std::fs::read_to_string(self.sysfs.path(LOIHI_TEMP)).ok()?;
        raw.trim().parse::<f64>().ok().map(|m| m / 1000.0)
    }

    /// What the agent wrote to the throttle's cooling device.
    pub fn cooling_state(&self) -> Option<u32> {
        std::fs::read_to_string(self.sysfs.path(COOLING_STATE)).ok()?.trim().parse().ok()
    }

    /// Work done on the Loihi board: inferences and energy (power_supply energy_now, µWh) move together.
    /// The status tool reads both counters from one file, replaced atomically, as a board reports them.
    pub fn loihi_work(&self, inferences: u64, energy_uwh: u64) -> std::io::Result<()> {
        let state = self.dir().join("state");
        std::fs::write(state.join("loihi0.work.tmp"), format!("{inferences} {energy_uwh}\n"))?;
        std::fs::rename(state.join("loihi0.work.tmp"), state.join("loihi0.work"))?;
        self.sysfs.write(ENERGY, &format!("{energy_uwh}\n"));
        Ok(())
    }

    /// A photonic card goes offline (its status says 0) or comes back.
    pub fn photon_online(&self, device: &str, online: bool) -> std::io::Result<()> {
        self.set_state(&format!("{device}.online"), if online { "1" } else { "0" })
    }

    /// Whether the card is currently reported online (the reconnect script sets it back).
    pub fn photon_is_online(&self, device: &str) -> bool {
        std::fs::read_to_string(self.dir().join("state").join(format!("{device}.online")))
            .map_or(true, |s| s.trim() == "1")
    }

    /// The card's status command hangs (for a minute) from its next run, or stops hanging.
    pub fn photon_hangs(&self, device: &str, hangs: bool) -> std::io::Result<()> {
        let path = self.dir().join("state").join(format!("{device}.hang"));
        if hangs { std::fs::write(path, "") } else { std::fs::remove_file(path).or(Ok(())) }
    }

    /// A photonic card's calibration drift, as its `lightmatter-cli calibrate --verify` reports it.
    pub fn photon_drift(&self, device: &str, ppm: f64) -> std::io::Result<()> {
        self.set_state(&format!("{device}.drift"), &ppm.to_string())
    }

    pub fn append_log(&self, device: &str, lines: &[&str]) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(self.log_path(device))?;
        for l in lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }

    /// Board 3 stops booting (its SC&MP is silent) or boots again.
    pub fn board3_boots(&self, boots: bool) {
        self.scamp.set_fault(if boots { Fault::None } else { Fault::Silent });
    }

    pub fn set_board_temp(&self, board: u8, celsius: f64) {
        self.bmp.update_board(board, |b| b.temp_top = celsius);
    }

    pub fn set_hl_status(&self, status: &str) {
        self.sysfs.write(HL_STATUS, &format!("{status}\n"));
    }

    pub fn set_hl_temp(&self, celsius: f64) {
        self.sysfs.write(HL_TEMP, &format!("{}\n", (celsius * 1000.0).round() as i64));
    }

    /// Plays the demo's story until `stop`, one scene after another, then again:
    /// 1. loihi0 heats up, is throttled (cooling_device0 written), cools down, and is released.
    /// 2. photon1 goes offline; its reconnect command brings it back.
    /// 3. photon0's log gets a burst of error lines (LogErrors), later "link recovered" clears it. Its
    ///    calibration has drifted: the LogErrors runs its calibration check, which fails; the remedy
    ///    recalibrates and the check passes.
    /// 4. spin5 board 1 runs warm (degraded) and cools again.
    /// 5. spin5 board 3 stops booting: power cycles through the BMP do not help, the circuit opens and
    ///    the board is marked NeedsHardwareInspection (clear it with `agentctl set-healthy`).
    ///
    /// `say` gets a line per scene for the console.
    pub fn run_scenarios(&self, stop: &AtomicBool, say: &dyn Fn(&str)) {
        let tick = Duration::from_millis(500);
        let mut inferences: u64 = 0;
        let mut energy_uwh: u64 = 1_000_000;
        let mut temp = 55.0;
        let mut t0 = Instant::now();
        let mut scene = 0;
        while !stop.load(Ordering::Relaxed) {
            let t = t0.elapsed().as_secs_f64();
            // Steady work on the Loihi board: 4 mJ per inference (1 µWh = 3.6 mJ).
            inferences += 900;
            energy_uwh += 1000;
            let _ = self.loihi_work(inferences, energy_uwh);
            // Heat: while the scene runs the board heats unless throttled; otherwise it settles at 55 °C.
            let throttled = self.cooling_state().unwrap_or(0) > 0;
            temp = if (5.0..60.0).contains(&t) {
                if throttled { temp - 0.8 } else { temp + 1.2 }
            } else {
                temp + (55.0 - temp) * 0.2
            };
            self.set_loihi_temp(temp);
            let next = match scene {
                0 if t >= 5.0 => Some(
                    "scene 1: loihi0 heats up; watch it get throttled, advertised Unhealthy to kubelet, and released",
                ),
                1 if t >= 60.0 => {
                    let _ = self.photon_online("photon1", false);
                    Some("scene 2: photon1 goes offline; the agent runs its reconnect command")
                }
                2 if t >= 85.0 => {
                    let _ = self.photon_drift("photon0", 72.0);
                    let _ = self.append_log("photon0", &["ERROR: waveguide phase drift on channel 3"; 6]);
                    Some(
                        "scene 3: a burst of error lines in photon0's log raises LogErrors; its calibration check \
                         finds 72 ppm of drift, the remedy recalibrates, the check passes",
                    )
                }
                3 if t >= 110.0 => {
                    let _ = self.append_log("photon0", &["link recovered"]);
                    self.set_board_temp(1, 66.0);
                    Some("scene 4: photon0's link recovers; spin5 board 1 runs warm")
                }
                4 if t >= 135.0 => {
                    self.set_board_temp(1, 38.0);
                    self.board3_boots(false);
                    Some("scene 5: spin5 board 3 stops booting; power cycles will not help, its circuit opens")
                }
                5 if t >= 240.0 => {
                    self.board3_boots(true);
                    Some(
                        "the story starts again (spin5 board 3 boots again; `agentctl set-healthy spin5-c0-f0-b3` re-arms it)",
                    )
                }
                _ => None,
            };
            if let Some(line) = next {
                say(line);
                scene += 1;
                if scene == 6 {
                    scene = 0;
                    t0 = Instant::now();
                }
            }
            std::thread::sleep(tick);
        }
    }
}

/// A pod on each board, as kubelet's pod-resources reports them.
fn demo_pods() -> Vec<FakePod> {
    let mut pods = vec![
        FakePod::new("neuro", "snn-train-0", "trainer", "accel-agent.io/loihi", &["loihi0"]),
        FakePod::new("optics", "mvm-infer-0", "server", "accel-agent.io/photonic", &["photon0"]),
        FakePod::new("optics", "mvm-infer-1", "server", "accel-agent.io/photonic", &["photon1"]),
        FakePod::new("ml", "llm-serve-0", "vllm", "habana.ai/gaudi", &[HL_PCI]),
    ];
    for b in 0..4 {
        let id = format!("spin5-c0-f0-b{b}");
        pods.push(FakePod::new(
            "brain-sim",
            &format!("cortex-{b}"),
            "spynnaker",
            "accel-agent.io/spinnaker-board",
            &[&id],
        ));
    }
    pods
}

/// loihi0: thresholds, a two-step throttle ladder on cooling_device0, the NxSDK-like status probe and a
/// device log with a chip-error rule. `d` is the demo's directory.
fn loihi_device(d: &str) -> String {
    format!(
        r#"[[device]]
id = "loihi0"
kind = "loihi"
model = "Loihi 2 (simulated)"
[device.thresholds]
temperature_warn = 80.0
temperature_crit = 90.0
min_duration = "2s"
energy_per_inference_max = 0.005
[device.throttle]
threshold = 80.0
hysteresis = 4.0
hold = "2s"
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 3 }}
[[device.throttle.level]]
cooling_device = {{ device = "cooling_device0", state = 7 }}
[[device.probe]]
name = "nxsdk-status"
command = ["{d}/bin/loihi-status"]
format = "json"
fields = {{ online = "/online", inferences = "/inferences", energy = "/energy_uwh", utilization = "/utilization" }}
scale = {{ energy = 0.0036 }}
interval = "2s"
timeout = "1s"
[[device.log]]
path = "{d}/logs/loihi0.log"
[[device.log.rule]]
name = "chip-error"
pattern = "(?i)\\bchip error\\b"
action = "LogErrors"
count = 3
window = "1m"
clear_pattern = "chip ok"

"#
    )
}

/// A photonic card's section of the demo config: its status probe, reconnect command and log.
fn photonic_device(id: &str, dir: &str) -> String {
    // photon0 has the runbook's calibration check, run when its log shows errors.
    let diagnostic = if id != "photon0" {
        String::new()
    } else {
        format!(
            r#"[[device.diagnostic]]
name = "calibration-verify"
level = 2
argv = ["{dir}/bin/lightmatter-cli", "calibrate", "--device", "{{id}}", "--verify", "--json"]
timeout = "30s"
expect = [{{ field = "/drift_ppm", max = 50.0 }}]
remedy = ["{dir}/bin/lightmatter-cli", "calibrate", "--device", "{{id}}"]
exclusive = true
on = ["LogErrors"]
cooldown = "3m"
"#
        )
    };
    format!(
        r#"[[device]]
id = "{id}"
kind = "photonic"
model = "photonic MVM card (simulated)"
[[device.probe]]
name = "photon-debug"
command = ["{dir}/bin/photon-status", "{{id}}"]
format = "json"
fields = {{ online = "/status", temperature = "/temp_c", power = "/power_w" }}
interval = "2s"
timeout = "1s"
[device.reconnect]
steps = ["vendor"]
command = ["{dir}/bin/photon-reconnect", "{{id}}"]
settle = "4s"
backoff_initial = "2s"
[[device.log]]
path = "{dir}/logs/{id}.log"
[[device.log.rule]]
name = "error-burst"
pattern = "(?i)\\berror\\b"
action = "LogErrors"
count = 5
window = "1m"
clear_pattern = "link recovered"
{diagnostic}
"#
    )
}
