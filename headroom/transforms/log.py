"""Build and test logs: keep what went wrong and what the run amounted to, drop the chatter.

Kept verbatim, whatever the size of the log (must-keep units):

* every error line (an error keyword, or an error shape such as ``KeyError: x``, ``npm
  ERR!``, ``make: *** Error 2``, a non-zero exit code) with ``error_context`` lines on each
  side, and beyond that window the nearby lines that name what the error is about (a URL,
  a host:port, a path, an exit code);
* stack traces (Python, JS/Java ``at`` frames, Rust panics and ``-->`` locations, Go
  goroutine dumps) up to ``max_trace_lines`` each;
* every line of a rare template (``templates.py``): among three hundred ``status installed``
  lines, the one ``remove`` is the news;
* one line of every warning template, with a count of its repeats;
* test and build summaries, and the first and last lines of the log;
* the header of the section every kept line stands in (the ``pkg/sub:`` of a recursive
  listing, the ``____ test_x ____`` of a failure), so a line is never shown without
  the directory or test it belongs to.

An error block (a traceback, a compiler error's location, source, caret and message) is
one unit: repeats are folded only when the whole block repeats exactly, so eight syntax
errors at eight locations stay eight, even though their message lines are identical. No
error line is ever dropped for a cap. Of each frequent template one example line stays, and
every gap note says which templates it held (``[... 206 lines omitted: 198x "status
installed <*> <*>", 8x "configure <*>"]``).

Without a store (``ctx.store is None``) the same lines are kept and every gap says how many
lines it stood for; the dropped lines are then gone for good, which is the documented price
of running without CCR.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
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
    GapNote,
    already_compressed,
    finish,
    fold_runs,
    lines_note,
    normalise_many,
    note,
    passthrough,
    render,
    split_lines,
    window,
)
from headroom.transforms.templates import Templates, describe, mine
from headroom.transforms.terms import rare_term_hits


@dataclass(frozen=True)
class LogConfig:
    min_lines: int = 40  # shorter logs are returned untouched
    error_context: int = 2  # lines kept before and after each error line
    head_lines: int = 2  # the command / first output lines
    tail_lines: int = 3  # the end of a log usually says how it ended
    max_traces: int = 5  # distinct stack traces kept whole
    max_trace_lines: int = 40  # a longer trace keeps its head and tail
    max_query_lines: int = 40  # lines naming a rare query term (an id, a host) kept
    max_named_section: int = 40  # a section (directory, commit, test) that long or shorter
    # is kept whole when a line of it names a rare query term; a longer one keeps ±2 lines
    rare_count: int = 3  # a template seen at most this many times is rare: its lines stay
    # ... unless rare lines are more than this share of the log (free text, not a template
    # log: rarity then tells nothing apart)
    rare_share: float = 0.25
    identifier_radius: int = 4  # lines this close to an error are kept if they name a target
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
        templates = mine(lines, text)
        starts = line_starts(text)
        asked = self._asked_for(text, query, starts)
        sections = _section_starts(text, starts)
        keep, after, covers = self._select(lines, signals, templates, asked, sections)
        gap = _template_note(lines, templates)
        return render(lines, keep, gap, after=after, covers=covers), len(lines)

    def _asked_for(self, text: str, query: str, starts: Sequence[int]) -> set[int]:
        """Lines naming a rare term of the query (a request id, an order number, a host),
        rarest terms first: what the user asked about, even when the line itself looks
        ordinary."""
        cfg = self.config
        hits = rare_term_hits(text, query, max(3, len(starts) // 50))
        if not hits:
            return set()
        by_word: dict[str, dict[int, None]] = {}
        for hit in hits:
            by_word.setdefault(hit.word, {}).setdefault(bisect_right(starts, hit.start) - 1)
        found: dict[int, None] = {}
        for word in sorted(by_word, key=lambda w: (len(by_word[w]), w)):
            for i in by_word[word]:
                found.setdefault(i)
                if len(found) >= cfg.max_query_lines:
                    return set(found)
        return set(found)

    def _select(
        self,
        lines: list[str],
        signals: dict[int, list[Importance]],
        templates: Templates,
        asked: set[int],
        sections: list[int],
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
        firsts = _fold_identical_blocks(lines, sorted(errors), after)
        keep: set[int] = set(summaries)
        keep.update(firsts)
        keep.update(window(firsts, cfg.error_context, n))
        rare = templates.rare(max(cfg.rare_count, n // 200))
        if len(rare) <= cfg.rare_share * n:
            keep.update(rare)
        keep.update(_examples(templates))
        keep.update(range(min(cfg.head_lines, n)))
        keep.update(range(max(0, n - cfg.tail_lines), n))
        traces, trace_starts = self._traces(lines, trace_lines, set(errors), after)
        keep.update(traces)
        keep.update(_targets_near(lines, [*firsts, *trace_starts], cfg.identifier_radius))
        keep.update(self._warnings(lines, sorted(warnings), after))
        keep.difference_update(set(errors).difference(firsts))  # folded copies
        keep |= _around_asked(asked, sections, n, cfg.max_named_section)
        keep |= _headers_of(sections, keep)
        covers: dict[int, int] = {}
        protected = set(errors) | set(summaries) | set(rare) | asked
        fold_runs(lines, keep, protected, after, covers, exact=False)
        return keep, after, covers

    def _traces(
        self, lines: list[str], frames: set[int], errors: set[int], after: dict[int, str]
    ) -> tuple[set[int], list[int]]:
        """Whole traces: each maximal run of frame lines, with the indented source lines
        and blank lines inside it, the line before it (the message of Java/JS traces) and
        the line after it (Python's exception line). Identical traces are kept once.
        Returns the kept lines and where each distinct trace starts."""
        keep: set[int] = set()
        starts: list[int] = []
        seen: dict[tuple[str, ...], int] = {}
        kinds = 0
        for start, end in _trace_blocks(lines, frames):
            block = tuple(lines[start:end])  # the same trace, not one of the same shape
            if block in seen:
                first = seen[block]
                after[first] = _bump(after.get(first), "identical traces")
                continue
            seen[block] = end - 1
            starts.append(start)
            kinds += 1
            if kinds > self.config.max_traces:
                keep.update((start, end - 1))
                continue
            keep.update(_head_tail(start, end, self.config.max_trace_lines))
        return keep | {i for i in errors if i in frames}, starts

    def _warnings(self, lines: list[str], warnings: list[int], after: dict[int, str]) -> set[int]:
        templates = normalise_many([lines[i] for i in warnings])
        first: dict[str, int] = {}
        counts: dict[int, int] = {}
        for i, tpl in zip(warnings, templates, strict=True):
            j = first.setdefault(tpl, i)
            counts[j] = counts.get(j, 0) + (j != i)
        kept = list(first.values())
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


def _fold_identical_blocks(
    lines: list[str], indices: list[int], after: dict[int, str]
) -> list[int]:
    """First occurrence of each distinct error block; later exact copies become a count note.

    An error's block is the line with the indented lines right above it (at most
    ``_BLOCK_LINES``) and the line heading those: a compiler's location, source and caret
    above the message. Two ``SyntaxError: invalid syntax`` lines under different ``File ...,
    line N`` locations are different errors and both stay; two ``ERROR timeout`` lines after
    ordinary log lines are the same error."""
    first: dict[tuple[str, ...], int] = {}
    counts: dict[int, int] = {}
    for i in indices:
        j = first.setdefault(_block_above(lines, i), i)
        if j != i:
            counts[j] = counts.get(j, 0) + 1
    for j, c in counts.items():
        after[j] = note(c, "identical error blocks omitted")
    return list(first.values())


_BLOCK_LINES = 4


def _block_above(lines: list[str], i: int) -> tuple[str, ...]:
    """The indented lines right above line ``i`` and, when there are any, the line that
    heads them (the ``File "x.py", line 9`` location of a source line and caret)."""
    start = i
    while start > 0 and i - start < _BLOCK_LINES and _INDENTED.match(lines[start - 1]):
        start -= 1
    if start < i and start > 0 and lines[start - 1].strip():
        start -= 1
    return tuple(lines[start : i + 1])


# What an error is about: a URL, a host:port, a path with a directory, an exit code.
_TARGET_RE = re.compile(
    r"\w+://\S+|\b[\w.-]+:\d{2,5}\b|(?:^|[\s'\"(=])(?:[A-Za-z]:)?[\w.~-]*[/\\][\w.~/\\-]+"
    r"|exit(?:ed)?(?: with)? (?:code|status)",
    re.I,
)


def _targets_near(lines: list[str], anchors: list[int], radius: int) -> set[int]:
    """Lines within ``radius`` of an error or trace that name what it is about."""
    n = len(lines)
    out: set[int] = set()
    for i in window(anchors, radius, n):
        if _TARGET_RE.search(lines[i]):
            out.add(i)
    return out


# A section header: ``pkg/sub:`` after a blank line (``ls -R``, ``make`` directories), a
# ruled title (``____ test_x ____``, ``=== FAILURES ===``, ``--- Captured stdout ---``), a
# ``git log`` commit, a Markdown heading.
# Each alternative starts at the newline before its line, so the engine jumps from line
# start to line start instead of testing an anchor at every character; line 0 is matched
# on its own.
_SECTION_ALT = (
    r"(?:commit [0-9a-f]{7,64}\b|#{1,6} \S"
    r"|(?:_{3,}|={3,}|-{3,}) \S[^\n]{0,200} (?:_{3,}|={3,}|-{3,})\r?(?=\n|\Z)"
    r"|(?<=\n\n)[^\n]{0,199}:[ \t\r]*(?=\n|\Z))"
)
_SECTION_RE = re.compile("\n" + _SECTION_ALT)
_FIRST_SECTION_RE = re.compile(_SECTION_ALT.replace("(?<=\\n\\n)", ""))


def _section_starts(text: str, starts: Sequence[int]) -> list[int]:
    """Line indices of section headers (``starts``: the text's line offsets): one regex
    pass over the text, not one per line."""
    found = [0] if _FIRST_SECTION_RE.match(text) else []
    found.extend(bisect_right(starts, m.start() + 1) - 1 for m in _SECTION_RE.finditer(text))
    return found


def _around_asked(asked: set[int], sections: list[int], n: int, whole: int) -> set[int]:
    """What a line the query names brings along: its whole section when that is short (the
    directory listing, the commit, the test), else two lines on each side."""
    out = set(asked)
    for i in asked:
        s = bisect_right(sections, i) - 1
        start = sections[s] if s >= 0 else 0
        end = sections[s + 1] if s + 1 < len(sections) else n
        out.update(range(start, end) if end - start <= whole else window([i], 2, n))
    return out


def _headers_of(sections: list[int], keep: set[int]) -> set[int]:
    """The header of the section each kept line stands in: a line of a listing or a test
    section means little without the directory or the test it belongs to."""
    out: set[int] = set()
    for i in keep:
        h = bisect_right(sections, i) - 1
        if h >= 0:
            out.add(sections[h])
    return out


def _examples(templates: Templates) -> set[int]:
    """The first line of every template: what the chatter looked like, once each."""
    seen: dict[int, int] = {}
    for i, t in enumerate(templates.of):
        if t >= 0:
            seen.setdefault(t, i)
    return set(seen.values())


def _template_note(lines: list[str], templates: Templates) -> GapNote:
    """Gap notes that say which templates a long gap held, where that costs at most a
    tenth of the gap; a short gap gets the bare count."""

    def gap(start: int, end: int) -> str:
        plain = lines_note(start, end)
        if end - start < _DESCRIBED_GAP:
            return plain
        held = describe(templates, range(start, end))
        described = note(end - start, f"lines omitted: {held}") if held else plain
        budget = sum(len(x) + 1 for x in lines[start:end]) // 10
        return described if len(described) - len(plain) <= budget else plain

    return gap


_DESCRIBED_GAP = 8


def _bump(existing: str | None, what: str) -> str:
    count = 1
    if existing:
        m = re.match(r"\[\.\.\. (\d+) ", existing)
        count = int(m.group(1)) + 1 if m else 1
    return note(count, f"{what} omitted")
