//! `agent_assembly._native`: the Python face of `aa-sdk-client` and `aa-core`. It converts
//! types and calls the Rust side; every decision is made there. The GIL is released while
//! deciding, reporting and flushing.

#![allow(unsafe_code)] // pyo3's macros expand to unsafe FFI glue.

use std::sync::Arc;
use std::time::Duration;

use aa_core::{
    Action, Agent, Decision, Effect, FixedEnv, Layer, Outcome, OutcomeStatus, PolicyBundle, Usage,
};
use aa_sdk_client::{ClientConfig, ClientError, ConfigInput, Governor as RustGovernor};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    _native,
    AgentAssemblyError,
    PyException,
    "Base class of every Agent Assembly error."
);
create_exception!(
    _native,
    ConfigError,
    AgentAssemblyError,
    "The configuration is incomplete or invalid."
);
create_exception!(
    _native,
    GatewayUnavailable,
    AgentAssemblyError,
    "The gateway could not be reached in time."
);
create_exception!(
    _native,
    InvalidAction,
    AgentAssemblyError,
    "An action or outcome is malformed."
);

/// One place that maps Rust errors to Python exceptions.
fn to_py(e: ClientError) -> PyErr {
    match e {
        ClientError::Config(m) => ConfigError::new_err(m),
        ClientError::Unavailable(m) => GatewayUnavailable::new_err(m),
        e @ ClientError::FlushTimeout { .. } => GatewayUnavailable::new_err(e.to_string()),
        ClientError::Policy(p) => ConfigError::new_err(p.to_string()),
        other => AgentAssemblyError::new_err(other.to_string()),
    }
}

fn invalid(e: impl std::fmt::Display) -> PyErr {
    InvalidAction::new_err(e.to_string())
}

/// Parses an action; shape errors raise `InvalidAction`, out-of-bounds fields are left to the
/// engine, which denies them with `invalid_input` like every other binding.
fn parse_action(json: &str) -> PyResult<Action> {
    aa_core::ModelError::parse(json).map_err(invalid)
}

