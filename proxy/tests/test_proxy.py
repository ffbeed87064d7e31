"""aa-proxy with a real HTTPS upstream, a real gateway, and real clients."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import AASM, ADMIN, HERE, Gateway, Proxy, Upstream, curl, free_port


def wait_records(gateway: Gateway, pred, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        recs = [r for r in gateway.records() if pred(r)]
        if recs or time.monotonic() > deadline:
            return recs
        time.sleep(0.1)


def test_curl_http1_and_http2_are_intercepted(proxy: Proxy, upstream: Upstream) -> None:
    r = curl(proxy, upstream.url + "/hello?x=1", "--http1.1", "-w", "\n%{http_version}")
    body, version = r.stdout.rsplit("\n", 1)
    assert version == "1.1", r.stderr
    assert json.loads(body) == {"path": "/hello?x=1", "proxy_authorization": None}
    r = curl(proxy, upstream.url + "/h2", "--http2", "-w", "\n%{http_version}")
    body, version = r.stdout.rsplit("\n", 1)
    assert version == "2" and json.loads(body)["path"] == "/h2", r.stderr


def split_response(stdout: str) -> tuple[str, str]:
    """The last header block and the body of `curl -i` output (after the CONNECT's block)."""
    parts = stdout.replace("\r\n", "\n").split("\n\n")
    return parts[-2], parts[-1]


def test_a_denied_host_gets_403_with_the_reason(proxy: Proxy, gateway: Gateway) -> None:
    r = curl(proxy, "https://pastebin.com/api/api_post.php", "-i", "-X", "POST", "--http1.1")
    head, body = split_response(r.stdout)
    assert head.startswith("HTTP/1.1 403"), r.stdout
    assert "x-agent-assembly: denied" in head.lower()
    d = json.loads(body)
    assert (d["reason"], d["policy_ids"]) == ("forbidden", ["no-paste-sites"]) and d["decision_id"]
    recs = wait_records(gateway, lambda r: r["action"].get("host") == "pastebin.com")
    assert recs and recs[0]["layer"] == "proxy" and recs[0]["decision"]["effect"] == "deny"
    assert recs[0]["agent_id"] == "proxy-default"


def test_python_requests_and_httpx(proxy: Proxy, upstream: Upstream) -> None:
    import requests

    r = requests.get(upstream.url + "/requests", proxies={"https": proxy.url}, verify=str(proxy.ca), timeout=10)
    assert r.json()["path"] == "/requests"
    with httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca)), http2=True) as c:
        r = c.post(upstream.url + "/echo", json={"a": 1})
        assert r.json() == {"echo": {"a": 1}}
        assert c.get("https://paste.ee/x").status_code == 403


def test_node_fetch(proxy: Proxy, upstream: Upstream) -> None:
    modules = os.environ.get("AA_NODE_MODULES", "/var/cache/aa/node-tools/node_modules")
    script = f"""
const {{ ProxyAgent, fetch }} = require({json.dumps(modules + "/undici")});
const fs = require('fs');
const agent = new ProxyAgent({{ uri: {json.dumps(proxy.url)}, requestTls: {{ ca: fs.readFileSync({json.dumps(str(proxy.ca))}) }} }});
(async () => {{
  const ok = await fetch({json.dumps(upstream.url + "/node")}, {{ dispatcher: agent }});
  const denied = await fetch('https://pastebin.com/x', {{ dispatcher: agent }});
  console.log(JSON.stringify({{ ok: await ok.json(), denied: denied.status }}));
}})().catch(e => {{ console.error(e); process.exit(1); }});
"""
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res == {"ok": {"path": "/node", "proxy_authorization": None}, "denied": 403}


def test_openai_sdk_streamed_and_not_tokens_charged(proxy: Proxy, upstream: Upstream, gateway: Gateway) -> None:
    import openai

    http = httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca)))
    client = openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test-not-real", http_client=http, max_retries=0)
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "Hello"
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, stream_options={"include_usage": True})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    recs = wait_records(gateway, lambda r: r["action"]["kind"] == "model_call" and r.get("outcome", {}).get("usage"))
    deadline = time.monotonic() + 10
    while len(recs) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        recs = [r for r in gateway.records() if r["action"]["kind"] == "model_call" and (r.get("outcome") or {}).get("usage")]
    assert len(recs) == 2, recs
    for r in recs:
        u = r["outcome"]["usage"]
        assert (u["input_tokens"], u["output_tokens"]) == (21, 9)
        assert u["cost_usd"] == pytest.approx((21 * 0.15 + 9 * 0.60) / 1e6)
        assert r["action"]["model"] == "gpt-4o-mini" and r["action"]["provider"] == "openai"
        assert r["outcome"]["status"] == "ok"


