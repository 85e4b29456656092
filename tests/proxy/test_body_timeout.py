"""Issue 11 points 2, 3 and 17: a body that stops arriving is answered 408 and closed on
every route and both protocols; the bytes all bodies hold together are bounded, and a body
that cannot start within the body timeout gets 503 with Retry-After."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from tests.proxy.conftest import StartProxy, module_proxy
from tests.proxy.helpers import assert_proxy_error
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request
from tests.support.upstream import FakeUpstream
from tests.support.waiting import wait_for

JSON = ("Content-Type", "application/json")


@pytest.fixture(scope="module")
def timed_proxy(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    yield from module_proxy(upstream_server, tmp_path_factory, "--body-timeout", "1s")


@pytest.fixture
def timed(timed_proxy: ProxyProcess, upstream_server: FakeUpstream) -> ProxyProcess:
    assert timed_proxy.running, timed_proxy.output()
    upstream_server.clear()
    return timed_proxy


STALLED = {
    "buffered": ("POST", "/v1/messages", [JSON, ("Content-Length", "1000")]),
    "passthrough": ("POST", "/echo", [("Content-Length", "1000")]),
    "local-healthz": ("POST", "/healthz", [("Content-Length", "1000")]),
    "local-retrieve": ("POST", "/v1/retrieve", [JSON, ("Content-Length", "1000")]),
    "chunked-no-chunk": ("POST", "/v1/messages", [JSON, ("Transfer-Encoding", "chunked")]),
}


@pytest.mark.parametrize("case", list(STALLED), ids=list(STALLED))
def test_a_body_that_stops_gets_408_and_close(timed: ProxyProcess, case: str) -> None:
    method, path, headers = STALLED[case]
    body = b"" if case == "chunked-no-chunk" else b'{"a":'
    with RawConn(timed.port, timeout=8) as conn:
        started = time.monotonic()
        conn.send(build_request(method, path, [("Host", "x"), *headers], body))
        resp = conn.read_response(timeout=6)
        waited = time.monotonic() - started
        error = assert_proxy_error(resp.status, 408, resp.headers, resp.body)
        assert error["type"] == "request_timeout"
        assert 0.9 <= waited < 4, waited
        assert resp.header("connection") == "close"
        assert conn.closed_within(3)


def test_a_slow_trickle_that_keeps_sending_is_not_cut(
    timed: ProxyProcess, upstream: FakeUpstream
) -> None:
    body = json.dumps({"model": "m", "pad": "x" * 40}).encode()
    with RawConn(timed.port, timeout=8) as conn:
        head = [("Host", "x"), JSON, ("Content-Length", str(len(body)))]
        conn.send(build_request("POST", "/v1/messages", head))
        pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
        for piece in pieces:  # ~0.4 s apart: more than 1 s in all, never 1 s of silence
            time.sleep(0.4)
            conn.send(piece)
        resp = conn.read_response(timeout=5)
    assert resp.status == 200, resp.body[:200]
    assert len(pieces) * 0.4 > 2
    assert upstream.requests[-1].body == body


def test_h2_stream_that_stops_gets_408(timed: ProxyProcess) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", timed.port), timeout=6) as sock:
        sock.sendall(conn.data_to_send())
        headers = [
            (b":method", b"POST"),
            (b":path", b"/v1/messages"),
            (b":scheme", b"http"),
            (b":authority", b"x"),
            (b"content-type", b"application/json"),
            (b"content-length", b"1000"),
        ]
        conn.send_headers(1, headers)
        conn.send_data(1, b'{"a":')
        sock.sendall(conn.data_to_send())
        started = time.monotonic()
        status, body, ended = None, b"", False
        while not ended and time.monotonic() - started < 5:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())
    assert status == b"408", (status, body)
    assert json.loads(body)["error"]["type"] == "request_timeout"
    assert 0.9 <= time.monotonic() - started < 4


def test_local_route_body_over_1mib_is_413(proxy: ProxyProcess) -> None:
    body = b"x" * ((1 << 20) + 10)
    with RawConn(proxy.port, timeout=8) as conn:
        head = [("Host", "x"), ("Content-Length", str(len(body)))]
        conn.send(build_request("POST", "/healthz", head))
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body went
        resp = conn.read_response(timeout=5)
    error = assert_proxy_error(resp.status, 413, resp.headers, resp.body)
    assert error["type"] == "request_too_large"


# ---------------------------------------------------------------- the buffer budget


def _stats(port: int) -> dict:
    with RawConn(port) as conn:
        conn.send(build_request("GET", "/stats", [("Host", "x")]))
        return json.loads(conn.read_response().body)


def _post_head(path: str, size: int) -> bytes:
    return build_request("POST", path, [("Host", "x"), JSON, ("Content-Length", str(size))])


def _hold_budget(proxy: ProxyProcess, conn: RawConn, path: str, body: bytes) -> None:
    """Send a whole body to a slow upstream path and wait until the proxy counts it."""
    conn.send(_post_head(path, len(body)) + body)
    wait_for(
        lambda: _stats(proxy.port)["connections"]["buffered_request_bytes"] >= len(body),
        5,
        "the held body counted in /stats",
    )


def test_bodies_wait_for_room_then_go_and_a_full_budget_is_503(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    flags = ("--max-body-bytes", "1MB", "--max-buffered-bytes", "1MB", "--body-timeout", "2s")
    proxy = start_proxy(upstream_server.url + "/slow", *flags)
    shell = len(json.dumps({"model": "m", "pad": ""}))
    big = json.dumps({"model": "m", "pad": "x" * (1_000_000 - shell)}).encode()
    assert len(big) == 1_000_000  # exactly the cap: the budget is full
    second = json.dumps({"model": "m", "pad": "y" * 50_000}).encode()
    with RawConn(proxy.port, timeout=10) as a, RawConn(proxy.port, timeout=10) as b:
        # A's whole body is held while the slow upstream answers: the budget is full.
        _hold_budget(proxy, a, "/v1/messages?delay_ms=1500", big)
        started = time.monotonic()
        # B's first bytes take it past the cap: it is paused until A gives its bytes back,
        # which is within B's body timeout, so B then goes through whole.
        b.send(_post_head("/v1/messages?delay_ms=10", len(second)) + second[:100])
        time.sleep(0.2)
        b.send(second[100:])
        assert a.read_response(timeout=5).status == 200
        a_done = time.monotonic() - started
        resp = b.read_response(timeout=6)
        b_done = time.monotonic() - started
        assert resp.status == 200, resp.body[:200]
        assert upstream_server.requests[-1].body == second
        # Unheld, B (10 ms upstream) would be answered long before A (1.5 s).
        assert b_done > a_done > 1.0
    # C arrives while the budget stays full longer than the body timeout: 503, Retry-After.
    with RawConn(proxy.port, timeout=10) as a, RawConn(proxy.port, timeout=10) as c:
        _hold_budget(proxy, a, "/v1/messages?delay_ms=4000", big)
        started = time.monotonic()
        c.send(_post_head("/v1/messages", len(second)) + second[:100])
        resp = c.read_response(timeout=6)
        error = assert_proxy_error(resp.status, 503, resp.headers, resp.body)
        assert error["type"] == "buffers_full"
        assert resp.header("retry-after") == "1"
        assert 1.8 <= time.monotonic() - started < 4
        assert a.read_response(timeout=6).status == 200
    stats = _stats(proxy.port)
    assert stats["requests"]["errors"]["buffers_full"] == 1
    assert stats["connections"]["buffered_request_bytes"] == 0
