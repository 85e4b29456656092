"""The buffered route's transform: compress tool outputs off the loop, with a deadline.

Order for one request: bypass checks → decode Content-Encoding (bounded) → rewrite in a
worker thread (the event loop only moves bytes) → store what was dropped → forward the new
body. Every way out that forwards the original is counted with its reason and logged; none
is silent. A client that leaves cancels the work (the rewrite checks a flag between tool
outputs), and so does the deadline.

Threads, not processes: the rewrite releases the GIL inside orjson, regex and the
automaton, and the loop thread is given the GIL back often (``sys.setswitchinterval``),
which keeps other connections' added latency within a few milliseconds while a large body
is compressed; the bench measures it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.shared_memory import SharedMemory

from headroom.ccr.store import PendingWrites, StoreError
from headroom.learning.learner import Learner, guarded
from headroom.providers.base import Provider
from headroom.providers.memo import MemoPipeline
from headroom.providers.registry import PROVIDERS, provider_for
from headroom.providers.rewrite import (
    Cancelled,
    KeysSeen,
    Plan,
    Rewrite,
    Steered,
    Steering,
    rewrite_request,
)
from headroom.proxy.encoding import DecodeError, UnknownEncoding, content_coding, decode
from headroom.proxy.headers import header_value
from headroom.proxy.seams import Decision, Requested, Services
from headroom.proxy.shared_body import borrow, give_back, lend
from headroom.proxy.turns import contains_any
from headroom.transforms.base import CompressContext
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig

BYPASS_HEADER = b"x-headroom-bypass"
SWITCH_INTERVAL = 0.0005


class Compression:
    def __init__(self, app: Services) -> None:
        self.app = app
        self.config = app.config
        self.declare = app.config.retrieve_tool == "always"
        self.pipeline = MemoPipeline(Pipeline(PipelineConfig()), app.config.memo_max_bytes)
        self._process_memo = (0, 0)  # (bytes, entries) the compression process last reported
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="headroom-compress")
        self.processes: ProcessPoolExecutor | None = None
        self._process_ready = False
        sys.setswitchinterval(SWITCH_INTERVAL)

    @property
    def memo_size(self) -> tuple[int, int]:
        """(bytes, entries) of the compressed-output memos: this process's and the
        compression process's (as of its last rewrite)."""
        own_bytes, own_entries = self.pipeline.size
        return own_bytes + self._process_memo[0], own_entries + self._process_memo[1]

    async def __call__(self, ex: Requested, body: bytes | bytearray) -> Decision:
        """What to forward for this buffered body; decides, and writes nothing elsewhere."""
        stats = self.app.stats
        unchanged = Decision(body)
        reason = self._bypass_reason(ex)
        if reason is not None:
            stats.bypassed[reason] += 1
            return unchanged
        provider = provider_for(ex.path.decode("latin-1"))
        if provider is None:
            return unchanged
        query = ex.head.target.partition(b"?")[2]
        if provider.sse_by_query and b"alt=sse" not in query.split(b"&"):
            # The answer streams as a JSON array, which the retrieval loop cannot follow:
            # a marker sent here could never be answered, so the body goes as it came.
            stats.bypassed["stream_not_sse"] += 1
            return unchanged
        coding = content_coding(ex.head.headers)
        if coding is None and not await self._may_compress(provider, body):
            return unchanged  # decided on the loop: no thread hand-off, no parse
        plain = body
        if coding is not None:
            decoded = await self._decode(ex, coding, body)
            if decoded is None:
                return unchanged
            plain = decoded
        result = await self._steered_rewrite(ex, plain, provider)
        if result is None or not result.changed:
            if result is not None and result.skipped_reason:
                stats.bypassed[result.skipped_reason.split(":")[0]] += 1
            if result is not None:
                await self._learn(ex, result)
            return unchanged
        if not await self._store(ex, result):
            return unchanged
        await self._learn(ex, result)
        self._count(result)
        drop: frozenset[bytes] = frozenset({b"content-encoding"} if plain is not body else ())
        if not len(result.writes) and not result.declared:
            return Decision(result.body, drop, tokens_saved=result.tokens_saved)
        # Markers went out, or the tool was declared anyway: the proxy serves the model's
        # headroom_retrieve calls, and a streamed answer must arrive unencoded for the
        # proxy to follow it.
        if result.streams:
            drop |= {b"accept-encoding"}
        return Decision(
            result.body, drop, provider, result.streams, result.tokens_saved, result.context
        )

    async def _may_compress(self, provider: Provider, body: bytes | bytearray) -> bool:
        """Whether the body can hold a tool output worth compressing, from a scan of its
        bytes: an output is at least --compression-min-chars long, and its API spells it
        with one of the provider's hints. (Served rounds are put back only into such
        bodies: a round was served because an output of this conversation was compressed,
        and the client sends that output again with every turn.) A large body is scanned
        a slice per loop turn (``turns.py``).
        With --retrieve-tool always, ``"tools"`` is a reason too (its tools may need ours
        added), whatever the body's length; one scan looks for every reason."""
        turns = self.app.turns
        if len(body) < self.config.compression_min_chars:
            return self.declare and await contains_any(body, (b'"tools"',), turns)
        hints = provider.shape.output_hints
        return await contains_any(body, (b'"tools"', *hints) if self.declare else hints, turns)

    def _bypass_reason(self, ex: Requested) -> str | None:
        if self.config.compression == "off":
            return "disabled"
        flag = header_value(ex.head.headers, BYPASS_HEADER)
        if flag is not None and flag.strip().lower() in (b"1", b"true", b"yes", b"on"):
            return "bypass_header"
        return None

    async def _decode(self, ex: Requested, encoding: str, body: bytes | bytearray) -> bytes | None:
        limit = self.config.max_body_bytes
        try:
            # Off the loop: a small body may inflate to the limit (see encoding.py).
            return await self.app.loop.run_in_executor(self.executor, decode, encoding, body, limit)
        except UnknownEncoding:
            self.app.stats.bypassed["unknown_encoding"] += 1
            self.app.log.info(
                "compression_skipped",
                request_id=ex.request_id.decode(),
                reason="unknown_encoding",
                encoding=encoding,
            )
        except DecodeError as exc:
            self.app.stats.bypassed["undecodable_body"] += 1
            self.app.log.warning(
                "compression_skipped",
                request_id=ex.request_id.decode(),
                reason="undecodable_body",
                error=str(exc),
            )
        return None

    async def _steered_rewrite(
        self, ex: Requested, body: bytes | bytearray, provider: Provider
    ) -> Rewrite | None:
        """The rewrite, steered by what was learned. Outputs no process compressed before
        get the current steers; for the others the decision taken at their first sight is
        fetched first (a second pass, only when this process's memo lacks some outputs),
        so an output keeps its bytes across workers and hosts."""
        learner = self.app.learner
        if learner is None:
            return await self._rewrite(ex, body, provider, None)
        steers = await guarded(learner, "steers", learner.steers(), self.app.log)
        steering = Steering(steers or {})
        result = await self._rewrite(ex, body, provider, steering)
        if result is None or not result.needs:
            return result
        decided = await guarded(
            learner,
            "decisions",
            learner.decisions(result.needs),
            self.app.log,
            request_id=ex.request_id.decode(),
        )
        again = Steering(steering.steers, decided or {})
        return await self._rewrite(ex, body, provider, again, result.plan)

    async def _learn(self, ex: Requested, result: Rewrite) -> None:
        learner = self.app.learner
        if learner is None:
            return
        if result.seen or result.decided:
            call = learner.record_compressed(result.seen, result.decided)
            await guarded(learner, "record", call, self.app.log, request_id=ex.request_id.decode())
        for steered in result.steered:
            learner.in_background(self._measure(learner, steered))

    async def _measure(self, learner: Learner, steered: Steered) -> None:
        """What a steer cost: the output compressed again without it, on the compression
        thread, after the request has left."""
        ctx = CompressContext(steered.query, PendingWrites(), steered.model)
        plain = await self.app.loop.run_in_executor(
            self.executor, self.pipeline.pipeline.compress, steered.text, ctx
        )
        extra = steered.tokens_after - plain.tokens_after
        call = learner.record_extra(steered.tool, steered.program, steered.strategy, extra)
        await guarded(learner, "extra", call, self.app.log)
        self.app.log.info(
            "learning_cost",
            tool=steered.tool,
            program=steered.program,
            kind=steered.strategy,
            extra_tokens=extra,
        )

    async def _rewrite(
        self,
        ex: Requested,
        body: bytes | bytearray,
        provider: Provider,
        steering: Steering | None,
        plan: Plan | None = None,
        threads_only: bool = False,
    ) -> Rewrite | None:
        cancel = threading.Event()
        lent: SharedMemory | None = None
        if plan is None and not threads_only and self._use_process(body):
            lent = await lend(body)
        try:
            future = self._submit(body, provider, steering, plan, cancel, lent)
            result = await self._outcome(ex, future, len(body))
        finally:
            cancel.set()  # client gone (task cancelled) or done: either way, stop
            if lent is not None:  # also when a broken pool refused the call
                give_back(lent)
        if result is None:
            return None
        if result.memo_size is not None:
            self._process_memo = result.memo_size
        if lent is not None and await self._rounds_to_restore(result):
            return await self._rewrite(ex, body, provider, steering, threads_only=True)
        self.app.stats.stage("rewrite", result.seconds * 1000)
        for stage, ms in result.stages.items():
            self.app.stats.stage(stage, ms)
        return result

    def _submit(
        self,
        body: bytes | bytearray,
        provider: Provider,
        steering: Steering | None,
        plan: Plan | None,
        cancel: threading.Event,
        lent: SharedMemory | None,
    ) -> asyncio.Future[Rewrite]:
        """The rewrite, started off the loop: in the compression process when ``lent``
        holds the body there, else on a thread (which ``cancel`` can stop)."""
        loop = self.app.loop
        min_chars = self.config.compression_min_chars
        if lent is not None:
            return loop.run_in_executor(
                self.processes,
                _rewrite_in_worker,
                lent.name,
                len(body),
                provider.name,
                min_chars,
                steering,
                self.declare,
            )
        return loop.run_in_executor(
            self.executor,
            lambda: rewrite_request(
                bytes(body),  # a no-op for bytes; a gathered body is copied here, off the loop
                provider,
                self.pipeline,
                min_chars=min_chars,
                cancel=cancel,
                rounds=self.app.rounds,
                steering=steering,
                plan=plan,
                keep_plan=True,
                declare=self.declare,
            ),
        )

    async def _outcome(
        self, ex: Requested, future: asyncio.Future[Rewrite], size: int
    ) -> Rewrite | None:
        """The rewrite's result; None (counted and logged) when it timed out or failed, or
        when the request was cancelled: the body then goes as it came."""
        try:
            async with asyncio.timeout(self.config.compression_timeout):
                return await future
        except TimeoutError:
            self.app.stats.bypassed["timeout"] += 1
            self.app.log.warning(
                "compression_timeout",
                request_id=ex.request_id.decode(),
                timeout_s=self.config.compression_timeout,
                bytes=size,
            )
        except Cancelled:
            pass
        except Exception as exc:  # an engine bug costs one request's savings, nothing more
            self.app.stats.bypassed["engine_error"] += 1
            self.app.log.error(
                "compression_failed",
                request_id=ex.request_id.decode(),
                error=f"{type(exc).__name__}: {exc}",
            )
        return None

    async def _rounds_to_restore(self, result: Rewrite) -> bool:
        """Whether the ledger holds a served round for an answer the compression process
        saw (it reads what this process does not know yet)."""
        rounds = self.app.rounds
        return (
            rounds is not None and bool(result.round_keys) and await rounds.holds(result.round_keys)
        )

    def _use_process(self, body: bytes | bytearray) -> bool:
        """Large bodies compress in a separate process once it is up.

        A worker thread holds the GIL through each long C call (a 1 MB orjson parse, a
        regex or automaton pass), and the event loop waits that long to move any byte: with
        threads, small requests' p99 grew by ~8 ms while 1 MB bodies compressed. A process
        costs a copy of the body each way and cannot be interrupted, so small bodies stay
        on threads. The process starts at the first large body (which still uses a thread),
        so a proxy that never sees one never pays for it. The process cannot read the
        ledger of served rounds: it names the answers it saw, and when the ledger holds
        one of them the body is rewritten again on a thread (``_rounds_to_restore``).
        """
        if len(body) < PROCESS_MIN_BYTES:
            return False
        if self.processes is None:
            context = multiprocessing.get_context("spawn")
            self.processes = ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                initializer=_worker_init,
                initargs=(os.getpid(), self.config.memo_max_bytes),
            )
            warm = self.processes.submit(_worker_ready)
            warm.add_done_callback(lambda f: setattr(self, "_process_ready", f.exception() is None))
            return False
        return self._process_ready

    async def _store(self, ex: Requested, result: Rewrite) -> bool:
        """Durable before visible: the originals are stored before any marker leaves."""
        originals = list(result.writes.items.values())
        if not originals:
            return True
        store = self.app.store
        try:
            if store is None:
                raise StoreError("ccr: no store configured")
            await store.put_many(originals)
        except StoreError as exc:
            self.app.stats.ccr_store_failures += 1
            self.app.stats.bypassed["store_failed"] += 1
            self.app.log.warning(
                "ccr_store_failed", request_id=ex.request_id.decode(), error=str(exc)
            )
            return False
        self.app.stats.ccr_stores += len(originals)
        return True

    def _count(self, result: Rewrite) -> None:
        stats = self.app.stats
        stats.rounds_restored += result.restored
        if not result.outputs_compressed:
            return
        stats.compressed_requests += 1
        stats.tokens_before += result.tokens_before
        stats.tokens_after += result.tokens_after
        if result.tokens_before:
            stats.ratio.observe(result.tokens_after / result.tokens_before)
        for strategy, tally in result.by_strategy.items():
            stats.by_strategy[strategy] += tally.count
            stats.saved_by_strategy[strategy] += tally.tokens_saved
        for tool, tally in result.by_tool.items():
            stats.compressed_tool(tool, tally.count, tally.tokens_saved)