def test_a_team_policy_denies_a_model_for_an_authenticated_agent(proxy: Proxy, upstream: Upstream, gateway: Gateway) -> None:
    import openai

    token = gateway.api("POST", "/v1/agents", {"agent_id": "intern-1", "team": "interns"})["token"]  # type: ignore[index]
    http = httpx.Client(proxy=f"http://intern-1:{token}@127.0.0.1:{proxy.port}", verify=ssl.create_default_context(cafile=str(proxy.ca)))
    client = openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test", http_client=http, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["code"] == "forbidden"  # type: ignore[index]
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[]).choices[0].message.content == "Hello"
    recs = wait_records(gateway, lambda r: r["agent_id"] == "intern-1" and r["action"].get("model") == "gpt-4o")
    assert recs and recs[0]["decision"]["policy_ids"] == ["no-gpt-4o-for-interns"]
    # A wrong token, or another agent's token, is refused with 407.
    r = curl(proxy, upstream.url + "/x", "--proxy-user", "intern-1:aa_wrong", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout in ("407", "000"), r
    r = curl(proxy, upstream.url + "/x", "--proxy-user", f"someone-else:{token}", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout in ("407", "000"), r


def test_mcp_tools_call_allowed_denied_and_list_filtered(proxy: Proxy, upstream: Upstream) -> None:
    with httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca))) as c:
        listed = c.post(upstream.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).json()
        assert [t["name"] for t in listed["result"]["tools"]] == ["read_file"]
        ok = c.post(upstream.url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                                 "params": {"name": "read_file", "arguments": {"path": "/tmp/x"}}})
        assert ok.json()["result"]["content"][0]["text"] == "ran read_file"
        denied = c.post(upstream.url + "/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                                     "params": {"name": "delete_repo", "arguments": {"repo": "prod"}}})
        assert denied.status_code == 200
        err = denied.json()
        assert err["id"] == 3 and err["error"]["code"] == -32003
        assert err["error"]["data"]["policy_ids"] == ["no-delete-repo"]


def test_websocket_is_relayed_and_decided(proxy: Proxy, upstream: Upstream, certs: Path, gateway: Gateway) -> None:
    import threading

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from websockets.sync.server import ServerConnection, serve

    def echo(ws: ServerConnection) -> None:
        for msg in ws:
            ws.send(f"echo:{msg}")

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs / "upstream.pem", certs / "upstream.key")
    with serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        client_ctx = ssl.create_default_context(cafile=str(proxy.ca))
        with connect(f"wss://localhost:{port}/ws/chat", proxy=proxy.url, ssl=client_ctx) as ws:
            for i in range(3):
                ws.send(f"m{i}")
                assert ws.recv(timeout=5) == f"echo:m{i}"
        with pytest.raises(InvalidStatus) as denied:
            connect(f"wss://localhost:{port}/ws/admin", proxy=proxy.url, ssl=client_ctx)
        assert denied.value.response.status_code == 403
        # The refused upgrade closes the connection (the client's reader stops at once).
        assert denied.value.response.headers.get("connection", "").lower() == "close"
        server.shutdown()
    recs = wait_records(gateway, lambda r: r["action"].get("path") == "/ws/admin")
    assert recs and recs[0]["decision"]["effect"] == "deny" and recs[0]["decision"]["policy_ids"] == ["no-ws-admin"]


def test_a_refused_or_unreachable_websocket_upstream_fails_the_handshake(proxy: Proxy, certs: Path) -> None:
    """The proxy answers the client's upgrade only after the upstream accepted its own."""
    import threading

    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidStatus
    from websockets.http11 import Response
    from websockets.sync.client import connect
    from websockets.sync.server import serve

    client_ctx = ssl.create_default_context(cafile=str(proxy.ca))
    dead = free_port()  # nothing listens there
    with pytest.raises(InvalidStatus) as unreachable:
        connect(f"wss://localhost:{dead}/ws/chat", proxy=proxy.url, ssl=client_ctx, open_timeout=10)
    assert unreachable.value.response.status_code == 502

    def refuse(conn, request):
        return Response(401, "Unauthorized", Headers(), b"no")

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs / "upstream.pem", certs / "upstream.key")
    with serve(lambda ws: None, "127.0.0.1", 0, ssl=server_ctx, process_request=refuse) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        with pytest.raises(InvalidStatus) as refused:
            connect(f"wss://localhost:{port}/ws/chat", proxy=proxy.url, ssl=client_ctx, open_timeout=10)
        assert refused.value.response.status_code == 401
        server.shutdown()


def test_passthrough_host_is_tunnelled_and_recorded(proxy: Proxy, upstream: Upstream, gateway: Gateway) -> None:
    # Not intercepted: the client sees the upstream's own certificate, signed by the upstream CA.
    r = subprocess.run(["curl", "-sS", "--proxy", proxy.url, "--cacert", str(upstream.ca),
                        f"https://127.0.0.1:{upstream.port}/through"], capture_output=True, text=True, timeout=15)
    assert json.loads(r.stdout)["path"] == "/through", r.stderr
    recs = wait_records(gateway, lambda r: r["action"]["kind"] == "net_connect" and r["action"]["port"] == upstream.port
                        and r["action"]["addr"] == "127.0.0.1")
    assert recs and recs[0]["action"]["addr"] == "127.0.0.1" and recs[0]["layer"] == "proxy"
    assert proxy.status()["stats"]["passthrough"] >= 1


