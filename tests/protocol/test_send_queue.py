"""``SendQueue``: an HTTP/2 stream's outgoing DATA cut to the windows, every byte once, in
order, and a cut chunk's rest kept as a view (no copy of what remains per frame)."""

from __future__ import annotations

import random

from headroom.protocol.writes import SendQueue


def test_takes_give_back_every_byte_in_order_whatever_the_budgets() -> None:
    rng = random.Random(7)
    chunks = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000))) for _ in range(40)]
    queue = SendQueue()
    for chunk in chunks:
        queue.push(chunk)
    out = []
    while queue.size:
        piece = queue.take(rng.choice([1, 7, 100, 1024, 16_384, 70_000]))
        assert isinstance(piece, bytes) and piece
        out.append(piece)
    assert b"".join(out) == b"".join(chunks)
    assert queue.take(10) == b"" and queue.size == 0


def test_a_cut_chunk_keeps_its_rest_as_a_view_not_a_copy() -> None:
    queue = SendQueue()
    big = b"x" * 1_000_000
    queue.push(big)
    assert queue.take(16_384) == b"x" * 16_384
    rest = queue.chunks[0]
    assert isinstance(rest, memoryview) and rest.obj is big  # the pushed bytes, not a copy
    assert len(rest) == 1_000_000 - 16_384 and queue.size == len(rest)
