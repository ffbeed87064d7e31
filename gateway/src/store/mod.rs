//! Storage behind a trait: SQLite (WAL) is the embedded default; a PostgreSQL store can
//! implement the same trait to serve several gateway replicas.

mod sqlite;

use std::collections::{BTreeMap, HashMap};

use aa_core::budget::UsageRow;
use aa_core::{AuditRecord, Checkpoint, PolicyBundle};
use serde::{Deserialize, Serialize};

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
    /// Seqs of the records with these event ids, for idempotent ingest.
    fn seqs_of(&self, ids: &[&str]) -> Result<HashMap<String, u64>, StoreError>;
    /// Appends chained records (with their canonical lines) and writes the budget counters
    /// that changed, in one durable transaction.
    fn append(
        &self,
        records: &[(AuditRecord, Vec<u8>)],
        usage: &[UsageRow],
    ) -> Result<(), StoreError>;
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
    /// Inserts or replaces an agent.
    fn put_agent(&self, agent: &AgentRow) -> Result<(), StoreError>;
    /// The stored policy bundle (without the suspended set).
    fn policy(&self) -> Result<Option<PolicyBundle>, StoreError>;
    /// Replaces the stored policy bundle.
    fn put_policy(&self, bundle: &PolicyBundle) -> Result<(), StoreError>;
}
