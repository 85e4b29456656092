"""One large copy per loop turn: tasks that want one at once are spread over turns, with
the loop free (polling sockets) between them."""

from __future__ import annotations

import asyncio

from headroom.proxy.turns import TurnGate


def test_tasks_asking_together_get_one_turn_each() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        gate = TurnGate(loop)
        turn = [0]

        def tick() -> None:  # counts loop turns: each call_soon runs one turn later
            turn[0] += 1
            if turn[0] < 50:
                loop.call_soon(tick)

        loop.call_soon(tick)
        seen: list[int] = []

        async def copy() -> None:
            await gate.turn()
            seen.append(turn[0])

        await asyncio.gather(*(copy() for _ in range(5)))
        return seen

    seen = asyncio.run(main())
    assert len(seen) == 5
    assert len(set(seen)) == 5, seen  # never two in the same turn
    assert seen == sorted(seen)  # in the order they asked


def test_a_cancelled_waiter_does_not_hold_up_the_rest() -> None:
    async def main() -> int:
        gate = TurnGate(asyncio.get_running_loop())
        done = 0

        async def copy() -> None:
            nonlocal done
            await gate.turn()
            done += 1

        tasks = [asyncio.ensure_future(copy()) for _ in range(4)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)
        return done

    assert asyncio.run(main()) == 3
