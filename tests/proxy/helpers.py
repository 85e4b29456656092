"""Assertions shared by the proxy tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

VISIBLE_ASCII = frozenset(range(0x21, 0x7F))


def assert_proxy_error(
    status: int, expected: int, headers: Mapping[str, str] | Iterable, body: bytes
) -> dict:
    """A proxy-made error: the status, a JSON ``{"error":{"type","message"}}`` body and an
    ``x-request-id`` header. Returns the error object."""
    error = assert_error_body(status, expected, headers, body)
    assert_request_id(headers)
    return error


def _lowered(headers: Mapping[str, str] | Iterable) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {k.lower(): v for k, v in pairs}


def assert_error_body(
    status: int, expected: int, headers: Mapping[str, str] | Iterable, body: bytes
) -> dict:
    """The status and the JSON error shape, without the request id check."""
    assert status == expected, (status, body[:300])
    lowered = _lowered(headers)
    assert "json" in lowered.get("content-type", ""), lowered
    payload = json.loads(body)
    error = payload["error"]
    assert isinstance(error["type"], str) and error["type"], payload
    assert isinstance(error["message"], str) and error["message"], payload
    return error


def assert_request_id(headers: Mapping[str, str] | Iterable) -> None:
    lowered = _lowered(headers)
    assert lowered.get("x-request-id"), f"no x-request-id on a proxy error: {lowered}"


def is_visible_ascii(value: str) -> bool:
    return bool(value) and all(ord(c) in VISIBLE_ASCII for c in value)


def names_in_order(headers: Iterable[tuple[str, str]], keep: set[str]) -> list[tuple[str, str]]:
    """The (lower-cased name, value) pairs whose name is in ``keep``, in wire order."""
    return [(k.lower(), v) for k, v in headers if k.lower() in keep]
