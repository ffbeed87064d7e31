//! The decision engine: policy snapshot + budgets + audit sink.

use std::sync::Arc;

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use cedar_policy::{AuthorizationError, Authorizer, Decision as CedarDecision, PolicySet, Request};

use crate::audit::AuditSink;
use crate::budget::{BudgetLedger, BudgetStatus, BudgetView};
use crate::env::{Environment, format_ts};
use crate::error::AuditError;
use crate::model::{
    Action, ActionKind, Agent, AuditEvent, Decision, Effect, Layer, Outcome, Reason, Usage,
};
use crate::policy::CompiledPolicy;
use crate::policy::fast::FastRequest;
use crate::policy::index::PolicyIndex;
use crate::policy::request::{self, names};

/// Decides actions against the active policy snapshot and budgets, and writes audit events to
/// an optional sink.
///
/// The snapshot is swapped atomically ([`Engine::swap_policy`]); a decision loads it once and
/// is made entirely against that version, which it reports in `policy_version`.
pub struct Engine {
    policy: ArcSwapOption<CompiledPolicy>,
    ledger: BudgetLedger,
    env: Arc<dyn Environment>,
    fail_open: bool,
    slicing: bool,
    sink: Option<Arc<dyn AuditSink>>,
    stats: Stats,
}

/// How decisions were reached, for metrics and for tests of the fast path.
#[derive(Debug, Default)]
struct Stats {
    fast: AtomicU64,
    cedar: AtomicU64,
}

