//! `GET /v1/budgets`, `GET /metrics`, `GET /healthz`.

use std::sync::Arc;

use aa_core::budget::BudgetStatus;
use aa_core::wire::{Health, Role, WhoAmI};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::Auth;
use crate::error::ApiResult;
use crate::state::{AppState, require_admin};

/// Live usage against every budget of the active policy.
pub async fn budgets(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Vec<BudgetStatus>>> {
    require_admin(&caller)?;
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

/// Liveness and the active policy version.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        policy_version: state.engine.policy_version(),
    })
}
