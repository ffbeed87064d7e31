use std::sync::Mutex;

// Looked up on every decision by budget name and counter key: a fast hasher (seeded per
// process), not SipHash.
use foldhash::HashMap;

use serde::{Deserialize, Serialize};

use super::{BudgetRule, Window};
use crate::model::{ActionKind, Agent};

/// Usage of one budget by one counter key within its current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counter {
    window_start: i64,
    calls: u64,
    tokens: u64,
    cost_micros: u64,
}

impl Counter {
    fn roll(&mut self, window: Window, now_ms: i64) {
        let start = window.start(now_ms);
        if start != self.window_start {
            *self = Counter {
                window_start: start,
                ..Counter::default()
            };
        }
    }
}

/// The budget state exposed to Cedar as `context.budget` (the tightest applicable budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetView {
    /// Some applicable budget is already spent.
    pub exceeded: bool,
    /// Calls left before the tightest call budget is spent (`i64::MAX` if none).
    pub calls_remaining: i64,
    /// Tokens left (`i64::MAX` if none).
    pub tokens_remaining: i64,
    /// Micro-USD left (`i64::MAX` if none).
    pub cost_remaining_micros: i64,
    /// Highest used/limit ratio across applicable budgets, percent.
    pub utilization_pct: i64,
}

impl Default for BudgetView {
    fn default() -> Self {
        BudgetView {
            exceeded: false,
            calls_remaining: i64::MAX,
            tokens_remaining: i64::MAX,
            cost_remaining_micros: i64::MAX,
            utilization_pct: 0,
        }
    }
}

/// A budget that would be exceeded by an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetBreach {
    /// The budget's name.
    pub budget: String,
    /// `calls`, `tokens` or `cost_usd`.
    pub dimension: &'static str,
    /// Used so far in the window.
    pub used: u64,
    /// The limit.
    pub limit: u64,
    /// The window.
    pub window: Window,
}

impl std::fmt::Display for BudgetBreach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = match self.window {
            Window::Total => "in total".to_owned(),
            w => format!("this {}", w.as_str()),
        };
        if self.dimension == "cost_usd" {
            write!(
                f,
                "budget `{}` exceeded: ${:.6} of ${:.6} spent {per}",
                self.budget,
                self.used as f64 / 1e6,
                self.limit as f64 / 1e6
            )
        } else {
            write!(
                f,
                "budget `{}` exceeded: {}/{} {} {per}",
                self.budget, self.used, self.limit, self.dimension
            )
        }
    }
}

/// Live usage of one budget for one counter key (`GET /v1/budgets`, `aasm budgets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BudgetStatus {
    /// Budget name.
    pub budget: String,
    /// Counter key: `agent:<id>`, `team:<name>` or `global`.
    pub key: String,
    /// `minute`, `hour`, `day` or `total`.
    pub window: String,
    /// Start of the current window, unix ms.
    pub window_start_ms: i64,
    /// Calls used / limit.
    pub calls_used: u64,
    /// Call limit, if any.
    pub calls_limit: Option<u64>,
    /// Tokens used.
    pub tokens_used: u64,
    /// Token limit, if any.
    pub tokens_limit: Option<u64>,
    /// Cost used, micro-USD.
    pub cost_used_micros: u64,
    /// Cost limit, micro-USD, if any.
    pub cost_limit_micros: Option<u64>,
}

/// One counter as a store keeps it, so usage survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Budget name.
    pub budget: String,
    /// Counter key: `agent:<id>`, `team:<name>` or `global`.
    pub key: String,
    /// Start of the counter's window, unix ms.
    pub window_start_ms: i64,
    /// Calls counted in the window.
    pub calls: u64,
    /// Tokens charged in the window.
    pub tokens: u64,
    /// Cost charged in the window, micro-USD.
    pub cost_micros: u64,
}

/// Thread-safe usage counters for a set of budget rules. Counters are keyed by budget name,
/// so a reloaded budget file keeps the usage of budgets it still has. The ledger remembers
/// which counters changed, so a store can persist just those ([`BudgetLedger::take_changed`]).
#[derive(Debug, Default)]
pub struct BudgetLedger {
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// budget name → counter key → usage.
    map: HashMap<String, HashMap<String, Slot>>,
}

/// A counter, and whether it changed since the last [`BudgetLedger::take_changed`].
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    counter: Counter,
    changed: bool,
}

