"""Splitting mixed text (prose, fenced code, a log excerpt, a JSON blob) into sections.

Each section is an exact slice of the input, so joining the texts of all sections gives the
input back byte for byte; the pipeline compresses sections one by one and joins the results
the same way. Splitting is only tried when the whole text is not confidently one kind (or
carries code fences): a log with a few prose-looking paragraphs must stay one log, or its
pieces would be compressed apart.

Rules:
* A fenced block (```` ``` ```` or ``~~~``) is three sections: the opening fence line and the
  closing fence line are ``protected`` (never compressed), the body is detected on its own;
  an info string such as ``json`` or ``python`` decides when it names a kind.
* Outside fences, text is cut at blank lines into paragraphs; each paragraph is detected and
  neighbouring paragraphs of the same kind are merged back (JSON values never merge: each
  parsed on its own).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from headroom.transforms.detect import (
    JSON_ARRAY,
    JSON_OBJECT,
    PROSE,
    SOURCE_CODE,
    Detection,
    detect,
)

_FENCED = re.compile(r"^(```|~~~)([^\n]*)\n(.*?)^\1[ \t]*(?:\n|\Z)", re.M | re.S)
_DECODER = json.JSONDecoder()
_FIRST_NON_BLANK = re.compile(r"\S")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")
# Paragraphs shorter than this are not worth a detection of their own: they stay prose.
MIN_DETECT_CHARS = 200
# A paragraph is only detected when some line starts like structured output (JSON, a diff,
# a grep hit, a timestamp or log level, a trace frame, code) or ends in ``;`` or ``{``.
# One C-level scan per paragraph keeps a megabyte of prose from costing thousands of
# detections.
_STRUCTURED = re.compile(
    r"""^(?:
        \s*[\[{]
      | diff\ -- | ---\ | \+\+\+\ | @@
      | \s*<[!a-zA-Z]
      | [^\s:]+:\d+[:-] | [^\s:]+-\d+-
      | \[?\d{4}-\d\d-\d\d | \[?\d\d:\d\d:\d\d
      | \s*\[?(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL)\b
      | Traceback | \s+at\ | \s+File\ " | npm\  | ={3,} | make
      | \s*(?:Compiling|error|warning|def|class|import|from|function|const|let|fn|pub|func
             |package|public|private|\#include)\b
    )""",
    re.M | re.X,
)
# A fence info string that names a kind decides for the body.
_FENCE_LANG_CODE = {
    "py",
    "python",
    "js",
    "javascript",
    "ts",
    "typescript",
    "tsx",
    "jsx",
    "go",
    "rust",
    "rs",
    "java",
    "c",
    "cpp",
    "c++",
    "h",
    "hpp",
    "cs",
    "csharp",
    "rb",
    "ruby",
    "php",
    "swift",
    "kotlin",
    "kt",
    "scala",
    "sh",
    "bash",
    "zsh",
    "shell",
    "sql",
    "yaml",
    "yml",
    "toml",
    "css",
    "scss",
    "lua",
    "r",
    "perl",
    "haskell",
    "hs",
    "elixir",
    "ex",
    "zig",
    "dart",
}


@dataclass(frozen=True)
class Section:
    text: str
    detection: Detection
    protected: bool = False  # fence lines: copied as they are


def split_sections(text: str) -> list[Section]:
    """Sections whose texts concatenate to ``text``, in order."""
    sections: list[Section] = []
    position = 0
    for m in _FENCED.finditer(text):
        sections.extend(_split_plain(text[position : m.start()]))
        fence, info, body = m.group(1), m.group(2), m.group(3)
        opening = fence + info + "\n"
        closing = text[m.start() + len(opening) + len(body) : m.end()]
        sections.append(Section(opening, Detection(PROSE, 1.0), protected=True))
        if body:
            sections.append(Section(body, _fenced_detection(info, body)))
        sections.append(Section(closing, Detection(PROSE, 1.0), protected=True))
        position = m.end()
    sections.extend(_split_plain(text[position:]))
    return sections


def _fenced_detection(info: str, body: str) -> Detection:
    lang = info.strip().split(" ", 1)[0].lower() if info.strip() else ""
    found = detect(body)
    if lang in _FENCE_LANG_CODE and found.kind not in (JSON_ARRAY, JSON_OBJECT):
        return Detection(SOURCE_CODE, 1.0)
    return found


def _split_plain(text: str) -> list[Section]:
    if not text:
        return []
    pieces: list[str] = []
    position = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        pieces.append(text[position : m.end()])
        position = m.end()
    if position < len(text):
        pieces.append(text[position:])
    runs: list[tuple[Detection, list[str]]] = []  # joined once at the end: no quadratic +=
    for piece in pieces:
        for part, found in _classify(piece):
            mergeable = found.kind not in (JSON_ARRAY, JSON_OBJECT)
            if runs and mergeable and runs[-1][0].kind == found.kind:
                runs[-1][1].append(part)
            else:
                runs.append((found, [part]))
    return [Section("".join(parts), found) for found, parts in runs]


def _classify(piece: str) -> list[tuple[str, Detection]]:
    structured = len(piece) >= MIN_DETECT_CHARS and (
        ";\n" in piece or "{\n" in piece or _STRUCTURED.search(piece) is not None
    )
    if not structured:
        return [(piece, Detection(PROSE, 0.5))]
    found = detect(piece)
    if found.kind in (PROSE, SOURCE_CODE):  # a log of JSON lines is a log, not JSON + rest
        split = split_json_prefix(piece)
        if split is not None:
            head, rest = split
            return [head, *_classify(rest)]
    return [(piece, found)]


def starts_like_json(text: str) -> bool:
    start = _FIRST_NON_BLANK.search(text)
    return start is not None and text[start.start()] in "[{"


def split_json_prefix(text: str) -> tuple[tuple[str, Detection], str] | None:
    """A JSON value at the start of ``text`` followed by something else (a trailer such as
    ``(showing 100 of 512)``): the value's text with its kind, and the rest.

    Only tried after the whole text failed to parse. The stdlib's C scanner finds where
    the value ends; its parse is not handed on (the JSON compressor parses the slice with
    its own number-exact codec).
    """
    start = _FIRST_NON_BLANK.search(text)
    if start is None or text[start.start()] not in "[{":
        return None
    try:
        value, end = _DECODER.raw_decode(text, start.start())
    except (ValueError, RecursionError):
        return None
    if not text[end:].strip():
        return None
    kind = JSON_ARRAY if isinstance(value, list) else JSON_OBJECT
    newline = text.find("\n", end)  # keep the rest of the value's last line with it
    cut = end if newline < 0 or text[end:newline].strip() else newline + 1
    return (text[:cut], Detection(kind, 0.9)), text[cut:]


# A JSON document after a few lines of something else: the command's own status line, a
# warning, HTTP response headers (``curl -i``). The lines are looked for this far in.
_HEADER_LINES = 12
_HEADER_CHARS = 4096
_JSON_LINE = re.compile(r"^[ \t]*[\[{]", re.M)


def split_json_header(text: str) -> list[Section] | None:
    """``[header, JSON value, trailer]`` sections when ``text`` is a short header and then
    one JSON document (at least half the text), else None.

    Without this such a text is one section of lines, and pretty-printed JSON compressed as
    log lines loses what the JSON compressor keeps: the record whose one field deviates.
    The half rule keeps a log of JSON lines (each a small value) in one piece."""
    if starts_like_json(text):
        return None
    head = text[:_HEADER_CHARS]
    m = _JSON_LINE.search(head)
    if m is None or head.count("\n", 0, m.start()) > _HEADER_LINES:
        return None
    start = _FIRST_NON_BLANK.search(text, m.start())
    assert start is not None  # the line holds a bracket
    try:
        value, end = _DECODER.raw_decode(text, start.start())
    except (ValueError, RecursionError):
        return None
    if (end - m.start()) * 2 < len(text) or not isinstance(value, list | dict):
        return None
    kind = JSON_ARRAY if isinstance(value, list) else JSON_OBJECT
    newline = text.find("\n", end)  # the rest of the value's last line goes with it
    cut = len(text) if newline < 0 or text[end:newline].strip() else newline + 1
    sections = [Section(text[: m.start()], Detection(PROSE, 0.5))]
    sections.append(Section(text[m.start() : cut], Detection(kind, 0.9)))
    return sections + _split_plain(text[cut:])
