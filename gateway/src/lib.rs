//! # aa-gateway
//!
//! The one brain behind every layer: agent registry and tokens, policy distribution (ETag and
//! long poll), shared budgets, remote decisions, and the tamper-evident audit store — a writer
//! appending a hash chain in group-committed transactions, with Ed25519-signed checkpoints, to
//! SQLite (WAL, one gateway) or PostgreSQL (several replicas, [`replicas`]). `aasm gateway`
//! runs it; [`api::router`] builds the HTTP API.

pub mod api;
pub mod auth;
pub mod budget;
pub mod error;
pub mod hub;
pub mod leases;
pub mod metrics;
pub mod openapi;
pub mod replicas;
pub mod state;
pub mod store;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aa_core::audit::load_or_create_key;
use aa_core::{Engine, Environment, PolicyBundle, SystemEnv};
use tokio::sync::broadcast;

use crate::auth::Tokens;
use crate::hub::PolicyHub;
use crate::metrics::Metrics;
use crate::replicas::Replicas;
use crate::state::AppState;
use crate::store::{PgStore, SqliteStore, Store};
use crate::writer::Writer;

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// SQLite database (the signing key is `<db>.key`, the admin token `<db>.admin-token`),
    /// or a `postgres://` URL shared by replicas (then `key` and `admin_token` are required).
    pub db: PathBuf,
    /// The checkpoint signing key (Ed25519, created if absent); default `<db>.key`. Replicas
    /// share one key file.
    pub key: Option<PathBuf>,
    /// Policy directory loaded at start (replacing the stored policy).
    pub policy_dir: Option<PathBuf>,
    /// PEM certificate chain and key for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The admin token; when absent it is read from (or created in) `<db>.admin-token`.
    pub admin_token: Option<String>,
    /// Records between signed checkpoints.
    pub checkpoint_every: u64,
    /// Audit writer queue length (jobs).
    pub queue: usize,
    /// How long open connections may finish after shutdown begins.
    pub drain: Duration,
}

impl GatewayConfig {
    /// Defaults for `db`.
    pub fn new(listen: SocketAddr, db: PathBuf) -> Self {
        GatewayConfig {
            listen,
            db,
            key: None,
            policy_dir: None,
            tls: None,
            admin_token: None,
            checkpoint_every: 1000,
            queue: 65_536,
            drain: Duration::from_secs(10),
        }
    }

    /// `<db><suffix>`.
    pub fn beside_db(&self, suffix: &str) -> PathBuf {
        let mut p = self.db.clone().into_os_string();
        p.push(suffix);
        p.into()
    }

    /// Which database `db` names, or why it cannot be used.
    pub fn database(&self) -> Result<Database, GatewayError> {
        let db = self.db.to_string_lossy();
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Ok(Database::Postgres(db.into_owned()));
        }
        if db.contains("://") {
            // Never create a SQLite file under `./mysql:/…` for a URL.
            return Err(GatewayError::UnsupportedDb(store::redact_url(&db)));
        }
        Ok(Database::Sqlite(self.db.clone()))
    }

    /// Where the signing key is.
    pub fn key_path(&self) -> Option<PathBuf> {
        match (&self.key, self.database()) {
            (Some(k), _) => Some(k.clone()),
            (None, Ok(Database::Sqlite(_))) => Some(self.beside_db(".key")),
            _ => None,
        }
    }
}

/// The database of a gateway.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file: one gateway.
    Sqlite(PathBuf),
    /// A PostgreSQL URL: any number of replicas.
    Postgres(String),
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The signing key.
    #[error(transparent)]
    Audit(#[from] aa_core::AuditError),
    /// The initial policy.
    #[error("the policy in {dir} is invalid: {source}")]
    Policy {
        /// The directory.
        dir: String,
        /// The diagnostics.
        source: aa_core::PolicyError,
    },
    /// `--db` names a database this build cannot use (a URL other than `postgres://`).
    #[error(
        "--db {0}: not a database this gateway can use; give a SQLite file path or a postgres:// URL"
    )]
    UnsupportedDb(String),
    /// A PostgreSQL gateway lacks what replicas must share.
    #[error(
        "--db postgres://…: {0} (every replica must use the same one, so none is created per replica)"
    )]
    ReplicaSetting(&'static str),
    /// Files, sockets, TLS material.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GatewayError {
    let what = what.into();
    move |source| GatewayError::Io { what, source }
}

