//! The kubelet side's loop: serves a plugin per resource, keeps each registered, carries the published
//! device health to `ListAndWatch`, and (in its own task, so a hung kubelet delays nothing else) polls
//! pod-resources.
//!
//! kubelet deletes every socket in the device-plugin directory when it starts, then creates its own
//! `kubelet.sock`. The directory is watched (inotify, through `notify`) and looked at every second as
//! well: a plugin socket that is gone is created again, and a `kubelet.sock` that is new (another file)
//! means a new kubelet, which gets every plugin registered again at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::Config;
use config::kubernetes::DeviceKubernetes;
use kubelet_api::deviceplugin::KUBELET_SOCKET;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::advertise::advertised;
use super::error::KubeletError;
use super::plugin::{self, Listed, Plugin, Served};
use super::podresources;
use super::registration;
use super::uds::{FileId, inode};
use crate::effects::journal::{Event, Severity, kind};
use crate::model::evidence::Evidence;
use crate::model::kubelet::{Advertised, HolderChange};
use crate::model::{DeviceView, State};

/// How often the directory and the published health are looked at, whatever the watch reports.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// One resource's plugin.
struct Slot {
    resource: String,
    socket: PathBuf,
    /// The devices of the resource, in config order.
    devices: Vec<String>,
    list: watch::Sender<Arc<Vec<Listed>>>,
    allocations: Arc<BTreeMap<String, DeviceKubernetes>>,
    served: Option<Served>,
    /// Which kubelet.sock (its file identity) was there when the registration succeeded; None while not registered.
    registered_with: Option<FileId>,
    failures: u32,
    next_try: Instant,
    in_flight: bool,
    /// What was last reported (logged, and sent to the model): registered, or the error.
    reported: Option<Result<(), NotRegistered>>,
}

/// Why a resource is not registered with kubelet. The causes are kept as their text: outcomes are
/// compared, to log and tell the model once per change, and the model shows the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum NotRegistered {
    #[error("kubelet restarted; registering again")]
    KubeletRestarted,
    /// The plugin's own socket could not be served.
    #[error("{0}")]
    Serve(String),
    /// kubelet refused the registration or did not answer.
    #[error("{0}")]
    Register(String),
}

pub async fn run(config: Arc<Config>, cx: Context, token: CancellationToken) {
    let k = &config.kubernetes;
    let dir = k.device_plugin_dir.clone();
    let kubelet_sock = dir.join(KUBELET_SOCKET);
    cx.evidence.send(Evidence::Command(Box::new(|engine, _, _| {
        engine.kubelet_mut().set_enabled(true);
        Vec::new()
    })));
    let mut pods_task = JoinSet::new();
    if k.pod_attribution {
        pods_task.spawn(attribution(Arc::clone(&config), cx.clone(), token.clone()));
    }
    let numa = read_numa(&config).await;
    let mut slots = slots(&config, &dir, &numa);
    if slots.is_empty() {
        tracing::info!("[kubernetes] is on but no device has a resource; no device plugin is served");
    }
    let wake = Arc::new(Notify::new());
    let _watcher = watch_dir(&dir, Arc::clone(&wake));
    let mut advertised_now: BTreeMap<String, (Advertised, Option<String>)> = BTreeMap::new();
    let mut attempts: JoinSet<(usize, Option<FileId>, Result<(), KubeletError>)> = JoinSet::new();
    let mut kubelet_seen = inode(&kubelet_sock);
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticks.tick() => {}
            _ = wake.notified() => {}
            Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                if let Ok((i, with, result)) = done {
                    registered(&mut slots[i], with, result, &cx, Instant::now());
                }
            }
        }
        let now = Instant::now();
        publish_health(&config, &mut slots, &mut advertised_now, &cx);
        // A new kubelet (its socket re-created): every plugin registers again, at once.
        let kubelet_now = inode(&kubelet_sock);
        if kubelet_now != kubelet_seen {
            if kubelet_now.is_some() {
                tracing::info!(socket = %kubelet_sock.display(), "kubelet's registration socket appeared; registering");
            }
            kubelet_seen = kubelet_now;
            for s in &mut slots {
                s.failures = 0;
                s.next_try = now;
            }
        }
        for (i, s) in slots.iter_mut().enumerate() {
            ensure_served(s, &token, &cx);
            if s.registered_with.is_some() && s.registered_with != kubelet_now {
                s.registered_with = None;
                s.next_try = now;
                report(s, Err(NotRegistered::KubeletRestarted), &cx);
            }
            if s.served.is_some() && s.registered_with.is_none() && !s.in_flight && now >= s.next_try {
                s.in_flight = true;
                let (kubelet, endpoint, resource, timeout) =
                    (kubelet_sock.clone(), plugin::socket_name(&s.resource), s.resource.clone(), k.timeout.get());
                attempts.spawn(async move {
                    let before = inode(&kubelet);
                    let result = registration::register(&kubelet, &endpoint, &resource, timeout).await;
                    (i, reached(before, inode(&kubelet)), result)
                });
            }
        }
    }
    attempts.abort_all();
    pods_task.abort_all();
    for s in &slots {
        if let Some(served) = &s.served {
            served.stop.cancel();
            let _ = std::fs::remove_file(&served.socket);
        }
    }
}

