//! The agent as a kubelet device plugin and pod attributor, against a fake kubelet over real Unix sockets
//! (accel_sim::kubelet_sim, speaking kubelet's wire format) and the real agent binary on a fake sysfs tree.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accel_sim::kubelet_sim::{FakeKubelet, FakePod, SeenDevice};
use accel_sim::sysfs_tree::{FakeSysfs, write_in_place};
use common::{Agent, agentctl, wait};

const LOIHI: &str = "accel-agent.io/loihi";
const ENDPOINT: &str = "accel-agent-io-loihi.sock";

/// A host with two Loihi boards: loihi0 on PCI function 0000:3b:00.0 (NUMA node 1) with its hwmon chip,
/// loihi1 with a chip of its own name and no PCI function.
struct Host {
    sysfs: FakeSysfs,
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let sysfs = FakeSysfs::new();
        let pci = "devices/pci0000:00/0000:3b:00.0";
        sysfs.hwmon(0, Some("loihi"), Some(pci)).attr("temp1_input", "50000");
        sysfs.write(&format!("{pci}/numa_node"), "1\n");
        sysfs.symlink("bus/pci/devices/0000:3b:00.0", &format!("../../../{pci}"));
        sysfs.hwmon(1, Some("loihi1chip"), None).attr("temp1_input", "45000");
        Host { sysfs, dir: tempfile::Builder::new().prefix("kube-").tempdir().expect("temp dir") }
    }

    fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("device-plugins")
    }

    fn pod_socket(&self) -> PathBuf {
        self.dir.path().join("pod-resources/kubelet.sock")
    }

    fn kubelet(&self) -> FakeKubelet {
        FakeKubelet::start(&self.plugin_dir(), &self.pod_socket()).expect("start the fake kubelet")
    }

    fn set_temp(&self, celsius: f64) {
        let path = self.sysfs.path("devices/pci0000:00/0000:3b:00.0/hwmon/hwmon0/temp1_input");
        write_in_place(&path, &format!("{}\n", (celsius * 1000.0) as i64));
    }

    fn config(&self, extra: &str) -> String {
        std::fs::create_dir_all(self.plugin_dir()).expect("plugin dir");
        format!(
            r#"poll_interval = "200ms"

[kubernetes]
enabled = true
device_plugin_dir = "{dir}"
pod_resources_socket = "{pods}"
interval = "300ms"
timeout = "250ms"
{extra}

[[device]]
id = "loihi0"
kind = "loihi"
pci_address = "0000:3b:00.0"
thresholds = {{ min_duration = "1s" }}
[device.kubernetes]
env = {{ NXSDK_BOARD = "{{id}}" }}
[[device.kubernetes.device_node]]
host_path = "/dev/loihi0"
[[device.kubernetes.mount]]
host_path = "/opt/nxsdk"
container_path = "/nxsdk"

[[device]]
id = "loihi1"
kind = "loihi"
hwmon = "loihi1chip"

[[device]]
id = "gaudi0"
kind = "pci-accel"
pci_address = "0000:5e:00.0"
[device.kubernetes]
vendor_resource = "habana.ai/gaudi"
vendor_device_id = "{{pci_address}}"
"#,
            dir = self.plugin_dir().display(),
            pods = self.pod_socket().display(),
        )
    }

    fn agent(&self, extra: &str) -> (Agent, tempfile::TempDir) {
        Agent::with_config(self.sysfs.root(), &self.config(extra))
    }
}

fn seen(kubelet: &FakeKubelet) -> Vec<SeenDevice> {
    kubelet.devices(LOIHI).map(|(d, _)| d).unwrap_or_default()
}

fn health_of(kubelet: &FakeKubelet, id: &str) -> Option<String> {
    seen(kubelet).into_iter().find(|d| d.id == id).map(|d| d.health)
}

