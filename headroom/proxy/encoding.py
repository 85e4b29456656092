"""Decode compressed request bodies with the decoded size bounded.

Agents send gzip, deflate, zstd or br request bodies; the proxy has to read the JSON to
compress tool outputs, and must then forward without Content-Encoding (the reference
product forwarded the header with a decoded body and upstreams answered 400). A small
compressed body may expand enormously, so every decoder stops one byte past the limit.
"""

from __future__ import annotations

import io
import zlib

import brotli
import zstandard


class DecodedTooLarge(Exception):
    """The decoded body would exceed --max-body-bytes (maps to 413)."""


class DecodeError(Exception):
    """The body is not valid in its declared encoding (forwarded untouched, counted)."""


SUPPORTED = ("gzip", "x-gzip", "deflate", "zstd", "br")


def decode(encoding: str, data: bytes, limit: int) -> bytes:
    """Decode ``data``; raises ``DecodedTooLarge`` past ``limit`` bytes, ``DecodeError`` on
    corrupt input, ``KeyError`` for an encoding not in ``SUPPORTED``."""
    decoder = _DECODERS[encoding]
    try:
        out = decoder(data, limit + 1)
    except (zlib.error, brotli.error, zstandard.ZstdError, EOFError) as exc:
        raise DecodeError(f"{encoding}: {exc}") from None
    if len(out) > limit:
        raise DecodedTooLarge(f"decoded {encoding} body exceeds {limit} bytes")
    return out


def _zlib(wbits: int):  # type: ignore[no-untyped-def]
    def run(data: bytes, cap: int) -> bytes:
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, cap)
        if len(out) < cap and not d.eof:
            raise DecodeError("truncated stream")
        return out

    return run


def _deflate(data: bytes, cap: int) -> bytes:
    # "deflate" means zlib-wrapped per RFC 9110, but raw deflate is common in the wild.
    try:
        return _zlib(zlib.MAX_WBITS)(data, cap)
    except zlib.error:
        return _zlib(-zlib.MAX_WBITS)(data, cap)


def _zstd(data: bytes, cap: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    return reader.read(cap)


def _brotli(data: bytes, cap: int) -> bytes:
    d = brotli.Decompressor()
    out = d.process(data, output_buffer_limit=cap)
    if len(out) < cap and not d.is_finished():
        raise DecodeError("truncated stream")
    return out


_DECODERS = {
    "gzip": _zlib(16 + zlib.MAX_WBITS),
    "x-gzip": _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate,
    "zstd": _zstd,
    "br": _brotli,
}
