//! PostgreSQL, shared by several gateway replicas. The synchronous `postgres` client behind an
//! r2d2 pool: the [`Store`] trait is synchronous (called from the audit writer thread and from
//! `spawn_blocking`), so a blocking client fits it without a second async runtime in the way.
//!
//! What several replicas rely on:
//! - the audit chain: one head row, locked (`FOR UPDATE`) by each append's transaction, which
//!   reads the head, skips event ids already stored, links, writes the records with binary
//!   `COPY`, moves the head and commits; a replica killed mid-batch rolls back whole;
//! - budgets: each charged decision is one exact single-row `UPDATE … WHERE used + 1 <= limit`
//!   per counter ([`PgStore::try_charge`]); reported usage is added as deltas;
//! - policy, registry and kill switch: every change bumps the `config_epoch` row and notifies
//!   `aa_config` in its transaction; replicas acknowledge the epoch they applied
//!   ([`PgStore::ack_epoch`]).

use std::collections::HashMap;
use std::time::Duration;

use aa_core::budget::{BudgetBreach, UsageRow, Window};
use aa_core::wire::Announced;
use aa_core::{AuditRecord, Checkpoint, GENESIS_HASH, PolicyBundle};
use postgres::NoTls;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use r2d2_postgres::PostgresConnectionManager;

use super::{
    ANNOUNCEMENTS_KEPT, AgentRow, AppendError, AuditFilter, LinkFn, Linked, Store, StoreError,
    UsageWrite,
};

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError(format!("no database connection: {e}"))
    }
}

/// Versioned migrations, applied in order at start-up under an advisory lock (replicas starting
/// together apply each once). Never edit one that shipped: add the next.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "
CREATE TABLE audit (
    seq      BIGINT PRIMARY KEY,
    id       TEXT NOT NULL,
    ts_ms    BIGINT NOT NULL,
    agent_id TEXT NOT NULL,
    layer    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    effect   TEXT NOT NULL,
    hash     TEXT NOT NULL,
    line     BYTEA NOT NULL
);
CREATE UNIQUE INDEX audit_id ON audit(id);
CREATE INDEX audit_agent ON audit(agent_id, seq);
CREATE INDEX audit_ts ON audit(ts_ms);
CREATE TABLE audit_head (
    id   INT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE checkpoints (
    seq  BIGINT PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    json     TEXT NOT NULL
);
CREATE TABLE policy (
    id   INT PRIMARY KEY CHECK (id = 1),
    json TEXT NOT NULL
);
CREATE TABLE budget_usage (
    budget       TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    calls        BIGINT NOT NULL,
    tokens       BIGINT NOT NULL,
    cost_micros  BIGINT NOT NULL,
    PRIMARY KEY (budget, key)
);
CREATE TABLE config_epoch (
    id    INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO config_epoch VALUES (1, 0);
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY,
    epoch      BIGINT NOT NULL,
    seen       TIMESTAMPTZ NOT NULL
);
",
    ),
    (
        2,
        "
CREATE TABLE announcements (
    id       BIGSERIAL PRIMARY KEY,
    agent_id TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    json     TEXT NOT NULL
);
CREATE INDEX announcements_agent ON announcements(agent_id, id);
",
    ),
];

/// Key of the advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x6161_736d_6d69_6772;

/// The channel a committed append notifies (payload: the new head seq).
pub const AUDIT_CHANNEL: &str = "aa_audit";
/// The channel a policy, registry or kill-switch change notifies (payload: the new epoch).
pub const CONFIG_CHANNEL: &str = "aa_config";

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// `url` with its password (in the user info or a `password=` parameter) replaced by `***`,
/// for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out
            .get(rest_start..)
            .and_then(|r| r.find(['/', '?']))
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out
            .get(rest_start..authority_end)
            .and_then(|a| a.rfind('@'))
            && let Some(colon) = out
                .get(rest_start..rest_start + at)
                .and_then(|u| u.find(':'))
        {
            out.replace_range(rest_start + colon + 1..rest_start + at, "***");
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out
            .get(start..)
            .and_then(|r| r.find('&'))
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
    }
    out
}

