"""Write paths shared by the protocol classes."""

from __future__ import annotations

import re
from typing import Any

import h2.connection
import h2.exceptions

# Headers HTTP/2 forbids (RFC 9113 §8.2.2); ``te`` is allowed only as "trailers".
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
# CR, LF or NUL in a value HTTP/2 carried would split or end a line on an HTTP/1.1 leg.
UNSAFE_VALUE = re.compile(rb"[\r\n\x00]")


class H2Calls:
    """The send side shared by both HTTP/2 legs: run an h2 call, then send what it produced
    unless writes are being gathered (``cork``)."""

    __slots__ = ()
    h2: h2.connection.H2Connection
    cork: int

    def call(self, method: Any, *args: Any) -> None:
        """A stream already closed by the peer is not an error here."""
        try:
            method(*args)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        if not self.cork:
            self.write()

    def write(self) -> None:
        raise NotImplementedError


JOIN_BELOW = 64 * 1024  # corked writes up to this size are joined into one write


class CorkedWriter:
    """Writes made between ``cork()`` and ``uncork()`` leave in one send(): a head, a body
    chunk and the end that are produced together cost one syscall, not three."""

    __slots__ = ("_cork", "_out")
    transport: Any

    def __init__(self) -> None:
        self._cork = 0  # >0: writes are gathered and sent as one at uncork
        self._out: list[bytes | bytearray] = []

    def _writable(self) -> bool:
        raise NotImplementedError

    def cork(self) -> None:
        self._cork += 1

    def uncork(self) -> None:
        self._cork -= 1
        if self._cork == 0 and self._out:
            out = self._out
            self._out = []
            if not self._writable():
                return
            if len(out) == 1:
                self.transport.write(out[0])
            elif sum(map(len, out)) < JOIN_BELOW:
                self.transport.write(b"".join(out))  # small: one copy beats a writev setup
            else:
                # one writev on uvloop, with no copy of a large body to join it to its head
                # (a 21 MB buffered body cost the loop ~25 ms per request)
                self.transport.writelines(out)

    def _write(self, data: bytes | bytearray) -> None:
        if data and self._writable():
            if self._cork:
                self._out.append(data)
            else:
                self.transport.write(data)


class SendQueue:
    """One HTTP/2 stream's outgoing DATA, waiting for flow-control window, then its end.

    Both directions use it: the client-side session for response bodies, the upstream
    connection for request bodies. Bytes leave only within the stream's and connection's
    windows and the peer's frame size; the end (or trailers) follows the last byte.
    """

    __slots__ = ("chunks", "end", "size", "trailers")

    def __init__(self) -> None:
        # A chunk cut by a window is kept as a view of its rest: slicing a 20 MB body's
        # bytes for every frame would copy what remains each time (quadratic).
        self.chunks: list[bytes | bytearray | memoryview] = []
        self.size = 0
        self.end = False
        self.trailers: list[tuple[bytes, bytes]] | None = None

    def push(self, data: bytes | bytearray) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def finish(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        self.end = True
        self.trailers = [(n.lower(), v) for n, v in trailers] if trailers else None

    def take(self, budget: int) -> bytes:
        out = bytearray()
        while self.chunks and len(out) < budget:
            chunk = self.chunks[0]
            room = budget - len(out)
            if len(chunk) <= room:
                out += chunk
                self.chunks.pop(0)
            else:
                view = memoryview(chunk)
                out += view[:room]
                self.chunks[0] = view[room:]
        self.size -= len(out)
        return bytes(out)

    def pump(self, conn: h2.connection.H2Connection, stream_id: int, stalled: bool) -> bool:
        """Send what the windows allow; True when the stream's end went out just now.
        h2's StreamClosedError/ProtocolError propagate to the caller."""
        while self.size and not stalled:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                break
            conn.send_data(stream_id, self.take(window))
        if self.end and not self.size:
            self.end = False
            if self.trailers:
                conn.send_headers(stream_id, self.trailers, end_stream=True)
            else:
                conn.end_stream(stream_id)
            return True
        return False


class QueuedStream:
    """What an HTTP/2 stream handle does the same way in both directions: queue DATA and
    the end for the owner (the client-side session or the upstream connection) to send
    within the windows, and batch the owner's writes. Subclasses add their direction's
    head and flow-control credit."""

    __slots__ = ("closed", "owner", "queue", "stream_id")

    def __init__(self, owner: Any, stream_id: int) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.closed = False
        self.queue = SendQueue()

    def send_body(self, data: bytes | bytearray) -> None:
        if data and not self.closed:
            self.queue.push(data)
            self.owner.flush(self)

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        if not self.closed:
            self.queue.finish(trailers)
            self.owner.flush(self)

    def write_raw(self, data: bytes) -> None:
        raise RuntimeError("raw byte tunnels need an HTTP/1.1 connection")

    def cork(self) -> None:
        self.owner.cork += 1

    def uncork(self) -> None:
        self.owner.cork -= 1
        if not self.owner.cork:
            self.owner.write()
