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
from bisect import bisect_right
from dataclasses import dataclass

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


_MATCH_RE = re.compile(r"((?:[A-Za-z]:)?[^:\n]+?):(\d+):(.*)", re.S)
_CTX_RE = re.compile(r"((?:[A-Za-z]:)?[^\n]+?)-(\d+)-(.*)", re.S)
_HEADLESS_RE = re.compile(r"(\d+)([:-])(.*)", re.S)
_CTX_TAIL_RE = re.compile(r"(\d+)-(.*)", re.S)


@dataclass
class Row:
    path: str
    number: int
    sep: str  # ":" match, "-" context
    rest: str
    line: int  # index in the input
    offset: int  # where the content starts within the input line
    score: float = 0.0

    @property
    def text(self) -> str:
        return f"{self.number}{self.sep}{self.rest}"


@dataclass
class Parsed:
    rows: list[Row]
    order: list[str | int]  # file paths and (as ints) unparsed line indices, first-seen order
    unparsed: int


def parse(lines: list[str]) -> Parsed:
    rows: list[Row] = []
    order: list[str | int] = []
    seen: set[str] = set()
    unparsed = 0
    heading: str | None = None
    prev_path = ""
    n = len(lines)
    for i, line in enumerate(lines):
        if line.strip() in ("", "--"):
            heading = None if not line.strip() else heading
            continue
        row = _parse_row(line, i, heading, prev_path)
        if row is None and i + 1 < n and _HEADLESS_RE.match(lines[i + 1]) and ":" not in line[2:]:
            heading = line.rstrip("\r")
            continue
        if row is None:
            order.append(i)
            unparsed += 1
            continue
        if row.path not in seen:
            seen.add(row.path)
            order.append(row.path)
        prev_path = row.path
        rows.append(row)
    return Parsed(rows, order, unparsed)


