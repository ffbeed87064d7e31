//! Budget charges as replicas make them: the counters a decision needs ([`charges`]) and the
//! amounts a reported event adds ([`reported_deltas`]), computed the way the engine's own
//! ledger computes them, so one gateway and several replicas count alike.

use aa_core::budget::UsageRow;
use aa_core::{Action, ActionKind, Agent, AuditEvent, CompiledPolicy, Engine};

use crate::store::Charge;

/// The counters one call of `kind` by `agent` charges, with their limits, now.
pub fn charges(
    policy: &CompiledPolicy,
    agent: &Agent,
    kind: ActionKind,
    now_ms: i64,
) -> Vec<Charge> {
    policy
        .budgets()
        .rules
        .iter()
        .filter_map(|rule| {
            rule.key_for(agent, kind).map(|key| Charge {
                budget: rule.name.clone(),
                key,
                window: rule.window,
                window_start_ms: rule.window.start(now_ms),
                calls: rule.calls,
                tokens: rule.tokens,
                cost_micros: rule.cost_micros,
            })
        })
        .collect()
}

/// What a reported event adds to the counters (as [`Engine::charge_reported`] charges it): an
/// allowed decision the event records counts one call; an outcome's usage adds tokens and cost
/// (a combined event both).
pub fn reported_deltas(
    engine: &Engine,
    agent: &Agent,
    event: &AuditEvent,
    deltas: &mut Vec<UsageRow>,
) {
    let Some(policy) = engine.policy() else {
        return;
    };
    let now = engine.env().now_ms();
    let kind = event.action.kind();
    let calls = u64::from(event.counts_call());
    let (tokens, cost_micros) = match event.outcome.as_ref().and_then(|o| o.usage.as_ref()) {
        Some(usage) => {
            let model = match &event.action {
                Action::ModelCall { model, .. } => Some(model.as_str()),
                _ => None,
            };
            let cost = policy.prices().cost_micros(model, usage).unwrap_or(0);
            (usage.total_tokens(), cost)
        }
        None => (0, 0),
    };
    if calls == 0 && tokens == 0 && cost_micros == 0 {
        return;
    }
    for rule in &policy.budgets().rules {
        if let Some(key) = rule.key_for(agent, kind) {
            deltas.push(UsageRow {
                budget: rule.name.clone(),
                key,
                window_start_ms: rule.window.start(now),
                calls,
                tokens,
                cost_micros,
            });
        }
    }
}
