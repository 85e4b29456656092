"""Bodies lent to the compression process through shared memory: the same bytes come out
in another process, and the segment is gone once given back."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from headroom.proxy.shared_body import borrow, give_back, lend


def _read_in_child(name: str, size: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(borrow(name, size))


def test_a_lent_body_is_read_whole_in_another_process_and_unlinked_after() -> None:
    body = bytes(range(256)) * 8192 + b"\x00tail"  # 2 MB, every byte value

    async def scenario() -> str:
        shm = await lend(body)
        try:
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            child = context.Process(target=_read_in_child, args=(shm.name, len(body), out))
            child.start()
            got = out.get(timeout=30)
            child.join(timeout=30)
            assert child.exitcode == 0
            assert got == body
            return shm.name
        finally:
            give_back(shm)

    name = asyncio.run(scenario())
    if Path("/dev/shm").is_dir():
        assert not (Path("/dev/shm") / name.lstrip("/")).exists()
    with pytest.raises(FileNotFoundError):
        borrow(name, 1)


def test_an_empty_body_can_be_lent() -> None:
    async def scenario() -> bytes:
        shm = await lend(b"")
        try:
            return borrow(shm.name, 0)
        finally:
            give_back(shm)

    assert asyncio.run(scenario()) == b""
