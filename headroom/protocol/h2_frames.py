"""Every inbound HTTP/2 frame is counted before h2 parses it, and handed on in batches.

h2 parses whatever bytes it is given in one call and emits events only for frames that do
work, so frames that carry none (PRIORITY, unknown types, PING ACKs, RST_STREAM on closed
streams) cost loop time without ever being seen: 350k PRIORITY frames held the loop 3.4 s.
The gate reads the 9-byte frame headers itself, so:

* every frame counts against a per-connection budget per window: a free allowance, plus
  credit for the work frames carry (each HEADERS frame, each KiB of DATA). A client past it
  is flooding (``FrameFlood``: GOAWAY ENHANCE_YOUR_CALM), whatever the frame types;
* at most ``MAX_FRAMES_PER_TURN`` complete frames go to h2 per call; the session yields to
  the loop between batches, so one connection cannot hold the loop for a whole read.

Only complete frames are handed on; a partial frame waits here (at most one frame, since a
declared length over the frame size we advertise goes straight to h2, which refuses it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

FRAME_HEADER = 9
MAX_FRAME_SIZE = 16_384  # SETTINGS_MAX_FRAME_SIZE as we advertise it (h2's default)
MAX_FRAMES_PER_TURN = 256
WINDOW = 10.0  # seconds
# Per window: any connection may send this many frames; a busy one earns more by working.
FREE_FRAMES = 10_000
FRAMES_PER_HEADERS = 16  # a request's HEADERS may bring WINDOW_UPDATEs, RST, PRIORITY
DATA_BYTES_PER_FRAME = 1024
DATA, HEADERS = 0x0, 0x1


class FrameFlood(Exception):
    """More frames than the work they carry allows."""


class FrameGate:
    __slots__ = ("_buf", "_clock", "_credit", "_frames", "_since", "_skip", "_window")

    def __init__(
        self, preface: int, window: float = WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buf = bytearray()
        self._skip = preface  # the client preface is not a frame: pass it through
        self._window = window
        self._clock = clock  # a test's own clock makes the windows exact
        self._since = clock()
        self._frames = 0
        self._credit = FREE_FRAMES

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> bool:
        """A complete frame (or an oversized header h2 must refuse) is waiting."""
        buf = self._buf
        start = self._skip
        if len(buf) < start + FRAME_HEADER:
            return bool(start and buf)
        length = int.from_bytes(buf[start : start + 3], "big")
        return length > MAX_FRAME_SIZE or len(buf) >= start + FRAME_HEADER + length

    def take(self) -> bytes:
        """The next bytes for h2: the preface and up to ``MAX_FRAMES_PER_TURN`` complete
        frames. Raises ``FrameFlood`` once the window's frames exceed their allowance."""
        now = self._clock()
        if now - self._since > self._window:
            self._since, self._frames, self._credit = now, 0, FREE_FRAMES
        buf = self._buf
        pos = min(self._skip, len(buf))
        self._skip -= pos
        end = len(buf)
        frames = 0
        while frames < MAX_FRAMES_PER_TURN and end - pos >= FRAME_HEADER:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            if length > MAX_FRAME_SIZE:
                pos = end  # h2 answers FRAME_SIZE_ERROR
                break
            if end - pos - FRAME_HEADER < length:
                break
            kind = buf[pos + 3]
            if kind == DATA:
                self._credit += length // DATA_BYTES_PER_FRAME
            elif kind == HEADERS:
                self._credit += FRAMES_PER_HEADERS
            pos += FRAME_HEADER + length
            frames += 1
        self._frames += frames
        if self._frames > self._credit:
            raise FrameFlood(f"{self._frames} frames in {self._window:g}s for the work they carry")
        if pos == end:
            out = bytes(buf)
            buf.clear()
        else:
            out = bytes(buf[:pos])
            del buf[:pos]
        return out
