//! Checks of the deployment artefacts under packaging/: the Prometheus rules (with promtool when it is
//! installed), the Kubernetes manifests, the Helm chart's values and the Grafana dashboard.
//!
//! promtool comes from Debian's `prometheus` package. Without it the promtool test is compiled ignored
//! (build.rs, sim/external_tools.rs), unless ACCEL_REQUIRE_EXTERNAL is set, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// Every metric name a rule or dashboard query may use (DESIGN.md's catalogue, as far as the packaging uses it).
const KNOWN_METRICS: &[&str] = &[
    "accel_device_up",
    "accel_memory_used_ratio",
    "accel_filesystem_used_ratio",
    "accel_cpu_utilization_ratio",
    "accel_device_health",
    "accel_device_condition",
    "accel_device_temperature_celsius",
    "accel_device_temperature_threshold_celsius",
    "accel_device_power_watts",
    "accel_device_energy_joules_total",
    "accel_device_energy_per_inference_joules",
    "accel_log_matches_total",
    "accel_log_lines_total",
    "accel_throttle_level",
    "accel_reconnect_circuit_state",
    "accel_maintenance_mode",
    "accel_diagnostic_success",
    "accel_events_total",
    "accel_collector_success",
    "accel_actions_up",
    "accel_config_last_reload_successful",
    "up",
];

const RUNBOOK_PREFIX: &str = "https://github.com/accel-agent/accel-agent/blob/main/docs/operations.md#";
const MAINTENANCE_CLAUSE: &str = "unless on(job, instance, device) accel_maintenance_mode == 1";

/// The alerts, their severity and their `for:`.
const ALERTS: &[(&str, &str, &str)] = &[
    ("AccelDeviceOffline", "critical", "2m"),
    ("AccelDeviceTemperatureHigh", "warning", "5m"),
    ("AccelDeviceTemperatureCritical", "critical", "2m"),
    ("AccelDeviceThrottledTooLong", "warning", "30m"),
    ("AccelDeviceReconnectCircuitOpen", "critical", "1m"),
    ("AccelDeviceEnergyPerInferenceHigh", "warning", "10m"),
    ("AccelDeviceLogErrorRateHigh", "warning", "10m"),
    ("AccelDeviceLogErrorRateCritical", "critical", "10m"),
    ("AccelDeviceLogErrors", "warning", "5m"),
    ("AccelDeviceSdkError", "warning", "10m"),
    ("AccelDevicePowerAnomaly", "warning", "10m"),
    ("AccelDeviceDataStale", "warning", "10m"),
    // A failed diagnostic is the tool's verdict already.
    ("AccelDeviceDiagnosticFailed", "warning", "0s"),
    ("AccelAgentDown", "critical", "5m"),
    ("AccelAgentConfigReloadFailed", "warning", "5m"),
    ("AccelActionsDown", "critical", "1m"),
    ("AccelCollectorFailing", "warning", "10m"),
    // The source of alertmanager.example.yml's maintenance inhibition: at once, and never a page.
    ("AccelMaintenance", "info", "0s"),
    // The runbooks' host thresholds (shared/reference/devices.md): memory 80/95 %, disk 80/90 %, CPU 70/90 %.
    ("AccelHostMemoryHigh", "warning", "10m"),
    ("AccelHostMemoryCritical", "critical", "5m"),
    ("AccelHostDiskHigh", "warning", "15m"),
    ("AccelHostDiskCritical", "critical", "5m"),
    ("AccelHostCpuBusy", "warning", "15m"),
    ("AccelHostCpuSaturated", "critical", "10m"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the agent crate lies inside the repository").to_owned()
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(relative: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml_documents(relative: &str) -> Vec<Yaml> {
    let text = read(relative);
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{relative}: {e}"));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

/// `value[key1][key2]...`, panicking with the path when something is missing.
fn at<'a>(value: &'a Yaml, keys: &[&str]) -> &'a Yaml {
    let mut v = value;
    for (i, key) in keys.iter().enumerate() {
        v = v.get(*key).unwrap_or_else(|| panic!("missing {} in {value:?}", keys[..=i].join(".")));
    }
    v
}

fn str_at<'a>(value: &'a Yaml, keys: &[&str]) -> &'a str {
    at(value, keys).as_str().unwrap_or_else(|| panic!("{} is not a string", keys.join(".")))
}

