"""Keyword tables and a whole-word, case-insensitive Aho-Corasick scanner.

pyahocorasick is used (not hand-rolled regex alternations) because it is a small, mature C
extension with wheels for every CPython we support: one pass over the text finds every
keyword of every table, whatever the number of keywords, so importance scanning stays cheap
per byte. ahocorasick-rs is as fast but pulls a Rust build on platforms without wheels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import ahocorasick

# Category → (priority, words). ``timeout``, ``abort``, ``denied`` and ``rejected`` are
# errors; ``token`` is deliberately not a security word (it matched every LLM metric).
ERROR = "error"
WARNING = "warning"
IMPORTANCE = "importance"
SECURITY = "security"

TABLES: dict[str, tuple[float, tuple[str, ...]]] = {
    ERROR: (
        0.95,
        (
            "error",
            "errors",
            "exception",
            "fail",
            "failed",
            "failure",
            "failing",
            "fatal",
            "critical",
            "crash",
            "crashed",
            "panic",
            "panicked",
            "abort",
            "aborted",
            "timeout",
            "timed out",
            "denied",
            "rejected",
            "traceback",
            "segfault",
            "unhandled",
            "refused",
            "oom",
        ),
    ),
    WARNING: (0.75, ("warn", "warning", "warnings", "deprecated")),
    IMPORTANCE: (0.6, ("important", "note", "todo", "fixme", "hack", "xxx", "bug", "fix")),
    SECURITY: (0.85, ("security", "auth", "password", "secret", "credential", "cve")),
}


class Hit(NamedTuple):
    """A tuple, not a dataclass: scans of large texts create many and tuples are cheap."""

    category: str
    word: str
    start: int  # index in the text of the first character


_CHUNK = 1 << 16


# Keywords are words and spaces ("timed out"), so a chunk may end after any other character.
_CUT = re.compile(r"[^\w ]")


def lowered_chunks(text: str, size: int = _CHUNK) -> Iterator[tuple[int, str]]:
    """``(offset, lowercased chunk)`` over newline-aligned chunks of about ``size`` chars.

    Lowercasing per chunk keeps the extra memory at one chunk instead of a second copy of
    the text. Where a Unicode case mapping changes a chunk's length, only ASCII is folded
    there, so offsets stay exact."""
    n = len(text)
    lo = 0
    while lo < n:
        hi = text.find("\n", min(lo + size, n - 1), lo + 2 * size)
        if hi == -1:  # no newline near: cut after a character no keyword contains
            cut = _CUT.search(text, min(lo + size, n - 1), lo + 2 * size)
            hi = n if cut is None else cut.start()
        hi = n if hi == -1 else hi + 1
        chunk = text[lo:hi]
        lowered = chunk.lower()
        if len(lowered) != len(chunk):
            lowered = "".join(c.lower() if c.isascii() else c for c in chunk)
        yield lo, lowered
        lo = hi


def _start(hit: Hit) -> int:
    return hit.start


class KeywordDetector:
    """Finds whole-word keyword hits of the chosen categories in one scan of the text."""

    def __init__(
        self,
        categories: Iterable[str] = (ERROR, WARNING, IMPORTANCE, SECURITY),
        tables: dict[str, tuple[float, tuple[str, ...]]] | None = None,
    ) -> None:
        tables = TABLES if tables is None else tables
        self.categories = tuple(categories)
        self.priority = {c: tables[c][0] for c in self.categories}
        self._automaton = ahocorasick.Automaton()
        for category in self.categories:
            for word in tables[category][1]:
                self._automaton.add_word(word, (category, word, len(word) - 1))
        self._automaton.make_automaton()

    def hits(self, text: str) -> list[Hit]:
        """All whole-word hits, leftmost first. ASCII case is folded.

        The text is scanned in newline-aligned chunks: pyahocorasick copies a string into
        4-byte characters before scanning, so a whole megabyte at once would cost four more;
        keywords never span a newline, so no hit is lost at a chunk edge."""
        found: list[Hit] = []
        for offset, lowered in lowered_chunks(text):
            self._scan(lowered, offset, found)
        found.sort(key=_start)  # the automaton reports by end; shorter words end first
        return found

    def _scan(self, lowered: str, offset: int, found: list[Hit]) -> None:
        last = len(lowered) - 1
        for end, (category, word, span) in self._automaton.iter(lowered):
            start = end - span
            if start > 0:
                c = lowered[start - 1]
                if c.isalnum() or c == "_":
                    continue
            if end < last:
                c = lowered[end + 1]
                if c.isalnum() or c == "_":
                    continue
            found.append(Hit(category, word, start + offset))

    def categories_in(self, text: str) -> set[str]:
        return {h.category for h in self.hits(text)}

    def first(self, text: str) -> Hit | None:
        hits = self.hits(text)
        return hits[0] if hits else None

    def has(self, text: str, category: str) -> bool:
        return any(h.category == category for h in self.hits(text))
