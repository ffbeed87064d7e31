use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{record_hash, verify_checkpoint};
use crate::canonical::write_canonical;
use crate::model::{AuditRecord, Checkpoint, GENESIS_HASH};

/// How many recent (seq, hash) pairs the verifier remembers to check checkpoints that trail
/// the head.
const RECENT: usize = 4096;

/// What kind of break the verifier found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A record's content does not hash to its `hash`: the record was edited.
    HashMismatch,
    /// A record's `prev_hash` is not the previous record's `hash`.
    BrokenLink,
    /// A seq is missing or repeated (records deleted, inserted or reordered).
    Gap,
    /// A line is not a record or checkpoint.
    Malformed,
    /// A line parses but is not the canonical encoding of what it holds (bytes were edited).
    NonCanonical,
    /// A checkpoint's signature does not verify.
    BadSignature,
    /// A checkpoint names a hash other than the chain's at that seq.
    CheckpointMismatch,
    /// A checkpoint refers to records that are not in the file: the tail was deleted.
    MissingRecords,
    /// A checkpoint is signed by a key other than the expected one.
    KeyMismatch,
    /// The last line is incomplete (torn write or truncation).
    TruncatedTail,
    /// Records after the last checkpoint (reported as a failure only in strict mode).
    Unsealed,
}

/// The first broken link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VerifyFailure {
    /// Seq of the record where the chain breaks (the expected seq at that position).
    pub seq: u64,
    /// 1-based line number in the file (0 when not reading a file).
    pub line: u64,
    /// What broke.
    pub kind: FailureKind,
    /// Details.
    pub detail: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {:?}: {}", self.seq, self.kind, self.detail)?;
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Options for [`Verifier`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Hex Ed25519 public key every checkpoint must be signed with. Without it, the key of the
    /// first checkpoint is trusted and must not change.
    pub public_key: Option<String>,
    /// Fail when records follow the last checkpoint.
    pub strict: bool,
}

/// The verifier's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VerifyReport {
    /// True if no break was found.
    pub ok: bool,
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Seq of the last valid record.
    pub last_seq: u64,
    /// Hash of the last valid record.
    pub last_hash: String,
    /// Highest seq covered by a valid checkpoint.
    pub sealed_seq: u64,
    /// Key that signed the checkpoints.
    pub public_key: Option<String>,
    /// The first break, if any.
    pub failure: Option<VerifyFailure>,
}

/// Checks a chain record by record; stops at the first break.
#[derive(Debug)]
pub struct Verifier {
    options: VerifyOptions,
    records: u64,
    checkpoints: u64,
    last_seq: u64,
    last_hash: String,
    sealed_seq: u64,
    key: Option<String>,
    recent: VecDeque<(u64, String)>,
    failure: Option<VerifyFailure>,
    scratch: Vec<u8>,
    canon: Vec<u8>,
    /// Checkpoints kept apart from the records (a store), checked as the chain reaches them.
    detached: VecDeque<Checkpoint>,
}

impl Verifier {
    /// A verifier expecting a chain from seq 1.
    pub fn new(options: VerifyOptions) -> Self {
        Verifier {
            key: options.public_key.clone(),
            options,
            records: 0,
            checkpoints: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            sealed_seq: 0,
            recent: VecDeque::with_capacity(RECENT),
            failure: None,
            scratch: Vec::with_capacity(1024),
            canon: Vec::with_capacity(1024),
            detached: VecDeque::new(),
        }
    }

    /// Also checks `checkpoints` (kept apart from the records, as a gateway's store keeps them):
    /// each one as soon as the chain reaches its seq, and those beyond the last record at
    /// [`Verifier::finish`], where they show that records went missing.
    pub fn with_checkpoints(mut self, mut checkpoints: Vec<Checkpoint>) -> Self {
        checkpoints.sort_by_key(|cp| cp.seq);
        self.detached = checkpoints.into();
        self
    }

    /// A verifier for a chain whose records before `seq + 1` were checked elsewhere (paging).
    pub fn resume(options: VerifyOptions, seq: u64, hash: String) -> Self {
        let mut v = Self::new(options);
        v.last_seq = seq;
        v.last_hash = hash;
        v
    }

