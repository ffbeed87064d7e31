"""A real HTTPS upstream for the proxy tests: JSON echo, an OpenAI-compatible chat API and the
Anthropic Messages API (streamed and not), an MCP JSON-RPC endpoint, and an endpoint that hangs."""

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
                chunks = [
                    {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": data["model"],
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]},
                    {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": data["model"],
                     "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
                    {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": data["model"], "choices": [],
                     "usage": usage},
                ]
                self._chunked([f"data: {c}\n\n".encode() for c in [*[json.dumps(c) for c in chunks], "[DONE]"]])
                return
            body = {"id": "c1", "object": "chat.completion", "created": 1, "model": data["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": usage}
            self._send(200, json.dumps(body).encode())
            return
        if self.path.endswith("/v1/messages"):
            self._anthropic(data)
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

    def _chunked(self, pieces: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for msg in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
            self.wfile.flush()
            time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")

    def _anthropic(self, data: dict) -> None:
        """The Messages API: 30 input tokens (25 + 5 read from the cache), 15 output tokens."""
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": data["model"],
                   "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 15}}
        if not data.get("stream"):
            self._send(200, json.dumps(message).encode())
            return
        start = dict(message, content=[], stop_reason=None,
                     usage={"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1})
        events = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Hel"}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "lo"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 15}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._chunked([f"event: {name}\ndata: {json.dumps(body)}\n\n".encode() for name, body in events])

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
