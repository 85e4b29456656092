"""The learner the proxy talks to: records what compression and retrieval did, answers what
compression should do now, and keeps decisions once made.

* ``record_compressed``: after a compressed request's originals are stored, each output seen
  for the first time adds to its (tool, kind) counters and leaves a provenance record per
  CCR key (tool and kind), so a later retrieval of that key knows what it is about. The
  decision taken for the output (the steer applied, by its memo key) is recorded too.
* ``record_retrieval``: a retrieval of a key counts against that key's (tool, kind).
* ``record_terms``: the words a retrieval showed were wanted (``evidence.wanted_terms``).
* ``steers``: what to apply to outputs seen for the first time, from a snapshot of the
  counters refreshed at most every ``REFRESH_S`` seconds.
* ``decisions``: for outputs this process has not compressed, what was decided when some
  process first did. An output keeps its first bytes for as long as its decision lives (the
  CCR TTL after its last use): prompt caches of running conversations never break because
  something was learned meanwhile.

``readonly``: evidence is not written (fleets that want one writer); decisions still are,
since without them two workers could compress one output two ways.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from headroom.ccr.store import StoreError
from headroom.learning.backend import LearnBackend
from headroom.learning.model import EMPTY, Learned, counter, learned_names
from headroom.transforms.base import Steer

REFRESH_S = 1.0
PROVENANCE = "p"
DECISIONS = "d"


@dataclass(frozen=True)
class Seen:
    """One output compressed for the first time, as the learner needs it."""

    tool: str
    program: str  # what a shell tool ran ("" for other tools), see ``program_of``
    strategy: str
    tokens_before: int
    tokens_after: int
    keys: tuple[str, ...]
    held: tuple[str, ...]  # strategies a lossless steer kept whole


@dataclass(frozen=True)
class Provenance:
    tool: str
    program: str
    kind: str

    @property
    def names(self) -> list[str]:
        return learned_names(self.tool, self.program)


class Learner:
    def __init__(
        self,
        backend: LearnBackend,
        *,
        ttl: float,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.ttl = ttl
        self.readonly = readonly
        self._clock = clock
        self._learned: Learned = EMPTY
        self._learned_at = -1e18
        self._refresh: asyncio.Lock | None = None
        self.counters = dict.fromkeys(
            ("retrievals", "unknown_retrievals", "terms", "refused", "errors"), 0
        )

    # ------------------------------------------------------------ reading

    async def learned(self) -> Learned:
        """The snapshot, at most ``REFRESH_S`` old; one refresh at a time per process."""
        if time.monotonic() - self._learned_at < REFRESH_S:
            return self._learned
        if self._refresh is None:
            self._refresh = asyncio.Lock()
        async with self._refresh:
            if time.monotonic() - self._learned_at >= REFRESH_S:
                counts = await self.backend.counts()
                self._learned = Learned.of(counts, self._clock())
                self._learned_at = time.monotonic()
                if self._learned.faded and not self.readonly:
                    await self.backend.forget(self._learned.faded)
        return self._learned

    async def steers(self) -> dict[str, Mapping[str, Steer]]:
        return (await self.learned()).steers()

    async def decisions(self, keys: Sequence[str]) -> dict[str, bytes]:
        return await self.backend.get_records(DECISIONS, keys, self.ttl, self._clock())

    async def provenance(self, key: str) -> Provenance | None:
        found = await self.backend.get_records(PROVENANCE, [key], self.ttl, self._clock())
        raw = found.get(key)
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
            program = str(value.get("program", ""))
            return Provenance(str(value["tool"]), program, str(value["kind"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------ writing

    async def record_compressed(self, seen: Sequence[Seen], decided: Mapping[str, bytes]) -> None:
        now = self._clock()
        if decided:
            await self.backend.put_records(DECISIONS, decided, self.ttl, now)
        if self.readonly or not seen:
            return
        learned = await self.learned()
        increments: dict[str, float] = {}
        records: dict[str, bytes] = {}
        for out in seen:
            for name in learned_names(out.tool, out.program):
                _count_seen(increments, name, out)
            _count_held(increments, learned, out)
            record = orjson.dumps({"tool": out.tool, "program": out.program, "kind": out.strategy})
            for key in out.keys:
                records[key] = record
        if records:
            await self.backend.put_records(PROVENANCE, records, self.ttl, now)
        await self._add(increments, now)

    async def record_retrieval(self, key: str) -> Provenance | None:
        """Count a retrieval of ``key``; the provenance it was counted under, if known."""
        self.counters["retrievals"] += 1
        found = await self.provenance(key)
        if found is None:
            self.counters["unknown_retrievals"] += 1
            return None
        if not self.readonly:
            now = self._clock()
            increments = {
                counter("r", name, k): 1.0 for name in found.names for k in kinds_of(found.kind)
            }
            await self._add(increments, now)
        return found

    async def record_terms(self, found: Provenance, terms: Sequence[str]) -> None:
        if self.readonly or not terms:
            return
        increments = {
            counter("t", name, kind, term): 1.0
            for name in found.names
            for kind in kinds_of(found.kind)
            for term in terms
        }
        self.counters["terms"] += len(terms)
        await self._add(increments, self._clock())

    async def reset(self) -> None:
        await self.backend.reset()
        self._learned, self._learned_at = EMPTY, -1e18

    async def _add(self, increments: Mapping[str, float], now: float) -> None:
        if increments:
            self.counters["refused"] += await self.backend.add(increments, now)
            self._learned_at = -1e18  # the next snapshot shows this

    async def stats(self) -> dict[str, Any]:
        learned = await self.learned()
        verdicts = sorted(learned.verdicts.values(), key=lambda v: (-v.retrieved, v.tool, v.kind))
        return {
            "enabled": True,
            "readonly": self.readonly,
            "backend": self.backend.name,
            **self.counters,
            "by_tool": [v.as_json() for v in verdicts],
            "extra_tokens": round(sum(v.extra_tokens for v in verdicts)),
            "retrievals_saved": round(sum(v.saved_retrievals for v in verdicts), 2),
        }


def kinds_of(strategy: str) -> list[str]:
    """The compressors behind a result's strategy (``mixed:log+text`` names two)."""
    if strategy.startswith("mixed:"):
        return strategy[len("mixed:") :].split("+")
    return [strategy]


