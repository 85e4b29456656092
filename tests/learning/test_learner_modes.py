"""The learner's modes and bounds: read-only fleets, the flags, background work."""

from __future__ import annotations

import asyncio

import pytest

from headroom.config import UsageError, load
from headroom.learning.backend import MemoryBackend
from headroom.learning.learner import MAX_BACKGROUND, Learner, Seen

NOW = 1_800_000_000.0


def _seen(key: str, first: bool = True) -> Seen:
    return Seen("Bash", "grep", "search", 1000, 100, (key,), (), first)


def test_readonly_applies_but_records_no_evidence_and_still_keeps_decisions() -> None:
    async def scenario() -> None:
        backend = MemoryBackend()
        writer = Learner(backend, ttl=60, clock=lambda: NOW)
        for i in range(3):
            await writer.record_compressed([_seen(f"{i:024x}")], {})
            await writer.record_retrieval(f"{i:024x}", 5000, 5000)
        reader = Learner(backend, ttl=60, readonly=True, clock=lambda: NOW)
        before = await backend.counts()
        await reader.record_compressed([_seen("f" * 24)], {"decision": b"{}"})
        assert await reader.record_retrieval("0" * 24, 100) is not None
        assert await backend.counts() == before  # no evidence written
        assert await reader.decisions(["decision"]) == {"decision": b"{}"}
        assert (await reader.steers())["Bash:grep"]["search"].lossless

    asyncio.run(scenario())


def test_outputs_only_carried_again_are_written_in_one_batch() -> None:
    async def scenario() -> None:
        backend = MemoryBackend()
        learner = Learner(backend, ttl=60, clock=lambda: NOW)
        await learner.record_compressed([_seen("a" * 24)], {})  # first sight: written
        counts = dict(await backend.counts())
        for _ in range(5):
            await learner.record_compressed([_seen("a" * 24, first=False)], {})
        assert await backend.counts() == counts  # carried again: pending, within FLUSH_S
        await learner.close()
        saved = [v for n, (v, _) in (await backend.counts()).items() if n.startswith("b\tBash\t")]
        assert saved == [pytest.approx(6000.0)]  # all six requests' savings, on close

    asyncio.run(scenario())


def test_background_work_is_bounded_and_counted() -> None:
    async def scenario() -> None:
        learner = Learner(MemoryBackend(), ttl=60)
        gate = asyncio.Event()

        async def work() -> None:
            await gate.wait()

        for _ in range(MAX_BACKGROUND + 3):
            learner.in_background(work())
        assert learner.counters["dropped"] == 3
        gate.set()
        await learner.settle()
        assert learner.busy == 0

    asyncio.run(scenario())


def test_learning_flags() -> None:
    base = ["--upstream", "http://127.0.0.1:9"]
    assert load(base).learning == "on" and not load(base).learning_readonly
    assert load([*base, "--learning", "off"]).learning == "off"
    assert load([*base, "--learning-readonly"]).learning_readonly
    assert load(base, {"HEADROOM_PROXY_LEARNING": "off"}).learning == "off"
    with pytest.raises(UsageError, match="--learning"):
        load([*base, "--learning", "maybe"])
