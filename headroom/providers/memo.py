"""Remember compressed tool outputs across requests.

An agent re-sends its whole history every turn, so without memory the proxy would compress
every earlier tool output again on every turn — turn 50 would redo the work of turns 1 to 49.
The pipeline is deterministic, so the result for (output, relevance context, model family)
never changes and can be reused as is. The originals a result's markers name are kept with
it and written to the store again on every reuse, so a hit never leaves a marker whose
original the store has lost: every marker that leaves the proxy names an original the store
holds, whatever was evicted meanwhile.

Bounded by the bytes it holds (outputs and originals), least recently used out first.
Thread-safe: the compression executor runs several rewrites at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from headroom.ccr.store import CCRWriter, PendingWrites
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.tokens import chars_per_token

DEFAULT_MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class Sight:
    """How one output met the memo: ``hit`` (compressed before in this process) and the
    strategies a lossless steer kept whole (when it was first compressed)."""

    hit: bool
    held: tuple[str, ...]


@dataclass(frozen=True)
class _Memo:
    result: CompressResult
    originals: tuple[bytes, ...]
    size: int
    held: tuple[str, ...] = ()


class MemoPipeline:
    """``Pipeline.compress`` with a bounded memory of earlier answers."""

    def __init__(self, pipeline: Pipeline, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.pipeline = pipeline
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, _Memo] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        return self.compress_timed(text, ctx, {})

    def compress_timed(
        self, text: str, ctx: CompressContext, stages: dict[str, float]
    ) -> CompressResult:
        """``compress``, adding each pipeline stage's milliseconds into ``stages``."""
        return self.compress_seen(text, ctx, stages)[0]

    def compress_seen(
        self,
        text: str,
        ctx: CompressContext,
        stages: dict[str, float],
        key: bytes | None = None,
    ) -> tuple[CompressResult, Sight]:
        """``compress_timed``, also saying whether the memo answered and what a lossless
        steer kept whole. The memo key leaves ``ctx.steer`` out on purpose: what an output
        became the first time is what it stays (a prompt cache holds those bytes). ``key``:
        ``memo_key(text, ctx)``, when the caller has it already."""
        key = memo_key(text, ctx) if key is None else key
        with self._lock:
            memo = self._entries.get(key)
            if memo is not None:
                self._entries.move_to_end(key)
                self.hits += 1
        if memo is not None:
            _replay(memo, ctx.store)
            return memo.result, Sight(True, memo.held)
        staged = PendingWrites()
        inner = CompressContext(ctx.query, staged, ctx.model, ctx.steer)
        result, stats = self.pipeline.compress_with_stats(
            text, inner if ctx.store is not None else ctx
        )
        for name, ms in (
            ("detect", stats.detect_ms),
            ("compress", stats.compress_ms),
            ("ccr", stats.ccr_ms),
        ):
            stages[name] = stages.get(name, 0.0) + ms
        originals = tuple(staged.items.values())
        size = len(result.output) + sum(len(o) for o in originals) + len(key)
        memo = _Memo(result, originals, size, tuple(stats.held))
        _replay(memo, ctx.store)
        with self._lock:
            self.misses += 1
            if memo.size <= self.max_bytes and key not in self._entries:
                self._entries[key] = memo
                self._bytes += memo.size
                while self._bytes > self.max_bytes:
                    _, old = self._entries.popitem(last=False)
                    self._bytes -= old.size
        return result, Sight(False, memo.held)

    def has(self, key: bytes) -> bool:
        with self._lock:
            return key in self._entries

    @property
    def size(self) -> tuple[int, int]:
        """(bytes, entries) held now, for ``/stats``."""
        with self._lock:
            return self._bytes, len(self._entries)


def decision_key(key: bytes) -> str:
    """The name of what was decided for an output: its memo key, in hex."""
    return key.hex()[:40]


def memo_key(text: str, ctx: CompressContext) -> bytes:
    """Everything the result depends on: the text, the relevance context, and the model
    family (it sets the token estimate the pipeline decides with)."""
    digest = hashlib.sha256()
    for part in (
        text,
        "\0",
        ctx.query,
        "\0",
        str(chars_per_token(ctx.model)),
        "\0",
        "store" if ctx.store is not None else "nostore",
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
    return digest.digest()


def _replay(memo: _Memo, store: CCRWriter | None) -> None:
    if store is not None:
        for original in memo.originals:
            store.put(original)
