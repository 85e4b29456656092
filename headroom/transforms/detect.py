"""What kind of content a tool output is, decided cheaply enough to run on every block.

Cost model: the input is never scanned in full by Python code. JSON is tried only when the
first and last non-blank characters are brackets, and then parsed exactly once (the parsed
value rides along in ``Detection.value`` so the JSON compressor need not parse again). Every
line-based rule looks at a sample: the first ``SAMPLE_HEAD_LINES`` lines and the last
``SAMPLE_TAIL_LINES`` (errors and test summaries sit at the end of logs).

How agents wrap an output (Codex's header, Claude Code's persisted-output frame and its Read
tool's line numbers) is taken off before detection, in ``wrappers``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON_ARRAY = "json_array"
JSON_OBJECT = "json_object"
DIFF = "diff"
SEARCH = "search"
LOG = "log"
SOURCE_CODE = "source_code"
HTML = "html"
PROSE = "prose"
KINDS = (JSON_ARRAY, JSON_OBJECT, DIFF, SEARCH, LOG, SOURCE_CODE, HTML, PROSE)

SAMPLE_HEAD_LINES = 120
SAMPLE_TAIL_LINES = 40
_SAMPLE_HEAD_CHARS = 16_000
_SAMPLE_TAIL_CHARS = 6_000


@dataclass(frozen=True)
class Detection:
    """``kind`` is one of ``KINDS``; ``confidence`` in [0, 1].

    ``value`` is the parsed JSON (``json_array``/``json_object`` only, else ``None``). It is
    optional for consumers: a compressor may use it to skip a second parse.
    """

    kind: str
    confidence: float
    value: Any = field(default=None, compare=False, repr=False)


# --- sampling -------------------------------------------------------------------------------


def sample_lines(text: str) -> list[str]:
    """Head and tail lines of ``text``, cut at line boundaries, without reading the middle."""
    if len(text) <= _SAMPLE_HEAD_CHARS + _SAMPLE_TAIL_CHARS:
        lines = text.splitlines()
        if len(lines) <= SAMPLE_HEAD_LINES + SAMPLE_TAIL_LINES:
            return lines
        return lines[:SAMPLE_HEAD_LINES] + lines[-SAMPLE_TAIL_LINES:]
    head = text[:_SAMPLE_HEAD_CHARS].splitlines()[:-1][:SAMPLE_HEAD_LINES]
    tail = text[-_SAMPLE_TAIL_CHARS:].splitlines()[1:][-SAMPLE_TAIL_LINES:]
    return head + tail


# --- line rules -----------------------------------------------------------------------------

_DIFF_HUNK = re.compile(r"^@@@? -\d+(?:,\d+)? .*@@", re.M)
_DIFF_HEADER = re.compile(r"^(?:diff --git |diff --cc |diff --combined |--- \S|\+\+\+ \S)", re.M)

# grep -n / ripgrep -n: ``path:line:`` (optionally ``path:line:col:``); ripgrep context lines
# are ``path-line-`` and groups are separated by ``--``. A path has a dot or a slash, or is
# one word such as ``Makefile``, so a timestamp like ``2026-11-21T10:00:00`` is no hit.
_PATH = r"(?:[A-Za-z]:[\\/])?(?:[^\s:]*?[./\\][^\s:]*?|[A-Za-z_][\w-]*?)"
_SEARCH_HIT = re.compile(rf"^({_PATH}):(\d+):(?:\d+:)?")
_SEARCH_CONTEXT = re.compile(rf"^({_PATH})-(\d+)-")
# ripgrep's heading form: the path alone on a line, then ``12:content`` / ``13-context``
# rows (a time such as ``10:00:01`` or a date such as ``2026-11-21`` is not a row).
_PATH_LINE = re.compile(r"(?:[A-Za-z]:[\\/])?[^\s:]*[./\\][^\s:]*$")
_HEADLESS_HIT = re.compile(r"\d+:(?!\d\d[:.])")
_HEADLESS_CONTEXT = re.compile(r"\d+-(?!\d\d-)")
# A compiler diagnostic looks like a search hit but is build output.
_DIAGNOSTIC = re.compile(r"^[^\s:]+:\d+:(?:\d+:)?\s*(?:fatal error|error|warning|note)\b", re.I)

# Line-start rules (``match``) are cheap; the few rules that may hit anywhere in a line
# (``search``) run only on lines the start rules did not take.
_LOG_START = re.compile(
    r"""
    ^\s*\[?\s*(?:TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|FATAL|CRITICAL|SEVERE)\b
    | ^\s*\[?\d{4}-\d\d-\d\d[T\ ]\d\d:\d\d
    | ^\s*\[?\d\d:\d\d:\d\d
    | ^[A-Z][a-z]{2}\ [\ \d]\d\ \d\d:\d\d:\d\d
    | ^(?:={3,}|-{3,}|_{3,}|\*{3,})
    | ^(?:npm|yarn|pnpm)\ (?:ERR!|WARN|warn|error|notice|info)
    | ^\s*(?:Compiling|Finished|Running|Checking|Downloaded|Downloading|Fresh|Building
           |Updating|Installing|Collecting|Linking|Resolving|Doc-tests)\s
    | ^(?:error|warning)(?:\[\w+\])?:
    | ^\s*-->\ \S+:\d+
    | ^make(?:\[\d+\])?:[ ]
    | ^Traceback\ \(most\ recent\ call\ last\)
    | ^\s+File\ ".+",\ line\ \d+
    | ^\s+at\ \S+
    | ^\w+(?:Error|Exception|Warning)\b
    | ^(?:ok|FAIL|PASS|RUN|---\ FAIL|---\ PASS)\s
    | ^\s*[\u2713\u2717\u2714\u2718\u00d7\u221a]
    | ^\S+\.(?:py|js|ts|rs|go)(?:::\S+)?\ [.FEsxX]+\s*(?:\[\s*\d+%\])?$
    | ^\s*(?:gcc|g\+\+|cc|clang|c\+\+|ld|ar|cmake|cargo|rustc|tsc|node|python\d?)[ ]
    | ^\s*>\ \S
    | ^\{"[\w.@-]+":
    | ^\#\d+\ (?:\[|\d+\.\d+\ |DONE|CACHED|ERROR|transferring|resolve|sha256)
    | ^Step\ \d+/\d+\ :
    """,
    re.X,
)

_LOG_WORDS = re.compile(r"\b(?:PASSED|FAILED|SKIPPED|XFAIL|XPASS)\b")
_LOG_COUNTS = re.compile(r"\b\d+ (?:passed|failed|errors?|skipped|warnings?|tests?|deselected)\b")
_LOG_PERCENT = re.compile(r"\[\s*\d+%\]\s*$")
_COUNT_WORDS = (" passed", " failed", " error", " skipped", " warning", " test", " deselected")


def _log_anywhere(line: str) -> bool:
    """Mid-line log shapes; substring tests in C guard each regex (most lines fail them)."""
    if ("PASS" in line or "FAIL" in line or "SKIP" in line) and _LOG_WORDS.search(line):
        return True
    if "%]" in line and _LOG_PERCENT.search(line):
        return True
    return any(w in line for w in _COUNT_WORDS) and _LOG_COUNTS.search(line) is not None


_CODE_OPERATORS = (" => ", " -> ", " := ", " == ", " != ", " += ", " && ", " || ")


def _code_anywhere(line: str) -> bool:
    return line.rstrip().endswith((";", "{")) or any(op in line for op in _CODE_OPERATORS)


_CODE_START = re.compile(
    r"""
    ^\s*(?:def|class|async\ def|import|return|raise|yield|elif|while|try:|except|finally:
          |with|lambda|assert|pass$|self\.)\b
    | ^\s*from\ [\w.]+\ import[ ]
    | ^\s*@\w+
    | ^\s*(?:if|for|else)\b.*[:{]\s*$
    | ^\s*(?:function|const|let|var|export|interface|enum|async\ function)\b
    | ^\s*type\ \w+
    | ^\s*(?:func|package|defer|go)[ ]
    | ^\s*(?:fn|pub|impl|use|mod|struct|let\ mut|match|trait)[ ]
    | ^\s*(?:public|private|protected|static|final|void|int|char|bool|namespace|template
          |using|unsigned|typedef)[ ]
    | ^\s*\#(?:include|define|ifdef|ifndef|endif|pragma)\b
    | ^\s*[{}()\[\];,]+\s*$
    | ^\s*(?://|/\*|\*/|\*\ |\#\ )
    | ^\s*\w+(?:\.\w+)*\(.*\)\s*;?\s*$
    """,
    re.X,
)

_HTML_TAG = re.compile(
    r"<(?:html|head|body|div|span|p|a|ul|li|table|tr|td|script|style|meta|link)\b", re.I
)
_FENCES = ("```", "~~~")
_NON_BLANK = re.compile(r"\S")


@dataclass
class _LineStats:
    lines: int = 0
    hits: int = 0
    context: int = 0
    separators: int = 0
    log: int = 0
    code: int = 0
    diagnostics: int = 0  # ``path:line: error: ...`` rows (counted as log lines too)
    hit_paths: set[str] = field(default_factory=set)


def _may_start_path(line: str, delimiter: str) -> bool:
    """Whether ``line`` can open with a path followed by ``delimiter`` (the hit and context
    rules above): a path holds no whitespace, so none may come before the first
    ``delimiter``. A C-speed test that spares most lines the rule's backtracking."""
    end = line.find(delimiter)
    if end < 0:
        return False
    head = line[:end]
    return " " not in head and "\t" not in head


def _line_stats(lines: list[str]) -> _LineStats:
    stats = _LineStats()
    pending_context: list[str] = []
    heading: str | None = None  # ripgrep heading form: a path line, then ``line:content``
    for line in lines:
        if not line.strip():
            heading = None  # files are separated by a blank line in heading form
            continue
        stats.lines += 1
        if line == "--":
            stats.separators += 1
            continue
        hit = _SEARCH_HIT.match(line) if _may_start_path(line, ":") else None
        if hit and not _DIAGNOSTIC.match(line):
            stats.hits += 1
            stats.hit_paths.add(hit.group(1))
            continue
        if hit:
            stats.diagnostics += 1
        if heading is not None and _HEADLESS_HIT.match(line):
            stats.hits += 1
            stats.hit_paths.add(heading)
            continue
        if heading is not None and _HEADLESS_CONTEXT.match(line):
            pending_context.append(heading)
            continue
        if " " not in line and "\t" not in line and _PATH_LINE.match(line):
            heading = line
            stats.separators += 1
            continue
        ctx = _SEARCH_CONTEXT.match(line) if _may_start_path(line, "-") else None
        if ctx:
            pending_context.append(ctx.group(1))
        if _LOG_START.match(line) or _log_anywhere(line):
            stats.log += 1
        elif _CODE_START.match(line) or _code_anywhere(line):
            stats.code += 1
    # Context lines only count for files that also have hits (``2024-01-15`` is a date).
    stats.context = sum(1 for p in pending_context if p in stats.hit_paths)
    return stats


# --- kinds ----------------------------------------------------------------------------------


def _edges(text: str) -> tuple[str, str]:
    """First and last non-blank characters ("" if none), without copying ``text``."""
    first = _NON_BLANK.search(text)
    if first is None:
        return "", ""
    end = len(text) - 1
    while text[end].isspace():
        end -= 1
    return first.group(), text[end]


def _detect_json(text: str, first: str, last: str) -> Detection | None:
    if not ((first == "[" and last == "]") or (first == "{" and last == "}")):
        return None
    try:
        value = orjson.loads(text)  # JSON allows the surrounding whitespace
    except (orjson.JSONDecodeError, RecursionError):
        return None
    if isinstance(value, list):
        uniform = bool(value) and all(type(item) is dict for item in value)
        return Detection(JSON_ARRAY, 1.0 if uniform else 0.8, value)
    if isinstance(value, dict):
        return Detection(JSON_OBJECT, 1.0, value)
    return None


def _detect_diff(head: str) -> Detection | None:
    hunks = len(_DIFF_HUNK.findall(head))
    if not hunks:
        return None
    headers = _DIFF_HEADER.findall(head)
    if not headers:
        return None
    git = any(h.startswith("diff --") for h in headers)
    return Detection(DIFF, min(1.0, (0.8 if git else 0.7) + 0.02 * hunks))


def _detect_html(head: str) -> Detection | None:
    lowered = head[:3000].lower()
    score = 0.0
    if "<!doctype html" in lowered:
        score += 0.5
    if "<html" in lowered:
        score += 0.3
    if "<head" in lowered:
        score += 0.1
    if "<body" in lowered:
        score += 0.1
    score += min(0.3, 0.03 * len(_HTML_TAG.findall(lowered)))
    return Detection(HTML, min(1.0, score)) if score >= 0.7 else None


_FINDINGS_SHARE = 0.6
_FINDINGS_MIN = 10  # fewer diagnostics are a build's errors, read as a log with context


def _detect_lines(lines: list[str]) -> Detection:
    stats = _line_stats(lines)
    n = stats.lines
    if n == 0:
        return Detection(PROSE, 0.0)
    search_ratio = (stats.hits + stats.context + stats.separators) / n
    if stats.hits >= 2 and search_ratio >= 0.6:
        return Detection(SEARCH, round(min(1.0, 0.4 + 0.6 * search_ratio), 3))
    # A checker's report (mypy, pyflakes, a compiler run with nothing but diagnostics) is a
    # list of findings by file and line: a search result, not a log with its error blocks.
    search_ratio = (stats.hits + stats.diagnostics + stats.separators) / n
    if stats.diagnostics >= _FINDINGS_MIN and stats.diagnostics >= _FINDINGS_SHARE * n:
        return Detection(SEARCH, round(min(1.0, 0.4 + 0.6 * search_ratio), 3))
    log_ratio = stats.log / n
    code_ratio = stats.code / n
    if log_ratio >= 0.25 and log_ratio >= code_ratio:
        return Detection(LOG, round(min(1.0, 0.4 + log_ratio), 3))
    if code_ratio >= 0.35 and n >= 3:
        return Detection(SOURCE_CODE, round(min(1.0, 0.3 + code_ratio), 3))
    if stats.log >= 3 and log_ratio >= 0.15 and log_ratio > code_ratio:
        return Detection(LOG, round(0.4 + log_ratio, 3))
    return Detection(PROSE, 0.5)


def detect(text: str) -> Detection:
    """Classify ``text`` as one of ``KINDS``.

    Order: JSON (one parse, only when bracketed), diff (hunk and file headers), HTML,
    then line statistics over the sample for search results, logs and source code; prose is
    the fallback. Numbered Read output should go through ``split_numbering`` first.
    """
    first, last = _edges(text)
    if not first:
        return Detection(PROSE, 0.0)
    found = _detect_json(text, first, last)
    if found is not None:
        return found
    head = text[:_SAMPLE_HEAD_CHARS]
    found = _detect_diff(head) or _detect_html(head)
    if found is not None:
        return found
    return _detect_lines(sample_lines(text))


def has_fence(text: str) -> bool:
    """A line opens with a Markdown fence. Found with ``str`` searches: a ``^`` under
    ``re.M`` gives the regex engine no first character to skip ahead to, so it would try
    every position of the text."""
    return text.startswith(_FENCES) or any(f"\n{f}" in text for f in _FENCES)
