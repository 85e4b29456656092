"""The compression pipeline: detect → compress (lossless, then lossy) → CCR → gate.

One call takes one tool output and returns a ``CompressResult``. What it guarantees, whatever
the compressors do:

* **Never larger.** If the estimated tokens of the result are not strictly below the
  input's, the input comes back untouched with strategy ``passthrough``.
* **Deterministic and idempotent.** Same input and config → same bytes. Text that already
  carries one of our markers (``markers.has_marker``) is returned untouched, and so is a
  table SmartCrusher wrote, so compressing an output again changes nothing.
* **Source code is never lossy-compressed**, nor is a numbered Read of a file unless the file
  is a log, search result, diff, table or sectioned document (a line compressor keeps whole
  lines, and the original line numbers are put back on every kept line).
* **Agent wrappers stay verbatim**: Codex's ``exec_command`` header (chunk id, wall time,
  exit code, ``Output:``) is put back in front of the compressed payload, and a retrieval
  gives back the whole original, header and numbering included.
* **Markers are backed.** Compressors write originals to a staging writer; only the originals
  whose keys the accepted output names are handed to ``ctx.store``, and an output naming a
  key nobody stored is rejected (input returned). So nothing orphaned reaches the store and
  no marker can point at nothing.

Lossless before lossy happens inside each compressor (SmartCrusher tries the compact and
table forms before it drops rows). ``PipelineConfig.lossy=False`` keeps only lossless work:
a compressor config with a ``lossless_only`` field gets it set, every other route is off.

Optional fast path: a compressor may define ``compress_parsed(text, value, ctx)``; the
pipeline then passes the JSON value the detector already parsed instead of the text alone,
so the input is parsed once. Without that method ``compress(text, ctx)`` is called.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from headroom.ccr.markers import find_keys, has_marker
from headroom.ccr.store import PendingWrites
from headroom.signals.scans import one_scan
from headroom.transforms.base import CompressContext, Compressor, CompressResult
from headroom.transforms.detect import (
    DIFF,
    HTML,
    JSON_ARRAY,
    JSON_OBJECT,
    LOG,
    PROSE,
    SEARCH,
    SOURCE_CODE,
    Detection,
    detect,
    has_fence,
)
from headroom.transforms.docs import has_sections
from headroom.transforms.json_table import is_table
from headroom.transforms.lines import head_lines
from headroom.transforms.pipeline_config import (
    ROUTES,
    PipelineConfig,
    Route,
    build_route,
)
from headroom.transforms.sections import (
    Section,
    split_json_header,
    split_sections,
    starts_like_json,
)
from headroom.transforms.table import is_table as is_text_table
from headroom.transforms.templates import repetitive
from headroom.transforms.tokens import estimate_tokens
from headroom.transforms.wrappers import restore_numbering, split_numbering, split_wrapper

PASSTHROUGH = "passthrough"
# Below this confidence a prose/code verdict on the whole text triggers a mixed split.
_MIXED_CONFIDENCE = 0.6
# Numbered Read output of these kinds may be compressed (kept lines are verbatim copies).
_NUMBERED_OK = frozenset({LOG, SEARCH, DIFF})
# Prose of at least this many lines is checked for a line-output shape (see _line_output).
_LINE_OUTPUT_MIN_LINES = 40
_LINE_OUTPUT_SAMPLE = 400


@dataclass
class PipelineStats:
    """What one ``compress`` call did and where its time went (for ``/stats``)."""

    kind: str = ""
    strategy: str = PASSTHROUGH
    reason: str = ""  # why the input came back untouched, when it did
    sections: int = 0
    numbered: bool = False
    detect_ms: float = 0.0
    compress_ms: float = 0.0
    ccr_ms: float = 0.0
    total_ms: float = 0.0
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # strategies a lossless steer kept whole


_KIND_ROUTE = {
    JSON_ARRAY: "smart_crusher",
    JSON_OBJECT: "smart_crusher",
    LOG: "log",
    DIFF: "diff",
    SEARCH: "search",
    PROSE: "text",
    # SOURCE_CODE has no route: code is never lossy-compressed. HTML goes to the docs
    # compressor when it has headings (see _routes_for) and passes through otherwise.
}


def _numbered_ok(kind: str, body: str) -> bool:
    """A numbered Read may be compressed where its compressor keeps whole lines (so the
    numbers go back on every kept line): logs, search results, diffs, tables, documents."""
    return kind in _NUMBERED_OK or is_text_table(body) or has_sections(body)


def _point_keys_at(
    staged: PendingWrites, body: str, original: str, output: str, numbered: bool
) -> str:
    """Re-point markers that name what the compressors saw at the caller's original.

    A compressor saw the body without line numbers or wrapper header, and perhaps without
    its surrounding whitespace, and stored that; the original is what the tool returned,
    and a retrieval must give back exactly those bytes. Text without its line numbers is
    bytes the client never sent, so for a numbered Read every marker names the whole
    original (it is one section); otherwise a marker is re-pointed when it stored the
    whole body, and a section's own original (bytes of the client's text) stays.
    """
    exact = original.encode("utf-8")
    whole = {exact if body is original else body.encode("utf-8"), body.strip().encode("utf-8")}
    for key, stored in list(staged.items.items()):
        if stored == exact:
            continue  # already the client's bytes: hashing them again would give this key
        if key in output and (numbered or stored in whole):
            output = output.replace(key, staged.put(exact))
    return output


def _split_whitespace(text: str) -> tuple[str, str, str]:
    core = text.strip()
    if not core:
        return text, "", ""
    start = text.index(core[0])
    return text[:start], core, text[start + len(core) :]


class Pipeline:
    """Routes each tool output (or each section of a mixed one) to its compressor.

    Build one per config and reuse it: construction compiles the compressors' automata.
    ``compress`` keeps no state between calls (each call has its own staging writer and
    stats), so one instance may serve several worker threads at once as long as its
    compressors are pure, which the compressor contract requires.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        compressors: Mapping[str, Compressor] | None = None,
    ) -> None:
        """``compressors`` replaces the built-in compressor of a strategy (``"log"``, ...)
        with another object of the same protocol; the strategy's enable flag and minimum
        size still apply."""
        self.config = config if config is not None else PipelineConfig()
        overrides = dict(compressors or {})
        unknown = set(overrides) - set(ROUTES)
        if unknown:
            raise ValueError(f"unknown strategy name(s): {', '.join(sorted(unknown))}")
        self._routes: dict[str, Route] = {}
        self._overrides = frozenset(overrides)
        self._lossless: dict[str, Route | None] = {}
        self._lossless_lock = threading.Lock()
        for strategy in ROUTES:
            route = build_route(strategy, self.config, overrides.get(strategy))
            if route is not None:
                self._routes[strategy] = route

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        return self.compress_with_stats(text, ctx)[0]

    def compressor(self, strategy: str) -> Compressor:
        """The compressor behind ``strategy`` (a dry run may force one); ``KeyError`` when
        this config turns it off."""
        compressor: Compressor = self._routes[strategy].compressor
        return compressor

    def compress_with_stats(
        self, text: str, ctx: CompressContext
    ) -> tuple[CompressResult, PipelineStats]:
        stats = PipelineStats()
        started = time.perf_counter()
        with one_scan():  # the text is sized here, per section and by its compressor
            tokens_before = estimate_tokens(text, ctx.model)
            result = self._run(text, ctx, tokens_before, stats)
        stats.total_ms = (time.perf_counter() - started) * 1000
        if result is None:
            return CompressResult(text, PASSTHROUGH, tokens_before, tokens_before), stats
        stats.strategy = result.strategy
        return result, stats

    def _run(
        self, text: str, ctx: CompressContext, tokens_before: int, stats: PipelineStats
    ) -> CompressResult | None:
        if not text or text.isspace():
            stats.reason = "empty"
            return None
        if has_marker(text) or is_table(text):  # our own output
            stats.reason = "already_compressed"
            return None
        t0 = time.perf_counter()
        header, payload, trailer = split_wrapper(text)
        numbered = split_numbering(payload)
        body = numbered.body if numbered is not None else payload
        detection = detect(body)
        stats.kind = detection.kind
        stats.numbered = numbered is not None
        sections = self._sections(body, detection, numbered is not None)
        stats.sections = len(sections)
        stats.detect_ms = (time.perf_counter() - t0) * 1000
        if numbered is not None and not _numbered_ok(detection.kind, body):
            stats.reason = "numbered_read"
            return None

        t1 = time.perf_counter()
        use_store = self.config.enable_ccr_marker and ctx.store is not None
        # Staged: nothing reaches the real store until the result is accepted.
        staged = PendingWrites() if use_store else None
        inner = CompressContext(query=ctx.query, store=staged, model=ctx.model, steer=ctx.steer)
        pieces: list[str] = []
        strategies: list[str] = []
        for section in sections:
            out, strategy = self._compress_section(section, inner, stats)
            pieces.append(out)
            if strategy:
                strategies.append(strategy)
        output = "".join(pieces)
        if numbered is not None:
            output = restore_numbering(numbered, output)
        output = header + output + trailer
        if staged is not None:  # also for a bare body: a compressor may have stripped it
            output = _point_keys_at(staged, body, text, output, numbered is not None)
        stats.compress_ms = (time.perf_counter() - t1) * 1000

        if not strategies:
            stats.reason = "nothing_applied"  # no route, too small, or no compressor gained
            return None
        tokens_after = estimate_tokens(output, ctx.model)
        if tokens_after >= tokens_before:
            stats.reason = "no_saving"
            return None
        keys = self._commit(output, strategies, staged, ctx, stats)
        if keys is None:
            return None
        strategy = strategies[0] if len(strategies) == 1 else "mixed:" + "+".join(strategies)
        return CompressResult(output, strategy, tokens_before, tokens_after, keys)

    def _commit(
        self,
        output: str,
        strategies: list[str],
        staged: PendingWrites | None,
        ctx: CompressContext,
        stats: PipelineStats,
    ) -> tuple[str, ...] | None:
        """Write the originals the output's markers name to the real store; None (and the
        output is refused) when a marker names an original that was never staged."""
        t2 = time.perf_counter()
        keys = find_keys(output)
        if keys and (staged is None or any(k not in staged.items for k in keys)):
            message = f"{'+'.join(strategies)}: output names a CCR key that was never stored"
            if self.config.raise_errors:
                raise RuntimeError(message)
            stats.errors.append(message)
            stats.reason = "unbacked_marker"
            return None
        if staged is not None and ctx.store is not None:
            for key in keys:
                ctx.store.put(staged.items[key])
        stats.ccr_ms = (time.perf_counter() - t2) * 1000
        return tuple(keys)

    def _sections(self, body: str, detection: Detection, numbered: bool) -> list[Section]:
        if numbered or not self.config.split_mixed:
            return [Section(body, detection)]
        if detection.kind not in (JSON_ARRAY, JSON_OBJECT):
            headed = split_json_header(body)
            if headed is not None:
                return headed
        unsure = detection.kind in (PROSE, SOURCE_CODE) and (
            detection.confidence < _MIXED_CONFIDENCE or detection.kind == PROSE
        )
        # Text opening like JSON that did not parse whole: JSON plus a trailer, perhaps.
        # (Not for logs: JSON-lines logs open with a bracket too.)
        bracketed = detection.kind in (PROSE, SOURCE_CODE) and starts_like_json(body)
        if has_fence(body) or unsure or bracketed:
            sections = split_sections(body)
            if len(sections) > 1:
                return sections
        return [Section(body, detection)]

    def _compress_section(
        self, section: Section, ctx: CompressContext, stats: PipelineStats
    ) -> tuple[str, str]:
        """The section's new text and the strategy that wrote it ("" if left as it was).
        Routes are tried in order until one gains."""
        kind = section.detection.kind
        if section.protected or kind == SOURCE_CODE:
            return section.text, ""
        lead, core, trail = _split_whitespace(section.text)
        if is_table(core):  # SmartCrusher's own output inside a larger text
            return section.text, ""
        before = estimate_tokens(core, ctx.model)  # the compressor's own count may differ
        for planned in self._routes_for(kind, core):
            if before < planned.min_tokens:
                continue
            route, steered = self._steered(planned, ctx)
            if route is not planned and planned.strategy not in stats.held:
                stats.held.append(planned.strategy)
            if route is None:
                continue
            try:
                result = self._call(route.compressor, core, section.detection, steered)
            except Exception as exc:  # a compressor bug must cost the saving, not the request
                if self.config.raise_errors:
                    raise
                stats.errors.append(f"{route.strategy}: {type(exc).__name__}: {exc}")
                continue
            # The compressor's count decides per section; the whole output is re-counted at
            # the end, which is the gate that guarantees "never larger".
            if result.output != core and result.tokens_after < before:
                return lead + result.output + trail, result.strategy or route.strategy
        return section.text, ""

    def _steered(self, route: Route, ctx: CompressContext) -> tuple[Route | None, CompressContext]:
        """The route and context after what was learned about this tool's outputs: a
        lossless steer swaps in the compressor's lossless mode (none: the section stays as
        it is), learned terms join the relevance context."""
        steer = ctx.steer.get(route.strategy)
        if steer is None:
            return route, ctx
        chosen: Route | None = route
        if steer.lossless and self.config.lossy:
            chosen = self._lossless_route(route.strategy)
        if steer.terms:
            query = "\n".join(p for p in (ctx.query, " ".join(steer.terms)) if p)
            ctx = dataclasses.replace(ctx, query=query)
        return chosen, ctx

    def _lossless_route(self, strategy: str) -> Route | None:
        """The lossless-only route of ``strategy``, built at first use (most proxies never
        learn that a tool must be kept whole). A replaced compressor has none."""
        with self._lossless_lock:
            if strategy not in self._lossless:
                override = strategy in self._overrides
                lossless = dataclasses.replace(self.config, lossy=False)
                self._lossless[strategy] = (
                    None if override else build_route(strategy, lossless, None)
                )
            return self._lossless[strategy]

    def _routes_for(self, kind: str, core: str) -> list[Route]:
        """Which compressors may take a section, in order: its kind's own, unless the text
        is a table (rows), a sectioned document (docs first, prose after) or line-shaped
        program output detected as prose (log)."""
        names = [_KIND_ROUTE.get(kind, "")]
        if kind in (PROSE, LOG) and is_text_table(core):
            names = ["table"]
        elif kind in (PROSE, HTML) and has_sections(core):
            names = ["docs", *names]
        elif kind == PROSE and self._line_output(core):
            names = ["log"]
        return [self._routes[n] for n in names if n in self._routes]

    @staticmethod
    def _line_output(text: str) -> bool:
        """Prose by its words but program output by its shape (a test runner's verbose
        lines, a checker's report, a listing, ``git log --stat``): the log compressor's
        templates fit it, and the prose compressor would only fold exact repeats."""
        if text.count("\n") < _LINE_OUTPUT_MIN_LINES:
            return False
        return repetitive(head_lines(text, _LINE_OUTPUT_SAMPLE))  # the head tells the shape

    @staticmethod
    def _call(compressor: Any, core: str, detection: Detection, ctx: CompressContext) -> Any:
        fast = getattr(compressor, "compress_parsed", None)
        if fast is not None and detection.value is not None:
            return fast(core, detection.value, ctx)
        return compressor.compress(core, ctx)
