"""The local upstreams the example agents talk to, over HTTPS with their own CA.

    /var/cache/aa/venv-proxy/bin/python examples/agents/upstreams.py [--dir DIR]

Starts, on 127.0.0.1 ephemeral ports:
  - an OpenAI-compatible chat completions stub (testsupport/upstream.py's handler);
  - an MCP server (the official `mcp` package's FastMCP, 1.x, streamable HTTP) with an allowed
    tool `lookup_order` and a forbidden one `delete_all_orders`;
  - an "exfil" endpoint that counts what reaches it, and `GET /stats` on the same server with
    every counter (exfil requests, chat requests, MCP tool calls) for a test to assert on.
Then prints one JSON line (URLs, ports, the CA file, and the `AA_DEMO_*` environment for the
agents) and serves until killed. The URLs name `localhost`, not 127.0.0.1, so that a NO_PROXY
naming the gateway's 127.0.0.1 does not exempt them from the proxy.
"""

from __future__ import annotations

import argparse
import http.server
import json
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testsupport"))
import upstream  # noqa: E402
from aa_testing import make_ca, make_leaf  # noqa: E402

_lock = threading.Lock()
STATS: dict[str, Any] = {"exfil_requests": 0, "exfil_bytes": 0, "llm_requests": 0,
                         "mcp_tool_calls": {"lookup_order": 0, "delete_all_orders": 0}}


def count(key: str, n: int = 1) -> None:
    with _lock:
        STATS[key] += n


class Chat(upstream.Handler):
    """The shared stub (chat completions, streamed or not, with usage), counting requests."""

    def do_POST(self) -> None:
        count("llm_requests")
        super().do_POST()


class Exfil(http.server.BaseHTTPRequestHandler):
    """Anything under /exfil is counted (it must never arrive through the proxy); GET /stats."""

    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/stats"):
            with _lock:
                self._send(200, STATS)
            return
        if self.path.startswith("/exfil"):
            count("exfil_requests")
            count("exfil_bytes", len(body))
            self._send(200, {"received": len(body)})
            return
        self._send(404, {"error": "not found"})

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args: object) -> None:
        pass


def tls_server(handler: type[http.server.BaseHTTPRequestHandler], cert: Path,
               key: Path) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def mcp_server(cert: Path, key: Path) -> tuple[uvicorn.Server, int]:
    mcp = FastMCP("orders", host="127.0.0.1")

    @mcp.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order by id."""
        STATS["mcp_tool_calls"]["lookup_order"] += 1
        return f"order {order_id}: shipped"

    @mcp.tool()
    def delete_all_orders(confirm: bool = False) -> str:
        """Delete every order (the policy forbids it)."""
        STATS["mcp_tool_calls"]["delete_all_orders"] += 1
        return "deleted all orders"

    config = uvicorn.Config(mcp.streamable_http_app(), host="127.0.0.1", port=0, ssl_certfile=str(cert),
                            ssl_keyfile=str(key), log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the MCP server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="where the CA and certificates go (default: a new temp dir)")
    d = Path(ap.parse_args().dir or tempfile.mkdtemp(prefix="aa-demo-upstreams-"))
    d.mkdir(parents=True, exist_ok=True)
    make_ca(d, "demo-upstream-ca")
    make_leaf(d, "demo-upstream-ca", "demo-upstream")
    cert, key = d / "demo-upstream.pem", d / "demo-upstream.key"

    chat = tls_server(Chat, cert, key)
    exfil = tls_server(Exfil, cert, key)
    _, mcp_port = mcp_server(cert, key)
    llm_port, exfil_port = chat.server_address[1], exfil.server_address[1]
    info = {
        "ca": str(d / "demo-upstream-ca.pem"),
        "llm_url": f"https://localhost:{llm_port}/v1",
        "llm_port": llm_port,
        "llm_host": f"localhost:{llm_port}",  # for `aasm proxy run --llm HOST=openai`
        "mcp_url": f"https://localhost:{mcp_port}/mcp",
        "mcp_port": mcp_port,
        "exfil_url": f"https://localhost:{exfil_port}/exfil/upload",
        "stats_url": f"https://localhost:{exfil_port}/stats",
        "exfil_port": exfil_port,
    }
    info["env"] = {"AA_DEMO_LLM_URL": info["llm_url"], "AA_DEMO_MCP_URL": info["mcp_url"],
                   "AA_DEMO_EXFIL_URL": info["exfil_url"]}
    print(json.dumps(info), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
