//! SpiNNaker machines: frames of boards behind Board Management Processors, and the spalloc server that
//! shares them. Each board becomes a device of kind `spinnaker-board` bound to its BMP.

use serde::{Deserialize, Serialize};

pub use crate::bmp::{BmpBinding, SCP_PORT, socket_addr};
use crate::device::{DeviceConfig, DeviceKind, ReconnectConfig, ThresholdsConfig};
use crate::duration::{Interval, Timeout};
use crate::finding::{Finding, PathSeg};

/// The spalloc server's port.
pub const SPALLOC_PORT: u16 = 22244;

/// `[spinnaker]`: how BMPs are polled, and the machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spinnaker {
    /// How often every BMP and spalloc server is asked (default: `poll_interval`).
    pub interval: Option<Interval>,
    /// How long one SCP try waits for its reply (the public clients use 0.5 to 1 s).
    pub timeout: Timeout,
    /// Tries per request before a board counts as not answering (the public clients use 5 to 10).
    pub tries: u32,
    #[serde(rename = "machine")]
    pub machines: Vec<Machine>,
}

impl Default for Spinnaker {
    fn default() -> Self {
        Spinnaker { interval: None, timeout: Timeout::from_millis(500), tries: 5, machines: Vec::new() }
    }
}

/// `[[spinnaker.machine]]`: one machine, as spalloc names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub name: String,
    /// The spalloc server that lists this machine's dead boards and jobs: "host" or "host:port" for the
    /// v1 protocol, or the Java spalloc service's URL ("https://host/spalloc/") for its REST API.
    #[serde(default)]
    pub spalloc: Option<String>,
    /// REST only: the CA certificates (PEM) the service's certificate must chain to (default: the
    /// system's bundle, /etc/ssl/certs/ca-certificates.crt).
    #[serde(default)]
    pub spalloc_ca_file: Option<std::path::PathBuf>,
    /// REST only: a file whose first line is "username:password" or "Bearer TOKEN".
    #[serde(default)]
    pub spalloc_credentials_file: Option<std::path::PathBuf>,
    /// REST only: an environment variable holding the same, instead of a file.
    #[serde(default)]
    pub spalloc_credentials_env: Option<String>,
    #[serde(rename = "frame")]
    pub frames: Vec<FrameConfig>,
    /// Thresholds for every board of the machine (over the spinnaker-board profile).
    #[serde(default)]
    pub thresholds: Option<ThresholdsConfig>,
    /// The reconnect ladder of every board, e.g. `{ steps = ["power_cycle"] }`.
    #[serde(default)]
    pub reconnect: Option<ReconnectConfig>,
}

/// `[[spinnaker.machine.frame]]`: a frame and its BMP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameConfig {
    /// The BMP: "ip" or "ip:port" (port 17893).
    pub bmp: String,
    #[serde(default)]
    pub cabinet: u32,
    /// The frame's number in its cabinet (default: its position in this list).
    #[serde(default)]
    pub frame: Option<u32>,
    /// Boards 0..boards are polled (24 in a SpiNN-5 frame).
    pub boards: u8,
    /// The SC&MP address of each board, by board number, to tell "BMP up, board not booted" apart.
    #[serde(default)]
    pub scamp: Vec<String>,
}

impl Machine {
    /// The device id of a board: `{machine}-c{cabinet}-f{frame}-b{board}`.
    pub fn board_id(&self, cabinet: u32, frame: u32, board: u8) -> String {
        format!("{}-c{cabinet}-f{frame}-b{board}", self.name)
    }

    /// One device per board of every frame.
    pub fn board_devices(&self) -> Vec<DeviceConfig> {
        let mut out = Vec::new();
        for (i, f) in self.frames.iter().enumerate() {
            let frame = f.frame.unwrap_or(i as u32);
            for board in 0..f.boards {
                out.push(DeviceConfig {
                    id: self.board_id(f.cabinet, frame, board),
                    kind: DeviceKind::SpinnakerBoard,
                    model: Some("SpiNN-5".into()),
                    pci_address: None,
                    hwmon: None,
                    thermal_zone: None,
                    power_supply: None,
                    bmp: Some(BmpBinding {
                        address: f.bmp.clone(),
                        board,
                        scamp: f.scamp.get(usize::from(board)).cloned().filter(|s| !s.is_empty()),
                        machine: Some(self.name.clone()),
                        cabinet: f.cabinet,
                        frame,
                    }),
                    thresholds: self.thresholds.clone(),
                    logs: Vec::new(),
                    probes: Vec::new(),
                    throttle: None,
                    reconnect: self.reconnect.clone(),
                    resource: None,
                    kubernetes: None,
                    diagnostics: Vec::new(),
                });
            }
        }
        out
    }

