"""Reads paced to a share of each loop turn.

libuv reads a readable socket up to 32 times per wakeup before it polls again, so one peer
sending fast held the loop for all of that: 30 clients uploading 21 MB bodies made turns of
up to 200 ms, and a /healthz waited through several of them (asyncio's own loop reads once
per turn). A connection that has read ``READ_PER_TURN`` bytes in this turn pauses reading
until the next turn, when it goes on if nothing else holds it back. The pacer also holds
whether the transport is paused, so each connection's pause follows one rule: its owner's
reasons to hold the peer back, or a used-up share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from headroom.protocol.limits import READ_PER_TURN


class ReadPacer:
    __slots__ = ("_loop", "_read", "_resume", "paused")

    def __init__(
        self, resume: Callable[[], None], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._loop = loop  # None: the loop running when a turn's share is used up
        self._resume = resume  # re-decides reading; called when a new turn begins
        self._read = 0
        self.paused = False  # the transport's reading, as last set here

    def count(self, size: int) -> bool:
        """Count a read; True when it used up this turn's share (the caller pauses now,
        and ``resume`` is called at the start of the next turn)."""
        before = self._read
        self._read = before + size
        if before < READ_PER_TURN <= self._read:
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._next_turn)
            return True
        return False

    def apply(self, transport: asyncio.ReadTransport, held_back: bool) -> None:
        """Pause ``transport`` while ``held_back`` (the owner's reasons) or while this
        turn's share is used up, else resume it; nothing is called when that is as it was."""
        pause = held_back or self._read >= READ_PER_TURN
        if pause != self.paused:
            self.paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _next_turn(self) -> None:
        self._read = 0
        self._resume()