fn json(agent: &Agent, path: &str) -> serde_json::Value {
    let r = agent.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).expect("JSON")
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn registers_and_advertises_health_as_the_model_changes_it() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();

    // One plugin for the one resource among the devices; the PCI accelerator is its vendor's.
    wait("registration", 10, || !kubelet.registrations().is_empty());
    let r = kubelet.registrations();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].version.as_str(), r[0].endpoint.as_str(), r[0].resource.as_str()), ("v1beta1", ENDPOINT, LOIHI));
    assert!(is_socket(&host.plugin_dir().join(ENDPOINT)));
    wait("GetDevicePluginOptions answered", 5, || kubelet.options(LOIHI).is_some());
    let options = kubelet.options(LOIHI).expect("answered");
    assert!(!options.pre_start_required && !options.get_preferred_allocation_available);
    wait("both boards listed healthy", 10, || seen(&kubelet).iter().filter(|d| d.health == "Healthy").count() == 2);
    let list = seen(&kubelet);
    assert_eq!(
        list,
        vec![
            SeenDevice { id: "loihi0".into(), health: "Healthy".into(), numa_node: Some(1) },
            SeenDevice { id: "loihi1".into(), health: "Healthy".into(), numa_node: None },
        ]
    );
    wait("registered metric", 10, || agent.metric("accel_kubelet_registered", &[("resource", LOIHI)]) == Some(1.0));

    // loihi0 crosses its critical threshold (85 °C): Unhealthy to kubelet once the model says so.
    host.set_temp(90.0);
    wait("loihi0 unhealthy", 10, || json(&agent, "/api/v1/devices/loihi0")["state"] == "unhealthy");
    wait("loihi0 advertised Unhealthy", 3, || health_of(&kubelet, "loihi0").as_deref() == Some("Unhealthy"));
    assert_eq!(health_of(&kubelet, "loihi1").as_deref(), Some("Healthy"), "only the hot board");
    wait("journalled", 5, || {
        agent.events("device=loihi0").contains("loihi0 advertised Unhealthy to kubelet: Overheating")
    });
    let k = &json(&agent, "/api/v1/devices/loihi0")["kubernetes"];
    assert_eq!(k["resource"], LOIHI);
    wait("view shows it", 5, || json(&agent, "/api/v1/devices/loihi0")["kubernetes"]["advertised"] == "Unhealthy");

    // Cool again: Healthy, and journalled.
    host.set_temp(50.0);
    wait("loihi0 advertised Healthy", 15, || health_of(&kubelet, "loihi0").as_deref() == Some("Healthy"));
    wait("journalled", 5, || agent.events("device=loihi0").contains("loihi0 advertised Healthy to kubelet"));
}

#[test]
fn allocate_answers_from_the_config_and_refuses_unknown_ids() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();
    wait("listed", 10, || seen(&kubelet).len() == 2);

    let answer = kubelet.allocate(ENDPOINT, &["loihi0", "loihi1"]).expect("allocate");
    assert_eq!(answer.container_responses.len(), 1);
    let c = &answer.container_responses[0];
    assert_eq!(c.envs.get("ACCEL_AGENT_DEVICES").map(String::as_str), Some("loihi0,loihi1"));
    assert_eq!(c.envs.get("NXSDK_BOARD").map(String::as_str), Some("loihi0"));
    assert_eq!(c.devices.len(), 1);
    assert_eq!((c.devices[0].host_path.as_str(), c.devices[0].container_path.as_str()), ("/dev/loihi0", "/dev/loihi0"));
    assert_eq!(c.devices[0].permissions, "rw");
    assert_eq!(c.mounts.len(), 1);
    assert_eq!((c.mounts[0].host_path.as_str(), c.mounts[0].container_path.as_str()), ("/opt/nxsdk", "/nxsdk"));
    assert!(c.mounts[0].read_only);

    let only1 = kubelet.allocate(ENDPOINT, &["loihi1"]).expect("allocate");
    let c = &only1.container_responses[0];
    assert_eq!(c.envs.get("ACCEL_AGENT_DEVICES").map(String::as_str), Some("loihi1"));
    assert!(c.devices.is_empty() && c.mounts.is_empty() && !c.envs.contains_key("NXSDK_BOARD"));

    let err = kubelet.allocate(ENDPOINT, &["loihi0", "loihi7"]).expect_err("unknown id refused");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("loihi7"), "{}", err.message());
    let err = kubelet.allocate(ENDPOINT, &["gaudi0"]).expect_err("another resource's device refused");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[test]
