"""Issue 2 point 6: the compression routes are buffered and capped; nothing else is."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import pytest

from tests.proxy.conftest import StartProxy, module_proxy
from tests.proxy.helpers import assert_proxy_error
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request, request
from tests.support.upstream import FakeUpstream

# count_tokens is buffered too: its body must compress exactly like the message it precedes.
ROUTES = ["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions", "/v1/responses"]


@pytest.fixture(scope="module")
def capped_proxy(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    yield from module_proxy(upstream_server, tmp_path_factory, "--max-body-bytes", "1KiB")


@pytest.fixture
def capped(capped_proxy: ProxyProcess, upstream_server: FakeUpstream) -> ProxyProcess:
    """The 1 KiB-capped proxy, with the upstream's records cleared for this test."""
    assert capped_proxy.running, capped_proxy.output()
    upstream_server.clear()
    return capped_proxy


def _json_body(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes, with spacing a re-serializer would lose."""
    head, tail = b'{"model": "m",  "pad": "', b'"}\n'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _chunked(body: bytes, size: int = 300) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def _post(
    port: int,
    path: str,
    body: bytes,
    ctype: str = "application/json",
    chunked: bool = False,
    method: str = "POST",
):
    headers = [("Host", "x"), ("Content-Type", ctype)]
    if chunked:
        return request(
            port, method, path, [*headers, ("Transfer-Encoding", "chunked")], _chunked(body)
        )
    return request(port, method, path, [*headers, ("Content-Length", str(len(body)))], body)


def _assert_not_contacted(upstream: FakeUpstream) -> None:
    assert not upstream.requests and not upstream.connections, [
        (r.method, r.target) for r in upstream.requests
    ]


@pytest.mark.parametrize("path", ROUTES)
def test_over_limit_by_content_length_is_413_before_upstream(
    path: str, capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    resp = _post(capped.port, path, _json_body(1025))
    assert_proxy_error(resp.status, 413, resp.headers, resp.body)
    _assert_not_contacted(upstream_server)


@pytest.mark.parametrize("path", ROUTES)
def test_over_limit_while_reading_chunked_is_413_before_upstream(
    path: str, capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    resp = _post(capped.port, path, _json_body(3000), chunked=True)
    assert_proxy_error(resp.status, 413, resp.headers, resp.body)
    _assert_not_contacted(upstream_server)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_at_the_limit_is_forwarded_byte_identical(
    chunked: bool, capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    body = _json_body(1024)
    resp = _post(capped.port, "/v1/messages", body, chunked=chunked)
    assert resp.status == 200
    rec = upstream_server.only()
    assert bytes(rec.body) == body
    assert rec.header("content-type") == "application/json"


def test_json_with_parameters_counts_as_json(
    capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    resp = _post(
        capped.port,
        "/v1/chat/completions",
        _json_body(2000),
        ctype="application/json; charset=utf-8",
    )
    assert_proxy_error(resp.status, 413, resp.headers, resp.body)
    _assert_not_contacted(upstream_server)


def test_odd_but_valid_and_invalid_json_pass_byte_identical(
    capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    for body in (b'{ "b" : 1,"a":"\\u00e9\xc3\xa9" ,"n":1.50e1}\r\n', b'{"not json'):
        upstream_server.clear()
        assert _post(capped.port, "/v1/messages", body).status == 200
        assert bytes(upstream_server.only().body) == body


@pytest.mark.parametrize(
    ("method", "path", "ctype"),
    [
        ("POST", "/v1/messages", "text/plain"),
        ("PUT", "/v1/messages", "application/json"),
        ("POST", "/v1/embeddings", "application/json"),
        ("POST", "/upload", "application/octet-stream"),
    ],
)
def test_other_requests_stream_uncapped(
    method: str, path: str, ctype: str, capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    body = _json_body(64 * 1024)
    for chunked in (False, True):
        upstream_server.clear()
        resp = _post(capped.port, path, body, ctype=ctype, chunked=chunked, method=method)
        assert resp.status == 200, resp.body[:200]
        assert bytes(upstream_server.only().body) == body


def test_expect_100_over_limit_gets_413_without_sending_the_body(
    capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    with RawConn(capped.port) as conn:
        conn.send(
            build_request(
                "POST",
                "/v1/messages",
                [
                    ("Host", "x"),
                    ("Content-Type", "application/json"),
                    ("Content-Length", "50000"),
                    ("Expect", "100-continue"),
                ],
            )
        )
        resp = conn.read_response(timeout=2)
    assert_proxy_error(resp.status, 413, resp.headers, resp.body)
    _assert_not_contacted(upstream_server)


def test_decimal_units_for_the_limit(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url, "--max-body-bytes", "1KB")
    assert _post(proc.port, "/v1/responses", _json_body(1000)).status == 200
    over = _post(proc.port, "/v1/responses", _json_body(1001))
    assert_proxy_error(over.status, 413, over.headers, over.body)


def test_5mib_json_under_default_limit_is_byte_identical(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    body = json.dumps(
        {"messages": [{"role": "user", "content": "y" * 100}] * 40000}, indent=1
    ).encode()
    assert len(body) > 5 * 1024 * 1024
    assert _post(proxy.port, "/v1/messages", body).status == 200
    assert bytes(upstream.only().body) == body


def test_unread_body_after_413_is_never_parsed_as_a_request(
    capped: ProxyProcess, upstream_server: FakeUpstream
) -> None:
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    body = smuggled + b" " * (2000 - len(smuggled))
    with RawConn(capped.port) as conn:
        conn.send(
            build_request(
                "POST",
                "/v1/messages",
                [("Host", "x"), ("Content-Type", "application/json"), ("Content-Length", "2000")],
                body,
            )
        )
        first = conn.read_response()
        assert first.status == 413
        try:
            conn.send(build_request("GET", "/echo", [("Host", "x")]))
            second = conn.read_response(timeout=2)
        except (ConnectionError, OSError):
            second = None  # closed after the 413: fine
        if second is not None:
            assert second.status == 200 and second.body == b"", (second.status, second.body)
    time.sleep(0.1)
    assert not [r for r in upstream_server.requests if "smuggled" in r.target]


def test_gzip_encoded_json_is_forwarded_byte_identical(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    plain = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    body = gzip.compress(plain, mtime=0)
    resp = request(
        proxy.port,
        "POST",
        "/v1/messages",
        [
            ("Host", "x"),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(body))),
        ],
        body,
    )
    assert resp.status == 200
    rec = upstream.only()
    assert bytes(rec.body) == body
    assert rec.header("content-encoding") == "gzip"
