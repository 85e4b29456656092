"""Header and URL rules, in memory."""

from __future__ import annotations

import pytest

from headroom.protocol.events import RequestHead, ResponseHead
from headroom.proxy.headers import (
    client_response_headers,
    request_id_for,
    upstream_request_headers,
    upstream_target,
)


def _head(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    return RequestHead(
        b"POST", b"/x", [(n.lower(), v) for n, v in headers], b"1.1", [n for n, _ in headers]
    )


def _forward(headers: list[tuple[bytes, bytes]], **kw: object) -> list[tuple[bytes, bytes]]:
    args = dict(
        client_ip="10.0.0.9",
        scheme="http",
        upstream_authority=b"up:8080",
        rewrite_host=True,
        request_id=b"rid",
        content_length=None,
    )
    args.update(kw)
    return upstream_request_headers(_head(headers), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base", "target", "expected"),
    [
        (b"", b"/v1/messages?stream=true", b"/v1/messages?stream=true"),
        (b"/api", b"/v1/messages", b"/api/v1/messages"),
        (b"", b"/", b"/"),
        (b"/api", b"/", b"/api"),
        (b"/api", b"/?a=1&b=%20", b"/api?a=1&b=%20"),
        (b"", b"http://client-host/p?q=1", b"/p?q=1"),
    ],
)
def test_upstream_target(base: bytes, target: bytes, expected: bytes) -> None:
    assert upstream_target(base, target) == expected


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    out = _forward(
        [
            (b"Host", b"h"),
            (b"Connection", b"keep-alive, X-Foo"),
            (b"X-Foo", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"Upgrade", b"h2c"),
            (b"Proxy-Authorization", b"secret"),
            (b"X-Keep", b"yes"),
        ]
    )
    names = [n.lower() for n, _ in out]
    for gone in (b"connection", b"x-foo", b"keep-alive", b"te", b"upgrade", b"proxy-authorization"):
        assert gone not in names
    assert (b"X-Keep", b"yes") in out


def test_internal_headers_never_forwarded_any_case() -> None:
    out = _forward(
        [
            (b"Host", b"h"),
            (b"X-Headroom-Foo", b"1"),
            (b"x-HEADROOM-bar", b"2"),
            (b"Authorization", b"Bearer k"),
        ]
    )
    assert all(not n.lower().startswith(b"x-headroom-") for n, _ in out)
    assert (b"Authorization", b"Bearer k") in out


def test_forwarding_headers_host_rewrite_and_order() -> None:
    out = _forward(
        [
            (b"A", b"1"),
            (b"Host", b"client.example"),
            (b"X-Forwarded-For", b"1.2.3.4"),
            (b"B", b"2"),
            (b"b", b"3"),
        ]
    )
    assert out[:4] == [(b"A", b"1"), (b"Host", b"up:8080"), (b"B", b"2"), (b"b", b"3")]
    assert (b"X-Forwarded-For", b"1.2.3.4, 10.0.0.9") in out
    assert (b"X-Forwarded-Host", b"client.example") in out
    assert (b"X-Forwarded-Proto", b"http") in out
    assert (b"X-Request-Id", b"rid") in out


def test_no_rewrite_host_keeps_clients() -> None:
    out = _forward([(b"Host", b"client.example")], rewrite_host=False)
    assert (b"Host", b"client.example") in out


def test_content_length_recomputed_and_chunked_kept() -> None:
    out = _forward([(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")], content_length=42)
    assert (b"Content-Length", b"42") in out and all(n != b"Transfer-Encoding" for n, _ in out)
    out = _forward([(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
    assert (b"Transfer-Encoding", b"chunked") in out
    out = _forward([(b"Host", b"h"), (b"Content-Length", b"7"), (b"Expect", b"100-continue")])
    assert (b"Content-Length", b"7") in out and all(n != b"Expect" for n, _ in out)


def test_request_id_kept_when_valid_else_generated() -> None:
    assert request_id_for(_head([(b"X-Request-Id", b"abc-123")])) == b"abc-123"
    generated = request_id_for(_head([(b"X-Request-Id", b"bad id")]))
    assert generated != b"bad id" and len(generated) == 32


def test_response_headers_carry_request_ids_and_drop_hop_by_hop() -> None:
    head = ResponseHead(
        200,
        [
            (b"content-length", b"3"),
            (b"connection", b"close, x-a"),
            (b"x-a", b"1"),
            (b"x-request-id", b"up-1"),
            (b"x-multi", b"v1"),
            (b"x-multi", b"v2"),
        ],
        b"OK",
        [b"Content-Length", b"Connection", b"X-A", b"X-Request-Id", b"X-Multi", b"X-Multi"],
    )
    out, upstream_id = client_response_headers(head, request_id=b"mine", closing=True)
    assert upstream_id == b"up-1"
    assert out == [
        (b"Content-Length", b"3"),
        (b"X-Multi", b"v1"),
        (b"X-Multi", b"v2"),
        (b"x-request-id", b"mine"),
        (b"headroom-upstream-request-id", b"up-1"),
        (b"connection", b"close"),
    ]
