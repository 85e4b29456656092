"""Issue 2 point 8: client-edge limits, each with its status or close."""

from __future__ import annotations

import socket
import time

import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.helpers import assert_error_body, assert_request_id
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request, request
from tests.support.upstream import FakeUpstream
from tests.support.waiting import wait_for


def _head_of_size(total: int) -> list[tuple[str, str]]:
    """Headers making the request line + header block about ``total`` bytes."""
    base = build_request("GET", "/echo", [("Host", "x"), ("X-Big", "")])
    return [("Host", "x"), ("X-Big", "a" * (total - len(base)))]


def test_header_block_over_16kib_is_431(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    ok = request(proxy.port, "GET", "/echo", _head_of_size(15 * 1024))
    assert ok.status == 200
    upstream.clear()
    resp = request(proxy.port, "GET", "/echo", _head_of_size(17 * 1024))
    assert_error_body(resp.status, 431, resp.headers, resp.body)
    assert not upstream.requests
    assert_request_id(resp.headers)


def test_request_target_over_16kib_is_431(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    resp = request(proxy.port, "GET", "/echo?q=" + "a" * 17 * 1024, [("Host", "x")])
    assert_error_body(resp.status, 431, resp.headers, resp.body)
    assert not upstream.requests
    assert_request_id(resp.headers)


def test_over_100_header_fields_is_431(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    fields = [("Host", "x")] + [(f"X-F{i}", "v") for i in range(90)]
    assert request(proxy.port, "GET", "/echo", fields).status == 200
    upstream.clear()
    fields = [("Host", "x")] + [(f"X-F{i}", "v") for i in range(101)]
    resp = request(proxy.port, "GET", "/echo", fields)
    assert_error_body(resp.status, 431, resp.headers, resp.body)
    assert not upstream.requests
    assert_request_id(resp.headers)


SMUGGLING = {
    "cl-and-te": (
        [("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "te-and-cl": (
        [("Transfer-Encoding", "chunked"), ("Content-Length", "40")],
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "conflicting-cl": (
        [("Content-Length", "5"), ("Content-Length", "40")],
        b"hello" + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[:35],
    ),
    "bad-chunk-size": (
        [("Transfer-Encoding", "chunked")],
        b"5\r\nhello\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "signed-cl": ([("Content-Length", "+5")], b"hello"),
    "space-before-colon": (
        [("Transfer-Encoding ", "chunked")],
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "chunk-without-crlf": (
        [("Transfer-Encoding", "chunked")],
        b"5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",
    ),
}


@pytest.mark.parametrize("case", list(SMUGGLING))
def test_smuggling_shapes_get_400_and_close(
    case: str, proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    headers, body = SMUGGLING[case]
    with RawConn(proxy.port) as conn:
        conn.send(build_request("POST", "/echo", [("Host", "x"), *headers], body))
        try:
            resp = conn.read_response(timeout=3)
        except ConnectionError:
            resp = None
        assert conn.closed_within(2), "connection kept open after a framing error"
    time.sleep(0.2)
    assert not [r for r in upstream.requests if "smuggled" in r.target]
    assert not [r for r in upstream.requests if r.complete], (
        "a request with broken framing reached the upstream complete"
    )
    assert resp is not None, "closed without the 400"
    assert_error_body(resp.status, 400, resp.headers, resp.body)
    assert_request_id(resp.headers)


def test_bad_chunk_after_forwarding_began_is_400_and_upstream_closed(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    """The head and first chunk are already upstream when the framing breaks: the client
    still gets its 400 (the upstream has not answered) and the half-sent upstream request
    is abandoned at once, not left open until the upstream timeout."""
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request(
                "POST",
                "/echo",
                [("Host", "x"), ("Transfer-Encoding", "chunked")],
                b"5\r\nhello\r\n",
            )
        )
        rec = upstream.wait_path("/echo")
        wait_for(lambda: len(rec.body) >= 5, 3, "the first chunk at the upstream")
        conn.send(b"zz\r\n")
        broke_at = time.monotonic()
        try:
            resp = conn.read_response(timeout=3)
        except ConnectionError:
            resp = None
        assert conn.closed_within(2), "connection kept open after a framing error"
    assert rec.conn.closed.wait(2), "half-sent upstream request left open"
    assert rec.conn.closed_at is not None and rec.conn.closed_at - broke_at < 1.0, (
        f"upstream closed {rec.conn.closed_at - broke_at:.2f}s after the framing error"
    )
    assert not rec.complete
    assert resp is not None, "closed without the 400"
    assert_error_body(resp.status, 400, resp.headers, resp.body)


def test_slowloris_headers_not_complete_in_time_are_closed(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, "--header-timeout", "500ms")
    with RawConn(proc.port) as conn:
        started = time.monotonic()
        conn.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for i in range(40):  # trickle a header line every 100 ms, for at most 4 s
            if not conn.silent_for(0.1):
                closed = True
                break
            try:
                conn.send(f"X-Trickle-{i}: 1\r\n".encode())
            except OSError:
                closed = True
                break
        elapsed = time.monotonic() - started
        assert closed or conn.closed_within(0.1), "trickling client kept for 4 s"
        if conn.buf:  # a 408 before the close is fine; a forwarded request is not
            assert conn.buf.startswith(b"HTTP/1.1 408"), conn.buf[:80]
    assert 0.4 < elapsed < 1.6, elapsed
    assert not upstream_server.requests, "a request with incomplete headers was forwarded"


def test_silent_new_connection_is_closed_after_header_timeout(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, "--header-timeout", "500ms")
    with RawConn(proc.port) as conn:
        started = time.monotonic()
        assert conn.closed_within(2)
        assert 0.4 < time.monotonic() - started < 1.6


def test_idle_keep_alive_connection_expires(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, "--keepalive-timeout", "600ms")
    with RawConn(proc.port) as conn:
        conn.send(build_request("GET", "/echo", [("Host", "x")]))
        assert conn.read_response().status == 200
        time.sleep(0.3)  # within the timeout: still usable
        conn.send(build_request("GET", "/echo", [("Host", "x")]))
        assert conn.read_response().status == 200
        idle_from = time.monotonic()
        assert conn.closed_within(3), "idle keep-alive connection never closed"
        idle = time.monotonic() - idle_from
    assert 0.5 < idle < 1.5, idle


def test_max_connections_pauses_accepting(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, "--max-connections", "2")
    held = [RawConn(proc.port), RawConn(proc.port)]
    try:
        for conn in held:
            conn.send(build_request("GET", "/echo", [("Host", "x")]))
            assert conn.read_response().status == 200
        extra = RawConn(proc.port)  # the kernel completes the handshake; the proxy waits
        extra.send(build_request("GET", "/echo", [("Host", "x")]))
        assert extra.silent_for(0.6), "third connection served above --max-connections 2"
        held[0].close()
        assert extra.read_response(timeout=3).status == 200
        extra.close()
    finally:
        for conn in held:
            conn.close()


def test_request_line_without_host_is_rejected(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=3) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\n\r\n")
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data[:80]
    assert not upstream.requests


def test_timeouts_only_cover_their_own_phase(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    """Header and keep-alive timeouts must not cut a slow body upload, a slow upstream
    answer, or a second request's headers (which get their own header timeout)."""
    upstream_server.clear()
    proc = start_proxy(
        upstream_server.url, "--header-timeout", "500ms", "--keepalive-timeout", "500ms"
    )
    with RawConn(proc.port) as conn:
        conn.send(build_request("POST", "/upload", [("Host", "x"), ("Content-Length", "8000")]))
        for _ in range(8):  # the body takes 1.2 s, past both timeouts
            time.sleep(0.15)
            conn.send(b"b" * 1000)
        assert conn.read_response().json()["length"] == 8000
        conn.send(build_request("GET", "/slow?delay_ms=1200", [("Host", "x")]))
        assert conn.read_response(timeout=5).body == b"slow"
        conn.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")  # then never finish the head
        started = time.monotonic()
        assert conn.closed_within(3), "second request's unfinished head kept open"
        assert time.monotonic() - started < 1.6
