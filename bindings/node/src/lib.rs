//! The native module of the `agent-assembly` npm package: the Node face of `aa-sdk-client`
//! and `aa-core`. It converts JS values to the core's types and calls the Rust side; every
//! decision, redaction, truncation, outcome and usage reading is made there. Errors carry a
//! stable `code` (see [`Code`]); the package's JS layer turns them into its error classes.
//!
//! In remote mode the package decides through [`Governor::decide_tool_async`], which converts
//! the arguments on the JS thread and asks the gateway from the libuv thread pool, so the event
//! loop is never blocked by the network.

#![allow(unsafe_code)] // napi-rs's macros expand to unsafe FFI glue; `Unknown::cast` is used below after a type check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aa_core::tool_call::{
    ArgRules as RustArgRules, ArgValue, CallEnd, JsonNumbers, MAX_DEPTH, ResultShape,
};
use aa_core::{Action, Agent, Decision as RustDecision, FixedEnv, Layer, Outcome, PolicyBundle};
use aa_sdk_client::{
    Began, ClientConfig, ClientError, ConfigInput, GatewayError, Governor as RustGovernor, Mode,
};
use napi::bindgen_prelude::{
    ArrayBuffer, AsyncTask, BigInt, Either, External, Function, JsObjectValue, Object,
};
use napi::{Env, JsValue, Task, Unknown, ValueType};
use napi_derive::napi;
use serde_json::{Map, Value};

// mimalloc for the module's own (Rust) heap, not Node's: a governed call allocates the action,
// its decision and two audit events, and glibc's malloc/free cost about 13k of its ~53k
// instructions (callgrind); the shipper thread frees what the JS thread allocated.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The stable error codes thrown by this module (`err.code` in JS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The configuration is incomplete or invalid (`config`).
    Config,
    /// A policy set could not be loaded (`invalid_policy`).
    InvalidPolicy,
    /// The gateway could not be reached in time (`unavailable`).
    Unavailable,
    /// An action, outcome or argument is malformed (`invalid_input`).
    InvalidInput,
    /// The audit file failed (`audit`).
    Audit,
    /// Anything else (`internal`).
    Internal,
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Code::Config => "config",
            Code::InvalidPolicy => "invalid_policy",
            Code::Unavailable => "unavailable",
            Code::InvalidInput => "invalid_input",
            Code::Audit => "audit",
            Code::Internal => "internal",
        }
    }
}

/// What the module's functions throw.
type Error = napi::Error<Code>;
type Result<T> = std::result::Result<T, Error>;

fn error(code: Code, message: impl std::fmt::Display) -> Error {
    napi::Error::new(code, message.to_string())
}

fn invalid(e: impl std::fmt::Display) -> Error {
    error(Code::InvalidInput, e)
}

/// A napi failure (a JS exception while reading a value) as this module's error.
fn js(e: napi::Error) -> Error {
    error(Code::InvalidInput, e.reason)
}

/// The one mapping of the SDK client's errors to codes.
fn client_error(e: ClientError) -> Error {
    match e {
        ClientError::Config(m) => error(
            Code::Config,
            format!("invalid Agent Assembly configuration: {m}"),
        ),
        ClientError::Policy(p) => error(Code::InvalidPolicy, p),
        ClientError::Audit(a) => error(Code::Audit, a),
        ClientError::Unavailable(m) => {
            error(Code::Unavailable, format!("gateway unavailable: {m}"))
        }
        e @ ClientError::FlushTimeout { .. } => error(Code::Unavailable, e),
        ClientError::Gateway(g) => match *g {
            e @ (GatewayError::CaCert { .. } | GatewayError::NoCertificate { .. }) => {
                error(Code::Config, e)
            }
            e => error(Code::Unavailable, e),
        },
        other => error(Code::Internal, other),
    }
}

fn parse_action(json: &str) -> Result<Action> {
    aa_core::ModelError::parse(json).map_err(invalid)
}

fn seconds(timeout: Option<f64>) -> Duration {
    let t = timeout.unwrap_or(5.0);
    if t.is_finite() && t > 0.0 {
        Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

// ---------------------------------------------------------------------------------------------
// JS values → ArgValue

/// The constructors a conversion compares against, read from the global object the first time
/// a conversion meets an object that is not a plain object or array, or a value that needs its
/// text.
struct Realm<'e> {
    map: Function<'e, Unknown<'e>, Unknown<'e>>,
    set: Function<'e, Unknown<'e>, Unknown<'e>>,
    array_buffer: Function<'e, Unknown<'e>, Unknown<'e>>,
    string: Function<'e, Unknown<'e>, String>,
    array_from: Function<'e, Unknown<'e>, Object<'e>>,
}

impl<'e> Realm<'e> {
    fn new(env: &'e Env) -> napi::Result<Self> {
        let global = env.get_global()?;
        // Constructors are functions: read them as objects without the object type check.
        let array: Object<'e> = global.get_named_property_unchecked("Array")?;
        Ok(Realm {
            map: global.get_named_property("Map")?,
            set: global.get_named_property("Set")?,
            array_buffer: global.get_named_property("ArrayBuffer")?,
            string: global.get_named_property("String")?,
            array_from: array.get_named_property("from")?,
        })
    }
}

/// One conversion of a call's arguments (see [`Converter::value`] for the rules).
struct Converter<'e> {
    env: &'e Env,
    realm: Option<Realm<'e>>,
    path: Vec<Unknown<'e>>,
}

