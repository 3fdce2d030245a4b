//! Secrets against the real agent: what its tools print, what its own environment holds, and where
//! `agentctl bundle` writes. A token a tool prints must reach no output at all (every page, API, log line,
//! control answer and bundle file); a credentials variable set for the agent must reach no child; and the
//! bundle must never be written through a symlink or into a file someone else prepared.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use accel_sim::sysfs_tree::FakeSysfs;
use common::{Agent, agentctl, untar};

/// The secret values the tools print; none may appear anywhere.
const SECRETS: [&str; 4] = ["s3cr3tTOKEN", "hunter2xyz", "abc.def.ghi", "s3cr3tOUT"];

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    fs.hwmon(0, Some("loihi"), Some("devices/platform/loihi.0")).attr("temp1_input", "50000");
    fs
}

/// A shell script at `dir/name` (run as `/bin/sh FILE`, so the secrets it prints are not in the config).
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    path.to_str().expect("utf-8 path").to_owned()
}

/// Everything the daemon logged so far (it logs to stderr; stdout is not used).
fn drain_log(agent: &Agent) -> String {
    let mut log = String::new();
    while let Ok(l) = agent.stderr.recv_timeout(Duration::from_millis(300)) {
        log.push_str(&l);
        log.push('\n');
    }
    log
}