/// Counts of decisions by evaluation path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Decided by the fast evaluator without building a Cedar request.
    pub fast_path: u64,
    /// Decided by Cedar (the slice held something the fast evaluator leaves to Cedar).
    pub cedar_path: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policy_version", &self.policy_version())
            .field("fail_open", &self.fail_open)
            .field("audit", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with no policy: every decision is `unavailable` (denied unless fail-open).
    pub fn new(env: Arc<dyn Environment>) -> Self {
        Engine {
            policy: ArcSwapOption::empty(),
            ledger: BudgetLedger::new(),
            env,
            fail_open: false,
            slicing: true,
            sink: None,
            stats: Stats::default(),
        }
    }

    /// An engine deciding against `policy`.
    pub fn with_policy(policy: impl Into<Arc<CompiledPolicy>>, env: Arc<dyn Environment>) -> Self {
        let engine = Self::new(env);
        engine.swap_policy(policy);
        engine
    }

    /// Embedded mode: compiles the policy directory, with the system clock.
    #[cfg(feature = "os")]
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> Result<Self, crate::PolicyError> {
        Ok(Self::with_policy(
            CompiledPolicy::from_dir(dir)?,
            Arc::new(crate::env::SystemEnv),
        ))
    }

    /// Allow (flagged `fail_open`) instead of deny when no decision can be made.
    #[must_use]
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Evaluate only the policies whose scope can match (default), or the whole set. Both give
    /// the same decisions; the switch exists so tests and benchmarks can prove it.
    #[must_use]
    pub fn slicing(mut self, slicing: bool) -> Self {
        self.slicing = slicing;
        self
    }

    /// Write an audit event for every decision and reported outcome to `sink`.
    #[must_use]
    pub fn with_audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Replaces the active policy atomically; returns the previous one.
    pub fn swap_policy(
        &self,
        policy: impl Into<Arc<CompiledPolicy>>,
    ) -> Option<Arc<CompiledPolicy>> {
        self.policy.swap(Some(policy.into()))
    }

    /// Removes the active policy: decisions become `unavailable`.
    pub fn clear_policy(&self) -> Option<Arc<CompiledPolicy>> {
        self.policy.swap(None)
    }

    /// The active snapshot.
    pub fn policy(&self) -> Option<Arc<CompiledPolicy>> {
        self.policy.load_full()
    }

    /// Version of the active snapshot.
    pub fn policy_version(&self) -> Option<String> {
        self.policy.load().as_ref().map(|p| p.version().to_owned())
    }

    /// How many decisions took the fast path and how many went to Cedar.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            fast_path: self.stats.fast.load(Ordering::Relaxed),
            cedar_path: self.stats.cedar.load(Ordering::Relaxed),
        }
    }

    /// The budget counters.
    pub fn ledger(&self) -> &BudgetLedger {
        &self.ledger
    }

    /// The clock and id source.
    pub fn env(&self) -> &Arc<dyn Environment> {
        &self.env
    }

    /// Live usage of every budget of the active policy.
    pub fn budget_status(&self) -> Vec<BudgetStatus> {
        match self.policy.load().as_ref() {
            Some(p) => self.ledger.status(&p.budgets().rules, self.env.now_ms()),
            None => Vec::new(),
        }
    }

    /// Decides whether `agent` may do `action` now, and writes the decision to the audit sink.
    /// Never fails: when no decision can be made the answer is `deny` / `unavailable` (or
    /// `allow` flagged `fail_open` when so configured).
    pub fn decide(&self, agent: &Agent, action: &Action, layer: Layer) -> Decision {
        let decision = self.evaluate(agent, action, layer);
        match self.record(agent, action, layer, &decision, None) {
            Ok(()) => decision,
            Err(e) => self.unavailable(
                format!("audit log unavailable, so the action cannot be recorded: {e}"),
                decision.policy_version,
            ),
        }
    }

    /// Decides without writing to the audit sink (the caller records the event itself).
    pub fn evaluate(&self, agent: &Agent, action: &Action, layer: Layer) -> Decision {
        self.evaluate_inner(agent, action, layer, true)
    }

    /// What the decision would be, with no side effect: no audit event and no budget charged
    /// (the proxy uses it to filter the tools an MCP server offers).
    pub fn preview(&self, agent: &Agent, action: &Action, layer: Layer) -> Decision {
        self.evaluate_inner(agent, action, layer, false)
    }

    fn evaluate_inner(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        charge: bool,
    ) -> Decision {
        if let Err(e) = agent.validate().and_then(|()| action.validate()) {
            return self.decision(Effect::Deny, Reason::InvalidInput, e.to_string(), None);
        }
        let guard = self.policy.load();
        let Some(policy) = guard.as_ref() else {
            return self.unavailable("no policy is loaded".into(), None);
        };
        let version = Some(policy.version().to_owned());
        if policy.is_suspended(&agent.agent_id) {
            let mut d = self.decision(
                Effect::Deny,
                Reason::Suspended,
                format!("agent `{}` is suspended", agent.agent_id),
                version,
            );
            d.policy_ids.clear();
            return d;
        }
        let Some(n) = names() else {
            return self.unavailable("Cedar names failed to initialise".into(), version);
        };
        let now = self.env.now_ms();
        let kind = action.kind();
        let rules = &policy.budgets().rules;
        let view = OnceCell::new();
        let budget = || {
            *view.get_or_init(|| {
                if rules.is_empty() {
                    BudgetView::default()
                } else {
                    self.ledger.view(rules, agent, kind, now)
                }
            })
        };
        let resource = FastRequest::resource_of(action);

        let verdict = if self.slicing {
            let principal_uid = request::uid(&n.agent, &agent.agent_id);
            let resource_uid = request::resource_uid(n, action);
            let slice = policy.index.slice(kind, &principal_uid, &resource_uid);
            let fast = FastRequest {
                agent,
                action,
                layer,
                budget: &budget,
                now_ms: now,
                resource,
                args_json: OnceCell::new(),
                literals: policy.index.literals.as_ref(),
                found: std::cell::RefCell::default(),
            };
            match fast_verdict(&policy.index, slice.members(layer), kind, layer, &fast) {
                Some(v) => {
                    self.stats.fast.fetch_add(1, Ordering::Relaxed);
                    Ok(v)
                }
                None => {
                    self.stats.cedar.fetch_add(1, Ordering::Relaxed);
                    self.cedar_verdict(policy, &slice.set, agent, action, layer, budget(), now)
                }
            }
        } else {
            self.cedar_verdict(policy, &policy.full, agent, action, layer, budget(), now)
        };
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => return self.unavailable(e.to_string(), version),
        };

        if !verdict.forbids.is_empty() {
            let reasons: Vec<String> = verdict
                .forbids
                .iter()
                .filter_map(|id| policy.policy(id).and_then(|i| i.reason.clone()))
                .collect();
            let message = if reasons.is_empty() {
                listed("forbidden by policy ", &verdict.forbids)
            } else {
                reasons.join("; ")
            };
            let mut d = self.decision(Effect::Deny, Reason::Forbidden, message, version);
            d.policy_ids = verdict.forbids;
            return d;
        }
        if verdict.permits.is_empty() {
            let (ty, id) = FastRequest::resource_of(action);
            let message = format!("no policy permits {kind} on {ty}::{id:?}");
            return self.decision(Effect::Deny, Reason::NoPermit, message, version);
        }
        if !verdict.forbid_errors.is_empty() {
            let message = format!(
                "a forbid policy could not be evaluated: {}",
                verdict.forbid_errors.join("; ")
            );
            if !self.fail_open {
                return self.decision(Effect::Deny, Reason::EvaluationError, message, version);
            }
            let mut d = self.decision(Effect::Allow, Reason::EvaluationError, message, version);
            d.fail_open = true;
            d.policy_ids = verdict.permits;
            return d;
        }
        if charge
            && !rules.is_empty()
            && let Err(breach) = self.ledger.try_charge_call(rules, agent, kind, now)
        {
            let mut d = self.decision(
                Effect::Deny,
                Reason::BudgetExceeded,
                breach.to_string(),
                version,
            );
            d.budget = Some(breach.budget);
            return d;
        }
        let message = listed("permitted by ", &verdict.permits);
        let mut d = self.decision(Effect::Allow, Reason::Permitted, message, version);
        d.policy_ids = verdict.permits;
        d
    }

    /// Asks Cedar: builds the request and evaluates `set`.
    #[allow(clippy::too_many_arguments)]
    fn cedar_verdict(
        &self,
        policy: &CompiledPolicy,
        set: &PolicySet,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        budget: BudgetView,
        now: i64,
    ) -> Result<Verdict, Unmappable> {
        let n = names().ok_or(Unmappable::Names)?;
        let req = request::build(n, agent, action, layer, &budget, now)
            .map_err(|e| Unmappable::Action(e.0))?;
        let cedar_request =
            Request::new(req.principal, req.action, req.resource, req.context, None)
                .map_err(|e| Unmappable::Request(e.to_string()))?;
        let response = Authorizer::new().is_authorized(&cedar_request, set, &req.entities);
        let mut determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        determining.sort_unstable();
        let forbid_errors: Vec<String> = response
            .diagnostics()
            .errors()
            .filter_map(|AuthorizationError::PolicyEvaluationError(e)| {
                let id = e.policy_id().to_string();
                policy
                    .policy(&id)
                    .filter(|i| i.forbid)
                    .map(|_| e.to_string())
            })
            .collect();
        Ok(match response.decision() {
            CedarDecision::Deny => Verdict {
                forbids: determining,
                permits: Vec::new(),
                forbid_errors,
            },
            CedarDecision::Allow => Verdict {
                forbids: Vec::new(),
                permits: determining,
                forbid_errors,
            },
        })
    }

    /// Reports what happened after an allowed action ran: charges its token usage and cost to
    /// the budgets and writes an audit event carrying the outcome.
    pub fn report(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        decision: &Decision,
        outcome: Outcome,
    ) -> Result<(), AuditError> {
        self.report_owned(agent, action.clone(), layer, decision.clone(), outcome)
    }

    /// [`Engine::report`] taking the action and decision, which move into the event.
    pub fn report_owned(
        &self,
        agent: &Agent,
        action: Action,
        layer: Layer,
        decision: Decision,
        mut outcome: Outcome,
    ) -> Result<(), AuditError> {
        if let Some(usage) = outcome.usage.as_mut() {
            let priced = self.charge_usage(agent, &action, usage);
            if usage.cost_usd.is_none() {
                usage.cost_usd = priced;
            }
        }
        match &self.sink {
            Some(sink) => {
                sink.append(self.event_owned(agent, action, layer, decision, Some(outcome)))
            }
            None => Ok(()),
        }
    }

    /// Charges what another process reports (the gateway's `/v1/events`), once per event: an
    /// allowed decision the event records counts as a call ([`AuditEvent::counts_call`]); an
    /// outcome's usage is charged as [`Engine::report`] charges it. A combined event does both.
    pub fn charge_reported(&self, agent: &Agent, event: &AuditEvent) {
        if event.counts_call()
            && let Some(policy) = self.policy.load().as_ref()
        {
            let now = self.env.now_ms();
            let rules = &policy.budgets().rules;
            self.ledger
                .record_call(rules, agent, event.action.kind(), now);
        }
        if let Some(usage) = event.outcome.as_ref().and_then(|o| o.usage.as_ref()) {
            self.charge_usage(agent, &event.action, usage);
        }
    }

    /// Charges `usage` (tokens, and its cost from the price table) to the budgets: the one
    /// charge path. Returns the price-table cost in USD, if the model is priced.
    fn charge_usage(&self, agent: &Agent, action: &Action, usage: &Usage) -> Option<f64> {
        let guard = self.policy.load();
        let policy = guard.as_ref()?;
        let model = match action {
            Action::ModelCall { model, .. } => Some(model.as_str()),
            _ => None,
        };
        let cost = policy.prices().cost_micros(model, usage);
        self.ledger.charge_usage(
            &policy.budgets().rules,
            agent,
            action.kind(),
            usage.total_tokens(),
            cost.unwrap_or(0),
            self.env.now_ms(),
        );
        policy.prices().cost_usd(model, usage)
    }

    /// Writes a decision made with [`Engine::evaluate`] or [`Engine::preview`] to the audit sink
    /// (a layer that annotates the decision, such as the kernel layer saying it enforced it).
    pub fn record_decision(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        decision: &Decision,
    ) -> Result<(), AuditError> {
        self.record(agent, action, layer, decision, None)
    }

    /// The audit event for a decision (and outcome), stamped with a fresh id and the time.
    pub fn event(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        decision: &Decision,
        outcome: Option<Outcome>,
    ) -> AuditEvent {
        self.event_owned(agent, action.clone(), layer, decision.clone(), outcome)
    }

    /// [`Engine::event`] taking the action and decision.
    pub fn event_owned(
        &self,
        agent: &Agent,
        action: Action,
        layer: Layer,
        decision: Decision,
        outcome: Option<Outcome>,
    ) -> AuditEvent {
        AuditEvent {
            id: self.env.new_id(),
            ts: format_ts(self.env.now_ms()),
            agent_id: agent.agent_id.clone(),
            combined: false,
            session_id: agent.session_id.clone(),
            layer,
            action,
            decision,
            outcome,
        }
    }

    fn record(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        decision: &Decision,
        outcome: Option<Outcome>,
    ) -> Result<(), AuditError> {
        match &self.sink {
            Some(sink) => sink.append(self.event(agent, action, layer, decision, outcome)),
            None => Ok(()),
        }
    }

    fn decision(
        &self,
        effect: Effect,
        reason: Reason,
        message: String,
        policy_version: Option<String>,
    ) -> Decision {
        Decision {
            effect,
            reason,
            message,
            policy_ids: Vec::new(),
            decision_id: self.env.new_id(),
            budget: None,
            policy_version,
            fail_open: false,
        }
    }

    fn unavailable(&self, message: String, version: Option<String>) -> Decision {
        Decision::unavailable(self.env.new_id(), message, version, self.fail_open)
    }
}

