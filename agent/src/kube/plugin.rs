//! The `v1beta1.DevicePlugin` service of one resource name, on its own Unix socket in the device-plugin
//! directory. kubelet is the client: it keeps `ListAndWatch` open and calls `Allocate` when it starts a
//! container that asked for the resource.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use config::kubernetes::{DEVICES_ENV, DeviceKubernetes};
use kubelet_api::deviceplugin as dp;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::error::KubeletError;
use crate::model::kubelet::Advertised;

/// One device as the plugin lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: String,
    pub health: Advertised,
    /// The NUMA node of its PCI function, when sysfs says (absent for -1 and for devices off PCI).
    pub numa_node: Option<i64>,
}

/// The socket name of a resource's plugin, e.g. "accel-agent.io/loihi" -> "accel-agent-io-loihi.sock".
pub fn socket_name(resource: &str) -> String {
    let safe: String = resource.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("{safe}.sock")
}

/// The service: the resource's devices as the supervisor last computed them, and what Allocate hands a
/// container for each.
pub struct Plugin {
    resource: String,
    list: watch::Receiver<Arc<Vec<Listed>>>,
    allocations: Arc<BTreeMap<String, DeviceKubernetes>>,
    /// Ends open `ListAndWatch` streams when this server is replaced or the agent stops.
    stop: CancellationToken,
}

impl Plugin {
    pub fn new(
        resource: String,
        list: watch::Receiver<Arc<Vec<Listed>>>,
        allocations: Arc<BTreeMap<String, DeviceKubernetes>>,
        stop: CancellationToken,
    ) -> Plugin {
        Plugin { resource, list, allocations, stop }
    }

    fn response(devices: &[Listed]) -> dp::ListAndWatchResponse {
        dp::ListAndWatchResponse {
            devices: devices
                .iter()
                .map(|d| dp::Device {
                    id: d.id.clone(),
                    health: d.health.name().to_owned(),
                    topology: d.numa_node.map(|n| dp::TopologyInfo { nodes: vec![dp::NumaNode { id: n }] }),
                })
                .collect(),
        }
    }

    /// What one container gets for `ids`; an id this resource does not have is an error, never a guess.
    fn allocate_one(&self, ids: &[String]) -> Result<dp::ContainerAllocateResponse, Status> {
        let mut out = dp::ContainerAllocateResponse::default();
        if ids.is_empty() {
            return Err(Status::invalid_argument(format!("no device ids in the request for {}", self.resource)));
        }
        let known = self.list.borrow().iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        let mut env: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in ids {
            if !known.contains(id) {
                return Err(Status::not_found(format!("{} has no device {id:?}", self.resource)));
            }
            let Some(k) = self.allocations.get(id) else { continue };
            for (key, value) in &k.env {
                let v = value.replace("{id}", id);
                let values = env.entry(key.clone()).or_default();
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            for n in &k.device_nodes {
                out.devices.push(dp::DeviceSpec {
                    container_path: n.container_path.as_ref().unwrap_or(&n.host_path).display().to_string(),
                    host_path: n.host_path.display().to_string(),
                    permissions: n.permissions.clone(),
                });
            }
            for m in &k.mounts {
                out.mounts.push(dp::Mount {
                    container_path: m.container_path.as_ref().unwrap_or(&m.host_path).display().to_string(),
                    host_path: m.host_path.display().to_string(),
                    read_only: m.read_only,
                });
            }
        }
        out.envs = env.into_iter().map(|(k, v)| (k, v.join(","))).collect();
        out.envs.insert(DEVICES_ENV.to_owned(), ids.join(","));
        Ok(out)
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<dp::ListAndWatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl dp::device_plugin_server::DevicePlugin for Plugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<dp::DevicePluginOptions>, Status> {
        Ok(Response::new(options()))
    }

    type ListAndWatchStream = ListStream;

    /// The full list at once, then again whenever it changes, until kubelet hangs up or the plugin stops.
    async fn list_and_watch(&self, _: Request<dp::Empty>) -> Result<Response<ListStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut list = self.list.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let first = Plugin::response(&list.borrow_and_update());
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                    changed = list.changed() => if changed.is_err() { return },
                }
                let next = Plugin::response(&list.borrow_and_update());
                if tx.send(Ok(next)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<dp::PreferredAllocationRequest>,
    ) -> Result<Response<dp::PreferredAllocationResponse>, Status> {
        // Advertised as unavailable (options()); answered anyway: the ones that must be included, then the
        // rest in the order kubelet listed them.
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| {
                let mut ids = r.must_include_device_i_ds.clone();
                for id in r.available_device_i_ds {
                    if ids.len() >= usize::try_from(r.allocation_size).unwrap_or(0) {
                        break;
                    }
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                dp::ContainerPreferredAllocationResponse { device_i_ds: ids }
            })
            .collect();
        Ok(Response::new(dp::PreferredAllocationResponse { container_responses }))
    }

    async fn allocate(&self, request: Request<dp::AllocateRequest>) -> Result<Response<dp::AllocateResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .iter()
            .map(|c| self.allocate_one(&c.devices_ids))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(dp::AllocateResponse { container_responses }))
    }

    async fn pre_start_container(
        &self,
        _: Request<dp::PreStartContainerRequest>,
    ) -> Result<Response<dp::PreStartContainerResponse>, Status> {
        Ok(Response::new(dp::PreStartContainerResponse {}))
    }
}

/// What the agent's plugins ask of kubelet: nothing before a container starts, no preferred allocation.
pub fn options() -> dp::DevicePluginOptions {
    dp::DevicePluginOptions { pre_start_required: false, get_preferred_allocation_available: false }
}

/// A running plugin server.
pub struct Served {
    pub socket: PathBuf,
    /// The socket file's identity, to tell a deleted or replaced socket from ours.
    pub inode: Option<super::uds::FileId>,
    pub stop: CancellationToken,
}

/// Creates the socket at `socket` (replacing a stale one) and serves `plugin` on it until `stop`.
pub fn serve(
    socket: &Path,
    plugin_for: impl FnOnce(CancellationToken) -> Plugin,
    stop: CancellationToken,
) -> Result<Served, KubeletError> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(m) = std::fs::symlink_metadata(socket)
        && m.file_type().is_socket()
    {
        let _ = std::fs::remove_file(socket);
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .map_err(|source| KubeletError::Bind { path: socket.to_owned(), source })?;
    let inode = super::uds::inode(socket);
    let plugin = plugin_for(stop.clone());
    let server = kubelet_api::uds::serve(
        listener,
        dp::device_plugin_server::DevicePluginServer::new(plugin),
        stop.clone().cancelled_owned(),
    );
    let path = socket.to_owned();
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!(socket = %path.display(), "device plugin server stopped: {e}");
        }
    });
    Ok(Served { socket: socket.to_owned(), inode, stop })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_plain() {
        assert_eq!(socket_name("accel-agent.io/loihi"), "accel-agent-io-loihi.sock");
        assert_eq!(socket_name("accel-agent.io/spinnaker-board"), "accel-agent-io-spinnaker-board.sock");
    }
}