/// One counter a charged decision needs: its budget, key, window and limits.
#[derive(Debug, Clone)]
pub struct Charge {
    /// Budget name.
    pub budget: String,
    /// Counter key.
    pub key: String,
    /// The budget's window.
    pub window: Window,
    /// Start of the window now, unix ms.
    pub window_start_ms: i64,
    /// Call limit.
    pub calls: Option<u64>,
    /// Token limit (checked: spent → breach; charged when reported).
    pub tokens: Option<u64>,
    /// Cost limit, micro-USD (likewise).
    pub cost_micros: Option<u64>,
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    config: postgres::Config,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` with a pool of up to `connections` and applies pending migrations.
    pub fn open(url: &str, connections: u32) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError(format!("{}: {e}", redact_url(url))))?;
        config
            .application_name("aa-gateway")
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(connections.max(2))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .test_on_check_out(false)
            .build(manager)?;
        let store = PgStore { pool, config };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// The rows of a query whose one column is a JSON document, decoded.
    fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        self.conn()?
            .query(sql, params)?
            .iter()
            .map(|r| Ok(serde_json::from_str(r.get::<_, &str>(0))?))
            .collect()
    }

    /// A connection outside the pool (LISTEN holds one for good).
    pub fn connect(&self) -> Result<postgres::Client, StoreError> {
        Ok(self.config.connect(NoTls)?)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        let fresh: bool = tx
            .query_one("SELECT to_regclass('schema_version') IS NULL", &[])?
            .get(0);
        if fresh {
            tx.batch_execute(
                "CREATE TABLE schema_version (
                    version    INT PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            )?;
        }
        let current: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
            .get(0);
        let known = MIGRATIONS.iter().map(|(v, _)| *v).max().unwrap_or(0);
        if current > known {
            return Err(StoreError(format!(
                "the database's schema is version {current}, newer than this gateway knows ({known}): run the newer gateway"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[version],
            )?;
            tracing::info!(version, "database migrated");
        }
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1) ON CONFLICT DO NOTHING",
            &[&GENESIS_HASH],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The current configuration epoch (bumped by every policy, registry or kill-switch change).
    pub fn epoch(&self) -> Result<u64, StoreError> {
        let row = self
            .conn()?
            .query_one("SELECT epoch FROM config_epoch WHERE id = 1", &[])?;
        Ok(from_sql(row.get(0)))
    }

    /// One configuration check of replica `replica_id`, in one transaction on `client`: reads
    /// the epoch under a share lock (a change's epoch bump waits for this transaction), and
    /// when it differs from `applied` loads the policy and the agents and calls `apply` with
    /// them; then records the epoch as acknowledged (and the replica as alive now, by the
    /// database's clock) and commits. So an acknowledgement of an old epoch always commits
    /// before a newer epoch does. Returns the epoch now applied.
    pub fn sync_config(
        client: &mut postgres::Client,
        replica_id: &str,
        applied: Option<u64>,
        apply: impl FnOnce(Option<PolicyBundle>, Vec<AgentRow>),
    ) -> Result<u64, StoreError> {
        let mut tx = client.transaction()?;
        let epoch = from_sql(
            tx.query_one("SELECT epoch FROM config_epoch WHERE id = 1 FOR SHARE", &[])?
                .get(0),
        );
        if applied != Some(epoch) {
            let policy = match tx.query_opt("SELECT json FROM policy WHERE id = 1", &[])? {
                Some(r) => Some(serde_json::from_str(r.get::<_, &str>(0))?),
                None => None,
            };
            let mut agents = Vec::new();
            for r in tx.query("SELECT json FROM agents ORDER BY agent_id", &[])? {
                agents.push(serde_json::from_str(r.get::<_, &str>(0))?);
            }
            apply(policy, agents);
        }
        tx.execute(
            "INSERT INTO replicas (replica_id, epoch, seen) VALUES ($1, $2, clock_timestamp())
             ON CONFLICT (replica_id) DO UPDATE SET epoch = excluded.epoch, seen = excluded.seen",
            &[&replica_id, &to_sql(epoch)],
        )?;
        tx.commit()?;
        Ok(epoch)
    }

    /// Replicas seen within `alive` that have not yet applied `epoch`.
    pub fn replicas_behind(&self, epoch: u64, alive: Duration) -> Result<u64, StoreError> {
        let ms = i64::try_from(alive.as_millis()).unwrap_or(i64::MAX);
        let row = self.conn()?.query_one(
            "SELECT count(*) FROM replicas
             WHERE epoch < $1 AND seen > clock_timestamp() - make_interval(secs => $2::float8 / 1000)",
            &[&to_sql(epoch), &(ms as f64)],
        )?;
        Ok(from_sql(row.get(0)))
    }

    /// Removes a replica's row (it stops; others need not wait for it).
    pub fn forget_replica(&self, replica_id: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM replicas WHERE replica_id = $1", &[&replica_id])?;
        Ok(())
    }

    /// Charges one call to every counter in `charges` — all or none, exactly, whatever other
    /// replicas do at the same time: each counter is one row updated only while the call fits
    /// (`calls + 1 <= limit`, tokens and cost not yet spent). Returns the counters after the
    /// charge, or the first budget that would be exceeded (nothing is charged then).
    pub fn try_charge(
        &self,
        charges: &[Charge],
    ) -> Result<Result<Vec<UsageRow>, BudgetBreach>, StoreError> {
        let mut sorted: Vec<&Charge> = charges.iter().collect();
        // One lock order for every transaction: no deadlock between concurrent charges.
        sorted.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let mut rows = Vec::with_capacity(sorted.len());
        for ch in sorted {
            tx.execute(
                "INSERT INTO budget_usage (budget, key, window_start, calls, tokens, cost_micros)
                 VALUES ($1, $2, $3, 0, 0, 0)
                 ON CONFLICT (budget, key) DO UPDATE SET window_start = excluded.window_start,
                   calls = 0, tokens = 0, cost_micros = 0
                 WHERE budget_usage.window_start < excluded.window_start",
                &[&ch.budget, &ch.key, &ch.window_start_ms],
            )?;
            let limit = |v: Option<u64>| v.map(to_sql);
            let updated = tx.query_opt(
                "UPDATE budget_usage SET calls = calls + 1
                 WHERE budget = $1 AND key = $2
                   AND ($3::BIGINT IS NULL OR calls + 1 <= $3)
                   AND ($4::BIGINT IS NULL OR tokens < $4)
                   AND ($5::BIGINT IS NULL OR cost_micros < $5)
                 RETURNING window_start, calls, tokens, cost_micros",
                &[
                    &ch.budget,
                    &ch.key,
                    &limit(ch.calls),
                    &limit(ch.tokens),
                    &limit(ch.cost_micros),
                ],
            )?;
            match updated {
                Some(r) => rows.push(UsageRow {
                    budget: ch.budget.clone(),
                    key: ch.key.clone(),
                    window_start_ms: r.get(0),
                    calls: from_sql(r.get(1)),
                    tokens: from_sql(r.get(2)),
                    cost_micros: from_sql(r.get(3)),
                }),
                None => {
                    let r = tx.query_one(
                        "SELECT calls, tokens, cost_micros FROM budget_usage
                         WHERE budget = $1 AND key = $2",
                        &[&ch.budget, &ch.key],
                    )?;
                    let (calls, tokens, cost) =
                        (from_sql(r.get(0)), from_sql(r.get(1)), from_sql(r.get(2)));
                    let (dimension, used, limit) = match (ch.calls, ch.tokens, ch.cost_micros) {
                        (Some(l), _, _) if calls.saturating_add(1) > l => ("calls", calls, l),
                        (_, Some(l), _) if tokens >= l => ("tokens", tokens, l),
                        (_, _, Some(l)) => ("cost_usd", cost, l),
                        _ => ("calls", calls, ch.calls.unwrap_or_default()),
                    };
                    // Dropping the transaction rolls back the counters charged before.
                    return Ok(Err(BudgetBreach {
                        budget: ch.budget.clone(),
                        dimension,
                        used,
                        limit,
                        window: ch.window,
                    }));
                }
            }
        }
        tx.commit()?;
        Ok(Ok(rows))
    }
}

impl PgStore {
    /// Leases a slice of `charge`'s call budget: in one transaction, locks the counter (rolling
    /// its window if due) and adds `min(SLICE, left / SHARE)` calls to it, if that is at least
    /// `MIN_SLICE`. Returns the calls granted, or `None` near the limit (charge exactly then).
    pub fn lease(&self, charge: &Charge) -> Result<Option<u64>, StoreError> {
        use crate::leases::{MIN_SLICE, SHARE, SLICE};
        let Some(limit) = charge.calls else {
            return Ok(None);
        };
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute(
            "INSERT INTO budget_usage (budget, key, window_start, calls, tokens, cost_micros)
             VALUES ($1, $2, $3, 0, 0, 0)
             ON CONFLICT (budget, key) DO UPDATE SET window_start = excluded.window_start,
               calls = 0, tokens = 0, cost_micros = 0
             WHERE budget_usage.window_start < excluded.window_start",
            &[&charge.budget, &charge.key, &charge.window_start_ms],
        )?;
        let row = tx.query_one(
            "SELECT window_start, calls FROM budget_usage WHERE budget = $1 AND key = $2
             FOR UPDATE",
            &[&charge.budget, &charge.key],
        )?;
        let (window_start, calls): (i64, i64) = (row.get(0), row.get(1));
        let left = limit.saturating_sub(from_sql(calls));
        let granted = SLICE.min(left / SHARE);
        if window_start != charge.window_start_ms || granted < MIN_SLICE {
            return Ok(None);
        }
        tx.execute(
            "UPDATE budget_usage SET calls = calls + $3 WHERE budget = $1 AND key = $2",
            &[&charge.budget, &charge.key, &to_sql(granted)],
        )?;
        tx.commit()?;
        Ok(Some(granted))
    }

    /// Gives back the unspent calls of expired leases (to their window only).
    pub fn return_unspent(&self, unspent: &[crate::leases::Unspent]) -> Result<(), StoreError> {
        if unspent.is_empty() {
            return Ok(());
        }
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let mut sorted: Vec<&crate::leases::Unspent> = unspent.iter().collect();
        sorted.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
        for u in sorted {
            tx.execute(
                "UPDATE budget_usage SET calls = greatest(calls - $3, 0)
                 WHERE budget = $1 AND key = $2 AND window_start = $4",
                &[&u.budget, &u.key, &to_sql(u.calls), &u.window_start_ms],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Bumps the configuration epoch and notifies the replicas, inside `tx`.
fn bump_epoch(tx: &mut postgres::Transaction<'_>) -> Result<(), StoreError> {
    let epoch: i64 = tx
        .query_one(
            "UPDATE config_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
            &[],
        )?
        .get(0);
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CONFIG_CHANNEL, &epoch.to_string()],
    )?;
    Ok(())
}

/// Writes budget counters inside `tx`, in key order (the lock order of [`PgStore::try_charge`]).
fn write_usage(tx: &mut postgres::Transaction<'_>, usage: &UsageWrite) -> Result<(), StoreError> {
    let (rows, sql) = match usage {
        UsageWrite::Absolute(rows) => (
            rows,
            "INSERT INTO budget_usage (budget, key, window_start, calls, tokens, cost_micros)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (budget, key) DO UPDATE SET window_start = excluded.window_start,
               calls = excluded.calls, tokens = excluded.tokens,
               cost_micros = excluded.cost_micros",
        ),
        UsageWrite::Delta(rows) => (
            rows,
            "INSERT INTO budget_usage AS u (budget, key, window_start, calls, tokens, cost_micros)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (budget, key) DO UPDATE SET
               calls = CASE WHEN excluded.window_start > u.window_start THEN excluded.calls
                 WHEN excluded.window_start = u.window_start THEN u.calls + excluded.calls
                 ELSE u.calls END,
               tokens = CASE WHEN excluded.window_start > u.window_start THEN excluded.tokens
                 WHEN excluded.window_start = u.window_start THEN u.tokens + excluded.tokens
                 ELSE u.tokens END,
               cost_micros = CASE WHEN excluded.window_start > u.window_start
                   THEN excluded.cost_micros
                 WHEN excluded.window_start = u.window_start
                   THEN u.cost_micros + excluded.cost_micros
                 ELSE u.cost_micros END,
               window_start = greatest(u.window_start, excluded.window_start)",
        ),
    };
    if rows.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<&UsageRow> = rows.iter().collect();
    rows.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
    let stmt = tx.prepare(sql)?;
    for u in rows {
        tx.execute(
            &stmt,
            &[
                &u.budget,
                &u.key,
                &u.window_start_ms,
                &to_sql(u.calls),
                &to_sql(u.tokens),
                &to_sql(u.cost_micros),
            ],
        )?;
    }
    Ok(())
}

/// Column types of `COPY audit … (FORMAT binary)`.
const AUDIT_COLUMNS: &[Type] = &[
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
];

fn copy_records(
    tx: &mut postgres::Transaction<'_>,
    records: &[(AuditRecord, Vec<u8>)],
) -> Result<(), StoreError> {
    let sink = tx.copy_in(
        "COPY audit (seq, id, ts_ms, agent_id, layer, kind, effect, hash, line)
         FROM STDIN (FORMAT binary)",
    )?;
    let mut writer = BinaryCopyInWriter::new(sink, AUDIT_COLUMNS);
    for (r, line) in records {
        let seq = to_sql(r.seq);
        let ts = aa_core::parse_ts(&r.ts).unwrap_or_default();
        writer.write(&[
            &seq,
            &r.id,
            &ts,
            &r.agent_id,
            &r.layer.as_str(),
            &r.action.kind().as_str(),
            &r.decision.effect.as_str(),
            &r.hash,
            line,
        ])?;
    }
    writer.finish()?;
    Ok(())
}

impl Store for PgStore {
    fn head(&self) -> Result<(u64, String), StoreError> {
        let row = self
            .conn()?
            .query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
        Ok((from_sql(row.get(0)), row.get(1)))
    }

    fn append_batch(&self, ids: &[&str], link: &mut LinkFn<'_>) -> Result<Linked, AppendError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(StoreError::from)?;
        // The head row's lock orders every replica's appends: one chain, no gap, no fork.
        let head = tx
            .query_one(
                "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
                &[],
            )
            .map_err(StoreError::from)?;
        let head: (u64, String) = (from_sql(head.get(0)), head.get(1));
        let mut known = HashMap::new();
        if !ids.is_empty() {
            for row in tx
                .query("SELECT id, seq FROM audit WHERE id = ANY($1)", &[&ids])
                .map_err(StoreError::from)?
            {
                known.insert(row.get::<_, String>(0), from_sql(row.get(1)));
            }
        }
        let linked = link(head, &known)?;
        write_usage(&mut tx, &linked.usage)?;
        if let Some((last, _)) = linked.records.last() {
            copy_records(&mut tx, &linked.records)?;
            let seq = to_sql(last.seq);
            tx.execute(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                &[&seq, &last.hash],
            )
            .map_err(StoreError::from)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&AUDIT_CHANNEL, &seq.to_string()],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(linked)
    }

    fn usage(&self) -> Result<Vec<UsageRow>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT budget, key, window_start, calls, tokens, cost_micros FROM budget_usage",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| UsageRow {
                budget: r.get(0),
                key: r.get(1),
                window_start_ms: r.get(2),
                calls: from_sql(r.get(3)),
                tokens: from_sql(r.get(4)),
                cost_micros: from_sql(r.get(5)),
            })
            .collect())
    }

    fn query(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from("SELECT line FROM audit WHERE seq > $1");
        let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(to_sql(f.after_seq))];
        let mut text = |col: &str, v: &Option<String>| {
            if let Some(v) = v {
                args.push(Box::new(v.clone()));
                sql.push_str(&format!(" AND {col} = ${}", args.len()));
            }
        };
        text("agent_id", &f.agent);
        text("layer", &f.layer);
        text("effect", &f.decision);
        text("kind", &f.kind);
        if let Some(t) = f.since_ms {
            args.push(Box::new(t));
            sql.push_str(&format!(" AND ts_ms >= ${}", args.len()));
        }
        if let Some(t) = f.until_ms {
            args.push(Box::new(t));
            sql.push_str(&format!(" AND ts_ms < ${}", args.len()));
        }
        args.push(Box::new(i64::try_from(f.limit).unwrap_or(1000)));
        sql.push_str(&format!(" ORDER BY seq LIMIT ${}", args.len()));
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        let rows = self.conn()?.query(sql.as_str(), &params)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(serde_json::from_slice(r.get::<_, &[u8]>(0))?);
        }
        Ok(out)
    }

    fn lines_after(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT seq, line FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&to_sql(after_seq), &i64::try_from(limit).unwrap_or(1000)],
        )?;
        Ok(rows
            .iter()
            .map(|r| (from_sql(r.get(0)), r.get::<_, Vec<u8>>(1)))
            .collect())
    }

    fn put_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        let json = serde_json::to_string(cp)?;
        // Two replicas may seal the same head: the first signature stays.
        self.conn()?.execute(
            "INSERT INTO checkpoints (seq, json) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING",
            &[&to_sql(cp.seq), &json],
        )?;
        Ok(())
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.json_rows("SELECT json FROM checkpoints ORDER BY seq", &[])
    }

    fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.json_rows("SELECT json FROM agents ORDER BY agent_id", &[])
    }

    fn create_agent(&self, agent: &AgentRow) -> Result<bool, StoreError> {
        let json = serde_json::to_string(agent)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let n = tx.execute(
            "INSERT INTO agents (agent_id, json) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&agent.agent_id, &json],
        )?;
        if n == 1 {
            bump_epoch(&mut tx)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn update_agent(
        &self,
        agent_id: &str,
        change: &mut dyn FnMut(&mut AgentRow),
    ) -> Result<Option<AgentRow>, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let Some(r) = tx.query_opt(
            "SELECT json FROM agents WHERE agent_id = $1 FOR UPDATE",
            &[&agent_id],
        )?
        else {
            return Ok(None);
        };
        let mut row: AgentRow = serde_json::from_str(r.get::<_, &str>(0))?;
        change(&mut row);
        tx.execute(
            "UPDATE agents SET json = $2 WHERE agent_id = $1",
            &[&agent_id, &serde_json::to_string(&row)?],
        )?;
        bump_epoch(&mut tx)?;
        tx.commit()?;
        Ok(Some(row))
    }

    fn policy(&self) -> Result<Option<PolicyBundle>, StoreError> {
        let row = self
            .conn()?
            .query_opt("SELECT json FROM policy WHERE id = 1", &[])?;
        Ok(match row {
            Some(r) => Some(serde_json::from_str(r.get::<_, &str>(0))?),
            None => None,
        })
    }

    fn put_policy(&self, bundle: &PolicyBundle) -> Result<(), StoreError> {
        let json = serde_json::to_string(bundle)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute(
            "INSERT INTO policy (id, json) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET json = excluded.json",
            &[&json],
        )?;
        bump_epoch(&mut tx)?;
        tx.commit()?;
        Ok(())
    }

    fn put_announcement(&self, announced: &Announced) -> Result<(), StoreError> {
        let json = serde_json::to_string(announced)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute(
            "INSERT INTO announcements (agent_id, at_ms, json) VALUES ($1, $2, $3)",
            &[&announced.agent_id, &announced.at_ms, &json],
        )?;
        tx.execute(
            "DELETE FROM announcements WHERE agent_id = $1 AND id NOT IN
               (SELECT id FROM announcements WHERE agent_id = $1 ORDER BY id DESC LIMIT $2)",
            &[&announced.agent_id, &ANNOUNCEMENTS_KEPT],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn announcements(&self, agent_id: &str) -> Result<Vec<Announced>, StoreError> {
        self.json_rows(
            "SELECT json FROM announcements WHERE agent_id = $1 ORDER BY id",
            &[&agent_id],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://aa:s3cret@db:5432/aa"),
            "postgres://aa:***@db:5432/aa"
        );
        assert_eq!(
            redact_url("postgres://aa@db/aa?password=s3cret&sslmode=disable"),
            "postgres://aa@db/aa?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://db/aa"), "postgres://db/aa");
    }
}
