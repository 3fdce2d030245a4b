//! The control socket: HTTP/1.1 + JSON on a Unix socket, the only place where anything the agent does can
//! be changed. It serves the read endpoints of the TCP listener plus `/api/v1/status`, the diagnosis, the
//! incident bundle, and the POST mutations, which only root and the control group may use.
//!
//! Nothing here waits on hardware except `diagnose`, which runs the probes on purpose (each with its own
//! deadline). Every mutation and every refusal is an event in the journal, naming the peer.

pub(crate) mod bundle;
pub mod ctl;
pub(crate) mod diagnose;
mod diagnostics;
pub(crate) mod npd;
pub(crate) mod peer;
pub(crate) mod refusals;
pub(crate) mod socket;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use config::Config;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::effects::actions::{ActionError, Actions, ActionsMode};
use crate::effects::events::Events;
use crate::effects::journal::{Event, Lane, Severity, kind};
use crate::model::evidence::{AgentNews, Evidence, EvidenceTx};
use crate::model::operator::{OperatorError, ThrottleOverride};
use crate::publish::http::{Http, json};
use crate::publish::state::AgentState;
use crate::sources::logwatch::LogHandle;
use peer::{Authorizer, Peer};
use refusals::Refused;

/// A request body larger than this is refused: mutations carry a few fields.
const MAX_BODY: usize = 64 * 1024;
/// Time for a client to send its request; agentctl sends it at once.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a throttle or reconnect request waits for the actions thread; agentctl waits 20 s for the
/// answer. Vendor commands may take 10 s.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections held at once; agentctl opens one per command.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Of those, the ones only root and the control group may take: a flood from anyone else who can reach
/// the socket never locks them out.
const RESERVED_FOR_PRIVILEGED: usize = 16;
/// Connections one unprivileged uid may hold at once.
const MAX_PER_UID: usize = 8;
/// How often refusals due for a summary are reported and their totals published.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Characters of a refused request's path that go into the journal and the log.
const MAX_PATH_SHOWN: usize = 200;

/// Who holds which connection slots.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    unprivileged: usize,
    by_uid: std::collections::HashMap<u32, usize>,
}

/// A held slot, given back when the connection ends.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    uid: u32,
    privileged: bool,
}

impl Slots {
    /// Takes a slot for a new connection of `uid`, or None if its share is used up.
    fn take(slots: &Arc<Mutex<Slots>>, uid: u32, privileged: bool) -> Option<Slot> {
        let mut s = slots.lock().unwrap_or_else(PoisonError::into_inner);
        if s.total >= MAX_CONNECTIONS {
            return None;
        }
        if !privileged {
            let mine = s.by_uid.get(&uid).copied().unwrap_or(0);
            if mine >= MAX_PER_UID || s.unprivileged >= MAX_CONNECTIONS - RESERVED_FOR_PRIVILEGED {
                return None;
            }
            s.unprivileged += 1;
            *s.by_uid.entry(uid).or_default() += 1;
        }
        s.total += 1;
        Some(Slot { slots: Arc::clone(slots), uid, privileged })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s.total -= 1;
        if !self.privileged {
            s.unprivileged -= 1;
            if let Some(n) = s.by_uid.get_mut(&self.uid) {
                *n -= 1;
                if *n == 0 {
                    s.by_uid.remove(&self.uid);
                }
            }
        }
    }
}

/// A reload asked for on the socket; the daemon answers with what happened.
pub type ReloadRequest = oneshot::Sender<Result<String, ReloadRefused>>;

/// Why the daemon refused a reload: its own error, whole, for the reply's text (the daemon's error type
/// lives above this module).
pub type ReloadRefused = Box<dyn std::error::Error + Send + Sync>;

/// What the running loops share with the control socket; swapped as a whole by a reload.
pub struct Live {
    pub config: Arc<Config>,
    pub config_path: Option<PathBuf>,
    /// To the device model's owner.
    pub evidence: EvidenceTx,
    pub logs: LogHandle,
}

pub struct Control {
    pub http: Arc<Http>,
    pub state: Arc<AgentState>,
    pub events: Arc<Events>,
    pub actions: Actions,
    pub live: ArcSwap<Live>,
    pub auth: Authorizer,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Refusals counted, and reported at a bounded rate.
    pub refusals: Mutex<refusals::Refusals>,
}

