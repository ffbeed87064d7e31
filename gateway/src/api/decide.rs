//! `POST /v1/decide`: remote mode — the gateway decides, with the shared budgets, and records
//! the decision in the audit chain.

use std::sync::Arc;
use std::time::Instant;

use aa_core::wire::DecideRequest;
use aa_core::{Decision, Layer};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::Auth;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::metrics::DecisionLabels;
use crate::state::{AppState, require_self};

/// Decides an action for the caller (an agent token may only decide as itself).
pub async fn decide(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: Result<Json<DecideRequest>, JsonRejection>,
) -> ApiResult<Json<Decision>> {
    let Json(req) = body?;
    let spec = req.agent.agent();
    require_self(&caller, &spec.agent_id)?;
    let mut agent = state.agent(&spec.agent_id);
    agent.session_id = spec.session_id.clone();
    if matches!(caller, Caller::Admin)
        && !state
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&spec.agent_id)
    {
        // The admin may decide for unregistered agents, as described in the request.
        agent = spec;
    }
    let layer = req.layer.unwrap_or(Layer::Sdk);
    let started = Instant::now();
    let mut decision = state.engine.evaluate(&agent, &req.action, layer);
    state
        .metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    let event = state
        .engine
        .event(&agent, &req.action, layer, &decision, None);
    // An allowed call that charged a budget is answered only once the charge is durable (with
    // its record, in one transaction), so neither a restart nor kill -9 gives the budget back.
    let charged = decision.is_allowed()
        && state.engine.policy().is_some_and(|p| {
            let kind = req.action.kind();
            p.budgets()
                .rules
                .iter()
                .any(|r| r.key_for(&agent, kind).is_some())
        });
    let recorded = if charged {
        state.writer.append(vec![event]).await.map(|_| ())
    } else {
        state.writer.enqueue(event)
    };
    if let Err(e) = recorded {
        // No audit record, no action: fail closed.
        decision = Decision::unavailable(
            decision.decision_id,
            format!("the decision cannot be recorded: {e}"),
            decision.policy_version,
            false,
        );
    }
    state
        .metrics
        .decisions
        .get_or_create(&DecisionLabels {
            effect: decision.effect.as_str().to_owned(),
            reason: decision.reason.as_str().to_owned(),
            layer: layer.as_str().to_owned(),
        })
        .inc();
    Ok(Json(decision))
}
