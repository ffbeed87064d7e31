"""Hostile HTTP against a running `aasm proxy`: smuggling shapes, oversized and slow requests,
forbidden CONNECTs, and a mutation fuzzer over a corpus of raw requests (corpus/).

Behind the proxy is a recording HTTP/1.1 server (Python's own parser, as a back end would be):
a shape is smuggled if that server ever sees a request the proxy did not decide on."""

from __future__ import annotations

import http.server
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from conftest import HERE, Gateway, Proxy, Upstream

CORPUS = HERE / "corpus"


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        Recorder.seen.append(f"{self.command} {self.path} {len(body)}")
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway, upstream: Upstream) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("proxy"), gateway, upstream, "--default-agent", "hostile",
              "--max-header-bytes", "16384", "--header-timeout", "2", "--max-body-bytes", "1000",
              "--body-timeout", "2", "--upstream-timeout", "5")
    yield p
    p.stop()


def exchange(proxy: Proxy, raw: bytes, idle: float = 1.0) -> bytes:
    """Sends `raw` on one connection and returns everything the proxy answers until it closes the
    connection or stays quiet for `idle` seconds. (No half-close: hyper drops a connection whose
    client stopped sending before it answered.)"""
    out = b""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=idle) as s:
        try:
            s.sendall(raw)
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    return out


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def statuses(answer: bytes) -> list[int]:
    return [int(answer[i + 9:i + 12]) for i in range(len(answer)) if answer.startswith(b"HTTP/1.1 ", i)]


def fill(template: bytes, backend: int) -> bytes:
    return template.replace(b"{BACKEND}", str(backend).encode())


SMUGGLE = b"GET http://127.0.0.1:{BACKEND}/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

