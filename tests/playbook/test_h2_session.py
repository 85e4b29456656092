"""H2Session's defences scripted in memory with hyperframe-built frames:
rapid reset, PING/SETTINGS floods and frames that carry no work each end the connection
with GOAWAY ENHANCE_YOUR_CALM; a busy, honest client does not."""

from __future__ import annotations

import asyncio

import hpack
from hyperframe.frame import (
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from headroom.protocol.h2_server import PREFACE
from tests.protocol.memory import MemoryHost, MemoryTransport, connect

ENHANCE_YOUR_CALM = 11
REQUEST = hpack.Encoder().encode(
    [(":method", "GET"), (":path", "/x"), (":scheme", "http"), (":authority", "a")]
)


def _frames(written: list[bytes]) -> list[Frame]:
    data = b"".join(written)
    out = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


def _goaway(transport: MemoryTransport) -> int | None:
    codes = [f.error_code for f in _frames(transport.written) if isinstance(f, GoAwayFrame)]
    return codes[-1] if codes else None


def _session(*frames: bytes) -> tuple[MemoryTransport, MemoryHost]:
    conn, transport, host, loop = connect()
    try:
        conn.data_received(PREFACE + SettingsFrame(0).serialize() + b"".join(frames))
        for _ in range(500):  # the session yields between batches: let it finish
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    return transport, host


def test_rapid_reset_is_goaway_enhance_your_calm() -> None:
    frames = []
    for i in range(150):
        stream = 1 + 2 * i
        frames.append(
            HeadersFrame(stream, REQUEST, flags=["END_HEADERS", "END_STREAM"]).serialize()
        )
        frames.append(RstStreamFrame(stream, error_code=8).serialize())
    transport, host = _session(*frames)
    assert _goaway(transport) == ENHANCE_YOUR_CALM
    assert any("rapid reset" in e.message for e in host.errors)


def test_ping_and_settings_floods_are_stopped() -> None:
    pings = [PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(200)]
    transport, _ = _session(*pings)
    assert _goaway(transport) == ENHANCE_YOUR_CALM
    settings = [SettingsFrame(0, settings={0x4: 65535}).serialize() for _ in range(150)]
    transport, _ = _session(*settings)
    assert _goaway(transport) == ENHANCE_YOUR_CALM


def test_frames_that_do_no_work_are_a_flood_whatever_their_type() -> None:
    priority = PriorityFrame(1, depends_on=0, stream_weight=16).serialize()
    unknown = (0).to_bytes(3, "big") + b"\xfa\x00" + (0).to_bytes(4, "big")
    for frame in (priority, unknown):
        transport, host = _session(frame * 20_000)
        assert _goaway(transport) == ENHANCE_YOUR_CALM
        assert any("frame flood" in e.message for e in host.errors)


def test_many_honest_requests_are_served_not_goaway() -> None:
    frames = [
        HeadersFrame(1 + 2 * i, REQUEST, flags=["END_HEADERS", "END_STREAM"]).serialize()
        for i in range(90)
    ]
    transport, host = _session(*frames)
    assert _goaway(transport) is None
    assert len(host.exchanges) == 90
