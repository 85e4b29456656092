"""Issue 2 point 5: streams flow as produced, disconnects propagate, resets are not hidden;
point 2: the upstream timeout is per phase, never a cap on a stream that keeps talking."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest

from tests.proxy.conftest import StartProxy
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request
from tests.support.upstream import FakeUpstream
from tests.support.waiting import wait_for


def _read_events(
    resp: httpx.Response, into: list[tuple[float, bytes]] | None = None
) -> list[tuple[float, bytes]]:
    """Each SSE event with the monotonic time its last byte arrived; events land in
    ``into`` as they come, so a caller still has them when the stream then fails."""
    events = [] if into is None else into
    buf = b""
    for chunk in resp.iter_raw():
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            events.append((time.monotonic(), event))
    return events


def _assert_prompt(lags: list[float], what: str) -> None:
    """Events leave the proxy as they arrive: the typical lag is tiny, and even the worst
    one (a busy shared machine can stall any process now and then) is well under the gap."""
    typical = sorted(lags)[len(lags) // 2]
    assert typical < 0.03 and max(lags) < 0.25, f"{what}: events held back, lags {lags}"


def test_sse_events_arrive_spaced_not_batched(client: httpx.Client, upstream: FakeUpstream) -> None:
    with client.stream("GET", "/sse?n=10&gap_ms=100") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        events = _read_events(resp)
    assert [e for _, e in events] == [f"data: event-{i}".encode() for i in range(10)]
    sent = upstream.only().sent_times
    assert len(sent) == 10
    lags = [arrived - sent_at for (arrived, _), sent_at in zip(events, sent, strict=True)]
    _assert_prompt(lags, "GET /sse")
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(events)]
    # batching shows as most gaps near zero; one late event on a busy machine does not
    assert sorted(gaps)[len(gaps) // 2] > 0.06, f"events batched: gaps {gaps}"
    assert events[-1][0] - events[0][0] > 0.6, f"events batched: gaps {gaps}"


def test_stream_that_keeps_talking_outlives_the_upstream_timeout(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, "--upstream-timeout", "1s")
    events: list[tuple[float, bytes]] = []
    try:
        with httpx.stream("GET", f"{proc.url}/sse?n=6&gap_ms=300", trust_env=False) as resp:
            _read_events(resp, events)
    except httpx.HTTPError as exc:
        pytest.fail(f"stream failed after {len(events)} events: {exc!r}\n{proc.output()}")
    assert len(events) == 6, "a stream talking every 300 ms was cut by a 1 s timeout"


def test_silence_between_chunks_longer_than_upstream_timeout_aborts(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, "--upstream-timeout", "400ms")
    got: list[tuple[float, bytes]] = []
    started = time.monotonic()
    with (
        pytest.raises(httpx.HTTPError),
        httpx.stream("GET", f"{proc.url}/sse?n=3&gap_ms=3000", trust_env=False, timeout=10) as resp,
    ):
        _read_events(resp, got)
    assert len(got) == 1, got
    assert time.monotonic() - started < 2.0


def _disconnect_after_first_bytes(
    proxy: ProxyProcess, target: str, upstream: FakeUpstream, wait_for_bytes: bool
) -> float:
    conn = RawConn(proxy.port)
    conn.send(build_request("GET", target, [("Host", "x")]))
    rec = upstream.wait_path(target.split("?")[0])
    if wait_for_bytes:
        assert conn.read_until(b"event-0") is not None
    else:
        time.sleep(0.2)
    left_at = time.monotonic()
    conn.close()
    assert rec.conn.closed.wait(3), "upstream connection still open 3 s after the client left"
    assert rec.conn.closed_at is not None
    return rec.conn.closed_at - left_at


def test_client_disconnect_mid_stream_closes_upstream(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    delay = _disconnect_after_first_bytes(proxy, "/sse?n=200&gap_ms=50", upstream, True)
    assert delay < 1.0, f"upstream side closed {delay:.2f}s after the client left"


def test_client_disconnect_before_response_closes_upstream(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    delay = _disconnect_after_first_bytes(proxy, "/hang", upstream, False)
    assert delay < 1.0, f"upstream side closed {delay:.2f}s after the client left"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_disconnect_mid_upload_closes_upstream(
    framing: str, proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    head = [("Host", "x"), ("Transfer-Encoding", "chunked")]
    first = b"5\r\nhello\r\n"
    if framing == "content-length":
        head, first = [("Host", "x"), ("Content-Length", "100000")], b"hello"
    conn = RawConn(proxy.port)
    conn.send(build_request("POST", "/upload", head, first))
    rec = upstream.wait_path("/upload")
    wait_for(lambda: rec.body == b"hello", 3, "the first bytes at the upstream")
    left_at = time.monotonic()
    conn.close()
    assert rec.conn.closed.wait(3), "upstream still open 3 s after the uploader left"
    assert rec.conn.closed_at is not None
    assert rec.conn.closed_at - left_at < 1.0
    assert not rec.complete


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("cut", ["rst", "fin"])
def test_upstream_cut_mid_body_aborts_client(cut: str, framing: str, proxy: ProxyProcess) -> None:
    chunked, fin = int(framing == "chunked"), int(cut == "fin")
    target = f"/reset-mid-body?n=200000&chunked={chunked}&fin={fin}"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{proxy.url}{target}", trust_env=False, timeout=5)
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", target, [("Host", "x")]))
        resp = conn.read_response(timeout=5)
        assert resp.status == 200
        assert not resp.complete, "a cut upstream body reached the client as a clean end"
        assert 0 < len(resp.body) < 200000
        assert conn.eof, "client connection left open after an aborted body"


def test_next_request_after_upstream_reset_is_served(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    with pytest.raises(httpx.HTTPError):
        client.get("/reset-mid-body")
    assert client.get("/echo").status_code == 200
    assert upstream.requests[-1].conn.id != upstream.requests[0].conn.id


def test_sse_on_the_buffered_routes_arrives_spaced_and_verbatim(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    """The API routes are the ones whose streams matter; whatever the proxy parses or
    watches there, events must still reach the client one by one, bytes unchanged."""
    upstream_server.clear()
    proc = start_proxy(upstream_server.url + "/sse")  # every path lands on the SSE behaviour
    body = json.dumps({"model": "m", "stream": True, "messages": []}).encode()
    for path in ("/v1/messages", "/v1/chat/completions", "/v1/responses"):
        upstream_server.clear()
        with httpx.stream(
            "POST",
            f"{proc.url}{path}?n=5&gap_ms=100",
            content=body,
            headers={"content-type": "application/json"},
            trust_env=False,
        ) as resp:
            assert resp.status_code == 200
            events = _read_events(resp)
        assert [e for _, e in events] == [f"data: event-{i}".encode() for i in range(5)], path
        sent = upstream_server.only().sent_times
        lags = [arrived - sent_at for (arrived, _), sent_at in zip(events, sent, strict=True)]
        _assert_prompt(lags, path)


def test_response_head_is_relayed_before_the_first_body_byte(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    """Status and headers go out once known; clients waiting on headers must not wait for
    the model's first token."""
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", "/sse?n=1&first_ms=1000", [("Host", "x")]))
        rec = upstream.wait_path("/sse")
        head = conn.read_until(b"\r\n\r\n", timeout=3)
        head_after = time.monotonic() - rec.received_at
        assert head is not None and head.startswith(b"HTTP/1.1 200")
        assert head_after < 0.5, f"response head held {head_after:.2f}s until the body began"
        assert conn.read_until(b"event-0", timeout=3) is not None
