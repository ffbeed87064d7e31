// The idiomatic API over the wasm-bindgen module (`native`): it only translates types.
// Decisions, the tool-call rules, the audit chain and its verification all happen in Rust
// (aa-core compiled to WebAssembly).

/** Base class of every error this package throws; `code` is stable. */
export class AgentAssemblyError extends Error {
  constructor(message, code, options) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The policy set does not compile. `diagnostics`: `[{file, line, column, message, help, source_line}]`. */
export class PolicyError extends AgentAssemblyError {
  constructor(message, diagnostics) {
    super(message, 'invalid_policy');
    this.diagnostics = diagnostics;
    const first = diagnostics[0];
    this.file = first ? first.file : undefined;
    this.line = first && first.line != null ? first.line : undefined;
    this.column = first && first.column != null ? first.column : undefined;
  }
}

/** An argument is not what the API takes (bad agent, action, layer or option). */
export class InvalidInputError extends AgentAssemblyError {
  constructor(message) { super(message, 'invalid_input'); }
}

/** The audit chain could not record or drain. */
export class AuditError extends AgentAssemblyError {
  constructor(message) { super(message, 'audit'); }
}

/** Thrown by `govern` before the function runs when the policy denies the call. */
export class PolicyDeniedError extends AgentAssemblyError {
  constructor(decision) {
    super(`denied (${decision.reason}): ${decision.message}`, 'policy_denied');
    this.reason = decision.reason;
    this.policyIds = decision.policyIds;
    this.decisionId = decision.decisionId;
    this.decision = decision;
  }
}

const WIRE = Symbol('aa.wire');

/** Runs a native call, turning its JSON-text errors into this package's Error classes. */
function call(fn) {
  try {
    return fn();
  } catch (e) {
    if (typeof e !== 'string') throw e;
    let body;
    try { body = JSON.parse(e); } catch { throw new AgentAssemblyError(e, 'internal'); }
    if (body.code === 'invalid_policy') throw new PolicyError(body.message, body.diagnostics);
    if (body.code === 'invalid_input') throw new InvalidInputError(body.message);
    if (body.code === 'audit') throw new AuditError(body.message);
    throw new AgentAssemblyError(body.message, body.code);
  }
}

/** The wire decision (snake_case) as a plain JS object; the wire form rides along, hidden. */
function decisionFromWire(wire) {
  const d = {
    allowed: wire.effect === 'allow',
    effect: wire.effect,
    reason: wire.reason,
    message: wire.message,
    policyIds: wire.policy_ids || [],
    decisionId: wire.decision_id,
    policyVersion: wire.policy_version,
    budget: wire.budget,
    failOpen: wire.fail_open === true,
  };
  Object.defineProperty(d, WIRE, { value: wire });
  return d;
}

function wireOf(decision) {
  if (decision && decision[WIRE]) return decision[WIRE];
  if (decision && typeof decision === 'object' && 'decisionId' in decision) {
    return {
      effect: decision.effect, reason: decision.reason, message: decision.message,
      policy_ids: decision.policyIds, decision_id: decision.decisionId,
      policy_version: decision.policyVersion, budget: decision.budget,
      fail_open: decision.failOpen || undefined,
    };
  }
  return decision;
}

const agentJson = (agent) => JSON.stringify(agent);
const jsonText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

/** `cedar` (text, or `{fileName: text}`) and options → the core's policy bundle. */
function bundleOf(cedar, opts = {}) {
  // Policies are validated against the data model's own Cedar schema (the same in every layer);
  // a schema option that would be ignored is refused rather than silently dropped.
  if (opts.schema != null) {
    throw new InvalidInputError(
      'the `schema` option is not supported: policies are validated against the built-in Agent Assembly schema');
  }
  const files = typeof cedar === 'string' ? { [opts.fileName || 'policy.cedar']: cedar } : { ...cedar };
  const bundle = { files };
  if (opts.budgetsToml != null) bundle.budgets = opts.budgetsToml;
  if (opts.pricesToml != null) bundle.prices = opts.pricesToml;
  if (opts.suspended && opts.suspended.length) bundle.suspended = [...opts.suspended];
  return bundle;
}

function nativeOptions(opts = {}) {
  const o = {};
  if (opts.failOpen != null) o.failOpen = !!opts.failOpen;
  if (opts.now != null) o.now = opts.now instanceof Date ? opts.now.getTime() : opts.now;
  if (opts.checkpointEvery != null) o.checkpointEvery = opts.checkpointEvery;
  if (opts.signingSeed != null) o.signingSeed = opts.signingSeed;
  return JSON.stringify(o);
}

/** `{version, bundle}` as an object or JSON text → JSON text. */
function documentText(doc) {
  return typeof doc === 'string' ? doc : JSON.stringify(doc);
}

/** Binds the API to one instantiated wasm-bindgen module. */
export function bind(native) {
  /** Decides and governs agent actions with aa-core, and keeps the hash-chained audit log. */
  class Engine {
    #n;
    #agent;

    constructor(inner, opts) {
      this.#n = inner;
      this.#agent = opts.agent ?? 'agent';
    }

    /**
     * An engine over Cedar policy text (or `{fileName: text}`), with optional `budgetsToml`,
     * `pricesToml`, `suspended`, and engine options (`agent`, `failOpen`, `now`,
     * `checkpointEvery`, `signingSeed`).
     */
    static fromPolicies(cedar, opts = {}) {
      const bundle = JSON.stringify(bundleOf(cedar, opts));
      return new Engine(call(() => new native.NativeEngine('bundle', bundle, nativeOptions(opts))), opts);
    }

    /** An engine over a gateway policy document (`GET /v1/policy`: `{version, bundle}`). */
    static fromBundle(document, opts = {}) {
      const text = documentText(document);
      return new Engine(call(() => new native.NativeEngine('document', text, nativeOptions(opts))), opts);
    }

    /**
     * Hot reload: a policy document (`{version, bundle}`) or Cedar text / files with options.
     * On error the active policy stays and a `PolicyError` is thrown. Returns the new version.
     */
    setPolicies(policies, opts = {}) {
      if (policies && typeof policies === 'object' && 'bundle' in policies) {
        return call(() => this.#n.setPolicies('document', documentText(policies)));
      }
      const bundle = JSON.stringify(bundleOf(policies, opts));
      return call(() => this.#n.setPolicies('bundle', bundle));
    }

    /** Version (content hash) of the active policy. */
    get policyVersion() { return this.#n.policyVersion(); }

    /** Hex Ed25519 public key of this engine's checkpoints. */
    get publicKey() { return this.#n.publicKey(); }

    /** Decides `action` (`{kind, …}`) for `agent` (id or `{agent_id, team, …}`). Records it. */
    decide(agent, action, opts = {}) {
      const wire = JSON.parse(call(() => this.#n.decide(agentJson(agent), jsonText(action), opts.layer)));
      return decisionFromWire(wire);
    }

    /** Reports the outcome (`{status, duration_us, usage?, …}`) of an allowed action. */
    report(agent, action, decision, outcome, opts = {}) {
      call(() => this.#n.report(agentJson(agent), jsonText(action), opts.layer,
        JSON.stringify(wireOf(decision)), jsonText(outcome)));
    }

    /**
     * Runs `fn(args)` if the policy allows the tool call `{tool, args}`; throws
     * `PolicyDeniedError` before `fn` runs otherwise. Arguments are recorded by the core's
     * tool-call rules (secret names and values redacted, long strings cut). The outcome (result
     * size or error name, duration) is recorded when `fn` returns, throws, or its promise settles.
     */
    govern(fn, opts = {}) {
      const agent = agentJson(opts.agent ?? this.#agent);
      const args = opts.args ?? {};
      const { decision: wire, action } = JSON.parse(
        call(() => this.#n.decideTool(agent, String(opts.tool ?? fn.name ?? 'anonymous'), args, opts.redact ?? [])));
      const decision = decisionFromWire(wire);
      if (!decision.allowed) throw new PolicyDeniedError(decision);
      const actionText = JSON.stringify(action);
      const wireText = JSON.stringify(wire);
      const start = now();
      const done = (result, error) => {
        const us = (now() - start) * 1000;
        const name = error === undefined ? undefined : (error && error.constructor && error.constructor.name) || typeof error;
        call(() => this.#n.reportTool(agent, actionText, wireText, result, name, us));
      };
      let result;
      try {
        result = fn(args);
      } catch (e) {
        done(undefined, e);
        throw e;
      }
      if (isThenable(result)) {
        return Promise.resolve(result).then(
          (v) => { done(v, undefined); return v; },
          (e) => { done(undefined, e); throw e; });
      }
      done(result, undefined);
      return result;
    }

    /** `fn` governed on every call as tool `tool`; positional arguments are named by `params`. */
    wrap(fn, opts = {}) {
      const params = opts.params ?? [];
      const engine = this;
      return function governed(...callArgs) {
        const args = {};
        callArgs.forEach((v, i) => { args[params[i] ?? `arg${i}`] = v; });
        return engine.govern(() => fn.apply(this, callArgs), { ...opts, tool: opts.tool ?? fn.name, args });
      };
    }

    /** Stops the clock at `ms` (unix milliseconds). */
    setNow(ms) { this.#n.setNow(ms instanceof Date ? ms.getTime() : ms); }

    /** Moves the (then fixed) clock forward by `ms`. */
    advanceClock(ms) { this.#n.advanceClock(ms); }

    /**
     * Signs a checkpoint for the chain head and takes the audit lines so far:
     * `{jsonl, records, checkpoints, events}` — `jsonl` is the audit file format
     * (`aasm audit verify FILE`), `events` the body of `POST /v1/events` (`{events}`).
     */
    drain() { return JSON.parse(call(() => this.#n.drain())); }

    /** Frees the WebAssembly memory of this engine. */
    free() { this.#n.free(); }
  }

  /** Verifies audit lines (JSONL text, e.g. `drain().jsonl`) with the core's verifier. */
  function verifyAudit(jsonl, opts = {}) {
    return JSON.parse(call(() => native.verifyAudit(jsonl, opts.publicKey)));
  }

  return { Engine, verifyAudit };
}