fn slots(config: &Config, dir: &Path, numa: &BTreeMap<String, i64>) -> Vec<Slot> {
    let mut by_resource: BTreeMap<String, Vec<&config::DeviceConfig>> = BTreeMap::new();
    for d in &config.devices {
        if let Some(r) = d.resource_name() {
            by_resource.entry(r).or_default().push(d);
        }
    }
    by_resource
        .into_iter()
        .map(|(resource, devices)| {
            let initial = devices
                .iter()
                .map(|d| Listed { id: d.id.clone(), health: Advertised::Healthy, numa_node: numa.get(&d.id).copied() })
                .collect();
            Slot {
                socket: dir.join(plugin::socket_name(&resource)),
                devices: devices.iter().map(|d| d.id.clone()).collect(),
                list: watch::Sender::new(Arc::new(initial)),
                allocations: Arc::new(
                    devices.iter().filter_map(|d| Some((d.id.clone(), d.kubernetes.clone()?))).collect(),
                ),
                resource,
                served: None,
                registered_with: None,
                failures: 0,
                next_try: Instant::now(),
                in_flight: false,
                reported: None,
            }
        })
        .collect()
}

/// Serves the slot's plugin if it is not served, or its socket was deleted or replaced (a kubelet start
/// deletes it); a replaced server means a new registration.
fn ensure_served(s: &mut Slot, token: &CancellationToken, cx: &Context) {
    if let Some(served) = &s.served {
        if inode(&served.socket) == served.inode {
            return;
        }
        tracing::info!(socket = %served.socket.display(), resource = %s.resource, "plugin socket gone; serving it again");
        served.stop.cancel();
        s.served = None;
        s.registered_with = None;
        s.failures = 0;
        s.next_try = Instant::now();
    }
    let (resource, list, allocations) = (s.resource.clone(), s.list.subscribe(), Arc::clone(&s.allocations));
    match plugin::serve(&s.socket, |stop| Plugin::new(resource, list, allocations, stop), token.child_token()) {
        Ok(served) => s.served = Some(served),
        Err(e) => report(s, Err(NotRegistered::Serve(e.to_string())), cx),
    }
}

/// Which kubelet a registration reached, from its socket's identity just before and just after the call.
/// Read at the loop's last look instead, a kubelet that started between that look and the call would be
/// taken for none and registered with twice. `None` when it cannot be told (a restart during the call):
/// the loop then looks again.
fn reached(before: Option<FileId>, after: Option<FileId>) -> Option<FileId> {
    match (before, after) {
        // The call could only have reached a socket that appeared after the first look.
        (None, after) => after,
        (Some(b), Some(a)) if a == b => Some(b),
        _ => None,
    }
}

