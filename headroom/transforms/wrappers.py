"""How agents wrap a tool's output, taken off before the payload is detected and compressed
and put back around what the compressor kept.

Claude Code's Read tool numbers lines like ``cat -n`` (``     1\\tline`` or ``    12→line``).
``split_numbering`` removes that prefix so the body is detected for what it is, and
``restore_numbering`` puts the numbers back on the lines a line compressor kept.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# --- agent wrappers ------------------------------------------------------------------------

# Codex CLI's ``exec_command`` result: facts about the run, then ``Output:`` and the payload.
_CODEX_HEADER = re.compile(
    r"(?:Chunk ID: [^\n]*\n)?Wall time: [^\n]*\n(?:Process (?:exited with code|running with "
    r"session ID) [^\n]*\n)?(?:Original token count: [^\n]*\n)?Output:\n"
)


# Claude Code's stand-in for a tool result too large to send: where the whole output was
# saved, then its first ~2 KB (cut at a line end, "..." when there is more).
_CLAUDE_PERSISTED = re.compile(
    r"<persisted-output>\nOutput too large \([^)\n]*\)\. Full output saved to: [^\n]*\n\n"
    r"Preview \(first [^)\n]*\):\n"
)
_CLAUDE_PERSISTED_END = re.compile(r"\n(?:\.\.\.\n)?</persisted-output>\Z")


def split_wrapper(text: str) -> tuple[str, str, str]:
    """``(header, payload, trailer)`` of an agent tool's wrapped output, or
    ``("", text, "")``.

    The wrapper is kept verbatim around the compressed payload, which compresses by its own
    kind: Codex's header (chunk id, wall time, exit code, token count, ``Output:``; the exit
    code is the first thing an agent reads), and Claude Code's persisted-output frame (the
    path of the saved output is how the agent reads the rest, and the closing tag and its
    "..." say the preview is cut)."""
    m = _CODEX_HEADER.match(text)
    if m:
        return m.group(0), text[m.end() :], ""
    m = _CLAUDE_PERSISTED.match(text)
    if m:
        end = _CLAUDE_PERSISTED_END.search(text, m.end())
        if end is not None:
            return m.group(0), text[m.end() : end.start()], end.group(0)
    return "", text, ""


# --- numbered Read output -------------------------------------------------------------------

_NUMBER_PREFIX = re.compile(r"^ *(\d+)(?:\t|\u2192)")


@dataclass(frozen=True)
class Numbered:
    """A Read-tool output split into line-number prefixes and the file body."""

    prefixes: tuple[str, ...]  # one per body line, e.g. ``"     1\\t"``
    body: str
    tail: str  # unnumbered trailing lines (e.g. a reminder the tool appended), kept verbatim


def split_numbering(text: str) -> Numbered | None:
    """The body of a ``cat -n``-style numbered text, or None if ``text`` is not one.

    Every line up to an optional unnumbered tail must carry a prefix, and the numbers must
    count up by one from the first, so a grep hit list or a numbered list in prose does not
    qualify.
    """
    if not _NUMBER_PREFIX.match(text):
        return None
    lines = text.split("\n")
    prefixes: list[str] = []
    body: list[str] = []
    expected = -1
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - index is used after the loop
        m = _NUMBER_PREFIX.match(line)
        if m is None:
            break
        number = int(m.group(1))
        if expected >= 0 and number != expected:
            return None
        expected = number + 1
        prefixes.append(m.group(0))
        body.append(line[m.end() :])
    else:
        index = len(lines)
    if len(prefixes) < 2:
        return None
    tail = "\n".join(lines[index:])
    if index < len(lines):
        tail = "\n" + tail
    return Numbered(tuple(prefixes), "\n".join(body), tail)


def kept_lines(source: list[str], output: list[str]) -> list[int | None]:
    """For each output line, the index of the source line it was copied from, or None for
    a line the compressor wrote itself. Lines are matched in order: a kept line maps to the
    first unused source line with the same text after the previous match."""
    positions: dict[str, list[int]] = {}
    for i, line in enumerate(source):
        positions.setdefault(line, []).append(i)
    cursor = 0
    found: list[int | None] = []
    for line in output:
        candidates = positions.get(line)
        j = bisect.bisect_left(candidates, cursor) if candidates else 0
        if candidates and j < len(candidates):
            cursor = candidates[j] + 1
            found.append(candidates[j])
        else:
            found.append(None)
    return found


def restore_numbering(numbered: Numbered, output: str) -> str:
    """Put the original line numbers back on every output line copied from the body.

    Lines are matched in order (a kept line maps to the first unused body line with the
    same text after the previous match); lines a compressor wrote itself, such as markers
    and summaries, match nothing and stay unnumbered, which is how the reader tells them
    apart.
    """
    lines = output.split("\n")
    out = [
        line if i is None else numbered.prefixes[i] + line
        for line, i in zip(lines, kept_lines(numbered.body.split("\n"), lines), strict=True)
    ]
    # Blank lines after a closing line the compressor wrote (its marker) are the output's
    # trailing whitespace, not kept lines: numbered, they end the view with a bare "473\t".
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    if end and out[end - 1] == lines[end - 1]:
        out[end:] = lines[end:]
    return "\n".join(out) + numbered.tail