fn seq<'a>(value: &'a Yaml, keys: &[&str]) -> &'a Vec<Yaml> {
    at(value, keys).as_sequence().unwrap_or_else(|| panic!("{} is not a list", keys.join(".")))
}

fn strings(value: &Yaml, keys: &[&str]) -> Vec<String> {
    seq(value, keys).iter().map(|v| v.as_str().expect("a list of strings").to_owned()).collect()
}

// ------------------------------------------------------------------------------------------------- rules

const RULES: &str = "packaging/prometheus/accel-agent.rules.yml";
const RULE_TESTS: &str = "packaging/prometheus/accel-agent.rules.test.yml";

/// Every rule of the rules file, alerts and recordings, across groups.
fn rules() -> Vec<Yaml> {
    let file = yaml(RULES);
    seq(&file, &["groups"]).iter().flat_map(|g| seq(g, &["rules"]).iter().cloned()).collect()
}

fn alerts() -> Vec<Yaml> {
    rules().into_iter().filter(|r| r.get("alert").is_some()).collect()
}

fn find_promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("promtool")).find(|p| p.is_file())
}

fn run(program: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
#[cfg_attr(not(has_promtool), ignore = "promtool is not installed (Debian package prometheus)")]
fn promtool_checks_and_unit_tests_pass() {
    let promtool = find_promtool().expect("promtool is not installed (Debian package prometheus)");
    let dir = repo_root().join("packaging/prometheus");

    let (ok, out) = run(&promtool, &["check", "rules", "accel-agent.rules.yml"], &dir);
    assert!(ok, "promtool check rules failed:\n{out}");
    let expected = format!("SUCCESS: {} rules found", rules().len());
    assert!(out.contains(&expected), "expected {expected:?} in:\n{out}");
    assert!(!out.to_lowercase().contains("warning"), "promtool check rules warned:\n{out}");

    // The unit tests give the same result every time: 50 runs in a row (in 5 processes of 10, which
    // promtool runs one after the other), every one a success. Alerts that read a recording rule of another
    // group failed about one run in ten.
    const PROCESSES: usize = 5;
    const RUNS_EACH: usize = 10;
    let args: Vec<&str> = std::iter::once("test")
        .chain(std::iter::once("rules"))
        .chain(std::iter::repeat_n("accel-agent.rules.test.yml", RUNS_EACH))
        .collect();
    let results: Vec<(bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PROCESSES).map(|_| scope.spawn(|| run(&promtool, &args, &dir))).collect();
        handles.into_iter().map(|h| h.join().expect("promtool thread")).collect()
    });
    let mut successes = 0;
    for (ok, out) in &results {
        assert!(*ok && !out.contains("FAILED"), "promtool test rules failed:\n{out}");
        successes += out.lines().filter(|l| l.trim() == "SUCCESS").count();
    }
    assert_eq!(successes, PROCESSES * RUNS_EACH, "{results:?}");
}

