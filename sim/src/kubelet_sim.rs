//! A fake kubelet over real Unix sockets, speaking kubelet's wire format (the project's definitions in
//! kubelet-api/proto, with kubelet's names and field numbers):
//!
//! - the `v1beta1.Registration` server at `<dir>/kubelet.sock`; on each registration it does what kubelet
//!   does: connects to the plugin's endpoint (a socket name in `<dir>`), asks `GetDevicePluginOptions` and
//!   keeps `ListAndWatch` open, remembering every list it is sent;
//! - the client side of `v1beta1.DevicePlugin` for tests (`allocate`);
//! - the `v1.PodResourcesLister` server at the pod-resources socket, answering with the pods a test sets,
//!   or never answering (`hang_pod_resources`);
//! - `restart`: what a kubelet restart does to the directory: every socket in it is deleted, and a new
//!   `kubelet.sock` is created.
//!
//! It runs on its own tokio runtime, so that synchronous tests and the demo can drive it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kubelet_api::deviceplugin as dp;
use kubelet_api::podresources as pr;
use kubelet_api::uds::connect;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

/// A device as the fake kubelet last heard of it in `ListAndWatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenDevice {
    pub id: String,
    pub health: String,
    pub numa_node: Option<i64>,
}

/// A registration the fake kubelet accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub version: String,
    pub endpoint: String,
    pub resource: String,
    /// Which kubelet (0 for the first, +1 per restart) it registered with.
    pub kubelet: u32,
}

/// A container holding devices, for pod-resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePod {
    pub namespace: String,
    pub name: String,
    pub container: String,
    /// (resource name, device ids).
    pub devices: Vec<(String, Vec<String>)>,
}

#[derive(Default)]
struct Seen {
    registrations: Vec<Registered>,
    /// The latest list per resource, and how many lists arrived.
    lists: BTreeMap<String, (Vec<SeenDevice>, usize)>,
    /// The plugin's answer to GetDevicePluginOptions, per resource.
    options: BTreeMap<String, dp::DevicePluginOptions>,
    pods: Vec<FakePod>,
    hang_pods: bool,
    pod_lists: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct FakeKubelet {
    dir: PathBuf,
    pod_socket: PathBuf,
    rt: tokio::runtime::Runtime,
    seen: Shared,
    /// Stops the current kubelet's registration server and its ListAndWatch clients.
    registration_stop: Mutex<Option<tokio_util::sync::CancellationToken>>,
    generation: Mutex<u32>,
    _pods_stop: oneshot::Sender<()>,
}

struct Registration {
    dir: PathBuf,
    seen: Shared,
    generation: u32,
    stop: tokio_util::sync::CancellationToken,
}

#[tonic::async_trait]
impl dp::registration_server::Registration for Registration {
    async fn register(&self, request: Request<dp::RegisterRequest>) -> Result<Response<dp::Empty>, Status> {
        let r = request.into_inner();
        if r.version != dp::VERSION {
            return Err(Status::invalid_argument(format!("unsupported version {:?}", r.version)));
        }
        let endpoint = self.dir.join(&r.endpoint);
        lock(&self.seen).registrations.push(Registered {
            version: r.version.clone(),
            endpoint: r.endpoint.clone(),
            resource: r.resource_name.clone(),
            kubelet: self.generation,
        });
        // As kubelet: connect to the plugin and watch its list, until the plugin or this kubelet goes.
        let (seen, stop, resource) = (Arc::clone(&self.seen), self.stop.clone(), r.resource_name);
        tokio::spawn(async move {
            let Ok(channel) = connect(&endpoint).await else { return };
            let mut client = dp::device_plugin_client::DevicePluginClient::new(channel);
            if let Ok(o) = client.get_device_plugin_options(dp::Empty {}).await {
                lock(&seen).options.insert(resource.clone(), o.into_inner());
            }
            let Ok(stream) = client.list_and_watch(dp::Empty {}).await else { return };
            let mut stream = stream.into_inner();
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = stream.message() => m,
                };
                let Ok(Some(list)) = next else { return };
                let devices = list
                    .devices
                    .into_iter()
                    .map(|d| SeenDevice {
                        id: d.id,
                        health: d.health,
                        numa_node: d.topology.and_then(|t| t.nodes.first().map(|n| n.id)),
                    })
                    .collect();
                let mut s = lock(&seen);
                let entry = s.lists.entry(resource.clone()).or_default();
                entry.0 = devices;
                entry.1 += 1;
            }
        });
        Ok(Response::new(dp::Empty {}))
    }
}

struct PodResources {
    seen: Shared,
}

#[tonic::async_trait]
impl pr::pod_resources_lister_server::PodResourcesLister for PodResources {
    async fn list(
        &self,
        _: Request<pr::ListPodResourcesRequest>,
    ) -> Result<Response<pr::ListPodResourcesResponse>, Status> {
        let (hang, pods) = {
            let mut s = lock(&self.seen);
            s.pod_lists += 1;
            (s.hang_pods, s.pods.clone())
        };
        if hang {
            std::future::pending::<()>().await;
        }
        let pod_resources = pods
            .into_iter()
            .map(|p| pr::PodResources {
                name: p.name,
                namespace: p.namespace,
                containers: vec![pr::ContainerResources {
                    name: p.container,
                    devices: p
                        .devices
                        .into_iter()
                        .map(|(resource_name, device_ids)| pr::ContainerDevices {
                            resource_name,
                            device_ids,
                            topology: None,
                        })
                        .collect(),
                }],
            })
            .collect();
        Ok(Response::new(pr::ListPodResourcesResponse { pod_resources }))
    }
}

fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    let _ = std::fs::remove_file(path);
    tokio::net::UnixListener::bind(path)
}

impl FakeKubelet {
    /// Starts a kubelet whose device-plugin directory is `dir` (created if missing) and whose
    /// pod-resources socket is `pod_socket`.
    pub fn start(dir: &Path, pod_socket: &Path) -> std::io::Result<FakeKubelet> {
        std::fs::create_dir_all(dir)?;
        if let Some(parent) = pod_socket.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let seen = Shared::default();
        let (pods_stop, stopped) = oneshot::channel::<()>();
        let listener = {
            let _guard = rt.enter();
            bind(pod_socket)?
        };
        let server = kubelet_api::uds::serve(
            listener,
            pr::pod_resources_lister_server::PodResourcesListerServer::new(PodResources { seen: Arc::clone(&seen) }),
            async {
                let _ = stopped.await;
            },
        );
        rt.spawn(server);
        let k = FakeKubelet {
            dir: dir.to_owned(),
            pod_socket: pod_socket.to_owned(),
            rt,
            seen,
            registration_stop: Mutex::new(None),
            generation: Mutex::new(0),
            _pods_stop: pods_stop,
        };
        k.start_registration()?;
        Ok(k)
    }

    fn start_registration(&self) -> std::io::Result<()> {
        let stop = tokio_util::sync::CancellationToken::new();
        let generation = *self.generation.lock().unwrap_or_else(PoisonError::into_inner);
        let listener = {
            let _guard = self.rt.enter();
            bind(&self.kubelet_socket())?
        };
        let service =
            Registration { dir: self.dir.clone(), seen: Arc::clone(&self.seen), generation, stop: stop.clone() };
        let server = kubelet_api::uds::serve(
            listener,
            dp::registration_server::RegistrationServer::new(service),
            stop.clone().cancelled_owned(),
        );
        self.rt.spawn(server);
        *self.registration_stop.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kubelet_socket(&self) -> PathBuf {
        self.dir.join(dp::KUBELET_SOCKET)
    }

    pub fn pod_resources_socket(&self) -> &Path {
        &self.pod_socket
    }

    /// What a kubelet restart does: this kubelet stops, every socket in the directory is deleted, and a
    /// new kubelet creates its registration socket.
    pub fn restart(&self) -> std::io::Result<()> {
        if let Some(stop) = self.registration_stop.lock().unwrap_or_else(PoisonError::into_inner).take() {
            stop.cancel();
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(&path)?.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            }
        }
        *self.generation.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.start_registration()
    }

    /// The kubelet that is running (0 for the first, +1 per restart).
    pub fn generation(&self) -> u32 {
        *self.generation.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn registrations(&self) -> Vec<Registered> {
        lock(&self.seen).registrations.clone()
    }

    /// The latest list the plugin of `resource` sent, and how many lists it sent in all.
    pub fn devices(&self, resource: &str) -> Option<(Vec<SeenDevice>, usize)> {
        lock(&self.seen).lists.get(resource).cloned()
    }

    pub fn options(&self, resource: &str) -> Option<dp::DevicePluginOptions> {
        lock(&self.seen).options.get(resource).cloned()
    }

    /// Calls the plugin at `endpoint` (a socket name in the directory) as kubelet does before starting a
    /// container that was given `ids`.
    pub fn allocate(&self, endpoint: &str, ids: &[&str]) -> Result<dp::AllocateResponse, Status> {
        let path = self.dir.join(endpoint);
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        self.rt.block_on(async move {
            let channel = connect(&path).await.map_err(|e| Status::unavailable(e.to_string()))?;
            let mut client = dp::device_plugin_client::DevicePluginClient::new(channel);
            let request =
                dp::AllocateRequest { container_requests: vec![dp::ContainerAllocateRequest { devices_ids: ids }] };
            tokio::time::timeout(Duration::from_secs(5), client.allocate(request))
                .await
                .map_err(|_| Status::deadline_exceeded("no answer in 5 s"))?
                .map(Response::into_inner)
        })
    }

    /// The pods pod-resources answers with from now on.
    pub fn set_pods(&self, pods: Vec<FakePod>) {
        lock(&self.seen).pods = pods;
    }

    /// From now on, pod-resources takes calls and never answers them (or answers again).
    pub fn hang_pod_resources(&self, hang: bool) {
        lock(&self.seen).hang_pods = hang;
    }

    /// How many `List` calls pod-resources has taken.
    pub fn pod_lists(&self) -> usize {
        lock(&self.seen).pod_lists
    }

    /// Waits until `cond` holds, checking every 20 ms, at most `timeout`; whether it did.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut(&FakeKubelet) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cond(self)
    }
}

impl FakePod {
    pub fn new(namespace: &str, name: &str, container: &str, resource: &str, ids: &[&str]) -> FakePod {
        FakePod {
            namespace: namespace.into(),
            name: name.into(),
            container: container.into(),
            devices: vec![(resource.into(), ids.iter().map(|s| s.to_string()).collect())],
        }
    }
}
