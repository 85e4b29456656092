"""A long JSON array's items as one text, and the items a query names.

``ItemTexts`` holds the compact JSON of every item joined into one string, so a keyword or
query automaton scans the whole array once and maps each hit back to its item. A query
keeps items in two ways: anchors (UUIDs, e-mail addresses, hosts and dotted names, long
numbers, identifiers, quoted strings) must appear whole in an item's values; other words
score items by IDF, and items within a share of the best score are kept. A term found in
too many items selects none of them.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate, pairwise

import ahocorasick

from headroom.transforms.json_config import SmartCrusherConfig

_QUERY_ANCHORS = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # UUID
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # email
    r"|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"  # hostname / dotted name / version
    r"|\b\d{4,}\b"  # long number
    r"|\b[A-Za-z_][A-Za-z0-9_-]*(?:[0-9_-]|[a-z][A-Z])[A-Za-z0-9_-]*\b"  # identifier
)
_QUOTED = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"(\s*:)?|'([^'\s]+)'")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORD_TEXT = (
    "the and for with from that this what which who whom where when why how are was were "
    "been being have has had does did not but all any can could should would will shall "
    "may might must into onto over under about above below than then them they their there "
    "these those you your our its his her she him get got show list find give tell please "
    "let make use using used only also just more most some such very each every other "
    "true false null none"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def in_key(text: str, end: int) -> bool:
    """True if the match ending before ``end`` sits inside an object key (``"…":``)."""
    pos = end
    for _ in range(64):  # bounded: a key with more escaped quotes is treated as a value
        quote = text.find('"', pos)
        if quote < 0:
            return False
        if text[quote - 1] != "\\":
            return text.startswith(":", quote + 1)
        pos = quote + 1
    return False


_SCAN_CHUNK = 1 << 16


class ItemTexts:
    """The compact JSON of a whole array and where each item's text starts in it.

    ``index`` maps a character position in ``joined`` back to the item, so one scan of
    ``joined`` serves every item. ``joined`` is exactly ``[`` + the items' texts joined by
    ``,`` + ``]``, and only their lengths are taken (an iterator, so a caller can write
    the items one at a time): beside the parsed array and ``joined``, the texts themselves
    were a third copy of the document, the peak of a crush. ``text`` cuts one out when
    asked.
    """

    def __init__(self, joined: str, lengths: Iterable[int]) -> None:
        self.joined = joined
        # A list, not an array: bisect reads a list's items directly, an array's through
        # the sequence protocol (measured slower on every keyword hit).
        self.starts = list(accumulate((n + 1 for n in lengths), initial=1))
        self.count = len(self.starts) - 1

    def index(self, pos: int) -> int:
        return bisect_right(self.starts, pos, 0, self.count) - 1

    def text(self, i: int) -> str:
        return self.joined[self.starts[i] : self.starts[i + 1] - 1]

    def first_of_each(self) -> list[int]:
        """For each item, the index of the first item with the same text (itself when
        none before it). Texts are cut out one at a time and compared by hash; two items
        of one hash are compared in full, so a collision never merges different items."""
        joined, starts = self.joined, self.starts
        hashes = [hash(joined[a : b - 1]) for a, b in pairwise(starts)]
        first_by_hash = dict(zip(reversed(hashes), range(self.count - 1, -1, -1), strict=True))
        firsts = [first_by_hash[h] for h in hashes]
        for i, first in enumerate(firsts):
            if first != i and self.text(first) != self.text(i):
                firsts[i] = next(
                    (j for j in range(i) if firsts[j] == j and hashes[j] == hashes[i]
                     and self.text(j) == self.text(i)),
                    i,
                )  # fmt: skip
        return firsts

    def spans(self, size: int = _SCAN_CHUNK) -> Iterator[tuple[int, int]]:
        """``(lo, hi)`` pieces of ``joined`` of about ``size`` chars, cut between items.

        Scanning a piece at a time bounds the automaton's copy of the text (pyahocorasick
        widens a str to 4 bytes per character first); a word never spans two items."""
        n = len(self.joined)
        lo = 0
        while lo < n:
            if lo + size >= n:
                yield lo, n
                return
            j = bisect_right(self.starts, lo + size, 0, self.count) - 1
            hi = self.starts[j]
            if hi <= lo:  # one item longer than ``size``: it is a piece of its own
                hi = self.starts[j + 1] if j + 1 < self.count else n
            yield lo, hi
            lo = hi


def evenly(indices: list[int], count: int) -> list[int]:
    if count >= len(indices):
        return list(indices)
    if count <= 1:
        return indices[:count]
    step = (len(indices) - 1) / (count - 1)
    return [indices[round(j * step)] for j in range(count)]


def _query_terms(query: str) -> tuple[list[str], list[str]]:
    """(anchors, words): anchors must appear whole; words are scored BM25-style."""
    anchors: dict[str, None] = {}
    for m in _QUOTED.finditer(query):  # JSON strings left to right; keys (`"k":`) skipped
        quoted = m.group(3) if m.group(1) is None else ("" if m.group(2) else m.group(1))
        if 2 <= len(quoted) <= 80:
            anchors[quoted.strip().lower()] = None
    for m in _QUERY_ANCHORS.finditer(query):
        anchors[m.group(0).lower()] = None
    anchors.pop("", None)
    words = {
        w
        for w in _WORD.findall(query.lower())
        if len(w) >= 3 and w not in _STOPWORDS and w not in anchors and not w.isdigit()
    }
    return sorted(a for a in anchors if len(a) >= 3), sorted(words)


def query_items(rows: ItemTexts, n: int, query: str, cfg: SmartCrusherConfig) -> set[int]:
    anchors, words = _query_terms(query)
    if not anchors and not words:
        return set()
    automaton = ahocorasick.Automaton()
    for term in anchors:
        automaton.add_word(term, (True, term))
    for term in words:
        if term not in anchors:
            automaton.add_word(term, (False, term))
    automaton.make_automaton()
    anchor_hits: dict[str, dict[int, None]] = {}
    word_hits: dict[str, set[int]] = {}
    for start, is_anchor, term in _term_hits(rows, automaton):
        row = rows.index(start)
        if is_anchor:
            anchor_hits.setdefault(term, {})[row] = None
        else:
            word_hits.setdefault(term, set()).add(row)
    keep = _anchored(anchor_hits, n, cfg)
    keep.update(_relevant(word_hits, n, cfg))
    return keep


def _term_hits(
    rows: ItemTexts, automaton: ahocorasick.Automaton
) -> Iterator[tuple[int, bool, str]]:
    """(position, is_anchor, term) of whole-word, case-folded query hits outside keys."""
    text = rows.joined
    for lo, hi in rows.spans():
        piece = text[lo:hi]
        lowered = piece.lower()
        if len(lowered) != len(piece):
            lowered = "".join(c.lower() if c.isascii() else c for c in piece)
        last = len(lowered) - 1
        for end, (is_anchor, term) in automaton.iter(lowered):
            start = end - len(term) + 1
            if start > 0 and _is_word_char(lowered[start - 1]) and _is_word_char(term[0]):
                continue
            if end < last and _is_word_char(lowered[end + 1]) and _is_word_char(term[-1]):
                continue
            if not in_key(text, lo + end + 1):
                yield lo + start, is_anchor, term


def _anchored(anchor_hits: dict[str, dict[int, None]], n: int, cfg: SmartCrusherConfig) -> set[int]:
    """Items quoting an anchor, most selective anchors first, ``max_anchor_rows`` in all.

    An anchor found in more than ``relevance_max_df`` of the items selects nothing (a long
    user turn full of common identifiers must not keep half the array).
    """
    keep: set[int] = set()
    for _, term in sorted((len(hits), term) for term, hits in anchor_hits.items()):
        hits = list(anchor_hits[term])
        room = cfg.max_anchor_rows - len(keep)
        if room <= 0 or len(hits) > max(1.0, cfg.relevance_max_df * n):
            break
        keep.update(evenly(hits, room))
    return keep


def _relevant(word_hits: dict[str, set[int]], n: int, cfg: SmartCrusherConfig) -> list[int]:
    """Items whose summed IDF over selective query words reaches a share of the best item's."""
    scores: dict[int, float] = {}
    for hits in word_hits.values():
        df = len(hits)
        if df > cfg.relevance_max_df * n:
            continue
        idf = math.log((n - df + 0.5) / (df + 0.5) + 1.0)
        for row in hits:
            scores[row] = scores.get(row, 0.0) + idf
    if not scores:
        return []
    floor = cfg.relevance_ratio * max(scores.values())
    ranked = sorted((-s, row) for row, s in scores.items() if s >= floor)
    return [row for _, row in ranked[: cfg.max_relevance_rows]]