def test_bad_upstream_certificate_is_a_502_with_the_reason(proxy: Proxy, rogue: Upstream) -> None:
    r = curl(proxy, rogue.url + "/x", "-i", "--http1.1")
    head, body = split_response(r.stdout)
    assert head.startswith("HTTP/1.1 502"), r.stdout
    assert "certificate" in json.loads(body)["reason"].lower()


def test_a_hanging_upstream_times_out(proxy: Proxy, upstream: Upstream) -> None:
    started = time.monotonic()
    r = curl(proxy, upstream.url + "/hang", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout in ("504", "502"), r
    assert time.monotonic() - started < 12


def test_bad_input_does_not_hurt_the_proxy(proxy: Proxy, upstream: Upstream) -> None:
    for payload in [b"\x00\x01garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
                    b"CONNECT nonsense HTTP/1.1\r\n\r\n"]:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            try:
                s.sendall(payload)
                s.recv(1024)
            except OSError:
                pass
    # A client that goes away in the middle of a streamed response.
    with httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca))) as c, c.stream(
        "POST", upstream.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": True, "messages": []}
    ) as resp:
        next(resp.iter_bytes())
    assert curl(proxy, upstream.url + "/after").returncode == 0
    assert proxy.proc.poll() is None


def test_status_counts_requests_and_denies(proxy: Proxy) -> None:
    s = proxy.status()
    assert s["stats"]["requests"] > 0 and s["stats"]["denies"] > 0
    assert s["policy_version"]


def test_cli_daemon_and_ca_found_from_any_directory(gateway: Gateway, upstream: Upstream) -> None:
    """`install-ca`, `start`, `status`, `logs` and `stop` with the default directories, as an
    unprivileged user (nobody, HOME in a fresh directory), each from another working directory."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)  # pytest's own tmp_path is closed to other users
        daemon_as_nobody(Path(d), gateway, upstream)


def daemon_as_nobody(tmp_path: Path, gateway: Gateway, upstream: Upstream) -> None:
    home, trust = tmp_path / "home", tmp_path / "trust"
    cwds = [tmp_path / f"cwd{i}" for i in range(4)]
    for d in (home, trust, *cwds):
        d.mkdir()
        os.chown(d, 65534, 65534)
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AA_TOKEN": ADMIN}
    upstream_ca = shutil.copy(upstream.ca, tmp_path / "upstream-ca.pem")

    def run(cwd: Path, *a: str) -> subprocess.CompletedProcess[str]:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", AASM, *a]
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=60)

    out = run(cwds[0], "--json", "proxy", "install-ca", "--trust-dir", str(trust))
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["data"]
    ca_dir = home / ".local/share/agent-assembly/proxy"
    state = home / ".local/state/agent-assembly/proxy"
    assert Path(info["NODE_EXTRA_CA_CERTS"]) == ca_dir / "ca.pem" and (trust / "agent-assembly-local-ca.crt").exists()
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    out = run(cwds[1], "proxy", "start", "--listen", f"127.0.0.1:{port}", "--gateway", gateway.url,
              "--default-agent", "daemon", "--upstream-ca", str(upstream_ca))
    assert out.returncode == 0, out.stderr + out.stdout
    try:
        st = run(cwds[2], "--json", "proxy", "status")
        assert json.loads(st.stdout)["data"]["running"] is True, st
        again = run(cwds[3], "proxy", "start", "--listen", f"127.0.0.1:{free_port()}", "--gateway", gateway.url)
        assert again.returncode != 0 and "already runs" in again.stderr, again
        r = subprocess.run(["curl", "-sS", "--proxy", f"http://127.0.0.1:{port}", "--cacert", str(ca_dir / "ca.pem"),
                            upstream.url + "/daemon"], capture_output=True, text=True, timeout=15)
        assert json.loads(r.stdout)["path"] == "/daemon"
        assert "listening on" in run(cwds[3], "proxy", "logs").stdout
        log = (state / "proxy.log").read_text()
        assert "a token" not in log and ADMIN not in log
    finally:
        assert run(cwds[0], "proxy", "stop").returncode == 0
    assert run(cwds[1], "proxy", "status").returncode == 1
    assert not (state / "proxy.pid").exists()
    assert not any((c / ".aa").exists() for c in cwds)
    assert run(cwds[2], "proxy", "uninstall-ca", "--trust-dir", str(trust)).returncode == 0
    assert not (trust / "agent-assembly-local-ca.crt").exists()
    assert shutil.which("curl") and HERE.exists()
