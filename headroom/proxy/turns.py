"""One large copy per loop turn.

Joining a buffered body into one ``bytes`` is a single C call that holds the loop: about
15-30 ms for 21 MB (the copy and the page faults of fresh memory). When many large bodies
end in the same read batch, their tasks all wake in one loop turn and would copy back to
back, so a health probe waited over a second. ``TurnGate.turn()`` lets one such copy
proceed per loop turn; between turns the loop polls sockets, so other clients wait for at
most one copy, never for all of them.
"""

from __future__ import annotations

import asyncio
from collections import deque

# Bodies under this are joined at once: their copy costs less than a loop turn.
LARGE = 1 << 20


class TurnGate:
    __slots__ = ("_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def turn(self) -> None:
        """Wait for this task's turn (the next loop turn if nobody else waits)."""
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            self._loop.call_soon(self._release)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled while waiting (client gone)
                self._waiters.remove(waiter)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if self._waiters:
            self._loop.call_soon(self._release)  # the next one runs a turn later