#[test]
fn alerts_read_recording_rules_only_from_their_own_group_recorded_before_them() {
    let file = yaml(RULES);
    let mut recorded_anywhere: BTreeSet<String> = BTreeSet::new();
    for group in seq(&file, &["groups"]) {
        for rule in seq(group, &["rules"]) {
            if let Some(r) = rule.get("record") {
                recorded_anywhere.insert(r.as_str().expect("record is a string").to_owned());
            }
        }
    }
    let mut checked = 0;
    for group in seq(&file, &["groups"]) {
        let name = str_at(group, &["name"]);
        // What this group has recorded so far: rules of a group run in order, each seeing the ones before.
        let mut recorded_before: BTreeSet<String> = BTreeSet::new();
        for rule in seq(group, &["rules"]) {
            let label = rule.get("alert").or_else(|| rule.get("record")).and_then(Yaml::as_str).unwrap_or("?");
            for used in metric_names(str_at(rule, &["expr"])).into_iter().filter(|m| m.contains(':')) {
                assert!(recorded_anywhere.contains(&used), "{label} reads {used}, which no rule records");
                assert!(
                    recorded_before.contains(&used),
                    "{label} (group {name}) reads {used}, which is not recorded before it in the same group"
                );
                checked += 1;
            }
            if let Some(r) = rule.get("record") {
                recorded_before.insert(r.as_str().expect("record is a string").to_owned());
            }
        }
    }
    // The temperature and log-error alerts, and the ratio recording rule, read recording rules.
    assert!(checked >= 6, "only {checked} uses of recording rules found");
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let alerts = alerts();
    let names: Vec<&str> = alerts.iter().map(|a| str_at(a, &["alert"])).collect();
    let expected: Vec<&str> = ALERTS.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, expected);

    for alert in &alerts {
        let name = str_at(alert, &["alert"]);
        let (_, severity, for_) = ALERTS.iter().find(|(n, _, _)| *n == name).expect("listed above");
        assert_eq!(str_at(alert, &["labels", "severity"]), *severity, "{name}: severity");
        assert_eq!(str_at(alert, &["for"]), *for_, "{name}: for");

        let expr = str_at(alert, &["expr"]);
        let summary = str_at(alert, &["annotations", "summary"]);
        let description = str_at(alert, &["annotations", "description"]);
        let runbook = str_at(alert, &["annotations", "runbook_url"]);
        assert!(!summary.trim().is_empty() && !description.trim().is_empty(), "{name}");
        let anchor = runbook.strip_prefix(RUNBOOK_PREFIX).unwrap_or_else(|| panic!("{name}: runbook_url {runbook}"));
        assert!(
            !anchor.is_empty() && anchor.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}: runbook anchor {anchor:?}"
        );
        assert!(summary.contains("{{ $labels.instance }}"), "{name}: summary names the host");
        assert!(description.contains("{{ $labels.instance }}"), "{name}: description names the host");

        // Device alerts name the device and are silenced during maintenance, per host.
        if name.starts_with("AccelDevice") {
            assert!(summary.contains("{{ $labels.device }}"), "{name}: summary names the device");
            assert!(description.contains("{{ $labels.device }}"), "{name}: description names the device");
            let flat = expr.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.ends_with(MAINTENANCE_CLAUSE), "{name}: {flat}");
        }
        for metric in metric_names(expr) {
            assert!(
                KNOWN_METRICS.contains(&metric.as_str()) || metric.contains(':'),
                "{name}: unknown metric {metric}"
            );
        }
    }

    // The temperature alerts compare against the agent's configured thresholds, not literal numbers.
    let by_name: BTreeMap<&str, &Yaml> = alerts.iter().map(|a| (str_at(a, &["alert"]), a)).collect();
    for (name, level) in [("AccelDeviceTemperatureHigh", "warn"), ("AccelDeviceTemperatureCritical", "crit")] {
        let expr = str_at(by_name[name], &["expr"]);
        let selector =
            format!("accel_device_temperature_threshold_celsius{{sensor=\"configured\", level=\"{level}\"}}");
        assert!(expr.contains(&selector), "{name}: {expr}");
    }
    assert!(str_at(by_name["AccelDeviceEnergyPerInferenceHigh"], &["expr"]).contains("> 0.005"));
    assert!(str_at(by_name["AccelDeviceThrottledTooLong"], &["expr"]).contains("accel_throttle_level > 0"));
    assert!(str_at(by_name["AccelDeviceReconnectCircuitOpen"], &["expr"]).contains("== 2"));
    assert_eq!(str_at(by_name["AccelAgentDown"], &["expr"]).trim(), "up{job=\"accel-agent\"} == 0");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests = yaml(RULE_TESTS);
    assert_eq!(strings(&tests, &["rule_files"]), ["accel-agent.rules.yml"]);
    let mut firing: BTreeSet<String> = BTreeSet::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    for case in seq(&tests, &["tests"]) {
        let Some(cases) = case.get("alert_rule_test") else { continue };
        for c in cases.as_sequence().expect("alert_rule_test is a list") {
            let name = str_at(c, &["alertname"]).to_owned();
            if seq(c, &["exp_alerts"]).is_empty() {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for (name, _, _) in ALERTS {
        assert!(firing.contains(*name), "{name} has no firing test");
        assert!(silent.contains(*name), "{name} has no not-firing test");
    }
    // Maintenance inhibition is exercised: some test series put a device in maintenance.
    assert!(read(RULE_TESTS).matches("accel_maintenance_mode{").count() >= 10);
}

// ------------------------------------------------------------------------------------------------- PromQL

/// The metric-like identifiers of a PromQL expression that the packaging checks: those starting with
/// `accel_`, the name `up`, and recording rules (`level:metric:operation`). String literals and Grafana
/// variables ($instance, ${datasource}, $__rate_interval) are left out.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.starts_with("accel_") || word == "up" || word.contains(':') {
                names.insert(word);
            }
        } else if c.is_ascii_digit() {
            // A number or a duration (5m, 0.005, 1e3): not a name.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        "max by (device) (accel_device_temperature_celsius{instance=~\"$instance\", job=\"accel_x\"}) \
         > on(device) group_left() sum(rate(accel_log_lines_total[$__rate_interval])) or up == 0 \
         or device:accel_x:max > 0.005 and vector(5m)",
    );
    let expected = ["accel_device_temperature_celsius", "accel_log_lines_total", "device:accel_x:max", "up"];
    assert_eq!(names.into_iter().collect::<Vec<_>>(), expected);
}

