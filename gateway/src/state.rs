//! Shared state of the running gateway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aa_core::{Agent, AuditRecord, Engine, Environment};
use tokio::sync::broadcast;

use crate::auth::{Caller, Tokens};
use crate::error::ApiError;
use crate::hub::PolicyHub;
use crate::metrics::Metrics;
use crate::replicas::Replicas;
use crate::store::{AgentRow, Store};
use crate::writer::Writer;

/// Why a stale replica refuses.
pub const STALE_MESSAGE: &str =
    "this replica cannot confirm its configuration with the database; retry (or another replica)";

/// Everything a handler needs.
pub struct AppState {
    /// Decides in remote mode; holds the shared budget ledger.
    pub engine: Arc<Engine>,
    /// Policy changes and their announcements.
    pub hub: PolicyHub,
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// The one audit writer.
    pub writer: Writer,
    /// Token verification.
    pub tokens: RwLock<Tokens>,
    /// Registered agents by id (shared with the audit writer, which charges budgets).
    pub agents: Arc<RwLock<HashMap<String, AgentRow>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// New records, for SSE streams.
    pub records: broadcast::Sender<Arc<AuditRecord>>,
    /// Hex Ed25519 public key of the checkpoint signer.
    pub public_key: String,
    /// Clock and ids.
    pub env: Arc<dyn Environment>,
    /// The link to the other replicas (PostgreSQL); `None` for a single gateway.
    pub replicas: Option<Arc<Replicas>>,
}

impl AppState {
    /// The caller of a request, from its bearer token.
    pub fn caller(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        let token = token.ok_or_else(ApiError::unauthorized)?;
        let caller = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .caller(token)
            .ok_or_else(ApiError::unauthorized)?;
        // A replica out of step with the database may hold a revoked token: agents wait.
        if matches!(caller, Caller::Agent(_)) && !self.fresh() {
            return Err(ApiError::unavailable(STALE_MESSAGE));
        }
        Ok(caller)
    }

    /// Whether this gateway's policy, registry and kill switch are known to be current (always
    /// for a single gateway; for a replica, confirmed against the database lately).
    pub fn fresh(&self) -> bool {
        self.replicas.as_ref().is_none_or(|r| r.fresh())
    }

    /// After a change to the policy, registry or kill switch: returns once it is in force on
    /// every replica (at once for a single gateway).
    pub async fn in_step(&self) {
        if let Some(r) = &self.replicas {
            r.await_in_step().await;
        }
    }

    /// The registered agent, or a bare one for an unregistered id.
    pub fn agent(&self, agent_id: &str) -> Agent {
        agent_of(&self.agents, agent_id)
    }
}

/// The registered agent `agent_id` (its team and labels), or a bare one for an unregistered id.
pub fn agent_of(agents: &RwLock<HashMap<String, AgentRow>>, agent_id: &str) -> Agent {
    match agents
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(agent_id)
    {
        Some(row) => Agent {
            agent_id: row.agent_id.clone(),
            labels: row.labels.clone(),
            session_id: None,
            team: row.team.clone(),
        },
        None => Agent::new(agent_id),
    }
}

/// Only the admin.
pub fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Agent(_) => Err(ApiError::forbidden("this route needs the admin token")),
    }
}

/// The admin, or the agent `agent_id` itself.
pub fn require_self(caller: &Caller, agent_id: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Agent(id) if id == agent_id => Ok(()),
        Caller::Agent(id) => Err(ApiError::forbidden(format!(
            "the token of agent `{id}` cannot act as agent `{agent_id}`"
        ))),
    }
}
