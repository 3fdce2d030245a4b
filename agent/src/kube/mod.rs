//! The agent as kubelet sees it (node-local; no API server, no credentials):
//!
//! - a device plugin (API `v1beta1`) per resource name among the devices, serving `DevicePlugin` on a
//!   socket in the device-plugin directory and registered with kubelet's `Registration` service
//!   (`plugin`, `registration`); `ListAndWatch` carries each device's health from the published snapshot
//!   (`advertise`);
//! - pod attribution from kubelet's pod-resources API (`podresources`).
//!
//! Data flows one way: the published snapshot (read) -> what kubelet is told; what kubelet answers ->
//! evidence to the model's owner (registration state, holders), which publishes it with the devices.
//! Journal events go through `Events`, as other effects' do. Nothing runs while `[kubernetes]` is off.

pub mod advertise;
pub mod error;
pub mod plugin;
pub mod podresources;
pub mod registration;
pub mod supervisor;
pub mod uds;

use std::sync::Arc;

use config::Config;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::effects::events::Events;
use crate::model::evidence::EvidenceTx;
use crate::publish::state::AgentState;

/// What the kubelet side needs from the agent.
#[derive(Clone)]
pub struct Context {
    pub state: Arc<AgentState>,
    pub events: Arc<Events>,
    pub evidence: EvidenceTx,
}

/// Starts the kubelet side of `config` into `tasks` (stopped by `token`), or tells the model it is off.
/// With `[kubernetes]` off no task is started.
pub fn spawn(config: &Arc<Config>, cx: Context, token: &CancellationToken, tasks: &mut JoinSet<()>) {
    if !config.kubernetes.enabled {
        // A reload that turned it off: the views lose their kubelet part. Nothing to do at start.
        cx.evidence.send(crate::model::evidence::Evidence::Command(Box::new(|engine, _, _| {
            engine.kubelet_mut().set_enabled(false);
            Vec::new()
        })));
        return;
    }
    let token = token.clone();
    let config = Arc::clone(config);
    tasks.spawn(async move { supervisor::run(config, cx, token).await });
}
