"""Issue 11 point 1: pipelined requests are held to a bound, however fast they come."""

from __future__ import annotations

from headroom.protocol.limits import MAX_HEAD_BYTES
from tests.protocol.memory import connect

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def _unread(conn) -> int:  # type: ignore[no-untyped-def]
    return len(conn._h1.trailing_data) + len(conn._held)


def test_reading_pauses_while_a_head_worth_of_pipelined_bytes_waits() -> None:
    conn, transport, host, loop = connect()
    try:
        chunk = REQUEST * 1000  # one send() of 1000 pipelined requests (~35 KB)
        answered = 0
        peak = 0
        for _ in range(200):
            if not transport.paused:
                conn.data_received(chunk)
            pending = [e for e in host.exchanges[answered:]]
            assert len(pending) == 1, "one request at a time is handed up"
            pending[0].answer()
            answered += 1
            peak = max(peak, _unread(conn))
        # Bounded by one read beyond the head limit, not by how much the client sent.
        assert peak <= MAX_HEAD_BYTES + len(chunk)
        assert transport.pauses >= 1
        # Answering the backlog drains it and reading resumes; nothing was lost.
        for _ in range(5000):
            if transport.paused is False and _unread(conn) == 0:
                break
            host.exchanges[answered].answer()
            answered += 1
        assert not transport.paused
        assert _unread(conn) == 0
        assert len(host.exchanges) % 1000 == 0  # every pipelined request was handed up
        assert all(e.head.target == b"/healthz" for e in host.exchanges)
    finally:
        loop.close()


def test_a_client_that_does_not_pipeline_is_never_paused() -> None:
    conn, transport, host, loop = connect()
    try:
        for _ in range(50):
            conn.data_received(REQUEST)
            host.exchanges[-1].answer()
        assert transport.pauses == 0
        assert len(host.exchanges) == 50
    finally:
        loop.close()
