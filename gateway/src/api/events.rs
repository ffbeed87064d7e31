//! `POST /v1/events`: batches of audit events from the layers. Idempotent by event id: a
//! replayed batch is acknowledged without storing anything twice. Acknowledged means committed.

use std::sync::Arc;

use aa_core::wire::{EventsRequest, EventsResponse};
use aa_core::{Action, Effect};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, require_self};

/// Most events in one batch.
pub const MAX_EVENTS: usize = 1000;

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
    for e in req.events.iter() {
        require_self(&caller, &e.agent_id)?;
        aa_core::Agent::new(e.agent_id.clone())
            .validate()
            .and_then(|()| e.action.validate())
            .map_err(|err| ApiError::bad_request(format!("event {}: {err}", e.id)))?;
        if e.id.is_empty() || e.id.len() > 128 {
            return Err(ApiError::bad_request(
                "event ids must be 1 to 128 characters",
            ));
        }
    }
    let events = req.events.into_owned();
    let acks = state.writer.append(events.clone()).await?;
    let mut accepted = 0;
    let now = state.env.now_ms();
    let policy = state.engine.policy();
    for (event, ack) in events.iter().zip(&acks) {
        if ack.duplicate {
            continue;
        }
        accepted += 1;
        // Charge what the layers report, once: calls decided locally, usage after the fact.
        if let Some(policy) = &policy {
            let rules = &policy.budgets().rules;
            let agent = state.agent(&event.agent_id);
            let kind = event.action.kind();
            match &event.outcome {
                None if event.decision.effect == Effect::Allow => {
                    state.engine.ledger().record_call(rules, &agent, kind, now);
                }
                Some(outcome) => {
                    if let Some(usage) = &outcome.usage {
                        let model = match &event.action {
                            Action::ModelCall { model, .. } => Some(model.as_str()),
                            _ => None,
                        };
                        let cost = policy.prices().cost_micros(model, usage).unwrap_or(0);
                        state.engine.ledger().charge_usage(
                            rules,
                            &agent,
                            kind,
                            usage.total_tokens(),
                            cost,
                            now,
                        );
                    }
                }
                None => {}
            }
        }
    }
    let duplicates = acks.len() - accepted;
    state.metrics.events_ingested.inc_by(accepted as u64);
    state.metrics.events_duplicate.inc_by(duplicates as u64);
    Ok(Json(EventsResponse {
        accepted,
        duplicates,
        acks,
    }))
}
