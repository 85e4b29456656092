"""The token counts of an answer, read from the bytes the client is sent.

The tap copies; it never holds an answer back. A streamed (SSE) answer is parsed event by
event, and only events whose bytes can carry counts are decoded (``providers.usage``). A
whole JSON answer is copied up to ``MAX_COPY`` bytes and read once it ends; a larger one is
not read, and is counted as unread (a copy that size would be the buffering the tap must
not do). A JSON answer with a Content-Encoding is decoded at its end, bounded the same way.
"""

from __future__ import annotations

import orjson

from headroom.protocol.events import ResponseHead
from headroom.providers.sse import SSEError, SSEParser
from headroom.providers.usage import READERS, Usage
from headroom.proxy.encoding import DecodedTooLarge, DecodeError, content_coding, decode
from headroom.proxy.headers import header_value

MAX_COPY = 1 << 20


class UsageTap:
    """Fed the bytes of one answer as the client gets them; ``end()`` once it ended."""

    def __init__(self, provider: str) -> None:
        self.api = provider.partition("_")[0]  # anthropic, openai or gemini
        self._read, self._hints = READERS[provider]
        self._sse: SSEParser | None = None
        self._copy: list[bytes] | None = None
        self._copied = 0
        self._coding: str | None = None
        self.usage: Usage | None = None
        self.unread = False  # an answer that should have had counts but could not be read
        self.saved = 0  # tokens compression kept out of the request (the flow sets it)

    def start(self, head: ResponseHead) -> None:
        """A new answer (a retried request's answer replaces the one before)."""
        self._sse, self._copy, self._copied, self.usage = None, None, 0, None
        self.unread = False
        if head.status != 200:
            return
        content_type = (header_value(head.headers, b"content-type") or b"").lower()
        coding = content_coding(head.headers)
        if b"text/event-stream" in content_type:
            if coding is None:
                self._sse = SSEParser()
            else:
                self.unread = True  # an encoded stream: decoding it here would cost the loop
        elif b"json" in content_type:
            self._copy, self._coding = [], coding

    def feed(self, data: bytes) -> None:
        if self._sse is not None:
            try:
                events = self._sse.feed(data)
            except SSEError:
                self._sse, self.unread = None, True
                return
            for event in events:
                if any(h in event.raw for h in self._hints):
                    self._take(event.data.encode())
        elif self._copy is not None:
            self._copied += len(data)
            if self._copied > MAX_COPY:
                self._copy, self.unread = None, True
            else:
                self._copy.append(data)

    def end(self) -> Usage | None:
        """The counts the answer carried (None: it carried none, or they were unreadable,
        which ``unread`` says)."""
        if self._copy is not None:
            self._take(self._whole(b"".join(self._copy)))
            self._copy = None
        return self.usage

    def _whole(self, data: bytes) -> bytes:
        if self._coding is None:
            return data
        try:
            return decode(self._coding, data, MAX_COPY * 4)
        except (DecodeError, DecodedTooLarge):
            self.unread = True
            return b""

    def _take(self, data: bytes) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(doc, dict):
            self.usage = self._read(doc, self.usage)
