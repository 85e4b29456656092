"""grep / ripgrep results: grouped by file, the hits that matter kept, every file accounted for.

Input forms: ``path:line:content`` (``grep -n``, ``rg -n``), ``path:line:col:content``
(``rg --vimgrep``; the column stays part of the row), ``path-line-content`` context rows
(``-A/-B/-C``), ``--`` separators, Windows paths (``C:\\src\\a.py:3:x``) and ripgrep's
heading form (a path line followed by ``line:content`` rows).

Output is ripgrep's heading form: the path once, then ``line:content`` rows, never longer
than the flat form and shorter from a file's second row on (a path on every row is how a
"compressed" grep result ends up bigger than the input).

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
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace

from headroom.ccr.markers import lines_marker
from headroom.signals.importance import Tiered, default_detector
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.lines import already_compressed, finish, note, passthrough, split_lines
from headroom.transforms.templates import Masked
from headroom.transforms.terms import query_terms, rare_term_hits, term_detector


@dataclass(frozen=True)
class SearchConfig:
    min_matches: int = 12  # fewer match rows: returned untouched
    max_per_file: int = 4  # matches kept per file (first, last, best)
    max_files: int = 15  # files shown with rows; the rest are listed by name and count
    max_listed_files: int = 80  # with a store, file names listed in that note (all without)
    max_strong: int = 40  # strong hits kept beyond the per-file cap, in all
    strong_score: float = 0.5
    context_radius: int = 1  # context rows kept within this many lines of a kept match
    max_unparsed: int = 40  # non-row lines kept verbatim
    lossless_only: bool = False  # regroup by file only; every row and line stays
    rare_count: int = 3  # a row whose content template is seen at most this often stays
    rare_share: float = 0.2  # ... unless more rows than this share are rare
    max_named_rows: int = 40  # rows kept of the files whose path the query names


_HEADLESS_RE = re.compile(r"(\d+)([:-])")
_MATCH_RE = re.compile(r"((?:[A-Za-z]:)?[^:\n]++):(\d++):")
_CTX_RE = re.compile(r"((?:[A-Za-z]:)?[^\n]+?)-(\d+)-")
_CTX_TAIL_RE = re.compile(r"(\d+)-")
# Every line matches exactly once: as a ``path:line:content`` row (groups set) or as
# anything else (groups empty). Possessive quantifiers keep the engine from backtracking
# through paths.
_LINE_RE = re.compile(r"^(?:((?:[A-Za-z]:)?[^:\n]++):(\d++):|)[^\n]*+$", re.M)


@dataclass
class Parsed:
    """Rows in columns (``array``s: 8 bytes per value, not an object per row). A row's text
    in the output is ``text[start:end]`` (``12:content`` as written); its content begins at
    ``content``; ``line`` is its input line and ``path`` an index into ``paths``."""

    paths: list[str] = field(default_factory=list)
    path: array[int] = field(default_factory=lambda: array("q"))
    line: array[int] = field(default_factory=lambda: array("q"))
    start: array[int] = field(default_factory=lambda: array("q"))
    content: array[int] = field(default_factory=lambda: array("q"))
    is_match: bytearray = field(default_factory=bytearray)
    line_starts: array[int] = field(default_factory=lambda: array("q"))
    # first-seen order of files (path index) and other lines (as ``-1 - line``)
    order: list[int] = field(default_factory=list)
    unparsed: int = 0

    def add(self, path_id: int, line: int, start: int, content: int, match: bool) -> None:
        self.path.append(path_id)
        self.line.append(line)
        self.start.append(start)
        self.content.append(content)
        self.is_match.append(match)

    def end(self, r: int, text: str) -> int:
        """Where row ``r``'s line ends (its newline, or the end of the text)."""
        li = self.line[r] + 1
        return self.line_starts[li] - 1 if li < len(self.line_starts) else len(text)

    def number(self, r: int, text: str) -> int:
        return int(text[self.start[r] : self.content[r] - 1])

    def __len__(self) -> int:
        return len(self.line)


