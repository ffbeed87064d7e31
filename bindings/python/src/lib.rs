//! `agent_assembly._native`: the Python face of `aa-sdk-client` and `aa-core`. It converts
//! types and calls the Rust side; every decision is made there. The GIL is released while
//! deciding, reporting and flushing.

#![allow(unsafe_code)] // pyo3's macros expand to unsafe FFI glue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aa_core::tool_call::{ArgRules as RustArgRules, ArgValue, CallEnd, MAX_DEPTH, ResultShape};
use aa_core::{
    Action, Agent, Decision, Effect, FixedEnv, Layer, Outcome, OutcomeStatus, PolicyBundle, Usage,
};
use aa_sdk_client::{
    ClientConfig, ClientError, ConfigInput, GatewayError, Governor as RustGovernor,
};
use pyo3::prelude::*;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyMapping, PySet, PyString,
    PyTuple, PyType,
};

/// The exceptions, defined in `agent_assembly._errors` (so that they, and tracebacks, belong to
/// `agent_assembly`) and raised from here.
#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    Base,
    Config,
    Unavailable,
    Invalid,
}

impl ErrorKind {
    fn raise(self, message: impl std::fmt::Display) -> PyErr {
        let name = match self {
            ErrorKind::Base => "AgentAssemblyError",
            ErrorKind::Config => "ConfigError",
            ErrorKind::Unavailable => "GatewayUnavailable",
            ErrorKind::Invalid => "InvalidAction",
        };
        let message = message.to_string();
        Python::attach(|py| {
            let ty = PyModule::import(py, "agent_assembly._errors")
                .and_then(|m| m.getattr(name))
                .and_then(|t| t.cast_into::<PyType>().map_err(PyErr::from));
            match ty {
                Ok(ty) => PyErr::from_type(ty, message),
                Err(e) => e,
            }
        })
    }
}

/// One place that maps Rust errors to Python exceptions.
fn to_py(e: ClientError) -> PyErr {
    match e {
        ClientError::Config(m) => ErrorKind::Config.raise(m),
        ClientError::Unavailable(m) => ErrorKind::Unavailable.raise(m),
        e @ ClientError::FlushTimeout { .. } => ErrorKind::Unavailable.raise(e),
        ClientError::Policy(p) => ErrorKind::Config.raise(p),
        ClientError::Gateway(g) => match *g {
            e @ (GatewayError::CaCert { .. } | GatewayError::NoCertificate { .. }) => {
                ErrorKind::Config.raise(e)
            }
            e => ErrorKind::Unavailable.raise(e),
        },
        other => ErrorKind::Base.raise(other),
    }
}

fn invalid(e: impl std::fmt::Display) -> PyErr {
    ErrorKind::Invalid.raise(e)
}

/// Parses an action; shape errors raise `InvalidAction`, out-of-bounds fields are left to the
/// engine, which denies them with `invalid_input` like every other binding.
fn parse_action(json: &str) -> PyResult<Action> {
    aa_core::ModelError::parse(json).map_err(invalid)
}

/// Converts a Python value to the core's neutral [`ArgValue`] (the rules are in
/// [`aa_core::tool_call`]): exact `str`, `bool`, `int`, `float`, `None` and `bytes` are
/// themselves; mappings (keys as `str(key)`), lists, tuples, sets and frozensets recurse;
/// anything else, subclasses of the plain types included, is its `repr()`. `path` holds the
/// containers being converted, to spot cycles.
fn to_arg(obj: &Bound<'_, PyAny>, depth: usize, path: &mut Vec<usize>) -> PyResult<ArgValue> {
    if depth > MAX_DEPTH {
        return Ok(ArgValue::TooDeep);
    }
    if obj.is_none() {
        return Ok(ArgValue::Null);
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(ArgValue::Str(
            obj.cast::<PyString>()?.to_cow()?.into_owned(),
        ));
    }
    if obj.is_exact_instance_of::<pyo3::types::PyBool>() {
        return Ok(ArgValue::Bool(obj.extract()?));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => ArgValue::Int(i),
            Err(_) => ArgValue::Other(obj.str()?.to_cow()?.into_owned()),
        });
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(ArgValue::Float(obj.extract()?));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        return Ok(ArgValue::Bytes(obj.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    let is_dict = obj.is_exact_instance_of::<PyDict>();
    let is_seq = !is_dict
        && (obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<PyTuple>()
            || obj.is_instance_of::<PySet>()
            || obj.is_instance_of::<PyFrozenSet>());
    let is_mapping = is_dict || (!is_seq && obj.cast::<PyMapping>().is_ok());
    if !is_seq && !is_mapping {
        return Ok(ArgValue::Other(obj.repr()?.to_cow()?.into_owned()));
    }
    let id = obj.as_ptr() as usize;
    if path.contains(&id) {
        return Ok(ArgValue::Cycle);
    }
    path.push(id);
    let value = if is_dict {
        let d = obj.cast::<PyDict>()?;
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            entries.push((key_text(&k)?, to_arg(&v, depth + 1, path)?));
        }
        ArgValue::Map(entries)
    } else if is_mapping {
        let mut entries = Vec::new();
        for item in obj.call_method0("items")?.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            entries.push((key_text(&k)?, to_arg(&v, depth + 1, path)?));
        }
        ArgValue::Map(entries)
    } else {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(to_arg(&item?, depth + 1, path)?);
        }
        ArgValue::List(items)
    };
    path.pop();
    Ok(value)
}

