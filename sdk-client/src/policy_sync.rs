//! Local mode: keeps the engine's policy in step with the gateway by long polling
//! `GET /v1/policy` with the current version; a new version is compiled and swapped in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aa_core::{CompiledPolicy, Engine};

use crate::gateway::{GatewayClient, GatewayError};

/// Why a policy was not installed; the engine keeps what it had (none: every decision is
/// `unavailable`, so it fails closed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    #[error("the gateway sent no policy")]
    NoPolicy,
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("policy {version} does not compile here: {source}")]
    Compile {
        version: String,
        source: aa_core::PolicyError,
    },
}

/// Fetches the policy once (used at start).
pub(crate) fn fetch_once(http: &GatewayClient, engine: &Engine) -> Result<String, SyncError> {
    let doc = http.policy(None, 0)?.ok_or(SyncError::NoPolicy)?;
    install(engine, &doc.version, doc.bundle)
}

fn install(
    engine: &Engine,
    version: &str,
    bundle: aa_core::PolicyBundle,
) -> Result<String, SyncError> {
    let compiled = CompiledPolicy::compile(bundle).map_err(|source| SyncError::Compile {
        version: version.to_owned(),
        source,
    })?;
    let v = compiled.version().to_owned();
    engine.swap_policy(compiled);
    Ok(v)
}

/// Starts the long-polling thread. It ends when `stop` is set (after its current poll).
pub(crate) fn start(
    http: Arc<GatewayClient>,
    engine: Arc<Engine>,
    wait_secs: u64,
    stop: Arc<AtomicBool>,
) {
    let _ = std::thread::Builder::new()
        .name("aa-policy-sync".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(200);
            while !stop.load(Ordering::Relaxed) {
                let current = engine.policy_version();
                match http.policy(
                    current.as_deref(),
                    if current.is_some() { wait_secs } else { 0 },
                ) {
                    Ok(Some(doc)) => {
                        let _ = install(&engine, &doc.version, doc.bundle);
                        backoff = Duration::from_millis(200);
                    }
                    Ok(None) => backoff = Duration::from_millis(200),
                    Err(_) => {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
}