fn registered(s: &mut Slot, with: Option<FileId>, result: Result<(), KubeletError>, cx: &Context, now: Instant) {
    s.in_flight = false;
    match result {
        Ok(()) => {
            s.registered_with = with;
            if with.is_none() {
                // kubelet.sock went while the call ran: look again at once.
                s.next_try = now;
            }
            s.failures = 0;
            report(s, Ok(()), cx);
        }
        Err(e) => {
            s.failures += 1;
            s.next_try = now + registration::backoff(s.failures);
            report(s, Err(NotRegistered::Register(e.to_string())), cx);
        }
    }
}

/// Logs a registration outcome once per transition and tells the model.
fn report(s: &mut Slot, outcome: Result<(), NotRegistered>, cx: &Context) {
    let changed = !matches!((&s.reported, &outcome), (Some(Ok(())), Ok(())) | (Some(Err(_)), Err(_)));
    if changed {
        match &outcome {
            Ok(()) => tracing::info!(resource = %s.resource, "registered with kubelet"),
            Err(e) => tracing::warn!(resource = %s.resource, "not registered with kubelet: {e}"),
        }
    }
    if s.reported.as_ref() == Some(&outcome) {
        return;
    }
    s.reported = Some(outcome.clone());
    let resource = s.resource.clone();
    cx.evidence.send(Evidence::Command(Box::new(move |engine, _, _| {
        engine.kubelet_mut().set_registration(&resource, outcome.is_ok(), outcome.err().map(|e| e.to_string()));
        Vec::new()
    })));
}

/// Recomputes every device's advertised health from the published snapshot; a change goes to
/// `ListAndWatch`, to the journal and to the model.
fn publish_health(
    config: &Config,
    slots: &mut [Slot],
    advertised_now: &mut BTreeMap<String, (Advertised, Option<String>)>,
    cx: &Context,
) {
    let snap = cx.state.snapshot();
    let by_id: BTreeMap<&str, &DeviceView> = snap.devices.iter().map(|d| (d.id.as_str(), d)).collect();
    let unhealthy_on = &config.kubernetes.unhealthy_on;
    // (device, health, why, whether to journal it): the first answer is journalled only when Unhealthy.
    let mut changed: Vec<(String, Advertised, Option<String>, bool)> = Vec::new();
    for s in slots.iter_mut() {
        let mut list: Vec<Listed> = s.list.borrow().as_ref().clone();
        for (entry, id) in list.iter_mut().zip(&s.devices) {
            let (health, reason) = match by_id.get(id.as_str()) {
                Some(view) => advertised(view, unhealthy_on),
                // Not evaluated yet: as a device whose state is unknown.
                None if unhealthy_on.contains(&config::kubernetes::UnhealthyOn::Unknown) => {
                    (Advertised::Unhealthy, Some(State::Unknown.name().to_owned()))
                }
                None => (Advertised::Healthy, None),
            };
            entry.health = health;
            if advertised_now.get(id) != Some(&(health, reason.clone())) {
                let first = !advertised_now.contains_key(id);
                advertised_now.insert(id.clone(), (health, reason.clone()));
                changed.push((id.clone(), health, reason, !first || health == Advertised::Unhealthy));
            }
        }
        s.list.send_if_modified(|old| {
            if **old == list {
                false
            } else {
                *old = Arc::new(list);
                true
            }
        });
    }
    if changed.is_empty() {
        return;
    }
    let wall = SystemTime::now();
    for (id, health, reason, _) in changed.iter().filter(|c| c.3) {
        let message = match reason {
            Some(r) => format!("{id} advertised {} to kubelet: {r}", health.name()),
            None => format!("{id} advertised {} to kubelet", health.name()),
        };
        let severity = if *health == Advertised::Unhealthy { Severity::Warning } else { Severity::Info };
        tracing::info!(device = %id, "{message}");
        cx.events.record(Event::new(wall, severity, kind::KUBELET, message).on_device(id));
    }
    cx.evidence.send(Evidence::Command(Box::new(move |engine, _, _| {
        for (id, health, reason, _) in changed {
            engine.kubelet_mut().set_advertised(&id, health, reason);
        }
        Vec::new()
    })));
}

