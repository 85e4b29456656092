"""A bounded amount of large work per loop turn.

Some steps over a whole buffered body are one C call that holds the loop for as long as it
takes: looking for a tool-output hint in 21 MB that holds none reads all of it (about 10
ms, more when the machine is busy). When many large bodies end in the same read batch,
their tasks all wake in one loop turn and would run such steps back to back, so a health
probe waited for all of them. Such work is done in slices of ``SLICE`` bytes, and
``TurnGate.turn()`` lets at most ``TURN_BUDGET`` bytes of slices proceed per loop turn,
across all tasks; between turns the loop polls sockets, so other clients wait for one
budget's work at most, never for every body's.
"""

from __future__ import annotations

import asyncio
from collections import deque

SLICE = 1 << 20  # bodies up to this are scanned at once: it costs less than a loop turn
TURN_BUDGET = 2 * SLICE


class TurnGate:
    __slots__ = ("_budget", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int = TURN_BUDGET) -> None:
        self._loop = loop
        self._budget = budget
        self._waiters: deque[tuple[asyncio.Future[None], int]] = deque()

    async def turn(self, cost: int) -> None:
        """Wait until this task may do ``cost`` bytes of work (in the next loop turn if
        the turn's budget is not taken by tasks that asked before)."""
        entry = (self._loop.create_future(), cost)
        self._waiters.append(entry)
        if len(self._waiters) == 1:
            self._loop.call_soon(self._release)
        try:
            await entry[0]
        finally:
            if not entry[0].done():  # cancelled while waiting (client gone)
                self._waiters.remove(entry)

    def _release(self) -> None:
        """Admit waiters in order up to the budget (always at least one)."""
        spent = 0
        while self._waiters and spent < self._budget:
            waiter, cost = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                spent += cost
        if self._waiters:
            self._loop.call_soon(self._release)  # the rest go a turn later


async def contains_any(body: bytes | bytearray, needles: tuple[bytes, ...], gate: TurnGate) -> bool:
    """Whether one of ``needles`` occurs in ``body``; past ``SLICE`` bytes the body is
    scanned a slice at a time, each slice when ``gate`` lets it (a needle across two
    slices is found: each scan reaches into the next slice by a needle's length)."""
    if len(body) <= SLICE:
        return any(needle in body for needle in needles)
    reach = max(map(len, needles), default=1) - 1
    for start in range(0, len(body), SLICE):
        await gate.turn(SLICE)
        end = start + SLICE + reach
        if any(body.find(needle, start, end) != -1 for needle in needles):
            return True
    return False
