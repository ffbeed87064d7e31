//! Storage behind a trait: SQLite (WAL) is the embedded default; PostgreSQL serves several
//! gateway replicas on one database.

mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap};

use aa_core::budget::UsageRow;
use aa_core::wire::Announced;
use aa_core::{AuditRecord, Checkpoint, PolicyBundle};
use serde::{Deserialize, Serialize};

pub use postgres::{AUDIT_CHANNEL, CONFIG_CHANNEL, Charge, PgStore, redact_url};
pub use sqlite::SqliteStore;

/// A storage failure. Callers turn it into a 503 and count it in `aa_store_errors_total`.
#[derive(Debug, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Budget counters written with a batch of records.
#[derive(Debug, Clone)]
pub enum UsageWrite {
    /// The counters' current values (one gateway owns them: SQLite).
    Absolute(Vec<UsageRow>),
    /// Amounts to add (several replicas charge the same counters: PostgreSQL). A delta for an
    /// older window than the stored one is dropped; one for a newer window starts it.
    Delta(Vec<UsageRow>),
}

/// A batch linked onto the chain head, ready to store.
#[derive(Debug)]
pub struct Linked {
    /// Chained records with their canonical lines, in seq order.
    pub records: Vec<(AuditRecord, Vec<u8>)>,
    /// The budget counters they charged.
    pub usage: UsageWrite,
}

/// Why an append failed; nothing of the batch was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The store failed (the transaction rolled back).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be linked.
    #[error(transparent)]
    Audit(#[from] aa_core::AuditError),
}

/// Links a batch: gets the chain head (seq, hash) and the seqs already stored for the batch's
/// event ids, and returns the records to append.
pub type LinkFn<'a> =
    dyn FnMut((u64, String), &HashMap<String, u64>) -> Result<Linked, aa_core::AuditError> + 'a;

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRow {
    /// Its id.
    pub agent_id: String,
    /// Its team.
    pub team: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// SHA-256 (hex) of its bearer token; the token itself is never stored.
    pub token_hash: String,
    /// Under the kill switch.
    pub suspended: bool,
    /// Registration time, unix ms.
    pub created_ms: i64,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    /// Only this agent.
    pub agent: Option<String>,
    /// Only this layer (`sdk`, `proxy`, `ebpf`).
    pub layer: Option<String>,
    /// Only this effect (`allow`, `deny`).
    pub decision: Option<String>,
    /// Only this action kind.
    pub kind: Option<String>,
    /// From this time (unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// Until this time (unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Records with seq greater than this (the cursor of the previous page).
    pub after_seq: u64,
    /// Page size.
    pub limit: usize,
}

/// Persistent state of the gateway.
pub trait Store: Send + Sync + 'static {
    /// Seq and hash of the last record (0 and the genesis hash when empty).
    fn head(&self) -> Result<(u64, String), StoreError>;
    /// In one durable transaction that holds the chain head (no other append can run): reads
    /// the head and the seqs already stored for `ids`, calls `link`, appends its records and
    /// writes its budget counters. Returns what was stored. Idempotence by event id rests on
    /// `link` skipping the ids it is given (and on a unique index on the id).
    fn append_batch(&self, ids: &[&str], link: &mut LinkFn<'_>) -> Result<Linked, AppendError>;
    /// Every persisted budget counter (loaded into the ledger at start-up).
    fn usage(&self) -> Result<Vec<UsageRow>, StoreError>;
    /// Records matching `filter`, oldest first.
    fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Canonical lines of records after `after_seq`, oldest first.
    fn lines_after(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Stores a signed checkpoint.
    fn put_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError>;
    /// All checkpoints, by seq.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;
    /// All registered agents.
    fn agents(&self) -> Result<Vec<AgentRow>, StoreError>;
    /// Inserts an agent unless one with its id exists; `false` then (nothing changed).
    fn create_agent(&self, agent: &AgentRow) -> Result<bool, StoreError>;
    /// Changes the stored agent `agent_id` in one transaction (read, `change`, write), so
    /// concurrent changes through different gateways are not lost. `None` for an unknown id.
    fn update_agent(
        &self,
        agent_id: &str,
        change: &mut dyn FnMut(&mut AgentRow),
    ) -> Result<Option<AgentRow>, StoreError>;
    /// The stored policy bundle (without the suspended set).
    fn policy(&self) -> Result<Option<PolicyBundle>, StoreError>;
    /// Replaces the stored policy bundle.
    fn put_policy(&self, bundle: &PolicyBundle) -> Result<(), StoreError>;
    /// Keeps an SDK announcement (the newest [`ANNOUNCEMENTS_KEPT`] per agent), so every
    /// replica can answer for it.
    fn put_announcement(&self, announced: &Announced) -> Result<(), StoreError>;
    /// The agent's kept announcements, oldest first.
    fn announcements(&self, agent_id: &str) -> Result<Vec<Announced>, StoreError>;
}

/// Announcements kept per agent.
pub const ANNOUNCEMENTS_KEPT: i64 = 32;
