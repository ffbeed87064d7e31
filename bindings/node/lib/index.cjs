'use strict';
// agent-assembly: every action of your agent decided by policy before it runs, counted against
// budgets, and written to a hash-chained audit log. This file only translates: decisions,
// redaction, outcomes, usage and audit shipping are made by the Rust core (native/).

const native = require('../native/index.cjs');

// ------------------------------------------------------------------------------------------
// Errors: one hierarchy; every error carries a stable `code`.

class AgentAssemblyError extends Error {
  constructor(message, code = 'internal', options) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

class ConfigError extends AgentAssemblyError {}
class GatewayUnavailableError extends AgentAssemblyError {}
class InvalidActionError extends AgentAssemblyError {}

class PolicyDeniedError extends AgentAssemblyError {
  constructor(decision, action) {
    super(`${decision.reason}: ${decision.message}`, 'policy_denied');
    this.decision = decision;
    this.reason = decision.reason;
    this.policyIds = decision.policyIds;
    this.decisionId = decision.decisionId;
    this.budget = decision.budget ?? null;
    this.action = action ?? null;
  }
}

const CLASS_OF_CODE = {
  config: ConfigError,
  invalid_policy: ConfigError,
  unavailable: GatewayUnavailableError,
  invalid_input: InvalidActionError,
};

/** A native error (with its `code`) as the package's error class; other errors unchanged. */
function translate(e) {
  if (e instanceof AgentAssemblyError || !(e instanceof Error)) return e;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code === undefined || !(code in CLASS_OF_CODE || code === 'audit' || code === 'internal')) {
    return e;
  }
  const Cls = CLASS_OF_CODE[code] ?? AgentAssemblyError;
  return new Cls(e.message, code);
}

function nativeCall(f) {
  try {
    return f();
  } catch (e) {
    throw translate(e);
  }
}

// ------------------------------------------------------------------------------------------
// The process-wide governor.

const EXIT_FLUSH_TIMEOUT = 5;
let current = null; // { governor, remote }

function make(options) {
  const governor = nativeCall(() => new native.Governor(options));
  return { governor, remote: governor.mode === 'remote' };
}

function closeQuietly(state) {
  try {
    state.governor.close(EXIT_FLUSH_TIMEOUT);
  } catch {
    // Undelivered events stay spilled on disk; the next process replays them.
  }
}

/**
 * Configures Agent Assembly for this process (replacing an earlier configuration). Anything
 * not given is read from AA_GATEWAY_URL, AA_AGENT_ID, AA_TOKEN, AA_POLICY, AA_MODE, AA_TEAM,
 * AA_SESSION_ID, AA_FAIL_OPEN, AA_SPILL_DIR, AA_AUDIT_FILE, AA_CA_CERT.
 */
function init(options = {}) {
  const next = make(options);
  if (current !== null) closeQuietly(current);
  current = next;
  return next.governor;
}

function state() {
  if (current !== null) return current;
  try {
    current = make(undefined);
  } catch (e) {
    if (e instanceof ConfigError) {
      throw new ConfigError(
        `${e.message} (call init(...) or set the AA_* environment variables)`,
        e.code,
      );
    }
    throw e;
  }
  return current;
}

/** The process governor (initialised from the environment on first use). */
function governor() {
  return state().governor;
}

/** Flushes audit events (up to `timeoutSecs`) and stops the background threads. */
function shutdown(timeoutSecs = EXIT_FLUSH_TIMEOUT) {
  const s = current;
  current = null;
  if (s === null) return true;
  try {
    s.governor.close(timeoutSecs);
    return true;
  } catch (e) {
    if (translate(e) instanceof GatewayUnavailableError) return false;
    throw translate(e);
  }
}

/** Waits until every audit event is delivered; throws GatewayUnavailableError on timeout. */
function flush(timeoutSecs = 5) {
  const g = governor();
  nativeCall(() => g.flush(timeoutSecs));
}

/** Queued, spilled, shipped and rejected event counts, last error, policy version. */
function stats() {
  return governor().stats();
}

process.once('exit', () => {
  if (current !== null) closeQuietly(current);
});

// ------------------------------------------------------------------------------------------
// govern

