"""Issue 11 point 4: every HTTP/2 frame is counted, whatever its type, and h2 is handed
bounded batches."""

from __future__ import annotations

import pytest
from hyperframe.frame import DataFrame, HeadersFrame, PriorityFrame

from headroom.protocol.h2_frames import (
    FREE_FRAMES,
    MAX_FRAMES_PER_TURN,
    FrameFlood,
    FrameGate,
)
from headroom.protocol.h2_server import PREFACE


def _priority(stream_id: int = 1) -> bytes:
    return PriorityFrame(stream_id, depends_on=0, stream_weight=16).serialize()


def _unknown(kind: int = 0xFA) -> bytes:
    # 9-byte header: length 0, an unknown type, no flags, stream 0
    return (0).to_bytes(3, "big") + bytes([kind, 0]) + (0).to_bytes(4, "big")


def _drain(gate: FrameGate) -> list[bytes]:
    out = []
    for _ in range(100_000):
        chunk = gate.take()
        if not chunk:
            break
        out.append(chunk)
        if not gate.pending:
            break
    return out


def test_the_preface_and_frames_pass_through_byte_exact() -> None:
    gate = FrameGate(len(PREFACE))
    frames = [HeadersFrame(1, data=b"x" * 10).serialize(), DataFrame(1, b"hello").serialize()]
    wire = PREFACE + b"".join(frames)
    for i in range(0, len(wire), 7):  # any split: partial headers and payloads wait
        gate.feed(wire[i : i + 7])
    assert b"".join(_drain(gate)) == wire


def test_a_partial_frame_waits_for_the_rest() -> None:
    gate = FrameGate(0)
    frame = DataFrame(1, b"x" * 100).serialize()
    gate.feed(frame[:50])
    assert not gate.pending
    assert gate.take() == b""
    gate.feed(frame[50:])
    assert gate.pending
    assert gate.take() == frame


def test_at_most_one_batch_per_take() -> None:
    gate = FrameGate(0)
    gate.feed(_priority() * (MAX_FRAMES_PER_TURN * 3))
    first = gate.take()
    assert len(first) == MAX_FRAMES_PER_TURN * len(_priority())
    assert gate.pending
    assert len(_drain(gate)) == 2


@pytest.mark.parametrize("frame", [_priority(), _unknown()], ids=["priority", "unknown-0xfa"])
def test_frames_that_carry_no_work_are_a_flood(frame: bytes) -> None:
    gate = FrameGate(0)
    gate.feed(frame * (FREE_FRAMES + 1))
    with pytest.raises(FrameFlood):
        _drain(gate)


def test_work_earns_frames() -> None:
    gate = FrameGate(0)
    # 2,000 requests, each HEADERS plus a few small frames: busy, not abusive.
    request = HeadersFrame(1, data=b"h" * 20).serialize() + _priority() * 5
    gate.feed(request * 2000)
    assert sum(map(len, _drain(gate))) == len(request) * 2000
    # A large upload in full frames never comes near the allowance.
    upload = DataFrame(1, b"d" * 16_384).serialize()
    gate.feed(upload * 3000)
    assert sum(map(len, _drain(gate))) == len(upload) * 3000


def test_the_allowance_renews_each_window() -> None:
    """On a clock of the test's own: a slow machine draining a burst past a wall-clock
    window made the last flood pass as two windows' worth."""
    now = [0.0]
    gate = FrameGate(0, window=0.05, clock=lambda: now[0])
    burst = _priority() * (FREE_FRAMES * 2 // 3)
    for _ in range(3):  # two bursts in one window would be a flood; one per window is not
        gate.feed(burst)
        _drain(gate)
        now[0] += 0.06
    gate.feed(burst + burst)
    with pytest.raises(FrameFlood):
        _drain(gate)


def test_an_oversized_frame_goes_to_h2_to_refuse() -> None:
    gate = FrameGate(0)
    header = (1 << 20).to_bytes(3, "big") + bytes([0, 0]) + (1).to_bytes(4, "big")
    gate.feed(header)
    assert gate.pending
    assert gate.take() == header
