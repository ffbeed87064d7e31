//! The HTTP API (docs/openapi.yaml).

pub mod agents;
pub mod audit;
pub mod decide;
pub mod events;
pub mod ops;
pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body accepted (an events batch of 1,000 records fits easily).
pub const MAX_BODY: usize = 8 << 20;

/// Builds the router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let timed = Router::new()
        .route("/v1/decide", post(decide::decide))
        .route("/v1/events", post(events::ingest))
        .route(
            "/v1/policy",
            get(policy::get_policy).put(policy::put_policy),
        )
        .route("/v1/agents", get(agents::list).post(agents::register))
        .route("/v1/agents/{id}/suspend", post(agents::suspend))
        .route("/v1/agents/{id}/resume", post(agents::resume))
        .route("/v1/agents/{id}/revoke", post(agents::revoke))
        .route("/v1/agents/{id}/announcements", get(agents::announcements))
        .route("/v1/announce", post(agents::announce))
        .route("/v1/budgets", get(ops::budgets))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/checkpoints", get(audit::checkpoints))
        .route("/v1/audit/public-key", get(audit::public_key))
        .route("/v1/whoami", get(ops::whoami))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        // Long polls wait up to 55 s; nothing else should come near this.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(65),
        ));
    Router::new()
        .route("/v1/audit/stream", get(audit::stream))
        .merge(timed)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        state.caller(token).map(Auth)
    }
}