/** The type name of what was thrown (its class, like Python's type name; never its message). */
function errorName(e) {
  if (e !== null && typeof e === 'object') {
    const ctor = e.constructor;
    if (typeof ctor === 'function' && ctor.name) return ctor.name;
    return typeof e.name === 'string' && e.name ? e.name : 'Object';
  }
  return e === null ? 'null' : typeof e;
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

/** Records the end of `call` (a ToolCall, or anything with `ok(result)` and `error(name)`)
 * when `promise` settles. */
function finishAfter(call, promise) {
  return Promise.resolve(promise).then(
    (result) => {
      nativeCall(() => call.ok(result));
      return result;
    },
    (e) => {
      nativeCall(() => call.error(errorName(e)));
      throw e;
    },
  );
}

/** The end of the call of `ticket` (begun on `gate`'s governor), for finishAfter. */
function ticketEnd(gate, ticket) {
  return {
    ok: (result) => native.gateEndOk(gate, ticket, result),
    error: (name) => native.gateEndError(gate, ticket, name),
  };
}

/** Deepest nesting sent as JSON text; deeper arguments take the N-API conversion. */
const JSON_DEPTH = 8;

/** Strings JSON writes as they are (printable ASCII but `"` and `\`): quoted without a call
 * into JSON.stringify, which costs more than the rest of the walk. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** `s` as a JSON string. */
function quoted(s) {
  return PLAIN.test(s) ? '"' + s + '"' : JSON.stringify(s);
}

/** The JSON text of `v` when it is plain JSON — plain objects (own keys only) and arrays, at
 * most JSON_DEPTH deep, of well-formed strings, numbers, booleans and null — written so that
 * it reads back as exactly what the native conversion reads from `v` (each value read once, no
 * `toJSON` called); else undefined, and the arguments go through N-API, which owns the rules
 * (undefined, BigInt, Buffer, Map, Date, class instances, functions, cycles). */
function jsonText(v, depth) {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return v.isWellFormed() ? quoted(v) : undefined;
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      break;
    default:
      return undefined;
  }
  if (depth >= JSON_DEPTH) return undefined;
  let out;
  if (Array.isArray(v)) {
    out = '[';
    for (let i = 0; i < v.length; i++) {
      const item = jsonText(v[i], depth + 1);
      if (item === undefined) return undefined;
      out += i === 0 ? item : ',' + item;
    }
    return out + ']';
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return undefined;
  out = '{';
  for (const k in v) {
    if (!Object.hasOwn(v, k)) return undefined;
    const item = jsonText(v[k], depth + 1);
    if (item === undefined) return undefined;
    out += (out.length === 1 ? '' : ',') + quoted(k) + ':' + item;
  }
  return out + '}';
}

/** Decides a call of `tool` on `g` (`gate` is the governed function's gate on `g`): a ticket
 * when allowed, the decision when denied. Arguments that are plain JSON cross as one string
 * (one N-API call instead of one per key and value). */
function beginCall(g, gate, tool, argv, rules) {
  const json = jsonText(argv, 0);
  return json === undefined ? g.beginCall(tool, argv, rules) : native.gateBeginCallJson(gate, json);
}

/** beginCall with the arguments given as one object (an adapter's `args` mapper). */
function beginTool(g, gate, tool, args, rules) {
  const json = jsonText(args, 0);
  return json === undefined ? g.beginTool(tool, args, rules) : native.gateBeginToolJson(gate, json);
}

/** Runs an allowed call of `fn` (ticket from beginCall) and records how it ended. */
function runSync(gate, ticket, fn, self, argv) {
  let result;
  try {
    result = fn.apply(self, argv);
  } catch (e) {
    nativeCall(() => native.gateEndError(gate, ticket, errorName(e)));
    throw e;
  }
  if (isThenable(result)) return finishAfter(ticketEnd(gate, ticket), result);
  nativeCall(() => native.gateEndOk(gate, ticket, result));
  return result;
}

const AsyncFunction = (async () => {}).constructor;

/**
 * Governs a function (sync or async) as a tool call: each call is decided by the core before
 * `fn` runs; a deny throws PolicyDeniedError (for an async function: rejects) and `fn` never
 * runs; afterwards the outcome (ok/error, duration, result size) is recorded.
 *
 * `tool` names the tool (default: the function's name). `args` maps the call's arguments
 * into the action's args: a list of names for the positional arguments, or a function
 * receiving the call's arguments and returning an object. Without it, a single plain-object
 * argument gives the names (how tool frameworks call tools), other arguments are the list
 * `args`. Arguments named like secrets, and those in `redact`, are recorded as "[redacted]".
 */
function govern(fn, options = {}) {
  if (typeof fn !== 'function') throw new TypeError('govern(fn, options): fn must be a function');
  const tool = options.tool ?? (fn.name || 'tool');
  const mapper = typeof options.args === 'function' ? options.args : null;
  const names = Array.isArray(options.args) ? options.args.map(String) : undefined;
  const rules = new native.ArgRules(options.redact ? options.redact.map(String) : undefined, names);
  const isAsync = fn instanceof AsyncFunction;
  // The gate of this function on the governor it last ran under (a new one after init()).
  let gate = null;
  let gateOf = null;
  const gateFor = (g) => {
    if (gateOf !== g) {
      gate = g.gate(tool, rules);
      gateOf = g;
    }
    return gate;
  };

  // Allowed: a ticket (a number) the core holds the call under; denied: the decision.
  const begin = (g, gate, argv) =>
    nativeCall(() =>
      mapper ? beginTool(g, gate, tool, mapper(...argv), rules) : beginCall(g, gate, tool, argv, rules),
    );
  const decideLater = (g, argv) =>
    mapper ? g.decideToolAsync(tool, mapper(...argv), rules) : g.decideCallAsync(tool, argv, rules);

  let governed;
  if (isAsync) {
    governed = async function (...argv) {
      const s = state();
      if (s.remote) {
        // The gateway decides: off the event loop, on the libuv pool.
        const call = await decideLater(s.governor, argv).catch((e) => {
          throw translate(e);
        });
        if (!call.allowed) throw new PolicyDeniedError(call.decision, tool);
        return finishAfter(call, fn.apply(this, argv));
      }
      const g = s.governor;
      const gate = gateFor(g);
      const ticket = begin(g, gate, argv);
      if (typeof ticket !== 'number') throw new PolicyDeniedError(ticket, tool);
      return finishAfter(ticketEnd(gate, ticket), fn.apply(this, argv));
    };
  } else {
    governed = function (...argv) {
      const g = state().governor;
      const gate = gateFor(g);
      const ticket = begin(g, gate, argv);
      if (typeof ticket !== 'number') throw new PolicyDeniedError(ticket, tool);
      return runSync(gate, ticket, fn, this, argv);
    };
  }
  Object.defineProperty(governed, 'name', { value: fn.name, configurable: true });
  Object.defineProperty(governed, 'length', { value: fn.length, configurable: true });
  return governed;
}

/** Decides an action given in its wire form (`{kind: 'http_request', ...}`). */
function decide(action) {
  const g = governor();
  return nativeCall(() => g.decide(JSON.stringify(action)));
}

/** Records what happened after an allowed action ran (usage is charged to budgets). */
function report(action, decision, { ok = true, durationMs = 0, resultSize, error, usage } = {}) {
  const g = governor();
  nativeCall(() =>
    g.report(JSON.stringify(action), decision, {
      ok,
      durationUs: Math.round(durationMs * 1000),
      resultSize,
      error,
      usageJson: usage === undefined || usage === null ? undefined : JSON.stringify(usage),
    }),
  );
}

// ------------------------------------------------------------------------------------------
// Model calls

/** The handle given to a modelCall body: records a response's token usage. */
class ModelCall {
  constructor(decision) {
    this.decision = decision;
    this.meter = new native.UsageMeter();
    this.costUsd = undefined;
  }
  /** A whole response (OpenAI Chat Completions / Responses, Anthropic Message) or a chunk. */
  record(response, costUsd) {
    if (response !== undefined && response !== null) {
      const text = typeof response === 'string' ? response : JSON.stringify(response);
      if (text !== undefined) nativeCall(() => this.meter.absorbJson(text));
    }
    if (costUsd !== undefined) this.costUsd = costUsd;
  }
  /** The next bytes of a raw `text/event-stream` body. */
  feedSse(chunk) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.meter.feedSse(bytes);
  }
  /** The usage read so far, or null. */
  get usage() {
    const t = this.meter.tokens();
    if (!t.seen) return null;
    const u = { input_tokens: t.inputTokens, output_tokens: t.outputTokens };
    if (this.costUsd !== undefined) u.cost_usd = this.costUsd;
    return u;
  }
}