// ------------------------------------------------------------------------------------------------- Kubernetes

const MANIFEST: &str = "packaging/kubernetes/daemonset.yaml";

fn by_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs.iter().filter(|d| d.get("kind").and_then(Yaml::as_str) == Some(kind)).collect();
    assert_eq!(found.len(), 1, "{MANIFEST}: expected one {kind}");
    found[0]
}

#[derive(Debug, PartialEq)]
struct Mount {
    volume: String,
    read_only: bool,
    /// The volume's hostPath, if it is one.
    host_path: Option<String>,
    /// The volume's ConfigMap, if it is one.
    config_map: Option<String>,
}

/// The container's mounts by mount path, joined with the pod's volumes.
fn mounts(pod: &Yaml, container: &Yaml) -> BTreeMap<String, Mount> {
    let volumes: BTreeMap<&str, &Yaml> = seq(pod, &["volumes"]).iter().map(|v| (str_at(v, &["name"]), v)).collect();
    seq(container, &["volumeMounts"])
        .iter()
        .map(|m| {
            let name = str_at(m, &["name"]);
            let volume = volumes.get(name).unwrap_or_else(|| panic!("mount of undeclared volume {name}"));
            let mount = Mount {
                volume: name.to_owned(),
                read_only: m.get("readOnly").and_then(Yaml::as_bool).unwrap_or(false),
                host_path: volume.get("hostPath").map(|h| str_at(h, &["path"]).to_owned()),
                config_map: volume.get("configMap").map(|c| str_at(c, &["name"]).to_owned()),
            };
            (str_at(m, &["mountPath"]).to_owned(), mount)
        })
        .collect()
}

fn host_mount(volume: &str, path: &str, read_only: bool) -> Mount {
    Mount { volume: volume.to_owned(), read_only, host_path: Some(path.to_owned()), config_map: None }
}

