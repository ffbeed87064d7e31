//! # aa-wasm
//!
//! Agent Assembly for `wasm32-unknown-unknown`: the same [`aa_core::Engine`] decides, the same
//! [`aa_core::tool_call`] path turns a JS function's arguments into a `tool_call` action, and
//! the same hash chain with Ed25519 checkpoints ([`aa_core::audit::AuditWriter`]) records every
//! decision, in memory, until the host drains it.
//!
//! This crate is the low-level layer: structured values cross the boundary as JSON text and
//! errors are thrown as JSON text (`{"code","message","diagnostics"}`). The npm package's
//! `index.mjs` / `web.mjs` wrap it into the idiomatic API (`Engine.fromPolicies`, `govern`,
//! `PolicyDeniedError`, …); that wrapper only translates types.
//!
//! Time and ids come from the JS host through [`aa_core::Environment`] ([`HostEnv`]):
//! `Date.now()`, and UUIDv7 ids whose 74 random bits come from `crypto.getRandomValues`
//! (Web Crypto: browsers, workers, Node ≥ 19, edge runtimes).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use aa_core::audit::{AuditLine, AuditSink, AuditWriter, Chain, Signer, Verifier, VerifyOptions};
use aa_core::tool_call::{ArgRules, ArgValue, CallEnd, MAX_DEPTH, ResultShape, outcome};
use aa_core::wire::PolicyDocument;
use aa_core::{
    Action, Agent, AuditError, AuditEvent, AuditRecord, Checkpoint, CompiledPolicy, Decision,
    Diagnostic, Environment, Layer, Outcome, PolicyBundle, PolicyError,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues(buf)` (Web Crypto).
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(buf: &mut [u8]) -> Result<JsValue, JsValue>;

    /// `String(value)`: the host's text form of a value (may throw, e.g. a throwing `toString`).
    #[wasm_bindgen(js_name = String, catch)]
    fn js_string(value: &JsValue) -> Result<js_sys::JsString, JsValue>;
}

/// Fills `buf` from `crypto.getRandomValues`; false when the host has no Web Crypto.
fn host_random(buf: &mut [u8]) -> bool {
    get_random_values(buf).is_ok()
}

/// The JS host's clock and ids: `Date.now()` (or a clock the host sets, for tests and replays)
/// and UUIDv7 ids with random bits from `crypto.getRandomValues`.
#[derive(Debug)]
pub struct HostEnv {
    /// True: the clock is `fixed_ms`, moved only by the host.
    fixed: AtomicBool,
    fixed_ms: AtomicI64,
}

impl HostEnv {
    /// `Date.now()`, or a clock stopped at `now_ms` when given.
    pub fn new(now_ms: Option<i64>) -> Self {
        HostEnv {
            fixed: AtomicBool::new(now_ms.is_some()),
            fixed_ms: AtomicI64::new(now_ms.unwrap_or_default()),
        }
    }

    /// Stops the clock at `now_ms`.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.fixed_ms.store(now_ms, Ordering::SeqCst);
        self.fixed.store(true, Ordering::SeqCst);
    }
}

impl Environment for HostEnv {
    fn now_ms(&self) -> i64 {
        if self.fixed.load(Ordering::SeqCst) {
            self.fixed_ms.load(Ordering::SeqCst)
        } else {
            // Date.now() is a whole number of milliseconds, far inside i64.
            js_sys::Date::now() as i64
        }
    }

    fn new_id(&self) -> String {
        let ms = u64::try_from(self.now_ms()).unwrap_or_default();
        let mut random = [0u8; 10];
        if !host_random(&mut random) {
            // No Web Crypto: Math.random() still keeps ids unique (not unpredictable).
            for b in &mut random {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        uuid::Builder::from_unix_timestamp_millis(ms, &random)
            .into_uuid()
            .to_string()
    }
}

/// Why a call into the binding failed. Thrown to JS as JSON text; the package's wrapper turns
/// it into an `Error` subclass carrying `code` (and `diagnostics` for policy errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WasmError {
    /// The policy set does not compile (Cedar, budgets or prices): file/line/column in the
    /// diagnostics.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// An argument is not what the API takes (bad JSON, unknown layer, bad option).
    #[error("{0}")]
    InvalidInput(String),
    /// The audit chain could not record or drain.
    #[error("{0}")]
    Audit(#[from] AuditError),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    diagnostics: &'a [Diagnostic],
}

impl WasmError {
    /// The stable error code (`invalid_policy`, `invalid_input`, `audit`).
    pub fn code(&self) -> &'static str {
        match self {
            WasmError::Policy(_) => "invalid_policy",
            WasmError::InvalidInput(_) => "invalid_input",
            WasmError::Audit(_) => "audit",
        }
    }

    /// `{"code","message","diagnostics"}`.
    pub fn to_json(&self) -> String {
        let diagnostics = match self {
            WasmError::Policy(e) => e.diagnostics(),
            _ => &[],
        };
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
            diagnostics,
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                r#"{{"code":"{}","message":"","diagnostics":[]}}"#,
                self.code()
            )
        })
    }
}

impl From<WasmError> for JsValue {
    fn from(e: WasmError) -> Self {
        JsValue::from_str(&e.to_json())
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, WasmError> {
    serde_json::from_str(text).map_err(|e| WasmError::InvalidInput(format!("bad {what}: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, WasmError> {
    serde_json::to_string(value).map_err(|e| WasmError::InvalidInput(e.to_string()))
}

fn layer(name: Option<String>) -> Result<Layer, WasmError> {
    match name.as_deref() {
        None | Some("sdk") => Ok(Layer::Sdk),
        Some("proxy") => Ok(Layer::Proxy),
        Some("ebpf") => Ok(Layer::Ebpf),
        Some(other) => Err(WasmError::InvalidInput(format!(
            "unknown layer {other:?} (sdk, proxy, ebpf)"
        ))),
    }
}

/// An agent given as `"id"` or as `{agent_id, team, session_id, labels}`.
fn agent(text: &str) -> Result<Agent, WasmError> {
    Ok(parse::<aa_core::cases::AgentSpec>("agent", text)?.agent())
}

/// The in-memory audit log: events chained and signed as the audit file does, kept as the
/// file's canonical JSON lines until drained.
#[derive(Debug)]
pub struct MemoryChain {
    writer: Mutex<AuditWriter<Vec<u8>>>,
}

impl MemoryChain {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuditWriter<Vec<u8>>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signs a checkpoint for the head (if records follow the last one) and takes every line
    /// written so far.
    pub fn drain(&self) -> Result<String, AuditError> {
        let mut writer = self.lock();
        writer.checkpoint()?;
        let bytes = std::mem::take(writer.get_mut());
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl AuditSink for MemoryChain {
    fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.lock().append(event).map(|_| ())
    }
}

/// Engine options, as JSON from the wrapper.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    /// Allow (flagged) instead of deny when no decision can be made.
    fail_open: bool,
    /// Start a fixed clock here (unix ms) instead of `Date.now()`.
    now: Option<i64>,
    /// A signed checkpoint after this many records (default 100), and at every drain.
    checkpoint_every: Option<u64>,
    /// 32-byte Ed25519 seed, hex (default: fresh from `crypto.getRandomValues`).
    signing_seed: Option<String>,
}

fn signer(seed_hex: Option<&str>) -> Result<Signer, WasmError> {
    let mut seed = [0u8; 32];
    match seed_hex {
        Some(hex_text) => {
            let bytes: [u8; 32] = hex::decode(hex_text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    WasmError::InvalidInput("signingSeed must be 32 bytes in hex".into())
                })?;
            seed = bytes;
        }
        None => {
            if !host_random(&mut seed) {
                return Err(WasmError::InvalidInput(
                    "no crypto.getRandomValues in this host: pass signingSeed".into(),
                ));
            }
        }
    }
    Ok(Signer::from_seed(&seed))
}

/// A compiled policy from the wrapper's bundle JSON (`{files, budgets?, prices?, suspended?}`)
/// or from a gateway policy document (`{version, bundle}`, what `GET /v1/policy` returns).
fn compile(kind: &str, json: &str) -> Result<CompiledPolicy, WasmError> {
    let bundle: PolicyBundle = match kind {
        "bundle" => parse("policy bundle", json)?,
        "document" => parse::<PolicyDocument>("policy document", json)?.bundle,
        other => {
            return Err(WasmError::InvalidInput(format!(
                "unknown policy kind {other:?}"
            )));
        }
    };
    Ok(CompiledPolicy::compile(bundle)?)
}

/// The engine as the wrapper sees it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct NativeEngine {
    engine: aa_core::Engine,
    env: Arc<HostEnv>,
    audit: Arc<MemoryChain>,
    public_key: String,
}

/// A tool call's decision and the action it decided on.
#[derive(Serialize)]
struct ToolDecision<'a> {
    decision: &'a Decision,
    action: &'a Action,
}

/// What `drain()` returns.
#[derive(Serialize)]
struct Drained {
    /// The audit file's lines (records and `{"checkpoint"}`), canonical JSON, newline-ended.
    jsonl: String,
    records: Vec<AuditRecord>,
    checkpoints: Vec<Checkpoint>,
    /// The records as `/v1/events` takes them (`{"events": [...]}`).
    events: Vec<AuditEvent>,
}

#[wasm_bindgen]
impl NativeEngine {
    /// Compiles the policy (`kind` is `bundle` or `document`) and makes an engine with an
    /// in-memory audit chain. `options` is JSON (`failOpen`, `now`, `checkpointEvery`,
    /// `signingSeed`).
    #[wasm_bindgen(constructor)]
    pub fn new(kind: &str, policy: &str, options: &str) -> Result<NativeEngine, JsValue> {
        Ok(Self::build(kind, policy, options)?)
    }

    fn build(kind: &str, policy: &str, options: &str) -> Result<NativeEngine, WasmError> {
        let options: Options = if options.is_empty() {
            Options::default()
        } else {
            parse("options", options)?
        };
        let compiled = compile(kind, policy)?;
        let env = Arc::new(HostEnv::new(options.now));
        let signer = signer(options.signing_seed.as_deref())?;
        let public_key = signer.public_key().to_owned();
        let audit = Arc::new(MemoryChain {
            writer: Mutex::new(AuditWriter::new(
                Vec::new(),
                Chain::new(),
                signer,
                env.clone(),
                options.checkpoint_every.unwrap_or(100),
            )),
        });
        let engine = aa_core::Engine::with_policy(compiled, env.clone())
            .fail_open(options.fail_open)
            .with_audit(audit.clone());
        Ok(NativeEngine {
            engine,
            env,
            audit,
            public_key,
        })
    }

    /// Hot reload: compiles and installs a new policy; on error the active one stays.
    /// Returns the new version.
    #[wasm_bindgen(js_name = setPolicies)]
    pub fn set_policies(&self, kind: &str, policy: &str) -> Result<String, JsValue> {
        let compiled = compile(kind, policy)?;
        let version = compiled.version().to_owned();
        self.engine.swap_policy(compiled);
        Ok(version)
    }

    /// Version (content hash) of the active policy.
    #[wasm_bindgen(js_name = policyVersion)]
    pub fn policy_version(&self) -> Option<String> {
        self.engine.policy_version()
    }

    /// Hex of the Ed25519 key that signs this engine's checkpoints.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> String {
        self.public_key.clone()
    }

    /// Decides `action` (JSON) for `agent` (JSON id or object) and records it; the decision
    /// as JSON.
    pub fn decide(
        &self,
        agent_json: &str,
        action_json: &str,
        layer_name: Option<String>,
    ) -> Result<String, JsValue> {
        let agent = agent(agent_json)?;
        let action: Action = parse("action", action_json)?;
        let decision = self.engine.decide(&agent, &action, layer(layer_name)?);
        Ok(to_json(&decision)?)
    }

    /// Reports the outcome (JSON) of an allowed action: charges budgets and records it.
    pub fn report(
        &self,
        agent_json: &str,
        action_json: &str,
        layer_name: Option<String>,
        decision_json: &str,
        outcome_json: &str,
    ) -> Result<(), JsValue> {
        let agent = agent(agent_json)?;
        let action: Action = parse("action", action_json)?;
        let decision: Decision = parse("decision", decision_json)?;
        let outcome: Outcome = parse("outcome", outcome_json)?;
        self.engine
            .report(&agent, &action, layer(layer_name)?, &decision, outcome)
            .map_err(WasmError::from)?;
        Ok(())
    }

    /// Decides a call of `tool` with the named arguments `args` (a JS object, converted by the
    /// core's tool-call rules: redaction, JSON, truncation). `{decision, action}` as JSON.
    #[wasm_bindgen(js_name = decideTool)]
    pub fn decide_tool(
        &self,
        agent_json: &str,
        tool: &str,
        args: &JsValue,
        redact: Vec<String>,
    ) -> Result<String, JsValue> {
        let agent = agent(agent_json)?;
        let action = ArgRules::new(redact).action(tool, named_args(args));
        let decision = self.engine.decide(&agent, &action, Layer::Sdk);
        Ok(to_json(&ToolDecision {
            decision: &decision,
            action: &action,
        })?)
    }

    /// Reports how a governed call ended: `result` when it returned, `error_name` (the error's
    /// type name) when it threw.
    #[wasm_bindgen(js_name = reportTool)]
    pub fn report_tool(
        &self,
        agent_json: &str,
        action_json: &str,
        decision_json: &str,
        result: &JsValue,
        error_name: Option<String>,
        duration_us: f64,
    ) -> Result<(), JsValue> {
        let end = match &error_name {
            Some(name) => CallEnd::Raised(name),
            None => CallEnd::Returned(result_shape(result)),
        };
        let outcome = outcome(end, duration_us.max(0.0) as u64);
        let agent = agent(agent_json)?;
        let action: Action = parse("action", action_json)?;
        let decision: Decision = parse("decision", decision_json)?;
        self.engine
            .report(&agent, &action, Layer::Sdk, &decision, outcome)
            .map_err(WasmError::from)?;
        Ok(())
    }

    /// Stops the clock at `now_ms` (tests, replays).
    #[wasm_bindgen(js_name = setNow)]
    pub fn set_now(&self, now_ms: f64) {
        self.env.set_now_ms(now_ms as i64);
    }

    /// Moves the clock forward by `ms` (stopping it at the current time first).
    #[wasm_bindgen(js_name = advanceClock)]
    pub fn advance_clock(&self, ms: f64) {
        let now = self.env.now_ms();
        self.env.set_now_ms(now.saturating_add(ms as i64));
    }

    /// Signs a checkpoint for the head and takes the audit lines so far, as JSON
    /// `{jsonl, records, checkpoints, events}`.
    pub fn drain(&self) -> Result<String, JsValue> {
        let jsonl = self.audit.drain().map_err(WasmError::from)?;
        let mut drained = Drained {
            jsonl,
            records: Vec::new(),
            checkpoints: Vec::new(),
            events: Vec::new(),
        };
        for line in drained.jsonl.lines() {
            match parse::<AuditLine>("audit line", line)? {
                AuditLine::Record(record) => {
                    drained.events.push(record.event());
                    drained.records.push(*record);
                }
                AuditLine::Checkpoint { checkpoint } => drained.checkpoints.push(checkpoint),
            }
        }
        Ok(to_json(&drained)?)
    }
}

/// Verifies audit lines (JSON Lines text, as `drain().jsonl` gives) with the core's verifier;
/// the report as JSON. `public_key` pins the checkpoint key.
#[wasm_bindgen(js_name = verifyAudit)]
pub fn verify_audit(jsonl: &str, public_key: Option<String>) -> Result<String, JsValue> {
    let report = Verifier::verify_bytes(
        jsonl.as_bytes(),
        VerifyOptions {
            public_key,
            strict: false,
        },
    );
    Ok(to_json(&report)?)
}

/// The named arguments of a call: the entries of a plain object (anything else is one
/// argument named `args`).
fn named_args(args: &JsValue) -> Vec<(String, ArgValue)> {
    if args.is_undefined() || args.is_null() {
        return Vec::new();
    }
    let mut path = Vec::new();
    match entries(args) {
        Some(list) => list
            .into_iter()
            .map(|(k, v)| {
                let value = to_arg(&v, 1, &mut path);
                (k, value)
            })
            .collect(),
        None => vec![("args".to_owned(), to_arg(args, 1, &mut path))],
    }
}

/// The entries of a plain object (prototype `Object.prototype` or `null`) or a `Map`.
fn entries(value: &JsValue) -> Option<Vec<(String, JsValue)>> {
    if let Some(map) = value.dyn_ref::<js_sys::Map>() {
        let mut out = Vec::new();
        map.for_each(&mut |v, k| out.push((text(&k), v)));
        return Some(out);
    }
    let object = value.dyn_ref::<js_sys::Object>()?;
    if value.is_function() || js_sys::Array::is_array(value) {
        return None;
    }
    let proto = js_sys::Object::get_prototype_of(value);
    let object_prototype = js_sys::Object::get_prototype_of(&js_sys::Object::new());
    let plain = proto.is_null() || js_sys::Object::is(&proto, &object_prototype);
    if !plain {
        return None;
    }
    Some(
        js_sys::Object::entries(object)
            .iter()
            .filter_map(|pair| {
                let pair = pair.dyn_into::<js_sys::Array>().ok()?;
                Some((text(&pair.get(0)), pair.get(1)))
            })
            .collect(),
    )
}

/// `String(value)`, or a placeholder when even that throws.
fn text(value: &JsValue) -> String {
    match value.as_string() {
        Some(s) => s,
        None => js_string(value)
            .map(String::from)
            .unwrap_or_else(|_| "<unprintable>".to_owned()),
    }
}

/// A JS value as the core's neutral [`ArgValue`]: `null`/`undefined`, booleans, numbers
/// (integers within ±2^53 as integers), strings, `BigInt`s that fit i64, `Uint8Array` and
/// `ArrayBuffer` as bytes, arrays and `Set`s as lists, plain objects and `Map`s as maps; any
/// other value is its `String()` text. `path` holds the containers being converted.
fn to_arg(value: &JsValue, depth: usize, path: &mut Vec<JsValue>) -> ArgValue {
    if depth > MAX_DEPTH {
        return ArgValue::TooDeep;
    }
    if value.is_null() || value.is_undefined() {
        return ArgValue::Null;
    }
    if let Some(b) = value.as_bool() {
        return ArgValue::Bool(b);
    }
    if let Some(n) = value.as_f64() {
        return ArgValue::double(n);
    }
    if let Some(s) = value.as_string() {
        return ArgValue::Str(s);
    }
    if value.is_bigint() {
        return match i64::try_from(value.clone()) {
            Ok(i) => ArgValue::Int(i),
            Err(_) => ArgValue::Other(text(value)),
        };
    }
    if let Some(bytes) = value.dyn_ref::<js_sys::Uint8Array>() {
        return ArgValue::Bytes(bytes.to_vec());
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return ArgValue::Bytes(js_sys::Uint8Array::new(buffer).to_vec());
    }
    let list = if js_sys::Array::is_array(value) {
        Some(js_sys::Array::from(value).iter().collect::<Vec<_>>())
    } else {
        value
            .dyn_ref::<js_sys::Set>()
            .map(|set| js_sys::Array::from(set.as_ref()).iter().collect())
    };
    let map = if list.is_none() { entries(value) } else { None };
    if list.is_none() && map.is_none() {
        return ArgValue::Other(text(value));
    }
    if path.iter().any(|seen| js_sys::Object::is(seen, value)) {
        return ArgValue::Cycle;
    }
    path.push(value.clone());
    let converted = match (list, map) {
        (Some(items), _) => {
            ArgValue::List(items.iter().map(|v| to_arg(v, depth + 1, path)).collect())
        }
        (None, Some(pairs)) => ArgValue::Map(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let value = to_arg(&v, depth + 1, path);
                    (k, value)
                })
                .collect(),
        ),
        (None, None) => ArgValue::Null,
    };
    path.pop();
    converted
}

/// The size of a governed function's result: a string's characters, bytes, a collection's
/// entries.
fn result_shape(value: &JsValue) -> ResultShape {
    if let Some(s) = value.as_string() {
        return ResultShape::Text(s.chars().count() as u64);
    }
    if let Some(bytes) = value.dyn_ref::<js_sys::Uint8Array>() {
        return ResultShape::Bytes(u64::from(bytes.length()));
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return ResultShape::Bytes(u64::from(buffer.byte_length()));
    }
    if js_sys::Array::is_array(value) {
        return ResultShape::Collection(u64::from(js_sys::Array::from(value).length()));
    }
    if let Some(map) = value.dyn_ref::<js_sys::Map>() {
        return ResultShape::Collection(u64::from(map.size()));
    }
    if let Some(set) = value.dyn_ref::<js_sys::Set>() {
        return ResultShape::Collection(u64::from(set.size()));
    }
    match entries(value) {
        Some(pairs) => ResultShape::Collection(pairs.len() as u64),
        None => ResultShape::Other,
    }
}
