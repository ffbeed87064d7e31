use serde::{Deserialize, Serialize};

use super::{Action, Decision, Layer, Outcome};

/// `prev_hash` of the first record of a chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event before it is chained: what a layer reports.
///
/// The gateway (or the local audit file) gives it a `seq`, `prev_hash` and `hash`, turning it
/// into an [`AuditRecord`]. `id` makes shipping idempotent: a replayed event is stored once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// What was attempted.
    pub action: Action,
    /// The agent.
    pub agent_id: String,
    /// What was decided.
    pub decision: Decision,
    /// Unique event id (UUIDv7).
    pub id: String,
    /// Who saw it.
    pub layer: Layer,
    /// What happened, for events reported after an allowed action ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The agent's session, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When it was decided or completed, RFC 3339 UTC with milliseconds.
    pub ts: String,
}

/// One link of the hash chain.
///
/// `hash = SHA-256(prev_hash ‖ JCS(record without "hash"))`, hex-encoded; see
/// [`crate::audit::record_hash`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// What was attempted.
    pub action: Action,
    /// The agent.
    pub agent_id: String,
    /// What was decided.
    pub decision: Decision,
    /// This record's hash.
    pub hash: String,
    /// Event id, see [`AuditEvent::id`].
    pub id: String,
    /// Who saw it.
    pub layer: Layer,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Hash of the previous record ([`GENESIS_HASH`] for seq 1).
    pub prev_hash: String,
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The agent's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// See [`AuditEvent::ts`].
    pub ts: String,
}

impl AuditRecord {
    /// The event this record carries.
    pub fn event(&self) -> AuditEvent {
        AuditEvent {
            id: self.id.clone(),
            ts: self.ts.clone(),
            agent_id: self.agent_id.clone(),
            session_id: self.session_id.clone(),
            layer: self.layer,
            action: self.action.clone(),
            decision: self.decision.clone(),
            outcome: self.outcome.clone(),
        }
    }
}

/// A signed statement that the chain up to `seq` ends in `hash`.
///
/// The signature is Ed25519 over `JCS({"hash","public_key","seq","ts"})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// That record's hash.
    pub hash: String,
    /// Hex Ed25519 public key of the signer.
    pub public_key: String,
    /// Last record covered.
    pub seq: u64,
    /// Hex Ed25519 signature.
    pub signature: String,
    /// When the checkpoint was made.
    pub ts: String,
}
