"""One idle timer for every "no progress for N seconds" rule (upstream silence, body
silence): touching it is a float store, and the loop timer is re-armed only when it fires
early, so a stream that keeps talking costs no timer churn per chunk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

SLACK = 0.001  # seconds


class IdleTimer:
    __slots__ = ("_handle", "_loop", "_on_idle", "_timeout", "last")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout: float, on_idle: Callable[[], bool]
    ) -> None:
        """``on_idle`` runs once ``timeout`` passed without a touch; it returns True to go
        on watching (the silence was excused), False once it acted."""
        self._loop = loop
        self._timeout = timeout
        self._on_idle = on_idle
        self._handle: asyncio.TimerHandle | None = None
        self.last = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Touch, and watch from now on (no second timer if one is running)."""
        self.last = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(self.last + self._timeout, self._fire)

    def touch(self) -> None:
        self.last = self._loop.time()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        due = self.last + self._timeout
        # The loop runs a timer up to its clock resolution early: within that, it is due
        # (re-arming for the same instant would spin).
        if due - self._loop.time() > SLACK:
            self._handle = self._loop.call_at(due, self._fire)
        elif self._on_idle():
            self.start()
