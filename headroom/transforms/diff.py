"""Unified diffs: every changed line and file header stays, unchanged context shrinks.

What it does, in order:

1. Parses files and hunks (``diff_parse.py``).
2. Trims unchanged context to ``context_lines`` around each change. A hunk that loses
   lines in its middle is split, and every piece gets a recomputed ``@@ -a,b +c,d @@``
   header, so the output is still a valid patch (appliable with reduced context).
   ``index`` lines (blob hashes) are dropped. A footer says how many lines went.
3. With a store only: lockfiles and minified/generated files, and, when the diff is huge
   (more than ``max_files`` files or ``max_changed_lines`` changed lines), the least
   relevant files are summarised per file (``[... 40 changed lines omitted in x (+30 -10,
   2 hunks)]``); relevance is the query's terms in the path or changed lines, then error,
   security and importance keywords. Then, while the trimmed diff is over ``budget_share``
   of the input, the hunks the query does not name are stubbed, least relevant first:
   ``[... 12 changed lines omitted at -40,7 +40,9 (+7 -5): def retry]``. A hunk whose
   changed lines, ``@@`` section or path holds a query term few hunks hold is never
   stubbed, and ``-`` lines count as much as ``+`` lines. Every stub and file summary
   names the changed symbols from the ``@@`` sections, so the model knows what it could
   retrieve. The marker names the full original. Without a store no changed line is ever
   dropped.

Text before the first file header (a commit message, ``git show`` preamble) and anything
not understood is kept verbatim in place.
"""

from __future__ import annotations

import fnmatch
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from headroom.ccr.markers import diff_marker
from headroom.signals.importance import KeywordTier, line_starts
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.diff_parse import FileDiff, Hunk, parse
from headroom.transforms.lines import (
    already_compressed,
    finish,
    note,
    note_safe,
    passthrough,
    split_lines,
)
from headroom.transforms.terms import query_terms, rare_term_hits, term_detector

GENERATED = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.lock",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
    "*.min.js",
    "*.min.css",
    "*.map",
)


@dataclass(frozen=True)
class DiffConfig:
    min_lines: int = 30  # shorter diffs are returned untouched
    context_lines: int = 1  # unchanged lines kept on each side of a change
    max_files: int = 20  # with a store, beyond this many files the least relevant are summarised
    max_changed_lines: int = 1500  # ... and beyond this many +/- lines
    generated: tuple[str, ...] = GENERATED  # with a store, summarised unless the query names them
    # With a store: once the trimmed diff is over this share of the input (and over
    # ``min_budget_chars``), hunks the query does not name are stubbed, least relevant first.
    budget_share: float = 0.5
    min_budget_chars: int = 6000


# Joining two kept pieces costs a new @@ header; dropped runs shorter than this stay.
_SPLIT_MIN_CHARS = 28