def parse(text: str) -> Parsed:
    out = Parsed()
    ids: dict[str, int] = {}
    heading: str | None = None
    prev = -1  # path index of the previous row
    prev_path = ""
    # Bound methods: the loop runs once per line of a possibly megabyte-sized result.
    add_start, add_path, add_line = out.line_starts.append, out.path.append, out.line.append
    add_row_start, add_content, add_match = (
        out.start.append,
        out.content.append,
        out.is_match.append,
    )
    for i, m in enumerate(_LINE_RE.finditer(text)):
        lo, hi = m.span()
        add_start(lo)
        path = m.group(1)
        if path is not None and heading is None and (path == prev_path or not path.isdigit()):
            if path != prev_path:
                pid = ids.get(path, -1)
                if pid < 0:
                    pid = ids[path] = len(out.paths)
                    out.paths.append(path)
                    out.order.append(pid)
                prev, prev_path = pid, path
            add_path(prev)
            add_line(i)
            num_at, num_end = m.span(2)
            add_row_start(num_at)
            add_content(num_end + 1)
            add_match(1)
            continue
        line = text[lo:hi]
        stripped = line.strip()
        if stripped in ("", "--"):
            heading = None if not stripped else heading
            continue
        row = _other_row(line, heading, prev_path)
        if row is None:
            nxt_end = text.find("\n", hi + 1)
            nxt = text[hi + 1 : nxt_end if nxt_end != -1 else len(text)]
            if ":" not in line[2:] and _HEADLESS_RE.match(nxt) and heading is None:
                heading = line.rstrip("\r")
            else:
                out.order.append(-1 - i)
                out.unparsed += 1
            continue
        path, num_at, content_at, match = row
        pid = ids.get(path, -1)
        if pid < 0:
            pid = ids[path] = len(out.paths)
            out.paths.append(path)
            out.order.append(pid)
        prev, prev_path = pid, path
        out.add(pid, i, lo + num_at, lo + content_at, match)
    return out


def _other_row(line: str, heading: str | None, prev_path: str) -> tuple[str, int, int, bool] | None:
    """(path, where the number starts, where the content starts, is a match)."""
    if heading is not None:
        m = _HEADLESS_RE.match(line)
        if m:
            return heading, 0, m.end(), m.group(2) == ":"
        m = _MATCH_RE.match(line)
        if m and not m.group(1).isdigit():
            return m.group(1), m.start(2), m.end(), True
    # A context row's path may itself contain "-12-"; the neighbouring match's path decides.
    if prev_path and line.startswith(prev_path + "-"):
        t = _CTX_TAIL_RE.match(line, len(prev_path) + 1)
        if t:
            return prev_path, t.start(1), t.end(), False
    m = _CTX_RE.match(line)
    if m and not m.group(1).isdigit():
        return m.group(1), m.start(2), m.end(), False
    return None