#[test]
fn daemonset_manifest_mounts_probes_and_security() {
    let docs = yaml_documents(MANIFEST);
    let kinds: Vec<&str> = docs.iter().map(|d| str_at(d, &["kind"])).collect();
    assert_eq!(kinds, ["Namespace", "ServiceAccount", "ConfigMap", "DaemonSet", "Service", "ServiceMonitor"]);
    for doc in &docs[1..] {
        assert_eq!(str_at(doc, &["metadata", "namespace"]), "accel-agent");
    }

    let ds = by_kind(&docs, "DaemonSet");
    let pod = at(ds, &["spec", "template", "spec"]);
    let containers = seq(pod, &["containers"]);
    assert_eq!(containers.len(), 1);
    let agent = &containers[0];
    assert_eq!(str_at(agent, &["name"]), "accel-agent");
    assert_eq!(strings(agent, &["command"]), ["accel-agent", "--config", "/etc/accel-agent/agent.toml"]);
    assert_eq!(at(&seq(agent, &["ports"])[0], &["containerPort"]).as_u64(), Some(9860));

    let mounts = mounts(pod, agent);
    let expected: BTreeMap<String, Mount> = [
        (
            "/etc/accel-agent",
            Mount {
                volume: "config".into(),
                read_only: true,
                host_path: None,
                config_map: Some("accel-agent-config".into()),
            },
        ),
        ("/host/sys", host_mount("sys", "/sys", true)),
        ("/host/proc", host_mount("proc", "/proc", true)),
        ("/var/log/loihi2", host_mount("log-loihi2", "/var/log/loihi2", true)),
        ("/var/log/photon-mlir", host_mount("log-photon-mlir", "/var/log/photon-mlir", true)),
        ("/var/lib/accel-agent", host_mount("state", "/var/lib/accel-agent", false)),
        ("/run/accel-agent", host_mount("run", "/run/accel-agent", false)),
        ("/tmp", Mount { volume: "tmp".into(), read_only: false, host_path: None, config_map: None }),
        (
            "/var/lib/kubelet/device-plugins",
            host_mount("kubelet-device-plugins", "/var/lib/kubelet/device-plugins", false),
        ),
        ("/var/lib/kubelet/pod-resources", host_mount("kubelet-pod-resources", "/var/lib/kubelet/pod-resources", true)),
    ]
    .into_iter()
    .map(|(path, m)| (path.to_owned(), m))
    .collect();
    assert_eq!(mounts, expected);

    for (probe, path) in [("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")] {
        assert_eq!(str_at(agent, &[probe, "httpGet", "path"]), path, "{probe}");
        assert_eq!(at(agent, &[probe, "httpGet", "port"]).as_u64(), Some(9860), "{probe}");
    }

    assert_eq!(str_at(agent, &["resources", "requests", "cpu"]), "20m");
    assert_eq!(str_at(agent, &["resources", "requests", "memory"]), "64Mi");
    assert!(at(agent, &["resources", "limits"]).get("memory").is_some(), "a memory limit");

    let sc = at(agent, &["securityContext"]);
    assert_eq!(at(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["allowPrivilegeEscalation"]).as_bool(), Some(false));
    assert_eq!(at(sc, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["privileged"]).as_bool(), Some(false));
    assert_eq!(strings(sc, &["capabilities", "drop"]), ["ALL"]);
    assert_eq!(at(pod, &["securityContext", "runAsNonRoot"]).as_bool(), Some(true));
    assert_ne!(at(pod, &["securityContext", "runAsUser"]).as_u64(), Some(0));

    assert_eq!(at(pod, &["hostNetwork"]).as_bool(), Some(false));
    assert_eq!(str_at(pod, &["priorityClassName"]), "system-node-critical");
    let tolerations = seq(pod, &["tolerations"]);
    assert!(
        tolerations
            .iter()
            .any(|t| t.get("operator").and_then(Yaml::as_str) == Some("Exists") && t.get("key").is_none()),
        "tolerates every taint: {tolerations:?}"
    );
    assert_eq!(str_at(pod, &["serviceAccountName"]), str_at(by_kind(&docs, "ServiceAccount"), &["metadata", "name"]));

    // The Service is headless on 9860 and selects the pods; the ServiceMonitor selects the Service.
    let pod_labels = at(ds, &["spec", "template", "metadata", "labels"]);
    let svc = by_kind(&docs, "Service");
    assert_eq!(str_at(svc, &["metadata", "name"]), "accel-agent", "job=\"accel-agent\" comes from the Service name");
    assert_eq!(str_at(svc, &["spec", "clusterIP"]), "None");
    let selector = at(svc, &["spec", "selector"]).as_mapping().expect("a selector");
    for (k, v) in selector {
        assert_eq!(pod_labels.get(k.as_str().expect("label")), Some(v), "Service selects the pods");
    }
    let port = &seq(svc, &["spec", "ports"])[0];
    assert_eq!(at(port, &["port"]).as_u64(), Some(9860));
    let sm = by_kind(&docs, "ServiceMonitor");
    assert_eq!(str_at(sm, &["apiVersion"]), "monitoring.coreos.com/v1");
    let endpoint = &seq(sm, &["spec", "endpoints"])[0];
    assert_eq!(str_at(endpoint, &["port"]), str_at(port, &["name"]));
    assert_eq!(str_at(endpoint, &["path"]), "/metrics");
    let sm_selector = at(sm, &["spec", "selector", "matchLabels"]).as_mapping().expect("matchLabels");
    for (k, v) in sm_selector {
        assert_eq!(at(svc, &["metadata", "labels"]).get(k.as_str().expect("label")), Some(v));
    }
}