/// How an object is converted.
enum Shape<'e> {
    List(Vec<Unknown<'e>>),
    Map(Vec<(String, Unknown<'e>)>),
    Bytes(Vec<u8>),
    Text,
}

/// Arguments the package sent as JSON text: it does so only for plain objects and arrays of
/// well-formed strings, numbers, booleans and null (`jsonText` in `lib/index.cjs`), whose text
/// reads back — numbers as doubles ([`JsonNumbers::Double`]) — as exactly what [`Converter`]
/// would give, without an N-API call per key and value.
fn parse_json(json: &str) -> Result<Value> {
    serde_json::from_str(json).map_err(invalid)
}

/// [`Converter::positional`] of an argument array sent as JSON text.
fn positional_json(json: &str, names: Option<&[String]>) -> Result<Map<String, Value>> {
    let Value::Array(items) = parse_json(json)? else {
        return Err(invalid("the arguments are not a JSON array"));
    };
    Ok(match names {
        Some(names) => names.iter().cloned().zip(items).collect(),
        None => match <[Value; 1]>::try_from(items) {
            Ok([Value::Object(map)]) => map,
            Ok([only]) => Map::from_iter([("args".to_owned(), Value::Array(vec![only]))]),
            Err(items) if items.is_empty() => Map::new(),
            Err(items) => Map::from_iter([("args".to_owned(), Value::Array(items))]),
        },
    })
}

/// [`Converter::named`] of an argument object sent as JSON text.
fn named_json(json: &str) -> Result<Map<String, Value>> {
    Ok(match parse_json(json)? {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        other => Map::from_iter([("args".to_owned(), other)]),
    })
}

impl<'e> Converter<'e> {
    fn new(env: &'e Env) -> Self {
        Converter {
            env,
            realm: None,
            path: Vec::new(),
        }
    }

    fn realm(&mut self) -> napi::Result<&Realm<'e>> {
        if self.realm.is_none() {
            self.realm = Some(Realm::new(self.env)?);
        }
        match &self.realm {
            Some(r) => Ok(r),
            None => Err(napi::Error::from_reason("no realm")),
        }
    }

    /// `String(value)` (never throws for symbols, unlike a coercion), or a placeholder when
    /// even that throws.
    fn text(&mut self, value: Unknown<'e>) -> String {
        match self.realm().and_then(|r| r.string.call(value)) {
            Ok(s) => s,
            Err(_) => "<unprintable>".to_owned(),
        }
    }

    /// The shape of an object: arrays and `Set`s are lists; `Uint8Array`s (`Buffer` included)
    /// and `ArrayBuffer`s are bytes; plain objects (prototype `Object.prototype` or `null`) and
    /// `Map`s are maps; anything else (dates, class instances, other typed arrays …) is text.
    fn shape(&mut self, value: Unknown<'e>) -> napi::Result<Shape<'e>> {
        if value.is_array()? {
            // SAFETY: the value is an array, hence an object.
            let array: Object<'e> = unsafe { value.cast()? };
            let n = array.get_array_length()?;
            let mut items = Vec::with_capacity(n as usize);
            for i in 0..n {
                items.push(array.get_element::<Unknown<'e>>(i)?);
            }
            return Ok(Shape::List(items));
        }
        if value.is_typedarray()? {
            // SAFETY: the value is a typed array; `&[u8]` accepts only a Uint8Array.
            return Ok(match unsafe { value.cast::<&[u8]>() } {
                Ok(bytes) => Shape::Bytes(bytes.to_vec()),
                Err(_) => Shape::Text,
            });
        }
        // Plain objects first, found without a global lookup: a plain object's prototype is
        // `null`, or `Object.prototype` (of any realm), whose own prototype is `null`.
        // SAFETY: the caller checked the value is an object.
        let object: Object<'e> = unsafe { value.cast()? };
        let proto = object.get_prototype()?;
        let plain = proto.get_type()? == ValueType::Null || {
            // SAFETY: a prototype that is not null is an object.
            let proto: Object<'e> = unsafe { proto.cast()? };
            proto.get_prototype()?.get_type()? == ValueType::Null
        };
        if !plain {
            let realm = self.realm()?;
            if value.instanceof(realm.array_buffer)? {
                // SAFETY: the value is an ArrayBuffer.
                let buffer: ArrayBuffer<'e> = unsafe { value.cast()? };
                return Ok(Shape::Bytes(buffer.to_vec()));
            }
            if value.instanceof(realm.map)? {
                let pairs = realm.array_from.call(value)?;
                let n = pairs.get_array_length()?;
                let mut entries = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let pair: Object<'e> = pairs.get_element(i)?;
                    let key: Unknown<'e> = pair.get_element(0)?;
                    let v: Unknown<'e> = pair.get_element(1)?;
                    let key = match key.get_type()? {
                        // SAFETY: type checked.
                        ValueType::String => unsafe { key.cast::<String>()? },
                        _ => self.text(key),
                    };
                    entries.push((key, v));
                }
                return Ok(Shape::Map(entries));
            }
            if value.instanceof(realm.set)? {
                let items = realm.array_from.call(value)?;
                let n = items.get_array_length()?;
                let mut out = Vec::with_capacity(n as usize);
                for i in 0..n {
                    out.push(items.get_element::<Unknown<'e>>(i)?);
                }
                return Ok(Shape::List(out));
            }
            return Ok(Shape::Text);
        }
        // Each value is read with the key value `Object.keys` gave (no key string is made
        // again on the JS side).
        let keys = object.get_property_names()?;
        let n = keys.get_array_length()?;
        let mut entries = Vec::with_capacity(n as usize);
        for i in 0..n {
            let key: Unknown<'e> = keys.get_element(i)?;
            let v: Unknown<'e> = object.get_property_unchecked(key)?;
            // SAFETY: `napi_get_property_names` gives the keys as strings.
            entries.push((unsafe { key.cast::<String>()? }, v));
        }
        Ok(Shape::Map(entries))
    }

    /// A JS value as the core's neutral [`ArgValue`]: `null`/`undefined` are null, booleans
    /// themselves, numbers integers when whole and within ±(2^53−1) (else floats; NaN and
    /// ±Infinity become null in the core), strings themselves, `BigInt`s integers when they fit
    /// `i64` (else their decimal text), then objects by [`Converter::shape`]; symbols,
    /// functions and every other object are their `String()` text. A container met again
    /// inside itself is a cycle; past [`MAX_DEPTH`] conversion stops.
    fn value(&mut self, value: Unknown<'e>, depth: usize) -> napi::Result<ArgValue> {
        if depth > MAX_DEPTH {
            return Ok(ArgValue::TooDeep);
        }
        // SAFETY (every `cast` below): the value's type was checked just before.
        Ok(match value.get_type()? {
            ValueType::Undefined | ValueType::Null => ArgValue::Null,
            ValueType::Boolean => ArgValue::Bool(unsafe { value.cast::<bool>()? }),
            ValueType::Number => ArgValue::double(unsafe { value.cast::<f64>()? }),
            ValueType::String => ArgValue::Str(unsafe { value.cast::<String>()? }),
            ValueType::BigInt => {
                let big = unsafe { value.cast::<BigInt>()? };
                match big.get_i64() {
                    (i, true) => ArgValue::Int(i),
                    _ => ArgValue::Other(self.text(value)),
                }
            }
            ValueType::Object => {
                let shape = self.shape(value)?;
                if let Shape::Text = shape {
                    return Ok(ArgValue::Other(self.text(value)));
                }
                if let Shape::Bytes(b) = shape {
                    return Ok(ArgValue::Bytes(b));
                }
                for seen in &self.path {
                    if self.env.strict_equals(*seen, value)? {
                        return Ok(ArgValue::Cycle);
                    }
                }
                self.path.push(value);
                let converted = match shape {
                    Shape::List(items) => {
                        let mut out = Vec::with_capacity(items.len());
                        for item in items {
                            out.push(self.value(item, depth + 1)?);
                        }
                        ArgValue::List(out)
                    }
                    Shape::Map(entries) => {
                        let mut out = Vec::with_capacity(entries.len());
                        for (k, v) in entries {
                            let v = self.value(v, depth + 1)?;
                            out.push((k, v));
                        }
                        ArgValue::Map(out)
                    }
                    Shape::Bytes(_) | Shape::Text => ArgValue::Null,
                };
                self.path.pop();
                converted
            }
            _ => ArgValue::Other(self.text(value)),
        })
    }

    /// The named arguments of a call given as one object: the entries of a plain object or a
    /// `Map`; `null`/`undefined` are no arguments; anything else is one argument named `args`.
    fn named(&mut self, args: Option<Unknown<'e>>) -> napi::Result<Vec<(String, ArgValue)>> {
        let Some(args) = args else {
            return Ok(Vec::new());
        };
        match args.get_type()? {
            ValueType::Undefined | ValueType::Null => return Ok(Vec::new()),
            ValueType::Object => {
                if let Shape::Map(entries) = self.shape(args)? {
                    self.path.push(args);
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        let v = self.value(v, 1)?;
                        out.push((k, v));
                    }
                    self.path.pop();
                    return Ok(out);
                }
            }
            _ => {}
        }
        Ok(vec![("args".to_owned(), self.value(args, 1)?)])
    }

    /// The named arguments of a call of a governed function, from the array of its arguments:
    /// with `names`, the i-th argument is named `names[i]` (arguments past the names are not
    /// recorded); without, a single plain-object argument gives its entries (how tool
    /// frameworks call tools), no argument none, and anything else is the list `args`.
    fn positional(
        &mut self,
        argv: Object<'e>,
        names: Option<&[String]>,
    ) -> napi::Result<Vec<(String, ArgValue)>> {
        let n = argv.get_array_length()?;
        match names {
            Some(names) => {
                let mut out = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    let Ok(i) = u32::try_from(i) else { break };
                    if i >= n {
                        break;
                    }
                    let v = self.value(argv.get_element::<Unknown<'e>>(i)?, 1)?;
                    out.push((name.clone(), v));
                }
                Ok(out)
            }
            None if n == 0 => Ok(Vec::new()),
            None => {
                if n == 1 {
                    let only: Unknown<'e> = argv.get_element(0)?;
                    if only.get_type()? == ValueType::Object
                        && let Shape::Map(entries) = self.shape(only)?
                    {
                        self.path.push(only);
                        let mut out = Vec::with_capacity(entries.len());
                        for (k, v) in entries {
                            let v = self.value(v, 1)?;
                            out.push((k, v));
                        }
                        self.path.pop();
                        return Ok(out);
                    }
                }
                let mut items = Vec::with_capacity(n as usize);
                for i in 0..n {
                    items.push(self.value(argv.get_element::<Unknown<'e>>(i)?, 2)?);
                }
                Ok(vec![("args".to_owned(), ArgValue::List(items))])
            }
        }
    }

    /// The size-relevant shape of a call's result: a string's characters, a byte array's
    /// bytes, the entries of an array, `Map`, `Set` or plain object.
    fn result(&mut self, value: Unknown<'e>) -> napi::Result<ResultShape> {
        Ok(match value.get_type()? {
            // SAFETY: type checked.
            ValueType::String => {
                ResultShape::Text(unsafe { value.cast::<String>()? }.chars().count() as u64)
            }
            ValueType::Object => match self.shape(value)? {
                Shape::List(items) => ResultShape::Collection(items.len() as u64),
                Shape::Map(entries) => ResultShape::Collection(entries.len() as u64),
                Shape::Bytes(b) => ResultShape::Bytes(b.len() as u64),
                Shape::Text => ResultShape::Other,
            },
            _ => ResultShape::Other,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Classes

/// A decision. `allowed` is what callers branch on; the rest explains it.
#[napi]
pub struct Decision {
    inner: RustDecision,
}

#[napi]
impl Decision {
    /// True for allow.
    #[napi(getter)]
    pub fn allowed(&self) -> bool {
        self.inner.is_allowed()
    }
    /// `allow` or `deny`.
    #[napi(getter)]
    pub fn effect(&self) -> &'static str {
        self.inner.effect.as_str()
    }
    /// Stable reason code (`forbidden`, `no_permit`, `budget_exceeded`, `suspended`,
    /// `unavailable`, …).
    #[napi(getter)]
    pub fn reason(&self) -> &'static str {
        self.inner.reason.as_str()
    }
    /// Human-readable explanation.
    #[napi(getter)]
    pub fn message(&self) -> String {
        self.inner.message.clone()
    }
    /// The determining policy ids.
    #[napi(getter)]
    pub fn policy_ids(&self) -> Vec<String> {
        self.inner.policy_ids.clone()
    }
    /// Unique id of the decision (as in the audit trail).
    #[napi(getter)]
    pub fn decision_id(&self) -> String {
        self.inner.decision_id.clone()
    }
    /// The budget that denied, if any.
    #[napi(getter)]
    pub fn budget(&self) -> Option<String> {
        self.inner.budget.clone()
    }
    /// The policy version decided against.
    #[napi(getter)]
    pub fn policy_version(&self) -> Option<String> {
        self.inner.policy_version.clone()
    }
    /// Allowed only because the configuration fails open.
    #[napi(getter)]
    pub fn fail_open(&self) -> bool {
        self.inner.fail_open
    }
    /// The decision in its wire form (JSON text).
    #[napi]
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(&self.inner).unwrap_or_default()
    }
}

/// The rules of one governed function, built once when it is wrapped: argument names to
/// redact (beside the core's secret names), and the names of its positional arguments.
#[napi]
pub struct ArgRules {
    inner: Arc<RustArgRules>,
    names: Option<Vec<String>>,
}

#[napi]
impl ArgRules {
    /// `redact`: argument names recorded as `"[redacted]"`; `names`: the names of the
    /// positional arguments (without them, a single plain-object argument gives the names).
    #[napi(constructor)]
    pub fn new(redact: Option<Vec<String>>, names: Option<Vec<String>>) -> Self {
        ArgRules {
            inner: Arc::new(RustArgRules::new(redact.unwrap_or_default())),
            names,
        }
    }
}

/// A governed tool call in progress: the action as decided and its decision; `ok(result)` or
/// `error(typeName)` records how it ended.
#[napi]
pub struct ToolCall {
    governor: Arc<RustGovernor>,
    action: Action,
    decision: RustDecision,
    started: Instant,
}

impl ToolCall {
    fn finish(&self, end: CallEnd<'_>) -> Result<()> {
        let duration_us = aa_sdk_client::micros_since(self.started);
        self.governor
            .report_tool(&self.action, &self.decision, end, duration_us)
            .map_err(client_error)
    }
}

#[napi]
impl ToolCall {
    /// True for allow.
    #[napi(getter)]
    pub fn allowed(&self) -> bool {
        self.decision.is_allowed()
    }
    /// The decision.
    #[napi(getter)]
    pub fn decision(&self) -> Decision {
        Decision {
            inner: self.decision.clone(),
        }
    }
    /// The action as decided (redacted, converted, truncated), as JSON text.
    #[napi]
    pub fn action_json(&self) -> String {
        serde_json::to_string(&self.action).unwrap_or_default()
    }
    /// Records that the call returned `result` (its size is recorded, never its content).
    #[napi]
    pub fn ok(&self, env: &Env, result: Option<Unknown<'_>>) -> Result<()> {
        let shape = result_shape(env, result)?;
        self.finish(CallEnd::Returned(shape))
    }
    /// Records that the call threw an error of type `type_name` (never its message).
    #[napi]
    pub fn error(&self, type_name: String) -> Result<()> {
        self.finish(CallEnd::Raised(&type_name))
    }
}

/// Options of a governor; anything not given is read from the environment (`AA_GATEWAY_URL`,
/// `AA_AGENT_ID`, `AA_TOKEN`, `AA_POLICY`, `AA_MODE`, `AA_TEAM`, `AA_SESSION_ID`,
/// `AA_FAIL_OPEN`, `AA_SPILL_DIR`, `AA_AUDIT_FILE`, `AA_CA_CERT`).
#[napi(object)]
#[derive(Default)]
pub struct GovernorOptions {
    /// Gateway base URL (`http://` or `https://`).
    pub gateway_url: Option<String>,
    /// The agent's id.
    pub agent_id: Option<String>,
    /// The agent's bearer token.
    pub token: Option<String>,
    /// A policy directory (embedded mode).
    pub policy: Option<String>,
    /// `local` (default with a gateway), `remote` or `embedded` (default with only a policy).
    pub mode: Option<String>,
    /// Team of the agent (embedded mode).
    pub team: Option<String>,
    /// Session id carried into audit records.
    pub session_id: Option<String>,
    /// Allow (flagged) instead of deny when no decision can be made. Default false.
    pub fail_open: Option<bool>,
    /// Where audit events are spilled while the gateway is unreachable.
    pub spill_dir: Option<String>,
    /// The local audit file (embedded mode).
    pub audit_file: Option<String>,
    /// Extra CA certificate (PEM) for a TLS gateway.
    pub ca_cert: Option<String>,
    /// In-memory queue length before events spill to disk.
    pub queue_capacity: Option<u32>,
}

/// Counters of a governor.
#[napi(object)]
pub struct Stats {
    /// Events waiting in memory.
    pub queued: f64,
    /// Events spilled to disk, not yet delivered.
    pub spilled: f64,
    /// Events the gateway acknowledged.
    pub shipped: f64,
    /// Events the gateway refused for good.
    pub rejected: f64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// The policy version decisions are made against (local, embedded).
    pub policy_version: Option<String>,
}

/// What happened after an allowed action ran, for [`Governor::report`].
#[napi(object)]
pub struct ReportOptions {
    /// True when it succeeded (default true).
    pub ok: Option<bool>,
    /// How long it ran, microseconds.
    pub duration_us: Option<f64>,
    /// The size of its result.
    pub result_size: Option<f64>,
    /// The error's type name.
    pub error: Option<String>,
    /// Token usage as JSON text (`{"input_tokens","output_tokens","cost_usd"?}`).
    pub usage_json: Option<String>,
}

/// The governor of one agent (the package keeps one per process).
#[napi]
pub struct Governor {
    inner: Arc<RustGovernor>,
}

fn path(p: Option<String>) -> Option<std::path::PathBuf> {
    p.map(std::path::PathBuf::from)
}

fn whole(n: Option<f64>) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
    n.filter(|n| n.is_finite()).map(|n| n.max(0.0) as u64)
}

#[napi]
impl Governor {
    /// Starts a governor (throws `config` when the options and environment do not add up).
    #[napi(constructor)]
    pub fn new(options: Option<GovernorOptions>) -> Result<Self> {
        let o = options.unwrap_or_default();
        let input = ConfigInput {
            gateway_url: o.gateway_url,
            agent_id: o.agent_id,
            token: o.token,
            policy: path(o.policy),
            mode: o.mode,
            team: o.team,
            session_id: o.session_id,
            fail_open: o.fail_open,
            spill_dir: path(o.spill_dir),
            audit_file: path(o.audit_file),
            ca_cert: path(o.ca_cert),
            queue_capacity: o.queue_capacity.map(|n| n as usize),
        };
        let config = ClientConfig::resolve(input).map_err(client_error)?;
        let governor = RustGovernor::start(config).map_err(client_error)?;
        Ok(Governor {
            inner: Arc::new(governor),
        })
    }

    /// `local`, `remote` or `embedded`.
    #[napi(getter)]
    pub fn mode(&self) -> &'static str {
        match self.inner.config().mode {
            Mode::Local => "local",
            Mode::Remote => "remote",
            Mode::Embedded => "embedded",
        }
    }

    /// The agent's id.
    #[napi(getter)]
    pub fn agent_id(&self) -> String {
        self.inner.agent().agent_id.clone()
    }

    /// The local audit file (embedded mode).
    #[napi(getter)]
    pub fn audit_file(&self) -> String {
        self.inner.config().audit_file.display().to_string()
    }

    /// Decides an action given as wire JSON (`{"kind": "http_request", …}`).
    #[napi]
    pub fn decide(&self, action_json: String) -> Result<Decision> {
        let action = parse_action(&action_json)?;
        Ok(Decision {
            inner: self.inner.decide(&action),
        })
    }

    /// [`Governor::decide`] off the JS thread (remote mode asks the gateway).
    #[napi(ts_return_type = "Promise<Decision>")]
    pub fn decide_async(&self, action_json: String) -> Result<AsyncTask<DecideTask>> {
        let action = parse_action(&action_json)?;
        Ok(AsyncTask::new(DecideTask {
            governor: self.inner.clone(),
            action: Some(action),
        }))
    }

    /// Decides calling `tool` with `args` (a plain object or `Map` of named arguments,
    /// converted to the core's neutral values, then redacted, converted and truncated by the
    /// core). The returned call records its end with `ok()` or `error()`.
    #[napi]
    pub fn decide_tool(
        &self,
        env: &Env,
        tool: String,
        args: Option<Unknown<'_>>,
        rules: Option<&ArgRules>,
    ) -> Result<ToolCall> {
        let args = Converter::new(env).named(args).map_err(js)?;
        Ok(self.start(&tool, args, rules))
    }

    /// [`Governor::decide_tool`] for a call of a governed function, given the array of the
    /// arguments it received (named by `rules`).
    #[napi]
    pub fn decide_call(
        &self,
        env: &Env,
        tool: String,
        argv: Object<'_>,
        rules: &ArgRules,
    ) -> Result<ToolCall> {
        let args = Converter::new(env)
            .positional(argv, rules.names.as_deref())
            .map_err(js)?;
        Ok(self.start(&tool, args, Some(rules)))
    }

    /// The hot path of a governed call: decides calling `tool` with the arguments `argv`
    /// (named by `rules`, as [`Governor::decide_call`]). Allowed: a ticket (a number) to hand
    /// to `endOk` or `endError` when the call ends — the call is held in the core meanwhile,
    /// with no JS object made for it. Denied: the decision.
    #[napi(ts_return_type = "number | Decision")]
    pub fn begin_call(
        &self,
        env: &Env,
        tool: String,
        argv: Object<'_>,
        rules: &ArgRules,
    ) -> Result<Either<f64, Decision>> {
        let args = Converter::new(env)
            .positional(argv, rules.names.as_deref())
            .map_err(js)?;
        Ok(ticket(self.inner.begin_tool(&tool, args, &rules.inner)))
    }

    /// [`Governor::begin_call`] with the named arguments given as one object (as
    /// [`Governor::decide_tool`]).
    #[napi(ts_return_type = "number | Decision")]
    pub fn begin_tool(
        &self,
        env: &Env,
        tool: String,
        args: Option<Unknown<'_>>,
        rules: Option<&ArgRules>,
    ) -> Result<Either<f64, Decision>> {
        let args = Converter::new(env).named(args).map_err(js)?;
        Ok(self.begin_named(&tool, args, rules))
    }

    /// The hot path of `govern()` for `tool` with `rules` on this governor: a [`Gate`], made
    /// once per governed function and governor.
    #[napi(ts_return_type = "ExternalObject<'Gate'>")]
    pub fn gate(&self, tool: String, rules: &ArgRules) -> External<Gate> {
        External::new(Gate {
            governor: Arc::clone(&self.inner),
            tool,
            rules: Arc::clone(&rules.inner),
            names: rules.names.clone(),
        })
    }

    /// Records that the call of `ticket` returned `result` (its size, never its content). A
    /// ticket already ended is ignored.
    #[napi]
    pub fn end_ok(&self, env: &Env, ticket: f64, result: Option<Unknown<'_>>) -> Result<()> {
        let shape = result_shape(env, result)?;
        end_call(&self.inner, ticket, CallEnd::Returned(shape))
    }

    /// Records that the call of `ticket` threw an error of type `typeName` (never its message).
    #[napi]
    pub fn end_error(&self, ticket: f64, type_name: String) -> Result<()> {
        end_call(&self.inner, ticket, CallEnd::Raised(&type_name))
    }

    /// [`Governor::decide_call`] with the decision made off the JS thread (remote mode): the
    /// arguments are converted (and redacted) now, the decision is made on the libuv thread
    /// pool.
    #[napi(ts_return_type = "Promise<ToolCall>")]
    pub fn decide_call_async(
        &self,
        env: &Env,
        tool: String,
        argv: Object<'_>,
        rules: &ArgRules,
    ) -> Result<AsyncTask<ActionTask>> {
        let args = Converter::new(env)
            .positional(argv, rules.names.as_deref())
            .map_err(js)?;
        Ok(self.later(rules.inner.action(tool, args)))
    }

    /// [`Governor::decide_tool`] with the decision made off the JS thread.
    #[napi(ts_return_type = "Promise<ToolCall>")]
    pub fn decide_tool_async(
        &self,
        env: &Env,
        tool: String,
        args: Option<Unknown<'_>>,
        rules: Option<&ArgRules>,
    ) -> Result<AsyncTask<ActionTask>> {
        let args = Converter::new(env).named(args).map_err(js)?;
        let action = match rules {
            Some(r) => r.inner.action(tool, args),
            None => RustArgRules::default().action(tool, args),
        };
        Ok(self.later(action))
    }

    /// Decides an MCP `tools/call` of `tool` on `server` with `args` (converted and redacted
    /// like a tool call's), on the libuv thread pool. The returned call records its end.
    #[napi(ts_return_type = "Promise<ToolCall>")]
    pub fn decide_mcp_call_async(
        &self,
        env: &Env,
        server: String,
        tool: String,
        args: Option<Unknown<'_>>,
        rules: Option<&ArgRules>,
    ) -> Result<AsyncTask<ActionTask>> {
        let args = Converter::new(env).named(args).map_err(js)?;
        let args = match rules {
            Some(r) => r.inner.args(args),
            None => RustArgRules::default().args(args),
        };
        Ok(self.later(Action::McpCall {
            server,
            method: "tools/call".to_owned(),
            tool: Some(tool),
            args: Some(args),
        }))
    }

    /// Records the outcome of an allowed action (wire JSON) decided by `decision`; usage is
    /// charged to budgets (cost priced from the model price table when not given).
    #[napi]
    pub fn report(
        &self,
        action_json: String,
        decision: &Decision,
        outcome: ReportOptions,
    ) -> Result<()> {
        let action = parse_action(&action_json)?;
        let usage = outcome
            .usage_json
            .as_deref()
            .map(|u| serde_json::from_str::<aa_core::Usage>(u).map_err(invalid))
            .transpose()?;
        let outcome = Outcome {
            duration_us: whole(outcome.duration_us).unwrap_or(0),
            error: outcome.error,
            result_size: whole(outcome.result_size),
            status: if outcome.ok.unwrap_or(true) {
                aa_core::OutcomeStatus::Ok
            } else {
                aa_core::OutcomeStatus::Error
            },
            usage,
        };
        self.inner
            .report(&action, &decision.inner, outcome)
            .map_err(client_error)
    }

    /// Waits (up to `timeoutSecs`, default 5) until every audit event is delivered; throws
    /// `unavailable` on timeout (the events stay spilled on disk and are replayed).
    #[napi]
    pub fn flush(&self, timeout_secs: Option<f64>) -> Result<()> {
        self.inner
            .flush(seconds(timeout_secs))
            .map_err(client_error)
    }

    /// Flushes (up to `timeoutSecs`, default 5) and stops the background threads.
    #[napi]
    pub fn close(&self, timeout_secs: Option<f64>) -> Result<()> {
        self.inner
            .close(seconds(timeout_secs))
            .map_err(client_error)
    }

    /// Queued, spilled, shipped and rejected event counts, last error, policy version.
    #[napi]
    pub fn stats(&self) -> Stats {
        let s = self.inner.stats();
        #[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
        Stats {
            queued: s.queued as f64,
            spilled: s.spilled as f64,
            shipped: s.shipped as f64,
            rejected: s.rejected as f64,
            last_error: s.last_error,
            policy_version: s.policy_version,
        }
    }
}

/// A ticket as a JS number (tickets count up from 1, far below 2^53), or the denial.
fn ticket(began: Began) -> Either<f64, Decision> {
    match began {
        #[allow(clippy::cast_precision_loss)] // below 2^53
        Began::Running(t) => Either::A(t as f64),
        Began::Denied(inner) => Either::B(Decision { inner }),
    }
}

/// What a governed function's calls need, bound once (`Governor.gate`): the governor, the
/// tool's name and the argument rules. JS holds it as an external, so a call pays no class
/// unwrap, type-tag check or borrow registration (napi-rs's cost for a `#[napi]` class
/// receiver or argument: six private-symbol lookups and a global borrow table per call).
pub struct Gate {
    governor: Arc<RustGovernor>,
    tool: String,
    rules: Arc<RustArgRules>,
    names: Option<Vec<String>>,
}

impl Gate {
    /// Decides the call with arguments received as JSON text, holding it when allowed.
    fn begin(&self, args: Map<String, Value>) -> Either<f64, Decision> {
        let action = self
            .rules
            .json_action(self.tool.as_str(), args, JsonNumbers::Double);
        ticket(self.governor.begin_action(action))
    }
}

/// `Governor.beginCall` through a gate, with the argument array as JSON text (see
/// [`parse_json`]): a ticket when allowed, the decision when denied.
#[napi(ts_return_type = "number | Decision")]
pub fn gate_begin_call_json(
    #[napi(ts_arg_type = "ExternalObject<'Gate'>")] gate: &External<Gate>,
    argv_json: String,
) -> Result<Either<f64, Decision>> {
    Ok(gate.begin(positional_json(&argv_json, gate.names.as_deref())?))
}

/// `Governor.beginTool` through a gate, with the argument object as JSON text.
#[napi(ts_return_type = "number | Decision")]
pub fn gate_begin_tool_json(
    #[napi(ts_arg_type = "ExternalObject<'Gate'>")] gate: &External<Gate>,
    args_json: String,
) -> Result<Either<f64, Decision>> {
    Ok(gate.begin(named_json(&args_json)?))
}

/// `Governor.endOk` through a gate (for a ticket from the gate or its governor).
#[napi]
pub fn gate_end_ok(
    env: &Env,
    #[napi(ts_arg_type = "ExternalObject<'Gate'>")] gate: &External<Gate>,
    ticket: f64,
    result: Option<Unknown<'_>>,
) -> Result<()> {
    let shape = result_shape(env, result)?;
    end_call(&gate.governor, ticket, CallEnd::Returned(shape))
}

/// `Governor.endError` through a gate.
#[napi]
pub fn gate_end_error(
    #[napi(ts_arg_type = "ExternalObject<'Gate'>")] gate: &External<Gate>,
    ticket: f64,
    type_name: String,
) -> Result<()> {
    end_call(&gate.governor, ticket, CallEnd::Raised(&type_name))
}

/// The shape (size, never content) of what a call returned; `undefined` is `Other`.
fn result_shape(env: &Env, result: Option<Unknown<'_>>) -> Result<ResultShape> {
    match result {
        Some(r) => Converter::new(env).result(r).map_err(js),
        None => Ok(ResultShape::Other),
    }
}

/// Records how the call of `ticket` ended; a ticket already ended is ignored.
fn end_call(governor: &RustGovernor, ticket: f64, end: CallEnd<'_>) -> Result<()> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked whole first
    let t = (ticket.fract() == 0.0 && ticket >= 1.0).then_some(ticket as u64);
    match t {
        Some(t) => governor.end_tool(t, end).map(|_| ()).map_err(client_error),
        None => Err(invalid(format!("not a call ticket: {ticket}"))),
    }
}

impl Governor {
    /// [`Governor::begin_tool`]'s core call, with the default rules when none are given.
    fn begin_named(
        &self,
        tool: &str,
        args: Vec<(String, ArgValue)>,
        rules: Option<&ArgRules>,
    ) -> Either<f64, Decision> {
        ticket(match rules {
            Some(r) => self.inner.begin_tool(tool, args, &r.inner),
            None => self.inner.begin_tool(tool, args, &RustArgRules::default()),
        })
    }

    fn later(&self, action: Action) -> AsyncTask<ActionTask> {
        AsyncTask::new(ActionTask {
            governor: self.inner.clone(),
            action: Some(action),
        })
    }

    fn start(
        &self,
        tool: &str,
        args: Vec<(String, ArgValue)>,
        rules: Option<&ArgRules>,
    ) -> ToolCall {
        let (action, decision) = match rules {
            Some(r) => self.inner.decide_tool(tool, args, &r.inner),
            None => self.inner.decide_tool(tool, args, &RustArgRules::default()),
        };
        ToolCall {
            governor: self.inner.clone(),
            action,
            decision,
            started: Instant::now(),
        }
    }
}

/// A decision made on the libuv thread pool.
pub struct DecideTask {
    governor: Arc<RustGovernor>,
    action: Option<Action>,
}

impl Task for DecideTask {
    type Output = RustDecision;
    type JsValue = Decision;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let action = self
            .action
            .as_ref()
            .ok_or_else(|| napi::Error::from_reason("task ran twice"))?;
        Ok(self.governor.decide(action))
    }

    fn resolve(&mut self, _env: Env, inner: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(Decision { inner })
    }
}

/// A governed call's decision made on the libuv thread pool.
pub struct ActionTask {
    governor: Arc<RustGovernor>,
    action: Option<Action>,
}

impl Task for ActionTask {
    type Output = RustDecision;
    type JsValue = ToolCall;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let action = self
            .action
            .as_ref()
            .ok_or_else(|| napi::Error::from_reason("task ran twice"))?;
        Ok(self.governor.decide(action))
    }

    fn resolve(&mut self, _env: Env, decision: Self::Output) -> napi::Result<Self::JsValue> {
        let action = self
            .action
            .take()
            .ok_or_else(|| napi::Error::from_reason("task resolved twice"))?;
        Ok(ToolCall {
            governor: self.governor.clone(),
            action,
            decision,
            // The governed function starts when the promise resolves.
            started: Instant::now(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Model usage

/// Token usage read from an LLM response by `aa-inspect` (OpenAI Chat Completions and
/// Responses, Anthropic Messages): whole JSON bodies, the JSON chunks an SDK stream yields,
/// or raw server-sent-event bytes.
#[napi]
pub struct UsageMeter {
    tokens: aa_inspect::llm::Tokens,
    sse: Option<aa_inspect::llm::UsageReader>,
}

/// Tokens counted by a [`UsageMeter`].
#[napi(object)]
pub struct TokenCount {
    /// Input (prompt) tokens, Anthropic's cache tokens included.
    pub input_tokens: f64,
    /// Output (completion) tokens.
    pub output_tokens: f64,
    /// Whether any usage was seen.
    pub seen: bool,
}

#[napi]
impl UsageMeter {
    /// An empty meter.
    #[napi(constructor)]
    pub fn new() -> Self {
        UsageMeter {
            tokens: aa_inspect::llm::Tokens::default(),
            sse: None,
        }
    }

    /// Reads one JSON value: a whole response body, or one streamed chunk or event.
    #[napi]
    pub fn absorb_json(&mut self, json: String) -> Result<()> {
        let v: serde_json::Value = serde_json::from_str(&json).map_err(invalid)?;
        self.tokens.absorb(&v);
        Ok(())
    }

    /// Reads the next bytes of a `text/event-stream` body.
    #[napi]
    pub fn feed_sse(&mut self, chunk: &[u8]) {
        self.sse
            .get_or_insert_with(aa_inspect::llm::UsageReader::sse)
            .feed(chunk);
    }

    /// The usage read so far.
    #[napi]
    pub fn tokens(&self) -> TokenCount {
        let mut t = self.tokens;
        if let Some(s) = &self.sse {
            let s = s.tokens();
            if s.seen {
                t = s;
            }
        }
        #[allow(clippy::cast_precision_loss)] // token counts stay far below 2^53
        TokenCount {
            input_tokens: t.input as f64,
            output_tokens: t.output as f64,
            seen: t.seen,
        }
    }
}

impl Default for UsageMeter {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Conformance

/// The core engine over a policy directory with a fixed clock, for the shared conformance
/// cases (`conformance/cases.json`).
#[napi]
pub struct ConformanceEngine {
    engine: aa_core::Engine,
    env: Arc<FixedEnv>,
}

#[napi]
impl ConformanceEngine {
    /// An engine deciding against `policyDir` at `nowMs` (unix ms), with the agents in
    /// `suspended` suspended.
    #[napi(constructor)]
    pub fn new(
        policy_dir: String,
        now_ms: i64,
        fail_open: bool,
        suspended: Vec<String>,
    ) -> Result<Self> {
        let mut bundle =
            PolicyBundle::from_dir(&policy_dir).map_err(|e| error(Code::InvalidPolicy, e))?;
        bundle.suspended.extend(suspended);
        let policy =
            aa_core::CompiledPolicy::compile(bundle).map_err(|e| error(Code::InvalidPolicy, e))?;
        let env = Arc::new(FixedEnv::new(now_ms));
        Ok(ConformanceEngine {
            engine: aa_core::Engine::with_policy(policy, env.clone()).fail_open(fail_open),
            env,
        })
    }

    /// Decides `actionJson` for `agentJson` on `layer` (`sdk`, `proxy`, `ebpf`).
    #[napi]
    pub fn decide(
        &self,
        agent_json: String,
        action_json: String,
        layer: String,
    ) -> Result<Decision> {
        let agent: Agent = serde_json::from_str(&agent_json).map_err(invalid)?;
        let layer: Layer = layer.parse().map_err(invalid)?;
        Ok(Decision {
            inner: self
                .engine
                .decide(&agent, &parse_action(&action_json)?, layer),
        })
    }

    /// Reports an outcome (`outcomeJson` is a wire Outcome).
    #[napi]
    pub fn report(
        &self,
        agent_json: String,
        action_json: String,
        layer: String,
        decision: &Decision,
        outcome_json: String,
    ) -> Result<()> {
        let agent: Agent = serde_json::from_str(&agent_json).map_err(invalid)?;
        let layer: Layer = layer.parse().map_err(invalid)?;
        let outcome: Outcome = serde_json::from_str(&outcome_json).map_err(invalid)?;
        self.engine
            .report(
                &agent,
                &parse_action(&action_json)?,
                layer,
                &decision.inner,
                outcome,
            )
            .map_err(|e| error(Code::Internal, e))
    }

    /// Moves the clock by `ms`.
    #[napi]
    pub fn advance(&self, ms: i64) {
        self.env
            .set_now_ms(aa_core::Environment::now_ms(self.env.as_ref()).saturating_add(ms));
    }
}

/// The version of the native module.
#[napi]
pub fn native_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