/// An operator's change to one device, as the model's owner runs it.
enum OperatorRequest {
    Maintenance {
        on: bool,
        until: Option<SystemTime>,
    },
    /// `None`: release the manual level.
    Throttle {
        level: Option<usize>,
        until: Option<SystemTime>,
    },
    Reconnect,
    SetHealthy,
}

/// What the owner's run of an operator's change hands back: its message, the throttle override it
/// replaced (to undo it if the machine refuses), the reconnect it started, and the actions thread's mark
/// before it.
type Applied = (
    Result<String, OperatorError>,
    Option<ThrottleOverride>,
    Option<Result<crate::effects::actions::Pending, ActionError>>,
    u64,
);

impl OperatorRequest {
    /// The change a verb and its body ask for, or the answer refusing it.
    #[allow(clippy::result_large_err)]
    fn parse(verb: &str, body: &MutationBody, until: Option<SystemTime>) -> Result<Self, Response<Full<Bytes>>> {
        Ok(match verb {
            "maintenance" => OperatorRequest::Maintenance { on: body.on.unwrap_or(true), until },
            "throttle" => match body.level {
                Some(level) => OperatorRequest::Throttle { level: Some(level), until },
                None => return Err(failure(StatusCode::BAD_REQUEST, "throttle needs a level")),
            },
            "unthrottle" => OperatorRequest::Throttle { level: None, until: None },
            "reconnect" => OperatorRequest::Reconnect,
            "set-healthy" => OperatorRequest::SetHealthy,
            other => return Err(failure(StatusCode::NOT_FOUND, format!("no such action {other:?}"))),
        })
    }

    /// Carries the change out on the model (run by its owner), handing a reconnect to the actions thread.
    fn apply(
        self,
        engine: &mut crate::model::DeviceEngine,
        device: &str,
        actions: &Actions,
        logs: &LogHandle,
        for_text: &str,
        (now, wall): (Instant, SystemTime),
    ) -> (Applied, Vec<crate::model::ConditionChange>) {
        // The owner's next decision, right after this, asks the actions thread for the level this change
        // calls for (if any): the first request numbered after the mark.
        let mark = actions.mark();
        let saved = match self {
            OperatorRequest::Throttle { .. } => engine.throttle_override(device).ok(),
            _ => None,
        };
        let mut step = None;
        let (message, changes) = match self {
            OperatorRequest::Maintenance { on, until } => {
                (set_maintenance(engine, device, on, until, for_text, wall), Vec::new())
            }
            OperatorRequest::Throttle { level: Some(level), until } => {
                let message = engine
                    .set_manual_throttle(device, Some(level), until)
                    .map(|max| format!("throttle held at level {level} of {max}{for_text}"));
                (message, Vec::new())
            }
            OperatorRequest::Throttle { level: None, .. } => {
                let message = engine
                    .set_manual_throttle(device, None, None)
                    .map(|_| "throttle released: back to level 0, automatic throttling resumes".to_owned());
                (message, Vec::new())
            }
            OperatorRequest::Reconnect => {
                let message = engine.manual_reconnect(device, now).map(|s| {
                    step = Some(actions.request_reconnect(device, s));
                    format!("reconnect started with step {s}")
                });
                (message, Vec::new())
            }
            OperatorRequest::SetHealthy => match engine.set_healthy(device, now, wall) {
                Ok((cleared, changes)) => {
                    logs.clear_latched(device);
                    let message = if cleared.is_empty() {
                        "nothing latched to clear".to_owned()
                    } else {
                        format!("cleared {}", cleared.join(", "))
                    };
                    (Ok(message), changes)
                }
                Err(e) => (Err(e), Vec::new()),
            },
        };
        ((message, saved, step, mark), changes)
    }
}

/// The JSON body of a mutation; each verb reads the fields it needs. agentctl writes the same type,
/// leaving out what it does not set.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MutationBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
    /// A duration like "30m" or "2h".
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// The device of a diagnostics run (absent: every device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The answer to a mutation (agentctl reads the same type).
#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    pub ok: bool,
    pub device: Option<String>,
    pub message: String,
}

/// A refused or failed request (agentctl reads the same type).
#[derive(Debug, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    /// Known device ids, when the device was unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<String>,
    /// The control group, when the peer was not authorised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn failure(status: StatusCode, error: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &Failure { error: error.into(), known: Vec::new(), group: None })
}

