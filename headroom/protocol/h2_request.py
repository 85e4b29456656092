"""An HTTP/2 request head as the HTTP/1.1 leg must see it.

The upstream leg skips h11's own header validation (the fields were validated where they
were parsed), so everything HTTP/2 allows and HTTP/1.1 cannot carry is refused here: names
that are not tokens, values with CR/LF/NUL, a ``:path`` that is not origin-form, a method
that is not a token, and CONNECT other than RFC 8441 WebSocket. A refused head resets its
stream (PROTOCOL_ERROR); it never reaches the upstream.
"""

from __future__ import annotations

import re

from headroom.protocol.events import RequestHead
from headroom.protocol.writes import UNSAFE_VALUE

# What HTTP/1.1 accepts as a header name or method (RFC 9110 token); h2 checks less.
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# An origin-form path: "/" then visible characters, no space or control.
_PATH = re.compile(rb"/[\x21-\x7e\x80-\xff]*")


def request_head(headers: list[tuple[bytes, bytes]], ended: bool) -> RequestHead | None:
    """Pseudo-headers to an HTTP/1.1-shaped head: :authority becomes Host, and a body with no
    Content-Length is marked chunked so the HTTP/1.1 upstream leg frames it."""
    pseudo: dict[bytes, bytes] = {}
    fields: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name.startswith(b":"):
            pseudo[name] = value
        elif name != b"host" or b":authority" not in pseudo:
            fields.append((name, value))
    method, path = pseudo.get(b":method"), pseudo.get(b":path")
    if method is None or path is None or not _TOKEN.fullmatch(method):
        return None
    if not _PATH.fullmatch(path) and not (path == b"*" and method == b"OPTIONS"):
        return None  # only origin-form reaches the upstream: no authority, no spaces
    if any(not _TOKEN.fullmatch(n) or UNSAFE_VALUE.search(v) for n, v in fields):
        return None  # a name HTTP/1.1 cannot carry; CR, LF or NUL would split a line
    if method == b"CONNECT":  # only RFC 8441 WebSocket; plain CONNECT tunnels are refused
        if pseudo.get(b":protocol") != b"websocket":
            return None
        fields.append((b":protocol", b"websocket"))
        ended = True  # the stream carries WebSocket frames, not a body to re-frame
    authority = pseudo.get(b":authority")
    if authority is not None and not any(n == b"host" for n, _ in fields):
        fields.insert(0, (b"host", authority))
    if not ended and not any(n == b"content-length" for n, _ in fields):
        fields.append((b"transfer-encoding", b"chunked"))
    return RequestHead(method, path, fields, b"2", [n for n, _ in fields])
