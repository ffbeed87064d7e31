// Types of @agent-assembly/wasm (Node entry; the web entry adds `init`).

export type Effect = 'allow' | 'deny';
export type Layer = 'sdk' | 'proxy' | 'ebpf';

/** An agent: its id, or the full form. */
export type AgentSpec =
  | string
  | { agent_id: string; team?: string; session_id?: string; labels?: Record<string, string> };

/** An action (`{kind: 'tool_call', tool, args}`, `{kind: 'model_call', …}`, … — the core's model). */
export type Action = { kind: string; [field: string]: unknown };

export interface Decision {
  allowed: boolean;
  effect: Effect;
  /** Stable reason code (`policy_permit`, `policy_forbid`, `no_permit`, `budget_exceeded`, …). */
  reason: string;
  message: string;
  policyIds: string[];
  decisionId: string;
  policyVersion?: string;
  budget?: string;
  failOpen: boolean;
}

export interface Outcome {
  status: 'ok' | 'error';
  duration_us: number;
  error?: string;
  result_size?: number;
  usage?: { input_tokens?: number; output_tokens?: number; cost_usd?: number };
}

export interface EngineOptions {
  /** Agent of `govern`/`wrap` calls that name none (default `"agent"`). */
  agent?: AgentSpec;
  /** Allow (flagged `failOpen`) instead of deny when no decision can be made. */
  failOpen?: boolean;
  /** Stop the clock here (unix ms or Date) instead of `Date.now()`. */
  now?: number | Date;
  /** A signed checkpoint after this many records (default 100), and at every `drain()`. */
  checkpointEvery?: number;
  /** 32-byte Ed25519 seed in hex (default: fresh from `crypto.getRandomValues`). */
  signingSeed?: string;
}

export interface PolicyOptions {
  /** File name of a single Cedar text (default `policy.cedar`), as diagnostics name it. */
  fileName?: string;
  budgetsToml?: string;
  pricesToml?: string;
  /** Agents under the kill switch. */
  suspended?: string[];
}

/** What `GET /v1/policy` returns. */
export interface PolicyDocument {
  version: string;
  bundle: { files: Record<string, string>; budgets?: string; prices?: string; suspended?: string[] };
}

export interface AuditRecord {
  seq: number;
  id: string;
  ts: string;
  agent_id: string;
  session_id?: string;
  layer: Layer;
  action: Action;
  decision: Record<string, unknown>;
  outcome?: Outcome;
  prev_hash: string;
  hash: string;
}

export interface Checkpoint { seq: number; hash: string; ts: string; public_key: string; signature: string }

export type AuditEvent = Omit<AuditRecord, 'seq' | 'prev_hash' | 'hash'>;

export interface Drained {
  /** The audit file's lines (records and `{"checkpoint": …}`), canonical JSON. */
  jsonl: string;
  records: AuditRecord[];
  checkpoints: Checkpoint[];
  /** Ready for `POST /v1/events` as `{events}`. */
  events: AuditEvent[];
}

export interface VerifyReport {
  ok: boolean;
  records: number;
  checkpoints: number;
  last_seq: number;
  last_hash: string;
  sealed_seq: number;
  public_key?: string;
  failure?: { seq: number; line: number; kind: string; detail: string };
}

export interface GovernOptions<A> {
  tool?: string;
  args?: A;
  agent?: AgentSpec;
  /** Argument names recorded as `"[redacted]"` besides the built-in secret names. */
  redact?: string[];
}

export class Engine {
  static fromPolicies(cedar: string | Record<string, string>, opts?: PolicyOptions & EngineOptions): Engine;
  static fromBundle(document: PolicyDocument | string, opts?: EngineOptions): Engine;
  setPolicies(policies: PolicyDocument | string | Record<string, string>, opts?: PolicyOptions): string;
  readonly policyVersion: string | undefined;
  readonly publicKey: string;
  decide(agent: AgentSpec, action: Action | string, opts?: { layer?: Layer }): Decision;
  report(agent: AgentSpec, action: Action | string, decision: Decision, outcome: Outcome, opts?: { layer?: Layer }): void;
  govern<A, R>(fn: (args: A) => R, opts: GovernOptions<A>): R;
  wrap<F extends (...args: any[]) => any>(fn: F, opts?: GovernOptions<never> & { params?: string[] }): F;
  setNow(ms: number | Date): void;
  advanceClock(ms: number): void;
  drain(): Drained;
  free(): void;
}

export function verifyAudit(jsonl: string, opts?: { publicKey?: string }): VerifyReport;

export class AgentAssemblyError extends Error {
  readonly code: string;
}
export interface Diagnostic {
  file: string;
  line: number | null;
  column: number | null;
  message: string;
  help: string | null;
  source_line: string | null;
}
export class PolicyError extends AgentAssemblyError {
  readonly code: 'invalid_policy';
  readonly diagnostics: Diagnostic[];
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
}
export class InvalidInputError extends AgentAssemblyError { readonly code: 'invalid_input' }
export class AuditError extends AgentAssemblyError { readonly code: 'audit' }
export class PolicyDeniedError extends AgentAssemblyError {
  readonly code: 'policy_denied';
  readonly reason: string;
  readonly policyIds: string[];
  readonly decisionId: string;
  readonly decision: Decision;
}
