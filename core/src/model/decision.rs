use serde::{Deserialize, Serialize};

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The action may run.
    Allow,
    /// The action must not run.
    Deny,
}

impl Effect {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decision came out the way it did: a stable code for programs; `message` is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// At least one `permit` matched and no `forbid` did.
    Permitted,
    /// A `forbid` policy matched (its ids are in `policy_ids`).
    Forbidden,
    /// No `permit` matched: Cedar's default deny.
    NoPermit,
    /// The policy allowed it, but a budget is spent (its name is in `budget`).
    BudgetExceeded,
    /// The agent is suspended (kill switch).
    Suspended,
    /// No decision could be made: no policy loaded, the gateway unreachable, the audit log
    /// unwritable. Denied unless `fail_open` is set.
    Unavailable,
    /// A `forbid` policy raised an evaluation error, so it might have applied. Denied unless
    /// `fail_open` is set.
    EvaluationError,
    /// The input was rejected before evaluation (malformed or oversized fields).
    InvalidInput,
    /// The kernel layer saw egress that no proxy request accounts for: the agent went around
    /// the proxy (`aasm run`'s bypass detection). `effect` says whether it was stopped.
    Bypass,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Permitted => "permitted",
            Reason::Forbidden => "forbidden",
            Reason::NoPermit => "no_permit",
            Reason::BudgetExceeded => "budget_exceeded",
            Reason::Suspended => "suspended",
            Reason::Unavailable => "unavailable",
            Reason::EvaluationError => "evaluation_error",
            Reason::InvalidInput => "invalid_input",
            Reason::Bypass => "bypass",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to "may this agent do this action now?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Name of the budget that denied, for `budget_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Unique id of this decision (UUIDv7).
    pub decision_id: String,
    /// `allow` or `deny`.
    pub effect: Effect,
    /// True when the action was allowed only because `fail_open` is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    /// Human-readable explanation (a policy's `@reason` annotation where it has one).
    pub message: String,
    /// Ids of the determining policies (`@id` annotations, else `<file>:<n>`).
    #[serde(default)]
    pub policy_ids: Vec<String>,
    /// Version (content hash) of the policy set that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Stable reason code.
    pub reason: Reason,
}

impl Decision {
    /// No decision could be made (no policy, the gateway unreachable, the audit log
    /// unwritable): denied with [`Reason::Unavailable`], or allowed and marked `fail_open` when
    /// the caller opted into failing open. Every layer builds this answer here.
    pub fn unavailable(
        decision_id: String,
        message: impl Into<String>,
        policy_version: Option<String>,
        fail_open: bool,
    ) -> Self {
        Decision {
            budget: None,
            decision_id,
            effect: if fail_open {
                Effect::Allow
            } else {
                Effect::Deny
            },
            fail_open,
            message: message.into(),
            policy_ids: Vec::new(),
            policy_version,
            reason: Reason::Unavailable,
        }
    }

    /// True for `allow`.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}
