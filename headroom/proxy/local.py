"""Requests the proxy answers itself (health, stats, retrieval): the small vocabulary that
lets a local route be written and tested without knowing about sockets or HTTP versions."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class LocalRequest:
    method: str  # upper case
    path: str  # without the query
    query: str  # without the "?"
    headers: tuple[tuple[bytes, bytes], ...]  # names lower case, order kept
    body: bytes
    client_ip: str

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("ascii")
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    @property
    def from_loopback(self) -> bool:
        return is_loopback(self.client_ip)


@dataclass(frozen=True)
class LocalResponse:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())


LocalHandler = Callable[[LocalRequest], Awaitable[LocalResponse]]


def json_response(
    status: int, payload: Any, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> LocalResponse:
    return LocalResponse(status, orjson.dumps(payload), b"application/json", headers)


def error_response(
    status: int, error_type: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> LocalResponse:
    """The one JSON error shape every proxy-made error uses."""
    return json_response(status, {"error": {"type": error_type, "message": message}}, headers)


def is_loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def presented_token(request: LocalRequest) -> str | None:
    """The proxy token a caller presents: ``Authorization: Bearer``, the
    ``x-headroom-proxy-token`` header, or HTTP Basic with the token as password (any user
    name), which is what a browser sends once it has asked for credentials."""
    auth = request.header("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if auth and auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] if ":" in decoded else None
    return request.header("x-headroom-proxy-token")