#[test]
fn secrets_a_tool_prints_reach_no_page_api_log_control_answer_or_bundle_file() {
    let fs = host();
    let tools = tempfile::tempdir().unwrap();
    // A status tool that fails (exit 3) and says why on stderr, quoting its credentials, as real ones do.
    let probe = script(
        tools.path(),
        "status.sh",
        "echo 'status: vendor-cli --token s3cr3tOUT'\n\
         echo 'login failed for vendor-cli --token s3cr3tTOKEN password=hunter2xyz Authorization: Bearer abc.def.ghi' >&2\n\
         exit 3",
    );
    let hook = script(
        tools.path(),
        "hook.sh",
        "echo 'drain: --token s3cr3tOUT'\necho 'drain refused: password=hunter2xyz --token s3cr3tTOKEN' >&2\nexit 1",
    );
    let toml = format!(
        "poll_interval = \"100ms\"\n[discovery]\nenabled = false\n[control]\ngroup = \"4242\"\n\
         [actions]\nenabled = true\n[[actions.hook]]\non = [\"maintenance\"]\ncommand = [\"/bin/sh\", \"{hook}\"]\n\
         [[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n\
         [[device.probe]]\nname = \"status\"\ncommand = [\"/bin/sh\", \"{probe}\"]\n"
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &toml);
    agent.wait_ready();
    agent.wait_for("the probe's message in the status", || {
        agent.get("/api/v1/devices/loihi0").body.contains("login failed for vendor-cli")
    });
    let (code, _, stderr) = agentctl(&agent, &["maintenance", "loihi0", "on"]);
    assert_eq!(code, 0, "{stderr}");
    agent.wait_for("the hook's failure", || agent.get("/api/v1/events?kind=action").body.contains("drain refused"));

    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("b.tar.gz");
    let (code, _, stderr) = agentctl(&agent, &["bundle", "-o", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let files = untar(&bundle);
    for name in ["status.json", "devices.json", "events.json"] {
        assert!(files.iter().any(|(n, _)| n.ends_with(name)), "the bundle has {name}: {:?}", names(&files));
    }

    // Where the probe's message is shown, it is shown redacted: the scan cannot pass by showing nothing.
    let redacted =
        "login failed for vendor-cli --token <redacted> password=<redacted> Authorization: Bearer <redacted>";
    let html = redacted.replace('<', "&lt;").replace('>', "&gt;");
    let mut places: Vec<(String, String, Option<&str>)> = Vec::new();
    for (path, marker) in [
        ("/health", None),
        ("/api/v1/status", Some(redacted)),
        ("/api/v1/devices", Some(redacted)),
        ("/api/v1/devices/loihi0", Some(redacted)),
        ("/api/v1/events", Some(redacted)),
        ("/metrics", None),
        ("/", Some(html.as_str())),
        ("/devices/loihi0", Some(html.as_str())),
    ] {
        let r = agent.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        places.push((path.to_owned(), r.body, marker));
    }
    for args in [&["--json", "status"][..], &["--json", "device", "loihi0"], &["--json", "events"]] {
        let (code, out, err) = agentctl(&agent, args);
        assert!(code <= 2, "agentctl {args:?}: {code} {err}");
        let marker = if args[1] == "status" { None } else { Some(redacted) };
        places.push((format!("agentctl {}", args.join(" ")), out + &err, marker));
    }
    for (name, text) in &files {
        let marker = ["status.json", "devices.json", "events.json"].iter().any(|f| name.ends_with(f));
        places.push((format!("bundle {name}"), text.clone(), marker.then_some(redacted)));
    }
    places.push(("daemon log".into(), drain_log(&agent), Some("--token <redacted>")));

    for (place, text, marker) in &places {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{place} leaks {secret}:\n{text}");
        }
        if let Some(marker) = marker {
            assert!(text.contains(marker), "{place} shows the message redacted:\n{text}");
        }
    }
    let hook_failed = "drain refused: password=<redacted> --token <redacted>";
    assert!(places.iter().any(|(p, t, _)| p == "/api/v1/events" && t.contains(hook_failed)), "the hook's output");
}

fn names(files: &[(String, String)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn children_get_a_minimal_environment_never_the_agents_credentials() {
    let fs = host();
    let out = tempfile::tempdir().unwrap();
    let dump = |name: &str| out.path().join(name).to_str().expect("utf-8 path").to_owned();
    let (probe_env, hook_env, vendor_env) = (dump("probe.env"), dump("hook.env"), dump("vendor.env"));
    let toml = format!(
        "poll_interval = \"100ms\"\n[discovery]\nenabled = false\n[control]\ngroup = \"4242\"\n\
         [actions]\nenabled = true\n\
         [[actions.hook]]\non = [\"maintenance\"]\ncommand = [\"/bin/sh\", \"-c\", \"env > {hook_env}\"]\n\
         [[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n\
         [[device.probe]]\nname = \"status\"\ncommand = [\"/bin/sh\", \"-c\", \"env > {probe_env}\"]\n\
         [device.reconnect]\nsteps = [\"vendor\"]\ncommand = [\"/bin/sh\", \"-c\", \"env > {vendor_env}\"]\n"
    );
    let cfg = tempfile::tempdir().unwrap();
    let cfg_file = cfg.path().join("agent.toml");
    std::fs::write(&cfg_file, toml).unwrap();
    let state = tempfile::Builder::new().prefix("agent-state-").tempdir().unwrap();
    let agent = Agent::start_with_env(
        state,
        &["--config", cfg_file.to_str().unwrap(), "--sysfs-root", fs.root().to_str().unwrap()],
        &[
            ("SPALLOC_CREDENTIALS", "ops:spalloc-hunter2"),
            ("VENDOR_API_TOKEN", "tok-abc123"),
            ("PATH", "/usr/bin:/bin"),
        ],
    );
    agent.wait_ready();
    let (code, _, stderr) = agentctl(&agent, &["maintenance", "loihi0", "on"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = agentctl(&agent, &["reconnect", "loihi0"]);
    assert_eq!(code, 0, "{stderr}");

    for (who, file) in [("probe", &probe_env), ("hook", &hook_env), ("reconnect command", &vendor_env)] {
        // `env >` truncates the file before writing it (and the probe runs again every 100 ms): use a
        // read that holds a whole dump.
        let mut dump = String::new();
        agent.wait_for(who, || {
            dump = std::fs::read_to_string(file).unwrap_or_default();
            dump.ends_with('\n') && dump.contains("PATH=")
        });
        for secret in ["SPALLOC_CREDENTIALS", "spalloc-hunter2", "VENDOR_API_TOKEN", "tok-abc123", "NOTIFY_SOCKET"] {
            assert!(!dump.contains(secret), "the {who} saw {secret}:\n{dump}");
        }
        assert!(dump.lines().any(|l| l == "PATH=/usr/bin:/bin"), "the {who} has the agent's PATH:\n{dump}");
        if who == "hook" {
            assert!(dump.lines().any(|l| l == "ACCEL_DEVICE=loihi0"), "and what it is configured to get:\n{dump}");
        }
    }
}

#[test]
fn bundle_output_is_a_new_owner_only_file_never_through_a_symlink_or_into_an_existing_file() {
    let fs = host();
    let toml =
        "[discovery]\nenabled = false\n[control]\ngroup = \"4242\"\n[[device]]\nid = \"loihi0\"\nkind = \"loihi\"\n";
    let (agent, _cfg) = Agent::with_config(fs.root(), toml);
    agent.wait_ready();
    let dir = tempfile::tempdir().unwrap();

    // A symlink at the output path, pointing at a file elsewhere: refused, the target untouched.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("victim");
    std::fs::write(&target, "precious\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("link.tar.gz");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, out, stderr) = agentctl(&agent, &["bundle", "-o", link.to_str().unwrap()]);
    assert_eq!(code, 1, "refused: {out}{stderr}");
    assert!(stderr.contains(link.to_str().unwrap()) && stderr.contains("exists"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o644);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is left as it was");

    // An existing file, readable by all: refused and left as it was.
    let existing = dir.path().join("existing.tar.gz");
    std::fs::write(&existing, "old\n").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out, stderr) = agentctl(&agent, &["bundle", "-o", existing.to_str().unwrap()]);
    assert_eq!(code, 1, "refused: {out}{stderr}");
    assert!(stderr.contains("--force"), "says how to replace it: {stderr}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old\n");

    // With --force: a new file in its place (a new inode at mode 0600), and through the link nothing.
    // A second name keeps the old file (and its inode number) alive, to tell a rewrite from a new file.
    let old = dir.path().join("old-name");
    std::fs::hard_link(&existing, &old).unwrap();
    let (code, _, stderr) = agentctl(&agent, &["bundle", "--force", "-o", existing.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let meta = std::fs::symlink_metadata(&existing).unwrap();
    assert!(meta.file_type().is_file());
    assert_ne!(meta.ino(), std::fs::metadata(&old).unwrap().ino(), "a new file, not the old one rewritten");
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old\n");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert!(untar(&existing).iter().any(|(n, _)| n.ends_with("status.json")));
    let (code, _, stderr) = agentctl(&agent, &["bundle", "--force", "-o", link.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n", "the link was replaced, not followed");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_file());

    // A fresh path: owner-only, whatever the umask.
    let fresh = dir.path().join("fresh.tar.gz");
    let (code, _, stderr) = agentctl(&agent, &["bundle", "-o", fresh.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777, 0o600);
    assert!(untar(&fresh).iter().any(|(n, _)| n.ends_with("devices.json")));
}