fn operator_failure(e: OperatorError) -> Response<Full<Bytes>> {
    match e {
        OperatorError::UnknownDevice { ref known, .. } => {
            json(StatusCode::NOT_FOUND, &Failure { error: e.to_string(), known: known.clone(), group: None })
        }
        OperatorError::LevelOutOfRange { .. } => failure(StatusCode::BAD_REQUEST, e.to_string()),
        OperatorError::NoThrottleLadder { .. } | OperatorError::NoReconnectLadder { .. } => {
            failure(StatusCode::CONFLICT, e.to_string())
        }
    }
}

impl Control {
    pub async fn handle(&self, mut req: Request<Incoming>, peer: &Peer) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        if req.method() == Method::POST {
            // Diagnosing runs the probes now but changes nothing: anyone who may connect may ask.
            if path == "/api/v1/diagnose" {
                return json(StatusCode::OK, &self.diagnose().await);
            }
            // Read first, refuse after: a reply sent before the body is read would reach a client that is
            // still writing as a broken pipe instead of a 403.
            let body = read_body(req).await;
            if !self.auth.allows(peer) {
                return self.refuse(peer, "POST", &path);
            }
            let body = match body {
                Ok(b) => b,
                Err(e) => return failure(StatusCode::BAD_REQUEST, e.to_string()),
            };
            return self.mutate(&path, body, peer).await;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return failure(StatusCode::METHOD_NOT_ALLOWED, "use GET for reads and POST for changes");
        }
        // Matched log lines (and the bundle, which holds them) may quote anything a followed file holds:
        // the same people as for changes may read them.
        if matches!(path.as_str(), "/api/v1/logs/recent" | "/api/v1/bundle") && !self.auth.allows(peer) {
            return self.refuse(peer, "GET", &path);
        }
        if let Some(id) = path.strip_prefix("/api/v1/diagnostics/runs/") {
            return diagnostics::state(self, id).await;
        }
        match path.as_str() {
            "/api/v1/logs/recent" => json(StatusCode::OK, &self.live.load().logs.recent()),
            "/api/v1/bundle" => match bundle::build(self).await {
                Ok(bytes) => crate::publish::http::respond(StatusCode::OK, "application/gzip", Bytes::from(bytes)),
                Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot build the bundle: {e}")),
            },
            _ => {
                // Queries from here run on the journal's control connection, never behind the network's.
                req.extensions_mut().insert(Lane::Control);
                self.http.handle(&req).await
            }
        }
    }

    pub fn status(&self) -> crate::publish::api::StatusReport {
        self.http.status()
    }

    fn refuse(&self, peer: &Peer, method: &str, path: &str) -> Response<Full<Bytes>> {
        let what = match path {
            _ if method == "POST" => Refused::Change,
            "/api/v1/bundle" => Refused::Bundle,
            _ => Refused::Logs,
        };
        // The path is the peer's to choose: a bounded part of it is enough to say what was asked.
        let path: String = path.chars().take(MAX_PATH_SHOWN).collect();
        let pid = peer.pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"));
        let detail = format!("{method} {path}, {pid}");
        let alone = self.refusals.lock().unwrap_or_else(PoisonError::into_inner).refuse(
            peer.uid,
            what,
            &detail,
            Instant::now(),
            SystemTime::now(),
        );
        if alone {
            let message = format!(
                "refused {method} {path} from {}: {}; more from this uid within {}s are counted in one event",
                peer.describe(),
                self.refusal_reason(),
                refusals::INTERVAL.as_secs()
            );
            tracing::warn!("{message}");
            self.events.record(Event::new(SystemTime::now(), Severity::Warning, kind::CONTROL_REFUSED, message));
        }
        // A group that does not exist on this host cannot be joined: say so rather than name it.
        let (error, group) = match self.auth.gid {
            Some(_) => (
                format!(
                    "not authorised: changes, log lines and the bundle need root or membership of the group {}",
                    self.auth.group
                ),
                Some(self.auth.group.clone()),
            ),
            None => (
                format!(
                    "not authorised: changes, log lines and the bundle need root (the control group {} does not \
                     exist on this host)",
                    self.auth.group
                ),
                None,
            ),
        };
        json(StatusCode::FORBIDDEN, &Failure { error, known: Vec::new(), group })
    }

    fn refusal_reason(&self) -> String {
        format!("not root and not in the control group {}", self.auth.group)
    }

    /// Reports the refusals whose interval ended by `now` (all of them at `shutdown`), one event and one
    /// log line per peer and kind, and publishes the totals for `accel_control_refused_total`.
    fn report_refusals(&self, now: Instant, shutdown: bool) {
        let (summaries, totals) = {
            let mut r = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            (if shutdown { r.drain() } else { r.due(now) }, r.totals())
        };
        for summary in summaries {
            let message = summary.message(&self.refusal_reason());
            tracing::warn!("{message}");
            self.events.record(Event::new(SystemTime::now(), Severity::Warning, kind::CONTROL_REFUSED, message));
        }
        self.live.load().evidence.send(Evidence::Agent(AgentNews::ControlRefused(totals)));
    }

    async fn mutate(&self, path: &str, body: MutationBody, peer: &Peer) -> Response<Full<Bytes>> {
        if path == "/api/v1/reload" {
            return self.reload().await;
        }
        if path == "/api/v1/diagnostics" {
            return diagnostics::start(self, body.level, body.device, peer).await;
        }
        let Some((id, verb)) = path.strip_prefix("/api/v1/devices/").and_then(|r| r.rsplit_once('/')) else {
            return failure(StatusCode::NOT_FOUND, format!("no such action {path}"));
        };
        let (until, acts) = match self.admit(verb, &body) {
            Ok(admitted) => admitted,
            Err(e) => return e.response(),
        };
        let for_text = body.for_.as_deref().map(|f| format!(" for {f}")).unwrap_or_default();
        let live = self.live.load_full();
        let (device, actions, logs) = (id.to_owned(), self.actions.clone(), live.logs.clone());
        let request = match OperatorRequest::parse(verb, &body, until) {
            Ok(request) => request,
            Err(response) => return response,
        };
        // Runs on the model's owner; answered once the change is decided (its throttle level handed to the
        // actions thread) and published, so the operator's next look shows it.
        let outcome = live
            .evidence
            .run(move |engine, now, wall| request.apply(engine, &device, &actions, &logs, &for_text, (now, wall)))
            .await;
        let Some((outcome, saved, step, mark)) = outcome else {
            return failure(StatusCode::SERVICE_UNAVAILABLE, "the agent is shutting down");
        };
        let message = match outcome {
            // An operator must not take a dry run's "released" or "held" for a change on the machine.
            Ok(message) if acts && self.actions.mode() == ActionsMode::DryRun => {
                format!("{message} (dry run: nothing was written)")
            }
            Ok(message) => message,
            Err(e) => return operator_failure(e),
        };
        // The operator is told whether the machine did what was asked, not only that it was asked.
        let applied = match (step, saved) {
            (Some(step), _) => Some(step),
            (None, Some(_)) => Some(self.actions.outcome_since(id, mark)),
            (None, None) => None,
        };
        let result = match applied {
            Some(Ok(pending)) => pending.wait(APPLY_TIMEOUT).await.map(|_| ()),
            Some(Err(e)) => Err(e),
            None => Ok(()),
        };
        // Decided and published now, so that status right after this answer shows what was applied.
        self.live.load().evidence.flush().await;
        if let Err(e) = result {
            return self.not_applied(verb, id, peer, e, saved).await;
        }
        self.done(id, peer, message)
    }

    /// Whether a change on a device can be asked now: its hold (`for`) is a duration, and the actions it
    /// needs (throttle, unthrottle, reconnect) are on and running. Gives the hold's end and whether the
    /// verb acts on the machine.
    fn admit(&self, verb: &str, body: &MutationBody) -> Result<(Option<SystemTime>, bool), NotAdmitted> {
        let until = body.for_.as_deref().map(|f| hold_until(f, SystemTime::now())).transpose()?;
        let acts = matches!(verb, "throttle" | "unthrottle" | "reconnect");
        if acts && !self.actions.active() {
            return Err(NotAdmitted::ActionsDisabled);
        }
        if let (true, Some(why)) = (acts, self.actions.down()) {
            return Err(NotAdmitted::ActionsDown(ActionError::Down(why)));
        }
        Ok((until, acts))
    }

    /// A change done: logged, journalled with who asked, and answered.
    fn done(&self, id: &str, peer: &Peer, message: String) -> Response<Full<Bytes>> {
        let by = format!("{message} (by {})", peer.describe());
        tracing::info!(device = id, "{by}");
        self.events.record(Event::new(SystemTime::now(), Severity::Info, kind::OPERATOR, by).on_device(id));
        json(StatusCode::OK, &Done { ok: true, device: Some(id.to_owned()), message })
    }

    /// A throttle, unthrottle or reconnect the actions thread could not carry out: an error for the
    /// operator and a warning in the journal. A throttle change that failed on the machine is undone in
    /// the model too, so the engine does not hold a level that was never applied.
    async fn not_applied(
        &self,
        verb: &str,
        id: &str,
        peer: &Peer,
        e: ActionError,
        saved: Option<ThrottleOverride>,
    ) -> Response<Full<Bytes>> {
        let mut why = e.to_string();
        if let Some(saved) = saved
            && matches!(e, ActionError::Failed(_) | ActionError::Down(_))
        {
            let device = id.to_owned();
            let live = self.live.load_full();
            live.evidence
                .run(move |engine, _, _| {
                    engine.restore_throttle_override(&device, saved);
                    ((), Vec::new())
                })
                .await;
            why.push_str("; the previous throttle setting stays in force");
        }
        let refused = format!("{verb} asked by {} failed: {why}", peer.describe());
        tracing::warn!(device = id, "{refused}");
        self.events.record(Event::new(SystemTime::now(), Severity::Warning, kind::OPERATOR, refused).on_device(id));
        let status = match e {
            ActionError::Down(_) => StatusCode::SERVICE_UNAVAILABLE,
            ActionError::NoAnswer(_) => StatusCode::GATEWAY_TIMEOUT,
            ActionError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        failure(status, why)
    }

    async fn reload(&self) -> Response<Full<Bytes>> {
        let (tx, rx) = oneshot::channel();
        if self.reload.send(tx).await.is_err() {
            return failure(StatusCode::SERVICE_UNAVAILABLE, "the agent is shutting down");
        }
        match rx.await {
            Ok(Ok(message)) => json(StatusCode::OK, &Done { ok: true, device: None, message }),
            Ok(Err(error)) => failure(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
            Err(_) => failure(StatusCode::SERVICE_UNAVAILABLE, "the agent is shutting down"),
        }
    }

    async fn diagnose(&self) -> diagnose::Report {
        let live = self.live.load_full();
        let results = crate::sources::probing::run_all(&live.config).await;
        for (device, result) in results.iter().cloned() {
            live.evidence.send(Evidence::Probe { device, result });
        }
        live.evidence.flush().await;
        diagnose::diagnose(&self.state.snapshot(), &self.status(), &live.config, results.len())
    }
}

/// The longest `--for` a mutation takes: a hold meant to outlast this is a config change.
const MAX_HOLD: Duration = Duration::from_secs(366 * 24 * 3600);

/// Turns an operator's maintenance on or off, and says what that leaves: off ends only the operator's
/// part, so a maintenance window that covers the device keeps it in maintenance, and the answer says so.
fn set_maintenance(
    engine: &mut crate::model::DeviceEngine,
    device: &str,
    on: bool,
    until: Option<SystemTime>,
    for_text: &str,
    wall: SystemTime,
) -> Result<String, OperatorError> {
    engine.set_maintenance(device, on, until)?;
    Ok(match (on, engine.window_holds(device, wall).first()) {
        (true, _) => format!("maintenance on{for_text}: automatic actions suspended"),
        (false, None) => "maintenance off: automatic actions resume".to_owned(),
        (false, Some(window)) => format!("manual maintenance off; {window} still holds it"),
    })
}

/// Why a `--for` was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HoldError {
    #[error("--for: {0}; write e.g. 30m, 2h")]
    Unreadable(humantime::DurationError),
    #[error("--for must be longer than 0s")]
    Zero,
    #[error("--for {text} is too long: at most {} days", MAX_HOLD.as_secs() / 86_400)]
    TooLong { text: String },
    #[error("--for {text} reaches past the end of the clock")]
    PastClock { text: String },
}