fn a_kubelet_restart_is_noticed_and_the_plugin_registers_again_within_5s() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();
    wait("registration", 10, || !kubelet.registrations().is_empty());
    wait("listed", 10, || seen(&kubelet).len() == 2);

    // A new file may reuse the deleted one's inode number, not also its change time.
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).map(|m| (m.ino(), m.ctime(), m.ctime_nsec())).ok()
    };
    let socket = host.plugin_dir().join(ENDPOINT);
    let before = inode(&socket).expect("the plugin's socket");
    kubelet.restart().expect("restart");
    let restarted = Instant::now();
    assert!(
        kubelet.wait_for(Duration::from_secs(5), |k| k.registrations().iter().any(|r| r.kubelet == 1)),
        "no registration with the new kubelet within 5 s"
    );
    let took = restarted.elapsed();
    assert!(is_socket(&socket), "the plugin serves on a socket again");
    assert_ne!(inode(&socket), Some(before), "a new socket: the restart deleted the old one");
    let again = kubelet.registrations().into_iter().filter(|r| r.kubelet == 1).collect::<Vec<_>>();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].resource, LOIHI);
    // The new kubelet reached the new socket and got the list.
    assert!(kubelet.wait_for(Duration::from_secs(5), |k| k.devices(LOIHI).is_some_and(|(d, _)| d.len() == 2)));
    let allocated = kubelet.allocate(ENDPOINT, &["loihi1"]).expect("allocate on the new socket");
    assert_eq!(allocated.container_responses[0].envs["ACCEL_AGENT_DEVICES"], "loihi1");
    eprintln!("re-registered {took:?} after the restart");
    wait("registered metric", 5, || agent.metric("accel_kubelet_registered", &[("resource", LOIHI)]) == Some(1.0));
}

#[test]
fn a_vanished_plugin_socket_is_served_again() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();
    wait("registration", 10, || !kubelet.registrations().is_empty());
    let socket = host.plugin_dir().join(ENDPOINT);
    std::fs::remove_file(&socket).expect("remove the plugin socket");
    assert!(
        kubelet.wait_for(Duration::from_secs(5), |k| k.registrations().len() >= 2 && is_socket(&socket)),
        "the plugin was not served and registered again: {:?}",
        kubelet.registrations()
    );
    assert_eq!(kubelet.allocate(ENDPOINT, &["loihi0"]).expect("allocate").container_responses.len(), 1);
}

#[test]
fn pods_come_and_go() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();
    kubelet.set_pods(vec![
        FakePod::new("ml", "train-0", "main", LOIHI, &["loihi0"]),
        FakePod::new("ml", "infer-1", "server", "habana.ai/gaudi", &["0000:5e:00.0"]),
        FakePod::new("other", "gpu-job", "main", "nvidia.com/gpu", &["GPU-1"]),
    ]);
    let train = [("device", "loihi0"), ("namespace", "ml"), ("pod", "train-0"), ("container", "main")];
    let infer = [("device", "gaudi0"), ("namespace", "ml"), ("pod", "infer-1"), ("container", "server")];
    wait("pod info", 10, || agent.metric("accel_device_pod_info", &train) == Some(1.0));
    assert_eq!(agent.metric("accel_device_pod_info", &infer), Some(1.0), "a vendor plugin's id, through the template");
    let pods = common::parse_metrics(&agent.get("/metrics").body)
        .into_iter()
        .filter(|s| s.name == "accel_device_pod_info")
        .count();
    assert_eq!(pods, 2, "a pod on a resource the agent does not know is not attributed");
    let view = json(&agent, "/api/v1/devices/loihi0");
    assert_eq!(
        view["kubernetes"]["pods"],
        serde_json::json!([{"namespace": "ml", "pod": "train-0", "container": "main"}])
    );
    let (code, out, _) = agentctl(&agent, &["device", "loihi0"]);
    assert!(code <= 2, "{out}");
    assert!(out.contains("ml/train-0"), "agentctl device shows the pod: {out}");
    let page = agent.get("/devices/loihi0").body;
    assert!(page.contains("ml/train-0"), "the device page shows the pod");
    assert!(agent.get("/").body.contains("ml/train-0"), "the landing page shows the pod");
    wait("journalled", 5, || agent.events("device=loihi0").contains("loihi0 now held by ml/train-0 (container main)"));

    // The pod ends: its series goes, the release is journalled.
    kubelet.set_pods(vec![FakePod::new("ml", "infer-1", "server", "habana.ai/gaudi", &["0000:5e:00.0"])]);
    wait("pod info gone", 10, || agent.metric("accel_device_pod_info", &train).is_none());
    assert_eq!(agent.metric("accel_device_pod_info", &infer), Some(1.0));
    assert_eq!(json(&agent, "/api/v1/devices/loihi0")["kubernetes"]["pods"], serde_json::json!([]));
    wait("journalled", 5, || agent.events("device=loihi0").contains("loihi0 released by ml/train-0 (container main)"));
}

