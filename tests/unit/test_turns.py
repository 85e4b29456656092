"""A bounded amount of large work per loop turn: tasks that want more at once than one
turn's budget are spread over turns, in the order they asked, with the loop free (polling
sockets) between them; a large body's hint scan goes a slice per turn and still finds a
needle that straddles two slices."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from headroom.proxy.turns import SLICE, TurnGate, contains_any


def _ticking(loop: asyncio.AbstractEventLoop, turns: int = 200) -> Callable[[], int]:
    """A loop-turn counter: each call_soon runs one turn later."""
    turn = [0]

    def tick() -> None:
        turn[0] += 1
        if turn[0] < turns:
            loop.call_soon(tick)

    loop.call_soon(tick)
    return lambda: turn[0]


def _turns_taken(costs: list[int], budget: int) -> list[int]:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        gate = TurnGate(loop, budget)
        now = _ticking(loop)
        seen: list[int] = []

        async def work(cost: int) -> None:
            await gate.turn(cost)
            seen.append(now())

        await asyncio.gather(*(work(c) for c in costs))
        return seen

    return asyncio.run(main())


def test_tasks_over_the_budget_get_a_turn_each_in_order() -> None:
    seen = _turns_taken([SLICE] * 5, budget=SLICE)
    assert len(set(seen)) == 5, seen  # never two in the same turn
    assert seen == sorted(seen)  # in the order they asked


def test_tasks_within_the_budget_share_a_turn() -> None:
    seen = _turns_taken([SLICE] * 6, budget=2 * SLICE)
    assert len(set(seen)) == 3, seen  # two per turn


def test_work_larger_than_the_budget_still_goes_alone() -> None:
    seen = _turns_taken([5 * SLICE, 5 * SLICE], budget=SLICE)
    assert len(set(seen)) == 2, seen


def test_a_cancelled_waiter_does_not_hold_up_the_rest() -> None:
    async def main() -> int:
        gate = TurnGate(asyncio.get_running_loop(), SLICE)
        done = 0

        async def work() -> None:
            nonlocal done
            await gate.turn(SLICE)
            done += 1

        tasks = [asyncio.ensure_future(work()) for _ in range(4)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)
        return done

    assert asyncio.run(main()) == 3


def _scan(body: bytes | bytearray, needles: tuple[bytes, ...]) -> tuple[bool, int]:
    """What ``contains_any`` answered and how many loop turns it spanned."""

    async def main() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        now = _ticking(loop, 10_000)
        start = now()
        found = await contains_any(body, needles, TurnGate(loop, SLICE))
        return found, now() - start

    return asyncio.run(main())


@pytest.mark.parametrize("at", [0, SLICE - 3, SLICE - 1, 2 * SLICE + 17, 5 * SLICE - 8])
def test_a_needle_anywhere_is_found_even_across_slices(at: int) -> None:
    body = bytearray(b"x" * (5 * SLICE))
    body[at : at + 8] = b'"needle"'
    assert _scan(body, (b"absent", b'"needle"'))[0]


def test_a_large_body_without_the_needle_is_scanned_a_slice_per_turn() -> None:
    found, turns = _scan(b"x" * (6 * SLICE), (b'"tool_result"',))
    assert not found
    assert turns >= 6  # the loop ran between slices


def test_a_small_body_is_scanned_at_once() -> None:
    assert _scan(b'{"type":"tool_result"}', (b'"tool_result"',)) == (True, 0)
    assert _scan(b"x" * SLICE, (b'"tool_result"',)) == (False, 0)
