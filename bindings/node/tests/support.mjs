// Real parts for the tests: a running `aasm gateway` process, temp dirs, the clean runtime.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const PKG = resolve(HERE, '..');
export const ROOT = resolve(HERE, '../../..');
export const PERMISSIVE = join(ROOT, 'examples/policies/permissive');
export const AASM =
  process.env.AASM ||
  join(process.env.CARGO_TARGET_DIR || '/var/cache/aa/target', 'debug', 'aasm');
export const ADMIN = 'node-tests-admin-token-0123456789';
/** Where the test tools (npm packages) are installed: scripts/node.sh sets it. */
export const TOOLS = process.env.AA_NODE_TOOLS || '/var/cache/aa/node-tools-node';

export function tempDir(t) {
  const d = mkdtempSync(join(tmpdir(), 'aa-node-'));
  t?.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Clears AA_* from the environment (each test configures what it needs). */
export function cleanEnv() {
  for (const k of Object.keys(process.env)) if (k.startsWith('AA_') && k !== 'AA_NODE_TOOLS') delete process.env[k];
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(pred, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return true;
    await sleep(50);
  }
  return pred();
}

/** A running `aasm gateway` (started by `start()`). */
export class Gateway {
  constructor(db, policy = PERMISSIVE) {
    this.db = db;
    this.policy = policy;
    this.proc = null;
    this.url = '';
  }

  static async start(db, policy = PERMISSIVE) {
    const gw = new Gateway(db, policy);
    await gw.start();
    return gw;
  }

  async start(port = 0) {
    const args = ['gateway', '--listen', `127.0.0.1:${port}`, '--db', this.db, '--checkpoint-every', '100'];
    if (this.policy) args.push('--policy', this.policy);
    const proc = spawn(AASM, args, {
      env: { ...process.env, AA_ADMIN_TOKEN: ADMIN, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.proc = proc;
    const lines = createInterface({ input: proc.stdout });
    const line = await new Promise((res, rej) => {
      lines.once('line', res);
      proc.once('exit', (code) => rej(new Error(`aasm gateway exited with ${code}`)));
      proc.once('error', rej);
    });
    if (!line.startsWith('listening on ')) throw new Error(`unexpected gateway output: ${line}`);
    this.url = line.slice('listening on '.length).trim();
  }

  get port() {
    return Number(this.url.split(':').pop());
  }

  async request(method, path, body, token = ADMIN) {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async register(agentId, team) {
    return (await this.request('POST', '/v1/agents', { agent_id: agentId, team: team ?? null })).token;
  }

  async records() {
    const out = [];
    let cursor = 0;
    for (;;) {
      const page = await this.request('GET', `/v1/audit?limit=1000&cursor=${cursor}`);
      out.push(...page.records);
      if (page.next_cursor === undefined || page.next_cursor === null) return out;
      cursor = page.next_cursor;
    }
  }

  verify() {
    return this.request('GET', '/v1/audit/verify');
  }

  /** `aasm audit verify` against this gateway (the CLI's own check of the chain). */
  cliVerify() {
    return spawnSync(AASM, ['audit', 'verify'], {
      env: { ...process.env, AA_GATEWAY_URL: this.url, AA_TOKEN: ADMIN },
      encoding: 'utf8',
    });
  }

  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  }
}

/** Runs a Node script (ESM) in a fresh process; resolves with {code, stdout, stderr}. */
export function runNode(code, env = {}, cwd = PKG) {
  return runProcess(process.execPath, ['--input-type=module', '-e', code], env, cwd);
}

export function runProcess(cmd, args, env = {}, cwd = PKG) {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/** The Python that has agent_assembly installed (scripts/python-sdk.sh's tool venv). */
export const PYTHON = process.env.AA_SDK_PYTHON || '/var/cache/aa/venv-sdk/bin/python';

export function auditLines(file) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('{"checkpoint"'))
    .map((l) => JSON.parse(l));
}