#[test]
fn configmap_agent_toml_is_valid_and_uses_the_mounted_paths() {
    let docs = yaml_documents(MANIFEST);
    let cm = by_kind(&docs, "ConfigMap");
    assert_eq!(str_at(cm, &["metadata", "name"]), "accel-agent-config");
    let text = str_at(cm, &["data", "agent.toml"]);

    let config = config::parse_str(text, "agent.toml").unwrap_or_else(|e| panic!("ConfigMap agent.toml:\n{e}"));
    assert_eq!(config.sysfs_root, Path::new("/host/sys"));
    assert_eq!(config.state_dir, Path::new("/var/lib/accel-agent"));
    assert_eq!(config.socket, Path::new("/run/accel-agent/agent.sock"));
    assert_eq!(config.listen.port(), 9860);
    assert!(!config.actions.enabled, "the manifest's unprivileged container cannot run actions");

    // Every host path the container mounts (other than its own config and /tmp) is one agent.toml uses.
    let ds = by_kind(&docs, "DaemonSet");
    let pod = at(ds, &["spec", "template", "spec"]);
    let mounts = mounts(pod, &seq(pod, &["containers"])[0]);
    let mounted: Vec<&str> =
        mounts.iter().filter(|(_, m)| m.host_path.is_some()).map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        mounted,
        [
            "/host/proc",
            "/host/sys",
            "/run/accel-agent",
            "/var/lib/accel-agent",
            "/var/lib/kubelet/device-plugins",
            "/var/lib/kubelet/pod-resources",
            "/var/log/loihi2",
            "/var/log/photon-mlir"
        ]
    );
    for path in &mounted {
        assert!(text.contains(&format!("\"{path}")), "agent.toml does not mention {path}");
    }
    let log_paths: Vec<String> = config
        .devices
        .iter()
        .flat_map(|d| d.log_sources().into_iter().map(|l| l.path.replace("{id}", &d.id)))
        .filter(|p| p != "kmsg")
        .collect();
    assert_eq!(log_paths, ["/var/log/loihi2/system.log", "/var/log/photon-mlir/device-photon0.log"]);
    for dir in ["/var/log/loihi2", "/var/log/photon-mlir"] {
        assert!(log_paths.iter().any(|p| p.starts_with(&format!("{dir}/"))), "no log under {dir}");
        assert!(mounts[dir].read_only);
    }
    // ... and everything agent.toml reads or writes is mounted.
    let under_a_mount = |p: &Path| mounted.iter().any(|m| p.starts_with(m));
    assert!(under_a_mount(&config.sysfs_root) && under_a_mount(&config.state_dir) && under_a_mount(&config.socket));
    assert!(under_a_mount(&config.collectors.resources.proc_root), "the host's /proc is mounted for resources");
    // kubelet's two directories, for when [kubernetes] is enabled.
    assert!(
        under_a_mount(&config.kubernetes.device_plugin_dir) && under_a_mount(&config.kubernetes.pod_resources_socket)
    );
    assert_eq!(config.kubernetes.pod_resources_socket, Path::new("/var/lib/kubelet/pod-resources/kubelet.sock"));
    for log in &log_paths {
        assert!(under_a_mount(Path::new(log)), "{log} is not mounted");
    }
}

// ------------------------------------------------------------------------------------------------- Helm

#[test]
fn helm_chart_metadata_and_values() {
    let chart = yaml("packaging/helm/accel-agent/Chart.yaml");
    assert_eq!(str_at(&chart, &["apiVersion"]), "v2");
    assert_eq!(str_at(&chart, &["name"]), "accel-agent");

    let values = yaml("packaging/helm/accel-agent/values.yaml");
    assert_eq!(strings(&values, &["logDirs"]), ["/var/log/loihi2", "/var/log/photon-mlir"]);
    assert_eq!(at(&values, &["serviceMonitor", "enabled"]).as_bool(), Some(true));
    assert_eq!(at(&values, &["actions", "enabled"]).as_bool(), Some(false));
    assert_eq!(at(&values, &["kubernetes", "enabled"]).as_bool(), Some(false));
    assert_eq!(str_at(&values, &["kubernetes", "devicePluginDir"]), "/var/lib/kubelet/device-plugins");
    assert_eq!(str_at(&values, &["kubernetes", "podResourcesDir"]), "/var/lib/kubelet/pod-resources");
    assert_eq!(str_at(&values, &["resources", "requests", "cpu"]), "20m");
    assert_eq!(str_at(&values, &["resources", "requests", "memory"]), "64Mi");
    assert_eq!(str_at(&values, &["priorityClassName"]), "system-node-critical");

    // values.config is the part of agent.toml below the top-level keys the chart writes itself.
    let header = "sysfs_root = \"/host/sys\"\nstate_dir = \"/var/lib/accel-agent\"\n\
                  socket = \"/run/accel-agent/agent.sock\"\n[actions]\nenabled = false\n";
    let text = format!("{header}{}", str_at(&values, &["config"]));
    let config = config::parse_str(&text, "values.yaml config").unwrap_or_else(|e| panic!("{e}"));
    for log in config.devices.iter().flat_map(|d| d.log_sources()) {
        assert!(
            strings(&values, &["logDirs"]).iter().any(|dir| log.path.starts_with(&format!("{dir}/"))),
            "{} is outside logDirs",
            log.path
        );
    }

    let templates = repo_root().join("packaging/helm/accel-agent/templates");
    for file in ["configmap.yaml", "daemonset.yaml", "service.yaml", "serviceaccount.yaml", "servicemonitor.yaml"] {
        assert!(templates.join(file).is_file(), "templates/{file}");
    }
}