/// Converts a Python value (dict, list, tuple, str, int, float, bool, None) to JSON without a
/// JSON round trip; anything else becomes its `repr()`.
fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<serde_json::Value> {
    use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString, PyTuple};
    use serde_json::Value;
    if depth > 32 {
        return Ok(Value::String("<nested too deep>".into()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => Value::String(obj.str()?.to_cow()?.into_owned()),
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(Value::Object(dict_to_map(d, depth)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in obj.try_iter()? {
            out.push(to_json(&item?, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    Ok(Value::String(obj.repr()?.to_cow()?.into_owned()))
}

fn dict_to_map(
    d: &Bound<'_, PyDict>,
    depth: usize,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::new();
    for (k, v) in d.iter() {
        let key = match k.cast::<pyo3::types::PyString>() {
            Ok(s) => s.to_cow()?.into_owned(),
            Err(_) => k.str()?.to_cow()?.into_owned(),
        };
        map.insert(key, to_json(&v, depth + 1)?);
    }
    Ok(map)
}

/// A governed call in progress: the action as decided, and its decision.
#[pyclass(frozen, module = "agent_assembly._native")]
pub struct PyCall {
    action: Action,
    decision: Py<PyDecision>,
}

#[pymethods]
impl PyCall {
    /// The decision.
    #[getter]
    fn decision(&self, py: Python<'_>) -> Py<PyDecision> {
        self.decision.clone_ref(py)
    }
    /// True for allow.
    #[getter]
    fn allowed(&self) -> bool {
        self.decision.get().inner.is_allowed()
    }
    /// The action as JSON.
    fn action_json(&self) -> String {
        serde_json::to_string(&self.action).unwrap_or_default()
    }
    fn __repr__(&self) -> String {
        format!(
            "Call({:?}, {})",
            self.action.kind().as_str(),
            self.decision.get().__repr__()
        )
    }
}

/// A decision. `allowed` is what callers branch on; the rest explains it.
#[pyclass(frozen, module = "agent_assembly._native")]
pub struct PyDecision {
    inner: Decision,
}

#[pymethods]
impl PyDecision {
    /// True for allow.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.is_allowed()
    }
    /// `allow` or `deny`.
    #[getter]
    fn effect(&self) -> &'static str {
        self.inner.effect.as_str()
    }
    /// Stable reason code.
    #[getter]
    fn reason(&self) -> &'static str {
        self.inner.reason.as_str()
    }
    /// Human-readable explanation.
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }
    /// Determining policy ids.
    #[getter]
    fn policy_ids(&self) -> Vec<String> {
        self.inner.policy_ids.clone()
    }
    /// Unique id of the decision.
    #[getter]
    fn decision_id(&self) -> &str {
        &self.inner.decision_id
    }
    /// The budget that denied, if any.
    #[getter]
    fn budget(&self) -> Option<&str> {
        self.inner.budget.as_deref()
    }
    /// Policy version.
    #[getter]
    fn policy_version(&self) -> Option<&str> {
        self.inner.policy_version.as_deref()
    }
    /// Allowed only because of fail_open.
    #[getter]
    fn fail_open(&self) -> bool {
        self.inner.fail_open
    }
    /// The decision as JSON.
    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner).unwrap_or_default()
    }
    fn __repr__(&self) -> String {
        format!(
            "Decision(effect={:?}, reason={:?}, policy_ids={:?}, message={:?})",
            self.inner.effect.as_str(),
            self.inner.reason.as_str(),
            self.inner.policy_ids,
            self.inner.message
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn outcome(
    status: &str,
    duration_us: u64,
    result_size: Option<u64>,
    error: Option<String>,
    usage_json: Option<&str>,
) -> PyResult<Outcome> {
    let status = match status {
        "ok" => OutcomeStatus::Ok,
        "error" => OutcomeStatus::Error,
        other => {
            return Err(invalid(format!(
                "status must be ok or error, not {other:?}"
            )));
        }
    };
    let usage = usage_json
        .map(|u| serde_json::from_str::<Usage>(u).map_err(invalid))
        .transpose()?;
    Ok(Outcome {
        duration_us,
        error,
        result_size,
        status,
        usage,
    })
}

/// The governor of one agent (one per process, usually; the package keeps it).
#[pyclass(frozen, module = "agent_assembly._native")]
pub struct Governor {
    inner: Arc<RustGovernor>,
}

#[pymethods]
impl Governor {
    #[new]
    #[pyo3(signature = (*, gateway_url=None, agent_id=None, token=None, policy=None, mode=None, team=None,
                        session_id=None, fail_open=None, spill_dir=None, audit_file=None, ca_cert=None,
                        queue_capacity=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        gateway_url: Option<String>,
        agent_id: Option<String>,
        token: Option<String>,
        policy: Option<std::path::PathBuf>,
        mode: Option<String>,
        team: Option<String>,
        session_id: Option<String>,
        fail_open: Option<bool>,
        spill_dir: Option<std::path::PathBuf>,
        audit_file: Option<std::path::PathBuf>,
        ca_cert: Option<std::path::PathBuf>,
        queue_capacity: Option<usize>,
    ) -> PyResult<Self> {
        let input = ConfigInput {
            gateway_url,
            agent_id,
            token,
            policy,
            mode,
            team,
            session_id,
            fail_open,
            spill_dir,
            audit_file,
            ca_cert,
            queue_capacity,
        };
        let config = ClientConfig::resolve(input).map_err(to_py)?;
        let governor = py.detach(|| RustGovernor::start(config)).map_err(to_py)?;
        Ok(Governor {
            inner: Arc::new(governor),
        })
    }

    /// `local`, `remote` or `embedded`.
    #[getter]
    fn mode(&self) -> &'static str {
        match self.inner.config().mode {
            aa_sdk_client::Mode::Local => "local",
            aa_sdk_client::Mode::Remote => "remote",
            aa_sdk_client::Mode::Embedded => "embedded",
        }
    }

    /// The agent id.
    #[getter]
    fn agent_id(&self) -> &str {
        &self.inner.agent().agent_id
    }

    /// The local audit file (embedded mode).
    #[getter]
    fn audit_file(&self) -> std::path::PathBuf {
        self.inner.config().audit_file.clone()
    }

    /// Decides an action given as JSON.
    fn decide(&self, py: Python<'_>, action_json: &str) -> PyResult<PyDecision> {
        let action = parse_action(action_json)?;
        let g = self.inner.clone();
        Ok(PyDecision {
            inner: py.detach(move || g.decide(&action)),
        })
    }

    /// Decides a tool call (the decorator's fast path); `args` is a dict of JSON-like values.
    fn decide_tool(
        &self,
        py: Python<'_>,
        tool: String,
        args: &Bound<'_, PyDict>,
    ) -> PyResult<PyCall> {
        let action = Action::ToolCall {
            args: dict_to_map(args, 0)?,
            tool,
        };
        let g = self.inner.clone();
        let (action, decision) = py.detach(move || {
            let d = g.decide(&action);
            (action, d)
        });
        Ok(PyCall {
            action,
            decision: Py::new(py, PyDecision { inner: decision })?,
        })
    }

    /// Records the outcome of a call from `decide_tool`.
    #[pyo3(signature = (call, status, duration_us, result_size=None, error=None))]
    fn report_call(
        &self,
        py: Python<'_>,
        call: &PyCall,
        status: &str,
        duration_us: u64,
        result_size: Option<u64>,
        error: Option<String>,
    ) -> PyResult<()> {
        let outcome = outcome(status, duration_us, result_size, error, None)?;
        let g = self.inner.clone();
        let decision = &call.decision.get().inner;
        let action = &call.action;
        py.detach(|| g.report(action, decision, outcome))
            .map_err(to_py)
    }

    /// Records the outcome of an allowed action.
    #[pyo3(signature = (action_json, decision, status, duration_us, result_size=None, error=None, usage_json=None))]
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        py: Python<'_>,
        action_json: &str,
        decision: &PyDecision,
        status: &str,
        duration_us: u64,
        result_size: Option<u64>,
        error: Option<String>,
        usage_json: Option<&str>,
    ) -> PyResult<()> {
        let action = parse_action(action_json)?;
        let outcome = outcome(status, duration_us, result_size, error, usage_json)?;
        let d = decision.inner.clone();
        let g = self.inner.clone();
        py.detach(move || g.report(&action, &d, outcome))
            .map_err(to_py)
    }

    /// Waits (up to `timeout` seconds) until every audit event is delivered; on timeout they
    /// stay spilled on disk and `GatewayUnavailable` is raised.
    #[pyo3(signature = (timeout=5.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let g = self.inner.clone();
        py.detach(move || g.flush(Duration::from_secs_f64(timeout.max(0.0))))
            .map_err(to_py)
    }

    /// Flushes and stops the background threads.
    #[pyo3(signature = (timeout=5.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let g = self.inner.clone();
        py.detach(move || g.close(Duration::from_secs_f64(timeout.max(0.0))))
            .map_err(to_py)
    }

    /// Counters: queued, spilled, shipped, rejected, last_error, policy_version.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("queued", s.queued)?;
        d.set_item("spilled", s.spilled)?;
        d.set_item("shipped", s.shipped)?;
        d.set_item("rejected", s.rejected)?;
        d.set_item("last_error", s.last_error)?;
        d.set_item("policy_version", s.policy_version)?;
        Ok(d)
    }
}

