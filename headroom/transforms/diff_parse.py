"""Unified diffs parsed into files and hunks (``diff --git`` / ``diff -u`` headers, ``---`` /
``+++``, rename, mode and binary lines), each hunk consumed by the line counts of its
``@@`` header, so a removed line that looks like ``--- x`` is never taken for a header."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK_RE = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)", re.S)
_GIT_PATH_RE = re.compile(r"diff --git (?:\"?a/)?(.+?)\"? (?:\"?b/)?(.+?)\"?\r?$")


@dataclass
class Hunk:
    old_start: int
    new_start: int
    section: str
    header: str
    body: list[str]
    first: int  # index of the header line in the input


@dataclass
class FileDiff:
    path: str | None  # None for the preamble before the first file
    items: list[str | Hunk] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    hunks: int = 0
    start: int = 0  # first input line
    end: int = 0  # one past the last input line


def parse(lines: list[str]) -> list[FileDiff]:
    """Files with their header lines and hunks; the first entry is the preamble."""
    files = [FileDiff(None)]
    cur = files[0]
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("diff ") or (
            line.startswith("--- ")
            and i + 1 < n
            and lines[i + 1].startswith("+++ ")
            and (cur.path is None or cur.hunks)
        ):
            cur.end = i
            cur = FileDiff(_path_of(lines, i), start=i)
            files.append(cur)
            cur.items.append(line)
            i += 1
            continue
        m = _HUNK_RE.match(line) if line.startswith("@@ ") else None
        if m is None or cur.path is None:
            cur.items.append(line)
            i += 1
            continue
        j = _hunk_end(lines, i + 1, int(m.group(2) or 1), int(m.group(4) or 1))
        hunk = Hunk(int(m.group(1)), int(m.group(3)), m.group(5), line, lines[i + 1 : j], i)
        for b in hunk.body:
            if b.startswith("+"):
                cur.added += 1
            elif b.startswith("-"):
                cur.removed += 1
        cur.hunks += 1
        cur.items.append(hunk)
        i = j
    cur.end = n
    return files


def _hunk_end(lines: list[str], i: int, old: int, new: int) -> int:
    n = len(lines)
    while i < n and (old > 0 or new > 0):
        c = lines[i][:1]
        if c == " " or c == "" or c == "\r":
            old -= 1
            new -= 1
        elif c == "-":
            old -= 1
        elif c == "+":
            new -= 1
        elif c != "\\":
            break
        i += 1
    while i < n and lines[i].startswith("\\"):
        i += 1
    return i


def _path_of(lines: list[str], i: int) -> str:
    m = _GIT_PATH_RE.match(lines[i])
    if m:
        return m.group(2)
    for line in lines[i : i + 6]:
        if line.startswith("+++ "):
            path = line[4:].split("\t", 1)[0].strip()
            return path[2:] if path.startswith("b/") else path
    return lines[i]
