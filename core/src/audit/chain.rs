use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::canonical::write_canonical;
use crate::error::AuditError;
use crate::model::{Action, AuditEvent, AuditRecord, Decision, GENESIS_HASH, Layer, Outcome};

/// An [`AuditRecord`] without its `hash`: the value the hash covers. Keep in step with
/// [`AuditRecord`] (a unit test checks the two agree).
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    id: &'a str,
    ts: &'a str,
    agent_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    layer: Layer,
    action: &'a Action,
    decision: &'a Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome>,
    prev_hash: &'a str,
}

/// `hex(SHA-256(prev_hash ‖ JCS(record without "hash")))`, using `scratch` as a buffer.
pub fn record_hash(record: &AuditRecord, scratch: &mut Vec<u8>) -> Result<String, AuditError> {
    let body = Body {
        seq: record.seq,
        id: &record.id,
        ts: &record.ts,
        agent_id: &record.agent_id,
        session_id: record.session_id.as_deref(),
        layer: record.layer,
        action: &record.action,
        decision: &record.decision,
        outcome: record.outcome.as_ref(),
        prev_hash: &record.prev_hash,
    };
    scratch.clear();
    write_canonical(&body, scratch)?;
    let mut h = Sha256::new();
    h.update(record.prev_hash.as_bytes());
    h.update(scratch.as_slice());
    Ok(hex::encode(h.finalize()))
}

/// The head of a chain: turns events into linked records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    last_hash: String,
    scratch: Vec<u8>,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// An empty chain: the next record is seq 1 with the genesis `prev_hash`.
    pub fn new() -> Self {
        Chain::resume(0, GENESIS_HASH.to_owned())
    }

    /// A chain whose last record was `last_seq` with hash `last_hash`.
    pub fn resume(last_seq: u64, last_hash: String) -> Self {
        Chain {
            next_seq: last_seq.saturating_add(1),
            last_hash,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Seq of the last record (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Hash of the last record (the genesis hash when empty).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Appends `event` to the chain.
    pub fn link(&mut self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let mut record = AuditRecord {
            seq: self.next_seq,
            id: event.id,
            ts: event.ts,
            agent_id: event.agent_id,
            session_id: event.session_id,
            layer: event.layer,
            action: event.action,
            decision: event.decision,
            outcome: event.outcome,
            prev_hash: std::mem::take(&mut self.last_hash),
            hash: String::new(),
        };
        match record_hash(&record, &mut self.scratch) {
            Ok(hash) => {
                record.hash = hash;
                self.last_hash.clone_from(&record.hash);
                self.next_seq = self.next_seq.saturating_add(1);
                Ok(record)
            }
            Err(e) => {
                self.last_hash = record.prev_hash;
                Err(e)
            }
        }
    }
}