# ---------------------------------------------------------------- compression process

PROCESS_MIN_BYTES = 256 * 1024
_WORKER: dict[str, MemoPipeline] = {}


def _worker_init(parent: int, memo_max_bytes: int) -> None:
    _exit_with_parent(parent)
    _WORKER["pipeline"] = MemoPipeline(Pipeline(PipelineConfig()), memo_max_bytes)


_PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """End this process once the proxy that started it is gone, even by ``kill -9``.

    The pool's queues hand this process a copy of their write ends, so it never reads EOF
    when the proxy dies and would wait forever; instead a daemon thread watches the parent
    pid (a dead parent's children are handed to another process). ``parent`` comes from
    the proxy itself: it may already be gone while this process is still importing."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="headroom-parent-watch", daemon=True).start()


def _worker_ready() -> bool:
    return "pipeline" in _WORKER


def _rewrite_in_worker(
    name: str,
    size: int,
    provider_name: str,
    min_chars: int,
    steering: Steering | None,
    declare: bool,
) -> Rewrite:
    body = borrow(name, size)
    pipeline = _WORKER["pipeline"]
    provider = PROVIDERS[provider_name]
    seen = KeysSeen()
    result = rewrite_request(
        body,
        provider,
        pipeline,
        min_chars=min_chars,
        steering=steering,
        declare=declare,
        rounds=seen,
    )
    result.round_keys = seen.keys
    result.memo_size = pipeline.size
    if result.body is body:  # the proxy has these bytes: do not pickle them back
        result.body, result.same_body = b"", True
    return result
