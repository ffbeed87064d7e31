//! `GET /v1/policy` (ETag, `If-None-Match`, long poll with `?wait=SECS`) and `PUT /v1/policy`.

use std::sync::Arc;
use std::time::Duration;

use aa_core::PolicyBundle;
use aa_core::wire::{PolicyDocument, PolicyVersion};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Auth;
use crate::error::{ApiError, ApiResult};
use crate::hub::HubError;
use crate::state::{AppState, require_admin};

/// Longest long poll.
const MAX_WAIT: u64 = 55;

/// Query of `GET /v1/policy`.
#[derive(Debug, Deserialize)]
pub struct PolicyQuery {
    /// With `If-None-Match`: wait up to this many seconds (max 55) for a new version.
    #[serde(default)]
    pub wait: Option<u64>,
}

fn etag(version: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

fn matches(headers: &HeaderMap, version: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/").trim_matches('"') == version)
        })
}

/// Any valid token: agents need the policy to decide locally.
pub async fn get_policy(
    State(state): State<Arc<AppState>>,
    Auth(_caller): Auth,
    headers: HeaderMap,
    query: Result<Query<PolicyQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let mut updates = state.hub.subscribe();
    let Some((_, mut version)) = state.hub.current() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_policy",
            "no policy is loaded; PUT /v1/policy",
        ));
    };
    if matches(&headers, &version) {
        let wait = q.wait.unwrap_or(0).min(MAX_WAIT);
        if wait > 0 {
            let changed = tokio::time::timeout(Duration::from_secs(wait), async {
                loop {
                    if updates.changed().await.is_err() {
                        return;
                    }
                    if *updates.borrow_and_update() != version {
                        return;
                    }
                }
            })
            .await;
            if changed.is_ok() {
                version = state.hub.current().map(|(_, v)| v).unwrap_or_default();
            }
        }
        if matches(&headers, &version) {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            resp.headers_mut().insert(header::ETAG, etag(&version));
            return Ok(resp);
        }
    }
    let (policy, version) = state
        .hub
        .current()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_policy", "no policy is loaded"))?;
    let doc = PolicyDocument {
        version: version.clone(),
        bundle: policy.bundle().clone(),
    };
    let mut resp = Json(doc).into_response();
    resp.headers_mut().insert(header::ETAG, etag(&version));
    Ok(resp)
}

/// Admin: replace the policy. A bundle that fails validation is rejected with Cedar's
/// diagnostics and the active one stays.
pub async fn put_policy(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: Result<Json<PolicyBundle>, JsonRejection>,
) -> ApiResult<Response> {
    require_admin(&caller)?;
    let Json(bundle) = body?;
    if !bundle.suspended.is_empty() {
        return Err(ApiError::bad_request(
            "`suspended` is managed with POST /v1/agents/{id}/suspend, not in the bundle",
        ));
    }
    let hub_state = state.clone();
    let result = tokio::task::spawn_blocking(move || hub_state.hub.install(bundle))
        .await
        .map_err(ApiError::internal)?;
    match result {
        Ok(version) => {
            state.in_step().await;
            state.metrics.policy_reloads.inc();
            tracing::info!(%version, "policy replaced");
            let mut resp = Json(PolicyVersion {
                version: version.clone(),
            })
            .into_response();
            resp.headers_mut().insert(header::ETAG, etag(&version));
            Ok(resp)
        }
        Err(HubError::Invalid(e)) => {
            let mut err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                e.to_string(),
            );
            err.details = Some(serde_json::json!({ "diagnostics": e.diagnostics() }));
            Err(err)
        }
        Err(HubError::Store(e)) => Err(e.into()),
    }
}
