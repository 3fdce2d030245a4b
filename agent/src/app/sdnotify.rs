//! systemd's notify protocol (Type=notify): READY=1 after the first full collection, STATUS= with a
//! one-line summary, WATCHDOG=1 only while the collection loops make progress, STOPPING=1 at shutdown.
//!
//! The protocol is one datagram per message to the socket in $NOTIFY_SOCKET (a path, or an abstract
//! name written with a leading '@'); a crate would add nothing over these few lines.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::model::State;
use crate::publish::state::AgentState;

pub struct Notifier {
    socket: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// None when not started by systemd (no $NOTIFY_SOCKET) or the socket cannot be used.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str()?;
        let target = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(path).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, target })
    }

    pub fn notify(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.target) {
            tracing::debug!("sd_notify {message:?} failed: {e}");
        }
    }
}

/// The watchdog interval systemd expects pings at, from $WATCHDOG_USEC (pinging at half of it).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// A one-line summary for STATUS=.
pub fn status_line(state: &AgentState) -> String {
    let snap = state.snapshot();
    let count = |s: State| snap.devices.iter().filter(|d| d.state == s).count();
    let failing: Vec<&str> =
        snap.collectors.iter().filter(|(_, c)| !c.success && c.collections > 0).map(|(k, _)| k.name()).collect();
    let mut line = format!(
        "{} devices: {} healthy, {} degraded, {} unhealthy, {} unknown",
        snap.devices.len(),
        count(State::Healthy),
        count(State::Degraded),
        count(State::Unhealthy),
        count(State::Unknown)
    );
    if !failing.is_empty() {
        line.push_str(&format!("; collectors failing: {}", failing.join(", ")));
    }
    line
}

/// Runs the notifications until shutdown. Does nothing outside systemd.
pub fn spawn(state: Arc<AgentState>, shutdown: CancellationToken) -> Option<Arc<Notifier>> {
    let notifier = Arc::new(Notifier::from_env()?);
    let watchdog = watchdog_interval();
    let n = Arc::clone(&notifier);
    tokio::spawn(async move {
        let tick = watchdog.unwrap_or(Duration::from_secs(5)).min(Duration::from_secs(5));
        let mut ticks = tokio::time::interval(tick);
        let mut ready = false;
        let mut last_status = String::new();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let snap = state.snapshot();
            if !ready && snap.ready() {
                ready = true;
                n.notify("READY=1");
            }
            let status = status_line(&state);
            if status != last_status {
                n.notify(&format!("STATUS={status}"));
                last_status = status;
            }
            // Only while every collection loop is making progress: a wedged agent should be restarted.
            if watchdog.is_some() && snap.stalled(Instant::now(), state.started).is_empty() {
                n.notify("WATCHDOG=1");
            }
        }
    });
    Some(notifier)
}
