"""Decode compressed request bodies with the decoded size bounded.

Agents send gzip, deflate, zstd or br request bodies; the proxy has to read the JSON to
compress tool outputs, and must then forward without Content-Encoding (a decoded body sent
with its Content-Encoding header is one the upstream cannot read: it answers 400). A small
compressed body may expand enormously, so every decoder stops one byte past the limit.

Decoding runs on a worker thread, in slices of ``SLICE`` output bytes: the C decoders hold
the GIL for most of a call, so one call that inflates 100 MB (a 1.6 KB brotli bomb) would
stall the event loop for 0.4 s, while a slice costs it a few milliseconds at most.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import brotli
import zstandard


class DecodedTooLarge(Exception):
    """The decoded body would exceed --max-body-bytes (maps to 413)."""


class DecodeError(Exception):
    """The body is not valid in its declared encoding (forwarded untouched, counted)."""


class UnknownEncoding(DecodeError):
    """A Content-Encoding this proxy cannot decode (forwarded untouched, counted)."""


SUPPORTED = ("gzip", "x-gzip", "deflate", "zstd", "br")
SLICE = 1 << 20


def content_coding(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The body's Content-Encoding, lower case; None when it is absent or identity."""
    for name, value in headers:
        if name == b"content-encoding":
            coding = value.strip().lower().decode("latin-1")
            return coding if coding and coding != "identity" else None
    return None


def decode(encoding: str, data: bytes | bytearray, limit: int) -> bytes:
    """Decode ``data``; raises ``DecodedTooLarge`` past ``limit`` bytes, ``DecodeError`` on
    corrupt input, ``UnknownEncoding`` for an encoding not in ``SUPPORTED``."""
    decoder = _DECODERS.get(encoding)
    if decoder is None:
        raise UnknownEncoding(f"{encoding}: not one of {', '.join(SUPPORTED)}")
    try:
        parts = decoder(data, limit + 1)
    except (zlib.error, brotli.error, zstandard.ZstdError, EOFError) as exc:
        raise DecodeError(f"{encoding}: {exc}") from None
    if sum(map(len, parts)) > limit:  # refused before joining: no second copy of a bomb
        raise DecodedTooLarge(f"decoded {encoding} body exceeds {limit} bytes")
    return b"".join(parts)


def _zlib(wbits: int) -> Callable[[bytes | bytearray, int], list[bytes]]:
    def run(data: bytes | bytearray, cap: int) -> list[bytes]:
        d = zlib.decompressobj(wbits)
        parts = [d.decompress(data, SLICE)]
        size = len(parts[0])
        while size < cap and d.unconsumed_tail:
            parts.append(d.decompress(d.unconsumed_tail, SLICE))
            size += len(parts[-1])
        if size < cap and not d.eof:
            raise DecodeError("truncated stream")
        return parts

    return run


def _deflate(data: bytes | bytearray, cap: int) -> list[bytes]:
    # "deflate" means zlib-wrapped per RFC 9110, but raw deflate is common in the wild.
    try:
        return _zlib(zlib.MAX_WBITS)(data, cap)
    except zlib.error:
        return _zlib(-zlib.MAX_WBITS)(data, cap)


def _zstd(data: bytes | bytearray, cap: int) -> list[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    parts: list[bytes] = []
    size = 0
    while size < cap:
        part = reader.read(min(SLICE, cap - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return parts


def _brotli(data: bytes | bytearray, cap: int) -> list[bytes]:
    d = brotli.Decompressor()
    parts = [d.process(data, output_buffer_limit=SLICE)]
    size = len(parts[0])
    # The decoder keeps input it has not turned into output yet; empty input continues it.
    # Nothing more out while it wants input means the input ran out: truncated.
    while size < cap and not d.is_finished():
        part = d.process(b"", output_buffer_limit=SLICE)
        if not part and d.can_accept_more_data():
            break
        parts.append(part)
        size += len(part)
    if size < cap and not d.is_finished():
        raise DecodeError("truncated stream")
    return parts


_DECODERS = {
    "gzip": _zlib(16 + zlib.MAX_WBITS),
    "x-gzip": _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate,
    "zstd": _zstd,
    "br": _brotli,
}
