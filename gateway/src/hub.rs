//! The policy hub: the stored bundle plus the suspended agents make the effective bundle, which
//! is compiled, swapped into the engine atomically, and announced to long-polling clients.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aa_core::{CompiledPolicy, Engine, PolicyBundle, PolicyError};
use tokio::sync::watch;

use crate::store::Store;

/// Owns policy changes; serialises them so a PUT and a suspend never interleave.
pub struct PolicyHub {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    base: Mutex<Option<PolicyBundle>>,
    version: watch::Sender<String>,
}

/// Why a policy change failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The bundle does not compile; the old one stays active.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// It could not be stored.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl PolicyHub {
    /// A hub over `engine`; call [`PolicyHub::install`] to load a bundle.
    pub fn new(engine: Arc<Engine>, store: Arc<dyn Store>) -> Self {
        let (version, _) = watch::channel(String::new());
        PolicyHub {
            engine,
            store,
            base: Mutex::new(None),
            version,
        }
    }

    /// Compiles `base` with `suspended`, stores it, swaps it in and announces the new version.
    /// On error nothing changes.
    pub fn install(
        &self,
        base: PolicyBundle,
        suspended: BTreeSet<String>,
    ) -> Result<String, HubError> {
        let mut guard = self.base.lock().unwrap_or_else(|p| p.into_inner());
        let mut effective = base.clone();
        effective.suspended = suspended;
        let compiled = CompiledPolicy::compile(effective)?;
        let version = compiled.version().to_owned();
        let mut stored = base;
        stored.suspended.clear();
        self.store.put_policy(&stored)?;
        self.engine.swap_policy(compiled);
        *guard = Some(stored);
        self.version.send_replace(version.clone());
        Ok(version)
    }

    /// Recompiles the current bundle with a new suspended set (kill switch).
    pub fn set_suspended(&self, suspended: BTreeSet<String>) -> Result<Option<String>, HubError> {
        let base = self.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match base {
            Some(b) => self.install(b, suspended).map(Some),
            None => Ok(None),
        }
    }

    /// The effective bundle and its version, if a policy is loaded.
    pub fn current(&self) -> Option<(Arc<CompiledPolicy>, String)> {
        self.engine.policy().map(|p| {
            let v = p.version().to_owned();
            (p, v)
        })
    }

    /// Receives every new version.
    pub fn subscribe(&self) -> watch::Receiver<String> {
        self.version.subscribe()
    }
}
