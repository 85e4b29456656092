"""A request body lent to the compression process through shared memory, not its pipe.

Handing a 20 MB body to ``ProcessPoolExecutor`` pickles it and streams it through a pipe in
64 KiB writes, from a feeder thread that takes the GIL back for every write: while 30 such
bodies compressed, the event loop waited behind those threads and ``/healthz`` took half a
second. Instead the proxy copies the body once into a shared-memory segment (on a worker
thread), passes its name, and the compression process reads it from there; the segment is
unlinked as soon as the call returns, whatever happened to it. An unchanged body is not
sent back either (``Rewrite.same_body``).
"""

from __future__ import annotations

import asyncio
from multiprocessing import shared_memory


async def lend(body: bytes | bytearray) -> shared_memory.SharedMemory:
    """A new segment holding ``body``, copied on a worker thread; ``give_back`` it."""
    shm = shared_memory.SharedMemory(create=True, size=max(1, len(body)))
    try:
        await asyncio.to_thread(_copy_in, shm, body)
    except BaseException:
        give_back(shm)
        raise
    return shm


def _copy_in(shm: shared_memory.SharedMemory, body: bytes | bytearray) -> None:
    _view(shm)[: len(body)] = body


def give_back(shm: shared_memory.SharedMemory) -> None:
    shm.close()
    shm.unlink()


def _view(shm: shared_memory.SharedMemory) -> memoryview:
    buf = shm.buf
    if buf is None:
        raise ValueError(f"shared memory {shm.name} is closed")
    return buf


def borrow(name: str, size: int) -> bytes:
    """The body, in the compression process: copied out of the segment, which stays the
    proxy's to unlink. (A spawned process shares its parent's resource tracker, where
    attaching registers the name a second time into a set: the proxy's unlink is still
    the one unregister, so nothing is reported leaked or unlinked twice.)"""
    shm = shared_memory.SharedMemory(name=name)
    try:
        return bytes(_view(shm)[:size])
    finally:
        shm.close()
