"""Documents with sections (Markdown, reStructuredText, HTML): the sections the question is
about stay whole, the others shrink to their headings.

A section starts at a heading: ``## Title`` (Markdown), a title over a rule of ``=``, ``-``,
``~`` ... at least as long as it (reStructuredText), or an ``<h1>``..``<h6>`` line (HTML).
A section is *named* by the query when it holds a query term that few sections hold (the
API the user asked about, the version, the option); a term found in most sections (the
project's name) names none. Named sections rank by BM25 (hand-written here: the scan
is one Aho-Corasick pass over the text, and only the query's terms are ever counted, so
a library that tokenises every section in Python would only add cost). Named sections
are kept whole; every other section keeps its heading, and a note says how many lines it
held. Text before the first heading is kept.

Nothing is dropped when the query names no section at all: without a question there is no
telling which part matters, so the document passes through (the pipeline's other routes
still see it). With a store the original is kept and the marker names it; without one the
notes are the only record of what went.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass

from headroom.ccr.markers import lines_marker
from headroom.signals.importance import line_starts
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.lines import (
    already_compressed,
    finish,
    lines_note,
    passthrough,
    render,
    split_lines,
)
from headroom.transforms.terms import query_terms, term_detector


@dataclass(frozen=True)
class DocsConfig:
    min_sections: int = 4  # fewer sections: untouched
    rare_share: float = 0.25  # a term in at most this share of the sections names them
    max_kept_share: float = 0.3  # named sections beyond this share of the text: the best
    min_relative_score: float = 0.3  # a named section scoring below this share of the best goes


_MD_HEADING = re.compile(r"#{1,6} \S")
_HTML_HEADING = re.compile(r"\s*<h[1-6][\s>]", re.I)
_RST_RULE = re.compile(r"([=\-~^\"'*+#`:.])\1{2,}\r?$")


def section_starts(lines: list[str]) -> list[int]:
    """Line indices where a section starts (its heading, or a reST title's first line)."""
    starts: list[int] = []
    for i, line in enumerate(lines):
        if _MD_HEADING.match(line) or _HTML_HEADING.match(line):
            starts.append(i)
        elif (
            i > 0
            and _RST_RULE.match(line)
            and lines[i - 1].strip()
            and not _RST_RULE.match(lines[i - 1])
            and len(line.rstrip()) >= len(lines[i - 1].rstrip())
        ):
            starts.append(i - 1)
    return starts


def has_sections(text: str, minimum: int = DocsConfig.min_sections) -> bool:
    """Enough headings, and a document rather than a script or config file whose ``#``
    comments look like Markdown headings: most of its other lines read as prose."""
    lines = split_lines(text)
    starts = section_starts(lines)
    if len(starts) < minimum:
        return False
    if any(
        _HTML_HEADING.match(lines[i]) or (i + 1 < len(lines) and _RST_RULE.match(lines[i + 1]))
        for i in starts[:3]
    ):
        return True
    body = [x for x in lines if x.strip() and not _MD_HEADING.match(x)]
    code = sum(1 for x in body if _CODE_LIKE.search(x))
    return code <= _MAX_CODE_SHARE * len(body)


# A line that reads as code or configuration: an assignment, a call, braces, a statement
# end, a shell variable or pipe, a ``key: value`` mapping, or leading indentation.
_CODE_LIKE = re.compile(r"^\s|[=;{}$|]|\w\(|^[\w.-]+:\s")
_MAX_CODE_SHARE = 0.4


class DocsCompressor:
    name = "docs"

    def __init__(self, config: DocsConfig | None = None) -> None:
        self.config = config or DocsConfig()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        lines = split_lines(text)
        starts = [] if already_compressed(text) else section_starts(lines)
        if len(starts) < self.config.min_sections:
            return passthrough(text, ctx)
        named = self._named(text, lines, starts, ctx.query)
        if not named:
            return passthrough(text, ctx)
        bounds = [*starts, len(lines)]
        keep = set(range(starts[0]))
        for k, start in enumerate(starts):
            end = bounds[k + 1]
            keep.update(range(start, end) if k in named else _heading(lines, start, end))
        body = render(lines, keep, lines_note)
        kept = len(keep)
        return finish(text, body, ctx, self.name, lambda key: lines_marker(key, len(lines), kept))

    def _named(self, text: str, lines: list[str], starts: list[int], query: str) -> set[int]:
        """Sections holding a query term that few sections hold, ranked by BM25, best first,
        up to ``max_kept_share`` of the text (the best one always); a section far below the
        best is not named."""
        det = term_detector(query_terms(query))
        if det is None:
            return set()
        offsets = line_starts(text)
        tf: dict[int, dict[str, int]] = {}
        for hit in det.hits(text):
            line = bisect_right(offsets, hit.start) - 1
            k = bisect_right(starts, line) - 1
            if k >= 0:
                counts = tf.setdefault(k, {})
                counts[hit.word] = counts.get(hit.word, 0) + 1
        df: dict[str, int] = {}
        for counts in tf.values():
            for w in counts:
                df[w] = df.get(w, 0) + 1
        n = len(starts)
        limit = max(1, int(self.config.rare_share * n))
        bounds = [*starts, len(lines)]
        sizes = [bounds[k + 1] - bounds[k] for k in range(n)]
        scores = {
            k: _bm25(counts, df, n, sizes[k], sum(sizes) / n, limit) for k, counts in tf.items()
        }
        best = max(scores.values(), default=0.0)
        floor = max(1e-9, self.config.min_relative_score * best)
        ranked = sorted((k for k, s in scores.items() if s >= floor), key=lambda k: (-scores[k], k))
        budget = self.config.max_kept_share * len(text)
        out: set[int] = set()
        used = 0
        for k in ranked:
            size = sum(len(x) + 1 for x in lines[bounds[k] : bounds[k + 1]])
            if out and used + size > budget:
                continue
            out.add(k)
            used += size
        return out


_K1 = 1.2
_B = 0.75


def _bm25(
    counts: dict[str, int], df: dict[str, int], n: int, size: int, avg: float, limit: int
) -> float:
    """BM25 of one section (its length in lines) over the query terms few sections hold:
    a short section naming both APIs beats a long one that names them among much else."""
    norm = _K1 * (1 - _B + _B * size / avg)
    return sum(
        math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) * tf * (_K1 + 1) / (tf + norm)
        for w, tf in counts.items()
        if df[w] <= limit
    )


def _heading(lines: list[str], start: int, end: int) -> range:
    """A section's heading lines: the title and, for reST, its rule."""
    rule = start + 1 < end and _RST_RULE.match(lines[start + 1]) is not None
    return range(start, min(end, start + (2 if rule else 1)))
