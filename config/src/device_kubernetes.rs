//! What a device's Kubernetes settings mean and whether they hold: its resource name, its vendor
//! plugin's id, and the checks of `resource` and `[device.kubernetes]` against the rest of the config.
//! Apart from `kubernetes`, which only declares the sections (and which `device` names).

use std::collections::BTreeMap;

use crate::device::{DeviceConfig, DeviceKind};
use crate::finding::{Finding, PathSeg};
use crate::kubernetes::{DEVICES_ENV, is_env_name, is_resource_name};

impl DeviceConfig {
    /// The extended resource this device is advertised as, if any: `resource` when set (an empty string
    /// advertises nothing), else `accel-agent.io/<kind>` for the kinds without a vendor plugin.
    pub fn resource_name(&self) -> Option<String> {
        match &self.resource {
            Some(r) if r.is_empty() => None,
            Some(r) => Some(r.clone()),
            None => match self.kind {
                DeviceKind::Loihi | DeviceKind::Photonic | DeviceKind::SpinnakerBoard => {
                    Some(format!("accel-agent.io/{}", self.kind.name()))
                }
                DeviceKind::PciAccel | DeviceKind::Generic => None,
            },
        }
    }

    /// The vendor plugin's (resource, device id) for this device, when `vendor_resource` is set.
    pub fn vendor_binding(&self) -> Option<(String, String)> {
        let k = self.kubernetes.as_ref()?;
        let resource = k.vendor_resource.clone()?;
        let template = k.vendor_device_id.as_deref().unwrap_or("{id}");
        let id = template.replace("{id}", &self.id).replace("{pci_address}", self.pci_address.as_deref().unwrap_or(""));
        Some((resource, id))
    }
}

/// Checks a device's `resource` and `[device.kubernetes]`; `index` locates the findings.
pub fn validate_device(d: &DeviceConfig, index: usize, out: &mut Vec<Finding>) {
    let at = |rest: &[&str]| {
        let mut p: Vec<PathSeg> = vec!["device".into(), index.into()];
        p.extend(rest.iter().map(|k| PathSeg::from(*k)));
        p
    };
    if let Some(r) = &d.resource
        && !r.is_empty()
        && !is_resource_name(r)
    {
        out.push(Finding {
            path: at(&["resource"]),
            message: format!(
                "{r:?} is not an extended resource name: write \"domain/name\" (e.g. \"accel-agent.io/loihi\"), \
                 the domain outside kubernetes.io, or \"\" to advertise none"
            ),
        });
    }
    let Some(k) = &d.kubernetes else { return };
    for name in k.env.keys() {
        if !is_env_name(name) || name == DEVICES_ENV {
            out.push(Finding {
                path: at(&["kubernetes", "env"]),
                message: format!(
                    "{name:?} is not a usable env var name (letters, digits, _; not starting with a digit; \
                     {DEVICES_ENV} is set by the agent)"
                ),
            });
        }
    }
    for (i, n) in k.device_nodes.iter().enumerate() {
        let mut p = at(&["kubernetes", "device_node"]);
        p.push(i.into());
        if !n.host_path.is_absolute() || n.container_path.as_ref().is_some_and(|c| !c.is_absolute()) {
            p.push("host_path".into());
            out.push(Finding { path: p.clone(), message: "device node paths must be absolute".into() });
            p.pop();
        }
        if n.permissions.is_empty() || !n.permissions.chars().all(|c| "rwm".contains(c)) {
            p.push("permissions".into());
            out.push(Finding {
                path: p,
                message: format!("permissions {:?} must be made of r, w and m (e.g. \"rw\")", n.permissions),
            });
        }
    }
    for (i, m) in k.mounts.iter().enumerate() {
        if !m.host_path.is_absolute() || m.container_path.as_ref().is_some_and(|c| !c.is_absolute()) {
            let mut p = at(&["kubernetes", "mount"]);
            p.extend([i.into(), "host_path".into()]);
            out.push(Finding { path: p, message: "mount paths must be absolute".into() });
        }
    }
    if let Some(r) = &k.vendor_resource
        && !is_resource_name(r)
    {
        out.push(Finding {
            path: at(&["kubernetes", "vendor_resource"]),
            message: format!("{r:?} is not an extended resource name (\"domain/name\", e.g. \"habana.ai/gaudi\")"),
        });
    }
    if let Some(t) = &k.vendor_device_id {
        if k.vendor_resource.is_none() {
            out.push(Finding {
                path: at(&["kubernetes", "vendor_device_id"]),
                message: "vendor_device_id needs vendor_resource (the resource the vendor's plugin advertises)".into(),
            });
        }
        if t.contains("{pci_address}") && d.pci_address.is_none() {
            out.push(Finding {
                path: at(&["kubernetes", "vendor_device_id"]),
                message: "the template uses {pci_address} but the device has no pci_address".into(),
            });
        }
        let rest = t.replace("{id}", "").replace("{pci_address}", "");
        if rest.contains('{') || rest.contains('}') {
            out.push(Finding {
                path: at(&["kubernetes", "vendor_device_id"]),
                message: format!("{t:?}: only {{id}} and {{pci_address}} can be replaced"),
            });
        }
    }
}

/// Two devices with the same vendor binding would make a pod's device ambiguous; `devices` are checked
/// pairwise here (the loader calls it with every device).
pub fn validate_vendor_bindings(devices: &[DeviceConfig], out: &mut Vec<Finding>) {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, d) in devices.iter().enumerate() {
        if let Some(b) = d.vendor_binding()
            && let Some(first) = seen.insert(b.clone(), i)
        {
            out.push(Finding {
                path: vec!["device".into(), i.into(), "kubernetes".into(), "vendor_device_id".into()],
                message: format!("device {first} already maps {}/{} to itself", b.0, b.1),
            });
        }
    }
}