/// Polls pod-resources on the cadence; each holder change is journalled, the holders go to the model.
async fn attribution(config: Arc<Config>, cx: Context, token: CancellationToken) {
    let k = &config.kubernetes;
    let bindings = podresources::bindings(&config);
    let mut ticks = tokio::time::interval(k.interval.get());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing: Option<String> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let outcome = tokio::select! {
            _ = token.cancelled() => return,
            r = podresources::list(&k.pod_resources_socket, k.timeout.get()) => r,
        };
        match outcome {
            Ok(pods) => {
                if failing.take().is_some() {
                    tracing::info!(socket = %k.pod_resources_socket.display(), "pod-resources answers again");
                }
                let held = podresources::attribute(&pods, &bindings);
                let changes =
                    cx.evidence.run(move |engine, _, _| (engine.kubelet_mut().set_pods(held), Vec::new())).await;
                for c in changes.unwrap_or_default() {
                    journal_holder(&c, &cx);
                }
            }
            Err(e) => {
                let message = e.to_string();
                if failing.is_none() {
                    tracing::warn!("pod attribution failing: {message}");
                }
                failing = Some(message.clone());
                cx.evidence.send(Evidence::Command(Box::new(move |engine, _, _| {
                    engine.kubelet_mut().set_pods_error(message);
                    Vec::new()
                })));
            }
        }
    }
}

fn journal_holder(c: &HolderChange, cx: &Context) {
    let list =
        |pods: &[crate::model::kubelet::PodRef]| pods.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    let message = match (c.before.is_empty(), c.after.is_empty()) {
        (_, false) if c.before.is_empty() => format!("{} now held by {}", c.device, list(&c.after)),
        (_, true) => format!("{} released by {}", c.device, list(&c.before)),
        _ => format!("{} now held by {} (was {})", c.device, list(&c.after), list(&c.before)),
    };
    tracing::info!(device = %c.device, "{message}");
    cx.events.record(Event::new(SystemTime::now(), Severity::Info, kind::KUBELET, message).on_device(&c.device));
}

/// The NUMA node of every device's PCI function (`<sysfs_root>/bus/pci/devices/<addr>/numa_node`; -1
/// means none). Read once, off the async threads, with a deadline.
async fn read_numa(config: &Config) -> BTreeMap<String, i64> {
    let root = config.sysfs_root.clone();
    let wanted: Vec<(String, String)> =
        config.devices.iter().filter_map(|d| Some((d.id.clone(), d.pci_address.clone()?))).collect();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    let read = tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .filter_map(|(id, addr)| {
                let text = std::fs::read_to_string(root.join("bus/pci/devices").join(&addr).join("numa_node")).ok()?;
                let node: i64 = text.trim().parse().ok()?;
                (node >= 0).then_some((id, node))
            })
            .collect()
    });
    match tokio::time::timeout(config::DEFAULT_READ_TIMEOUT, read).await {
        Ok(Ok(map)) => map,
        _ => {
            tracing::warn!("reading the devices' NUMA nodes from sysfs did not finish; advertising no topology");
            BTreeMap::new()
        }
    }
}

/// Wakes the loop on any change in the directory (a socket deleted or created).
fn watch_dir(dir: &Path, wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            wake.notify_one();
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot watch the device-plugin directory (looking every second instead): {e}");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), "cannot watch the device-plugin directory (looking every second instead): {e}");
        return None;
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::reached;

    #[test]
    fn a_registration_is_with_the_kubelet_that_was_there_throughout() {
        let (old, new) = ((7, 100, 1), (7, 160, 5));
        assert_eq!(reached(Some(old), Some(old)), Some(old));
        // No socket at the first look: the call reached the kubelet that appeared (not "none", which
        // would register a second time).
        assert_eq!(reached(None, Some(new)), Some(new));
        assert_eq!(reached(None, None), None);
        // Restarted during the call (the same inode number, reused): which one was reached is unknown.
        assert_eq!(reached(Some(old), Some(new)), None);
        assert_eq!(reached(Some(old), None), None);
    }
}
