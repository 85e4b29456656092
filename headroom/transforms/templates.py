"""Line templates: which lines are chatter (a template seen hundreds of times) and which are
information (a template seen once or twice).

A line's template is the line with its variable parts masked, Drain-style but without its
similarity threshold:

1. **Shapes**: a whitespace-separated token holding a digit or a path separator (a number,
   a version, a timestamp, an id, a hash, a path, ``python3-six:all``) is variable as a
   whole: ``<*>``, except a rule code (``E501``, ``PLW1641``), which names a kind of
   finding. One C-level regex pass over the joined text.
2. **Positions**: lines with the same number of tokens and the same first frequent word
   (one found in 1 % of the lines; Drain's parse-tree level, which takes the first word
   even when it is a name) form a group; within a group, a position with few distinct
   values (at most four, or the cube root of the group's size) is part of the template,
   and a position with many is ``<*>``. So ``status installed libfoo:amd64 <*>`` and
   ``status installed libbar:amd64 <*>`` share a template while ``status config-files
   libfoo`` keeps its own: the verb takes a few values in hundreds of lines, the package
   name hundreds. Drain's similarity threshold would merge the verbs, which is the loss
   this module exists to prevent.

Everything is deterministic (no dict-order or hash dependence beyond insertion order).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from headroom.signals.importance import line_starts
from headroom.signals.scans import remembered
from headroom.transforms.lines import note_safe

WILDCARD = "<*>"


@dataclass(frozen=True)
class Templates:
    """``of[i]``: template id of line ``i``; ``text[t]``: template ``t`` rendered (variable
    tokens as ``<*>``); ``count[t]``: lines that have it. Blank lines have template
    ``-1``."""

    of: list[int]
    text: list[str]
    count: list[int]

    def rare(self, max_count: int) -> list[int]:
        """Indices of lines whose template occurs at most ``max_count`` times."""
        return [i for i, t in enumerate(self.of) if t >= 0 and self.count[t] <= max_count]


def mine(lines: Sequence[str], text: str | None = None) -> Templates:
    """Templates of ``lines``; ``text``, if given, is ``"\\n".join(lines)`` (saves a copy).

    Inside one pipeline call a long text is mined once: the check that prose is line-shaped
    program output mines a text's head, which is the whole text when it is short, and the
    log compressor then mines the same text."""
    joined = "\n".join(lines) if text is None else text
    return remembered("templates", joined, lambda t: Masked.of(lines, t).templates())


@dataclass(frozen=True)
class Masked:
    """Lines with their variable tokens masked, each distinct shape once.

    Lines that differ only in their digits have the same template (every token holding a
    digit is masked), so they are masked once: a C-level translate folds the digits and
    only one line per folded shape goes through the masking regex and the Python work —
    in a log, a few hundred lines out of ten thousand. A line holding a rule code
    (``E501``, which stays in its template) keeps its own key.

    Masking is token by token, so the masked head of a line (its first tokens) is the head
    of its masked line: ``templates(head=k)`` mines the heads from the same pass."""

    keys: list[str]  # per line, its shape
    masked: list[str]  # per distinct shape, in first-seen order: the masked line
    weights: list[int]  # per distinct shape: how many lines have it
    index: dict[str, int]  # shape -> its position in ``masked``

    @classmethod
    def of(cls, lines: Sequence[str], text: str | None = None) -> Masked:
        if not lines:
            return cls([], [], [], {})
        joined = "\n".join(lines) if text is None else text
        keys = _shape_keys(joined, lines)
        # Counted in C: the distinct shapes in first-seen order, how many lines have each,
        # and the first line of each (built from the end, so the earliest line wins).
        counts = Counter(keys)
        first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
        index = {key: at for at, key in enumerate(counts)}
        weights = list(counts.values())
        reps = [lines[first[key]] for key in counts]
        # Every token holding a digit or a path separator is variable: one C-level pass.
        masked = _VARIABLE_TOKEN.sub(WILDCARD, "\n".join(reps)).split("\n")
        return cls(keys, masked, weights, index)

    def templates(self, head: int | None = None) -> Templates:
        """Templates of the whole lines, or of their first ``head`` tokens."""
        if not self.keys:
            return Templates([], [], [])
        units = self.masked
        if head is not None:
            units = [" ".join(m.split(None, head)[:head]) for m in units]
        of, texts, count = _group(units, self.weights, len(self.keys))
        index = self.index
        return Templates([of[index[k]] for k in self.keys], texts, count)


_DIGITS = bytes.maketrans(b"123456789", b"000000000")
# A rule or error code (``E501``, ``PLW1641``, ``TS2322``, ``SC2086:``, ``[E1101]``) names a
# kind of finding, not an instance: as a whole token it is never masked. Both patterns
# below spell it as one to six capitals then ``_CODE_END`` (``_CODE_TOKEN`` splits the
# capitals as one plus up to five, so that it can open with a character class).
_CODE_END = r"\d{2,5}\]?[:,)]?"
# The whole-token codes of a text. It opens with a character class, so the engine skips
# ahead to capitals; the look-behind checks that a space, a ``[`` or nothing comes before.
_CODE_TOKEN = re.compile(r"[A-Z](?<![^\s\[][A-Z])[A-Z]{0,5}" + _CODE_END + r"(?=\s|$)")


def _shape_keys(joined: str, lines: Sequence[str]) -> list[str]:
    """Per line, its digits folded to ``0``; a line whose folded shape holds a rule code
    (``E000`` once folded) keeps its own text, so ``E501`` and ``E302`` stay apart. The
    code search runs over the distinct shapes only (a few hundred in a log)."""
    folded = joined.encode("utf-8", "surrogatepass").translate(_DIGITS)
    keys = folded.decode("utf-8", "surrogatepass").split("\n")
    if len(keys) != len(lines):  # a line held a separator of its own: no folding
        return list(lines)
    shapes = list(dict.fromkeys(keys))
    text = "\n".join(shapes)
    starts = line_starts(text)
    coded = {shapes[bisect_right(starts, m.start()) - 1] for m in _CODE_TOKEN.finditer(text)}
    if coded:
        keys = [lines[i] if k in coded else k for i, k in enumerate(keys)]
    return keys


def _group(
    masked: list[str], weights: list[int], total: int
) -> tuple[list[int], list[str], list[int]]:
    """Template ids of masked lines that each stand for ``weights[i]`` lines of
    ``total``; returns the ids (``-1`` for a blank line), the templates and their counts."""
    # Work on distinct masked lines with their multiplicity: logs repeat themselves.
    distinct: dict[str, int] = {}
    for m, w in zip(masked, weights, strict=True):
        distinct[m] = distinct.get(m, 0) + w
    tokens = {m: m.split() for m in distinct}
    frequent = _frequent_words(tokens, distinct, total)
    groups: dict[tuple[int, str], list[str]] = {}
    for m, toks in tokens.items():
        if toks:
            word = next((t for t in toks[:_KEY_SCAN] if t in frequent), "")
            groups.setdefault((len(toks), word), []).append(m)
    ids: dict[str, int] = {}  # template text (tokens hold no spaces: one text per tuple)
    template_of: dict[str, int] = {}
    texts: list[str] = []
    count: list[int] = []
    for (_width, word), members in groups.items():
        # Lines with no frequent word share no family: each keeps its own shape.
        constant = _constant_values(members, tokens, distinct) if word else None
        for m in members:
            toks = tokens[m]
            if constant is not None:
                toks = [t if t in c else WILDCARD for t, c in zip(toks, constant, strict=True)]
            key = " ".join(toks)
            t = ids.get(key)
            if t is None:
                t = ids[key] = len(texts)
                texts.append(key)
                count.append(0)
            template_of[m] = t
            count[t] += distinct[m]
    get = template_of.get
    return [get(m, -1) for m in masked], texts, count


# A whitespace-separated token with a digit, ``/`` or ``\`` in it (numbers, versions,
# timestamps, ids, hashes, paths), unless it is a rule code. The look-behind makes the
# engine try token starts only.
_VARIABLE_TOKEN = re.compile(
    r"(?<!\S)(?!\[?[A-Z]{1,6}" + _CODE_END + r"(?:\s|$))[^\s0-9/\\]*+[0-9/\\]\S*+"
)
_KEY_SCAN = 4  # the group key is the first frequent word among the first four tokens


def _frequent_words(tokens: dict[str, list[str]], times: dict[str, int], n: int) -> set[str]:
    """Words found in at least 1 % of the lines (and three): template words, not names. A
    test runner's ``test_x (pkg.Tests.test_x) ... ok`` leads with a name; ``...`` is the
    word its lines share."""
    df: dict[str, int] = {}
    for m, toks in tokens.items():
        w = times[m]
        for t in set(toks[:_KEY_SCAN]):
            df[t] = df.get(t, 0) + w
    support = max(3, n // 100)
    return {t for t, c in df.items() if c >= support and t != WILDCARD}


def _constant_values(
    members: list[str], tokens: dict[str, list[str]], times: dict[str, int]
) -> list[set[str]]:
    """Per position, the values that belong to the template: all of them where they are
    few (at most ``max(4, cube root of the group's lines)``: a verb, a level, a status),
    none where they are many (names, messages). The bound grows slowly on purpose: two
    positions of a few dozen values each would otherwise make every line its own
    template. All members have the same width, so a position is one column."""
    n = sum(times[m] for m in members)
    few = max(_FEW_VALUES, round(n ** (1 / 3)))
    # Column by column: ``set`` over a position's values is one C-level pass.
    out: list[set[str]] = []
    for column in zip(*(tokens[m] for m in members), strict=True):
        values = set(column)
        out.append(values if len(values) <= few else set())
    return out


_FEW_VALUES = 4


def repetitive(lines: Sequence[str], share: float = 0.5) -> bool:
    """Most non-blank lines share their template with at least two others: line-oriented
    program output (a test runner's, a listing, a checker's report) rather than prose."""
    templates = mine(lines)
    used = [templates.count[t] for t in templates.of if t >= 0]
    return bool(used) and sum(1 for c in used if c >= 3) >= share * len(used)


def describe(templates: Templates, indices: Sequence[int], examples: int = 2) -> str:
    """``198x "status installed <*> <*>", 8x "configure <*>"``: what a gap held, its most
    frequent templates first (at most ``examples``, each seen at least twice there), then
    how many lines of other templates."""
    counts = Counter(templates.of[i] for i in indices if templates.of[i] >= 0)
    top = [
        (t, c)
        for t, c in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))[:examples]
        if c >= 2
    ]
    parts = [f'{c}x "{_short(templates.text[t])}"' for t, c in top]
    rest = sum(counts.values()) - sum(c for _t, c in top)
    if parts and rest > 0:
        parts.append(f"{rest} other")
    return ", ".join(parts)


def _short(template: str, limit: int = 48) -> str:
    """Bounded, and safe inside a note (``note_safe``)."""
    text = note_safe(template)
    return text if len(text) <= limit else text[: limit - 1] + "…"