class SearchCompressor:
    name = "search"

    def __init__(self, config: SearchConfig | None = None, detector: Tiered | None = None) -> None:
        self.config = config or SearchConfig()
        self._detector = detector or default_detector()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        if already_compressed(text):
            return passthrough(text, ctx)
        parsed = parse(text)
        total = parsed.is_match.count(1)
        if total < self.config.min_matches:
            return passthrough(text, ctx)
        if self.config.lossless_only:
            lines = len(parsed.line_starts)
            everything = replace(
                self.config, max_per_file=total, max_files=total, max_unparsed=lines
            )
            body, _ = _Renderer(everything, text, parsed, {}, False, keep_all=True).run()
            return finish(text, body, ctx, self.name, None)
        scores = self._score(text, parsed, total, ctx.query)
        must = _rare_rows(text, parsed, self.config) | _named_rows(
            parsed, ctx.query, scores, self.config
        )
        renderer = _Renderer(self.config, text, parsed, scores, ctx.store is not None, must=must)
        body, kept = renderer.run()
        return finish(text, body, ctx, self.name, lambda k: lines_marker(k, total, kept, "matches"))

    def _has_signal(self, text: str) -> bool:
        return self._detector.score(text, "search").category is not None

    def _score(self, text: str, parsed: Parsed, total: int, query: str) -> dict[int, float]:
        """Score per row index of a match row (absent = 0)."""
        starts = parsed.line_starts
        # line -> match row (-1: none); an array, not a dict: 8 bytes per line
        line_row = array("q", [-1]) * len(starts)
        for r, li in enumerate(parsed.line):
            if parsed.is_match[r]:
                line_row[li] = r
        scores: dict[int, float] = {}

        def row_at(pos: int) -> int | None:
            """The match row whose content holds ``pos`` (hits in paths do not count)."""
            r = line_row[bisect_right(starts, pos) - 1]
            return r if r >= 0 and pos >= parsed.content[r] else None

        hits = rare_term_hits(text, query, total // 2)
        if hits:
            terms_of: dict[int, set[str]] = {}
            for hit in hits:
                row = row_at(hit.start)
                if row is not None:
                    terms_of.setdefault(row, set()).add(hit.word)
            df: dict[str, int] = {}
            for words in terms_of.values():
                for w in words:
                    df[w] = df.get(w, 0) + 1
            scale = math.log(total + 1)
            for r, words in terms_of.items():
                weight = sum(math.log((total + 1) / df[w]) / scale for w in words)
                scores[r] = min(1.0, weight)
        signals: dict[int, tuple[str, float]] = {}
        path_signal: dict[int, bool] = {}
        for li, imp in self._detector.scan(text, "search").items():
            r = line_row[li]
            if r < 0 or imp.category is None:
                continue
            # The keyword must sit in the content: only when the path itself has one (checked
            # once per file) is the content looked at again.
            pid = parsed.path[r]
            if pid not in path_signal:
                path_signal[pid] = self._has_signal(parsed.paths[pid])
            if path_signal[pid] and not self._has_signal(
                text[parsed.content[r] : parsed.end(r, text)]
            ):
                continue
            signals[r] = (imp.category, imp.priority)
        freq: dict[str, int] = {}
        for category, _prio in signals.values():
            freq[category] = freq.get(category, 0) + 1
        for r, (category, prio) in signals.items():
            common = freq[category] > 0.3 * total
            scores[r] = scores.get(r, 0.0) + prio * (0.1 if common else 0.6)
        return scores


class _Renderer:
    """Heading-form output: one group per shown file, notes for everything left out."""

    def __init__(
        self,
        cfg: SearchConfig,
        text: str,
        parsed: Parsed,
        scores: dict[int, float],
        listed_cap: bool,
        keep_all: bool = False,
        must: frozenset[int] = frozenset(),
    ) -> None:
        self.cfg = cfg
        self.text = text
        self.p = parsed
        self.scores = scores
        self.listed_cap = listed_cap
        self.keep_all = keep_all
        self.rows_of: list[array[int]] = [array("q") for _ in parsed.paths]
        for r, pid in enumerate(parsed.path):
            self.rows_of[pid].append(r)
        strong = sorted(
            (r for r, sc in scores.items() if sc >= cfg.strong_score),
            key=lambda r: (-scores[r], r),
        )
        self.must = must
        self.strong = set(strong[: cfg.max_strong]) | must

    def row_text(self, r: int) -> str:
        return self.text[self.p.start[r] : self.p.end(r, self.text)]

    def run(self) -> tuple[list[str], int]:
        cfg = self.cfg
        shown = self._shown_files()
        body: list[str] = []
        kept_total = 0
        others = 0
        hidden: list[int] = []
        starts = self.p.line_starts
        for item in self.p.order:
            if item < 0:
                if others < cfg.max_unparsed:
                    li = -1 - item
                    end = starts[li + 1] - 1 if li + 1 < len(starts) else len(self.text)
                    body.append(self.text[starts[li] : end])
                others += 1
            elif item in shown:
                kept_total += self._emit_file(item, body)
            else:
                hidden.append(item)
        if others > cfg.max_unparsed:
            body.append(note(others - cfg.max_unparsed, "other lines omitted"))
        if hidden:
            cap = cfg.max_listed_files if self.listed_cap else len(hidden)
            body.append(self._hidden_note(hidden, cap))
        return body, kept_total

    def _matches(self, pid: int) -> list[int]:
        return [r for r in self.rows_of[pid] if self.p.is_match[r]]

    def _shown_files(self) -> set[int]:
        if len(self.p.paths) <= self.cfg.max_files:
            return set(range(len(self.p.paths)))

        def rank(pid: int) -> tuple[int, float, int]:
            rows = self.rows_of[pid]
            has_strong = any(r in self.strong for r in rows)
            best = max((self.scores.get(r, 0.0) for r in rows), default=0.0)
            return (-int(has_strong), -best, pid)

        shown = set(sorted(range(len(self.p.paths)), key=rank)[: self.cfg.max_files])
        return shown | {self.p.path[r] for r in self.must}  # a must-keep row is never hidden

    def _emit_file(self, pid: int, body: list[str]) -> int:
        cfg = self.cfg
        matches = self._matches(pid)
        keep: set[int] = set()
        if self.keep_all:
            keep.update(matches)
        elif matches:
            keep.update((matches[0], matches[-1]))
        keep.update(r for r in matches if r in self.strong)
        ranked = sorted(matches, key=lambda r: (-self.scores.get(r, 0.0), r))
        content = self._content
        contents = {content(r) for r in keep}
        # Fill up to the cap with the best rows, preferring contents not shown yet.
        for allow_repeat in (False, True):
            for r in ranked:
                if len(keep) >= cfg.max_per_file:
                    break
                if r in keep or (not allow_repeat and content(r) in contents):
                    continue
                keep.add(r)
                contents.add(content(r))
        near = sorted(self.p.number(r, self.text) for r in keep)
        radius = cfg.context_radius
        body.append(self.p.paths[pid])
        kept = dropped_ctx = 0
        for r in self.rows_of[pid]:
            if self.p.is_match[r]:
                if r in keep:
                    body.append(self.row_text(r))
                    kept += 1
            elif self.keep_all or _within(near, self.p.number(r, self.text), radius):
                body.append(self.row_text(r))
            else:
                dropped_ctx += 1
        dropped = len(matches) - kept
        if dropped or dropped_ctx:
            what = "more matches" if dropped != 1 else "more match"
            if dropped_ctx:
                what += f" and {dropped_ctx} context lines"
            body.append(note(dropped, f"{what} omitted"))
        return kept

    def _content(self, r: int) -> str:
        return self.text[self.p.content[r] : self.p.end(r, self.text)].strip()

    def _hidden_note(self, hidden: list[int], cap: int) -> str:
        """Files without rows in the output, by name and match count; beyond ``cap`` names
        (only with a store, whose marker then holds them) just how many."""
        counts = {pid: len(self._matches(pid)) for pid in hidden}
        names = ", ".join(f"{self.p.paths[pid]} ({counts[pid]})" for pid in hidden[:cap])
        more = f", and {len(hidden) - cap} more files" if len(hidden) > cap else ""
        total = sum(counts.values())
        return note(total, f"matches omitted in {len(hidden)} more files: {names}{more}")


def _rare_rows(text: str, parsed: Parsed, cfg: SearchConfig) -> frozenset[int]:
    """Match rows whose line is of a rare template (``templates.py``): among a hundred
    ``D205 1 blank line required`` findings, the three ``PLW1641 Object does not implement
    __hash__`` are what sets the output apart. Kept beyond every cap, unless rare rows are
    so many (free-text hits) that rarity tells nothing apart. The whole line is mined (its
    ``path:line:`` prefix holds digits, so it is a wildcard): no copy of a row is made."""
    line_row = {parsed.line[r]: r for r in range(len(parsed)) if parsed.is_match[r]}
    masked = Masked.of(split_lines(text), text)
    # The whole hit; where too many hits are rare for that to tell anything apart, its
    # head: a checker's findings differ in their free text, and their first words
    # (``12:5: E1111: Assigning``) say which kind of finding a row is. Both come from one
    # masking pass.
    for head in (None, _HEAD_TOKENS + 1):
        found = masked.templates(head).rare(cfg.rare_count)
        rare = [line_row[i] for i in found if i in line_row]
        if len(rare) <= cfg.rare_share * len(line_row):
            return frozenset(rare)
    return frozenset()


_HEAD_TOKENS = 3


def _named_rows(
    parsed: Parsed, query: str, scores: dict[int, float], cfg: SearchConfig
) -> frozenset[int]:
    """The match rows of files whose path the query names by a term few paths have (the
    user asked about ``frontend.py``, or the ``pb`` listings): the file the question is
    about is shown whole, up to ``max_named_rows``."""
    det = term_detector(query_terms(query))
    if det is None or not parsed.paths:
        return frozenset()
    named: dict[str, dict[int, None]] = {}  # term -> the files (once each) whose path has it
    for pid, path in enumerate(parsed.paths):
        for hit in det.hits(path):
            named.setdefault(hit.word, {})[pid] = None
    limit = max(3, len(parsed.paths) // 5)
    pids = {pid for pids in named.values() if len(pids) <= limit for pid in pids}
    rows = [r for r in range(len(parsed)) if parsed.is_match[r] and parsed.path[r] in pids]
    rows.sort(key=lambda r: (-scores.get(r, 0.0), r))  # the best rows when there are many
    return frozenset(rows[: cfg.max_named_rows])


def _within(sorted_numbers: list[int], number: int, radius: int) -> bool:
    i = bisect_left(sorted_numbers, number - radius)
    return i < len(sorted_numbers) and sorted_numbers[i] <= number + radius