// ------------------------------------------------------------------------------------------------- Grafana

const DASHBOARD: &str = "packaging/grafana/accel-agent.json";

/// Every string under a key named `key`, anywhere in the JSON.
fn strings_under(value: &Json, key: &str, out: &mut Vec<String>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                match v {
                    Json::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(v, key, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

fn panels(dashboard: &Json) -> Vec<&Json> {
    dashboard["panels"].as_array().expect("panels").iter().collect()
}

#[test]
fn grafana_dashboard_is_valid_and_uses_only_known_metrics() {
    let dashboard: Json = serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    assert_eq!(dashboard["uid"], "accel-agent");
    assert_eq!(dashboard["schemaVersion"], 38);

    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    let names: Vec<&str> = variables.iter().map(|v| v["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["datasource", "instance", "device"]);
    assert_eq!(variables[0]["type"], "datasource");
    assert_eq!(variables[0]["query"], "prometheus");

    // Every panel and query goes through the datasource variable.
    let mut uids = Vec::new();
    strings_under(&dashboard, "uid", &mut uids);
    let datasources: BTreeSet<&str> = uids.iter().map(String::as_str).filter(|u| *u != "accel-agent").collect();
    assert_eq!(datasources, BTreeSet::from(["${datasource}", "-- Grafana --"]));

    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    let mut queries = Vec::new();
    strings_under(&dashboard, "definition", &mut queries);
    assert!(exprs.len() >= 25, "{} queries", exprs.len());
    let mut used = BTreeSet::new();
    for expr in exprs.iter().chain(&queries) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(KNOWN_METRICS.contains(&name.as_str()), "{DASHBOARD}: unknown metric {name} in {expr}");
            used.insert(name);
        }
        assert!(expr.contains("$instance") || expr.starts_with("label_values(accel_device_up,"), "{expr}");
    }
    // The dashboard covers the whole catalogue above.
    assert_eq!(used.len(), KNOWN_METRICS.len(), "unused: {:?}", KNOWN_METRICS.iter().filter(|m| !used.contains(**m)));

    // Layout: a fleet row and a drill-down row; unique panel ids.
    let panels = panels(&dashboard);
    let rows: Vec<&str> =
        panels.iter().filter(|p| p["type"] == "row").map(|p| p["title"].as_str().expect("title")).collect();
    assert_eq!(rows, ["Fleet overview", "Device drill-down ($device on $instance)"]);
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().expect("id")).collect();
    assert_eq!(ids.len(), panels.len());
    let titles: BTreeSet<&str> = panels.iter().map(|p| p["title"].as_str().expect("title")).collect();
    for title in ["Devices by state", "Hottest devices", "Throttled devices", "Offline devices", "Collector failures"] {
        assert!(titles.contains(title), "no panel {title:?}");
    }

    // Temperatures are drawn against the configured thresholds.
    let temperature = panels.iter().find(|p| p["title"] == "Temperature vs configured thresholds").expect("panel");
    let mut temp_exprs = Vec::new();
    strings_under(temperature, "expr", &mut temp_exprs);
    for level in ["warn", "crit"] {
        let needle = format!("sensor=\"configured\", level=\"{level}\"");
        assert!(temp_exprs.iter().any(|e| e.contains(&needle)), "no {level} threshold");
    }

    // Events and condition changes are annotations.
    let annotations = dashboard["annotations"]["list"].as_array().expect("annotations");
    let annotation_exprs: Vec<&str> = annotations.iter().filter_map(|a| a["expr"].as_str()).collect();
    assert!(annotation_exprs.iter().any(|e| e.starts_with("changes(accel_events_total{")));
    assert!(annotation_exprs.iter().any(|e| e.starts_with("changes(accel_device_condition{")));
}