function isAsyncIterable(v) {
  return v !== null && typeof v === 'object' && typeof v[Symbol.asyncIterator] === 'function';
}

/**
 * Governs one LLM call: decides a `model_call` before `body` runs (PolicyDeniedError on a
 * deny), then charges the token usage of what `body` returns (a response object, or a stream
 * of chunks, which is passed through and metered as it is read) or what it gave to
 * `call.record(...)` / `call.feedSse(...)`; cost is priced from the model price table.
 */
async function modelCall({ provider, model, tools, inputTokens }, body) {
  const action = { kind: 'model_call', provider, model };
  if (tools && tools.length) action.tools = [...tools];
  if (inputTokens !== undefined) action.input_tokens = inputTokens;
  const s = state();
  const json = JSON.stringify(action);
  const decision = s.remote
    ? await s.governor.decideAsync(json).catch((e) => {
        throw translate(e);
      })
    : nativeCall(() => s.governor.decide(json));
  if (!decision.allowed) throw new PolicyDeniedError(decision, `${provider}/${model}`);
  const call = new ModelCall(decision);
  const started = performance.now();
  const done = (ok, error) =>
    nativeCall(() =>
      s.governor.report(json, decision, {
        ok,
        durationUs: Math.round((performance.now() - started) * 1000),
        error,
        usageJson: call.usage === null ? undefined : JSON.stringify(call.usage),
      }),
    );
  let result;
  try {
    result = await body(call);
  } catch (e) {
    done(false, errorName(e));
    throw e;
  }
  if (isAsyncIterable(result)) {
    return (async function* metered() {
      try {
        for await (const chunk of result) {
          call.record(chunk);
          yield chunk;
        }
      } catch (e) {
        done(false, errorName(e));
        throw e;
      }
      done(true);
    })();
  }
  if (call.usage === null && result !== null && typeof result === 'object') call.record(result);
  done(true);
  return result;
}

