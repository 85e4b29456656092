"""HTTP/1.1 on both legs, sans-IO: bytes in → stream events out, events → bytes out.

h11 does the parsing and framing; these adapters add what a proxy needs on top of it and
translate to the shared event vocabulary:

* h11 lets Transfer-Encoding win over Content-Length; a proxy must refuse the pair outright
  (request smuggling), so ``H1Server`` answers 400.
* h11 bounds only *incomplete* heads; a complete head that arrives in one read is accepted at
  any size, so the head size and field count are checked here too (431).
* Original header-name spelling is carried along so the other leg sees the client's casing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import h11
import h11._state

from headroom.protocol.events import (
    Body,
    EndBody,
    Event,
    Headers,
    Informational,
    ProtocolError,
    RequestHead,
    ResponseHead,
)
from headroom.protocol.limits import MAX_HEAD_BYTES, MAX_HEADER_FIELDS

# Upstream heads are trusted more than clients' but still bounded.
MAX_UPSTREAM_HEAD_BYTES = 64 * 1024
# 1xx answers before the final one (100, 102, 103): a handful is normal; a flood of them is
# a loop stall (h11 parses each), so past this the response is a 502.
MAX_INFORMATIONAL = 32


class Reset(Exception):
    """The peer went away or broke framing mid-message; the message is incomplete."""


def _split(h11_headers: h11._headers.Headers) -> tuple[Headers, list[bytes]]:
    headers: Headers = []
    raw_names: list[bytes] = []
    for raw, value in h11_headers.raw_items():
        raw_names.append(raw)
        headers.append((raw.lower(), value))
    return headers, raw_names


def _check_head(start: bytes, headers: Headers, max_bytes: int) -> ProtocolError | None:
    """A complete head's bounds and framing; the status is what a server answers (the
    client leg maps any of them to 502)."""
    if len(headers) > MAX_HEADER_FIELDS:
        return ProtocolError(431, f"more than {MAX_HEADER_FIELDS} header fields")
    size = len(start) + sum(len(n) + len(v) + 4 for n, v in headers)
    if size > max_bytes:
        return ProtocolError(431, f"head larger than {max_bytes} bytes")
    has_cl = has_te = False
    for name, _ in headers:
        if name == b"content-length":
            has_cl = True
        elif name == b"transfer-encoding":
            has_te = True
    if has_cl and has_te:
        return ProtocolError(400, "both Content-Length and Transfer-Encoding")
    return None


class H1Server:
    """The client-facing leg of one HTTP/1.1 connection."""

    def __init__(self) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes (``b""`` for EOF). Raises ``Reset`` when the client hung up mid-request."""
        self._conn.receive_data(data)
        return self.events()

    def events(self) -> list[Event]:
        out: list[Event] = []
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if _is_eof_error(exc):
                    raise Reset(str(exc)) from None
                out.append(ProtocolError(exc.error_status_hint or 400, str(exc)))
                return out
            if isinstance(event, h11.Data):
                out.append(Body(event.data))  # h11 hands out a fresh bytearray: no copy
            elif isinstance(event, h11.Request):
                if event.http_version not in (b"1.1", b"1.0"):
                    # "HTTP/2.0" or "PRI * HTTP/2.0" as text is not HTTP/1.1 (nginx: 505)
                    out.append(ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here"))
                    return out
                headers, raw_names = _split(event.headers)
                problem = _check_head(event.target, headers, MAX_HEAD_BYTES)
                if problem is not None:
                    out.append(problem)
                    return out
                out.append(
                    RequestHead(event.method, event.target, headers, event.http_version, raw_names)
                )
            elif isinstance(event, h11.EndOfMessage):
                out.append(EndBody(_split(event.headers)[0] if event.headers else []))
                return out  # h11 pauses after a message: asking again would only say so
            elif isinstance(event, h11.ConnectionClosed):
                # EOF from a client means it is gone: HTTP clients do not half-close and
                # then wait, and treating it as an abort propagates disconnects at once.
                raise Reset("client closed the connection")
            else:  # NEED_DATA or PAUSED
                return out

    @property
    def waiting_for_100_continue(self) -> bool:
        return self._conn.they_are_waiting_for_100_continue

    @property
    def unparsed(self) -> int:
        """Bytes received but not parsed yet (pipelined requests). h11 exposes them only
        as a copy, so ask this once per cycle, not per read."""
        return len(self._conn.trailing_data[0])

    @property
    def request_done(self) -> bool:
        """The request is complete (or is an upgrade waiting for our answer)."""
        state = self._conn.their_state
        return state is h11.DONE or state is h11._state.MIGHT_SWITCH_PROTOCOL  # not exported

    def accept_upgrade(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """Answer an Upgrade request with 101; the connection then carries raw bytes."""
        return self._conn.send(h11.InformationalResponse(status_code=101, headers=headers)) or b""

    @property
    def trailing_data(self) -> bytes:
        """Bytes that arrived after the message h11 stopped at (e.g. after an upgrade)."""
        return bytes(self._conn.trailing_data[0])

    def send_informational(self, status: int) -> bytes:
        return self._conn.send(h11.InformationalResponse(status_code=status, headers=[])) or b""

    def send_head(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b""
    ) -> bytes:
        # _parsed=True skips h11's per-header regexes: every header here either came out of
        # a parser (h11 or h2, both validated) or is a constant or value the proxy made
        # from validated parts. Re-checking them cost ~10 us per response.
        response = h11.Response(status_code=status, headers=headers, reason=reason, _parsed=True)
        return self._conn.send(response) or b""

    def send_body(self, data: bytes | bytearray) -> Sequence[bytes | bytearray]:
        return _framed(self._conn, data)

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        return self._conn.send(_end(trailers)) or b""

    def next_cycle(self) -> bool:
        """After a complete exchange: ready the next request. False means close now."""
        conn = self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False


# h11's events are frozen: one end without trailers serves every message (building and
# validating a new one cost about 2% of a proxied GET's CPU).
_END = h11.EndOfMessage()


def _end(trailers: list[tuple[bytes, bytes]] | None) -> h11.EndOfMessage:
    return h11.EndOfMessage(headers=trailers) if trailers else _END


def _framed(conn: h11.Connection, data: bytes | bytearray) -> Sequence[bytes | bytearray]:
    """``data`` framed as body bytes (a chunk header and end around it when chunked), not
    copied: ``h11.Connection.send`` joins what it writes into new bytes, which copies all
    of a large buffered body, and every bytearray h11 itself handed out. h11 frames any
    bytes-like object; its types say bytes."""
    return conn.send_with_data_passthrough(h11.Data(data=cast(bytes, data))) or ()


def _is_eof_error(exc: h11.RemoteProtocolError) -> bool:
    return "peer closed connection" in str(exc) or "incomplete" in str(exc)


class H1Client:
    """The upstream-facing leg of one HTTP/1.1 connection."""

    def __init__(self) -> None:
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_UPSTREAM_HEAD_BYTES)
        self._informational = 0  # 1xx seen for the current request

    def send_head(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
        # Headers already validated where they were parsed (see H1Server.send_head).
        request = h11.Request(method=method, target=target, headers=headers, _parsed=True)
        return self._conn.send(request) or b""

    def send_body(self, data: bytes | bytearray) -> Sequence[bytes | bytearray]:
        return _framed(self._conn, data)

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        return self._conn.send(_end(trailers)) or b""

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes (``b""`` for EOF). Raises ``Reset`` if the response was cut short."""
        conn = self._conn
        conn.receive_data(data)
        out: list[Event] = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if data == b"" or _is_eof_error(exc):
                    raise Reset(str(exc)) from None
                out.append(ProtocolError(502, f"upstream broke HTTP/1.1: {exc}"))
                return out
            if isinstance(event, h11.Data):
                out.append(Body(event.data))  # h11 hands out a fresh bytearray: no copy
            elif isinstance(event, h11.Response):
                headers, raw_names = _split(event.headers)
                problem = _check_head(event.reason, headers, MAX_UPSTREAM_HEAD_BYTES)
                if problem is not None:
                    out.append(ProtocolError(502, f"upstream response: {problem.message}"))
                    return out
                out.append(ResponseHead(event.status_code, headers, event.reason, raw_names))
            elif isinstance(event, h11.InformationalResponse):
                self._informational += 1
                if self._informational > MAX_INFORMATIONAL:
                    message = f"upstream sent more than {MAX_INFORMATIONAL} 1xx responses"
                    out.append(ProtocolError(502, message))
                    return out
                headers, raw_names = _split(event.headers)
                out.append(Informational(event.status_code, headers, raw_names))
            elif isinstance(event, h11.EndOfMessage):
                out.append(EndBody(_split(event.headers)[0] if event.headers else []))
                return out  # h11 pauses after a message: asking again would only say so
            elif isinstance(event, h11.ConnectionClosed):
                ended = bool(out) and isinstance(out[-1], EndBody)
                if not ended and conn.their_state not in (h11.DONE, h11.CLOSED):
                    raise Reset("upstream closed the connection")
                return out
            else:
                return out

    @property
    def response_started(self) -> bool:
        return self._conn.their_state is not h11.IDLE

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._conn.trailing_data[0])

    def reusable(self) -> bool:
        """True when both messages ended cleanly and keep-alive holds, and nothing arrived
        past the end of the response (those bytes would be read as the next response);
        readies the next cycle."""
        conn = self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            if conn.trailing_data[0]:
                return False
            conn.start_next_cycle()
            self._informational = 0
            return True
        return False
