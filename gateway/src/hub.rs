//! The policy hub: the stored bundle plus the suspended agents make the effective bundle, which
//! is compiled, swapped into the engine atomically, and announced to long-polling clients.
//!
//! The hub owns both halves of the effective bundle. Every change — a new bundle
//! (`PUT /v1/policy`) or a kill-switch flip — reads, compiles, persists and installs under one
//! lock, so concurrent changes apply one after the other and none is lost: a policy push cannot
//! revert a suspension, and two suspensions cannot undo each other.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use aa_core::{CompiledPolicy, Engine, PolicyBundle, PolicyError};
use tokio::sync::watch;

use crate::store::{Store, StoreError};

/// Owns policy changes; serialises them so a PUT and a suspend never interleave.
pub struct PolicyHub {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    state: Mutex<HubState>,
    version: watch::Sender<String>,
}

/// The inputs of the effective bundle.
struct HubState {
    /// The stored bundle (without the suspended set); `None` until one is installed.
    base: Option<PolicyBundle>,
    /// Agents under the kill switch.
    suspended: BTreeSet<String>,
}

/// Why a policy change failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The bundle does not compile; the old one stays active.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// It could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PolicyHub {
    /// A hub over `engine` with the agents suspended at start-up; call
    /// [`PolicyHub::install`] to load a bundle.
    pub fn new(engine: Arc<Engine>, store: Arc<dyn Store>, suspended: BTreeSet<String>) -> Self {
        let (version, _) = watch::channel(String::new());
        PolicyHub {
            engine,
            store,
            state: Mutex::new(HubState {
                base: None,
                suspended,
            }),
            version,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the base bundle: compiles it with the current suspended set, stores it, swaps it
    /// in and announces the new version. On error nothing changes.
    pub fn install(&self, mut base: PolicyBundle) -> Result<String, HubError> {
        let mut state = self.lock();
        base.suspended.clear();
        let compiled = compile(&base, &state.suspended)?;
        self.store.put_policy(&base)?;
        state.base = Some(base);
        Ok(self.activate(compiled))
    }

    /// Turns the kill switch for `agent_id` on or off. `persist` records the change (the agent
    /// row) and runs under the hub's lock, after the new bundle compiled and before it is
    /// installed, so the stored rows and the effective bundle change in the same order. Returns
    /// what `persist` returned and the new version (`None` while no bundle is loaded: then every
    /// decision is denied anyway). If `persist` fails nothing changes.
    pub fn set_suspended<T, E: From<HubError>>(
        &self,
        agent_id: &str,
        suspended: bool,
        persist: impl FnOnce() -> Result<T, E>,
    ) -> Result<(T, Option<String>), E> {
        let mut state = self.lock();
        let mut next = state.suspended.clone();
        if suspended {
            next.insert(agent_id.to_owned());
        } else {
            next.remove(agent_id);
        }
        let compiled = match &state.base {
            Some(base) => Some(compile(base, &next).map_err(HubError::from)?),
            None => None,
        };
        let persisted = persist()?;
        state.suspended = next;
        Ok((persisted, compiled.map(|c| self.activate(c))))
    }

    /// Runs `f` under the hub's lock with the current suspended set: for changes to agent rows
    /// (registration) that must not interleave with a kill-switch flip.
    pub fn with_suspended<T>(&self, f: impl FnOnce(&BTreeSet<String>) -> T) -> T {
        f(&self.lock().suspended)
    }

    /// Takes the hub's lock for a replica's sync with the database (it must not interleave with
    /// a local change, and takes the locks in the same order: the hub's, then the database's).
    pub fn lock_for_sync(&self) -> HubLock<'_> {
        HubLock {
            hub: self,
            state: self.lock(),
        }
    }

    /// Swaps `compiled` in and announces its version. Call with the lock held.
    fn activate(&self, compiled: CompiledPolicy) -> String {
        let version = compiled.version().to_owned();
        self.engine.swap_policy(compiled);
        self.version.send_replace(version.clone());
        version
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

/// The hub's lock, held by a replica's sync.
pub struct HubLock<'a> {
    hub: &'a PolicyHub,
    state: MutexGuard<'a, HubState>,
}

impl HubLock<'_> {
    /// Installs the stored bundle (when there is one) with the stored suspended set; swaps it
    /// in only if its version differs from the active one. On error nothing changes.
    pub fn replace(
        &mut self,
        base: Option<PolicyBundle>,
        suspended: BTreeSet<String>,
    ) -> Result<(), PolicyError> {
        let base = match base {
            Some(mut b) => {
                b.suspended.clear();
                Some(b)
            }
            None => self.state.base.take(),
        };
        if let Some(b) = &base {
            let compiled = compile(b, &suspended)?;
            if self.hub.engine.policy_version().as_deref() != Some(compiled.version()) {
                self.hub.activate(compiled);
            }
        }
        self.state.base = base;
        self.state.suspended = suspended;
        Ok(())
    }
}

/// `base` with `suspended`, compiled.
fn compile(
    base: &PolicyBundle,
    suspended: &BTreeSet<String>,
) -> Result<CompiledPolicy, PolicyError> {
    let mut effective = base.clone();
    effective.suspended = suspended.clone();
    CompiledPolicy::compile(effective)
}
