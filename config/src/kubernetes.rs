//! `[kubernetes]` (the kubelet device plugin and pod attribution) and a device's `[device.kubernetes]`
//! (what Allocate hands a container, and how a vendor plugin's device id names the device).
//!
//! Everything here is node-local: the agent speaks only to kubelet's Unix sockets, never to an API server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::{Interval, Timeout};
use crate::finding::{Finding, PathSeg};

pub const DEFAULT_DEVICE_PLUGIN_DIR: &str = "/var/lib/kubelet/device-plugins";
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
pub const DEFAULT_KUBELET_INTERVAL: Interval = Interval::from_millis(10_000);
pub const DEFAULT_KUBELET_TIMEOUT: Timeout = Timeout::from_millis(5_000);
/// The env var Allocate always sets: the allocated device ids, comma-separated.
pub const DEVICES_ENV: &str = "ACCEL_AGENT_DEVICES";

/// `[kubernetes]`: off unless enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    pub enabled: bool,
    /// kubelet's device-plugin directory: the agent's plugin sockets are created here and kubelet's
    /// registration socket is `kubelet.sock` in it.
    pub device_plugin_dir: PathBuf,
    /// kubelet's pod-resources socket (`v1.PodResourcesLister`).
    pub pod_resources_socket: PathBuf,
    /// Ask kubelet which pod holds each device (pod-resources `List`).
    pub pod_attribution: bool,
    /// How often pod-resources is polled, and the longest a health change waits to reach kubelet.
    pub interval: Interval,
    /// Deadline of every call to kubelet (registration, pod-resources); at most `interval`.
    pub timeout: Timeout,
    /// What makes a device `Unhealthy` to kubelet.
    pub unhealthy_on: Vec<UnhealthyOn>,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            enabled: false,
            device_plugin_dir: PathBuf::from(DEFAULT_DEVICE_PLUGIN_DIR),
            pod_resources_socket: PathBuf::from(DEFAULT_POD_RESOURCES_SOCKET),
            pod_attribution: true,
            interval: DEFAULT_KUBELET_INTERVAL,
            timeout: DEFAULT_KUBELET_TIMEOUT,
            unhealthy_on: UnhealthyOn::DEFAULT.to_vec(),
        }
    }
}

/// A reason for advertising a device `Unhealthy` to kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnhealthyOn {
    /// The device's state is unhealthy.
    Unhealthy,
    /// The device's state is degraded.
    Degraded,
    /// The device's state is unknown (nothing read yet, or its sources fail).
    Unknown,
    /// The device is in maintenance.
    Maintenance,
    /// The device's reconnect circuit is open.
    CircuitOpen,
}

impl UnhealthyOn {
    pub const DEFAULT: [UnhealthyOn; 3] = [UnhealthyOn::Unhealthy, UnhealthyOn::Maintenance, UnhealthyOn::CircuitOpen];
}

/// `[device.kubernetes]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceKubernetes {
    /// Env vars Allocate sets in the container (besides `ACCEL_AGENT_DEVICES`). `{id}` is replaced.
    pub env: BTreeMap<String, String>,
    /// Host device nodes handed to the container (`[[device.kubernetes.device_node]]`).
    #[serde(rename = "device_node")]
    pub device_nodes: Vec<DeviceNode>,
    /// Host paths mounted into the container (`[[device.kubernetes.mount]]`).
    #[serde(rename = "mount")]
    pub mounts: Vec<MountConfig>,
    /// The resource a vendor's own plugin advertises this device as (e.g. "habana.ai/gaudi"), for pod
    /// attribution of devices the agent does not advertise itself.
    pub vendor_resource: Option<String>,
    /// The vendor plugin's id of this device: a template with `{id}` and `{pci_address}`
    /// (e.g. "{pci_address}"). Default "{id}".
    pub vendor_device_id: Option<String>,
}

/// A device node, as the DevicePlugin API's DeviceSpec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceNode {
    pub host_path: PathBuf,
    /// Default: the same as `host_path`.
    #[serde(default)]
    pub container_path: Option<PathBuf>,
    /// cgroup device permissions: any of r, w, m.
    #[serde(default = "rw")]
    pub permissions: String,
}

fn rw() -> String {
    "rw".to_owned()
}

/// A bind mount, as the DevicePlugin API's Mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    pub host_path: PathBuf,
    /// Default: the same as `host_path`.
    #[serde(default)]
    pub container_path: Option<PathBuf>,
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