/// Opens the store, the key, the registry and the policy: everything but the listener.
pub fn build_state(config: &GatewayConfig) -> Result<Arc<AppState>, GatewayError> {
    let (store, pg): (Arc<dyn Store>, Option<Arc<PgStore>>) = match config.database()? {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(io(format!("cannot create {}", dir.display())))?;
            }
            (Arc::new(SqliteStore::open(&path, 4)?), None)
        }
        Database::Postgres(url) => {
            if config.key.is_none() {
                return Err(GatewayError::ReplicaSetting(
                    "give the checkpoint signing key file with --key",
                ));
            }
            if config.admin_token.is_none() {
                return Err(GatewayError::ReplicaSetting(
                    "give the admin token in AA_ADMIN_TOKEN",
                ));
            }
            let pg = Arc::new(PgStore::open(&url, 16)?);
            tracing::info!(db = %store::redact_url(&url), "PostgreSQL store");
            (pg.clone(), Some(pg))
        }
    };
    let key_path = config
        .key_path()
        .ok_or(GatewayError::ReplicaSetting("give --key"))?;
    let signer = load_or_create_key(&key_path)?;
    let public_key = signer.public_key().to_owned();
    let env: Arc<dyn Environment> = Arc::new(SystemEnv);
    let metrics = Arc::new(Metrics::new());
    let (records, _) = broadcast::channel(4096);
    let admin_token = match &config.admin_token {
        Some(t) => t.clone(),
        None => {
            let path = config.beside_db(".admin-token");
            auth::load_or_create_admin_token(&path)
                .map_err(io(format!("admin token {}", path.display())))?
        }
    };
    let mut tokens = Tokens::new(&admin_token);
    let mut agents = std::collections::HashMap::new();
    for row in store.agents()? {
        // A revoked agent's row keeps no token hash: nothing authenticates as it.
        if !row.token_hash.is_empty() {
            tokens.set_agent(&row.agent_id, &row.token_hash);
        }
        agents.insert(row.agent_id.clone(), row);
    }
    let suspended = agents
        .values()
        .filter(|a: &&store::AgentRow| a.suspended)
        .map(|a| a.agent_id.clone())
        .collect();
    let agents = Arc::new(RwLock::new(agents));
    let engine = Arc::new(Engine::new(env.clone()));
    // Budget usage survives restarts: what was charged before is charged still.
    engine.ledger().restore(store.usage()?);
    let charge: writer::Charger = {
        let (engine, agents, shared) = (engine.clone(), agents.clone(), pg.is_some());
        Box::new(move |event, deltas| {
            let agent = state::agent_of(&agents, &event.agent_id);
            if shared {
                // Replicas charge the same counters: add to them, never overwrite.
                budget::reported_deltas(&engine, &agent, event, deltas);
            } else {
                engine.charge_reported(&agent, event);
            }
        })
    };
    let writer = Writer::start(
        store.clone(),
        signer,
        engine.clone(),
        charge,
        writer::WriterOptions {
            checkpoint_every: config.checkpoint_every,
            queue: config.queue,
            shared: pg.is_some(),
        },
        metrics.clone(),
        records.clone(),
    )?;
    let hub = PolicyHub::new(engine.clone(), store.clone(), suspended);
    let replicas = pg.map(Replicas::new).transpose()?;
    let state = Arc::new(AppState {
        engine,
        hub,
        store: store.clone(),
        writer,
        tokens: RwLock::new(tokens),
        agents,
        metrics,
        records,
        public_key,
        env,
        replicas: replicas.clone(),
    });
    let base = match &config.policy_dir {
        Some(dir) => Some((PolicyBundle::from_dir(dir), dir.display().to_string())),
        None => store.policy()?.map(|b| (Ok(b), "the store".to_owned())),
    };
    if let Some((bundle, from)) = base {
        let bundle = bundle.map_err(|source| GatewayError::Policy {
            dir: from.clone(),
            source,
        })?;
        match state.hub.install(bundle) {
            Ok(version) => tracing::info!(%version, %from, "policy loaded"),
            Err(hub::HubError::Invalid(source)) => {
                return Err(GatewayError::Policy { dir: from, source });
            }
            Err(hub::HubError::Store(e)) => return Err(e.into()),
        }
    } else {
        tracing::warn!(
            "no policy loaded: every decision is denied (unavailable) until PUT /v1/policy"
        );
    }
    if let Some(r) = &replicas {
        r.start(&state)?;
        tracing::info!(replica = %r.id(), "replica in step with the database");
    }
    Ok(state)
}

/// Runs the gateway until `shutdown` resolves, then stops accepting, drains connections
/// (`drain`, 10 s by default), flushes the audit writer and writes the closing checkpoint. `on_listen` gets the
/// bound address (useful with port 0).
pub async fn serve(
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), GatewayError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Opening the store blocks (PostgreSQL's client does): off the async runtime.
    let cfg = config.clone();
    let state = tokio::task::spawn_blocking(move || build_state(&cfg))
        .await
        .map_err(|e| GatewayError::Io {
            what: "start-up".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let app = api::router(state.clone());
    let handle = axum_server::Handle::new();
    let shutdown_handle = handle.clone();
    let drain = config.drain;
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining connections");
        shutdown_handle.graceful_shutdown(Some(drain));
    });
    let listen_handle = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = listen_handle.listening().await {
            on_listen(addr);
        }
    });
    let service = app.into_make_service();
    let result = match &config.tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(io(format!(
                    "TLS material {} / {}",
                    cert.display(),
                    key.display()
                )))?;
            axum_server::bind_rustls(config.listen, tls)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::bind(config.listen)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    // Flush and seal even if serving failed.
    state.writer.stop().await;
    if let Some(r) = state.replicas.clone() {
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
    }
    tracing::info!("audit flushed and sealed");
    result.map_err(io(format!("serving on {}", config.listen)))
}

/// Sets up tracing into a file (`aasm run`, whose terminal belongs to the agent): text lines,
/// `RUST_LOG`-style filter (default `info`).
pub fn init_logging_to(file: std::fs::File) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// Sets up tracing: `RUST_LOG`-style filter (default `info`), text or JSON lines on stderr.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
