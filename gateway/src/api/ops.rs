//! `GET /v1/budgets`, `GET /metrics`, `GET /healthz`.

use std::sync::Arc;

use aa_core::budget::BudgetStatus;
use aa_core::wire::{Health, Role, WhoAmI};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, require_admin};

/// Live usage against every budget of the active policy.
pub async fn budgets(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Vec<BudgetStatus>>> {
    require_admin(&caller)?;
    if state.replicas.is_some() {
        // Replicas charge the counters in the database: read them there, not a mirror that
        // lags by up to a poll.
        let store = state.store.clone();
        let rows = tokio::task::spawn_blocking(move || store.usage())
            .await
            .map_err(ApiError::internal)??;
        state.engine.ledger().set(rows);
    }
    Ok(Json(state.engine.budget_status()))
}

/// Prometheus / OpenMetrics text.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The caller's identity (with team and labels for an agent).
pub async fn whoami(State(state): State<Arc<AppState>>, Auth(caller): Auth) -> Json<WhoAmI> {
    Json(match caller {
        crate::auth::Caller::Admin => WhoAmI {
            role: Role::Admin,
            agent_id: None,
            team: None,
            labels: Default::default(),
        },
        crate::auth::Caller::Agent(id) => {
            let agent = state.agent(&id);
            WhoAmI {
                role: Role::Agent,
                agent_id: Some(id),
                team: agent.team,
                labels: agent.labels,
            }
        }
    })
}

/// Liveness and the active policy version. A replica out of step with the database answers
/// 503 `stale` (it refuses agents and decisions then): a load balancer takes it out.
pub async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    let fresh = state.fresh();
    (
        if fresh {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if fresh { "ok" } else { "stale" }.into(),
            policy_version: state.engine.policy_version(),
        }),
    )
}
