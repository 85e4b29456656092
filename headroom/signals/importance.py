"""Line importance: which lines of a tool output a compressor must not lose.

Two real tiers, combined by ``Tiered``:

* ``StructuralTier`` recognises shapes rather than words: stack-trace frames, Python
  exception lines (``KeyError: 'x'`` has no whole-word "error"), ``file:line`` compiler
  diagnostics, test-runner summaries (``=== 3 passed, 1 failed ===`` is a summary, not merely
  an error), ``npm ERR!``, ``make: *** [x] Error 2`` and non-zero exit codes. Where it fires it
  is more precise than a keyword, so it goes first with a high confidence.
* ``KeywordTier`` looks words up in the Aho-Corasick tables of ``keywords.py``.

Every tier answers per line (``score``) and per text (``scan``). Compressors use ``scan``:
one regex or automaton pass over the whole text, then per-line work only for lines with a
signal, which keeps the cost per byte in C rather than in the interpreter.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from headroom.signals.keywords import (
    ERROR,
    IMPORTANCE,
    SECURITY,
    TABLES,
    WARNING,
    KeywordDetector,
    lowered_chunks,
)
from headroom.signals.scans import remembered

Context = Literal["text", "search", "diff", "log"]
CONTEXTS: tuple[Context, ...] = ("text", "search", "diff", "log")

TRACE = "trace"  # a stack-trace line: a frame, a traceback header
SUMMARY = "summary"  # a test or build summary: what the run amounted to


@dataclass(frozen=True)
class Importance:
    category: str | None
    priority: float  # 0..1, how much the line matters
    confidence: float  # 0..1, how sure the tier is


NOTHING = Importance(None, 0.0, 0.0)


class LineImportanceDetector(Protocol):
    def score(self, line: str, context: Context) -> Importance: ...

    def scan(self, text: str, context: Context) -> dict[int, Importance]:
        """Importance of every line of ``text`` (split on ``\\n``) that has a signal."""
        ...


def line_starts(text: str) -> array[int]:
    """Offset of the first character of every ``\\n``-separated line.

    An ``array`` filled by a C-level map over the newline matches: 8 bytes per line and no
    per-line Python code (splitting the text would hold a copy of every line). Shared
    within one pipeline call (see ``scans``): callers must not change it."""
    return remembered("line_starts", text, _line_starts)


def _line_starts(text: str) -> array[int]:
    starts = array("q", [0])
    starts.extend(map(re.Match.end, _NEWLINE.finditer(text)))
    return starts


_NEWLINE = re.compile("\n")


def _line_of(starts: Sequence[int], pos: int) -> int:
    return bisect_right(starts, pos) - 1


# --- keyword tier ---------------------------------------------------------------------------

# Which tables count in which context: security words matter in code changes only (in logs
# "auth" is every request line); warnings do not matter in diffs (a changed line is kept anyway).
_CONTEXT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "text": (ERROR, WARNING, IMPORTANCE),
    "search": (ERROR, WARNING, IMPORTANCE),
    "log": (ERROR, WARNING, IMPORTANCE),
    "diff": (ERROR, SECURITY, IMPORTANCE),
}
KEYWORD_CONFIDENCE = 0.75


class KeywordTier:
    """Whole-word keyword hits; the highest-priority category in the line decides.

    The reference let the leftmost keyword decide, so ``note: build failed`` counted as a
    note; here an error word anywhere in the line makes it an error line.
    """

    def __init__(self) -> None:
        # One automaton per context, holding only the tables that count there: no time is
        # spent matching security words in a log.
        self._detectors = {c: KeywordDetector(cats) for c, cats in _CONTEXT_CATEGORIES.items()}

    def score(self, line: str, context: Context) -> Importance:
        found = self.scan(line, context)
        return found.get(0, NOTHING)

    def scan(self, text: str, context: Context) -> dict[int, Importance]:
        best: dict[int, float] = {}
        category: dict[int, str] = {}
        starts: array[int] | None = None
        for hit in self._detectors[context].hits(text):
            if starts is None:
                starts = line_starts(text)
            idx = _line_of(starts, hit.start)
            prio = TABLES[hit.category][0]
            if prio > best.get(idx, -1.0):
                best[idx] = prio
                category[idx] = hit.category
        return {i: Importance(category[i], best[i], KEYWORD_CONFIDENCE) for i in sorted(best)}


# --- structural tier ------------------------------------------------------------------------

# (group name, category, priority, confidence, pattern). Every pattern is anchored at a line
# start and never crosses a newline; they are joined into one alternation so a text is
# scanned once.
_STRUCTURES: tuple[tuple[str, str, float, float, str], ...] = (
    ("py_tb", TRACE, 0.95, 0.95, r"Traceback \(most recent call last\):"),
    ("py_frame", TRACE, 0.85, 0.9, r"[ \t]+File \"[^\"\n]+\", line \d+"),
    ("at_frame", TRACE, 0.85, 0.9, r"[ \t]+at [^\n]*?(?:\([^\n]*\)|:\d+(?::\d+)?\)?)\r?$"),
    ("java_more", TRACE, 0.8, 0.9, r"[ \t]+\.\.\. \d+ (?:more|common frames omitted)\r?$"),
    ("caused_by", ERROR, 0.95, 0.9, r"Caused by: \S"),
    ("java_exc", ERROR, 0.95, 0.9, r"Exception in thread \""),
    ("rust_panic", ERROR, 0.95, 0.95, r"thread '[^'\n]*' panicked at"),
    ("rust_loc", TRACE, 0.85, 0.9, r"[ \t]*--> [^\s:]+:\d+:\d+"),
    # the source snippet under a rustc/gcc/clang diagnostic: ``88 |     let x = ...``
    ("src_gutter", TRACE, 0.8, 0.85, r"[ \t]*\d+ \|(?: |\r?$)|[ \t]+\|(?: |\r?$)"),
    ("rust_diag", ERROR, 0.95, 0.9, r"error(?:\[E\d+\])?: \S"),
    ("rust_warn", WARNING, 0.7, 0.85, r"warning(?:\[\w+\])?: \S"),
    ("bt_frame", TRACE, 0.8, 0.85, r"[ \t]+\d+: (?:0x[0-9a-f]+ - )?[\w:<>$.]+"),
    ("go_routine", TRACE, 0.95, 0.95, r"goroutine \d+ \[[^\]\n]+\]:"),
    ("go_panic", ERROR, 0.95, 0.95, r"panic: \S"),
    ("go_frame", TRACE, 0.8, 0.85, r"\t\S+\.go:\d+(?: \+0x[0-9a-f]+)?\r?$"),
    (
        "py_exc",
        ERROR,
        0.95,
        0.9,
        r"(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt)(?::[^\n]*)?\r?$",
    ),
    ("npm_err", ERROR, 0.95, 0.95, r"npm ERR!"),
    ("make_err", ERROR, 0.95, 0.95, r"(?:g?make|ninja)(?:\[\d+\])?: \*\*\* [^\n]*Error \d+"),
    (
        "pytest_sum",
        SUMMARY,
        0.9,
        0.95,
        r"=+ [^\n]*\b\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b[^\n]*=+",
    ),
    ("pytest_fail", ERROR, 0.95, 0.9, r"(?:FAILED|ERROR) [^\s:]+::"),
    # pytest's explanation of a failure: ``E       AssertionError: expected 200, got 500``
    ("pytest_e", ERROR, 0.95, 0.9, r"E {3,}\S"),
    # and the failing source line it points at: ``>       assert resp.status == 200``
    ("pytest_src", TRACE, 0.85, 0.85, r"> {3,}\S"),
    ("jest_sum", SUMMARY, 0.9, 0.95, r"(?:Tests|Test Suites|Snapshots|Time):\s+\S"),
    ("cargo_sum", SUMMARY, 0.9, 0.95, r"test result: (?:ok|FAILED)\."),
    ("go_fail", ERROR, 0.95, 0.9, r"(?:--- FAIL: |FAIL\s+\S)"),
    ("go_ok", SUMMARY, 0.6, 0.8, r"ok\s+\S+\s+[\d.]+s\r?$"),
    ("mocha_sum", SUMMARY, 0.85, 0.9, r"[ \t]*\d+ (?:passing|failing|pending)\b"),
    (
        "build_res",
        SUMMARY,
        0.85,
        0.9,
        r"(?:\[\w+\] )?BUILD (?:SUCCESS|SUCCESSFUL|FAILURE|FAILED)\b",
    ),
)
# An exit code may sit anywhere in a line; it is searched in the lowered text, where the
# literal "exit" lets the regex engine skip ahead instead of testing every character.
_EXIT_RE = re.compile(r"exit(?:ed)?(?: with)? (?:code|status):? (\d+)")
_EXIT_BAD = Importance(ERROR, 0.95, 0.9)
_EXIT_OK = Importance(SUMMARY, 0.5, 0.8)
# A newline prefix lets the engine jump from line start to line start instead of testing an
# anchor at every character; the first line is matched on its own.
_STRUCT_ALT = "|".join(f"(?P<{name}>{pat})" for name, _c, _p, _f, pat in _STRUCTURES)
_STRUCT_RE = re.compile(f"\n(?:{_STRUCT_ALT})", re.M)
_STRUCT_FIRST_RE = re.compile(f"(?:{_STRUCT_ALT})", re.M)  # line 0 has no newline before it
_STRUCT_INFO = {name: Importance(cat, prio, conf) for name, cat, prio, conf, _ in _STRUCTURES}
# Compiler diagnostics (``src/a.c:12:5: error: ...``, ``a.ts(3,7): error TS2322``,
# ``x.py:9: DeprecationWarning: ...``). Walking a path costs time on every line, so this is
# tried only on lines that contain "error" or "warning" at all.
_DIAG_RE = re.compile(
    r"(?:[A-Za-z]:)?[^\s:(]++(?::\d+(?::\d+)?|\(\d+,\d+\)):? *(?:fatal )?"
    r"(?:(?P<e>error\b|\w*Error\b)|(?P<w>warning\b|\w*Warning\b))"
)
_DIAG_ERROR = Importance(ERROR, 0.95, 0.95)
_DIAG_WARNING = Importance(WARNING, 0.7, 0.9)
# Frames inside diffs are just code being changed, and every search row looks like a
# ``file:line:`` diagnostic by construction, so the tier answers for logs and prose only.
_STRUCT_CONTEXTS = frozenset(("text", "log"))


def _lines_containing(
    lowered: str, offset: int, words: tuple[str, ...], starts: Sequence[int]
) -> set[int]:
    """Indices of lines holding any of ``words``, found with ``str.find`` (C speed)."""
    found: set[int] = set()
    for word in words:
        pos = lowered.find(word)
        while pos != -1:
            idx = _line_of(starts, pos + offset)
            found.add(idx)
            nxt = starts[idx + 1] - offset if idx + 1 < len(starts) else len(lowered)
            pos = lowered.find(word, nxt)
    return found


class StructuralTier:
    """Shapes of traces, diagnostics and summaries: one anchored regex scan over line starts,
    a literal-prefixed scan for exit codes, and a diagnostic check on the few lines that
    mention an error or warning at all."""

    def score(self, line: str, context: Context) -> Importance:
        return self.scan(line, context).get(0, NOTHING)

    def scan(self, text: str, context: Context) -> dict[int, Importance]:
        if context not in _STRUCT_CONTEXTS:
            return {}
        found: dict[int, Importance] = {}
        starts = line_starts(text)
        # Line-start shapes first: on a line with both, the shape beats "exit code" prose.
        first = _STRUCT_FIRST_RE.match(text)
        if first:
            found[0] = _STRUCT_INFO[first.lastgroup or ""]
        for m in _STRUCT_RE.finditer(text):  # m.start() is the newline before the line
            found.setdefault(_line_of(starts, m.start() + 1), _STRUCT_INFO[m.lastgroup or ""])
        diag_lines: set[int] = set()
        for offset, lowered in lowered_chunks(text):
            for m in _EXIT_RE.finditer(lowered):
                p = m.start()
                if p and (lowered[p - 1].isalnum() or lowered[p - 1] == "_"):
                    continue
                status = _EXIT_OK if int(m.group(1)) == 0 else _EXIT_BAD
                found.setdefault(_line_of(starts, p + offset), status)
            diag_lines |= _lines_containing(lowered, offset, ("error", "warning"), starts)
        for idx in sorted(diag_lines):
            diag = _DIAG_RE.match(text, starts[idx])
            if diag:  # the pattern cannot cross a newline (paths and words exclude it)
                found.setdefault(idx, _DIAG_ERROR if diag.group("e") else _DIAG_WARNING)
        return found


# --- combinator -----------------------------------------------------------------------------

WIN_CONFIDENCE = 0.7


def resolve(candidates: Sequence[Importance]) -> Importance:
    """First candidate over ``WIN_CONFIDENCE`` wins, else the most confident (first on ties)."""
    best = NOTHING
    for imp in candidates:
        if imp.confidence > WIN_CONFIDENCE:
            return imp
        if imp.confidence > best.confidence:
            best = imp
    return best


class Tiered:
    """Tiers in order of precision; see ``resolve`` for which answer counts."""

    def __init__(self, tiers: Sequence[LineImportanceDetector]) -> None:
        self.tiers = tuple(tiers)

    def score(self, line: str, context: Context) -> Importance:
        return resolve([t.score(line, context) for t in self.tiers])

    def scan_all(self, text: str, context: Context) -> dict[int, list[Importance]]:
        """Per line with a signal, every tier's answer in tier order (for callers that need
        to know that a keyword fired even where a more precise tier won)."""
        merged: dict[int, list[Importance]] = {}
        for tier in self.tiers:
            for idx, imp in tier.scan(text, context).items():
                merged.setdefault(idx, []).append(imp)
        return merged

    def scan(self, text: str, context: Context) -> dict[int, Importance]:
        return {i: resolve(c) for i, c in sorted(self.scan_all(text, context).items())}


def default_detector() -> Tiered:
    return Tiered((StructuralTier(), KeywordTier()))
