"""What the line compressors (log, diff, search, text) share.

One place for: splitting, normalising near-identical lines, rendering "these line indices,
with a note for every gap", the note format, and finishing a result (token guard, store
write, marker). The compressors differ only in which lines they choose to keep.

Notes written in place (``[... 37 lines omitted]``) are how a compressor says what it dropped
when there is no store to point at; they also make a second pass a no-op (idempotence).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from headroom.ccr import markers
from headroom.ccr.markers import content_key
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.tokens import estimate_tokens

NOTE_OPEN = "[... "
_NOTE_RE = re.compile(r"^\[\.\.\. \d+ [^\n\]]*\]\r?$", re.M)


def split_lines(text: str) -> list[str]:
    """``\\n``-split; ``"\\n".join`` gives the text back exactly (``\\r`` stays on the line)."""
    return text.split("\n")


def head_lines(text: str, count: int) -> list[str]:
    """The first ``count`` lines of ``text``, without splitting (or copying) the rest."""
    end = -1
    for _ in range(count):
        end = text.find("\n", end + 1)
        if end < 0:
            return split_lines(text)
    return split_lines(text[:end])


def note(count: int, what: str) -> str:
    """An in-place omission note: ``[... 37 lines omitted]``."""
    return f"{NOTE_OPEN}{count} {what}]"


def note_safe(text: str) -> str:
    """Text that may stand inside a note: no brackets (a note ends at ``]``), no double
    quotes (a note quotes with them) and no ``hash=`` (only our markers may say that)."""
    return text.translate(_NOTE_UNSAFE).replace("hash=", "hash:")


_NOTE_UNSAFE = str.maketrans({"[": "(", "]": ")", '"': "'"})


def has_note(text: str) -> bool:
    return _NOTE_RE.search(text) is not None


def already_compressed(text: str) -> bool:
    """Our marker or our note is in the text: compressing it again must change nothing.

    The literal checks first are ``str.find`` speed; the regexes only run when they hit."""
    if ("<<ccr:" in text or "hash=" in text) and markers.has_marker(text):
        return True
    return NOTE_OPEN in text and has_note(text)


# --- normalisation --------------------------------------------------------------------------

# Order matters: timestamps before bare numbers, uuids before hex runs. Each pattern opens
# with a character class (a ``\b`` or a repeat there would make the engine enter the whole
# pattern at every position); where the original spelling opens with ``\b``, a look-behind
# after the first character checks the same boundary.
_HEX = "[0-9a-fA-F]"
_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d\d\d\d-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<ts>"),
    # \b\d\d:\d\d:\d\d(?:[.,]\d+)?\b
    (re.compile(r"\d(?<!\w\d)\d:\d\d:\d\d(?:[.,]\d+)?\b"), "<ts>"),
    # \b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b
    (re.compile(f"{_HEX}(?<!\\w{_HEX}){_HEX}{{7}}-(?:{_HEX}{{4}}-){{3}}{_HEX}{{12}}\\b"), "<id>"),
    # \b0x[0-9a-fA-F]+\b|\b(?=[a-f]*\d)[0-9a-f]{7,}\b
    (
        re.compile(
            r"[0-9a-f](?<!\w[0-9a-f])"
            r"(?:(?<=0)x[0-9a-fA-F]+\b|(?<=\d)[0-9a-f]{6,}\b|(?=[a-f]*\d)[0-9a-f]{6,}\b)"
        ),
        "<hex>",
    ),
    # Starts only where a token starts and never backtracks: the obvious nested pattern is
    # quadratic in the length of every slash-free word.
    (re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?[\w.~-]*+(?:[/\\][\w.~-]++)+"), "<path>"),
    (re.compile(r"\d+(?:\.\d+)*"), "<n>"),
)


def normalise_many(lines: Sequence[str]) -> list[str]:
    """Near-identical lines (differing in numbers, hex ids, timestamps, paths) map to one
    string. Works on the joined text so each pattern is one C-level pass, not one per line."""
    if not lines:
        return []
    joined = "\n".join(lines)
    for pattern, repl in _NORMALISERS:
        joined = pattern.sub(repl, joined)
    return joined.split("\n")


def normalise(line: str) -> str:
    return normalise_many([line])[0]


# --- rendering ------------------------------------------------------------------------------

GapNote = Callable[[int, int], str]  # (first omitted index, end exclusive) -> note line


def lines_note(start: int, end: int) -> str:
    return note(end - start, "lines omitted" if end - start != 1 else "line omitted")


def render(
    lines: Sequence[str],
    keep: Iterable[int],
    gap_note: GapNote = lines_note,
    after: Mapping[int, str] | None = None,
    covers: Mapping[int, int] | None = None,
) -> list[str]:
    """Kept lines in order; each run of dropped lines becomes one note.

    A gap whose lines are no longer than its note is kept verbatim instead, so rendering
    never trades a line for a longer description of it. ``after[i]`` is an extra note
    emitted right after kept line ``i`` (e.g. how many repeats of it were folded); when
    ``covers[i] = c`` that note already describes the ``c`` lines right after ``i``, so the
    gap note only counts what follows them.
    """
    out: list[str] = []
    prev = -1  # last index accounted for
    for i in sorted(set(keep)):
        if i - prev > 1:
            _emit_gap(out, lines, prev + 1, i, gap_note)
        out.append(lines[i])
        prev = i
        if after and i in after:
            out.append(after[i])
            if covers:
                prev = i + covers.get(i, 0)
    if len(lines) - prev > 1:
        _emit_gap(out, lines, prev + 1, len(lines), gap_note)
    return out


def _emit_gap(
    out: list[str], lines: Sequence[str], start: int, end: int, gap_note: GapNote
) -> None:
    text = gap_note(start, end)
    if end - start <= 3 and sum(len(x) + 1 for x in lines[start:end]) <= len(text) + 1:
        out.extend(lines[start:end])
    else:
        out.append(text)


def fold_runs(
    lines: Sequence[str],
    keep: set[int],
    protected: set[int],
    after: dict[int, str],
    covers: dict[int, int],
    exact: bool,
) -> None:
    """Runs of consecutive kept lines that are identical (``exact``) or differ only in
    numbers/ids/paths/timestamps collapse into the first line of the run plus a count note.
    Protected lines are never folded, and a line that already carries a note starts no
    run. Updates ``keep``, ``after`` and ``covers`` for ``render``."""
    order = sorted(keep)
    keys = _fold_keys(lines, order, protected, exact)
    runs: list[list[int]] = []  # [first index, folded count]
    for pos, i in enumerate(order):
        key = keys[pos]
        same = pos > 0 and key is not None and order[pos - 1] == i - 1 and key == keys[pos - 1]
        if same and runs and runs[-1][0] + runs[-1][1] == i - 1 and i not in protected:
            runs[-1][1] += 1
        elif i not in protected and i not in after:
            runs.append([i, 0])
    what = "identical lines omitted" if exact else "similar lines omitted"
    for first, count in runs:
        text = note(count, what)
        # A single line stays (it is context someone may need); a run folds where its note
        # is shorter than what it replaces.
        if count > 1 and sum(len(lines[i]) + 1 for i in range(first + 1, first + count + 1)) > len(
            text
        ):  # fold only where the note is shorter than what it replaces
            keep.difference_update(range(first + 1, first + count + 1))
            after[first] = text
            covers[first] = count


def _fold_keys(
    lines: Sequence[str], order: list[int], protected: set[int], exact: bool
) -> list[str | None]:
    """Per kept line, what ``fold_runs`` compares: the line, or its normalised form.

    A fold needs three consecutive kept lines that are not protected (a first line and at
    least two folded into it), so only lines inside such a stretch are normalised (the
    normalising regexes are the costly part of a log's selection); the others get
    ``None``, which matches nothing."""
    keys: list[str | None] = [None] * len(order)
    start = 0
    for pos in range(1, len(order) + 1):
        if pos < len(order) and order[pos] == order[pos - 1] + 1 and order[pos] not in protected:
            continue
        first = start if order[start] not in protected else start + 1
        if pos - first >= 3:
            stretch = [lines[order[p]] for p in range(first, pos)]
            keys[first:pos] = stretch if exact else normalise_many(stretch)
        start = pos
    return keys


def window(indices: Iterable[int], radius: int, n: int) -> set[int]:
    """Every index within ``radius`` of one of ``indices``, clipped to ``[0, n)``."""
    out: set[int] = set()
    for i in indices:
        out.update(range(max(0, i - radius), min(n, i + radius + 1)))
    return out


# --- finishing ------------------------------------------------------------------------------


def passthrough(text: str, ctx: CompressContext) -> CompressResult:
    tokens = estimate_tokens(text, ctx.model)
    return CompressResult(text, "passthrough", tokens, tokens)


MarkerFn = Callable[[str], str]  # key -> marker line


def finish(
    text: str,
    body: Sequence[str],
    ctx: CompressContext,
    strategy: str,
    marker: MarkerFn | None,
) -> CompressResult:
    """Accept ``body`` only if it is smaller in tokens than ``text`` (marker included).

    With a store and a lossy body, the original is written and ``marker(key)`` appended;
    the write happens only once the result is accepted, so a rejected attempt leaves nothing
    behind in the store.
    """
    out = "\n".join(body)
    use_marker = marker is not None and ctx.store is not None
    candidate = out + "\n" + marker(content_key(text)) if use_marker and marker else out
    before = estimate_tokens(text, ctx.model)
    after = estimate_tokens(candidate, ctx.model)
    if after >= before or candidate == text:
        return CompressResult(text, "passthrough", before, before)
    keys: tuple[str, ...] = ()
    if use_marker and marker and ctx.store is not None:
        key = ctx.store.put(text)
        candidate = out + "\n" + marker(key)
        keys = (key,)
    return CompressResult(candidate, strategy, before, estimate_tokens(candidate, ctx.model), keys)