/// `str(key)`.
fn key_text(k: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match k.cast::<PyString>() {
        Ok(s) if k.is_exact_instance_of::<PyString>() => s.to_cow()?.into_owned(),
        _ => k.str()?.to_cow()?.into_owned(),
    })
}

/// The named arguments of a call, as neutral values.
fn to_args(args: &Bound<'_, PyDict>) -> PyResult<Vec<(String, ArgValue)>> {
    let mut out = Vec::with_capacity(args.len());
    let mut path = Vec::new();
    for (k, v) in args.iter() {
        out.push((key_text(&k)?, to_arg(&v, 1, &mut path)?));
    }
    Ok(out)
}

/// The size-relevant shape of a call's result: `len()` of a `str`, `bytes`, `bytearray`,
/// `list`, `tuple`, `dict` or `set`.
fn shape(result: &Bound<'_, PyAny>) -> PyResult<ResultShape> {
    let len = || result.len().map(|n| n as u64);
    Ok(if result.is_instance_of::<PyString>() {
        ResultShape::Text(len()?)
    } else if result.is_instance_of::<PyBytes>() || result.is_instance_of::<PyByteArray>() {
        ResultShape::Bytes(len()?)
    } else if result.is_instance_of::<PyList>()
        || result.is_instance_of::<PyTuple>()
        || result.is_instance_of::<PyDict>()
        || result.is_instance_of::<PySet>()
    {
        ResultShape::Collection(len()?)
    } else {
        ResultShape::Other
    })
}

/// The rules of one governed function (built once, when it is decorated): the core's
/// redaction rules, and the parameter names kept in the action (all when `keep` is `None`).
#[pyclass(frozen, name = "ArgRules", module = "agent_assembly._native")]
pub struct PyArgRules {
    inner: RustArgRules,
    keep: Option<std::collections::HashSet<String>>,
}

#[pymethods]
impl PyArgRules {
    #[new]
    #[pyo3(signature = (redact=Vec::new(), keep=None))]
    fn new(redact: Vec<String>, keep: Option<Vec<String>>) -> Self {
        PyArgRules {
            inner: RustArgRules::new(redact),
            keep: keep.map(|k| k.into_iter().collect()),
        }
    }
}

impl PyArgRules {
    fn keeps(&self, name: &str) -> bool {
        self.keep.as_ref().is_none_or(|k| k.contains(name))
    }
}

/// The named arguments of a call of a governed function: positional `args` (after the first
/// `skip`, i.e. `self`/`cls`) named by `names`, extra positionals as a list under `*args`,
/// then `kwargs`; only the names `rules` keeps.
fn call_args(
    names: &Bound<'_, PyTuple>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
    rules: &PyArgRules,
    skip: usize,
) -> PyResult<Vec<(String, ArgValue)>> {
    let mut out = Vec::with_capacity(args.len() + kwargs.map_or(0, |k| k.len()));
    let mut path = Vec::new();
    let mut extra = Vec::new();
    for (i, value) in args.iter().skip(skip).enumerate() {
        if i < names.len() {
            let name = key_text(&names.get_item(i)?)?;
            if rules.keeps(&name) {
                out.push((name, to_arg(&value, 1, &mut path)?));
            }
        } else if rules.keeps("*args") {
            extra.push(to_arg(&value, 2, &mut path)?);
        }
    }
    if args.len() > skip + names.len() && rules.keeps("*args") {
        out.push(("*args".to_owned(), ArgValue::List(extra)));
    }
    if let Some(kwargs) = kwargs {
        for (k, v) in kwargs.iter() {
            let name = key_text(&k)?;
            if rules.keeps(&name) {
                out.push((name, to_arg(&v, 1, &mut path)?));
            }
        }
    }
    Ok(out)
}

/// A governed tool call in progress: the action as decided, its decision, and when it was
/// allowed to start; `ok(result)` or `error(exc)` records how it ended.
#[pyclass(frozen, name = "ToolCall", module = "agent_assembly._native")]
pub struct PyCall {
    governor: Arc<RustGovernor>,
    action: Action,
    decision: Py<PyDecision>,
    started: Instant,
}

