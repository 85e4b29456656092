"""Server-sent events, sans-IO: bytes in, whole events out, each with its exact raw bytes.

Relaying stays byte-exact: an event the proxy does not need to change is written out as the
very bytes that came in. Events end at a blank line (``\\n\\n``, ``\\r\\n\\r\\n`` or
``\\r\\r``); ``:`` lines are comments; several ``data:`` lines join with ``\\n``; one space
after the colon is dropped. The buffer of an unfinished event is bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

MAX_EVENT_BYTES = 16 * 1024 * 1024
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


class SSEError(ValueError):
    """An event grew past the bound without ending."""


@dataclass(frozen=True)
class Event:
    raw: bytes  # including the terminating blank line
    name: str  # "" when the event has no ``event:`` field
    data: str


class SSEParser:
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buf + data if self._buf else data
        events: list[Event] = []
        start = 0
        for match in _BOUNDARY.finditer(buf):
            raw = buf[start : match.end()]
            events.append(_parse(raw, buf[start : match.start()]))
            start = match.end()
        self._buf = buf[start:]
        if len(self._buf) > MAX_EVENT_BYTES:
            raise SSEError(f"an SSE event exceeded {MAX_EVENT_BYTES} bytes")
        return events

    @property
    def pending(self) -> bytes:
        return self._buf


def _parse(raw: bytes, body: bytes) -> Event:
    name = ""
    data: list[str] = []
    for line in _LINE.split(body):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"data":
            data.append(value.decode("utf-8", "replace"))
    return Event(raw, name, "\n".join(data))


def event_object(event: Event) -> dict[str, Any] | None:
    """An event's data as a JSON object; None when it is empty, not JSON or not an object
    (a stream filter then passes the event on as it came)."""
    if not event.data:
        return None
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def format_event(name: str, data: str) -> bytes:
    """An event of our own making, in the same shape the upstream uses."""
    head = f"event: {name}\n" if name else ""
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()


class StreamFilter(Protocol):
    """One provider's stream as the client sees it across retrieval rounds."""

    wants_follow_up: bool
    calls: list[Any]  # RetrieveCall of this round

    def feed(self, event: Event) -> bytes: ...

    def start_round(self) -> None: ...

    def follow_up_response(self) -> dict[str, Any]: ...

    def close_events(self, message: str | None) -> bytes: ...
