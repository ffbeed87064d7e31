//! `POST /v1/decide`: remote mode — the gateway decides, with the shared budgets, and records
//! the decision in the audit chain.

use std::sync::Arc;
use std::time::Instant;

use aa_core::wire::DecideRequest;
use aa_core::{Action, Agent, Decision, Effect, Layer, Reason};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::Auth;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::metrics::DecisionLabels;
use crate::state::{AppState, STALE_MESSAGE, require_self};

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
    let (mut decision, charged) = match &state.replicas {
        None => {
            let decision = state.engine.evaluate(&agent, &req.action, layer);
            // An allowed call that charged a budget is answered only once the charge is
            // durable (with its record, in one transaction), so neither a restart nor kill -9
            // gives the budget back.
            let charged = decision.is_allowed()
                && state.engine.policy().is_some_and(|p| {
                    let kind = req.action.kind();
                    p.budgets()
                        .rules
                        .iter()
                        .any(|r| r.key_for(&agent, kind).is_some())
                });
            (decision, charged)
        }
        Some(_) => decide_replicated(&state, &agent, &req.action, layer).await,
    };
    state
        .metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    let event = state
        .engine
        .event(&agent, &req.action, layer, &decision, None);
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

/// A replica decides against its policy and the budgets in the database: the policy is
/// evaluated without the local ledger charging, then an allowed call is charged from a leased
/// slice ([`crate::leases`]) or exactly in one transaction
/// ([`crate::store::PgStore::try_charge`]), so no interleaving of replicas allows past a limit.
/// A replica out of step with the database, or a charge the database cannot confirm, fails
/// closed. Returns the decision and whether its record must be durable before the answer: after
/// an exact charge, as on a single gateway; a call spent from a lease was charged durably when
/// the slice was leased, so its record is queued like any other decision's (and a full queue
/// answers `unavailable`).
async fn decide_replicated(
    state: &Arc<AppState>,
    agent: &Agent,
    action: &Action,
    layer: Layer,
) -> (Decision, bool) {
    let Some(replicas) = &state.replicas else {
        return (state.engine.evaluate(agent, action, layer), false);
    };
    let policy = state.engine.policy();
    let mut decision = state.engine.preview(agent, action, layer);
    if !state.fresh() {
        return (unavailable(state, &decision, STALE_MESSAGE.into()), false);
    }
    let charges = match &policy {
        Some(p) if decision.is_allowed() => {
            crate::budget::charges(p, agent, action.kind(), state.env.now_ms())
        }
        _ => Vec::new(),
    };
    if charges.is_empty() {
        return (decision, false);
    }
    // One counter with a call limit: spend a leased slice, or lease one; near the limit (no
    // slice granted) charge exactly.
    if let Some(charge) = crate::leases::leasable(&charges) {
        if replicas.leases().spend(charge) {
            return (decision, false);
        }
        let (store, wanted) = (replicas.store().clone(), charge.clone());
        match tokio::task::spawn_blocking(move || store.lease(&wanted)).await {
            Ok(Ok(Some(granted))) => {
                if let Some(old) = replicas.leases().add(charge, granted) {
                    let r = replicas.clone();
                    tokio::task::spawn_blocking(move || r.return_unspent(&[old]));
                }
                return (decision, false);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                state.metrics.store_errors.inc();
                tracing::error!(error = %e, "budget lease failed");
                let message = "the budget cannot be charged: storage is unavailable".to_owned();
                return (unavailable(state, &decision, message), false);
            }
            Err(e) => {
                tracing::error!(error = %e, "budget lease task failed");
                let message = "the budget cannot be charged".to_owned();
                return (unavailable(state, &decision, message), false);
            }
        }
    }
    let store = replicas.store().clone();
    match tokio::task::spawn_blocking(move || store.try_charge(&charges)).await {
        Ok(Ok(Ok(rows))) => {
            // The counters as the database has them now, for `context.budget`.
            state.engine.ledger().restore(rows);
            (decision, true)
        }
        Ok(Ok(Err(breach))) => {
            decision.effect = Effect::Deny;
            decision.reason = Reason::BudgetExceeded;
            decision.message = breach.to_string();
            decision.budget = Some(breach.budget);
            decision.policy_ids.clear();
            (decision, false)
        }
        Ok(Err(e)) => {
            state.metrics.store_errors.inc();
            tracing::error!(error = %e, "budget charge failed");
            let message = "the budget cannot be charged: storage is unavailable".to_owned();
            (unavailable(state, &decision, message), false)
        }
        Err(e) => {
            tracing::error!(error = %e, "budget charge task failed");
            let message = "the budget cannot be charged".to_owned();
            (unavailable(state, &decision, message), false)
        }
    }
}

fn unavailable(state: &AppState, decision: &Decision, message: String) -> Decision {
    Decision::unavailable(
        state.env.new_id(),
        message,
        decision.policy_version.clone(),
        false,
    )
}
