//! `agentctl diagnose --level N [ID]` on the socket: POST /api/v1/diagnostics starts a run of the
//! diagnostics of level N and below (a change: root and the control group only, as the tools may disturb
//! a device), GET /api/v1/diagnostics/runs/{id} says where it stands until every result is in.

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::peer::Peer;
use super::{Control, Failure, failure};
use crate::effects::journal::{Event, Severity, kind};
use crate::model::diagnostics::RequestError;
use crate::model::operator::OperatorError;
use crate::publish::http::json;

/// Queues the run on the model and answers with its first state (202: results come later).
pub(super) async fn start(
    control: &Control,
    level: Option<usize>,
    device: Option<String>,
    peer: &Peer,
) -> Response<Full<Bytes>> {
    let Some(level) = level.and_then(|l| u8::try_from(l).ok()) else {
        return failure(StatusCode::BAD_REQUEST, "diagnostics need a level: 1 (quick), 2 (medium) or 3 (deep)");
    };
    let live = control.live.load_full();
    let target = device.clone();
    let started = live
        .evidence
        .run(move |engine, _, _| {
            let run = engine.request_diagnostics(level, target.as_deref()).map(|id| engine.diagnostic_run(id));
            (run, Vec::new())
        })
        .await;
    let run = match started {
        None => return failure(StatusCode::SERVICE_UNAVAILABLE, "the agent is shutting down"),
        Some(Err(e)) => return request_failure(e),
        Some(Ok(run)) => run,
    };
    let Some(run) = run else { return failure(StatusCode::INTERNAL_SERVER_ERROR, "the run was not kept") };
    let on = device.as_deref().map_or_else(|| "every device".to_owned(), |d| format!("device {d}"));
    let message = format!("diagnostics of level {level} and below requested on {on} (by {})", peer.describe());
    tracing::info!("{message}");
    let event = Event::new(SystemTime::now(), Severity::Info, kind::OPERATOR, message);
    control.events.record(match &device {
        Some(d) => event.on_device(d),
        None => event,
    });
    json(StatusCode::ACCEPTED, &run)
}

/// Where run `id` stands.
pub(super) async fn state(control: &Control, id: &str) -> Response<Full<Bytes>> {
    let Ok(id) = id.parse::<u64>() else { return failure(StatusCode::BAD_REQUEST, format!("no run {id:?}")) };
    let live = control.live.load_full();
    match live.evidence.run(move |engine, _, _| (engine.diagnostic_run(id), Vec::new())).await {
        None => failure(StatusCode::SERVICE_UNAVAILABLE, "the agent is shutting down"),
        Some(None) => failure(StatusCode::NOT_FOUND, format!("no run {id} (the agent keeps the last 64)")),
        Some(Some(run)) => json(StatusCode::OK, &run),
    }
}

fn request_failure(e: RequestError) -> Response<Full<Bytes>> {
    match e {
        RequestError::Device(OperatorError::UnknownDevice { ref known, .. }) => {
            json(StatusCode::NOT_FOUND, &Failure { error: e.to_string(), known: known.clone(), group: None })
        }
        RequestError::Level(_) => failure(StatusCode::BAD_REQUEST, e.to_string()),
        RequestError::Device(_) | RequestError::Disabled | RequestError::NoneConfigured { .. } => {
            failure(StatusCode::CONFLICT, e.to_string())
        }
    }
}
