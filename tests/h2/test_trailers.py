"""Issue 11 points 7 and 13: request trailers never kill a connection; an HTTP/1.1
upstream gets none (nginx's rule), an HTTP/2 upstream gets them without framing fields."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from tests.support.h2_upstream import H2Upstream
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn
from tests.support.upstream import FakeUpstream

FLAGS = ("--ccr-backend", "memory", "--upstream-timeout", "10s")
TRAILERS = [(b"x-checksum", b"abc"), (b"content-length", b"99")]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


def _proxy(url: str, home: Path, *flags: str) -> ProxyProcess:
    return ProxyProcess(
        ["--upstream", url, "--listen", "127.0.0.1:0", *FLAGS, *flags], home
    ).start()


def _post_with_trailers_beside_a_download(port: int) -> tuple[int, dict[int, bytes], dict]:
    """Stream 1 downloads 3 MB; stream 3 posts a body that ends in trailers, sent once the
    upstream has the whole Content-Length body and is still answering."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    conn.initiate_connection()
    base = [(b":scheme", b"http"), (b":authority", b"x")]
    bodies: dict[int, bytes] = {1: b"", 3: b""}
    status: dict[int, bytes] = {}
    ended: set[int] = set()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn.send_headers(1, [(b":method", b"GET"), (b":path", b"/bytes?n=3000000"), *base], True)
        post = [
            (b":method", b"POST"),
            (b":path", b"/slow?delay_ms=800"),
            *base,
            (b"content-length", b"5"),
        ]
        conn.send_headers(3, post)
        conn.send_data(3, b"hello")
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.05)
        deadline = time.monotonic() + 10
        trailers_at = time.monotonic() + 0.3  # once the upstream leg is attached
        while len(ended) < 2 and time.monotonic() < deadline:
            if trailers_at and time.monotonic() > trailers_at:
                trailers_at = 0.0
                conn.send_headers(3, TRAILERS, end_stream=True)
                sock.sendall(conn.data_to_send())
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status[event.stream_id] = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended.add(event.stream_id)
            sock.sendall(conn.data_to_send())
    return len(ended), bodies, status


def test_h2_request_trailers_to_an_h1_upstream_are_dropped_and_nothing_dies(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    proxy = _proxy(upstream.url, tmp_path)
    try:
        ended, bodies, status = _post_with_trailers_beside_a_download(proxy.port)
        assert ended == 2 and status == {1: b"200", 3: b"200"}, status
        assert len(bodies[1]) == 3_000_000  # the parallel download was not cut
        posted = [r for r in upstream.requests if r.method == "POST"]
        assert posted[-1].body == b"hello" and posted[-1].trailers == []
        assert posted[-1].path == "/slow"
        assert "Fatal error" not in proxy.output()
    finally:
        proxy.kill()


def test_h2_request_trailers_reach_an_h2_upstream_without_framing_fields(tmp_path: Path) -> None:
    upstream = H2Upstream().start()
    proxy = _proxy(upstream.url, tmp_path, "--upstream-http2", "prior-knowledge")
    try:
        ended, _, status = _post_with_trailers_beside_a_download(proxy.port)
        assert ended == 2 and status[3] == b"200", status
        assert upstream.trailers[b"/slow?delay_ms=800"] == [(b"x-checksum", b"abc")]
    finally:
        proxy.kill()
        upstream.stop()


def test_h1_chunked_request_trailers_are_not_forwarded(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    proxy = _proxy(upstream.url, tmp_path)
    try:
        with RawConn(proxy.port) as conn:
            conn.send(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                b"X-Checksum: abc\r\n\r\n"
            )
            assert conn.read_response().status == 200
        assert upstream.requests[-1].body == b"hello"
        assert upstream.requests[-1].trailers == []
    finally:
        proxy.kill()
