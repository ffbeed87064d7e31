use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::canonical::write_canonical;
use crate::error::AuditError;
use crate::model::{Action, AuditEvent, AuditRecord, Decision, GENESIS_HASH, Layer, Outcome};

/// The members of an [`AuditRecord`] that sort before `hash`, in JCS order (the canonical
/// writer then need not sort them). Keep in step with [`AuditRecord`]; `tests/model.rs` checks
/// that the two agree.
#[derive(Serialize)]
struct Head<'a> {
    action: &'a Action,
    agent_id: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    combined: bool,
    decision: &'a Decision,
}

/// The members of an [`AuditRecord`] that sort after `hash`, in JCS order.
#[derive(Serialize)]
struct Tail<'a> {
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

/// Writes `JCS(record without "hash")` to `out` (cleared first) and returns the offset where
/// `hash` belongs: `out[..at]` holds the members before it, `out[at..]` starts with the `,`
/// before `id`. So the record's own line is `out[..at]`, `,"hash":"…"`, `out[at..]`, and the
/// members are serialised once for both the hash and the line.
fn write_body(record: &AuditRecord, out: &mut Vec<u8>) -> Result<usize, AuditError> {
    out.clear();
    let head = Head {
        action: &record.action,
        agent_id: &record.agent_id,
        combined: record.combined,
        decision: &record.decision,
    };
    write_canonical(&head, out)?;
    out.pop(); // the head's closing brace
    let at = out.len();
    let tail = Tail {
        id: &record.id,
        layer: record.layer,
        outcome: record.outcome.as_ref(),
        prev_hash: &record.prev_hash,
        seq: record.seq,
        session_id: record.session_id.as_deref(),
        ts: &record.ts,
    };
    write_canonical(&tail, out)?;
    // The tail's opening brace becomes the comma that joins the two member lists.
    if let Some(brace) = out.get_mut(at) {
        *brace = b',';
    }
    Ok(at)
}

/// `hex(SHA-256(prev_hash ‖ body))` for a body written by [`write_body`].
fn hash_body(prev_hash: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(body);
    hex64(&h.finalize())
}

/// `hex(SHA-256(prev_hash ‖ JCS(record without "hash")))`, using `scratch` as a buffer.
pub fn record_hash(record: &AuditRecord, scratch: &mut Vec<u8>) -> Result<String, AuditError> {
    write_body(record, scratch)?;
    Ok(hash_body(&record.prev_hash, scratch))
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
            combined: event.combined,
            session_id: event.session_id,
            layer: event.layer,
            action: event.action,
            decision: event.decision,
            outcome: event.outcome,
            prev_hash: std::mem::take(&mut self.last_hash),
            hash: String::new(),
        };
        let hashed = write_body(&record, &mut self.scratch).map(|at| {
            record.hash = hash_body(&record.prev_hash, &self.scratch);
            if let Some(line) = line {
                const KEY: &[u8] = b",\"hash\":\"";
                let (head, tail) = self.scratch.split_at(at);
                line.clear();
                line.reserve(head.len() + KEY.len() + record.hash.len() + 1 + tail.len());
                line.extend_from_slice(head);
                line.extend_from_slice(KEY);
                line.extend_from_slice(record.hash.as_bytes());
                line.push(b'"');
                line.extend_from_slice(tail);
            }
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
