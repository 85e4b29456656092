"""Header rules for both directions, each applied in one pass over the list.

Order and repeats are kept; only what a proxy must change is changed: hop-by-hop headers
(and every header ``Connection`` names) are dropped both ways, ``x-headroom-*`` never leaves
for the upstream, forwarding headers and the request id are set, Host is rewritten on
request. Names go out in the client's (or upstream's) original spelling.
"""

from __future__ import annotations

import itertools
import os

from headroom.protocol.events import RequestHead, ResponseHead

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
INTERNAL_PREFIX = b"x-headroom-"
MAX_REQUEST_ID = 200

Pairs = list[tuple[bytes, bytes]]


def connection_named(headers: Pairs) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop for this message)."""
    named: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    named.add(token)
    return frozenset(named)


def valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID and all(0x21 <= b <= 0x7E for b in value)


def request_id_for(head: RequestHead) -> bytes:
    """The client's ``X-Request-Id`` when it is visible ASCII, else a fresh one."""
    for name, value in head.headers:
        if name == b"x-request-id" and valid_request_id(value):
            return value
    return new_request_id()


class _Ids:
    """Request ids: 32 hex digits, a random half fixed per process and a counter.

    Unique across the processes of a fleet (64 random bits each; a forked child draws its
    own) and never repeated within one, like a UUID4 for what an id is used for (finding a
    request in logs); not secret. A UUID4 per request read the kernel's random source each
    time (a syscall)."""

    def __init__(self) -> None:
        self._prefix = ""
        self._next = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = itertools.count(1)

    def new(self) -> bytes:
        return f"{self._prefix}{next(self._next):016x}".encode("ascii")


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reset)


def new_request_id() -> bytes:
    return _IDS.new()


def header_value(headers: Pairs, wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name == wanted:
            return value
    return None


_NOT_TRAILERS = HOP_BY_HOP | {b"content-length", b"host", b"content-encoding", b"content-type"}


def request_trailers(trailers: Pairs) -> Pairs:
    """Request trailers an upstream may get: no framing, routing or hop-by-hop field and
    no pseudo-header (a trailer can never re-frame or re-route the message it ends)."""
    return [(n, v) for n, v in trailers if n.lower() not in _NOT_TRAILERS and n[:1] != b":"]


def upstream_request_headers(
    head: RequestHead,
    *,
    client_ip: str,
    scheme: str,
    upstream_authority: bytes,
    rewrite_host: bool,
    request_id: bytes,
    content_length: int | None,
    drop: frozenset[bytes] = frozenset(),
    upgrade: bool = False,
) -> Pairs:
    """Headers for the upstream request.

    ``content_length`` is set when the proxy re-framed the body (buffered route): the
    client's framing headers are then replaced by that exact length. Otherwise the client's
    Content-Length is kept, and a chunked request stays chunked.
    """
    dropped = HOP_BY_HOP | connection_named(head.headers) | drop
    if upgrade:  # a WebSocket handshake: the upstream must see the Upgrade it is asked for,
        # and no body framing (a handshake with a body is refused before it gets here)
        dropped = (dropped - {b"upgrade"}) | {b"content-length"}
    out: Pairs = []
    client_host: bytes | None = None
    forwarded_for: list[bytes] = []
    chunked = False
    for (name, value), raw in zip(head.headers, head.raw_names or _names(head), strict=True):
        if name in dropped:
            if name == b"transfer-encoding":
                chunked = True
            continue
        if name.startswith(INTERNAL_PREFIX):
            continue
        if name == b"host":
            client_host = value
            out.append((raw, upstream_authority if rewrite_host else value))
        elif name == b"x-forwarded-for":
            forwarded_for.append(value)
        elif name in _REPLACED:
            continue
        elif name == b"content-length" and content_length is not None:
            continue
        else:
            out.append((raw, value))
    if client_host is None:
        out.insert(0, (b"Host", upstream_authority))
    forwarded_for.append(client_ip.encode("ascii"))
    out.append((b"X-Forwarded-For", b", ".join(forwarded_for)))
    out.append((b"X-Forwarded-Proto", scheme.encode("ascii")))
    if client_host is not None:
        out.append((b"X-Forwarded-Host", client_host))
    out.append((b"X-Request-Id", request_id))
    if upgrade:
        out.append((b"Connection", b"Upgrade"))
    if content_length is not None:
        out.append((b"Content-Length", str(content_length).encode("ascii")))
    elif chunked:
        out.append((b"Transfer-Encoding", b"chunked"))
    return out


# Set by the proxy, so the client's values are dropped where they stand. ``expect`` too:
# the proxy answers 100-continue itself, so the upstream never holds the body back.
_REPLACED = frozenset({b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id", b"expect"})


def client_response_headers(
    head: ResponseHead, *, request_id: bytes, closing: bool
) -> tuple[Pairs, bytes | None]:
    """Headers for the client, and the upstream's own request id (if it sent one)."""
    dropped = HOP_BY_HOP | connection_named(head.headers)
    out: Pairs = []
    upstream_id: bytes | None = None
    openai_id: bytes | None = None
    for (name, value), raw in zip(head.headers, head.raw_names or _names(head), strict=True):
        if name in dropped:
            continue
        if name == b"x-request-id":
            openai_id = value
            continue
        if name == b"request-id":
            upstream_id = value
        out.append((raw, value))
    upstream_id = upstream_id or openai_id
    out.append((b"x-request-id", request_id))
    if upstream_id is not None:
        out.append((b"headroom-upstream-request-id", upstream_id))
    if closing:
        out.append((b"connection", b"close"))
    return out, upstream_id


def _names(head: RequestHead | ResponseHead) -> list[bytes]:
    return [name for name, _ in head.headers]


def upstream_target(base_path: bytes, target: bytes) -> bytes:
    """Base path + request path, query verbatim. ``/`` alone maps to the base path itself."""
    if target.startswith((b"http://", b"https://")):  # absolute-form: keep path and query
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    if target == b"*":
        return base_path or b"*"
    path, sep, query = target.partition(b"?")
    if path in (b"", b"/"):
        path = base_path or b"/"
    else:
        path = base_path + path
    return path + sep + query
