"""grep / ripgrep results: grouped by file, the hits that matter kept, every file accounted for.

Input forms: ``path:line:content`` (``grep -n``, ``rg -n``), ``path:line:col:content``
(``rg --vimgrep``; the column stays part of the row), ``path-line-content`` context rows
(``-A/-B/-C``), ``--`` separators, Windows paths (``C:\\src\\a.py:3:x``) and ripgrep's
heading form (a path line followed by ``line:content`` rows).

Output is ripgrep's heading form: the path once, then ``line:content`` rows. That is never
longer than the flat form (the path and its newline replace the path and its colon) and
shorter from the second row of a file on; the reference printed the path on every row in
its default mode, which is how it made grep results bigger.

Selection per file: the first and last match, the highest-scoring matches up to
``max_per_file``, and every strong hit (up to ``max_strong`` in all). A row's score is the
weight of the query's terms in it (a term found in most rows, such as the searched pattern
itself, weighs nothing) plus the priority of an error/warning keyword when that keyword is
not in most rows too. Context rows survive next to kept matches. Files beyond ``max_files``
are listed by name with their match counts; nothing is dropped without a note saying so.
Lines that are not search rows are kept verbatim (beyond ``max_unparsed`` of them, a note
says how many went). ``--`` and blank separator lines are dropped: grouping replaces them.

Without a store the notes are the only record of what was dropped (no marker).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from typing import Final

from headroom.ccr.markers import lines_marker
from headroom.signals.importance import Tiered, default_detector, line_starts
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.lines import (
    already_compressed,
    finish,
    note,
    passthrough,
    query_terms,
    split_lines,
    term_detector,
)


@dataclass(frozen=True)
class SearchConfig:
    min_matches: int = 12  # fewer match rows: returned untouched
    max_per_file: int = 5  # matches kept per file (first, last, best)
    max_files: int = 25  # files shown with rows; the rest are listed by name and count
    max_listed_files: int = 80  # with a store, file names listed in that note (all without)
    max_strong: int = 40  # strong hits kept beyond the per-file cap, in all
    strong_score: float = 0.5
    context_radius: int = 1  # context rows kept within this many lines of a kept match
    max_unparsed: int = 40  # non-row lines kept verbatim
    lossless_only: bool = False  # regroup by file only; every row and line stays


_MATCH_RE = re.compile(r"((?:[A-Za-z]:)?[^:\n]+?):(\d+):(.*)", re.S)
_CTX_RE = re.compile(r"((?:[A-Za-z]:)?[^\n]+?)-(\d+)-(.*)", re.S)
_HEADLESS_RE = re.compile(r"(\d+)([:-])(.*)", re.S)
_CTX_TAIL_RE = re.compile(r"(\d+)-(.*)", re.S)


# A row is a plain tuple (one per line of a large result; tuples are the cheapest object):
# (path, number as written, separator ":" match or "-" context, rest, input line, offset of
# the content within that line).
Row = tuple[str, str, str, str, int, int]
PATH: Final = 0
NUM: Final = 1
SEP: Final = 2
REST: Final = 3
LINE: Final = 4
OFFSET: Final = 5


@dataclass
class Parsed:
    rows: list[Row]
    order: list[str | int]  # file paths and (as ints) unparsed line indices, first-seen order
    unparsed: int


# Every line matches exactly once: as a ``path:line:content`` row (groups set) or as
# anything else (groups empty). ``findall`` then does the per-line work in C; possessive
# quantifiers keep the engine from backtracking through paths.
_LINE_RE = re.compile(r"^(?:((?:[A-Za-z]:)?[^:\n]++):(\d++):([^\n]*+)|[^\n]*+)$", re.M)


def parse(lines: list[str], text: str | None = None) -> Parsed:
    text = "\n".join(lines) if text is None else text
    found = _LINE_RE.findall(text)
    if len(found) != len(lines):  # cannot happen for \n-split text; stay correct anyway
        found = [_LINE_RE.match(x).groups("") for x in lines]  # type: ignore[union-attr]
    rows: list[Row] = []
    order: list[str | int] = []
    seen: set[str] = set()
    unparsed = 0
    heading: str | None = None
    prev_path = ""
    n = len(lines)
    for i, (path, num, rest) in enumerate(found):
        if path and heading is None and (path == prev_path or not path.isdigit()):
            rows.append((path, num, ":", rest, i, len(path) + len(num) + 2))
        else:
            line = lines[i]
            stripped = line.strip()
            if stripped in ("", "--"):
                heading = None if not stripped else heading
                continue
            row = _other_row(line, i, heading, prev_path)
            if row is None:
                if i + 1 < n and ":" not in line[2:] and _HEADLESS_RE.match(lines[i + 1]):
                    heading = line.rstrip("\r")
                else:
                    order.append(i)
                    unparsed += 1
                continue
            rows.append(row)
            path = row[PATH]
        if path != prev_path:
            if path not in seen:
                seen.add(path)
                order.append(path)
            prev_path = path
    return Parsed(rows, order, unparsed)


def _other_row(line: str, i: int, heading: str | None, prev_path: str) -> Row | None:
    if heading is not None:
        m = _HEADLESS_RE.match(line)
        if m:
            return (heading, m.group(1), m.group(2), m.group(3), i, m.start(3))
        m = _MATCH_RE.match(line)
        if m and not m.group(1).isdigit():
            return (m.group(1), m.group(2), ":", m.group(3), i, m.start(3))
    # A context row's path may itself contain "-12-"; the neighbouring match's path decides.
    if prev_path and line.startswith(prev_path + "-"):
        t = _CTX_TAIL_RE.match(line, len(prev_path) + 1)
        if t:
            return (prev_path, t.group(1), "-", t.group(2), i, t.start(2))
    m = _CTX_RE.match(line)
    if m and not m.group(1).isdigit():
        return (m.group(1), m.group(2), "-", m.group(3), i, m.start(3))
    return None


class SearchCompressor:
    name = "search"

    def __init__(self, config: SearchConfig | None = None, detector: Tiered | None = None) -> None:
        self.config = config or SearchConfig()
        self._detector = detector or default_detector()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        if already_compressed(text):
            return passthrough(text, ctx)
        lines = split_lines(text)
        parsed = parse(lines, text)
        total = sum(1 for r in parsed.rows if r[SEP] == ":")
        if total < self.config.min_matches:
            return passthrough(text, ctx)
        if self.config.lossless_only:
            everything = replace(
                self.config, max_per_file=total, max_files=total, max_unparsed=len(lines)
            )
            body, _ = _Renderer(everything, lines, parsed, {}, False, keep_all=True).run()
            return finish(text, body, ctx, self.name, None)
        scores = self._score(text, parsed.rows, total, ctx.query)
        body, kept = _Renderer(self.config, lines, parsed, scores, ctx.store is not None).run()
        return finish(text, body, ctx, self.name, lambda k: lines_marker(k, total, kept, "matches"))

    def _score(self, text: str, rows: list[Row], total: int, query: str) -> dict[int, float]:
        """Score per input line of a match row (absent = 0)."""
        row_at = {r[LINE]: r for r in rows if r[SEP] == ":"}
        starts = line_starts(text)
        scores: dict[int, float] = {}

        def content_line(pos: int) -> int | None:
            li = bisect_right(starts, pos) - 1
            row = row_at.get(li)
            return li if row is not None and pos - starts[li] >= row[OFFSET] else None

        lowered = text.lower()
        # A term in most rows (the searched pattern itself) carries no information; counting
        # first (C speed) keeps it out of the per-hit loop entirely.
        terms = [t for t in query_terms(query) if lowered.count(t) <= total // 2]
        det = term_detector(terms)
        if det is not None:
            terms_of: dict[int, set[str]] = {}
            for hit in det.hits(text):
                li = content_line(hit.start)
                if li is not None:
                    terms_of.setdefault(li, set()).add(hit.word)
            df: dict[str, int] = {}
            for words in terms_of.values():
                for w in words:
                    df[w] = df.get(w, 0) + 1
            scale = math.log(total + 1)
            for li, words in terms_of.items():
                weight = sum(math.log((total + 1) / df[w]) / scale for w in words)
                scores[li] = min(1.0, weight)
        signals = {
            li: imp
            for li, imp in self._detector.scan(text, "search").items()
            if li in row_at and imp.category is not None
        }
        freq: dict[str, int] = {}
        for imp in signals.values():
            freq[imp.category or ""] = freq.get(imp.category or "", 0) + 1
        for li, imp in signals.items():
            common = freq[imp.category or ""] > 0.3 * total
            scores[li] = scores.get(li, 0.0) + imp.priority * (0.1 if common else 0.6)
        return scores


class _Renderer:
    """Heading-form output: one group per shown file, notes for everything left out."""

    def __init__(
        self,
        cfg: SearchConfig,
        lines: list[str],
        parsed: Parsed,
        scores: dict[int, float],
        listed_cap: bool,
        keep_all: bool = False,
    ) -> None:
        self.keep_all = keep_all
        self.cfg = cfg
        self.lines = lines
        self.parsed = parsed
        self.scores = scores
        self.listed_cap = listed_cap
        self.files: dict[str, list[Row]] = {}
        for r in parsed.rows:
            self.files.setdefault(r[PATH], []).append(r)
        strong = sorted(
            (li for li, sc in scores.items() if sc >= cfg.strong_score),
            key=lambda li: (-scores[li], li),
        )
        self.strong = set(strong[: cfg.max_strong])

    def run(self) -> tuple[list[str], int]:
        cfg = self.cfg
        shown = self._shown_files()
        body: list[str] = []
        kept_total = 0
        others = 0
        hidden: list[str] = []
        for item in self.parsed.order:
            if isinstance(item, int):
                if others < cfg.max_unparsed:
                    body.append(self.lines[item])
                others += 1
            elif item in shown:
                kept_total += self._emit_file(item, body)
            else:
                hidden.append(item)
        if others > cfg.max_unparsed:
            body.append(note(others - cfg.max_unparsed, "other lines omitted"))
        if hidden:
            cap = cfg.max_listed_files if self.listed_cap else len(hidden)
            body.append(_hidden_note(hidden, self.files, cap))
        return body, kept_total

    def _best(self, rows: list[Row]) -> float:
        return max((self.scores.get(r[LINE], 0.0) for r in rows), default=0.0)

    def _shown_files(self) -> set[str]:
        if len(self.files) <= self.cfg.max_files:
            return set(self.files)

        def rank(item: tuple[int, str]) -> tuple[int, float, int]:
            pos, path = item
            rows = self.files[path]
            has_strong = any(r[LINE] in self.strong for r in rows)
            return (-int(has_strong), -self._best(rows), pos)

        ranked = sorted(enumerate(self.files), key=rank)
        return {path for _pos, path in ranked[: self.cfg.max_files]}

    def _emit_file(self, path: str, body: list[str]) -> int:
        cfg = self.cfg
        rows = self.files[path]
        matches = [r for r in rows if r[SEP] == ":"]
        keep: set[int] = set()
        if matches:
            keep.update((matches[0][LINE], matches[-1][LINE]))
        keep.update(r[LINE] for r in matches if r[LINE] in self.strong)
        ranked = sorted(matches, key=lambda r: (-self.scores.get(r[LINE], 0.0), r[LINE]))
        contents = {r[REST].strip() for r in matches if r[LINE] in keep}
        # Fill up to the cap with the best rows, preferring contents not shown yet.
        for allow_repeat in (False, True):
            for r in ranked:
                if len(keep) >= cfg.max_per_file:
                    break
                if r[LINE] in keep or (not allow_repeat and r[REST].strip() in contents):
                    continue
                keep.add(r[LINE])
                contents.add(r[REST].strip())
        near = sorted(int(r[NUM]) for r in matches if r[LINE] in keep)
        radius = cfg.context_radius
        body.append(path)
        kept = dropped_ctx = 0
        for r in rows:
            if r[SEP] == ":":
                if r[LINE] in keep:
                    body.append(f"{r[NUM]}:{r[REST]}")
                    kept += 1
            elif self.keep_all or _within(near, int(r[NUM]), radius):
                body.append(f"{r[NUM]}{r[SEP]}{r[REST]}")
            else:
                dropped_ctx += 1
        dropped = len(matches) - kept
        if dropped or dropped_ctx:
            what = "more matches" if dropped != 1 else "more match"
            if dropped_ctx:
                what += f" and {dropped_ctx} context lines"
            body.append(note(dropped, f"{what} omitted"))
        return kept


def _within(sorted_numbers: list[int], number: int, radius: int) -> bool:
    i = bisect_left(sorted_numbers, number - radius)
    return i < len(sorted_numbers) and sorted_numbers[i] <= number + radius


def _hidden_note(hidden: list[str], files: dict[str, list[Row]], cap: int) -> str:
    """Files without rows in the output, by name and match count; beyond ``cap`` names
    (only with a store, whose marker then holds them) just how many."""
    counts = {p: sum(1 for r in files[p] if r[SEP] == ":") for p in hidden}
    names = ", ".join(f"{p} ({counts[p]})" for p in hidden[:cap])
    more = f", and {len(hidden) - cap} more files" if len(hidden) > cap else ""
    total = sum(counts.values())
    return note(total, f"matches omitted in {len(hidden)} more files: {names}{more}")
