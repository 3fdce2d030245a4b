//! Which pod holds each device: kubelet's `v1.PodResourcesLister/List`, mapped through the resource
//! names and device ids the devices are known by (the agent's own plugins' ids, and vendor plugins' ids
//! through `[device.kubernetes] vendor_device_id`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use config::Config;
use kubelet_api::podresources as pr;

use super::error::KubeletError;
use super::uds;
use crate::model::kubelet::PodRef;

/// (resource name, device id as kubelet knows it) -> the agent's device id.
pub type Bindings = BTreeMap<(String, String), String>;

/// Every (resource, id) a pod may hold a device by.
pub fn bindings(config: &Config) -> Bindings {
    let mut out = Bindings::new();
    for d in &config.devices {
        if let Some(r) = d.resource_name() {
            out.insert((r, d.id.clone()), d.id.clone());
        }
        if let Some(b) = d.vendor_binding() {
            out.insert(b, d.id.clone());
        }
    }
    out
}

/// Calls `List` with the deadline `timeout`.
pub async fn list(socket: &Path, timeout: Duration) -> Result<Vec<pr::PodResources>, KubeletError> {
    let call = async {
        let channel = uds::connect(socket, timeout).await?;
        let mut client = pr::pod_resources_lister_client::PodResourcesListerClient::new(channel);
        uds::within(socket, timeout, client.list(pr::ListPodResourcesRequest {})).await
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map(|r| r.pod_resources),
        Err(_) => Err(KubeletError::Deadline { path: socket.to_owned(), timeout }),
    }
}

/// The containers holding each bound device. Devices of resources the agent does not know are ignored.
pub fn attribute(pods: &[pr::PodResources], bindings: &Bindings) -> BTreeMap<String, Vec<PodRef>> {
    let mut out: BTreeMap<String, Vec<PodRef>> = BTreeMap::new();
    for p in pods {
        for c in &p.containers {
            for d in &c.devices {
                for id in &d.device_ids {
                    if let Some(device) = bindings.get(&(d.resource_name.clone(), id.clone())) {
                        out.entry(device.clone()).or_default().push(PodRef {
                            namespace: p.namespace.clone(),
                            pod: p.name.clone(),
                            container: c.name.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_vendor_ids_map_to_devices() {
        let config = config::parse_str(
            "[[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n[[device]]\nid = \"gaudi0\"\nkind = \"pci-accel\"\n\
             pci_address = \"0000:3b:00.0\"\n[device.kubernetes]\nvendor_resource = \"habana.ai/gaudi\"\n\
             vendor_device_id = \"{pci_address}\"\n",
            "t.toml",
        )
        .expect("valid");
        let dev = |r: &str, ids: &[&str]| pr::ContainerDevices {
            resource_name: r.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        };
        let pods = vec![pr::PodResources {
            name: "train-0".into(),
            namespace: "ml".into(),
            containers: vec![pr::ContainerResources {
                name: "main".into(),
                devices: vec![
                    dev("accel-agent.io/loihi", &["loihi0"]),
                    dev("habana.ai/gaudi", &["0000:3b:00.0"]),
                    dev("nvidia.com/gpu", &["GPU-1"]),
                    dev("accel-agent.io/loihi", &["loihi9"]),
                ],
            }],
        }];
        let held = attribute(&pods, &bindings(&config));
        let who = PodRef { namespace: "ml".into(), pod: "train-0".into(), container: "main".into() };
        assert_eq!(held.get("loihi0"), Some(&vec![who.clone()]));
        assert_eq!(held.get("gaudi0"), Some(&vec![who]));
        assert_eq!(held.len(), 2, "unknown resources and ids are ignored: {held:?}");
    }
}
