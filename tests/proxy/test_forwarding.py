"""Issue 2 points 3 and 4: what the upstream receives and what the client gets back."""

from __future__ import annotations

import gzip
import subprocess
import threading
import time

import httpx
import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.helpers import is_visible_ascii, names_in_order
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request, request
from tests.support.upstream import FakeUpstream, pattern

# ---------------------------------------------------------------- methods and bodies


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"])
def test_every_method_forwards_its_body(
    method: str, client: httpx.Client, upstream: FakeUpstream
) -> None:
    body = f"payload-{method}".encode()
    resp = client.request(method, "/echo", content=body)
    assert resp.status_code == 200
    assert resp.content == body
    assert resp.headers["x-method"] == method
    rec = upstream.only()
    assert (rec.method, bytes(rec.body), rec.complete) == (method, body, True)


def test_get_with_body_on_raw_socket(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    resp = request(proxy.port, "GET", "/echo", [("Host", "x"), ("Content-Length", "5")], b"hello")
    assert (resp.status, resp.body) == (200, b"hello")
    rec = upstream.only()
    assert (rec.method, bytes(rec.body), rec.framing) == ("GET", b"hello", "content-length")


def test_head_has_no_body_and_keeps_the_connection_usable(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(build_request("HEAD", "/bytes?n=1000&cl=1", [("Host", "x")]))
        head = conn.read_response("HEAD")
        assert head.status == 200
        assert head.header("content-length") == "1000"
        conn.send(build_request("GET", "/echo", [("Host", "x"), ("Content-Length", "2")], b"ok"))
        after = conn.read_response()
        assert (after.status, after.body) == (200, b"ok"), "HEAD left bytes on the connection"
    assert upstream.requests[0].method == "HEAD"


@pytest.mark.parametrize("target", ["/nobody/204", "/304"])
def test_204_and_304_carry_no_body(target: str, proxy: ProxyProcess) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", target, [("Host", "x")]))
        first = conn.read_response()
        assert first.status in (204, 304)
        assert first.header("transfer-encoding") is None
        assert first.header("content-length") in (None, "0")
        conn.send(build_request("GET", "/echo", [("Host", "x"), ("Content-Length", "3")], b"abc"))
        after = conn.read_response()
        assert (after.status, after.body) == (200, b"abc")


def test_redirect_is_passed_through_not_followed(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    target = f"{upstream.url}/somewhere?x=1"
    resp = client.get("/redirect", params={"to": target})
    assert resp.status_code == 302
    assert resp.headers["location"] == target
    assert resp.content == b"moved"
    assert [r.path for r in upstream.requests] == ["/redirect"]


@pytest.mark.parametrize("code", [400, 404, 418, 500, 502, 503])
def test_upstream_status_and_body_pass_through(code: int, client: httpx.Client) -> None:
    resp = client.get(f"/status/{code}")
    assert (resp.status_code, resp.content) == (code, f"status-{code}".encode())


def test_close_delimited_response_is_a_clean_complete_body(proxy: ProxyProcess) -> None:
    resp = request(proxy.port, "GET", "/close-delimited?n=100000", [("Host", "x")])
    assert resp.status == 200
    assert resp.complete, "an upstream body ended by FIN (no length) was cut for the client"
    assert resp.body == pattern(100000)


def test_encoded_body_is_relayed_compressed(proxy: ProxyProcess) -> None:
    resp = request(
        proxy.port, "GET", "/encoded?n=50000", [("Host", "x"), ("Accept-Encoding", "gzip")]
    )
    assert resp.header("content-encoding") == "gzip"
    assert resp.body == gzip.compress(pattern(50000), mtime=0)


# ---------------------------------------------------------------- URL join


def test_query_is_forwarded_verbatim(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    target = "/v1/x/echo?b=2&a=1&a=%20z&empty=&flag&plus=a+b&slash=%2F&odd=%7e"
    resp = request(proxy.port, "GET", target, [("Host", "x")])
    assert resp.status == 200
    assert upstream.only().target == target


def test_base_path_is_prepended(start_proxy: StartProxy, upstream_server: FakeUpstream) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url + "/base/")
    resp = request(
        proc.port, "POST", "/v1/echo?q=%2F1", [("Host", "x"), ("Content-Length", "1")], b"z"
    )
    assert resp.status == 200
    assert upstream_server.only().target == "/base/v1/echo?q=%2F1"


# ---------------------------------------------------------------- request headers


def test_hop_by_hop_and_connection_named_request_headers_are_dropped(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    headers = [
        ("Host", "x"),
        ("Connection", "keep-alive, X-Drop-Me"),
        ("Keep-Alive", "300"),
        ("X-Drop-Me", "secret"),
        ("TE", "trailers"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("X-Keep", "yes"),
        ("Content-Length", "2"),
    ]
    assert request(proxy.port, "POST", "/echo", headers, b"hi").status == 200
    rec = upstream.only()
    names = set(rec.names())
    for dropped in ("x-drop-me", "keep-alive", "te", "proxy-authorization"):
        assert dropped not in names, (dropped, rec.headers)
    assert all("x-drop-me" not in v.lower() for v in rec.header_all("connection"))
    assert rec.header("x-keep") == "yes"
    assert bytes(rec.body) == b"hi"


def test_x_headroom_headers_are_not_forwarded_in_any_case(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    resp = client.post(
        "/v1/messages",
        content=b"{}",
        headers=[
            ("X-Headroom-Foo", "1"),
            ("x-Headroom-Bar", "2"),
            ("X-HEADROOM-BAZ", "3"),
            ("x-headroom-bypass", "true"),
            ("x-headroomless", "kept"),
            ("authorization", "Bearer k"),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
    )
    assert resp.status_code == 200
    rec = upstream.only()
    assert not [k for k in rec.names() if k.startswith("x-headroom-")], rec.headers
    assert rec.header("x-headroomless") == "kept"  # the prefix includes the dash
    assert rec.header("authorization") == "Bearer k"
    assert rec.header("anthropic-version") == "2023-06-01"


def test_x_forwarded_headers(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    request(proxy.port, "GET", "/echo", [("Host", "client.example:1234")])
    first = upstream.only()
    assert first.header_all("x-forwarded-for") == ["127.0.0.1"]
    assert first.header("x-forwarded-proto") == "http"
    assert first.header("x-forwarded-host") == "client.example:1234"
    upstream.clear()
    request(
        proxy.port,
        "GET",
        "/echo",
        [("Host", "c"), ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https")],
    )
    second = upstream.only()
    xff = ", ".join(second.header_all("x-forwarded-for"))
    assert xff.startswith("1.2.3.4") and xff.endswith("127.0.0.1"), xff
    assert second.header_all("x-forwarded-proto") == ["http"]


def test_x_forwarded_for_keeps_every_earlier_hop(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    request(
        proxy.port,
        "GET",
        "/echo",
        [("Host", "x"), ("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-For", "3.3.3.3")],
    )
    hops = [h.strip() for v in upstream.only().header_all("x-forwarded-for") for h in v.split(",")]
    assert hops == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "127.0.0.1"]


def test_x_forwarded_for_ipv6_client(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, listen=("[::1]:0",))
    with RawConn(proc.port, host="::1") as conn:
        conn.send(build_request("GET", "/echo", [("Host", "x")]))
        assert conn.read_response().status == 200
    assert upstream_server.only().header_all("x-forwarded-for") == ["::1"]


def test_host_is_rewritten_to_the_upstream(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    request(proxy.port, "GET", "/echo", [("Host", "client.example")])
    assert upstream.only().header_all("host") == [f"127.0.0.1:{upstream.port}"]


def test_no_rewrite_host_keeps_the_clients(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, "--no-rewrite-host")
    request(proc.port, "GET", "/echo", [("Host", "client.example:1234")])
    assert upstream_server.only().header_all("host") == ["client.example:1234"]


def test_request_header_order_and_repeats_are_preserved(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    sent = [
        ("Host", "x"),
        ("X-A", "1"),
        ("X-Multi", "first"),
        ("Accept", "*/*"),
        ("X-Multi", "second"),
        ("X-B", "2"),
        ("Cookie", "a=1"),
        ("X-Multi", "third"),
        ("Cookie", "b=2"),
        ("X-C", "3"),
    ]
    assert request(proxy.port, "GET", "/echo", sent).status == 200
    keep = {"x-a", "x-multi", "accept", "x-b", "cookie", "x-c"}
    assert names_in_order(upstream.only().headers, keep) == names_in_order(sent, keep)


def test_request_id_kept_when_valid(client: httpx.Client, upstream: FakeUpstream) -> None:
    resp = client.get("/echo", headers={"x-request-id": "client-id_123.abc"})
    assert resp.headers.get_list("x-request-id") == ["client-id_123.abc"]
    assert upstream.only().header_all("x-request-id") == ["client-id_123.abc"]


def test_request_id_generated_when_missing_or_invalid(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    ids = []
    for extra in ([], [("X-Request-Id", "bad\xffid")]):
        upstream.clear()
        resp = request(proxy.port, "GET", "/echo", [("Host", "x"), *extra])
        rid = resp.header_all("x-request-id")
        assert len(rid) == 1 and is_visible_ascii(rid[0]), resp.headers
        assert upstream.only().header_all("x-request-id") == rid
        ids.append(rid[0])
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("rid=req_anthropic_1", "req_anthropic_1"), ("xrid=req_openai_2", "req_openai_2")],
)
def test_upstream_request_id_returned(query: str, expected: str, client: httpx.Client) -> None:
    resp = client.post(f"/headers?{query}", content=b"{}", headers={"x-request-id": "mine-1"})
    assert resp.headers.get_list("headroom-upstream-request-id") == [expected]
    assert resp.headers.get_list("x-request-id") == ["mine-1"]
    if query.startswith("rid="):
        assert resp.headers["request-id"] == expected  # the raw header stays


# ---------------------------------------------------------------- response headers


def test_response_hop_by_hop_dropped_and_order_kept(client: httpx.Client) -> None:
    resp = client.get("/headers")
    assert resp.status_code == 200
    got = resp.headers.multi_items()
    names = {k for k, _ in got}
    for dropped in ("keep-alive", "x-hop-resp", "proxy-authenticate"):
        assert dropped not in names, got
    assert all("x-hop-resp" not in v.lower() for v in resp.headers.get_list("connection"))
    keep = {"x-multi", "x-other", "set-cookie", "content-type"}
    assert names_in_order(got, keep) == [
        ("content-type", "text/plain"),
        ("x-multi", "a"),
        ("x-other", "1"),
        ("set-cookie", "a=1"),
        ("x-multi", "b"),
        ("set-cookie", "b=2"),
        ("x-multi", "c"),
    ]


# ---------------------------------------------------------------- framing


def test_request_content_length_kept_chunked_stays_chunked(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    request(proxy.port, "POST", "/echo", [("Host", "x"), ("Content-Length", "11")], b"hello world")
    known = upstream.only()
    assert (known.framing, known.header("content-length")) == ("content-length", "11")
    upstream.clear()
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    resp = request(
        proxy.port, "POST", "/echo", [("Host", "x"), ("Transfer-Encoding", "chunked")], body
    )
    assert (resp.status, resp.body) == (200, b"hello world")
    unknown = upstream.only()
    assert (unknown.framing, bytes(unknown.body)) == ("chunked", b"hello world")


def test_response_content_length_kept_chunked_stays_chunked(proxy: ProxyProcess) -> None:
    known = request(proxy.port, "GET", "/bytes?n=100000&cl=1", [("Host", "x")])
    assert known.header("content-length") == "100000"
    assert known.header("transfer-encoding") is None
    assert known.body == pattern(100000)
    unknown = request(proxy.port, "GET", "/bytes?n=100000", [("Host", "x")])
    assert unknown.header("transfer-encoding") == "chunked"
    assert unknown.header("content-length") is None
    assert unknown.body == pattern(100000) and unknown.complete


def test_expect_100_continue_never_stalls(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    """The fake upstream never sends 100 itself, like many servers."""
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request(
                "POST",
                "/upload",
                [("Host", "x"), ("Content-Length", "5"), ("Expect", "100-continue")],
            )
        )
        first = conn.read_response(timeout=1.5, informational=True)
        assert first.status == 100, f"got {first.status} before the body was sent"
        conn.send(b"hello")
        final = conn.read_response()
    assert final.status == 200
    assert final.json()["length"] == 5
    assert bytes(upstream.only().body) == b"hello"


def test_expect_100_continue_with_curl(proxy: ProxyProcess, tmp_path) -> None:
    payload = tmp_path / "body.bin"
    payload.write_bytes(pattern(300_000))
    started = time.monotonic()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http1.1",
            "--expect100-timeout",
            "10",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            f"@{payload}",
            "-H",
            "Content-Type: application/octet-stream",
            f"{proxy.url}/upload",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert '"length": 300000' in result.stdout
    assert elapsed < 3, f"curl waited {elapsed:.1f}s for 100-continue"


# ---------------------------------------------------------------- keep-alive and the pool


def test_keep_alive_both_sides_and_pooled_upstream(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    with httpx.Client(base_url=proxy.url, trust_env=False) as first:
        for _ in range(3):
            assert first.get("/echo").status_code == 200
    with httpx.Client(base_url=proxy.url, trust_env=False) as second:
        assert second.get("/echo").status_code == 200
    assert len(upstream.requests) == 4
    assert len({r.conn.id for r in upstream.requests}) == 1, "upstream connection not reused"


def test_upstream_closing_idle_connection_is_not_an_error(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    upstream.keepalive_timeout = 0.2
    assert client.get("/echo").status_code == 200
    upstream.requests[0].conn.closed.wait(2)
    time.sleep(0.1)
    assert client.get("/echo").status_code == 200


def test_upstream_connection_close_then_next_request(proxy: ProxyProcess) -> None:
    """The upstream's Connection: close is about the upstream hop: the client's connection
    stays open and serves the next request (on a fresh upstream connection)."""
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", "/close", [("Host", "x")]))
        first = conn.read_response()
        assert first.body == b"bye"
        assert "close" not in (first.header("connection") or "").lower()
        conn.send(build_request("GET", "/echo", [("Host", "x")]))
        assert conn.read_response().status == 200


def test_idle_upstream_connections_expire(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, "--upstream-idle-timeout", "300ms")
    assert httpx.get(f"{proc.url}/echo", trust_env=False).status_code == 200
    conn = upstream_server.only().conn
    assert conn.closed.wait(2), "pooled upstream connection not closed after its idle timeout"
    assert conn.closed_at is not None and conn.closed_at - conn.opened_at >= 0.25


def test_upstream_pool_keeps_at_most_pool_size_idle(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, "--upstream-pool-size", "1")
    clients = [RawConn(proc.port) for _ in range(3)]
    try:
        for conn in clients:  # three at once need three upstream connections
            conn.send(build_request("GET", "/slow?delay_ms=300", [("Host", "x")]))
        assert all(conn.read_response().status == 200 for conn in clients)
    finally:
        for conn in clients:
            conn.close()
    conns = {r.conn.id: r.conn for r in upstream_server.requests}
    assert len(conns) == 3
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and sum(c.closed.is_set() for c in conns.values()) < 2:
        time.sleep(0.02)
    still_open = [c.id for c in conns.values() if not c.closed.is_set()]
    assert len(still_open) <= 1, f"{len(still_open)} idle upstream connections kept, pool size 1"


def test_pipelined_requests_answer_in_order(proxy: ProxyProcess) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request("GET", "/slow?delay_ms=200", [("Host", "x")])
            + build_request("POST", "/echo", [("Host", "x"), ("Content-Length", "3")], b"two")
        )
        first, second = conn.read_response(), conn.read_response()
    assert (first.status, first.body) == (200, b"slow")
    assert (second.status, second.body) == (200, b"two")


def test_concurrent_clients_never_get_each_others_responses(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    """Pooled upstream connections under concurrency: every answer belongs to its request."""
    errors: list[str] = []

    def worker(n: int) -> None:
        with httpx.Client(base_url=proxy.url, trust_env=False, timeout=10) as http:
            for i in range(8):
                body = f"worker-{n}-req-{i}-".encode() * (1 + (n * 7 + i) % 50)
                target = "/echo" if i % 3 else "/slow?delay_ms=20"
                resp = http.post(target, content=body)
                expected = b"slow" if target.startswith("/slow") else body
                if resp.content != expected:
                    errors.append(f"{n}/{i}: got {resp.content[:40]!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:5]
    assert len(upstream.requests) == 16 * 8


def test_client_connection_close_is_honoured(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", "/echo", [("Host", "x"), ("Connection", "close")]))
        assert conn.read_response().status == 200
        assert conn.closed_within(2), "Connection: close from the client was ignored"
    rec = upstream.only()
    assert "close" not in ",".join(rec.header_all("connection")).lower()
    assert not rec.conn.closed.wait(0.3), "the client's Connection: close reached the upstream"


def test_http_1_0_client(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(b"GET /echo HTTP/1.0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.header("transfer-encoding") is None  # 1.0 clients cannot read chunked
        assert conn.closed_within(2)
    assert upstream.only().path == "/echo"


def test_absolute_form_target_is_not_an_open_proxy(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    elsewhere = FakeUpstream().start()
    try:
        resp = request(proxy.port, "GET", f"{elsewhere.url}/echo", [("Host", "x")])
        time.sleep(0.1)
        assert not elsewhere.requests, "the proxy connected to a host named in the request"
    finally:
        elsewhere.stop()
    assert resp.status == 400 or upstream.only().target == "/echo", (resp.status, resp.body)


def test_upstream_answering_before_reading_the_body_is_relayed(proxy: ProxyProcess) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request(
                "POST",
                "/early?status=413",
                [("Host", "x"), ("Content-Length", "1000000")],
                b"a" * 100_000,
            )
        )
        resp = conn.read_response(timeout=3)
    assert (resp.status, resp.body) == (413, b"refused early")


# Headers the proxy itself may put on a forwarded request or a relayed response.
ADDED_UPSTREAM = {
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
}
ADDED_CLIENT = {
    "x-request-id",
    "headroom-upstream-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
}


def test_nothing_else_is_added_either_way(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    sent = [("Host", "x"), ("X-Only", "1"), ("X-Empty", ""), ("Content-Length", "2")]
    resp = request(proxy.port, "POST", "/echo", sent, b"hi")
    assert resp.status == 200
    rec = upstream.only()
    extra = set(rec.names()) - {k.lower() for k, _ in sent} - ADDED_UPSTREAM
    assert not extra, f"proxy added request headers {extra}"
    assert rec.header_all("x-empty") == [""]
    relayed = {"content-type", "x-method", "x-body-length", "content-length"}
    extra = {k.lower() for k, _ in resp.headers} - relayed - ADDED_CLIENT
    assert not extra, f"proxy added response headers {extra}"


def test_two_host_headers_are_rejected(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    """RFC 9112 3.2: more than one Host is a 400 (which Host would the rewrite replace?)."""
    resp = request(proxy.port, "GET", "/echo", [("Host", "a.example"), ("Host", "b.example")])
    assert resp.status == 400, resp.status
    assert not upstream.requests


def test_chunk_extensions_and_trailers_are_accepted(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    resp = request(
        proxy.port, "POST", "/echo", [("Host", "x"), ("Transfer-Encoding", "chunked")], body
    )
    assert (resp.status, resp.body) == (200, b"hello world")
    assert bytes(upstream.only().body) == b"hello world"


def test_early_hints_then_the_real_answer(proxy: ProxyProcess) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", "/hints", [("Host", "x")]))
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"after hints")
        conn.send(build_request("GET", "/echo", [("Host", "x")]))
        assert conn.read_response().status == 200


@pytest.mark.parametrize("late_ms", [0, 300], ids=["same-packet", "while-idle"])
def test_response_longer_than_its_length_does_not_poison_the_pool(
    late_ms: int, client: httpx.Client, upstream: FakeUpstream
) -> None:
    """Bytes after a complete response (a desync) must never become the next client's
    response: the connection they came on is not reused."""
    first = client.get(f"/overlong?n=100&late_ms={late_ms}")
    assert (first.status_code, first.content) == (200, pattern(100))
    time.sleep(late_ms / 1000 + 0.5)  # the late bytes must land while the socket idles
    started = time.monotonic()
    second = client.post("/echo", content=b"mine")
    assert (second.status_code, second.content) == (200, b"mine")
    assert time.monotonic() - started < 1.0
    assert upstream.requests[-1].conn.id != upstream.requests[0].conn.id
