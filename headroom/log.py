"""JSON-lines logging on stdout: one object per line, ``ts``, ``level``, ``event`` first.

Hand-written rather than ``logging`` + a formatter because every request logs one line and
the stdlib machinery (records, handlers, locks) costs more than the proxying itself; this is
an ``orjson.dumps`` and one write. Lines are flushed at once so journald and test harnesses
see them in real time.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO, Any

import orjson

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# The peer's own bytes inside a parser's message (h11 and h2 quote them as Python reprs):
# a header line, a request line, a header value. Any of them may carry a key.
_QUOTED = re.compile(r"""(?:bytearray\()?b(?:'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")\)?""")
_HEADER_NAME = re.compile(r"""(?:bytearray\()?b['"]([!#$%&*+.^_`|~0-9A-Za-z-]{1,64}):""")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def redact(message: str) -> str:
    """A protocol error's text with the peer's quoted bytes taken out. A header line keeps
    its name (what an operator needs to see which header was wrong), never its value."""

    def replace(quoted: re.Match[str]) -> str:
        name = _HEADER_NAME.match(quoted.group(0))
        return f"<header {name.group(1).lower()}>" if name else "<redacted>"

    return _QUOTED.sub(replace, message)


def loggable_path(path: str) -> str:
    """A request path for a log line: an absolute-form target loses its userinfo
    (``http://user:password@host/p``); the query was never part of it."""
    return _USERINFO.sub(r"\1", path, count=1) if "@" in path else path


def _timestamp(now: float) -> str:
    whole = int(now)
    millis = int((now - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class Logger:
    def __init__(self, level: str = "info", stream: IO[bytes] | None = None) -> None:
        self.threshold = LEVELS[level]
        self._stream = stream if stream is not None else sys.stdout.buffer

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def log(self, level: str, event: str, **fields: Any) -> None:
        if LEVELS[level] < self.threshold:
            return
        record = {"ts": _timestamp(time.time()), "level": level, "event": event}
        record.update(fields)
        try:
            self._stream.write(orjson.dumps(record, default=str) + b"\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # stdout gone (closed pipe); logging must never take the proxy down

    def announce(self, event: str, **fields: Any) -> None:
        """Startup lines (``listening``, ``ready``) that process managers, tests and benches
        wait for: written at every log level, labelled info."""
        threshold, self.threshold = self.threshold, 0
        try:
            self.log("info", event, **fields)
        finally:
            self.threshold = threshold

    def debug(self, event: str, **fields: Any) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)