impl Counters {
    /// The counter of `budget` and `key`, if it exists.
    fn get(&self, budget: &str, key: &str) -> Option<Counter> {
        self.map.get(budget)?.get(key).map(|s| s.counter)
    }

    /// Applies `f` to the counter of `budget` and `key` (created if new) and marks it changed;
    /// no allocation for a budget that exists: this is on the decision path.
    fn change(&mut self, budget: &str, key: String, f: impl FnOnce(&mut Counter)) {
        if !self.map.contains_key(budget) {
            self.map.insert(budget.to_owned(), HashMap::default());
        }
        if let Some(keys) = self.map.get_mut(budget) {
            let slot = keys.entry(key).or_default();
            slot.changed = true;
            f(&mut slot.counter);
        }
    }
}

fn remaining(limit: u64, used: u64) -> i64 {
    i64::try_from(limit.saturating_sub(used)).unwrap_or(i64::MAX)
}

fn pct(used: u64, limit: u64) -> i64 {
    if limit == 0 {
        return 100;
    }
    i64::try_from(u128::from(used) * 100 / u128::from(limit)).unwrap_or(i64::MAX)
}

impl BudgetLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A poisoned lock only means another thread panicked mid-update of plain counters;
        // the counters are still valid numbers, so keep going.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of every budget that applies to `agent` doing `kind`.
    pub fn view(
        &self,
        rules: &[BudgetRule],
        agent: &Agent,
        kind: ActionKind,
        now_ms: i64,
    ) -> BudgetView {
        let mut view = BudgetView::default();
        let counters = self.lock();
        for rule in rules {
            let Some(key) = rule.key_for(agent, kind) else {
                continue;
            };
            let mut c = counters.get(&rule.name, &key).unwrap_or_default();
            c.roll(rule.window, now_ms);
            let dims = [
                (rule.calls, c.calls, &mut view.calls_remaining),
                (rule.tokens, c.tokens, &mut view.tokens_remaining),
                (
                    rule.cost_micros,
                    c.cost_micros,
                    &mut view.cost_remaining_micros,
                ),
            ];
            for (limit, used, slot) in dims {
                if let Some(limit) = limit {
                    *slot = (*slot).min(remaining(limit, used));
                    view.utilization_pct = view.utilization_pct.max(pct(used, limit));
                    view.exceeded |= used >= limit;
                }
            }
        }
        view
    }

    /// Atomically checks every applicable budget and, if none is spent, counts one call
    /// against each. Tokens and cost are checked (already spent → breach) but charged only
    /// by [`BudgetLedger::charge_usage`].
    pub fn try_charge_call(
        &self,
        rules: &[BudgetRule],
        agent: &Agent,
        kind: ActionKind,
        now_ms: i64,
    ) -> Result<(), BudgetBreach> {
        let mut counters = self.lock();
        let applicable: Vec<(&BudgetRule, String)> = rules
            .iter()
            .filter_map(|r| r.key_for(agent, kind).map(|k| (r, k)))
            .collect();
        for (rule, key) in &applicable {
            let mut c = counters.get(&rule.name, key).unwrap_or_default();
            c.roll(rule.window, now_ms);
            let breach = |dimension, used, limit| BudgetBreach {
                budget: rule.name.clone(),
                dimension,
                used,
                limit,
                window: rule.window,
            };
            if let Some(limit) = rule.calls
                && c.calls.saturating_add(1) > limit
            {
                return Err(breach("calls", c.calls, limit));
            }
            if let Some(limit) = rule.tokens
                && c.tokens >= limit
            {
                return Err(breach("tokens", c.tokens, limit));
            }
            if let Some(limit) = rule.cost_micros
                && c.cost_micros >= limit
            {
                return Err(breach("cost_usd", c.cost_micros, limit));
            }
        }
        for (rule, key) in applicable {
            counters.change(&rule.name, key, |c| {
                c.roll(rule.window, now_ms);
                c.calls = c.calls.saturating_add(1);
            });
        }
        Ok(())
    }

    /// Counts one call against every applicable budget without checking limits: for calls that
    /// were decided elsewhere (a layer deciding locally) and are reported after the fact.
    pub fn record_call(&self, rules: &[BudgetRule], agent: &Agent, kind: ActionKind, now_ms: i64) {
        let mut counters = self.lock();
        for rule in rules {
            let Some(key) = rule.key_for(agent, kind) else {
                continue;
            };
            counters.change(&rule.name, key, |c| {
                c.roll(rule.window, now_ms);
                c.calls = c.calls.saturating_add(1);
            });
        }
    }

    /// Charges tokens and cost reported after an action ran.
    pub fn charge_usage(
        &self,
        rules: &[BudgetRule],
        agent: &Agent,
        kind: ActionKind,
        tokens: u64,
        cost_micros: u64,
        now_ms: i64,
    ) {
        if tokens == 0 && cost_micros == 0 {
            return;
        }
        let mut counters = self.lock();
        for rule in rules {
            let Some(key) = rule.key_for(agent, kind) else {
                continue;
            };
            counters.change(&rule.name, key, |c| {
                c.roll(rule.window, now_ms);
                c.tokens = c.tokens.saturating_add(tokens);
                c.cost_micros = c.cost_micros.saturating_add(cost_micros);
            });
        }
    }

    /// Live usage of every counter of the given rules.
    pub fn status(&self, rules: &[BudgetRule], now_ms: i64) -> Vec<BudgetStatus> {
        let counters = self.lock();
        let mut out: Vec<BudgetStatus> = counters
            .map
            .iter()
            .flat_map(|(name, m)| m.iter().map(move |(key, c)| (name, key, c)))
            .filter_map(|(name, key, c)| {
                let rule = rules.iter().find(|r| &r.name == name)?;
                let mut c = c.counter;
                c.roll(rule.window, now_ms);
                Some(BudgetStatus {
                    budget: name.clone(),
                    key: key.clone(),
                    window: rule.window.as_str().to_owned(),
                    window_start_ms: c.window_start,
                    calls_used: c.calls,
                    calls_limit: rule.calls,
                    tokens_used: c.tokens,
                    tokens_limit: rule.tokens,
                    cost_used_micros: c.cost_micros,
                    cost_limit_micros: rule.cost_micros,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
        out
    }

    /// The counters changed since the last call, for a store to persist; they are no longer
    /// marked. If persisting fails, hand them back with [`BudgetLedger::mark_changed`].
    pub fn take_changed(&self) -> Vec<UsageRow> {
        let mut counters = self.lock();
        let mut rows = Vec::new();
        for (budget, keys) in &mut counters.map {
            for (key, slot) in keys.iter_mut().filter(|(_, s)| s.changed) {
                slot.changed = false;
                let c = slot.counter;
                rows.push(UsageRow {
                    budget: budget.clone(),
                    key: key.clone(),
                    window_start_ms: c.window_start,
                    calls: c.calls,
                    tokens: c.tokens,
                    cost_micros: c.cost_micros,
                });
            }
        }
        rows.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
        rows
    }

    /// Marks counters as changed again (their write failed), so the next
    /// [`BudgetLedger::take_changed`] returns their current values.
    pub fn mark_changed(&self, rows: &[UsageRow]) {
        let mut counters = self.lock();
        for r in rows {
            if let Some(slot) = counters
                .map
                .get_mut(&r.budget)
                .and_then(|keys| keys.get_mut(&r.key))
            {
                slot.changed = true;
            }
        }
    }

    /// Sets counters to these values, lower or higher: for a mirror of counters kept elsewhere
    /// (gateway replicas mirror the database's, which go down when an unspent lease returns).
    /// Counters not given are unchanged; none is marked changed.
    pub fn set(&self, rows: impl IntoIterator<Item = UsageRow>) {
        let mut counters = self.lock();
        for r in rows {
            counters
                .map
                .entry(r.budget)
                .or_default()
                .entry(r.key)
                .or_default()
                .counter = Counter {
                window_start: r.window_start_ms,
                calls: r.calls,
                tokens: r.tokens,
                cost_micros: r.cost_micros,
            };
        }
    }

    /// Loads persisted counters (at start-up, before any decision). A counter already in
    /// the ledger keeps the larger usage of the two, so restoring never lowers a budget.
    pub fn restore(&self, rows: impl IntoIterator<Item = UsageRow>) {
        let mut counters = self.lock();
        for r in rows {
            let c = &mut counters
                .map
                .entry(r.budget)
                .or_default()
                .entry(r.key)
                .or_default()
                .counter;
            if r.window_start_ms > c.window_start {
                *c = Counter {
                    window_start: r.window_start_ms,
                    calls: r.calls,
                    tokens: r.tokens,
                    cost_micros: r.cost_micros,
                };
            } else if r.window_start_ms == c.window_start {
                c.calls = c.calls.max(r.calls);
                c.tokens = c.tokens.max(r.tokens);
                c.cost_micros = c.cost_micros.max(r.cost_micros);
            }
        }
    }
}
