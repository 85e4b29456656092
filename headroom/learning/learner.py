"""The learner the proxy talks to: records what compression and retrieval did, answers what
compression should do now, and keeps decisions once made.

* ``record_compressed``: after a compressed request's originals are stored, each output seen
  for the first time adds to its (tool, kind) counters and leaves a provenance record per
  CCR key (tool and kind), so a later retrieval of that key knows what it is about. The
  decision taken for the output (the steer applied, by its memo key) is recorded too.
* ``record_retrieval``: a retrieval of a key counts against that key's (tool, kind).
* ``record_terms``: the words a retrieval showed were wanted (``evidence.wanted_terms``).
* Requests that only carry outputs compressed (or kept whole) before add their savings and
  costs in memory, written with the next write or after ``FLUSH_S``: a request that
  re-sends a conversation costs no store write (first sights and retrievals are written
  at once).
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
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from headroom.ccr.store import StoreError
from headroom.learning.backend import TABLES, LearnBackend
from headroom.learning.model import EMPTY, Learned, counter, learned_names
from headroom.transforms.base import Steer
from headroom.transforms.tokens import estimate_tokens

REFRESH_S = 1.0
PROVENANCE, DECISIONS = TABLES[:2]  # by CCR key: tool and kind; by memo key: the steer applied
MAX_BACKGROUND = 64  # learning tasks in flight; past it new evidence is dropped, and counted
FLUSH_S = 1.0  # savings of outputs carried again are written at most this often


@dataclass(frozen=True)
class Seen:
    """One output a request carried compressed (or kept whole), as the learner needs it."""

    tool: str
    program: str  # what a shell tool ran ("" for other tools), see ``program_of``
    strategy: str
    tokens_before: int
    tokens_after: int
    keys: tuple[str, ...]
    held: tuple[str, ...]  # strategies a lossless steer kept whole
    first: bool = True  # its first sight anywhere (else: a request carrying it again)


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
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, float] = {}  # savings of outputs carried again, not written
        self._flushed_at = time.monotonic()
        self.counters = dict.fromkeys(
            ("retrievals", "unknown_retrievals", "terms", "refused", "errors", "dropped"), 0
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
            if out.first:
                record = orjson.dumps(
                    {"tool": out.tool, "program": out.program, "kind": out.strategy}
                )
                records.update(dict.fromkeys(out.keys, record))
        if records:
            await self.backend.put_records(PROVENANCE, records, self.ttl, now)
            await self._add(increments, now)
        else:  # only outputs carried again: counted, written with the next write or flush
            for name, value in increments.items():
                _add(self._pending, name, value)
            if time.monotonic() - self._flushed_at >= FLUSH_S:
                await self._add({}, now)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run learning beside the exchange that found the evidence: it must not delay an
        answer, and must finish when the client closes as soon as it has read one (which
        cancels the exchange). At most ``MAX_BACKGROUND`` at once."""
        if len(self._tasks) >= MAX_BACKGROUND:
            work.close()
            self.counters["dropped"] += 1
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> int:
        """Learning tasks in flight."""
        return len(self._tasks)

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for the learning tasks in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Finish the tasks in flight (bounded), write what is pending, close the backend."""
        try:
            await self.settle()
            for task in self._tasks:
                task.cancel()
            await self._add({}, self._clock())
        finally:
            await self.backend.close()

    async def record_extra(self, tool: str, program: str, kind: str, extra: int) -> None:
        """What a steer cost one output: the tokens its result keeps beyond the default
        compression's (measured beside the request, see ``proxy.compression``)."""
        if self.readonly or extra <= 0:
            return
        kind = kinds_of(kind)[0]
        name = _deciding(await self.learned(), tool, program, kind)
        await self._add({counter("x", name, kind): float(extra)}, self._clock())

    async def record_retrieval(
        self, key: str, original_tokens: int, resent_tokens: int = 0
    ) -> Provenance | None:
        """Count a retrieval of ``key`` and what it cost (the original, and the request
        re-sent to fetch it: 0 when the fetch came over HTTP); the provenance it was counted
        under, if known."""
        self.counters["retrievals"] += 1
        found = await self.provenance(key)
        if found is None:
            self.counters["unknown_retrievals"] += 1
            return None
        if not self.readonly:
            increments: dict[str, float] = {}
            for name in found.names:
                for kind in kinds_of(found.kind):
                    _add(increments, counter("r", name, kind), 1.0)
                    _add(increments, counter("o", name, kind), original_tokens)
                    _add(increments, counter("p", name, kind), resent_tokens)
            await self._add(increments, self._clock())
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
        await self.backend.reset((PROVENANCE, DECISIONS))
        self._learned, self._learned_at = EMPTY, -1e18

    async def _add(self, increments: Mapping[str, float], now: float) -> None:
        """Write ``increments`` and whatever was pending, in one backend call."""
        merged = self._pending
        self._pending = {}
        for name, value in increments.items():
            _add(merged, name, value)
        self._flushed_at = time.monotonic()
        if merged:
            self.counters["refused"] += await self.backend.add(merged, now)
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


def tokens_of(data: bytes) -> int:
    """Estimated tokens of bytes (a request body, an original), as compression counts them."""
    return estimate_tokens(data.decode("utf-8", "replace"))


def kinds_of(strategy: str) -> list[str]:
    """The compressors behind a result's strategy (``mixed:log+text`` names two)."""
    if strategy.startswith("mixed:"):
        return strategy[len("mixed:") :].split("+")
    return [strategy]


def _count_seen(into: dict[str, float], name: str, out: Seen) -> None:
    """An output sent compressed: what this request saved (every request that carries it
    saves again, as every request that re-sends it for a retrieval costs again), and, at
    its first sight, one more compressed output a retrieval rate is measured on."""
    if not out.keys:
        return
    for kind in kinds_of(out.strategy):
        if out.first:
            _add(into, counter("c", name, kind), 1.0)
        _add(into, counter("b", name, kind), out.tokens_before)
        _add(into, counter("a", name, kind), out.tokens_after)


def _deciding(learned: Learned, tool: str, program: str, kind: str) -> str:
    """The name whose verdict steered an output: its program's where that applies one
    (``Verdict.applied``, as ``steer_for`` merges them), else its tool's."""
    specific = learned_names(tool, program)[-1]
    own = learned.verdict(specific, kind)
    return specific if own is not None and own.applied is not None else tool


def _count_held(into: dict[str, float], learned: Learned, out: Seen) -> None:
    """A request that carried an output kept whole, and at the output's first sight the
    retrievals that is expected to save, under the name whose verdict decided."""
    for kind in out.held:
        name = _deciding(learned, out.tool, out.program, kind)
        _add(into, counter("k", name, kind), 1.0)
        verdict = learned.verdict(name, kind)
        if out.first and verdict is not None:
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
