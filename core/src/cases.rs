//! Decision cases: the table format of `aasm policy test` and of `conformance/`.
//!
//! A case file (TOML `[[case]]` or JSON `{"case": [...]}`) lists cases; a case is one step
//! (its own `agent`, `action`, `expect`) or several (`steps`), run in order against one fresh
//! engine so budgets carry over between steps. Every binding runs `conformance/cases.json`
//! through its own API and must reach the same decisions.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::MemorySink;
use crate::env::FixedEnv;
use crate::model::{Action, Agent, Decision, Effect, Layer, Outcome, Reason};
use crate::{CompiledPolicy, Engine};

/// A whole case file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The cases.
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

/// An agent given by id alone or in full.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum AgentSpec {
    /// `"coder"`
    Id(String),
    /// `{agent_id = "coder", team = "eng"}`
    Full(Agent),
}

impl AgentSpec {
    /// The agent.
    pub fn agent(&self) -> Agent {
        match self {
            AgentSpec::Id(id) => Agent::new(id.clone()),
            AgentSpec::Full(a) => a.clone(),
        }
    }
}

/// What a step must decide: `"allow"` / `"deny"` or a table with more fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    /// Just the effect.
    Effect(Effect),
    /// The effect and optional details.
    Full {
        /// `allow` or `deny`.
        decision: Effect,
        /// The reason code.
        #[serde(default)]
        reason: Option<Reason>,
        /// The determining policy ids, in any order.
        #[serde(default)]
        policy_ids: Option<Vec<String>>,
        /// The budget that denied.
        #[serde(default)]
        budget: Option<String>,
        /// A substring of the message.
        #[serde(default)]
        message_contains: Option<String>,
    },
}

/// One action to decide.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Who acts.
    pub agent: AgentSpec,
    /// Which layer saw it (default `sdk`).
    #[serde(default = "default_layer")]
    pub layer: Layer,
    /// What it does.
    pub action: Action,
    /// Reported after the action if it was allowed (charges usage).
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// How many times to decide it (default 1); every time must match `expect`.
    #[serde(default = "one")]
    pub repeat: u32,
    /// Milliseconds to move the clock forward before this step.
    #[serde(default)]
    pub advance_ms: i64,
    /// The expected decision.
    pub expect: Expect,
}

fn default_layer() -> Layer {
    Layer::Sdk
}

fn one() -> u32 {
    1
}

/// One case: a name, optionally its own policy directory and clock, and steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// Shown in reports.
    pub name: String,
    /// Policy directory, relative to the case file (conformance); `aasm policy test` passes it
    /// on the command line instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Clock at the first step, RFC 3339 (default 2026-01-05T12:00:00Z, a Monday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// Agents under the kill switch for this case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<String>,
    /// Engine set to fail open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    /// The steps, in order …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// … or a single step written inline.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

/// Default clock of a case: Monday 2026-01-05 12:00:00 UTC.
pub const DEFAULT_NOW_MS: i64 = 1_767_614_400_000;

/// The outcome of one step (one repetition).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    /// Case name.
    pub case: String,
    /// 1-based step number.
    pub step: usize,
    /// 1-based repetition.
    pub repetition: u32,
    /// What the engine decided.
    pub decision: Decision,
    /// Why it does not match the expectation (`None`: pass).
    pub mismatch: Option<String>,
}

impl StepResult {
    /// True if the decision matched.
    pub fn passed(&self) -> bool {
        self.mismatch.is_none()
    }
}

impl Case {
    /// The steps, whichever way they were written.
    pub fn all_steps(&self) -> Vec<&Step> {
        self.steps.iter().chain(self.step.as_ref()).collect()
    }

    /// Compiles `bundle` with this case's suspended agents and runs the case against it.
    pub fn run_bundle(
        &self,
        bundle: &crate::PolicyBundle,
    ) -> Result<Vec<StepResult>, crate::PolicyError> {
        let mut bundle = bundle.clone();
        bundle.suspended.extend(self.suspended.iter().cloned());
        Ok(self.run(Arc::new(CompiledPolicy::compile(bundle)?)))
    }

    /// Runs the case against a fresh engine over `policy`, checking every decision and the
    /// audit event each one writes.
    pub fn run(&self, policy: Arc<CompiledPolicy>) -> Vec<StepResult> {
        let now = self
            .now
            .as_deref()
            .and_then(crate::parse_ts)
            .unwrap_or(DEFAULT_NOW_MS);
        let env = Arc::new(FixedEnv::new(now));
        let sink = Arc::new(MemorySink::new());
        let engine = Engine::with_policy(policy, env.clone())
            .fail_open(self.fail_open)
            .with_audit(sink.clone());
        let mut results = Vec::new();
        for (i, step) in self.all_steps().into_iter().enumerate() {
            env.set_now_ms(crate::Environment::now_ms(env.as_ref()) + step.advance_ms);
            let agent = step.agent.agent();
            for rep in 1..=step.repeat.max(1) {
                let decision = engine.decide(&agent, &step.action, step.layer);
                let mut mismatch = check(&step.expect, &decision);
                if mismatch.is_none() {
                    mismatch = check_event(&sink, &agent, step, &decision);
                }
                if decision.is_allowed()
                    && let Some(outcome) = &step.outcome
                    && let Err(e) =
                        engine.report(&agent, &step.action, step.layer, &decision, outcome.clone())
                {
                    mismatch.get_or_insert(format!("report failed: {e}"));
                }
                sink.drain();
                results.push(StepResult {
                    case: self.name.clone(),
                    step: i + 1,
                    repetition: rep,
                    decision,
                    mismatch,
                });
            }
        }
        results
    }
}

fn check(expect: &Expect, d: &Decision) -> Option<String> {
    let mut problems = Vec::new();
    let (effect, reason, ids, budget, contains) = match expect {
        Expect::Effect(e) => (*e, None, None, None, None),
        Expect::Full {
            decision,
            reason,
            policy_ids,
            budget,
            message_contains,
        } => (
            *decision,
            *reason,
            policy_ids.as_ref(),
            budget.as_ref(),
            message_contains.as_ref(),
        ),
    };
    if d.effect != effect {
        problems.push(format!(
            "expected {effect}, got {} ({}: {})",
            d.effect, d.reason, d.message
        ));
    }
    if let Some(r) = reason
        && d.reason != r
    {
        problems.push(format!("expected reason {r}, got {}", d.reason));
    }
    if let Some(ids) = ids {
        let mut want = ids.clone();
        let mut got = d.policy_ids.clone();
        want.sort();
        got.sort();
        if want != got {
            problems.push(format!("expected policy_ids {want:?}, got {got:?}"));
        }
    }
    if let Some(b) = budget
        && d.budget.as_ref() != Some(b)
    {
        problems.push(format!("expected budget {b}, got {:?}", d.budget));
    }
    if let Some(c) = contains
        && !d.message.contains(c.as_str())
    {
        problems.push(format!(
            "expected message containing {c:?}, got {:?}",
            d.message
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Every decision writes exactly one audit event that carries it unchanged.
fn check_event(sink: &MemorySink, agent: &Agent, step: &Step, d: &Decision) -> Option<String> {
    let events = sink.drain();
    let [event] = events.as_slice() else {
        return Some(format!("expected 1 audit event, got {}", events.len()));
    };
    let ok = event.agent_id == agent.agent_id
        && event.session_id == agent.session_id
        && event.layer == step.layer
        && event.action == step.action
        && &event.decision == d
        && event.outcome.is_none();
    (!ok).then(|| format!("audit event does not match the decision: {event:?}"))
}
