"""The one home of CCR keys and of every marker the engine emits.

A key is the first 24 lowercase hex characters of the SHA-256 of the original bytes
(UTF-8 for text). Keys are content-addressed, so the same original always gets the same key
on every worker and host, and a marker can never point at the wrong content.

Marker formats (``H`` is a 24-hex key):

* ``<<ccr:H N_rows_offloaded>>`` — inside a JSON sentinel object that ends a crushed array:
  ``{"_ccr_dropped":"<<ccr:H 15_rows_offloaded>>"}``. ``H`` stores the whole original array.
* ``<<ccr:H,KIND,SIZE>>`` — an opaque string value replaced whole (KIND: base64|html|string).
* ``[X lines compressed to Y. Retrieve more: hash=H]`` — line compressors (log, text);
  ``lines`` may be any of ``UNITS`` (``matches`` for search hits, ``rows`` for tables).
* ``[X lines compressed to Y. Retrieve full diff: hash=H]`` — the diff compressor.

``find_keys`` recognises exactly these and nothing else: other tools' markers, shorter
hashes and uppercase look-alikes are not adopted (each would retrieve another original or
nothing).
"""

from __future__ import annotations

import hashlib
import re

KEY_LEN = 24
UNITS = ("lines", "matches", "items", "rows")  # what a line marker may count
_KEY_RE = re.compile(r"^[0-9a-f]{24}$")


def content_key(original: bytes | str) -> str:
    """SHA-256 of the original, first 24 lowercase hex chars."""
    data = original.encode("utf-8") if isinstance(original, str) else original
    return hashlib.sha256(data).hexdigest()[:KEY_LEN]


def normalize_key(text: str) -> str | None:
    """Accept what a model plausibly sends as a hash argument and return the canonical key.

    Models echo hashes with surrounding whitespace, a ``hash=`` prefix, quotes or in upper
    case; all of those still name exactly one key. Anything that is not 24 hex digits after
    that cleaning is refused (``None``) rather than guessed at.
    """
    cleaned = text.strip().strip("\"'`[]<>").strip()
    for prefix in ("hash=", "ccr:", "<<ccr:"):
        if cleaned.lower().startswith(prefix):
            cleaned = cleaned[len(prefix) :]
    cleaned = cleaned.strip().lower()
    return cleaned if _KEY_RE.match(cleaned) else None


def rows_marker(key: str, dropped: int) -> str:
    return f"<<ccr:{key} {dropped}_rows_offloaded>>"


def opaque_marker(key: str, kind: str, size: int) -> str:
    return f"<<ccr:{key},{kind},{human_size(size)}>>"


def lines_marker(key: str, before: int, after: int, unit: str = "lines") -> str:
    if unit not in UNITS:  # a marker find_keys cannot see is never stored: refuse it here
        raise ValueError(f"marker unit {unit!r} is not one of {UNITS}")
    return f"[{before} {unit} compressed to {after}. Retrieve more: hash={key}]"


def diff_marker(key: str, before: int, after: int) -> str:
    return f"[{before} lines compressed to {after}. Retrieve full diff: hash={key}]"


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size}B"
    if size < 1_000_000:
        return f"{size / 1000:.1f}KB"
    return f"{size / 1_000_000:.1f}MB"


_MARKER_RE = re.compile(
    r"<<ccr:([0-9a-f]{24})(?: \d+_rows_offloaded|,[a-z0-9_]+,\d+(?:\.\d)?[KM]?B)>>"
    r"|\[\d+ (?:" + "|".join(UNITS) + r") compressed to \d+\. "
    r"Retrieve (?:more|full diff): hash=([0-9a-f]{24})\]"
)


def find_keys(text: str) -> list[str]:
    """Every key named by one of our markers in ``text``, in order, without duplicates."""
    seen: dict[str, None] = {}
    for m in _MARKER_RE.finditer(text):
        seen[m.group(1) or m.group(2)] = None
    return list(seen)


def has_marker(text: str) -> bool:
    """Whether ``text`` names a key in one of our markers. Substring checks for the markers'
    fixed words first (C speed): the regex's alternation has no literal prefix to search
    for, and costs ~0.4 ms on a 60 KB tool output, which every request re-sending a history
    paid per output (a bare ``hash=`` is common in logs, so it is not the check)."""
    if "<<ccr:" not in text and "Retrieve more: hash=" not in text and "diff: hash=" not in text:
        return False
    return _MARKER_RE.search(text) is not None
