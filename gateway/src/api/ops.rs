//! `GET /v1/budgets`, `GET /metrics`, `GET /healthz`.

use std::sync::Arc;

use aa_core::budget::BudgetStatus;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

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

/// Health.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Active policy version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// Liveness and the active policy version.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        policy_version: state.engine.policy_version(),
    })
}