def _parse_row(line: str, i: int, heading: str | None, prev_path: str) -> Row | None:
    if heading is not None:
        m = _HEADLESS_RE.match(line)
        if m:
            return Row(heading, int(m.group(1)), m.group(2), m.group(3), i, m.start(3))
    m = _MATCH_RE.match(line)
    if m and not m.group(1).isdigit():
        return Row(m.group(1), int(m.group(2)), ":", m.group(3), i, m.start(3))
    # A context row's path may itself contain "-12-"; the neighbouring match's path decides.
    if prev_path and line.startswith(prev_path + "-"):
        t = _CTX_TAIL_RE.match(line, len(prev_path) + 1)
        if t:
            return Row(prev_path, int(t.group(1)), "-", t.group(2), i, t.start(2))
    m = _CTX_RE.match(line)
    if m and not m.group(1).isdigit():
        return Row(m.group(1), int(m.group(2)), "-", m.group(3), i, m.start(3))
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
        parsed = parse(lines)
        matches = [r for r in parsed.rows if r.sep == ":"]
        if len(matches) < self.config.min_matches:
            return passthrough(text, ctx)
        self._score(text, lines, parsed.rows, matches, ctx.query)
        body, kept = self._render(lines, parsed, listed_cap=ctx.store is not None)
        total = len(matches)
        return finish(text, body, ctx, self.name, lambda k: lines_marker(k, total, kept, "matches"))

    def _score(
        self, text: str, lines: list[str], rows: list[Row], matches: list[Row], query: str
    ) -> None:
        by_line = {r.line: r for r in rows}
        starts = line_starts(text)
        n = len(matches)
        det = term_detector(query_terms(query))
        if det is not None:
            terms_of: dict[int, set[str]] = {}
            for hit in det.hits(text):
                li = _line_index(starts, hit.start)
                row = by_line.get(li)
                if row is not None and hit.start - starts[li] >= row.offset:
                    terms_of.setdefault(li, set()).add(hit.word)
            df: dict[str, int] = {}
            for words in terms_of.values():
                for w in words:
                    df[w] = df.get(w, 0) + 1
            scale = math.log(n + 1)
            for li, words in terms_of.items():
                weight = sum(math.log((n + 1) / df[w]) / scale for w in words)
                by_line[li].score += min(1.0, weight)
        signals = {
            li: imp
            for li, imp in self._detector.scan(text, "search").items()
            if li in by_line and imp.category is not None
        }
        freq: dict[str, int] = {}
        for imp in signals.values():
            freq[imp.category or ""] = freq.get(imp.category or "", 0) + 1
        for li, imp in signals.items():
            common = freq[imp.category or ""] > 0.3 * n
            by_line[li].score += imp.priority * (0.1 if common else 0.6)

    def _render(self, lines: list[str], parsed: Parsed, listed_cap: bool) -> tuple[list[str], int]:
        cfg = self.config
        files: dict[str, list[Row]] = {}
        for r in parsed.rows:
            files.setdefault(r.path, []).append(r)
        strong = sorted(
            (r for r in parsed.rows if r.sep == ":" and r.score >= cfg.strong_score),
            key=lambda r: (-r.score, r.line),
        )[: cfg.max_strong]
        strong_ids = {id(r) for r in strong}
        shown = self._shown_files(files, strong_ids)
        body: list[str] = []
        kept_total = 0
        unparsed_kept = 0
        hidden: list[str] = []
        for item in parsed.order:
            if isinstance(item, int):
                if unparsed_kept < cfg.max_unparsed:
                    body.append(lines[item])
                unparsed_kept += 1
                continue
            if item not in shown:
                hidden.append(item)
                continue
            kept_total += self._emit_file(item, files[item], strong_ids, body)
        if unparsed_kept > cfg.max_unparsed:
            body.append(note(unparsed_kept - cfg.max_unparsed, "other lines omitted"))
        if hidden:
            cap = cfg.max_listed_files if listed_cap else len(hidden)
            body.append(_hidden_note(hidden, files, cap))
        return body, kept_total

    def _shown_files(self, files: dict[str, list[Row]], strong_ids: set[int]) -> set[str]:
        if len(files) <= self.config.max_files:
            return set(files)

        def rank(item: tuple[int, str]) -> tuple[int, float, int]:
            pos, path = item
            rows = files[path]
            has_strong = any(id(r) in strong_ids for r in rows)
            return (-int(has_strong), -max(r.score for r in rows), pos)

        ranked = sorted(enumerate(files), key=rank)
        return {path for _pos, path in ranked[: self.config.max_files]}

    def _emit_file(self, path: str, rows: list[Row], strong_ids: set[int], body: list[str]) -> int:
        cfg = self.config
        matches = [r for r in rows if r.sep == ":"]
        keep: set[int] = set()
        if matches:
            keep.update((id(matches[0]), id(matches[-1])))
        keep.update(id(r) for r in matches if id(r) in strong_ids)
        for r in sorted(matches, key=lambda r: (-r.score, r.line)):
            if len(keep) >= cfg.max_per_file:
                break
            keep.add(id(r))
        near = {r.number for r in matches if id(r) in keep}
        body.append(path)
        kept_matches = 0
        dropped_ctx = 0
        for r in rows:
            if r.sep == ":" and id(r) in keep:
                body.append(r.text)
                kept_matches += 1
            elif r.sep == "-" and any(
                k in near
                for k in range(r.number - cfg.context_radius, r.number + cfg.context_radius + 1)
            ):
                body.append(r.text)
            elif r.sep == "-":
                dropped_ctx += 1
        dropped = len(matches) - kept_matches
        if dropped or dropped_ctx:
            what = "more matches" if dropped != 1 else "more match"
            if dropped_ctx:
                what += f" and {dropped_ctx} context lines"
            body.append(note(dropped, f"{what} omitted"))
        return kept_matches


def _hidden_note(hidden: list[str], files: dict[str, list[Row]], cap: int) -> str:
    """Files without rows in the output, by name and match count; beyond ``cap`` names
    (only with a store, whose marker then holds them) just how many."""
    counts = {p: sum(1 for r in files[p] if r.sep == ":") for p in hidden}
    names = ", ".join(f"{p} ({counts[p]})" for p in hidden[:cap])
    more = f", and {len(hidden) - cap} more files" if len(hidden) > cap else ""
    total = sum(counts.values())
    return note(total, f"matches omitted in {len(hidden)} more files: {names}{more}")


def _line_index(starts: list[int], pos: int) -> int:
    return bisect_right(starts, pos) - 1
