use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::canonical::write_canonical;
use crate::error::AuditError;
use crate::model::{Action, AuditEvent, AuditRecord, Decision, GENESIS_HASH, Layer, Outcome};

/// An [`AuditRecord`] without its `hash`: the value the hash covers. Fields in JCS order (the
/// canonical writer then need not sort them). Keep in step with
/// [`AuditRecord`]; `tests/model.rs` checks that the two agree.
#[derive(Serialize)]
struct Body<'a> {
    action: &'a Action,
    agent_id: &'a str,
    decision: &'a Decision,
    id: &'a str,
    layer: Layer,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome>,
    prev_hash: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    ts: &'a str,
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
    Ok(hex64(&h.finalize()))
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
        self.link_inner(event, None)
    }

    /// Appends `event` to the chain and writes the record's canonical JSON line (without the
    /// newline) to `line`.
    pub fn link_line(
        &mut self,
        event: AuditEvent,
        line: &mut Vec<u8>,
    ) -> Result<AuditRecord, AuditError> {
        self.link_inner(event, Some(line))
    }

    fn link_inner(
        &mut self,
        event: AuditEvent,
        line: Option<&mut Vec<u8>>,
    ) -> Result<AuditRecord, AuditError> {
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
        let hashed = record_hash(&record, &mut self.scratch).and_then(|hash| {
            record.hash = hash;
            if let Some(line) = line {
                line.clear();
                write_canonical(&record, line)?;
            }
            Ok(())
        });
        match hashed {
            Ok(()) => {
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

/// Lowercase hex of a SHA-256 digest.
pub(crate) fn hex64(digest: &[u8]) -> String {
    let mut buf = [0u8; 64];
    match hex::encode_to_slice(digest, &mut buf) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => hex::encode(digest),
    }
}
