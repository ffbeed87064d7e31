//! `POST /v1/events`: batches of audit events from the layers. Idempotent by event id: a
//! replayed batch is acknowledged without storing anything twice. Acknowledged means committed.

use std::sync::Arc;

use aa_core::AuditEvent;
use aa_core::wire::{EventsRequest, EventsResponse, MAX_EVENTS, Rejection};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, require_self};

/// Stores a batch of events (an agent token may only report its own).
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: Result<Json<EventsRequest<'static>>, JsonRejection>,
) -> ApiResult<Json<EventsResponse>> {
    let Json(req) = body?;
    if req.events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_EVENTS} events per batch"
        )));
    }
    // A token reporting for another agent is refused as a whole: that is an identity error.
    for e in req.events.iter() {
        require_self(&caller, &e.agent_id)?;
    }
    // An invalid event is refused alone, with its reason; the valid ones are stored.
    let (events, rejected): (Vec<AuditEvent>, Vec<Rejection>) = req
        .events
        .into_owned()
        .into_iter()
        .fold((Vec::new(), Vec::new()), |(mut ok, mut bad), e| {
            match invalid(&e) {
                Some(reason) => bad.push(Rejection { id: e.id, reason }),
                None => ok.push(e),
            }
            (ok, bad)
        });
    // The writer charges what new events report, in the transaction that stores them.
    let acks = if events.is_empty() {
        Vec::new()
    } else {
        state.writer.ingest(events).await?
    };
    let accepted = acks.iter().filter(|a| !a.duplicate).count();
    let duplicates = acks.len() - accepted;
    state.metrics.events_ingested.inc_by(accepted as u64);
    state.metrics.events_duplicate.inc_by(duplicates as u64);
    Ok(Json(EventsResponse {
        accepted,
        duplicates,
        acks,
        rejected,
    }))
}

/// Why `e` cannot be stored, if it cannot.
fn invalid(e: &AuditEvent) -> Option<String> {
    if e.id.is_empty() || e.id.len() > 128 {
        return Some("event ids must be 1 to 128 characters".into());
    }
    if e.combined && e.outcome.is_none() {
        return Some("a combined event carries its outcome".into());
    }
    aa_core::Agent::new(e.agent_id.clone())
        .validate()
        .and_then(|()| e.action.validate())
        .err()
        .map(|err| err.to_string())
}