/// When a hold of `text` ("30m", "2h") from `now` ends; bounded, so no duration can overflow the clock.
/// Why a change on a device is refused before it is tried.
#[derive(Debug, thiserror::Error)]
enum NotAdmitted {
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error("actions are disabled on this host: set [actions] enabled = true (or dry_run) and reload")]
    ActionsDisabled,
    #[error(transparent)]
    ActionsDown(ActionError),
}

impl NotAdmitted {
    fn response(self) -> Response<Full<Bytes>> {
        let status = match self {
            NotAdmitted::Hold(_) => StatusCode::BAD_REQUEST,
            NotAdmitted::ActionsDisabled => StatusCode::CONFLICT,
            NotAdmitted::ActionsDown(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        failure(status, self.to_string())
    }
}

fn hold_until(text: &str, now: SystemTime) -> Result<SystemTime, HoldError> {
    let d = humantime::parse_duration(text).map_err(HoldError::Unreadable)?;
    if d.is_zero() {
        return Err(HoldError::Zero);
    }
    if d > MAX_HOLD {
        return Err(HoldError::TooLong { text: text.to_owned() });
    }
    now.checked_add(d).ok_or_else(|| HoldError::PastClock { text: text.to_owned() })
}

/// Why a mutation's body was refused.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body did not arrive in time")]
    Late,
    #[error("cannot read the request body: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("bad request body: {0}")]
    Json(#[source] serde_json::Error),
}

async fn read_body(req: Request<Incoming>) -> Result<MutationBody, BodyError> {
    let collected = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(req.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| BodyError::Late)?
        .map_err(BodyError::Read)?
        .to_bytes();
    if collected.iter().all(u8::is_ascii_whitespace) {
        return Ok(MutationBody::default());
    }
    serde_json::from_slice(&collected).map_err(BodyError::Json)
}

/// Serves the control socket until `shutdown`, then removes the socket file.
pub async fn serve(socket: socket::ControlSocket, control: Arc<Control>, shutdown: CancellationToken) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Accept at once and decide by the peer's credentials: waiting for a free slot before accepting
        // would queue root behind whoever holds the slots.
        let stream = tokio::select! {
            r = socket.listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = report.tick() => {
                control.report_refusals(Instant::now(), false);
                continue;
            }
            _ = shutdown.cancelled() => break,
        };
        let peer = match Peer::of(&stream) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::warn!("cannot read the control peer's credentials, closing: {e}");
                continue;
            }
        };
        let Some(permit) = Slots::take(&slots, peer.uid, control.auth.allows(&peer)) else {
            tracing::debug!("control connection from {} refused: its share of connections is in use", peer.describe());
            continue;
        };
        let control = Arc::clone(&control);
        let service = service_fn(move |req: Request<Incoming>| {
            let (control, peer) = (Arc::clone(&control), Arc::clone(&peer));
            async move { Ok::<_, Infallible>(control.handle(req, &peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(REQUEST_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!("control connection ended: {e}");
            }
        });
    }
    socket.remove();
    let _ = tokio::time::timeout(Duration::from_millis(500), graceful.shutdown()).await;
    // Refusals counted but not yet reported are journaled before the agent goes.
    control.report_refusals(Instant::now(), true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_bounded_and_never_overflow_the_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hold = |text: &str| hold_until(text, now).map_err(|e| e.to_string());
        assert_eq!(hold("30m"), Ok(now + Duration::from_secs(1800)));
        assert_eq!(hold("0s"), Err("--for must be longer than 0s".to_owned()));
        assert_eq!(hold("300000000000y"), Err("--for 300000000000y is too long: at most 366 days".to_owned()));
        assert_eq!(hold("3000y"), Err("--for 3000y is too long: at most 366 days".to_owned()));
        assert!(hold("1000000000000000000000y").unwrap_err().starts_with("--for: "));
        assert!(hold_until("1y", now).is_ok());
    }

    #[test]
    fn a_flooding_uid_leaves_room_for_others_and_for_root() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let flood: Vec<Slot> = (0..MAX_PER_UID).map(|_| Slots::take(&slots, 1000, false).unwrap()).collect();
        assert!(Slots::take(&slots, 1000, false).is_none(), "one uid's share is used up");
        // Many unprivileged uids together stop short of the reserved slots.
        let mut others = Vec::new();
        for uid in 2000.. {
            match Slots::take(&slots, uid, false) {
                Some(s) => others.push(s),
                None => break,
            }
        }
        assert_eq!(flood.len() + others.len(), MAX_CONNECTIONS - RESERVED_FOR_PRIVILEGED);
        let root: Vec<Slot> = (0..RESERVED_FOR_PRIVILEGED).map(|_| Slots::take(&slots, 0, true).unwrap()).collect();
        assert!(Slots::take(&slots, 0, true).is_none(), "the total is bounded for everyone");
        drop(flood);
        drop(root);
        let again = Slots::take(&slots, 1000, false);
        assert!(again.is_some(), "slots come back when connections end");
        let s = slots.lock().unwrap();
        assert_eq!((s.total, s.unprivileged), (others.len() + 1, others.len() + 1));
    }
}