class DiffCompressor:
    name = "diff"

    def __init__(self, config: DiffConfig | None = None) -> None:
        self.config = config or DiffConfig()
        self._keywords = KeywordTier()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        built = None if already_compressed(text) else self._build(text, ctx)
        if built is None:
            return passthrough(text, ctx)
        body, before = built
        kept = len(body)
        return finish(text, body, ctx, self.name, lambda k: diff_marker(k, before, kept))

    def _build(self, text: str, ctx: CompressContext) -> tuple[list[str], int] | None:
        """Output lines and the input's line count, or None to pass through. The parse is
        dropped on return, before the token estimate of ``finish`` needs its own memory."""
        lines = split_lines(text)
        if len(lines) < self.config.min_lines:
            return None
        files = parse(lines)
        if not any(f.hunks for f in files):
            return None
        summarised = self._to_summarise(text, files, ctx) if ctx.store is not None else set()
        stubbed: set[int] = set()  # ids of hunks
        if ctx.store is not None:
            budget = max(self.config.min_budget_chars, int(self.config.budget_share * len(text)))
            stubbed = self._hunks_to_stub(files, summarised, ctx.query, budget)
        body: list[str] = []
        stats = _Stats()
        for idx, f in enumerate(files):
            if idx in summarised or (f.hunks and all(id(h) in stubbed for h in _hunks(f))):
                _summarise(f, body, stats)
            else:
                _trim_file(f, body, self.config.context_lines, stats, stubbed)
        if stats.context or stats.index:
            body.append(stats.footer(self.config.context_lines))
        return body, len(lines)

    def _to_summarise(self, text: str, files: list[FileDiff], ctx: CompressContext) -> set[int]:
        cfg = self.config
        scores = self._relevance(text, files, ctx.query)
        out: set[int] = set()
        candidates: list[int] = []
        for idx, f in enumerate(files):
            if f.path is None or not f.hunks:
                continue
            name = f.path.rsplit("/", 1)[-1]
            if scores[idx] < 1.0 and any(fnmatch.fnmatchcase(name, g) for g in cfg.generated):
                out.add(idx)
            else:
                candidates.append(idx)
        changed = sum(files[i].added + files[i].removed for i in candidates)
        if len(candidates) <= cfg.max_files and changed <= cfg.max_changed_lines:
            return out
        ranked = sorted(candidates, key=lambda i: (-scores[i], i))
        budget = cfg.max_changed_lines
        kept = 0
        for i in ranked:
            size = files[i].added + files[i].removed
            if kept and (kept >= cfg.max_files or size > budget):
                out.add(i)
                continue
            kept += 1
            budget -= size
        return out

    def _hunks_to_stub(
        self, files: list[FileDiff], summarised: set[int], query: str, budget: int
    ) -> set[int]:
        """Hunks (by ``id``) to replace with a one-line stub so the diff fits ``budget``
        characters. A hunk whose changed lines, ``@@`` section or file path name a query term
        that is rare in the diff is never stubbed; the others go least relevant first (no
        keyword, then largest), so what stays is what the task is about."""
        ctx_lines = self.config.context_lines
        hunks: list[tuple[int, Hunk]] = [
            (fi, h) for fi, f in enumerate(files) if fi not in summarised for h in _hunks(f)
        ]
        sizes = {id(h): _trimmed_chars(h, ctx_lines) for _fi, h in hunks}
        total = sum(sizes.values())
        if total <= budget:
            return set()
        scores = self._hunk_scores(files, hunks, query)
        ranked = sorted(hunks, key=lambda fh: (scores[id(fh[1])], -sizes[id(fh[1])]))
        out: set[int] = set()
        for _fi, h in ranked:
            if total <= budget or scores[id(h)] >= _MUST_KEEP:
                break
            if sizes[id(h)] <= 2 * _STUB_CHARS:
                continue  # a stub would cost about what the hunk does
            out.add(id(h))
            total -= sizes[id(h)] - _STUB_CHARS
        return out

    def _hunk_scores(
        self, files: list[FileDiff], hunks: list[tuple[int, Hunk]], query: str
    ) -> dict[int, float]:
        """Per hunk: ``_MUST_KEEP`` per query term it names that few hunks name (the path
        counts for every hunk of its file), plus the priority of its strongest error,
        security or importance keyword on a changed line."""
        det = term_detector(query_terms(query))
        changed = {id(h): _changed_text(h) for _fi, h in hunks}
        named: dict[int, set[str]] = {}
        if det is not None:
            paths = {fi: {h.word for h in det.hits(files[fi].path or "")} for fi, _h in hunks}
            for fi, h in hunks:
                named[id(h)] = {hit.word for hit in det.hits(changed[id(h)])} | paths[fi]
        df: dict[str, int] = {}
        for words in named.values():
            for w in words:
                df[w] = df.get(w, 0) + 1
        rare_limit = max(2, len(hunks) // 4)
        scores: dict[int, float] = {}
        for _fi, h in hunks:
            score = sum(_MUST_KEEP for w in named.get(id(h), ()) if df[w] <= rare_limit)
            found = self._keywords.scan(changed[id(h)], "diff")
            scores[id(h)] = score + max((imp.priority for imp in found.values()), default=0.0)
        return scores

    def _relevance(self, text: str, files: list[FileDiff], query: str) -> list[float]:
        """Per file: 1.0 per query term in its path or changed lines, plus keyword priority
        (error, security, importance) of its most important changed line."""
        scores = [0.0] * len(files)
        file_starts = [f.start for f in files]
        terms = query_terms(query)
        det = term_detector(terms)
        lines_start = line_starts(text)
        if det is not None:
            for i, f in enumerate(files):
                if f.path and det.hits(f.path):
                    scores[i] += 1.0
            seen: set[tuple[int, str]] = set()
            # In changed lines only rarer terms count (and bound the per-hit loop): a word
            # on every twentieth line of the diff tells no file apart.
            for hit in rare_term_hits(text, query, max(50, len(lines_start) // 20)):
                line = _bisect(lines_start, hit.start)
                fi = _bisect(file_starts, line)
                if _is_change(text, lines_start[line]) and (fi, hit.word) not in seen:
                    seen.add((fi, hit.word))
                    scores[fi] += 1.0
        best: dict[int, float] = {}
        for line, imp in self._keywords.scan(text, "diff").items():
            if _is_change(text, lines_start[line]):
                fi = _bisect(file_starts, line)
                best[fi] = max(best.get(fi, 0.0), imp.priority)
        for fi, prio in best.items():
            scores[fi] += prio * 0.5
        return scores


def _is_change(text: str, pos: int) -> bool:
    return text[pos : pos + 1] in ("+", "-") and text[pos : pos + 3] not in ("+++", "---")


def _bisect(starts: Sequence[int], pos: int) -> int:
    return max(0, bisect_right(starts, pos) - 1)


# --- output ---------------------------------------------------------------------------------


@dataclass
class _Stats:
    context: int = 0
    index: int = 0

    def footer(self, ctx_lines: int) -> str:
        if not self.context:
            return note(self.index, "index lines omitted")
        what = f"unchanged context lines omitted (±{ctx_lines} kept)"
        if self.index:
            what += f"; {self.index} index lines dropped"
        return note(self.context, what)


def _trim_file(
    f: FileDiff, out: list[str], ctx_lines: int, stats: _Stats, stubbed: set[int]
) -> None:
    for item in f.items:
        if isinstance(item, Hunk) and id(item) in stubbed:
            out.append(_stub(item))
        elif isinstance(item, Hunk):
            stats.context += _trim_hunk(item, out, ctx_lines)
        elif f.path is not None and item.startswith("index "):
            stats.index += 1
        else:
            out.append(item)


def _summarise(f: FileDiff, out: list[str], stats: _Stats) -> None:
    for item in f.items:
        if isinstance(item, Hunk):
            continue
        if item.startswith("index "):
            stats.index += 1
        elif not item.startswith(("--- ", "+++ ")):
            out.append(item)
    what = f"changed lines omitted in {f.path} (+{f.added} -{f.removed}, {f.hunks} hunks)"
    symbols = _symbols(_hunks(f))
    out.append(note(f.added + f.removed, f"{what}; changed: {symbols}" if symbols else what))


# A stub stands for a hunk the budget left out; its rough cost, for the budget's sums.
_STUB_CHARS = 60
_MUST_KEEP = 10.0


def _hunks(f: FileDiff) -> list[Hunk]:
    return [item for item in f.items if isinstance(item, Hunk)]


def _changed_text(h: Hunk) -> str:
    lines = [b for b in h.body if b[:1] in ("+", "-")]
    return "\n".join([h.section, *lines])


def _trimmed_chars(h: Hunk, ctx_lines: int) -> int:
    out: list[str] = []
    _trim_hunk(h, out, ctx_lines)
    return sum(len(x) + 1 for x in out)


def _symbols(hunks: Sequence[Hunk], limit: int = 6) -> str:
    """The distinct ``@@ … def name`` section names of hunks: what changed, by name."""
    seen: dict[str, None] = {}
    for h in hunks:
        m = _SYMBOL_RE.search(h.section)
        name = " ".join(m.groups()) if m else h.section.strip()[:40]
        if name:
            seen.setdefault(note_safe(name), None)
    names = list(seen)
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ``def name(`` / ``class Name:`` / ``fn name<`` / ``func (r) Name(`` in a hunk's section.
_SYMBOL_RE = re.compile(
    r"\b(def|class|fn|func|function|struct|enum|trait|impl|interface|module|sub)\s+"
    r"(?:\([^)]*\)\s*)?([A-Za-z_$][\w$.:]*)"
)


def _stub(h: Hunk) -> str:
    added = sum(1 for b in h.body if b.startswith("+"))
    removed = sum(1 for b in h.body if b.startswith("-"))
    where = h.header.split("@@")[1].strip() if h.header.count("@@") >= 2 else ""
    symbol = _symbols([h])
    what = f"changed lines omitted at {where} (+{added} -{removed})"
    return note(added + removed, f"{what}: {symbol}" if symbol else what)


def _trim_hunk(h: Hunk, out: list[str], ctx_lines: int) -> int:
    """Append the hunk with context trimmed; return how many context lines were dropped."""
    body = h.body
    n = len(body)
    changes = [i for i, b in enumerate(body) if b[:1] in ("+", "-")]
    if not changes:
        out.append(h.header)
        out.extend(body)
        return 0
    keep = [False] * n
    for i in changes:
        for k in range(max(0, i - ctx_lines), min(n, i + ctx_lines + 1)):
            keep[k] = True
    for i, b in enumerate(body):
        if b.startswith("\\") and i > 0 and keep[i - 1]:
            keep[i] = True
    _bridge_short_gaps(body, keep)
    dropped = keep.count(False)
    if not dropped:
        out.append(h.header)
        out.extend(body)
        return 0
    old_line, new_line = h.old_start, h.new_start
    first_piece = True
    i = 0
    while i < n:
        if not keep[i]:
            if body[i][:1] != "\\":  # only unchanged lines are ever dropped
                old_line += 1
                new_line += 1
            i += 1
            continue
        j = i
        while j < n and keep[j]:
            j += 1
        piece = body[i:j]
        old_len = sum(1 for b in piece if b[:1] not in ("+", "\\"))
        new_len = sum(1 for b in piece if b[:1] not in ("-", "\\"))
        section = h.section if first_piece else ""
        out.append(_header(old_line, old_len, new_line, new_len, section))
        out.extend(piece)
        old_line += old_len
        new_line += new_len
        first_piece = False
        i = j
    return dropped


def _bridge_short_gaps(body: list[str], keep: list[bool]) -> None:
    """Keep a dropped run between two kept pieces when it is cheaper than a new header."""
    n = len(body)
    i = 0
    seen_kept = False
    while i < n:
        if keep[i]:
            seen_kept = True
            i += 1
            continue
        j = i
        while j < n and not keep[j]:
            j += 1
        if seen_kept and j < n and sum(len(body[k]) + 1 for k in range(i, j)) < _SPLIT_MIN_CHARS:
            for k in range(i, j):
                keep[k] = True
        i = j


def _header(old: int, old_len: int, new: int, new_len: int, section: str) -> str:
    # An empty side is addressed by the line before it (the unified-diff convention).
    o = old - 1 if old_len == 0 else old
    w = new - 1 if new_len == 0 else new
    return f"@@ -{max(o, 0)},{old_len} +{max(w, 0)},{new_len} @@{section}"
