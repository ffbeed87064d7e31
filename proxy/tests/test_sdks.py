"""The official MCP and LLM SDKs, unchanged, through a real `aasm proxy` in gateway mode.

MCP: the Python `mcp` SDK (FastMCP server, ClientSession client) and the TypeScript
`@modelcontextprotocol/sdk` (McpServer + StreamableHTTPServerTransport, Client +
StreamableHTTPClientTransport over Node fetch), each client against each server, with the server
answering in SSE and in JSON: the initialize handshake, the held-open GET stream, 202 answers with
no body and Mcp-Session-Id pass through; tools/list is filtered and a forbidden tools/call is
refused with a JSON-RPC error before it reaches the server.

LLM: `anthropic` (Python), LiteLLM and the Vercel AI SDK's OpenAI provider (Node), streamed and
not, against local stubs speaking each provider's protocol; tokens and cost charged exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import HERE, Gateway, Proxy, Upstream, free_port, start_upstream

PEERS = HERE / "peers"
NODE_MODULES = Path(os.environ.get("AA_NODE_MODULES", "/var/cache/aa/node-tools/node_modules"))


@pytest.fixture(scope="module")
def anthropic_upstream(certs: Path) -> Iterator[Upstream]:
    u = start_upstream(certs, "upstream-ca", "upstream")
    yield u
    u.proc.kill()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway, upstream: Upstream,
          anthropic_upstream: Upstream) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("proxy"), gateway, upstream, "--default-agent", "sdk-agent",
              "--llm", f"localhost:{anthropic_upstream.port}=anthropic")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Node peers beside a node_modules of the real npm packages, as a user's project has."""
    d = tmp_path_factory.mktemp("node")
    (d / "node_modules").symlink_to(NODE_MODULES)
    for f in PEERS.glob("*.mjs"):
        shutil.copy(f, d)
    return d


def wait_records(gateway: Gateway, pred, n: int = 1, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        recs = [r for r in gateway.records() if pred(r)]
        if len(recs) >= n or time.monotonic() > deadline:
            return recs
        time.sleep(0.1)


class Server:
    def __init__(self, argv: list[str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening"), (line, self.proc.stderr.read() if self.proc.stderr else "")
        time.sleep(0.3)  # uvicorn prints before it binds

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/mcp"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module", params=["python-sse", "python-json", "node-sse", "node-json"])
def mcp_server(request: pytest.FixtureRequest, certs: Path, node_dir: Path) -> Iterator[Server]:
    lang, mode = request.param.split("-")
    port = free_port()
    tls = [str(certs / "upstream.pem"), str(certs / "upstream.key")]
    if lang == "python":
        argv = [sys.executable, str(PEERS / "mcp_server.py"), str(port), *tls, mode]
    else:
        argv = ["node", str(node_dir / "mcp_server.mjs"), str(port), *tls, mode]
    s = Server(argv, port)
    yield s
    s.stop()


def check_mcp_run(out: dict, gateway: Gateway, server: Server, client: str) -> None:
    assert out["session"] is True, out
    assert out["tools"] == ["read_file"], out  # delete_repo filtered out of tools/list
    assert out["ok"] == ["contents of /tmp/x"], out
    denied = out["denied"]
    assert denied is not None, f"{client}: the forbidden tools/call reached the server"
    assert denied["code"] == -32003, denied
    assert "deleting repositories through MCP is forbidden" in denied["message"]
    assert denied["data"]["policy_ids"] == ["no-delete-repo"]
    recs = wait_records(gateway, lambda r: r["action"]["kind"] == "mcp_call"
                        and r["action"].get("tool") == "delete_repo" and r["agent_id"] == "sdk-agent")
    assert recs and all(r["decision"]["effect"] == "deny" for r in recs)


def test_python_mcp_sdk_client(proxy: Proxy, gateway: Gateway, upstream: Upstream, mcp_server: Server) -> None:
    env = dict(os.environ, HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(proxy.ca), NO_PROXY="")
    r = subprocess.run([sys.executable, str(PEERS / "mcp_client.py"), mcp_server.url], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    check_mcp_run(json.loads(r.stdout), gateway, mcp_server, "python")


def test_typescript_mcp_sdk_client(proxy: Proxy, gateway: Gateway, mcp_server: Server, node_dir: Path) -> None:
    r = subprocess.run(["node", str(node_dir / "mcp_client.mjs"), mcp_server.url, proxy.url, str(proxy.ca)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    check_mcp_run(json.loads(r.stdout), gateway, mcp_server, "node")


def model_records(gateway: Gateway, provider: str, model: str, n: int) -> list[dict]:
    def usage_of(r: dict) -> bool:
        return (r["action"]["kind"] == "model_call" and r["action"]["provider"] == provider
                and r["action"]["model"] == model and bool((r.get("outcome") or {}).get("usage")))
    return wait_records(gateway, usage_of, n)


def assert_two_charged(gateway: Gateway, provider: str, model: str, tokens: tuple[int, int],
                       price_per_mtok: tuple[float, float]) -> None:
    """The streamed and the whole call each left a record with exactly these tokens and cost."""
    recs = model_records(gateway, provider, model, 2)
    assert len(recs) == 2, recs
    cost = (tokens[0] * price_per_mtok[0] + tokens[1] * price_per_mtok[1]) / 1e6
    for r in recs:
        u = r["outcome"]["usage"]
        assert (u["input_tokens"], u["output_tokens"]) == tokens, u
        assert u["cost_usd"] == pytest.approx(cost)


def test_anthropic_sdk_streamed_and_not_tokens_charged(proxy: Proxy, gateway: Gateway,
                                                      anthropic_upstream: Upstream) -> None:
    import anthropic
    import httpx2  # the anthropic SDK's own HTTP client package

    http = httpx2.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca)))
    client = anthropic.Anthropic(base_url=anthropic_upstream.url, api_key="sk-ant-test", http_client=http,
                                 max_retries=0)
    msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                 messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello"
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "Hello"
    assert_two_charged(gateway, "anthropic", "claude-sonnet-4-6", (30, 15), (3.00, 15.00))


def test_litellm_streamed_and_not_tokens_charged(proxy: Proxy, gateway: Gateway, upstream: Upstream) -> None:
    import litellm

    litellm.client_session = httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca)))
    kw = {"model": "openai/gpt-4.1-mini", "api_base": upstream.url + "/v1", "api_key": "sk-test",
          "messages": [{"role": "user", "content": "hi"}], "max_retries": 0}
    resp = litellm.completion(**kw)
    assert resp.choices[0].message.content == "Hello"
    chunks = litellm.completion(**kw, stream=True, stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert_two_charged(gateway, "openai", "gpt-4.1-mini", (21, 9), (0.40, 1.60))


def test_vercel_ai_sdk_openai_provider_streamed_and_not(proxy: Proxy, gateway: Gateway, upstream: Upstream,
                                                       node_dir: Path) -> None:
    r = subprocess.run(["node", str(node_dir / "vercel_ai.mjs"), upstream.url + "/v1", proxy.url, str(proxy.ca)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["text"] == "Hello" and out["streamed"] == "Hello", out
    assert out["usage"]["inputTokens"] == 21 and out["usage"]["outputTokens"] == 9
    assert_two_charged(gateway, "openai", "gpt-5-mini", (21, 9), (0.25, 2.00))
