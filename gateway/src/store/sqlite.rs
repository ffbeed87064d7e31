//! SQLite in WAL mode, `synchronous = FULL`: a committed transaction survives a crash of the
//! process and of the machine. One connection writes (the audit writer thread appends in
//! batched transactions); a small pool of connections reads concurrently.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aa_core::budget::UsageRow;
use aa_core::wire::Announced;
use aa_core::{AuditRecord, Checkpoint, GENESIS_HASH, PolicyBundle};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{
    ANNOUNCEMENTS_KEPT, AgentRow, AppendError, AuditFilter, LinkFn, Linked, Store, StoreError,
    UsageWrite,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq      INTEGER PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,
    ts_ms    INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    layer    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    effect   TEXT NOT NULL,
    hash     TEXT NOT NULL,
    line     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_agent ON audit(agent_id, seq);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts_ms);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq  INTEGER PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    json     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policy (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_usage (
    budget       TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    calls        INTEGER NOT NULL,
    tokens       INTEGER NOT NULL,
    cost_micros  INTEGER NOT NULL,
    PRIMARY KEY (budget, key)
);
CREATE TABLE IF NOT EXISTS announcements (
    agent_id TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    json     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS announcements_agent ON announcements(agent_id);
";

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// The SQLite store.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, with `readers` read connections.
    pub fn open(path: &Path, readers: usize) -> Result<Self, StoreError> {
        let writer = open(path)?;
        writer.execute_batch(SCHEMA)?;
        let readers = (0..readers.max(1))
            .map(|_| open(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers,
            next: AtomicUsize::new(0),
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self
            .readers
            .get(i)
            .ok_or_else(|| StoreError("no reader".into()))?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    fn write<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

/// Seq and hash of the last record.
fn head_of(c: &Connection) -> Result<(u64, String), StoreError> {
    let row: Option<(i64, String)> = c
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((seq, hash)) => (from_sql(seq), hash),
        None => (0, GENESIS_HASH.to_owned()),
    })
}

/// Seqs of the stored records with these event ids.
fn seqs_of(c: &Connection, ids: &[&str]) -> Result<HashMap<String, u64>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt =
            c.prepare_cached(&format!("SELECT id, seq FROM audit WHERE id IN ({marks})"))?;
        let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (id, seq) = row?;
            out.insert(id, from_sql(seq));
        }
    }
    Ok(out)
}

