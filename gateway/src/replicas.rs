//! Several replicas on one PostgreSQL database, none special: each keeps its policy, registry,
//! tokens and kill switch in step with the database, and a change through any of them is in
//! force on all before its API call answers.
//!
//! - A change bumps the `config_epoch` row and notifies `aa_config` (in its transaction).
//! - Each replica's sync thread LISTENs, and on a notification (or every [`POLL`] regardless)
//!   runs [`PgStore::sync_config`]: under a share lock on the epoch row it reloads what changed,
//!   applies it, and acknowledges the epoch with a heartbeat.
//! - A replica whose last acknowledged check started more than [`STALE`] ago is stale: it
//!   refuses agent requests and decides nothing (fail closed) until the database answers again.
//! - The replica that made a change waits until every live replica acknowledged its epoch, or
//!   until [`STALE`] passed (then a replica that has not acknowledged it is stale, and refuses).
//!   So a suspension or a revocation is in force everywhere when the API answers.
//! - Committed audit appends notify `aa_audit`; SSE streams wake on it and read the shared table.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aa_core::PolicyBundle;
use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::watch;

use crate::hub::HubLock;
use crate::leases::{Leases, Unspent};
use crate::state::AppState;
use crate::store::{AUDIT_CHANNEL, CONFIG_CHANNEL};
use crate::store::{AgentRow, PgStore, Store, StoreError};

/// Longest wait between two configuration checks (notifications usually come first).
pub const POLL: Duration = Duration::from_secs(1);
/// How long a configuration check stays good: past it, the replica fails closed. Several polls
/// long, so a replica starved of CPU under saturation does not turn stale while its database
/// answers.
pub const STALE: Duration = Duration::from_secs(5);

