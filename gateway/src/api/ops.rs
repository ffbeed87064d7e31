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

/// Who a token belongs to (the proxy checks agent credentials with it).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WhoAmI {
    /// `admin` or `agent`.
    pub role: String,
    /// The agent, for an agent token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent's team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The agent's labels.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The caller's identity (with team and labels for an agent).
pub async fn whoami(State(state): State<Arc<AppState>>, Auth(caller): Auth) -> Json<WhoAmI> {
    Json(match caller {
        crate::auth::Caller::Admin => WhoAmI {
            role: "admin".into(),
            agent_id: None,
            team: None,
            labels: Default::default(),
        },
        crate::auth::Caller::Agent(id) => {
            let agent = state.agent(&id);
            WhoAmI {
                role: "agent".into(),
                agent_id: Some(id),
                team: agent.team,
                labels: agent.labels,
            }
        }
    })
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
