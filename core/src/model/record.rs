use serde::{Deserialize, Serialize};

use super::{Action, Decision, Effect, Layer, Outcome};

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
    /// True when this is a decision's own event with its outcome added before it was shipped
    /// (one record instead of a decision record and an outcome record; see
    /// [`AuditEvent::combine`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub combined: bool,
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

impl AuditEvent {
    /// True when this event records its decision: a decision event, or one combined with its
    /// outcome. An outcome reported after a decision recorded elsewhere (by the gateway, in
    /// remote mode) is not.
    pub fn records_decision(&self) -> bool {
        records_decision(self.outcome.as_ref(), self.combined)
    }

    /// True when this event counts one call against the budgets: an allowed decision it
    /// records (a layer that decided itself).
    pub fn counts_call(&self) -> bool {
        self.decision.effect == Effect::Allow && self.records_decision()
    }

    /// Adds the outcome reported in `later` to this decision event, when `later` reports this
    /// very decision (same decision, action, agent, session and layer): the pair becomes one
    /// record, which keeps this event's id and time and says `combined`. Nothing is lost but
    /// the outcome event's own id and time (its `duration_us` says when it finished).
    /// Returns `None` when combined; otherwise `later` comes back untouched.
    #[must_use = "an event that did not combine is still to be recorded"]
    pub fn combine(&mut self, later: AuditEvent) -> Option<AuditEvent> {
        let same = self.decision.decision_id == later.decision.decision_id
            && self.outcome.is_none()
            && !self.combined
            && later.outcome.is_some()
            && !later.combined
            && self.decision.effect == Effect::Allow
            && self.layer == later.layer
            && self.agent_id == later.agent_id
            && self.session_id == later.session_id
            && self.decision == later.decision
            && self.action == later.action;
        if !same {
            return Some(later);
        }
        self.outcome = later.outcome;
        self.combined = true;
        None
    }
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
    /// See [`AuditEvent::combined`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub combined: bool,
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

/// See [`AuditEvent::records_decision`].
fn records_decision(outcome: Option<&Outcome>, combined: bool) -> bool {
    outcome.is_none() || combined
}

impl AuditRecord {
    /// See [`AuditEvent::records_decision`]: false for a record that only reports the outcome
    /// of a decision recorded before it.
    pub fn records_decision(&self) -> bool {
        records_decision(self.outcome.as_ref(), self.combined)
    }

    /// The event this record carries.
    pub fn event(&self) -> AuditEvent {
        AuditEvent {
            id: self.id.clone(),
            ts: self.ts.clone(),
            agent_id: self.agent_id.clone(),
            combined: self.combined,
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
