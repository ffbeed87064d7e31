//! Tool calls that were allowed and are running: what a binding hands back, instead of an
//! object per call, is a ticket; the call's end is reported against it.
//!
//! The table is bounded: past [`MAX_PENDING`] running calls, the oldest is taken out and
//! reported as ended with the error type [`ABANDONED`] (a call whose promise never settles
//! would otherwise hold its record forever). A ticket reported twice, or after its call was
//! abandoned, is ignored.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use aa_core::{Action, Decision};

/// Most calls running at once before the oldest is reported as abandoned.
pub const MAX_PENDING: usize = 1 << 16;
/// The error type of a call reported as abandoned.
pub const ABANDONED: &str = "Abandoned";

/// What [`crate::Governor::begin_tool`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Began {
    /// Allowed and running: report its end against this ticket.
    Running(u64),
    /// Denied: the decision.
    Denied(Decision),
}

/// An allowed call, running since `started`.
#[derive(Debug)]
pub(crate) struct Pending {
    pub action: Action,
    pub decision: Decision,
    pub started: Instant,
}

/// The running calls, by ticket.
#[derive(Debug, Default)]
pub(crate) struct PendingCalls {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    calls: BTreeMap<u64, Pending>,
}

impl PendingCalls {
    /// Holds `call`; returns its ticket, and the oldest call when the table was full.
    pub fn insert(&self, call: Pending) -> (u64, Option<Pending>) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.next += 1;
        let ticket = t.next;
        t.calls.insert(ticket, call);
        let evicted = if t.calls.len() > MAX_PENDING {
            t.calls.pop_first().map(|(_, c)| c)
        } else {
            None
        };
        (ticket, evicted)
    }

    /// Takes the call of `ticket` out, if it is still held.
    pub fn take(&self, ticket: u64) -> Option<Pending> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.calls.remove(&ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Pending {
        Pending {
            action: Action::ToolCall {
                tool: "t".into(),
                args: serde_json::Map::new(),
            },
            decision: Decision::unavailable("d".into(), "m", None, false),
            started: Instant::now(),
        }
    }

    #[test]
    fn tickets_are_taken_once() {
        let p = PendingCalls::default();
        let (a, none) = p.insert(call());
        assert!(none.is_none());
        let (b, _) = p.insert(call());
        assert_ne!(a, b);
        assert!(p.take(a).is_some());
        assert!(p.take(a).is_none(), "a ticket ends once");
        assert!(p.take(b).is_some());
    }

    #[test]
    fn the_oldest_is_given_back_when_full() {
        let p = PendingCalls::default();
        let (first, _) = p.insert(call());
        for _ in 1..MAX_PENDING {
            assert!(p.insert(call()).1.is_none());
        }
        let (_, evicted) = p.insert(call());
        assert!(evicted.is_some());
        assert!(p.take(first).is_none(), "the oldest was taken out");
    }
}