# (name, raw request): each must be refused with a 400, and the backend must never see it nor
# /smuggled. Both lengths and bare LF, which hyper (the proxy's
# HTTP/1 server) would normalise, are refused ahead of it by the framing check
# (aa_inspect::framing, third_party/hudsucker/src/strict.rs).
SHAPES = [
    ("cl-then-te", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE),
    ("te-then-cl", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLE),
    ("two-lengths", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
     b"Content-Length: 60\r\n\r\n" + SMUGGLE),
    ("length-list", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0, 60\r\n\r\n"
     + SMUGGLE),
    ("length-plus", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +0\r\n\r\n"
     + SMUGGLE),
    ("length-hex", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0x0\r\n\r\n"
     + SMUGGLE),
    ("te-not-last", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLE),
    ("te-unknown", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: xchunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLE),
    ("te-http10", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.0\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLE),
    ("space-before-colon", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length : 0\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE),
    ("obs-fold", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n c\r\n"
     b"Content-Length: 0\r\n\r\n" + SMUGGLE),
    ("bare-lf", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 0\nConnection: close\n\n"),
    ("bare-lf-one-line", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\nContent-Length: 0\r\n\r\n"
     + SMUGGLE),
    ("bare-cr", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\rContent-Length: 0\r\n\r\n"
     + SMUGGLE),
    ("chunk-line-bare-lf", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1\nx\r\n0\r\n\r\n" + SMUGGLE),
    ("chunk-size-overflow", b"POST http://127.0.0.1:{BACKEND}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"ffffffffffffffffff1\r\nx\r\n0\r\n\r\n" + SMUGGLE),
]


@pytest.mark.parametrize("name,raw", SHAPES, ids=[s[0] for s in SHAPES])
def test_smuggling_shapes_are_refused_and_never_forwarded(proxy: Proxy, backend: int, name: str, raw: bytes) -> None:
    Recorder.seen.clear()
    answer = exchange(proxy, fill(raw, backend))
    got = statuses(answer)
    assert got and got[0] == 400, (name, answer[:300])
    assert len(got) == 1, f"{name}: the proxy answered a second, smuggled request: {got}"
    time.sleep(0.2)
    assert not any("/smuggled" in s for s in Recorder.seen), (name, Recorder.seen)
    assert not Recorder.seen, f"{name}: forwarded {Recorder.seen}"
    assert proxy.proc.poll() is None


def test_a_well_formed_pipeline_is_still_served(proxy: Proxy, backend: int) -> None:
    """The control: two honest pipelined requests, both decided and forwarded."""
    Recorder.seen.clear()
    one = b"POST http://127.0.0.1:{BACKEND}/one HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc"
    two = b"GET http://127.0.0.1:{BACKEND}/two HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert statuses(exchange(proxy, fill(one + two, backend))) == [200, 200]
    assert Recorder.seen == ["POST /one 3", "GET /two 0"]


def test_oversized_headers_and_bodies_are_refused(proxy: Proxy, backend: int) -> None:
    Recorder.seen.clear()
    big_head = fill(b"GET http://127.0.0.1:{BACKEND}/h HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ", backend) \
        + b"a" * 20_000 + b"\r\n\r\n"
    # 431, or a reset: the proxy answers and closes while the rest of the head is still in flight.
    head_answer = exchange(proxy, big_head)
    assert head_answer == b"" or status_of(head_answer) == 431, head_answer[:200]
    declared = fill(b"POST http://127.0.0.1:{BACKEND}/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n",
                    backend) + b"x" * 5000
    assert status_of(exchange(proxy, declared)) == 413
    chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
    chunked = fill(b"POST http://127.0.0.1:{BACKEND}/c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   backend) + chunk + chunk + b"0\r\n\r\n"
    assert status_of(exchange(proxy, chunked)) == 413
    time.sleep(0.2)
    # The chunked one may have started towards the backend, but never arrived whole.
    assert not [s for s in Recorder.seen if not s.startswith("POST /c ")], Recorder.seen
    assert not any(s == "POST /c 1200" for s in Recorder.seen)


def test_slow_clients_are_cut_off(proxy: Proxy, backend: int) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(fill(b"GET http://127.0.0.1:{BACKEND}/slow HTTP/1.1\r\nHost: 127.0", backend))
        answer = s.recv(4096)  # the proxy gives up on the head: closed (or 408)
    assert answer == b"" or status_of(answer) == 408
    assert time.monotonic() - started < 6
    Recorder.seen.clear()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(fill(b"POST http://127.0.0.1:{BACKEND}/slowbody HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Length: 100\r\n\r\n0123456789", backend))
        answer = s.recv(4096)
    assert status_of(answer) == 408, answer
    assert time.monotonic() - started < 8
    assert "POST /slowbody 100" not in Recorder.seen


def test_connect_to_a_forbidden_port_is_refused(proxy: Proxy, gateway: Gateway) -> None:
    answer = exchange(proxy, b"CONNECT localhost:22 HTTP/1.1\r\nHost: localhost:22\r\n\r\n")
    assert status_of(answer) == 403, answer
    assert b"no-ssh-egress" in answer


# Plain HTTP inside a CONNECT tunnel, in shapes that once went through as uninspected bytes
# (only a first read of exactly "GET " was served as HTTP): every one must be decided as an
# http_request — here a path the policy forbids (no-ws-admin), so a 403 and nothing forwarded.
TUNNELLED = [
    ("post", [b"POST /ws/admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc"]),
    ("put", [b"PUT /ws/admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"]),
    ("delete", [b"DELETE /ws/admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]),
    ("leading-crlf", [b"\r\nPOST /ws/admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"]),
    ("one-byte-first", [b"P", b"OST /ws/admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"]),
    ("get-then-post", [b"GET /fine HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       b"POST /ws/admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"]),
]


@pytest.mark.parametrize("name,parts", TUNNELLED, ids=[t[0] for t in TUNNELLED])
def test_plain_http_inside_connect_is_decided_per_request(proxy: Proxy, backend: int, name: str,
                                                          parts: list[bytes]) -> None:
    Recorder.seen.clear()
    out = b""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (backend, backend))
        out += s.recv(4096)
        assert status_of(out) == 200, out
        for part in parts:
            s.sendall(part)
            time.sleep(0.2)
        try:
            while (chunk := s.recv(65536)) and b"no-ws-admin" not in out + chunk:
                out += chunk
            out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    time.sleep(0.2)
    assert not any("/ws/admin" in r for r in Recorder.seen), f"{name}: forwarded undecided: {Recorder.seen}"
    assert 403 in statuses(out) and b"no-ws-admin" in out, (name, out[-400:])
    assert proxy.proc.poll() is None


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[i:i] = rng.choice([b"\r\n", b"\n", b" ", b":", b"\x00", b"0", b"chunked", b"Content-Length: 9\r\n",
                                 b"Transfer-Encoding: chunked\r\n", b"\r\n\r\n", b"GET /smuggled HTTP/1.1\r\n"])
        elif op == 2 and b:
            del b[i:i + rng.randint(1, 8)]
        elif op == 3:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[j:j + rng.randint(1, 32)]
        else:
            b[i:i] = b"9" * rng.randint(1, 30)
    return bytes(b)


def test_fuzz_raw_requests_never_smuggle(proxy: Proxy, backend: int) -> None:
    """Mutations of the corpus: the proxy stays up, and the backend never receives more requests
    than the proxy decided (nothing reaches it undecided, whatever the framing)."""
    seeds = [fill(p.read_bytes(), backend) for p in sorted(CORPUS.glob("*.http"))]
    assert len(seeds) >= 8
    rng = random.Random(int.from_bytes(b"aa-fuzz", "big"))
    Recorder.seen.clear()
    before = proxy.status()["stats"]["requests"]
    for _ in range(250):
        exchange(proxy, mutate(rng, rng.choice(seeds)), idle=0.25)
    time.sleep(0.3)
    decided = proxy.status()["stats"]["requests"] - before
    assert len(Recorder.seen) <= decided, (len(Recorder.seen), decided)
    assert decided > 0 and Recorder.seen, "the fuzzer never produced a valid request: a test that cannot fail"
    assert proxy.proc.poll() is None
    assert status_of(exchange(proxy, fill(b"GET http://127.0.0.1:{BACKEND}/alive HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          b"Connection: close\r\n\r\n", backend))) == 200