#[test]
fn a_hung_pod_resources_server_stalls_nothing() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();
    kubelet.set_pods(vec![FakePod::new("ml", "train-0", "main", LOIHI, &["loihi0"])]);
    let train = [("device", "loihi0"), ("namespace", "ml"), ("pod", "train-0"), ("container", "main")];
    wait("pod info", 10, || agent.metric("accel_device_pod_info", &train) == Some(1.0));

    kubelet.hang_pod_resources(true);
    let calls = kubelet.pod_lists();
    // The agent keeps calling on its cadence (each call ends at its deadline), and says why it cannot learn.
    wait("status shows the hang", 10, || {
        json(&agent, "/api/v1/status")["agent"]["kubelet"]["pod_resources_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer within"))
    });
    assert!(
        kubelet.wait_for(Duration::from_secs(5), |k| k.pod_lists() >= calls + 2),
        "one hung call stopped the polling"
    );
    // Everything else answers at once meanwhile, and the last known holder stays shown.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(agent.get("/metrics").status, 200);
        let (code, out, err) = agentctl(&agent, &["status"]);
        assert!(code <= 2, "agentctl status: {code} {out} {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "a scrape and agentctl took {:?}", started.elapsed());
    }
    assert_eq!(agent.metric("accel_device_pod_info", &train), Some(1.0));
    let (_, diagnose, _) = agentctl(&agent, &["diagnose"]);
    assert!(diagnose.contains("kubelet pod-resources"), "{diagnose}");
    // Health still reaches kubelet while pod-resources hangs.
    host.set_temp(90.0);
    wait("loihi0 advertised Unhealthy", 15, || health_of(&kubelet, "loihi0").as_deref() == Some("Unhealthy"));

    kubelet.hang_pod_resources(false);
    wait("error clears", 10, || json(&agent, "/api/v1/status")["agent"]["kubelet"]["pod_resources_error"].is_null());
}

#[test]
fn a_missing_kubelet_is_visible_and_registration_follows_its_start() {
    let host = Host::new();
    let (agent, _cfg) = host.agent("");
    agent.wait_ready();
    wait("registered 0", 10, || agent.metric("accel_kubelet_registered", &[("resource", LOIHI)]) == Some(0.0));
    wait("status shows why", 10, || {
        let s = json(&agent, "/api/v1/status");
        let r = &s["agent"]["kubelet"]["resources"][0];
        r["resource"] == LOIHI
            && r["registered"] == false
            && r["error"].as_str().is_some_and(|e| e.contains("kubelet.sock"))
    });
    let (_, diagnose, _) = agentctl(&agent, &["diagnose"]);
    assert!(diagnose.contains("kubelet registration accel-agent.io/loihi"), "{diagnose}");
    // Logged once for the transition, not once per retry: 3 s is at least two more tries (backoff 1 s, 2 s).
    std::thread::sleep(Duration::from_secs(3));
    let lines: Vec<String> = agent.stderr.try_iter().collect();
    let warned = lines.iter().filter(|l| l.contains("not registered with kubelet")).count();
    assert_eq!(warned, 1, "{lines:#?}");

    // kubelet starts: the agent sees its socket appear and registers within 5 s, whatever its backoff.
    let kubelet = host.kubelet();
    assert!(kubelet.wait_for(Duration::from_secs(5), |k| !k.registrations().is_empty()), "no registration within 5 s");
    wait("registered 1", 5, || agent.metric("accel_kubelet_registered", &[("resource", LOIHI)]) == Some(1.0));
}