/// Whether `name` is a valid extended resource name: `domain/name`, the domain a DNS subdomain outside
/// kubernetes.io, the name at most 63 characters of letters, digits, '-', '_', '.', starting and ending
/// with a letter or digit.
pub fn is_resource_name(name: &str) -> bool {
    let Some((domain, rest)) = name.split_once('/') else { return false };
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && domain != "kubernetes.io"
        && !domain.ends_with(".kubernetes.io");
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let name_ok = !rest.is_empty()
        && rest.len() <= 63
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && edge(rest.chars().next())
        && edge(rest.chars().last());
    domain_ok && name_ok
}

/// Whether `name` can be an environment variable's name.
pub(crate) fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Kubernetes {
    pub fn validate(&self, out: &mut Vec<Finding>) {
        let at = |k: &str| vec![PathSeg::from("kubernetes"), k.into()];
        if self.timeout.get() > self.interval.get() {
            out.push(Finding {
                path: at("timeout"),
                message: format!("timeout {} is longer than the interval {}", self.timeout, self.interval),
            });
        }
        for (key, p) in
            [("device_plugin_dir", &self.device_plugin_dir), ("pod_resources_socket", &self.pod_resources_socket)]
        {
            if !p.is_absolute() {
                out.push(Finding { path: at(key), message: format!("{} must be an absolute path", p.display()) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        assert!(is_resource_name("accel-agent.io/loihi"));
        assert!(is_resource_name("accel-agent.io/spinnaker-board"));
        assert!(is_resource_name("habana.ai/gaudi"));
        assert!(!is_resource_name("loihi"), "needs a domain");
        assert!(!is_resource_name("kubernetes.io/loihi"), "kubernetes.io is reserved");
        assert!(!is_resource_name("Accel.io/loihi"), "domain is lower case");
        assert!(!is_resource_name("accel.io/-loihi"));
        assert!(!is_resource_name("accel.io/"));
    }

    #[test]
    fn defaults_and_resource_names_by_kind() {
        let c = crate::parse_str(
            "[[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n\n[[device]]\nid = \"gaudi0\"\nkind = \"pci-accel\"\n\
             pci_address = \"0000:3b:00.0\"\n[device.kubernetes]\nvendor_resource = \"habana.ai/gaudi\"\n\
             vendor_device_id = \"{pci_address}\"\n\n[[device]]\nid = \"photon0\"\nkind = \"photonic\"\nresource = \"\"\n",
            "t.toml",
        )
        .unwrap();
        assert!(!c.kubernetes.enabled);
        assert_eq!(c.kubernetes.device_plugin_dir, PathBuf::from("/var/lib/kubelet/device-plugins"));
        assert_eq!(c.kubernetes.pod_resources_socket, PathBuf::from("/var/lib/kubelet/pod-resources/kubelet.sock"));
        assert_eq!(c.kubernetes.interval.get(), std::time::Duration::from_secs(10));
        assert_eq!(c.kubernetes.unhealthy_on, UnhealthyOn::DEFAULT.to_vec());
        assert_eq!(c.devices[0].resource_name().as_deref(), Some("accel-agent.io/loihi"));
        assert_eq!(c.devices[1].resource_name(), None, "a vendor plugin owns pci-accel devices");
        assert_eq!(c.devices[1].vendor_binding(), Some(("habana.ai/gaudi".to_owned(), "0000:3b:00.0".to_owned())));
        assert_eq!(c.devices[2].resource_name(), None, "resource = \"\" advertises nothing");
    }

    #[test]
    fn mistakes_are_located() {
        let text = "[kubernetes]\nenabled = true\nunhealthy_on = [\"unhealthy\", \"sick\"]\n\
                    interval = \"2s\"\ntimeout = \"3s\"\n\n[[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n\
                    resource = \"loihi\"\n[device.kubernetes]\nenv = { \"1BAD\" = \"x\" }\n\
                    [[device.kubernetes.device_node]]\nhost_path = \"/dev/loihi0\"\npermissions = \"rwx\"\n";
        let errors = crate::parse_str(text, "t.toml").unwrap_err().to_string();
        assert!(errors.contains("t.toml:3:") && errors.contains("sick"), "{errors}");
        let text = text.replace(", \"sick\"", "");
        let errors = crate::parse_str(&text, "t.toml").unwrap_err().to_string();
        assert!(
            errors.contains("t.toml:5:11: kubernetes.timeout: timeout 3s is longer than the interval 2s"),
            "{errors}"
        );
        assert!(errors.contains("t.toml:10:12: device[0].resource:"), "{errors}");
        assert!(errors.contains("t.toml:12:7: device[0].kubernetes.env:"), "{errors}");
        assert!(errors.contains("t.toml:15:15: device[0].kubernetes.device_node[0].permissions:"), "{errors}");
    }
}