def _count_seen(into: dict[str, float], name: str, out: Seen) -> None:
    """A first-seen output compressed lossily: evidence a later retrieval is measured on."""
    if not out.keys:
        return
    for kind in kinds_of(out.strategy):
        _add(into, counter("c", name, kind), 1.0)
        _add(into, counter("b", name, kind), out.tokens_before)
        _add(into, counter("a", name, kind), out.tokens_after)


def _count_held(into: dict[str, float], learned: Learned, out: Seen) -> None:
    """An output kept whole by a verdict: what it cost and saved, under the name whose
    verdict decided (the program's where it has evidence of its own, else the tool's)."""
    specific = learned_names(out.tool, out.program)[-1]
    for kind in out.held:
        own = learned.verdict(specific, kind)
        name = specific if own is not None and own.has_evidence else out.tool
        verdict = learned.verdict(name, kind)
        if verdict is None or not verdict.lossless:
            continue
        _add(into, counter("k", name, kind), 1.0)
        _add(into, counter("x", name, kind), out.tokens_before * (1.0 - verdict.kept_share))
        _add(into, counter("s", name, kind), min(1.0, verdict.rate))


def _add(into: dict[str, float], name: str, value: float) -> None:
    into[name] = into.get(name, 0.0) + value


async def guarded(learner: Learner, what: str, call: Any, log: Any, **fields: Any) -> Any:
    """Await a learner call; a failing store is logged and counted, never the request's end."""
    try:
        return await call
    except StoreError as exc:
        learner.counters["errors"] += 1
        log.warning("learning_failed", what=what, error=str(exc), **fields)
        return None
