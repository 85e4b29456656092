"""One bound on the request bytes the whole process holds for buffering.

Each exchange bounds its own body (``--max-body-bytes``), but many exchanges at once could
still hold their sum: 30 bodies of 21 MB, or 20 HTTP/2 streams that never end. The budget
is the sum of request bytes every exchange holds before they go upstream, against
``--max-buffered-bytes``.

A buffered body whose length is declared (Content-Length) is admitted whole: its length is
reserved before it is read, so an admitted body can always be read to its end; one that
does not fit waits unread (an HTTP/1.1 pause, withheld HTTP/2 credit) in arrival order.
Counting bytes only as they came instead let partial bodies fill the cap between them and
wait for each other. A body of unknown length is counted as it arrives and waits when it
takes the sum over the cap. Bytes given back admit the queue in order; a body that cannot
start (or go on) within the body timeout is answered 503 by its timer (``BodyWatch``).
Overshoot is bounded by one read per connection, since a read already made is counted.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Protocol

from headroom.proxy.timers import IdleTimer


class Waiter(Protocol):
    """An exchange held back by the budget, until ``need`` more bytes fit."""

    need: int

    def budget_resumed(self) -> None: ...


class Gauge(Protocol):
    buffered_bytes: int


class BufferBudget:
    __slots__ = ("_queue", "_stats", "cap", "held")

    def __init__(self, cap: int, stats: Gauge) -> None:
        self.cap = cap
        self.held = 0
        self._stats = stats
        self._queue: OrderedDict[int, Waiter] = OrderedDict()

    def admit(self, need: int) -> bool:
        """Reserve ``need`` bytes if they fit (a body alone always does: the cap is at
        least --max-body-bytes); False leaves the sum as it was."""
        if self.held and self.held + need > self.cap:
            return False
        self.take(need)
        return True

    def take(self, count: int) -> bool:
        """Count ``count`` more bytes held; False once the sum is past the cap."""
        self.held += count
        self._stats.buffered_bytes = self.held
        return self.held <= self.cap

    def give_back(self, count: int) -> None:
        self.take(-count)
        while self._queue:  # in arrival order: a large body is not passed by small ones
            waiter = next(iter(self._queue.values()))
            if not self.admit(waiter.need):
                break
            self._queue.popitem(last=False)
            waiter.budget_resumed()

    def wait(self, waiter: Waiter) -> None:
        self._queue[id(waiter)] = waiter

    def forget(self, waiter: Waiter) -> None:
        self._queue.pop(id(waiter), None)


class BodyOwner(Protocol):
    """What a body watch needs from its exchange."""

    @property
    def client_held_back(self) -> bool:
        """The exchange itself paused the client (upstream backpressure, route undecided):
        silence then is not the client's."""
        ...

    def give_up(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Answer mid-request and end the exchange."""
        ...


class Readable(Protocol):
    def block_reading(self) -> None: ...

    def unblock_reading(self) -> None: ...


class BodyWatch:
    """One exchange's request body: the bytes it holds against the budget, and the body
    timeout, which is silence between body bytes (like nginx's ``client_body_timeout``):
    a slow trickle that keeps sending is never cut."""

    __slots__ = (
        "_budget",
        "_conn",
        "_owner",
        "_timeout",
        "_timer",
        "got",
        "held",
        "need",
        "waiting",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        budget: BufferBudget,
        timeout: float,
        conn: Readable,
        owner: BodyOwner,
    ) -> None:
        self._budget = budget
        self._conn = conn
        self._owner = owner
        self._timeout = timeout
        self._timer = IdleTimer(loop, timeout, self._silent)
        self.got = 0  # body bytes received
        self.held = 0  # bytes counted in the budget: what was reserved or received
        self.need = 0  # what the budget must still admit before reading goes on
        self.waiting = False

    def watch(self, reserve: int = 0) -> None:
        """Start timing silence (the request head is in; its body is not) and, for a
        buffered body of declared length, reserve it whole (``reserve``)."""
        self._timer.start()
        need = max(0, reserve - self.held)
        if self._budget.admit(need):
            self.held += need
        else:
            self._hold_back(need)

    def received(self, count: int) -> None:
        """``count`` body bytes arrived and are held until they go upstream."""
        self._timer.touch()
        self.got += count
        extra = self.got - self.held
        if extra > 0:
            self.held += extra
            if not self._budget.take(extra):
                self._hold_back(0)

    def _hold_back(self, need: int) -> None:
        if not self.waiting:
            self.waiting = True
            self.need = need
            self._conn.block_reading()
            self._budget.wait(self)

    def budget_resumed(self) -> None:
        """Admitted: the budget reserved ``need`` for this body."""
        self.waiting = False
        self.held += self.need
        self.need = 0
        self._timer.touch()  # the wait was ours, not the client's silence
        self._conn.unblock_reading()

    def release(self) -> None:
        """The held bytes went upstream or the exchange is over: give them back."""
        if self.waiting:
            self.waiting = False
            self._budget.forget(self)
            self._conn.unblock_reading()
        if self.held:
            held, self.held = self.held, 0
            self._budget.give_back(held)

    def ended(self) -> None:
        self._timer.cancel()

    def stop(self) -> None:
        self.ended()
        self.release()

    def _silent(self) -> bool:
        if self._owner.client_held_back and not self.waiting:
            return True  # the exchange paused the client: its silence is excused
        waited = f"{self._timeout:g}s"
        if self.waiting:  # the budget stayed full all along: try again soon
            message = f"the proxy holds --max-buffered-bytes of request bodies; waited {waited}"
            self._owner.give_up(503, "buffers_full", message, ((b"retry-after", b"1"),))
        else:
            self._owner.give_up(408, "request_timeout", f"no request body bytes for {waited}")
        return False