/// The core engine with a fixed clock, for the conformance cases.
#[pyclass(frozen, module = "agent_assembly._native")]
pub struct Engine {
    engine: Engine_,
    env: Arc<FixedEnv>,
}

type Engine_ = aa_core::Engine;

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (policy_dir, now_ms, fail_open=false, suspended=Vec::new()))]
    fn new(
        policy_dir: std::path::PathBuf,
        now_ms: i64,
        fail_open: bool,
        suspended: Vec<String>,
    ) -> PyResult<Self> {
        let mut bundle =
            PolicyBundle::from_dir(&policy_dir).map_err(|e| ConfigError::new_err(e.to_string()))?;
        bundle.suspended.extend(suspended);
        let policy = aa_core::CompiledPolicy::compile(bundle)
            .map_err(|e| ConfigError::new_err(e.to_string()))?;
        let env = Arc::new(FixedEnv::new(now_ms));
        Ok(Self {
            engine: Engine_::with_policy(policy, env.clone()).fail_open(fail_open),
            env,
        })
    }

    /// Decides `action_json` for `agent_json` on `layer`.
    fn decide(&self, agent_json: &str, action_json: &str, layer: &str) -> PyResult<PyDecision> {
        let agent: Agent = serde_json::from_str(agent_json).map_err(invalid)?;
        let layer: Layer = layer.parse().map_err(invalid)?;
        Ok(PyDecision {
            inner: self
                .engine
                .decide(&agent, &parse_action(action_json)?, layer),
        })
    }

    /// Reports an outcome (`outcome_json` is an Outcome).
    fn report(
        &self,
        agent_json: &str,
        action_json: &str,
        layer: &str,
        decision: &PyDecision,
        outcome_json: &str,
    ) -> PyResult<()> {
        let agent: Agent = serde_json::from_str(agent_json).map_err(invalid)?;
        let layer: Layer = layer.parse().map_err(invalid)?;
        let outcome: Outcome = serde_json::from_str(outcome_json).map_err(invalid)?;
        self.engine
            .report(
                &agent,
                &parse_action(action_json)?,
                layer,
                &decision.inner,
                outcome,
            )
            .map_err(|e| AgentAssemblyError::new_err(e.to_string()))
    }

    /// Moves the clock.
    fn advance(&self, ms: i64) {
        self.env
            .set_now_ms(aa_core::Environment::now_ms(self.env.as_ref()) + ms);
    }
}

/// Call in a forked child: fresh randomness for ids.
#[pyfunction]
fn reseed_after_fork() {
    aa_core::reseed_ids_after_fork();
}

/// True when a decision denies (for callers holding only the JSON).
#[pyfunction]
fn is_deny(decision: &PyDecision) -> bool {
    decision.inner.effect == Effect::Deny
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AgentAssemblyError", py.get_type::<AgentAssemblyError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("GatewayUnavailable", py.get_type::<GatewayUnavailable>())?;
    m.add("InvalidAction", py.get_type::<InvalidAction>())?;
    m.add_class::<Governor>()?;
    m.add_class::<PyDecision>()?;
    m.add_class::<PyCall>()?;
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(reseed_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(is_deny, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