    pub fn validate(&self, index: usize, out: &mut Vec<Finding>) {
        let at = |rest: &[PathSeg]| {
            let mut p: Vec<PathSeg> = vec!["spinnaker".into(), "machine".into(), index.into()];
            p.extend_from_slice(rest);
            p
        };
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            out.push(Finding {
                path: at(&["name".into()]),
                message: format!(
                    "machine name {:?} must be non-empty and use only letters, digits and - _ .",
                    self.name
                ),
            });
        }
        let rest = self.spalloc.as_deref().is_some_and(|s| s.contains("://"));
        let creds =
            usize::from(self.spalloc_credentials_file.is_some()) + usize::from(self.spalloc_credentials_env.is_some());
        if rest && !self.spalloc.as_deref().is_some_and(|s| s.starts_with("https://") && s.len() > "https://".len()) {
            out.push(Finding {
                path: at(&["spalloc".into()]),
                message: "the Java spalloc service is reached over HTTPS: \"https://host/spalloc/\"".into(),
            });
        } else if rest && creds != 1 {
            out.push(Finding {
                path: at(&["spalloc".into()]),
                message: "a REST spalloc needs exactly one of spalloc_credentials_file and spalloc_credentials_env \
                          (the credentials never go in this file)"
                    .into(),
            });
        } else if !rest && (creds > 0 || self.spalloc_ca_file.is_some()) {
            out.push(Finding {
                path: at(&["spalloc".into()]),
                message: "spalloc_ca_file and spalloc_credentials_* are for a REST spalloc (\"https://...\")".into(),
            });
        } else if self.spalloc.as_deref().is_some_and(|s| s.trim().is_empty() || s.contains(char::is_whitespace)) {
            out.push(Finding {
                path: at(&["spalloc".into()]),
                message: "spalloc needs \"host\" or \"host:port\"".into(),
            });
        }
        if self.frames.is_empty() {
            out.push(Finding { path: at(&["frame".into()]), message: "a machine needs at least one frame".into() });
        }
        for (j, f) in self.frames.iter().enumerate() {
            let fat = |k: &str| at(&["frame".into(), j.into(), k.into()]);
            if socket_addr(&f.bmp, SCP_PORT).is_none() {
                out.push(Finding {
                    path: fat("bmp"),
                    message: format!("{:?} is not an IP address (\"10.11.192.0\" or \"10.11.192.0:17893\")", f.bmp),
                });
            }
            if f.boards == 0 || f.boards > 32 {
                out.push(Finding {
                    path: fat("boards"),
                    message: "boards must be 1..=32 (24 in a SpiNN-5 frame)".into(),
                });
            }
            if !f.scamp.is_empty() && f.scamp.len() != usize::from(f.boards) {
                out.push(Finding {
                    path: fat("scamp"),
                    message: format!("scamp lists {} addresses for {} boards", f.scamp.len(), f.boards),
                });
            }
            for s in f.scamp.iter().filter(|s| !s.is_empty()) {
                if socket_addr(s, SCP_PORT).is_none() {
                    out.push(Finding { path: fat("scamp"), message: format!("{s:?} is not an IP address") });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_board_of_every_frame_is_a_device() {
        let cfg = crate::parse_str(
            r#"
[spinnaker]
timeout = "250ms"
[[spinnaker.machine]]
name = "spin5"
spalloc = "spalloc.example:22244"
reconnect = { steps = ["power_cycle"] }
[[spinnaker.machine.frame]]
bmp = "10.11.192.0"
boards = 3
scamp = ["10.11.193.1", "", "10.11.193.3:17894"]
[[spinnaker.machine.frame]]
bmp = "10.11.194.0:17000"
cabinet = 1
frame = 4
boards = 2
"#,
            "t.toml",
        )
        .unwrap();
        let ids: Vec<&str> = cfg.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["spin5-c0-f0-b0", "spin5-c0-f0-b1", "spin5-c0-f0-b2", "spin5-c1-f4-b0", "spin5-c1-f4-b1"]);
        let b = cfg.devices[2].bmp.as_ref().unwrap();
        assert_eq!(b.bmp_addr(), Some("10.11.192.0:17893".parse().unwrap()));
        assert_eq!(b.scamp_addr(), Some("10.11.193.3:17894".parse().unwrap()));
        assert_eq!(cfg.devices[1].bmp.as_ref().unwrap().scamp, None);
        assert_eq!(cfg.devices[3].bmp.as_ref().unwrap().bmp_addr(), Some("10.11.194.0:17000".parse().unwrap()));
        assert_eq!(cfg.devices[4].reconnect.as_ref().unwrap().steps, [crate::device::ReconnectStep::PowerCycle]);
        assert_eq!(cfg.spinnaker.timeout.get(), std::time::Duration::from_millis(250));
    }

    #[test]
    fn a_declared_device_with_a_boards_id_refines_it() {
        let cfg = crate::parse_str(
            r#"
[[device]]
id = "m-c0-f0-b1"
kind = "spinnaker-board"
model = "SpiNN-5 rev B"
[[spinnaker.machine]]
name = "m"
[[spinnaker.machine.frame]]
bmp = "127.0.0.1"
boards = 2
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(cfg.devices.len(), 2);
        let d = cfg.devices.iter().find(|d| d.id == "m-c0-f0-b1").unwrap();
        assert_eq!(d.model.as_deref(), Some("SpiNN-5 rev B"));
        assert_eq!(d.bmp.as_ref().unwrap().board, 1, "the binding comes from the machine");
    }

    #[test]
    fn a_rest_spalloc_needs_credentials_from_outside_the_config() {
        let machine = |extra: &str| {
            format!(
                "[[spinnaker.machine]]\nname = \"m\"\n{extra}\n[[spinnaker.machine.frame]]\nbmp = \"10.0.0.1\"\nboards = 1\n"
            )
        };
        let errors = crate::parse_str(&machine("spalloc = \"https://spalloc.example.org/spalloc/\""), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("t.toml:3:11: spinnaker.machine[0].spalloc: a REST spalloc needs exactly one"),
            "{errors}"
        );
        let errors =
            crate::parse_str(&machine("spalloc = \"http://spalloc/\"\nspalloc_credentials_env = \"X\""), "t.toml")
                .unwrap_err()
                .to_string();
        assert!(errors.contains("over HTTPS"), "{errors}");
        let errors =
            crate::parse_str(&machine("spalloc = \"spalloc:22244\"\nspalloc_credentials_env = \"X\""), "t.toml")
                .unwrap_err()
                .to_string();
        assert!(errors.contains("are for a REST spalloc"), "{errors}");
        let cfg = crate::parse_str(
            &machine(
                "spalloc = \"https://spalloc.example.org/spalloc/\"\nspalloc_credentials_file = \"/etc/accel-agent/spalloc.cred\"\nspalloc_ca_file = \"/etc/ssl/spalloc-ca.pem\"",
            ),
            "t.toml",
        )
        .unwrap();
        let m = &cfg.spinnaker.machines[0];
        assert_eq!(m.spalloc_credentials_file.as_deref(), Some(std::path::Path::new("/etc/accel-agent/spalloc.cred")));
    }

    #[test]
    fn bad_frames_are_located() {
        let errors = crate::parse_str(
            "[[spinnaker.machine]]\nname = \"m\"\n[[spinnaker.machine.frame]]\nbmp = \"bmp-host\"\nboards = 40\nscamp = [\"10.0.0.1\"]\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            errors.contains("t.toml:4:7: spinnaker.machine[0].frame[0].bmp: \"bmp-host\" is not an IP address"),
            "{errors}"
        );
        assert!(
            errors.contains("t.toml:5:10: spinnaker.machine[0].frame[0].boards: boards must be 1..=32"),
            "{errors}"
        );
        assert!(errors.contains("scamp lists 1 addresses for 40 boards"), "{errors}");
    }
}
