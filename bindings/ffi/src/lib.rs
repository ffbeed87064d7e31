//! # aa-ffi
//!
//! The C-ABI face of `aa-sdk-client` and `aa-core`, through [uniffi](https://mozilla.github.io/uniffi-rs/)
//! (proc-macro, library mode): Kotlin on the JVM, Swift, Python and any other host uniffi
//! generates for load `libaa_ffi.so` and get the same governed decisions as the Python, Node and
//! WASM bindings. This crate converts types and calls the Rust side; every decision is made
//! there.
//!
//! - [`Governor`]: one agent's governor in `embedded`, `local` or `remote` mode;
//!   [`Governor::decide`] (an action as JSON), [`Governor::decide_tool`] (the shared tool-call
//!   path, returning a [`ToolCall`] handle that records `done_ok` / `done_error`),
//!   [`Governor::report`], [`Governor::flush`], [`Governor::close`].
//! - [`AaError`]: one error enum for every failure, mapped from the core's typed errors in one
//!   place; a denied tool call is [`AaError::PolicyDenied`] with its reason, policy ids,
//!   decision id and budget.
//! - [`ConformanceEngine`]: the core engine on a fixed clock, to run the shared `conformance/`
//!   cases through this ABI.
//!
//! Tool-call arguments cross the boundary as JSON text (an object), read by the core's
//! [`ArgRules::json_args`]: every host has a JSON encoder, the conversion is written once, and
//! a recursive uniffi enum would cost one generated class per value and a foreign-language walk
//! per argument.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aa_core::tool_call::{ArgRules, CallEnd, JsonNumbers, ResultShape};
use aa_core::{Action, Agent, FixedEnv, Layer, PolicyBundle, Usage};
use aa_sdk_client::{ClientConfig, ClientError, ConfigInput, GatewayError, Mode};

uniffi::setup_scaffolding!();

/// One problem in a policy, budget or price file, with its position.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PolicyDiagnostic {
    /// File name within the policy directory.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl From<&aa_core::Diagnostic> for PolicyDiagnostic {
    fn from(d: &aa_core::Diagnostic) -> Self {
        PolicyDiagnostic {
            file: d.file.clone(),
            line: d.line.map(|n| n as u64),
            column: d.column.map(|n| n as u64),
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

/// Every error of this binding (a Kotlin/Swift/Python exception hierarchy with one base).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum AaError {
    /// The configuration is incomplete or invalid.
    #[error("{detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// The policy could not be loaded; `diagnostics` carry file, line and column.
    #[error("{detail}")]
    Policy {
        /// The whole message.
        detail: String,
        /// Each problem, with its position.
        diagnostics: Vec<PolicyDiagnostic>,
    },
    /// An action, argument map, outcome or agent given as JSON is malformed.
    #[error("{detail}")]
    InvalidInput {
        /// What is wrong (JSON syntax errors carry line and column).
        detail: String,
    },
    /// The gateway could not be reached, refused the request, or a flush timed out.
    #[error("{detail}")]
    Unavailable {
        /// What happened.
        detail: String,
    },
    /// The audit file or spill file failed.
    #[error("{detail}")]
    Audit {
        /// What happened.
        detail: String,
    },
    /// A governed tool call was denied.
    #[error("denied ({reason}): {detail}")]
    PolicyDenied {
        /// Stable reason code (`forbidden`, `budget_exceeded`, …).
        reason: String,
        /// Human-readable explanation.
        detail: String,
        /// The determining policy ids.
        policy_ids: Vec<String>,
        /// The decision's id (as in the audit trail).
        decision_id: String,
        /// The budget that denied, if any.
        budget: Option<String>,
    },
    /// Any other failure of the runtime.
    #[error("{detail}")]
    Internal {
        /// What happened.
        detail: String,
    },
}

/// The one mapping of the core's and SDK client's typed errors to [`AaError`].
impl From<ClientError> for AaError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Config(detail) => AaError::Config { detail },
            ClientError::Policy(p) => p.into(),
            ClientError::Audit(a) => AaError::Audit {
                detail: a.to_string(),
            },
            ClientError::Unavailable(detail) => AaError::Unavailable { detail },
            e @ ClientError::FlushTimeout { .. } => AaError::Unavailable {
                detail: e.to_string(),
            },
            ClientError::Gateway(g) => match *g {
                e @ (GatewayError::CaCert { .. } | GatewayError::NoCertificate { .. }) => {
                    AaError::Config {
                        detail: e.to_string(),
                    }
                }
                e => AaError::Unavailable {
                    detail: e.to_string(),
                },
            },
            other => AaError::Internal {
                detail: other.to_string(),
            },
        }
    }
}