#[test]
fn off_by_default_nothing_is_served() {
    let host = Host::new();
    std::fs::create_dir_all(host.plugin_dir()).expect("dir");
    let config = host.config("").replace("enabled = true", "enabled = false");
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &config);
    agent.wait_ready();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read_dir(host.plugin_dir()).expect("dir").count(), 0, "no socket in the plugin directory");
    assert!(json(&agent, "/api/v1/devices/loihi0").get("kubernetes").is_none());
    assert!(json(&agent, "/api/v1/status")["agent"].get("kubelet").is_none());
    assert!(!agent.get("/metrics").body.contains("accel_kubelet_registered"));
}

#[test]
fn the_demo_host_shows_a_pod_on_each_board_and_a_hot_loihi_unhealthy_to_kubelet() {
    let host = accel_sim::demo_host::DemoHost::build().expect("demo host");
    let (agent, _cfg) = Agent::with_config(host.sysfs.root(), &host.config("127.0.0.1:0"));
    agent.wait_ready();
    let kubelet = &host.kubelet;
    wait("all three resources registered", 15, || {
        let mut r: Vec<String> = kubelet.registrations().into_iter().map(|r| r.resource).collect();
        r.sort();
        r.dedup();
        r == ["accel-agent.io/loihi", "accel-agent.io/photonic", "accel-agent.io/spinnaker-board"]
    });
    let page = || agent.get("/").body;
    wait("a pod on each board", 15, || {
        let p = page();
        ["neuro/snn-train-0", "optics/mvm-infer-0", "optics/mvm-infer-1", "ml/llm-serve-0", "brain-sim/cortex-3"]
            .iter()
            .all(|pod| p.contains(pod))
    });
    wait("loihi0 healthy to kubelet", 15, || {
        kubelet.devices(LOIHI).is_some_and(|(d, _)| d.iter().any(|d| d.id == "loihi0" && d.health == "Healthy"))
    });
    // The demo counts degraded as Unhealthy to kubelet: loihi0 above its warning threshold (80 °C).
    host.set_loihi_temp(84.0);
    wait("loihi0 Unhealthy to kubelet", 20, || {
        kubelet.devices(LOIHI).is_some_and(|(d, _)| d.iter().any(|d| d.id == "loihi0" && d.health == "Unhealthy"))
    });
    assert!(agent.get("/devices/loihi0").body.contains("Unhealthy"), "the device page says what kubelet was told");
}

#[test]
fn a_reload_turns_the_plugin_on_and_off() {
    let host = Host::new();
    let kubelet = host.kubelet();
    let on = host.config("");
    let off = on.replace("enabled = true", "enabled = false");
    let (agent, cfg) = Agent::with_config(host.sysfs.root(), &off);
    agent.wait_ready();
    let socket = host.plugin_dir().join(ENDPOINT);
    assert!(kubelet.registrations().is_empty() && !is_socket(&socket));

    std::fs::write(cfg.path().join("agent.toml"), &on).expect("write config");
    let (code, out, err) = agentctl(&agent, &["reload"]);
    assert_eq!(code, 0, "{out} {err}");
    wait("registered after the reload", 10, || !kubelet.registrations().is_empty() && is_socket(&socket));
    wait("listed", 10, || seen(&kubelet).len() == 2);
    wait("view", 10, || json(&agent, "/api/v1/devices/loihi0")["kubernetes"]["registered"] == true);

    std::fs::write(cfg.path().join("agent.toml"), &off).expect("write config");
    let (code, out, err) = agentctl(&agent, &["reload"]);
    assert_eq!(code, 0, "{out} {err}");
    wait("socket removed", 10, || !is_socket(&socket));
    wait("view loses its kubelet part", 10, || json(&agent, "/api/v1/devices/loihi0").get("kubernetes").is_none());
    assert!(!agent.get("/metrics").body.contains("accel_kubelet_registered"));
}