impl PyCall {
    fn finish(&self, py: Python<'_>, end: CallEnd<'_>) -> PyResult<()> {
        let duration_us = aa_sdk_client::micros_since(self.started);
        let decision = &self.decision.get().inner;
        let (g, action) = (&self.governor, &self.action);
        py.detach(|| g.report_tool(action, decision, end, duration_us))
            .map_err(to_py)
    }
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
    /// Records that the call returned `result`.
    #[pyo3(signature = (result=None))]
    fn ok(&self, py: Python<'_>, result: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let shape = match result {
            Some(r) => shape(r)?,
            None => ResultShape::Other,
        };
        self.finish(py, CallEnd::Returned(shape))
    }
    /// Records that the call raised `error` (its type name is kept, never its message).
    fn error(&self, py: Python<'_>, error: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = error.get_type().name()?;
        self.finish(py, CallEnd::Raised(&name.to_cow()?))
    }
    fn __repr__(&self) -> String {
        format!(
            "ToolCall({:?}, {})",
            self.action.kind().as_str(),
            self.decision.get().__repr__()
        )
    }
}

/// A decision. `allowed` is what callers branch on; the rest explains it.
#[pyclass(frozen, name = "Decision", module = "agent_assembly")]
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
    /// The decision of [`PyDecision::to_json`]'s text.
    #[staticmethod]
    fn from_json(json: &str) -> PyResult<Self> {
        Ok(PyDecision {
            inner: serde_json::from_str(json).map_err(invalid)?,
        })
    }
    /// Pickles as its JSON.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let from_json = slf.get_type().getattr("from_json")?;
        Ok((from_json, (slf.get().to_json(),)))
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyDecision>()
            .is_ok_and(|o| o.get().inner == self.inner)
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

    /// Decides calling `tool` with `args` (names to Python values, converted to the core's
    /// neutral values and redacted, converted and truncated by `rules`). The returned call
    /// records its end with `ok()` or `error()`.
    #[pyo3(signature = (tool, args, rules=None))]
    fn decide_tool(
        &self,
        py: Python<'_>,
        tool: &str,
        args: &Bound<'_, PyDict>,
        rules: Option<&PyArgRules>,
    ) -> PyResult<PyCall> {
        let args = to_args(args)?;
        match rules {
            Some(r) => self.start_call(py, tool, args, &r.inner),
            None => self.start_call(py, tool, args, &RustArgRules::default()),
        }
    }

    /// [`Governor::decide_tool`] for a call of a governed function, its arguments as the
    /// function received them (see `call_args`): the decorator's fast path.
    #[pyo3(signature = (tool, names, args, kwargs, rules, skip=0))]
    #[allow(clippy::too_many_arguments)]
    fn decide_call(
        &self,
        py: Python<'_>,
        tool: &str,
        names: &Bound<'_, PyTuple>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        rules: &PyArgRules,
        skip: usize,
    ) -> PyResult<PyCall> {
        let args = call_args(names, args, kwargs, rules, skip)?;
        self.start_call(py, tool, args, &rules.inner)
    }

    /// A governor for the child after a `fork()`, configured like this one (in embedded mode
    /// it writes its own audit file, `<audit_file>.<pid>`). This one must not be used again
    /// in the child.
    fn after_fork(&self, py: Python<'_>) -> PyResult<Self> {
        let config = self.inner.config_after_fork(std::process::id());
        let governor = py.detach(|| RustGovernor::start(config)).map_err(to_py)?;
        Ok(Governor {
            inner: Arc::new(governor),
        })
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

impl Governor {
    fn start_call(
        &self,
        py: Python<'_>,
        tool: &str,
        args: Vec<(String, ArgValue)>,
        rules: &RustArgRules,
    ) -> PyResult<PyCall> {
        let g = &self.inner;
        let (action, decision) = py.detach(|| g.decide_tool(tool, args, rules));
        Ok(PyCall {
            governor: self.inner.clone(),
            action,
            decision: Py::new(py, PyDecision { inner: decision })?,
            started: Instant::now(),
        })
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
            PolicyBundle::from_dir(&policy_dir).map_err(|e| ErrorKind::Config.raise(e))?;
        bundle.suspended.extend(suspended);
        let policy =
            aa_core::CompiledPolicy::compile(bundle).map_err(|e| ErrorKind::Config.raise(e))?;
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
            .map_err(|e| ErrorKind::Base.raise(e))
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
    m.add_class::<Governor>()?;
    m.add_class::<PyDecision>()?;
    m.add_class::<PyCall>()?;
    m.add_class::<PyArgRules>()?;
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(reseed_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(is_deny, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
