//! Budget leases: a replica reserves a slice of a call budget in the database with one exact
//! update ([`crate::store::PgStore::lease`]) and spends it in memory, so most charged decisions
//! touch no database. The slice counts as used from the moment it is granted, so no
//! interleaving of replicas allows past the limit. Unspent calls go back when the lease expires
//! ([`TTL`]) or the replica stops; a crashed replica's slice is never returned: it counts as
//! spent until the window ends. Near the limit the slices shrink to nothing and every decision
//! charges the database exactly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::Charge;

/// Most calls one lease reserves.
pub const SLICE: u64 = 100;
/// A lease takes at most this fraction (1/N) of what is left of the budget.
pub const SHARE: u64 = 8;
/// Fewer calls than this are not leased: the decision charges the database exactly.
pub const MIN_SLICE: u64 = 2;
/// How long a lease may be spent; then its rest is returned.
pub const TTL: Duration = Duration::from_secs(10);

/// Unspent calls of a lease, to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unspent {
    /// Budget name.
    pub budget: String,
    /// Counter key.
    pub key: String,
    /// The window the calls were reserved in.
    pub window_start_ms: i64,
    /// How many.
    pub calls: u64,
}

#[derive(Debug)]
struct Lease {
    window_start_ms: i64,
    remaining: u64,
    expires: Instant,
}

/// This replica's leases, by (budget, key).
#[derive(Debug, Default)]
pub struct Leases {
    map: Mutex<HashMap<(String, String), Lease>>,
}

/// Whether `charge` may be leased: one counter with a call limit only (token and cost limits
/// are checked against usage reported later, so they are charged exactly).
pub fn leasable(charges: &[Charge]) -> Option<&Charge> {
    match charges {
        [c] if c.calls.is_some() && c.tokens.is_none() && c.cost_micros.is_none() => Some(c),
        _ => None,
    }
}

impl Leases {
    /// Spends one call of a live lease for `charge`'s counter and window, if there is one.
    pub fn spend(&self, charge: &Charge) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&(charge.budget.clone(), charge.key.clone())) {
            Some(l)
                if l.remaining > 0
                    && l.window_start_ms == charge.window_start_ms
                    && l.expires > Instant::now() =>
            {
                l.remaining -= 1;
                true
            }
            _ => false,
        }
    }

    /// Adds a granted slice (one call of which the caller spends now). A lease of an older
    /// window is replaced and its rest handed back for returning.
    pub fn add(&self, charge: &Charge, granted: u64) -> Option<Unspent> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (charge.budget.clone(), charge.key.clone());
        let fresh = Lease {
            window_start_ms: charge.window_start_ms,
            remaining: granted.saturating_sub(1),
            expires: Instant::now() + TTL,
        };
        match map.get_mut(&key) {
            Some(l)
                if l.window_start_ms == charge.window_start_ms && l.expires > Instant::now() =>
            {
                l.remaining += fresh.remaining;
                None
            }
            Some(l) => {
                let old = std::mem::replace(l, fresh);
                (old.remaining > 0).then(|| Unspent {
                    budget: charge.budget.clone(),
                    key: charge.key.clone(),
                    window_start_ms: old.window_start_ms,
                    calls: old.remaining,
                })
            }
            None => {
                map.insert(key, fresh);
                None
            }
        }
    }

    /// Removes the expired leases (all of them with `all`), returning their unspent calls.
    pub fn take_expired(&self, all: bool) -> Vec<Unspent> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<(String, String)> = map
            .iter()
            .filter(|(_, l)| all || l.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| {
                let l = map.remove(&k)?;
                (l.remaining > 0).then_some(Unspent {
                    budget: k.0,
                    key: k.1,
                    window_start_ms: l.window_start_ms,
                    calls: l.remaining,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aa_core::budget::Window;

    fn charge(window_start_ms: i64) -> Charge {
        Charge {
            budget: "b".into(),
            key: "global".into(),
            window: Window::Total,
            window_start_ms,
            calls: Some(1000),
            tokens: None,
            cost_micros: None,
        }
    }

    #[test]
    fn a_lease_is_spent_once_per_call_and_its_rest_returned() {
        let leases = Leases::default();
        assert!(!leases.spend(&charge(0)));
        assert_eq!(leases.add(&charge(0), 3), None);
        assert!(leases.spend(&charge(0)));
        // Another window: not this lease.
        assert!(!leases.spend(&charge(60_000)));
        assert!(leases.spend(&charge(0)));
        assert!(!leases.spend(&charge(0)));
        assert_eq!(leases.add(&charge(0), 5), None);
        assert_eq!(
            leases.take_expired(true),
            vec![Unspent {
                budget: "b".into(),
                key: "global".into(),
                window_start_ms: 0,
                calls: 4
            }]
        );
        assert!(!leases.spend(&charge(0)));
    }
}
