use std::collections::BTreeSet;

use serde::Deserialize;
use toml::Spanned;

use super::diagnostic_at;
use crate::error::Diagnostic;
use crate::model::{ActionKind, Agent};

/// Over what period a budget's usage accumulates. Windows are fixed and aligned to UTC
/// (a `minute` budget resets at every whole minute, a `day` budget at 00:00 UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Whole UTC minutes.
    Minute,
    /// Whole UTC hours.
    Hour,
    /// Whole UTC days.
    Day,
    /// Never resets.
    Total,
}

impl Window {
    /// Start (unix ms) of the window containing `now_ms`.
    pub fn start(self, now_ms: i64) -> i64 {
        let len: i64 = match self {
            Window::Minute => 60_000,
            Window::Hour => 3_600_000,
            Window::Day => 86_400_000,
            Window::Total => return 0,
        };
        now_ms - now_ms.rem_euclid(len)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Total => "total",
        }
    }
}

/// Whose usage a budget counts: each agent separately, each team, or everyone together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// One counter per agent.
    #[default]
    Agent,
    /// One counter per team (agents without a team are not counted).
    Team,
    /// One counter for all matching agents.
    Global,
}

/// One budget rule.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRule {
    /// Unique name, reported in a `budget_exceeded` decision.
    pub name: String,
    /// Whose usage is counted together.
    pub per: BudgetScope,
    /// Only these agents (empty: all).
    pub agents: BTreeSet<String>,
    /// Only agents of these teams (empty: all).
    pub teams: BTreeSet<String>,
    /// Only these action kinds (empty: all).
    pub kinds: BTreeSet<ActionKind>,
    /// Accumulation window.
    pub window: Window,
    /// Most allowed actions per window.
    pub calls: Option<u64>,
    /// Most tokens (input + output) per window.
    pub tokens: Option<u64>,
    /// Most cost per window, in micro-USD.
    pub cost_micros: Option<u64>,
}

impl BudgetRule {
    /// The counter key of `agent` under this rule, or `None` if the rule does not apply.
    pub fn key_for(&self, agent: &Agent, kind: ActionKind) -> Option<String> {
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return None;
        }
        if !self.agents.is_empty() && !self.agents.contains(&agent.agent_id) {
            return None;
        }
        if !self.teams.is_empty() && !agent.team.as_ref().is_some_and(|t| self.teams.contains(t)) {
            return None;
        }
        match self.per {
            BudgetScope::Agent => Some(prefixed("agent:", &agent.agent_id)),
            BudgetScope::Team => agent.team.as_deref().map(|t| prefixed("team:", t)),
            BudgetScope::Global => Some("global".to_owned()),
        }
    }
}

/// `prefix` then `id`, in one allocation (a counter key is made on every decision).
fn prefixed(prefix: &str, id: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + id.len());
    key.push_str(prefix);
    key.push_str(id);
    key
}

/// All budget rules of a policy bundle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetConfig {
    /// The rules, in file order.
    pub rules: Vec<BudgetRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    budget: Vec<RawBudget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    name: Spanned<String>,
    #[serde(default)]
    per: BudgetScope,
    #[serde(default)]
    agents: BTreeSet<String>,
    #[serde(default)]
    teams: BTreeSet<String>,
    #[serde(default)]
    kinds: Vec<Spanned<String>>,
    window: Window,
    calls: Option<Spanned<i64>>,
    tokens: Option<Spanned<i64>>,
    cost_usd: Option<Spanned<f64>>,
}

impl BudgetConfig {
    /// Parses `budgets.toml`; every problem is reported with its line and column.
    pub fn parse(file: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            vec![diagnostic_at(
                file,
                text,
                e.span().map(|s| s.start),
                e.message().to_owned(),
                Some("see docs/policy.md#budgets for the budget file format".into()),
            )]
        })?;
        let mut diags = Vec::new();
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for b in raw.budget {
            let at = |span: std::ops::Range<usize>, msg: String| {
                diagnostic_at(file, text, Some(span.start), msg, None)
            };
            let name = b.name.get_ref().trim().to_owned();
            if name.is_empty() {
                diags.push(at(b.name.span(), "budget name must not be empty".into()));
            } else if !names.insert(name.clone()) {
                diags.push(at(b.name.span(), format!("duplicate budget name `{name}`")));
            }
            let has_limit = b.calls.is_some() || b.tokens.is_some() || b.cost_usd.is_some();
            let mut limit = |v: Option<Spanned<i64>>, what: &str| -> Option<u64> {
                let v = v?;
                match u64::try_from(*v.get_ref()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        diags.push(at(
                            v.span(),
                            format!("budget `{name}`: {what} must be ≥ 0, got {}", v.get_ref()),
                        ));
                        None
                    }
                }
            };
            let calls = limit(b.calls, "calls");
            let tokens = limit(b.tokens, "tokens");
            let cost_micros = match b.cost_usd {
                None => None,
                Some(c) if c.get_ref().is_finite() && *c.get_ref() >= 0.0 => {
                    Some((c.get_ref() * 1_000_000.0).round() as u64)
                }
                Some(c) => {
                    diags.push(at(
                        c.span(),
                        format!(
                            "budget `{name}`: cost_usd must be a finite number ≥ 0, got {}",
                            c.get_ref()
                        ),
                    ));
                    None
                }
            };
            let mut kinds = BTreeSet::new();
            for k in &b.kinds {
                match ActionKind::parse(k.get_ref()) {
                    Some(kind) => {
                        kinds.insert(kind);
                    }
                    None => diags.push(at(
                        k.span(),
                        format!(
                            "budget `{name}`: unknown action kind `{}` (expected one of {})",
                            k.get_ref(),
                            ActionKind::ALL.map(ActionKind::as_str).join(", ")
                        ),
                    )),
                }
            }
            if !has_limit {
                diags.push(at(
                    b.name.span(),
                    format!("budget `{name}` sets no limit: give calls, tokens or cost_usd"),
                ));
            }
            rules.push(BudgetRule {
                name,
                per: b.per,
                agents: b.agents,
                teams: b.teams,
                kinds,
                window: b.window,
                calls,
                tokens,
                cost_micros,
            });
        }
        if diags.is_empty() {
            Ok(BudgetConfig { rules })
        } else {
            Err(diags)
        }
    }
}