/// Writes budget counters: values replace, deltas add (within the stored window).
fn write_usage(c: &Connection, usage: &UsageWrite) -> Result<(), StoreError> {
    let (rows, sql) = match usage {
        UsageWrite::Absolute(rows) => (
            rows,
            "INSERT INTO budget_usage (budget, key, window_start, calls, tokens, cost_micros)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (budget, key) DO UPDATE SET window_start = excluded.window_start,
               calls = excluded.calls, tokens = excluded.tokens,
               cost_micros = excluded.cost_micros",
        ),
        UsageWrite::Delta(rows) => (
            rows,
            "INSERT INTO budget_usage (budget, key, window_start, calls, tokens, cost_micros)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (budget, key) DO UPDATE SET
               calls = CASE WHEN excluded.window_start > window_start THEN excluded.calls
                 WHEN excluded.window_start = window_start THEN calls + excluded.calls
                 ELSE calls END,
               tokens = CASE WHEN excluded.window_start > window_start THEN excluded.tokens
                 WHEN excluded.window_start = window_start THEN tokens + excluded.tokens
                 ELSE tokens END,
               cost_micros = CASE WHEN excluded.window_start > window_start
                   THEN excluded.cost_micros
                 WHEN excluded.window_start = window_start THEN cost_micros + excluded.cost_micros
                 ELSE cost_micros END,
               window_start = max(window_start, excluded.window_start)",
        ),
    };
    let mut stmt = c.prepare_cached(sql)?;
    for u in rows {
        stmt.execute(params![
            u.budget,
            u.key,
            u.window_start_ms,
            to_sql(u.calls),
            to_sql(u.tokens),
            to_sql(u.cost_micros),
        ])?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn head(&self) -> Result<(u64, String), StoreError> {
        self.read(head_of)
    }

    fn append_batch(&self, ids: &[&str], link: &mut LinkFn<'_>) -> Result<Linked, AppendError> {
        self.write(|c| {
            let tx = c.transaction().map_err(StoreError::from)?;
            let head = head_of(&tx)?;
            let known = seqs_of(&tx, ids)?;
            let linked = link(head, &known)?;
            write_usage(&tx, &linked.usage)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO audit (seq, id, ts_ms, agent_id, layer, kind, effect, hash, line)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(StoreError::from)?;
                for (r, line) in &linked.records {
                    stmt.execute(params![
                        i64::try_from(r.seq).unwrap_or(i64::MAX),
                        r.id,
                        aa_core::parse_ts(&r.ts).unwrap_or_default(),
                        r.agent_id,
                        r.layer.as_str(),
                        r.action.kind().as_str(),
                        r.decision.effect.as_str(),
                        r.hash,
                        line,
                    ])
                    .map_err(StoreError::from)?;
                }
            }
            tx.commit().map_err(StoreError::from)?;
            Ok(linked)
        })
    }

    fn usage(&self) -> Result<Vec<UsageRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT budget, key, window_start, calls, tokens, cost_micros FROM budget_usage",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(UsageRow {
                    budget: r.get(0)?,
                    key: r.get(1)?,
                    window_start_ms: r.get(2)?,
                    calls: from_sql(r.get(3)?),
                    tokens: from_sql(r.get(4)?),
                    cost_micros: from_sql(r.get(5)?),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn query(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from("SELECT line FROM audit WHERE seq > ?");
        let mut args: Vec<rusqlite::types::Value> =
            vec![i64::try_from(f.after_seq).unwrap_or(i64::MAX).into()];
        let mut text = |col: &str, v: &Option<String>| {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                args.push(v.clone().into());
            }
        };
        text("agent_id", &f.agent);
        text("layer", &f.layer);
        text("effect", &f.decision);
        text("kind", &f.kind);
        if let Some(t) = f.since_ms {
            sql.push_str(" AND ts_ms >= ?");
            args.push(t.into());
        }
        if let Some(t) = f.until_ms {
            sql.push_str(" AND ts_ms < ?");
            args.push(t.into());
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        args.push(i64::try_from(f.limit).unwrap_or(1000).into());
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = Vec::new();
            for line in rows {
                out.push(serde_json::from_slice(&line?)?);
            }
            Ok(out)
        })
    }

    fn lines_after(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, line FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                params![
                    i64::try_from(after_seq).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(1000)
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, line) = row?;
                out.push((u64::try_from(seq).unwrap_or_default(), line));
            }
            Ok(out)
        })
    }

    fn put_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        let json = serde_json::to_string(cp)?;
        self.write(|c| {
            c.execute(
                "INSERT OR REPLACE INTO checkpoints (seq, json) VALUES (?1, ?2)",
                params![i64::try_from(cp.seq).unwrap_or(i64::MAX), json],
            )?;
            Ok(())
        })
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT json FROM checkpoints ORDER BY seq")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for json in rows {
                out.push(serde_json::from_str(&json?)?);
            }
            Ok(out)
        })
    }

    fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT json FROM agents ORDER BY agent_id")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for json in rows {
                out.push(serde_json::from_str(&json?)?);
            }
            Ok(out)
        })
    }

    fn create_agent(&self, agent: &AgentRow) -> Result<bool, StoreError> {
        let json = serde_json::to_string(agent)?;
        self.write(|c| {
            let n = c.execute(
                "INSERT INTO agents (agent_id, json) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![agent.agent_id, json],
            )?;
            Ok(n == 1)
        })
    }

    fn update_agent(
        &self,
        agent_id: &str,
        change: &mut dyn FnMut(&mut AgentRow),
    ) -> Result<Option<AgentRow>, StoreError> {
        self.write(|c| {
            let tx = c.transaction()?;
            let json: Option<String> = tx
                .query_row(
                    "SELECT json FROM agents WHERE agent_id = ?1",
                    params![agent_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(json) = json else { return Ok(None) };
            let mut row: AgentRow = serde_json::from_str(&json)?;
            change(&mut row);
            tx.execute(
                "UPDATE agents SET json = ?2 WHERE agent_id = ?1",
                params![agent_id, serde_json::to_string(&row)?],
            )?;
            tx.commit()?;
            Ok(Some(row))
        })
    }

    fn policy(&self) -> Result<Option<PolicyBundle>, StoreError> {
        self.read(|c| {
            let json: Option<String> = c
                .query_row("SELECT json FROM policy WHERE id = 1", [], |r| r.get(0))
                .optional()?;
            Ok(match json {
                Some(j) => Some(serde_json::from_str(&j)?),
                None => None,
            })
        })
    }

    fn put_policy(&self, bundle: &PolicyBundle) -> Result<(), StoreError> {
        let json = serde_json::to_string(bundle)?;
        self.write(|c| {
            c.execute(
                "INSERT OR REPLACE INTO policy (id, json) VALUES (1, ?1)",
                params![json],
            )?;
            Ok(())
        })
    }

    fn put_announcement(&self, announced: &Announced) -> Result<(), StoreError> {
        let json = serde_json::to_string(announced)?;
        self.write(|c| {
            c.execute(
                "INSERT INTO announcements (agent_id, at_ms, json) VALUES (?1, ?2, ?3)",
                params![announced.agent_id, announced.at_ms, json],
            )?;
            c.execute(
                "DELETE FROM announcements WHERE agent_id = ?1 AND rowid NOT IN
                   (SELECT rowid FROM announcements WHERE agent_id = ?1 ORDER BY rowid DESC LIMIT ?2)",
                params![announced.agent_id, ANNOUNCEMENTS_KEPT],
            )?;
            Ok(())
        })
    }

    fn announcements(&self, agent_id: &str) -> Result<Vec<Announced>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT json FROM announcements WHERE agent_id = ?1 ORDER BY rowid")?;
            let rows = stmt.query_map(params![agent_id], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for json in rows {
                out.push(serde_json::from_str(&json?)?);
            }
            Ok(out)
        })
    }
}
