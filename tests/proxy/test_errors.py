"""Issue 2 points 3 and 7: upstream failures become 502/504 JSON errors, never early
statuses; HTTPS upstreams verify certificates and send SNI."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.proxy.conftest import StartProxy
from tests.proxy.helpers import assert_proxy_error
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request, request
from tests.support.upstream import BlackHole, FakeUpstream, free_port
from tests.support.waiting import wait_for


def _get(proc: ProxyProcess, path: str = "/echo") -> httpx.Response:
    return httpx.get(f"{proc.url}{path}", trust_env=False, timeout=15)


def _assert_logged(proc: ProxyProcess, resp: httpx.Response) -> None:
    line = proc.request_log(resp.headers["x-request-id"])
    assert line["status"] == resp.status_code


def test_connect_refused_is_502(start_proxy: StartProxy) -> None:
    proc = start_proxy(f"http://127.0.0.1:{free_port()}")
    resp = _get(proc)
    assert_proxy_error(resp.status_code, 502, resp.headers.multi_items(), resp.content)
    _assert_logged(proc, resp)


def test_tls_handshake_with_plain_http_server_is_502(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(f"https://127.0.0.1:{upstream_server.port}")
    resp = _get(proc)
    assert_proxy_error(resp.status_code, 502, resp.headers.multi_items(), resp.content)


def test_connect_timeout_is_504(start_proxy: StartProxy) -> None:
    hole = BlackHole()
    try:
        proc = start_proxy(hole.url, "--upstream-connect-timeout", "300ms")
        started = time.monotonic()
        resp = _get(proc)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert_proxy_error(resp.status_code, 504, resp.headers.multi_items(), resp.content)
    assert 0.25 < elapsed < 2.0, elapsed
    _assert_logged(proc, resp)


def test_no_response_headers_in_time_is_504(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, "--upstream-timeout", "500ms")
    started = time.monotonic()
    resp = _get(proc, "/hang")
    elapsed = time.monotonic() - started
    assert_proxy_error(resp.status_code, 504, resp.headers.multi_items(), resp.content)
    assert 0.45 < elapsed < 2.0, elapsed
    conn = upstream_server.only().conn
    assert conn.closed.wait(1), "timed-out upstream connection left open"


def test_no_status_before_the_upstream_answers(proxy: ProxyProcess) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", "/slow?delay_ms=600", [("Host", "x")]))
        assert conn.silent_for(0.45), f"proxy sent {conn.buf[:100]!r} before the upstream"
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"slow")


# ---------------------------------------------------------------- HTTPS upstream


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstream, Path]]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = FakeUpstream(tls=ctx).start()
    yield server, ca_file
    server.stop()


def test_https_upstream_with_private_ca_and_sni(
    start_proxy: StartProxy, tls_upstream: tuple[FakeUpstream, Path]
) -> None:
    server, ca_file = tls_upstream
    server.clear()
    proc = start_proxy(f"https://localhost:{server.port}", "--upstream-ca", str(ca_file))
    resp = httpx.post(f"{proc.url}/echo", content=b"over tls", trust_env=False)
    assert (resp.status_code, resp.content) == (200, b"over tls")
    assert server.sni_names and set(server.sni_names) == {"localhost"}
    assert server.only().header("host") == f"localhost:{server.port}"


def test_https_upstream_untrusted_certificate_is_502(
    start_proxy: StartProxy, tls_upstream: tuple[FakeUpstream, Path]
) -> None:
    server, _ = tls_upstream
    server.clear()
    proc = start_proxy(f"https://localhost:{server.port}")
    resp = _get(proc)
    assert_proxy_error(resp.status_code, 502, resp.headers.multi_items(), resp.content)
    assert not server.requests, "a request went to an upstream whose certificate failed"


def test_https_upstream_by_ip_reuses_its_connection(
    start_proxy: StartProxy, tls_upstream: tuple[FakeUpstream, Path]
) -> None:
    """An IP-literal upstream is verified against the certificate's IP entry (no SNI may
    be sent for an IP), and kept-alive TLS connections are pooled like plain ones."""
    server, ca_file = tls_upstream
    server.clear()
    proc = start_proxy(f"https://127.0.0.1:{server.port}", "--upstream-ca", str(ca_file))
    with httpx.Client(base_url=proc.url, trust_env=False) as http:
        for i in range(3):
            resp = http.post("/echo", content=f"tls-{i}".encode())
            assert (resp.status_code, resp.content) == (200, f"tls-{i}".encode())
    assert server.sni_names == [None]
    assert len(server.connections) == 1, "TLS upstream connection not reused"


def test_websocket_upgrade_with_a_body_is_400_and_leaves_no_upstream_socket(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    """Issue 11 point 6: an Upgrade request with a body used to answer 500 and leave its
    upstream socket open (200 of them: 200 sockets ESTABLISHED)."""
    ws = [
        ("Host", "x"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    for framing, body in (
        (("Content-Length", "1"), b"x"),
        (("Transfer-Encoding", "chunked"), b"1\r\nx\r\n0\r\n\r\n"),
    ):
        for _ in range(20):
            resp = request(proxy.port, "GET", "/ws", [*ws, framing], body)
            assert_proxy_error(resp.status, 400, resp.headers, resp.body)
    wait_for(
        lambda: all(c.closed_at is not None for c in upstream.connections),
        3,
        "every upstream socket closed",
    )
    assert not upstream.requests


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        (b"GET /echo HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"PRI * HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ],
    ids=["connect", "http2-text", "pri-text"],
)
def test_requests_a_reverse_proxy_does_not_serve(
    proxy: ProxyProcess, upstream: FakeUpstream, wire: bytes, status: int
) -> None:
    """Issue 11 points 14 and 17: CONNECT is 405 (it used to be forwarded and then hang
    until --upstream-timeout); an HTTP/2.0 request line is not HTTP/1.1 (505)."""
    with RawConn(proxy.port) as conn:
        conn.send(wire)
        resp = conn.read_response(timeout=3)
        assert_proxy_error(resp.status, status, resp.headers, resp.body)
        assert conn.closed_within(2)
    assert not upstream.requests