// ------------------------------------------------------------------------------------------
// Framework adapters (Vercel AI SDK, OpenAI Agents JS, LangChain.js, MCP)

/** The message a model sees for a denied tool call (the tool did not run). */
function denialMessage(error) {
  return (
    `Agent Assembly denied this action (${error.reason}): ${error.decision.message}. ` +
    'It was not run. Do not retry it; choose another way or report back.'
  );
}

/**
 * Governs a framework tool's `execute(input, context)` as tool `name` (its args are the
 * input object). Used by the Vercel AI SDK (`tool({... execute})`), OpenAI Agents JS
 * (`tool({... execute})`) and LangChain.js (`tool(fn, ...)`).
 */
function governExecute(name, execute, options = {}) {
  return govern(execute, { ...options, tool: name, args: (input) => input });
}

/** A copy of a tool definition (`{execute, ...}`) whose execute is governed as `name`. */
function governTool(name, definition, options = {}) {
  if (typeof definition?.execute !== 'function') {
    throw new TypeError('governTool(name, definition): definition.execute must be a function');
  }
  return { ...definition, execute: governExecute(name, definition.execute, options) };
}

/**
 * An OpenAI Agents JS tool `errorFunction`: a deny becomes a message telling the model why
 * and not to retry; other errors the SDK's generic text.
 */
function agentsErrorFunction(_context, error) {
  if (error instanceof PolicyDeniedError) return denialMessage(error);
  return 'An error occurred while running the tool. Please try again.';
}

/**
 * Governs an MCP client (`@modelcontextprotocol/sdk` Client): `callTool({name, arguments})`
 * is decided as an `mcp_call` on `server` before the request is sent (a deny rejects with
 * PolicyDeniedError), and its outcome recorded. Returns the same client.
 */
function governMcpClient(client, { server }) {
  if (!server) throw new ConfigError('governMcpClient needs the server name', 'config');
  const callTool = client.callTool.bind(client);
  client.callTool = async function governedCallTool(params, ...rest) {
    const s = state();
    const call = await s.governor
      .decideMcpCallAsync(server, String(params.name), params.arguments ?? {})
      .catch((e) => {
        throw translate(e);
      });
    if (!call.allowed) throw new PolicyDeniedError(call.decision, `${server}/${params.name}`);
    const result = finishAfter(call, callTool(params, ...rest));
    return result;
  };
  return client;
}

/**
 * Governs the tool handlers of an MCP server (`@modelcontextprotocol/sdk` McpServer): tools
 * registered after this call with `registerTool(name, config, handler)` (or `tool(...)`) are
 * decided as an `mcp_call` on `server` before the handler runs. A deny becomes a tool
 * result with `isError: true` and the denial message, so the calling model sees why.
 */
function governMcpServer(mcpServer, { server }) {
  if (!server) throw new ConfigError('governMcpServer needs the server name', 'config');
  const wrap = (name, handler) =>
    async function governedHandler(args, extra) {
      const s = state();
      const input = extra === undefined ? {} : args;
      const call = await s.governor.decideMcpCallAsync(server, name, input).catch((e) => {
        throw translate(e);
      });
      if (!call.allowed) {
        const denied = new PolicyDeniedError(call.decision, `${server}/${name}`);
        return { content: [{ type: 'text', text: denialMessage(denied) }], isError: true };
      }
      return finishAfter(call, handler(args, extra));
    };
  const registerTool = mcpServer.registerTool?.bind(mcpServer);
  if (registerTool) {
    mcpServer.registerTool = (name, config, handler) => registerTool(name, config, wrap(name, handler));
  }
  const legacy = mcpServer.tool?.bind(mcpServer);
  if (legacy) {
    mcpServer.tool = (name, ...rest) => {
      const handler = rest.pop();
      return legacy(name, ...rest, wrap(name, handler));
    };
  }
  return mcpServer;
}

module.exports = {
  AgentAssemblyError,
  ConfigError,
  GatewayUnavailableError,
  InvalidActionError,
  PolicyDeniedError,
  ModelCall,
  init,
  governor,
  shutdown,
  flush,
  stats,
  govern,
  decide,
  report,
  modelCall,
  denialMessage,
  governExecute,
  governTool,
  agentsErrorFunction,
  governMcpClient,
  governMcpServer,
  native,
  version: native.nativeVersion(),
};