    /// True once a break was found.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    fn fail(&mut self, line: u64, kind: FailureKind, detail: String) {
        if self.failure.is_none() {
            self.failure = Some(VerifyFailure {
                seq: self.last_seq + 1,
                line,
                kind,
                detail,
            });
        }
    }

    /// Checks one line of an audit file (without its newline).
    pub fn push_line(&mut self, bytes: &[u8], line: u64) {
        if self.failed() {
            return;
        }
        if bytes.starts_with(b"{\"checkpoint\":") {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Line {
                checkpoint: Checkpoint,
            }
            match serde_json::from_slice::<Line>(bytes) {
                Ok(l) => {
                    self.canon.clear();
                    let canonical = write_canonical(
                        &serde_json::json!({ "checkpoint": &l.checkpoint }),
                        &mut self.canon,
                    )
                    .is_ok()
                        && self.canon == bytes;
                    if canonical {
                        self.push_checkpoint(&l.checkpoint, line);
                    } else {
                        self.fail(
                            line,
                            FailureKind::NonCanonical,
                            "checkpoint line was altered".into(),
                        );
                    }
                }
                Err(e) => self.fail(
                    line,
                    FailureKind::Malformed,
                    format!("bad checkpoint line: {e}"),
                ),
            }
            return;
        }
        let record: AuditRecord = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                let detail = format!("not an audit record: {e}");
                return self.fail(line, FailureKind::Malformed, detail);
            }
        };
        if let Err((kind, detail)) = self.check_link(&record) {
            return self.fail(line, kind, detail);
        }
        let computed = match record_hash(&record, &mut self.scratch) {
            Ok(h) => h,
            Err(e) => return self.fail(line, FailureKind::Malformed, e.to_string()),
        };
        if computed != record.hash {
            let detail = "record content does not match its hash".into();
            return self.fail(line, FailureKind::HashMismatch, detail);
        }
        if !is_body_with_hash(bytes, &self.scratch, &record.hash) {
            // The content hashes right, but these bytes are not its canonical form.
            let detail = "line is not the canonical encoding of its record".into();
            return self.fail(line, FailureKind::NonCanonical, detail);
        }
        self.commit(record.seq, computed);
    }

    /// Checks one record (from a store rather than a file).
    pub fn push_record(&mut self, record: &AuditRecord) {
        if self.failed() {
            return;
        }
        if let Err((kind, detail)) = self.check_link(record) {
            return self.fail(0, kind, detail);
        }
        match record_hash(record, &mut self.scratch) {
            Ok(h) if h == record.hash => self.commit(record.seq, h),
            Ok(_) => self.fail(
                0,
                FailureKind::HashMismatch,
                "record content does not match its hash".into(),
            ),
            Err(e) => self.fail(0, FailureKind::Malformed, e.to_string()),
        }
    }

    fn check_link(&self, record: &AuditRecord) -> Result<(), (FailureKind, String)> {
        let expected = self.last_seq + 1;
        if record.seq != expected {
            let detail = format!("expected seq {expected}, found seq {}", record.seq);
            return Err((FailureKind::Gap, detail));
        }
        if record.prev_hash != self.last_hash {
            let detail = "prev_hash is not the previous record's hash".into();
            return Err((FailureKind::BrokenLink, detail));
        }
        Ok(())
    }

    fn commit(&mut self, seq: u64, hash: String) {
        self.records += 1;
        self.last_seq = seq;
        self.last_hash.clone_from(&hash);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, hash));
        while self.detached.front().is_some_and(|cp| cp.seq <= seq) {
            if let Some(cp) = self.detached.pop_front() {
                self.push_checkpoint(&cp, 0);
            }
        }
    }

    /// Checks one checkpoint against the records seen so far.
    pub fn push_checkpoint(&mut self, cp: &Checkpoint, line: u64) {
        if self.failed() {
            return;
        }
        match &self.key {
            Some(k) if *k != cp.public_key => {
                let detail = format!(
                    "checkpoint for seq {} is signed by {}, expected {k}",
                    cp.seq, cp.public_key
                );
                self.fail(line, FailureKind::KeyMismatch, detail);
                return;
            }
            Some(_) => {}
            None => self.key = Some(cp.public_key.clone()),
        }
        if let Err(e) = verify_checkpoint(cp) {
            self.fail(
                line,
                FailureKind::BadSignature,
                format!("checkpoint for seq {}: {e}", cp.seq),
            );
            return;
        }
        if cp.seq > self.last_seq {
            let detail = format!(
                "checkpoint seals seq {} but the chain ends at seq {}: records were deleted",
                cp.seq, self.last_seq
            );
            self.fail(line, FailureKind::MissingRecords, detail);
            return;
        }
        let known = if cp.seq == self.last_seq {
            Some(self.last_hash.as_str())
        } else {
            self.recent
                .iter()
                .find(|(s, _)| *s == cp.seq)
                .map(|(_, h)| h.as_str())
        };
        match known {
            Some(h) if h == cp.hash => {
                self.checkpoints += 1;
                self.sealed_seq = self.sealed_seq.max(cp.seq);
            }
            Some(_) => {
                let detail = format!(
                    "checkpoint for seq {} names another hash than the chain's",
                    cp.seq
                );
                self.fail(line, FailureKind::CheckpointMismatch, detail);
            }
            None => {
                let detail = format!(
                    "checkpoint for seq {} is too far behind the head to check",
                    cp.seq
                );
                self.fail(line, FailureKind::CheckpointMismatch, detail);
            }
        }
    }

    /// Reports a torn last line.
    pub fn truncated_tail(&mut self, line: u64, bytes: usize) {
        self.fail(
            line,
            FailureKind::TruncatedTail,
            format!("the last line is incomplete ({bytes} bytes without a newline)"),
        );
    }

    /// The verdict.
    pub fn finish(mut self) -> VerifyReport {
        while let Some(cp) = self.detached.pop_front() {
            self.push_checkpoint(&cp, 0);
        }
        if self.options.strict && self.failure.is_none() && self.sealed_seq < self.last_seq {
            let detail = format!(
                "records {}..{} are not covered by a signed checkpoint",
                self.sealed_seq + 1,
                self.last_seq
            );
            self.failure = Some(VerifyFailure {
                seq: self.sealed_seq + 1,
                line: 0,
                kind: FailureKind::Unsealed,
                detail,
            });
        }
        VerifyReport {
            ok: self.failure.is_none(),
            records: self.records,
            checkpoints: self.checkpoints,
            last_seq: self.last_seq,
            last_hash: self.last_hash,
            sealed_seq: self.sealed_seq,
            public_key: self.key,
            failure: self.failure,
        }
    }

    /// Verifies a whole audit file's bytes.
    pub fn verify_bytes(bytes: &[u8], options: VerifyOptions) -> VerifyReport {
        let mut v = Verifier::new(options);
        let mut rest = bytes;
        let mut line = 0u64;
        while !rest.is_empty() && !v.failed() {
            line += 1;
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let (l, tail) = rest.split_at(i);
                    v.push_line(l, line);
                    rest = tail.get(1..).unwrap_or_default();
                }
                None => {
                    v.truncated_tail(line, rest.len());
                    break;
                }
            }
        }
        v.finish()
    }
}

/// True if `line` is `body` (the canonical record without `hash`, in `scratch`) with the member
/// `"hash":"<hash>"` inserted where JCS puts it (just before `"id"`). This checks that the line
/// is canonical without serialising the record a second time.
fn is_body_with_hash(line: &[u8], body: &[u8], hash: &str) -> bool {
    let common = line.iter().zip(body).take_while(|(a, b)| a == b).count();
    let member = format!("hash\":\"{hash}\",\"");
    let (Some(head), Some(rest), Some(tail)) = (
        line.get(common..common + member.len()),
        line.get(common + member.len()..),
        body.get(common..),
    ) else {
        return false;
    };
    common >= 2 && head == member.as_bytes() && rest == tail && tail.starts_with(b"id\":")
}
