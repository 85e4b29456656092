"""Writing a response the proxy made itself (a local route's answer or an error)."""

from __future__ import annotations

from http import HTTPStatus

from headroom.proxy.local import LocalResponse
from headroom.proxy.seams import ClientStream


def send_local(
    conn: ClientStream, response: LocalResponse, request_id: bytes, *, head_only: bool
) -> int:
    """Write a complete proxy-made response in one send; returns the body bytes written."""
    closing = conn.must_close
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode("ascii")),
        *response.headers,
        (b"x-request-id", request_id),
    ]
    if closing:
        headers.append((b"connection", b"close"))
    written = 0
    conn.cork()
    try:
        conn.send_head(response.status, headers, _reason(response.status))
        if not head_only and response.body:
            conn.send_body(response.body)
            written = len(response.body)
        conn.send_end()
    finally:
        conn.uncork()
    return written


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
