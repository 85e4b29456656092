"""Whole-text scans done once per pipeline call, however many stages ask.

The pipeline, each section and each compressor size and index the same text: a 250 KB log
was token-estimated four times (1.8 ms each) and split into line offsets four times (0.5
ms each). Inside ``one_scan()`` — one pipeline call, on this thread — the result of a scan
of a long text is remembered and handed to the next stage that asks. Entries are keyed by
the text itself (equal texts share one; a different text can never get another's result)
and all are forgotten when the outermost block ends, so nothing outlives the call. Results
are shared: callers must not mutate them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

REMEMBER_FROM = 16 * 1024  # shorter texts rescan faster than a lookup would pay back

T = TypeVar("T")
_local = threading.local()


@contextlib.contextmanager
def one_scan() -> Iterator[None]:
    outer = getattr(_local, "memo", None)
    if outer is None:
        _local.memo = {}
    try:
        yield
    finally:
        if outer is None:
            _local.memo = None


def remembered(kind: str, text: str, scan: Callable[[str], T]) -> T:
    """``scan(text)``, computed once per ``kind`` and text inside ``one_scan()``."""
    memo: dict[tuple[str, str], Any] | None = getattr(_local, "memo", None)
    if memo is None or len(text) < REMEMBER_FROM:
        return scan(text)
    key = (kind, text)
    if key not in memo:
        memo[key] = scan(text)
    result: T = memo[key]
    return result


def held() -> int:
    """How many scans the current block holds (0 outside one)."""
    memo = getattr(_local, "memo", None)
    return 0 if memo is None else len(memo)
