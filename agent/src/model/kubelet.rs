//! What kubelet knows of each device: the resource the agent advertises it as, the health it last told
//! kubelet, whether that resource's plugin is registered, and the pods kubelet says hold the device.
//!
//! The kubelet side (the kube module) sends these as evidence; the model only keeps them, so that the
//! published device views (API, agentctl, pages, metrics) show them with everything else. Nothing here is
//! evidence about a device's health: kubelet's trouble is the agent's, never the device's.

use std::collections::BTreeMap;

use config::DeviceConfig;
use serde::{Deserialize, Serialize};

/// What a device is advertised as in `ListAndWatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Advertised {
    Healthy,
    Unhealthy,
}

impl Advertised {
    /// The device-plugin API's value of `Device.health`.
    pub fn name(self) -> &'static str {
        match self {
            Advertised::Healthy => "Healthy",
            Advertised::Unhealthy => "Unhealthy",
        }
    }
}

/// A container holding a device, per kubelet's pod-resources API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} (container {})", self.namespace, self.pod, self.container)
    }
}

/// `kubernetes` in a device's view (absent while `[kubernetes]` is off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeletView {
    /// The extended resource the agent advertises the device as; absent when it does not (a vendor's
    /// plugin owns the device).
    pub resource: Option<String>,
    /// What kubelet was last told; absent before the first `ListAndWatch` answer.
    pub advertised: Option<Advertised>,
    /// Why it is Unhealthy to kubelet (the failing conditions, maintenance, the open circuit).
    pub advertised_reason: Option<String>,
    /// Whether the resource's plugin is registered with kubelet.
    pub registered: bool,
    /// Why the last registration failed, while it is not registered.
    pub registration_error: Option<String>,
    /// The containers kubelet says hold the device.
    pub pods: Vec<PodRef>,
    /// Why the holders could not be learnt (pod-resources failing); the pods above are as last learnt.
    pub pods_error: Option<String>,
}

/// A holder change, for the journal: the device, the containers before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct HolderChange {
    pub device: String,
    pub before: Vec<PodRef>,
    pub after: Vec<PodRef>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Registration {
    registered: bool,
    error: Option<String>,
}

/// The model's kubelet state. Empty and disabled unless the kubelet side is running.
#[derive(Debug, Default)]
pub struct KubeletModel {
    enabled: bool,
    registrations: BTreeMap<String, Registration>,
    advertised: BTreeMap<String, (Advertised, Option<String>)>,
    pods: BTreeMap<String, Vec<PodRef>>,
    pods_error: Option<String>,
}

impl KubeletModel {
    /// Turns the kubelet side on or off (a reload may do either); off forgets everything learnt.
    pub fn set_enabled(&mut self, enabled: bool) {
        if !enabled {
            *self = KubeletModel::default();
        }
        self.enabled = enabled;
    }

    pub fn set_registration(&mut self, resource: &str, registered: bool, error: Option<String>) {
        self.registrations.insert(resource.to_owned(), Registration { registered, error });
    }

    pub fn set_advertised(&mut self, device: &str, advertised: Advertised, reason: Option<String>) {
        self.advertised.insert(device.to_owned(), (advertised, reason));
    }

    /// Takes the holders of every device (devices absent hold nothing); returns what changed.
    pub fn set_pods(&mut self, mut pods: BTreeMap<String, Vec<PodRef>>) -> Vec<HolderChange> {
        for v in pods.values_mut() {
            v.sort();
            v.dedup();
        }
        pods.retain(|_, v| !v.is_empty());
        let mut changes = Vec::new();
        for device in self.pods.keys().chain(pods.keys()).collect::<std::collections::BTreeSet<_>>() {
            let before = self.pods.get(device).cloned().unwrap_or_default();
            let after = pods.get(device).cloned().unwrap_or_default();
            if before != after {
                changes.push(HolderChange { device: device.clone(), before, after });
            }
        }
        self.pods = pods;
        self.pods_error = None;
        changes
    }

    /// pod-resources could not be read: the holders stay as last learnt, marked with why.
    pub fn set_pods_error(&mut self, error: String) {
        self.pods_error = Some(error);
    }

    /// The pods holding a device, as last learnt (none while the kubelet side is off).
    pub fn holders(&self, device: &str) -> &[PodRef] {
        self.pods.get(device).map_or(&[], Vec::as_slice)
    }

    /// The `kubernetes` part of a device's view.
    pub fn view(&self, config: &DeviceConfig) -> Option<KubeletView> {
        if !self.enabled {
            return None;
        }
        let resource = config.resource_name();
        let registration = resource.as_ref().and_then(|r| self.registrations.get(r)).cloned().unwrap_or_default();
        let (advertised, advertised_reason) = match self.advertised.get(&config.id) {
            Some((a, r)) if resource.is_some() => (Some(*a), r.clone()),
            _ => (None, None),
        };
        Some(KubeletView {
            resource,
            advertised,
            advertised_reason,
            registered: registration.registered,
            registration_error: if registration.registered { None } else { registration.error },
            pods: self.pods.get(&config.id).cloned().unwrap_or_default(),
            pods_error: self.pods_error.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(p: &str) -> PodRef {
        PodRef { namespace: "ml".into(), pod: p.into(), container: "main".into() }
    }

    #[test]
    fn holder_changes_are_reported_once() {
        let mut m = KubeletModel::default();
        m.set_enabled(true);
        let c = m.set_pods(BTreeMap::from([("loihi0".to_owned(), vec![pod("a")])]));
        assert_eq!(c, vec![HolderChange { device: "loihi0".into(), before: vec![], after: vec![pod("a")] }]);
        assert!(m.set_pods(BTreeMap::from([("loihi0".to_owned(), vec![pod("a"), pod("a")])])).is_empty());
        let c = m.set_pods(BTreeMap::new());
        assert_eq!(c, vec![HolderChange { device: "loihi0".into(), before: vec![pod("a")], after: vec![] }]);
    }

    #[test]
    fn off_shows_nothing_and_forgets() {
        let mut m = KubeletModel::default();
        m.set_enabled(true);
        m.set_registration("accel-agent.io/loihi", true, None);
        let cfg: config::Config =
            config::parse_str("[[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n", "t.toml").expect("valid");
        let v = m.view(&cfg.devices[0]).expect("enabled");
        assert_eq!(v.resource.as_deref(), Some("accel-agent.io/loihi"));
        assert!(v.registered);
        m.set_enabled(false);
        assert_eq!(m.view(&cfg.devices[0]), None);
        m.set_enabled(true);
        assert!(!m.view(&cfg.devices[0]).expect("enabled").registered);
    }
}