impl From<aa_core::PolicyError> for AaError {
    fn from(p: aa_core::PolicyError) -> Self {
        AaError::Policy {
            diagnostics: p.diagnostics().iter().map(PolicyDiagnostic::from).collect(),
            detail: p.to_string(),
        }
    }
}

impl From<aa_core::ModelError> for AaError {
    fn from(e: aa_core::ModelError) -> Self {
        AaError::InvalidInput {
            detail: e.to_string(),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> AaError {
    AaError::InvalidInput {
        detail: e.to_string(),
    }
}

fn seconds(timeout_secs: f64) -> Result<Duration, AaError> {
    Duration::try_from_secs_f64(timeout_secs.max(0.0)).map_err(|e| AaError::Config {
        detail: format!("timeout {timeout_secs} s: {e}"),
    })
}

fn parse_action(json: &str) -> Result<Action, AaError> {
    Ok(aa_core::ModelError::parse(json)?)
}

/// The settings of a governor; every field is optional and the environment fills the gaps
/// (`AA_GATEWAY_URL`, `AA_AGENT_ID`, `AA_TOKEN`, `AA_POLICY`, `AA_MODE`, …, as in every SDK).
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct GovernorConfig {
    /// Gateway base URL (local, remote).
    #[uniffi(default)]
    pub gateway_url: Option<String>,
    /// Agent id.
    #[uniffi(default)]
    pub agent_id: Option<String>,
    /// The agent's bearer token (local, remote).
    #[uniffi(default)]
    pub token: Option<String>,
    /// Policy directory (embedded).
    #[uniffi(default)]
    pub policy: Option<String>,
    /// `local`, `remote` or `embedded`.
    #[uniffi(default)]
    pub mode: Option<String>,
    /// Team of the agent (embedded).
    #[uniffi(default)]
    pub team: Option<String>,
    /// Session id carried into audit records.
    #[uniffi(default)]
    pub session_id: Option<String>,
    /// Allow (flagged) instead of deny when no decision can be made.
    #[uniffi(default)]
    pub fail_open: Option<bool>,
    /// Where events are spilled while the gateway is unreachable.
    #[uniffi(default)]
    pub spill_dir: Option<String>,
    /// The local audit file (embedded).
    #[uniffi(default)]
    pub audit_file: Option<String>,
    /// Extra CA certificate (PEM) for a TLS gateway.
    #[uniffi(default)]
    pub ca_cert: Option<String>,
    /// In-memory queue length before events spill to disk.
    #[uniffi(default)]
    pub queue_capacity: Option<u64>,
}

impl From<GovernorConfig> for ConfigInput {
    fn from(c: GovernorConfig) -> Self {
        ConfigInput {
            gateway_url: c.gateway_url,
            agent_id: c.agent_id,
            token: c.token,
            policy: c.policy.map(PathBuf::from),
            mode: c.mode,
            team: c.team,
            session_id: c.session_id,
            fail_open: c.fail_open,
            spill_dir: c.spill_dir.map(PathBuf::from),
            audit_file: c.audit_file.map(PathBuf::from),
            ca_cert: c.ca_cert.map(PathBuf::from),
            queue_capacity: c
                .queue_capacity
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

/// A decision. `allowed` is what callers branch on; the rest explains it.
#[derive(Debug, uniffi::Object)]
pub struct Decision {
    inner: aa_core::Decision,
}

#[uniffi::export]
impl Decision {
    /// True for allow.
    pub fn allowed(&self) -> bool {
        self.inner.is_allowed()
    }
    /// `allow` or `deny`.
    pub fn effect(&self) -> String {
        self.inner.effect.as_str().to_owned()
    }
    /// Stable reason code.
    pub fn reason(&self) -> String {
        self.inner.reason.as_str().to_owned()
    }
    /// Human-readable explanation.
    pub fn message(&self) -> String {
        self.inner.message.clone()
    }
    /// The determining policy ids.
    pub fn policy_ids(&self) -> Vec<String> {
        self.inner.policy_ids.clone()
    }
    /// The decision's unique id.
    pub fn decision_id(&self) -> String {
        self.inner.decision_id.clone()
    }
    /// The budget that denied, if any.
    pub fn budget(&self) -> Option<String> {
        self.inner.budget.clone()
    }
    /// The policy version decided against.
    pub fn policy_version(&self) -> Option<String> {
        self.inner.policy_version.clone()
    }
    /// Allowed only because the governor fails open.
    pub fn fail_open(&self) -> bool {
        self.inner.fail_open
    }
    /// The decision as JSON (the wire format).
    pub fn to_json(&self) -> Result<String, AaError> {
        serde_json::to_string(&self.inner).map_err(|e| AaError::Internal {
            detail: e.to_string(),
        })
    }
}

impl Decision {
    fn new(inner: aa_core::Decision) -> Arc<Self> {
        Arc::new(Decision { inner })
    }

    fn denied(&self) -> AaError {
        let d = &self.inner;
        AaError::PolicyDenied {
            reason: d.reason.as_str().to_owned(),
            detail: d.message.clone(),
            policy_ids: d.policy_ids.clone(),
            decision_id: d.decision_id.clone(),
            budget: d.budget.clone(),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OutcomeStatus {
    /// It succeeded.
    Ok,
    /// It failed.
    Error,
}

/// What happened after an allowed action ran (for [`Governor::report`]).
#[derive(Debug, Clone, uniffi::Record)]
pub struct Outcome {
    /// Success or failure.
    pub status: OutcomeStatus,
    /// How long it ran.
    pub duration_us: u64,
    /// Size of the result (bytes, characters or entries).
    #[uniffi(default)]
    pub result_size: Option<u64>,
    /// The error's type name (never its message).
    #[uniffi(default)]
    pub error: Option<String>,
    /// Usage (tokens, cost) as JSON, charged to budgets.
    #[uniffi(default)]
    pub usage_json: Option<String>,
}

impl Outcome {
    fn into_core(self) -> Result<aa_core::Outcome, AaError> {
        let usage = self
            .usage_json
            .map(|u| aa_core::ModelError::parse::<Usage>(&u))
            .transpose()?;
        Ok(aa_core::Outcome {
            duration_us: self.duration_us,
            error: self.error,
            result_size: self.result_size,
            status: match self.status {
                OutcomeStatus::Ok => aa_core::OutcomeStatus::Ok,
                OutcomeStatus::Error => aa_core::OutcomeStatus::Error,
            },
            usage,
        })
    }
}

/// Counters of a governor.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Stats {
    /// Events waiting in memory.
    pub queued: u64,
    /// Events spilled to disk, not yet delivered.
    pub spilled: u64,
    /// Events the gateway acknowledged.
    pub shipped: u64,
    /// Events the gateway refused for good.
    pub rejected: u64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// The policy version decisions are made against (local, embedded).
    pub policy_version: Option<String>,
}

/// The named arguments of a tool call, from a JSON object.
fn to_args(args_json: &str) -> Result<serde_json::Map<String, serde_json::Value>, AaError> {
    match aa_core::ModelError::parse::<serde_json::Value>(args_json)? {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(invalid(format!(
            "tool arguments must be a JSON object, not {}",
            match other {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
    }
}

/// The governor of one agent.
#[derive(Debug, uniffi::Object)]
pub struct Governor {
    inner: Arc<aa_sdk_client::Governor>,
}

#[uniffi::export]
impl Governor {
    /// Starts a governor: loads or fetches the policy, opens the audit file or starts the
    /// shipper and the policy sync.
    #[uniffi::constructor]
    pub fn new(config: GovernorConfig) -> Result<Arc<Self>, AaError> {
        let config = ClientConfig::resolve(config.into())?;
        Ok(Arc::new(Governor {
            inner: Arc::new(aa_sdk_client::Governor::start(config)?),
        }))
    }

    /// `local`, `remote` or `embedded`.
    pub fn mode(&self) -> String {
        match self.inner.config().mode {
            Mode::Local => "local",
            Mode::Remote => "remote",
            Mode::Embedded => "embedded",
        }
        .to_owned()
    }

    /// The agent id.
    pub fn agent_id(&self) -> String {
        self.inner.agent().agent_id.clone()
    }

    /// The local audit file (embedded mode).
    pub fn audit_file(&self) -> String {
        self.inner.config().audit_file.display().to_string()
    }

    /// Decides an action given as JSON. Never fails on a decision: when none can be made the
    /// answer is `deny` / `unavailable` (or a flagged allow when failing open).
    pub fn decide(&self, action_json: String) -> Result<Arc<Decision>, AaError> {
        let action = parse_action(&action_json)?;
        Ok(Decision::new(self.inner.decide(&action)))
    }

    /// Decides calling `tool` with `args_json` (a JSON object of named arguments; redacted,
    /// converted and truncated by the core, `redact` naming extra secret arguments). Allowed,
    /// it returns the call, which records its end with `done_ok` or `done_error`; denied, it
    /// fails with [`AaError::PolicyDenied`].
    pub fn decide_tool(
        &self,
        tool: String,
        args_json: String,
        redact: Vec<String>,
    ) -> Result<Arc<ToolCall>, AaError> {
        // Integers outside i64 keep their decimal text, as in every binding.
        let action =
            ArgRules::new(redact).json_action(tool, to_args(&args_json)?, JsonNumbers::Exact);
        let decision = self.inner.decide(&action);
        let decision = Decision::new(decision);
        if !decision.allowed() {
            return Err(decision.denied());
        }
        Ok(Arc::new(ToolCall {
            governor: self.inner.clone(),
            action,
            decision,
            started: Instant::now(),
        }))
    }

    /// Records the outcome of an allowed action (given as JSON, with its decision).
    pub fn report(
        &self,
        action_json: String,
        decision: Arc<Decision>,
        outcome: Outcome,
    ) -> Result<(), AaError> {
        let action = parse_action(&action_json)?;
        Ok(self
            .inner
            .report(&action, &decision.inner, outcome.into_core()?)?)
    }

    /// Waits up to `timeout_secs` until every event is delivered (or written); on timeout the
    /// events stay spilled on disk and `Unavailable` is raised.
    pub fn flush(&self, timeout_secs: f64) -> Result<(), AaError> {
        Ok(self.inner.flush(seconds(timeout_secs)?)?)
    }

    /// Flushes (up to `timeout_secs`), stops the background threads, seals the audit file.
    pub fn close(&self, timeout_secs: f64) -> Result<(), AaError> {
        Ok(self.inner.close(seconds(timeout_secs)?)?)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let s = self.inner.stats();
        Stats {
            queued: s.queued,
            spilled: s.spilled,
            shipped: s.shipped,
            rejected: s.rejected,
            last_error: s.last_error,
            policy_version: s.policy_version,
        }
    }
}

/// An allowed tool call in progress: `done_ok` or `done_error` records how it ended.
#[derive(Debug, uniffi::Object)]
pub struct ToolCall {
    governor: Arc<aa_sdk_client::Governor>,
    action: Action,
    decision: Arc<Decision>,
    started: Instant,
}

#[uniffi::export]
impl ToolCall {
    /// The decision (always an allow; denied calls fail in `decide_tool`).
    pub fn decision(&self) -> Arc<Decision> {
        self.decision.clone()
    }

    /// The action as decided (arguments redacted), as JSON.
    pub fn action_json(&self) -> Result<String, AaError> {
        serde_json::to_string(&self.action).map_err(|e| AaError::Internal {
            detail: e.to_string(),
        })
    }

    /// Records that the call returned a result of `result_size` bytes, characters or entries
    /// (`None` when it has no size).
    pub fn done_ok(&self, result_size: Option<u64>) -> Result<(), AaError> {
        let shape = match result_size {
            Some(n) => ResultShape::Collection(n),
            None => ResultShape::Other,
        };
        self.finish(CallEnd::Returned(shape))
    }

    /// Records that the call failed with an error of type `error_type` (its name, never its
    /// message).
    pub fn done_error(&self, error_type: String) -> Result<(), AaError> {
        self.finish(CallEnd::Raised(&error_type))
    }
}

impl ToolCall {
    fn finish(&self, end: CallEnd<'_>) -> Result<(), AaError> {
        let duration_us = aa_sdk_client::micros_since(self.started);
        Ok(self
            .governor
            .report_tool(&self.action, &self.decision.inner, end, duration_us)?)
    }
}

/// The core engine on a fixed clock, for the shared conformance cases.
#[derive(Debug, uniffi::Object)]
pub struct ConformanceEngine {
    engine: aa_core::Engine,
    env: Arc<FixedEnv>,
}

#[uniffi::export]
impl ConformanceEngine {
    /// An engine on the policy in `policy_dir`, its clock at `now_ms`.
    #[uniffi::constructor]
    pub fn new(
        policy_dir: String,
        now_ms: i64,
        fail_open: bool,
        suspended: Vec<String>,
    ) -> Result<Arc<Self>, AaError> {
        let mut bundle = PolicyBundle::from_dir(std::path::Path::new(&policy_dir))?;
        bundle.suspended.extend(suspended);
        let policy = aa_core::CompiledPolicy::compile(bundle)?;
        let env = Arc::new(FixedEnv::new(now_ms));
        Ok(Arc::new(ConformanceEngine {
            engine: aa_core::Engine::with_policy(policy, env.clone()).fail_open(fail_open),
            env,
        }))
    }

    /// Decides `action_json` for `agent_json` on `layer`.
    pub fn decide(
        &self,
        agent_json: String,
        action_json: String,
        layer: String,
    ) -> Result<Arc<Decision>, AaError> {
        let agent: Agent = aa_core::ModelError::parse(&agent_json)?;
        let layer: Layer = layer.parse().map_err(invalid)?;
        Ok(Decision::new(self.engine.decide(
            &agent,
            &parse_action(&action_json)?,
            layer,
        )))
    }

    /// Reports an outcome (`outcome_json` is the core's Outcome).
    pub fn report(
        &self,
        agent_json: String,
        action_json: String,
        layer: String,
        decision: Arc<Decision>,
        outcome_json: String,
    ) -> Result<(), AaError> {
        let agent: Agent = aa_core::ModelError::parse(&agent_json)?;
        let layer: Layer = layer.parse().map_err(invalid)?;
        let outcome: aa_core::Outcome = aa_core::ModelError::parse(&outcome_json)?;
        self.engine
            .report(
                &agent,
                &parse_action(&action_json)?,
                layer,
                &decision.inner,
                outcome,
            )
            .map_err(|e| AaError::Audit {
                detail: e.to_string(),
            })
    }

    /// Moves the clock by `ms`.
    pub fn advance(&self, ms: i64) {
        self.env
            .set_now_ms(aa_core::Environment::now_ms(self.env.as_ref()).saturating_add(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_as_json() {
        let args = ArgRules::default().json_args(
            to_args(r#"{"big": 18446744073709551615, "f": 1.5, "l": [null, true], "n": 3, "token": "x"}"#)
                .unwrap(),
            JsonNumbers::Exact,
        );
        assert_eq!(
            serde_json::Value::Object(args),
            serde_json::json!({"big": "18446744073709551615", "f": 1.5, "l": [null, true], "n": 3,
                               "token": "[redacted]"})
        );
    }

    #[test]
    fn arguments_must_be_an_object() {
        assert!(matches!(to_args("[1]"), Err(AaError::InvalidInput { .. })));
        assert!(
            matches!(to_args("{"), Err(AaError::InvalidInput { detail }) if detail.contains("line 1"))
        );
    }

    #[test]
    fn timeouts_never_panic() {
        assert_eq!(seconds(-1.0).unwrap(), Duration::ZERO);
        assert_eq!(seconds(f64::NAN).unwrap(), Duration::ZERO);
        assert!(seconds(f64::INFINITY).is_err());
    }
}