/// This replica's link to the others.
pub struct Replicas {
    store: Arc<PgStore>,
    id: String,
    origin: Instant,
    /// Milliseconds since `origin` at the start of the last acknowledged check, plus one
    /// (0: none yet).
    checked: AtomicU64,
    head: watch::Sender<u64>,
    stop: AtomicBool,
    leases: Leases,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Replicas {
    /// A replica over `store` with a fresh random id; call [`Replicas::start`] once the state
    /// exists.
    pub fn new(store: Arc<PgStore>) -> Result<Arc<Self>, StoreError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| StoreError(format!("no randomness: {e}")))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let id = format!(
            "{}-{}-{}",
            host.trim(),
            std::process::id(),
            hex::encode(bytes)
        );
        let (head, _) = watch::channel(0);
        Ok(Arc::new(Replicas {
            store,
            id,
            origin: Instant::now(),
            checked: AtomicU64::new(0),
            head,
            stop: AtomicBool::new(false),
            leases: Leases::default(),
        }))
    }

    /// The shared store.
    pub fn store(&self) -> &Arc<PgStore> {
        &self.store
    }

    /// This replica's budget leases.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Returns unspent leased calls; if that fails they stay counted as spent (fail closed).
    pub fn return_unspent(&self, unspent: &[Unspent]) {
        if let Err(e) = self.store.return_unspent(unspent) {
            tracing::warn!(error = %e, "unspent budget leases not returned: they count as spent");
        }
    }

    /// This replica's id (its row in `replicas`).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the configuration was confirmed against the database within [`STALE`].
    pub fn fresh(&self) -> bool {
        let checked = self.checked.load(Ordering::Acquire);
        checked != 0 && self.now_ms().saturating_sub(checked - 1) < STALE.as_millis() as u64
    }

    /// The highest audit seq another replica is known to have committed.
    pub fn audit_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Runs the first check now (so the replica starts fresh and in step), then the sync thread.
    pub fn start(self: &Arc<Self>, state: &Arc<AppState>) -> Result<(), StoreError> {
        let mut client = listen(&self.store)?;
        let applied = self.check(&mut client, state, None)?;
        let me = self.clone();
        let weak = Arc::downgrade(state);
        std::thread::Builder::new()
            .name("aa-replica-sync".into())
            .spawn(move || me.run(weak, Some(client), Some(applied)))
            .map_err(|e| StoreError(format!("cannot start the replica sync thread: {e}")))?;
        Ok(())
    }

    /// Stops the sync thread, returns the unspent leases and removes this replica's row: the
    /// others stop waiting for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.return_unspent(&self.leases.take_expired(true));
        if let Err(e) = self.store.forget_replica(&self.id) {
            tracing::warn!(error = %e, "could not remove this replica's row");
        }
    }

    fn check(
        &self,
        client: &mut postgres::Client,
        state: &AppState,
        applied: Option<u64>,
    ) -> Result<u64, StoreError> {
        let started = self.now_ms();
        // The hub's lock first, then the database's: the order of a local change.
        let mut hub = state.hub.lock_for_sync();
        let epoch = PgStore::sync_config(client, &self.id, applied, |policy, agents| {
            apply_config(state, &mut hub, policy, agents);
        })?;
        drop(hub);
        let took = self.now_ms().saturating_sub(started);
        if took > 1000 {
            tracing::warn!(
                took_ms = took,
                "slow configuration check (a starved replica turns stale)"
            );
        }
        self.checked.store(started + 1, Ordering::Release);
        if applied != Some(epoch) {
            tracing::debug!(epoch, "configuration in step");
        }
        // Budget usage charged through other replicas, for `context.budget` and /v1/budgets.
        state.engine.ledger().set(self.store.usage()?);
        Ok(epoch)
    }

    fn run(
        self: Arc<Self>,
        state: Weak<AppState>,
        mut client: Option<postgres::Client>,
        mut applied: Option<u64>,
    ) {
        let mut failing = false;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let Some(st) = state.upgrade() else { return };
            let mut c = match client.take() {
                Some(c) if !c.is_closed() => c,
                _ => match listen(&self.store) {
                    Ok(c) => c,
                    Err(e) => {
                        if !failing {
                            tracing::error!(error = %e, "database unreachable: this replica fails closed until it answers");
                            failing = true;
                        }
                        drop(st);
                        std::thread::sleep(Duration::from_millis(250));
                        continue;
                    }
                },
            };
            match self.check(&mut c, &st, applied) {
                Ok(epoch) => {
                    applied = Some(epoch);
                    if failing {
                        tracing::info!("database reachable again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "configuration check failed: this replica fails closed until it succeeds");
                        failing = true;
                    }
                    drop(st);
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            }
            drop(st);
            self.return_unspent(&self.leases.take_expired(false));
            match self.wait(&mut c) {
                Ok(()) => client = Some(c),
                Err(e) => tracing::warn!(error = %e, "notification connection lost; reconnecting"),
            }
        }
    }

    /// Waits up to [`POLL`] for a configuration notification, recording audit heads meanwhile.
    fn wait(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        let deadline = Instant::now() + POLL;
        let mut notes = client.notifications();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let Some(note) = notes.timeout_iter(left).next()? else {
                return Ok(());
            };
            match note.channel() {
                CONFIG_CHANNEL => return Ok(()),
                AUDIT_CHANNEL => {
                    if let Ok(seq) = note.payload().parse::<u64>() {
                        self.head.send_if_modified(|h| {
                            let newer = seq > *h;
                            if newer {
                                *h = seq;
                            }
                            newer
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// Waits until every live replica has applied the current configuration epoch (the one of
    /// a change just committed), or until [`STALE`] passed — then any replica that has not is
    /// stale and refuses. Fails only if the database cannot be asked; waits [`STALE`] then.
    pub async fn await_in_step(&self) {
        let started = Instant::now();
        let store = self.store.clone();
        let epoch = match tokio::task::spawn_blocking(move || store.epoch()).await {
            Ok(Ok(e)) => e,
            _ => {
                tokio::time::sleep(STALE).await;
                return;
            }
        };
        loop {
            let store = self.store.clone();
            let behind =
                tokio::task::spawn_blocking(move || store.replicas_behind(epoch, STALE)).await;
            if matches!(behind, Ok(Ok(0))) {
                return;
            }
            if started.elapsed() > STALE + Duration::from_millis(100) {
                tracing::warn!(
                    epoch,
                    "some replicas did not acknowledge the change; they are stale and refuse requests until they do"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A dedicated connection listening on both channels.
fn listen(store: &PgStore) -> Result<postgres::Client, StoreError> {
    let mut client = store.connect()?;
    client.batch_execute(&format!("LISTEN {CONFIG_CHANNEL}; LISTEN {AUDIT_CHANNEL}"))?;
    Ok(client)
}

/// Installs the stored policy, suspended set, agents and tokens.
fn apply_config(
    state: &AppState,
    hub: &mut HubLock<'_>,
    policy: Option<PolicyBundle>,
    agents: Vec<AgentRow>,
) {
    let suspended: BTreeSet<String> = agents
        .iter()
        .filter(|a| a.suspended)
        .map(|a| a.agent_id.clone())
        .collect();
    if let Err(e) = hub.replace(policy, suspended) {
        tracing::error!(error = %e, "the stored policy does not compile here; the previous one stays");
    }
    state
        .tokens
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .replace_agents(agents.iter().map(|a| (&a.agent_id, &a.token_hash)));
    let map: HashMap<String, AgentRow> = agents
        .into_iter()
        .map(|a| (a.agent_id.clone(), a))
        .collect();
    *state.agents.write().unwrap_or_else(|p| p.into_inner()) = map;
}