/// `prefix` then the ids, comma-separated (one allocation: this is on the decision path).
fn listed(prefix: &str, ids: &[String]) -> String {
    let len = prefix.len() + ids.iter().map(|i| i.len() + 2).sum::<usize>();
    let mut out = String::with_capacity(len);
    out.push_str(prefix);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(id);
    }
    out
}

/// Why an action could not be put to Cedar (the decision is then `unavailable`).
#[derive(Debug, thiserror::Error)]
enum Unmappable {
    #[error("Cedar names failed to initialise")]
    Names,
    #[error("cannot map the action: {0}")]
    Action(String),
    #[error("cannot build the request: {0}")]
    Request(String),
}

/// Which policies were satisfied, and which forbids raised an error.
struct Verdict {
    forbids: Vec<String>,
    permits: Vec<String>,
    forbid_errors: Vec<String>,
}

/// Decides with the fast evaluator, or `None` when some policy of the slice needs Cedar.
fn fast_verdict(
    index: &PolicyIndex,
    members: &[usize],
    kind: ActionKind,
    layer: Layer,
    request: &FastRequest<'_>,
) -> Option<Verdict> {
    let mut forbids = Vec::new();
    let mut permits = Vec::new();
    for &m in members {
        let p = index.policy(m)?;
        if request.satisfied(p.condition_for(kind, layer))? {
            if p.forbid {
                forbids.push(p.id.clone());
            } else {
                permits.push(p.id.clone());
            }
        }
    }
    forbids.sort_unstable();
    permits.sort_unstable();
    Some(Verdict {
        forbids,
        permits,
        forbid_errors: Vec::new(),
    })
}
