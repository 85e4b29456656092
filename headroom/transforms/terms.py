"""The relevance context's terms and where they hit: what a compressor keeps because the
user, the agent or the tool call named it.

A term is an identifier-like word of the query (the tool call's arguments, the assistant's
text before the call, the user turn that led to it), lower-cased, with its parts (a
CamelCase or snake_case name, a dotted or slashed path) and a plural's or a tense's stem, so
``HttpClient``, ``retry_after`` and ``pool.py`` match a line that spells them another way.
A hit counts only as a whole word, and a term found everywhere is no signal at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from headroom.signals.keywords import Hit, KeywordDetector, lowered_chunks

_TERM_RE = re.compile(r"[A-Za-z_][\w.-]*\w|\w{3,}")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "into",
        "what",
        "why",
        "how",
        "does",
        "did",
        "not",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "you",
        "your",
        "our",
        "can",
        "could",
        "should",
        "would",
        "will",
        "where",
        "when",
        "which",
        "who",
        "its",
        "it's",
        "also",
        "just",
        "than",
        "then",
        "them",
        "they",
        "there",
        "here",
        "about",
        "please",
        "file",
        "files",
        "line",
        "lines",
        "path",
        "paths",
        "pattern",
        "query",
        "command",
        "args",
        "arguments",
        "true",
        "false",
        "null",
        "none",
        "grep",
        "search",
        "find",
        "show",
        "look",
        "code",
        "make",
        "use",
        "using",
        "need",
        "want",
        "get",
        "run",
        "let",
        "see",
        "these",
        "those",
        "went",
        "away",
        "old",
        "ours",
        "uses",
        "used",
        "broke",
        "after",
        "before",
        "know",
        "check",
        "tell",
        "give",
        "some",
        "any",
        "all",
        "one",
        "out",
        "now",
        "still",
        "only",
        "into",
        "like",
        "sure",
        "whether",
        "anything",
        "something",
    ]
)


_ACRONYM_RE = re.compile(r"\b[A-Z]{2}\b")
_CAMEL_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def identifier_parts(word: str) -> list[str]:
    """The pieces of an identifier a line may spell differently: ``HttpClient`` → ``http``,
    ``client``; ``retry_after`` → ``retry``, ``after``; ``pool.py`` → ``pool``, ``py``;
    ``src/net/pool.py`` → ``src``, ``net``, ``pool``, ``py``."""
    parts: list[str] = []
    for chunk in re.split(r"[./\\_:-]+", word):
        parts.extend(m.group(0) for m in _CAMEL_RE.finditer(chunk))
    return parts


def _stems(word: str) -> tuple[str, ...]:
    """Other spellings a line may use for a query word: "removed" → "remove", "upgrading"
    → "upgrade", "failures" → "failure". Matched as whole words, so a wrong guess finds
    nothing."""
    if len(word) < 5 or not word.isalpha():
        return ()
    if word.endswith("ed"):
        return (word[:-1], word[:-2])
    if word.endswith("ing"):
        return (word[:-3] + "e", word[:-3])
    if word.endswith("es"):
        return (word[:-1], word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        return (word[:-1],)
    return ()


def query_terms(query: str, limit: int = 48) -> list[str]:
    """The query's terms (see ``_terms``), a fresh list each call."""
    return list(_terms(query, limit))


@functools.lru_cache(maxsize=64)
def _terms(query: str, limit: int) -> tuple[str, ...]:
    """Lowercase identifier-like words of the relevance context, stop words removed, in first
    appearance order (deterministic), at most ``limit``. A compound identifier is followed
    by its parts (``HttpClient``: ``httpclient``, ``http``, ``client``), so the query
    matches a line that spells the name another way. Two-letter words count only in
    capitals (an acronym such as ``PB``) and come first."""
    seen: dict[str, None] = {}

    def add(term: str) -> None:
        if len(term) >= 3 and term not in _STOP and not term.isdigit():
            seen.setdefault(term, None)

    for m in _ACRONYM_RE.finditer(query):  # "PB", "IO", "DB": short, but named on purpose
        seen.setdefault(m.group(0).lower(), None)
    for m in _TERM_RE.finditer(query):
        word = m.group(0).strip(".-")
        add(word.lower())
        for stem in _stems(word.lower()):
            add(stem)
        parts = identifier_parts(word)
        if len(parts) > 1:
            for part in parts:
                add(part.lower())
        if len(seen) >= limit:
            break
    # Remembered: one output's query is asked for by several stages of its compression.
    return tuple(seen)[:limit]


QUERY = "query"


def rare_term_hits(text: str, query: str, max_count: int) -> list[Hit]:
    """Whole-word hits of the query's terms that occur at most ``max_count`` times.

    A term found everywhere (the searched pattern itself, the service name in every log
    line) says nothing about which line matters, so it is dropped after a substring count
    per chunk (C speed) and never reaches the per-hit loop."""
    counts = dict.fromkeys(query_terms(query), 0)
    if not counts:
        return []
    for _offset, lowered in lowered_chunks(text):
        for term in counts:
            counts[term] += lowered.count(term)
    det = term_detector([t for t, c in counts.items() if 0 < c <= max_count])
    return det.hits(text) if det is not None else []


def term_detector(terms: Sequence[str]) -> KeywordDetector | None:
    """A whole-word, case-insensitive automaton over the terms: one scan of the text."""
    if not terms:
        return None
    return KeywordDetector((QUERY,), tables={QUERY: (1.0, tuple(terms))})
