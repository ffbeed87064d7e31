"""A real HTTPS upstream for the proxy tests: JSON echo, an OpenAI-compatible chat API
(streamed and not), an MCP JSON-RPC endpoint, and an endpoint that hangs."""

from __future__ import annotations

import http.server
import json
import ssl
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/hang"):
            time.sleep(3600)
        seen = {"path": self.path, "proxy_authorization": self.headers.get("proxy-authorization")}
        self._send(200, json.dumps(seen).encode())

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        data = json.loads(self.rfile.read(n) or b"{}")
        if self.path.endswith("/chat/completions"):
            usage = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}
            if data.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                chunks = [
                    {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": data["model"],
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]},
                    {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": data["model"],
                     "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
                    {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": data["model"], "choices": [],
                     "usage": usage},
                ]
                for c in [*[json.dumps(c) for c in chunks], "[DONE]"]:
                    msg = f"data: {c}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
                    self.wfile.flush()
                    time.sleep(0.01)
                self.wfile.write(b"0\r\n\r\n")
                return
            body = {"id": "c1", "object": "chat.completion", "created": 1, "model": data["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": usage}
            self._send(200, json.dumps(body).encode())
            return
        if self.path.startswith("/mcp"):
            method = data.get("method")
            if method == "tools/list":
                result = {"tools": [{"name": "read_file", "inputSchema": {"type": "object"}},
                                    {"name": "delete_repo", "inputSchema": {"type": "object"}}]}
            elif method == "tools/call":
                result = {"content": [{"type": "text", "text": f"ran {data['params']['name']}"}]}
            else:
                result = {}
            self._send(200, json.dumps({"jsonrpc": "2.0", "id": data.get("id"), "result": result}).encode())
            return
        self._send(200, json.dumps({"echo": data}).encode())

    def log_message(self, *args: object) -> None:
        pass


def serve(port: int, cert: str, key: str) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


if __name__ == "__main__":
    s = serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])
    print(f"listening {s.server_address[1]}", flush=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    threading.Event().wait()
