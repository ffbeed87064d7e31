//! Agent registry and the kill switch.

use std::sync::Arc;

use aa_core::wire::{AgentInfo, Announced, Announcement, RegisterRequest, Registered};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::Auth;
use crate::auth::{new_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, require_admin};
use crate::store::AgentRow;

impl From<&AgentRow> for AgentInfo {
    fn from(r: &AgentRow) -> Self {
        AgentInfo {
            agent_id: r.agent_id.clone(),
            team: r.team.clone(),
            labels: r.labels.clone(),
            suspended: r.suspended,
            created_ms: r.created_ms,
        }
    }
}

/// Admin: the registered agents.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Vec<AgentInfo>>> {
    require_admin(&caller)?;
    let agents = state.agents.read().unwrap_or_else(|p| p.into_inner());
    let mut out: Vec<AgentInfo> = agents.values().map(AgentInfo::from).collect();
    out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    Ok(Json(out))
}

/// Admin: register an agent; its token is returned once.
pub async fn register(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: Result<Json<RegisterRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    require_admin(&caller)?;
    let Json(req) = body?;
    aa_core::Agent::validate_registered_id(&req.agent_id)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut candidate = aa_core::Agent::new(req.agent_id.clone());
    candidate.team = req.team.clone();
    candidate.labels = req.labels.clone();
    candidate
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Under the hub's lock: a registration racing a kill-switch flip keeps the flip, and two
    // registrations of one id cannot both succeed.
    let st = state.clone();
    let (info, token) = tokio::task::spawn_blocking(move || {
        let state = &st;
        state.hub.with_suspended(|suspended| {
            let conflict = || {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!(
                        "agent `{}` is already registered (pass \"rotate\": true for a new token)",
                        req.agent_id
                    ),
                )
            };
            let token = new_token().map_err(ApiError::internal)?;
            let hash = token_hash(&token);
            // A rotation changes the stored row in one transaction (keeping its creation time
            // and kill switch); a registration creates it only if no gateway has: so replicas
            // registering one id at once cannot both succeed.
            let rotated = if req.rotate {
                state.store.update_agent(&req.agent_id, &mut |row| {
                    row.team = req.team.clone();
                    row.labels = req.labels.clone();
                    row.token_hash = hash.clone();
                })?
            } else {
                None
            };
            let row = match rotated {
                Some(row) => row,
                None => {
                    let row = AgentRow {
                        agent_id: req.agent_id.clone(),
                        team: req.team.clone(),
                        labels: req.labels.clone(),
                        token_hash: hash.clone(),
                        suspended: suspended.contains(&req.agent_id),
                        created_ms: state.env.now_ms(),
                    };
                    if !state.store.create_agent(&row)? {
                        return Err(conflict());
                    }
                    row
                }
            };
            state
                .tokens
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .set_agent(&row.agent_id, &row.token_hash);
            let info = AgentInfo::from(&row);
            state
                .agents
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(row.agent_id.clone(), row);
            Ok::<_, ApiError>((info, token))
        })
    })
    .await
    .map_err(ApiError::internal)??;
    state.in_step().await;
    tracing::info!(agent_id = %info.agent_id, "agent registered");
    Ok((StatusCode::CREATED, Json(Registered { agent: info, token })))
}

/// Admin: revoke the agent's token at once (requests with it get 401, after a restart too);
/// `register` with `rotate` issues a new one. Records and the kill switch are unchanged.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentInfo>> {
    require_admin(&caller)?;
    let st = state.clone();
    let agent_id = id.clone();
    // Under the hub's lock, like registration, so a revoke and a rotate cannot interleave.
    let row = tokio::task::spawn_blocking(move || {
        st.hub.with_suspended(|_| {
            let row = update_agent(&st, &agent_id, |row| row.token_hash.clear())?;
            st.tokens
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .revoke(&agent_id);
            Ok::<_, ApiError>(row)
        })
    })
    .await
    .map_err(ApiError::internal)??;
    let info = AgentInfo::from(&row);
    state.in_step().await;
    tracing::info!(agent_id = %id, "agent token revoked");
    Ok(Json(info))
}

/// Changes the registered agent `id` in the store (read, change and write in one transaction,
/// so changes through other replicas are not lost), then in memory (the caller holds the hub's
/// lock, so changes land in one order). `not_found` for an unknown id.
fn update_agent(
    state: &AppState,
    id: &str,
    mut change: impl FnMut(&mut AgentRow),
) -> Result<AgentRow, ApiError> {
    let row = state
        .store
        .update_agent(id, &mut change)?
        .ok_or_else(|| ApiError::not_found(format!("no agent `{id}`")))?;
    state
        .agents
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(row.agent_id.clone(), row.clone());
    Ok(row)
}

async fn set_suspended(
    state: Arc<AppState>,
    id: String,
    suspended: bool,
) -> ApiResult<Json<AgentInfo>> {
    let hub_state = state.clone();
    let agent_id = id.clone();
    // The row is written under the hub's lock, so rows and the effective bundle change in the
    // same order however requests interleave.
    let (row, _) = tokio::task::spawn_blocking(move || {
        let st = &hub_state;
        st.hub.set_suspended(&agent_id, suspended, || {
            update_agent(st, &agent_id, |row| row.suspended = suspended)
        })
    })
    .await
    .map_err(ApiError::internal)??;
    state.in_step().await;
    state.metrics.policy_reloads.inc();
    tracing::info!(agent_id = %id, suspended, "kill switch");
    Ok(Json(AgentInfo::from(&row)))
}

/// Admin: kill switch on.
pub async fn suspend(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentInfo>> {
    require_admin(&caller)?;
    set_suspended(state, id, true).await
}

/// Admin: kill switch off.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentInfo>> {
    require_admin(&caller)?;
    set_suspended(state, id, false).await
}

/// An agent's SDK announces itself (its own token only); kept in the store, so any replica
/// can list it.
pub async fn announce(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    body: Result<Json<Announcement>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let crate::auth::Caller::Agent(agent_id) = caller else {
        return Err(ApiError::forbidden(
            "an SDK announces itself with its agent's token",
        ));
    };
    let Json(announcement) = body?;
    for (field, value) in [
        ("runtime", &announcement.runtime),
        ("version", &announcement.version),
    ] {
        if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "{field}: 1 to 128 printable characters"
            )));
        }
    }
    let announced = Announced {
        agent_id,
        at_ms: state.env.now_ms(),
        announcement,
    };
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.put_announcement(&announced))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??;
    Ok(StatusCode::NO_CONTENT)
}

/// Admin: the latest SDK announcements of an agent, oldest first.
pub async fn announcements(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<Vec<Announced>>> {
    require_admin(&caller)?;
    let store = state.store.clone();
    let list = tokio::task::spawn_blocking(move || store.announcements(&agent_id))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??;
    Ok(Json(list))
}
