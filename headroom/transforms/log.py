"""Build and test logs: keep what went wrong and what the run amounted to, drop the chatter.

Kept verbatim: every error line (an error keyword, or an error shape such as ``KeyError: x``,
``npm ERR!``, ``make: *** Error 2``, a non-zero exit code) with ``error_context`` lines on
each side; stack traces (Python, JS/Java ``at`` frames, Rust panics and ``-->`` locations,
Go goroutine dumps) up to ``max_trace_lines`` each; test and build summaries; the first and
last lines of the log. Warnings are deduplicated by template (numbers, ids, paths and
timestamps normalised) and the first ``max_warning_kinds`` kinds kept with a count.

Unlike the reference, no error line is ever dropped for a cap: identical error lines are
folded into the first with a count, distinct ones all stay.

Without a store (``ctx.store is None``) the same lines are kept and every gap says how many
lines it stood for; the dropped lines are then gone for good, which is the documented price
of running without CCR.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from headroom.ccr.markers import lines_marker
from headroom.signals.importance import (
    SUMMARY,
    TRACE,
    Importance,
    Tiered,
    default_detector,
    line_starts,
    resolve,
)
from headroom.signals.keywords import ERROR, WARNING
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.lines import (
    already_compressed,
    finish,
    fold_runs,
    normalise_many,
    note,
    passthrough,
    rare_term_hits,
    render,
    split_lines,
    window,
)


@dataclass(frozen=True)
class LogConfig:
    min_lines: int = 40  # shorter logs are returned untouched
    error_context: int = 2  # lines kept before and after each error line
    head_lines: int = 2  # the command / first output lines
    tail_lines: int = 3  # the end of a log usually says how it ended
    max_traces: int = 5  # distinct stack traces kept whole
    max_trace_lines: int = 40  # a longer trace keeps its head and tail
    max_warning_kinds: int = 10  # distinct warning templates kept
    max_query_lines: int = 20  # lines naming a rare query term (an id, a host) kept
    lossless_only: bool = False  # only fold runs of identical lines (with their count)


_INDENTED = re.compile(r"[ \t]+\S")


class LogCompressor:
    name = "log"

    def __init__(self, config: LogConfig | None = None, detector: Tiered | None = None) -> None:
        self.config = config or LogConfig()
        self._detector = detector or default_detector()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        built = None if already_compressed(text) else self._build(text, ctx.query)
        if built is None:
            return passthrough(text, ctx)
        body, before = built
        kept = len(body)
        if self.config.lossless_only:
            return finish(text, body, ctx, self.name, None)
        return finish(text, body, ctx, self.name, lambda k: lines_marker(k, before, kept))

    def _build(self, text: str, query: str) -> tuple[list[str], int] | None:
        """Output lines and the input's line count, or None to pass through. The split lines
        and signals are dropped on return, before ``finish`` estimates tokens."""
        lines = split_lines(text)
        if len(lines) < self.config.min_lines:
            return None
        if self.config.lossless_only:
            return _lossless(lines), len(lines)
        signals = self._detector.scan_all(text, "log")
        keep, after, covers = self._select(lines, signals)
        keep |= self._asked_for(text, query, len(lines))
        return render(lines, keep, after=after, covers=covers), len(lines)

    def _asked_for(self, text: str, query: str, n: int) -> set[int]:
        """Lines naming a rare term of the query (a request id, an order number, a host):
        what the user asked about, even when the line itself looks ordinary."""
        cfg = self.config
        hits = rare_term_hits(text, query, max(3, n // 50))
        if not hits:
            return set()
        starts = line_starts(text)
        found: dict[int, None] = {}
        for hit in hits:
            found.setdefault(bisect_right(starts, hit.start) - 1, None)
            if len(found) >= cfg.max_query_lines:
                break
        return set(found)

    def _select(
        self, lines: list[str], signals: dict[int, list[Importance]]
    ) -> tuple[set[int], dict[int, str], dict[int, int]]:
        cfg = self.config
        n = len(lines)
        errors: list[int] = []
        summaries: list[int] = []
        warnings: list[int] = []
        trace_lines: set[int] = set()
        for i, found in signals.items():
            top = resolve(found)
            if top.category == TRACE:
                trace_lines.add(i)
            elif top.category == ERROR or any(f.category == ERROR for f in found):
                errors.append(i)
            elif top.category == SUMMARY:
                summaries.append(i)
            elif top.category == WARNING:
                warnings.append(i)
        after: dict[int, str] = {}
        firsts = _fold_identical(lines, sorted(errors), after, "identical lines")
        keep: set[int] = set(summaries)
        keep.update(firsts)
        keep.update(window(firsts, cfg.error_context, n))
        keep.update(range(min(cfg.head_lines, n)))
        keep.update(range(max(0, n - cfg.tail_lines), n))
        keep.update(self._traces(lines, trace_lines, set(errors), after))
        keep.update(self._warnings(lines, sorted(warnings), after))
        keep.difference_update(set(errors).difference(firsts))  # folded copies
        covers: dict[int, int] = {}
        fold_runs(lines, keep, set(errors) | set(summaries), after, covers, exact=False)
        return keep, after, covers

    def _traces(
        self, lines: list[str], frames: set[int], errors: set[int], after: dict[int, str]
    ) -> set[int]:
        """Whole traces: each maximal run of frame lines, with the indented source lines
        and blank lines inside it, the line before it (the message of Java/JS traces) and
        the line after it (Python's exception line). Identical traces are kept once."""
        keep: set[int] = set()
        seen: dict[tuple[str, ...], int] = {}
        kinds = 0
        for start, end in _trace_blocks(lines, frames):
            block = tuple(normalise_many(lines[start:end]))
            if block in seen:
                first = seen[block]
                after[first] = _bump(after.get(first), "identical traces")
                continue
            seen[block] = end - 1
            kinds += 1
            if kinds > self.config.max_traces:
                keep.update((start, end - 1))
                continue
            keep.update(_head_tail(start, end, self.config.max_trace_lines))
        return keep | {i for i in errors if i in frames}

    def _warnings(self, lines: list[str], warnings: list[int], after: dict[int, str]) -> set[int]:
        templates = normalise_many([lines[i] for i in warnings])
        first: dict[str, int] = {}
        counts: dict[int, int] = {}
        for i, tpl in zip(warnings, templates, strict=True):
            j = first.setdefault(tpl, i)
            counts[j] = counts.get(j, 0) + (j != i)
        kept = list(first.values())[: self.config.max_warning_kinds]
        for j in kept:
            if counts[j]:
                after[j] = note(counts[j], "similar warnings omitted")
        return set(kept)


def _lossless(lines: list[str]) -> list[str]:
    keep = set(range(len(lines)))
    after: dict[int, str] = {}
    covers: dict[int, int] = {}
    fold_runs(lines, keep, set(), after, covers, exact=True)
    return render(lines, keep, after=after, covers=covers)


def _trace_blocks(lines: list[str], frames: set[int]) -> list[tuple[int, int]]:
    """(start, end) of each trace: frame runs joined across indented/blank lines."""
    blocks: list[tuple[int, int]] = []
    for i in sorted(frames):
        if blocks and i <= blocks[-1][1] + 2 and _bridges(lines, blocks[-1][1], i):
            blocks[-1] = (blocks[-1][0], i + 1)
        else:
            blocks.append((i, i + 1))
    return [_extend(lines, start, end) for start, end in blocks]


_MESSAGE_LINES = 8  # how far above JS/Java frames the failure message may start


def _extend(lines: list[str], start: int, end: int) -> tuple[int, int]:
    """Add what belongs to a run of frames: the message above JS/Java frames (indented or
    blank lines up to the first unindented one, as jest and node print it), the source
    lines under the last frame, and the exception line after a Python traceback."""
    n = len(lines)
    python = lines[start].startswith("Traceback") or lines[start].lstrip().startswith('File "')
    s = start
    if not python:
        while s > 0 and start - s < _MESSAGE_LINES:
            s -= 1
            if lines[s].strip() and not _INDENTED.match(lines[s]):
                break
    e = end
    while e < n and e - end < 3 and _INDENTED.match(lines[e]):
        e += 1
    if python and e < n and lines[e].strip():
        e += 1
    return s, e


def _bridges(lines: list[str], gap_start: int, gap_end: int) -> bool:
    return all(not x.strip() or _INDENTED.match(x) for x in lines[gap_start:gap_end])


def _head_tail(start: int, end: int, cap: int) -> range | set[int]:
    if end - start <= cap:
        return range(start, end)
    head = cap // 3
    return set(range(start, start + head)) | set(range(end - (cap - head), end))


def _fold_identical(
    lines: list[str], indices: list[int], after: dict[int, str], what: str
) -> list[int]:
    """First occurrence of each distinct line; later exact copies become a count note."""
    first: dict[str, int] = {}
    counts: dict[int, int] = {}
    for i in indices:
        j = first.setdefault(lines[i], i)
        if j != i:
            counts[j] = counts.get(j, 0) + 1
    for j, c in counts.items():
        after[j] = note(c, f"{what} omitted")
    return list(first.values())


def _bump(existing: str | None, what: str) -> str:
    count = 1
    if existing:
        m = re.match(r"\[\.\.\. (\d+) ", existing)
        count = int(m.group(1)) + 1 if m else 1
    return note(count, f"{what} omitted")
