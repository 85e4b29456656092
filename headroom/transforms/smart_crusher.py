"""SmartCrusher: shrink JSON tool output, lossless first, then keep the rows that matter.

Per array, deepest decision first:

1. An array that already ends in a ``{"_ccr_dropped": …}`` sentinel is left alone
   (idempotence: compressing our own output changes nothing).
2. **Lossy**, only when a store is given, ``enable_ccr_marker`` is on and ``lossless_only``
   is off, for arrays of ≥ ``min_items_to_crush`` items whose lossless form is still above
   ``max_lossless_tokens``: ``json_select`` picks the items to keep; they are emitted
   verbatim in their original order, followed by the sentinel
   ``{"_ccr_dropped":"<<ccr:KEY N_rows_offloaded>>"}``; KEY names the compact JSON of the
   whole original array in the store. Without a store no item is ever dropped: a row cut
   with no way back would be information lost without the model knowing.
3. **Lossless** otherwise: children are walked (nested arrays get their own sentinel;
   strings that start with ``[`` or ``{`` and parse as JSON are compressed and re-embedded
   as strings), then an array of objects becomes the ``json_table`` form when that is
   ≥ ``lossless_min_savings`` shorter. A top-level table is emitted as raw text, a nested
   one as a JSON string.

Strings that are base64 blobs of ≥ ``opaque_min_chars`` (same store conditions as 2) are
stored whole and replaced by ``<<ccr:KEY,base64,SIZE>>``; rows kept by 2 stay verbatim.

Everything else is written compactly (``,``/``:``, non-ASCII kept, key order kept; numbers
keep their meaning, see ``json_codec``). The whole result is returned only if it has fewer
tokens than the input (or names a key at no extra cost); otherwise the input is returned
unchanged with strategy ``passthrough``. Same input, config and query → same bytes.
"""

from __future__ import annotations

import re
from typing import Any

from headroom.ccr.markers import opaque_marker, rows_marker
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.json_codec import Codec, NotJSON
from headroom.transforms.json_config import SmartCrusherConfig
from headroom.transforms.json_select import ItemTexts, error_detector, select
from headroom.transforms.json_table import render_table
from headroom.transforms.tokens import estimate_tokens

__all__ = ["SENTINEL_KEY", "SmartCrusher", "SmartCrusherConfig"]

SENTINEL_KEY = "_ccr_dropped"
_BEST_TABLE_RATIO = 0.25  # no table is expected below a quarter of the compact JSON
_BASE64_BLOB = re.compile(r"(?:data:[\w/+.\-]+;base64,)?[A-Za-z0-9+/_\-]+={0,2}")


def _is_base64_blob(text: str) -> bool:
    """Encoded binary (images, archives): no words a model could read, so offloaded whole."""
    return _BASE64_BLOB.fullmatch(text) is not None and len(set(text[:4096])) >= 16


class _Table(str):
    """Table text standing in for an array; top level prints it raw, nested embeds it."""


class _Walk:
    """One compression of one JSON document (nested JSON-in-string documents get their own)."""

    def __init__(
        self, crusher: SmartCrusher, codec: Codec, ctx: CompressContext, keys: list[str]
    ) -> None:
        self.cfg = crusher.config
        self.crusher = crusher
        self.codec = codec
        self.ctx = ctx
        self.keys = keys
        self.lossy = (
            ctx.store is not None and self.cfg.enable_ccr_marker and not self.cfg.lossless_only
        )

    def document(self, value: Any, depth: int = 0) -> str:
        out = self.value(value, depth, top=True)
        return str(out) if isinstance(out, _Table) else self.codec.dumps(out)

    def value(self, value: Any, depth: int, top: bool = False) -> Any:
        if depth >= self.cfg.max_depth:
            return value
        kind = type(value)
        if kind is list:
            return self.array(value, depth, top) if value else value
        if kind is dict:
            return {k: self.nested(v, depth + 1) for k, v in value.items()}
        if kind is str:
            return self.string(value, depth)
        return value

    def nested(self, value: Any, depth: int) -> Any:
        out = self.value(value, depth)
        return str(out) if isinstance(out, _Table) else out

    def string(self, text: str, depth: int) -> str:
        if self.lossy and len(text) >= self.cfg.opaque_min_chars and _is_base64_blob(text):
            assert self.ctx.store is not None  # guaranteed by self.lossy
            key = self.ctx.store.put(text)
            self.keys.append(key)
            return opaque_marker(key, "base64", len(text))
        if len(text) < self.cfg.json_in_string_min_chars or text[0] not in "[{":
            return text
        try:
            codec = Codec.for_text(text)
            inner = codec.loads(text)
            if type(inner) not in (list, dict):
                return text
            out = _Walk(self.crusher, codec, self.ctx, self.keys).document(inner, depth + 1)
        except (NotJSON, TypeError, ValueError, RecursionError):
            return text
        return out if len(out) < len(text) else text

    def tokens(self, text: str) -> int:
        return estimate_tokens(text, self.ctx.model)

    def array(self, items: list[Any], depth: int, top: bool) -> Any:
        last = items[-1]
        if type(last) is dict and SENTINEL_KEY in last:
            return items
        rows: ItemTexts | None = None
        if self.lossy and len(items) >= self.cfg.min_items_to_crush:
            rows = ItemTexts(self.codec.dumps_each(items))
            compact = self.tokens(rows.joined)
            if compact * _BEST_TABLE_RATIO > self.cfg.max_lossless_tokens:
                cut = self.crush(items, rows, compact)
                if cut is not None:
                    return cut
                rows = None  # nothing worth cutting: every item stays
        whole, size = self.keep_all(items, depth, top)
        if rows is not None and size > self.cfg.max_lossless_tokens:
            cut = self.crush(items, rows, size)
            if cut is not None:
                return cut
        return whole

    def keep_all(self, items: list[Any], depth: int, top: bool) -> tuple[Any, int]:
        """Every item kept: children walked (they may offload blobs), then table or compact.

        Returns the replacement and its size in tokens.
        """
        blob = self.codec.dumps(items)
        blobs_possible = self.lossy and len(blob) >= len(items) * self.cfg.opaque_min_chars
        if blobs_possible or blob.find("[", 1) >= 0 or '"{' in blob:
            walked = [self.nested(item, depth + 1) for item in items]
            blob = self.codec.dumps(walked)
        else:  # no nested array, no JSON-like string, items too short for blobs: no walk
            walked = items
        compact = self.tokens(blob)
        if len(walked) >= self.cfg.min_table_rows and all(type(r) is dict for r in walked):
            table = render_table(
                walked, self.codec.dumps, self.codec.number_text, self.cfg.max_flatten_keys
            )
            size = self.tokens(table if top else self.codec.dumps(table))
            if size <= (1.0 - self.cfg.lossless_min_savings) * compact:
                return _Table(table), size
        return walked, compact

    def crush(self, items: list[Any], rows: ItemTexts, baseline: int) -> list[Any] | None:
        """Keep the selected items and a sentinel, if that beats ``baseline`` tokens enough."""
        kept = select(items, rows, self.ctx.query, self.cfg, self.crusher.detector)
        dropped = len(items) - len(kept)
        if dropped <= 0:
            return None
        sentinel = {SENTINEL_KEY: rows_marker("0" * 24, dropped)}  # same length as the real one
        texts = rows.texts
        size = self.tokens(",".join([*(texts[i] for i in kept), self.codec.dumps(sentinel)]))
        if size > (1.0 - self.cfg.min_lossy_savings) * baseline:
            return None
        assert self.ctx.store is not None  # guaranteed by self.lossy
        key = self.ctx.store.put(rows.joined)
        self.keys.append(key)
        return [items[i] for i in kept] + [{SENTINEL_KEY: rows_marker(key, dropped)}]


class SmartCrusher:
    """The JSON compressor (see module docstring). Thread-safe: no state between calls."""

    name = "smart_crusher"

    def __init__(self, config: SmartCrusherConfig | None = None) -> None:
        self.config = config or SmartCrusherConfig()
        self.detector = error_detector()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        if text.lstrip()[:1] not in ("[", "{"):
            return self._passthrough(text, ctx)
        codec = Codec.for_text(text)
        try:
            value = codec.loads(text)
        except NotJSON:
            return self._passthrough(text, ctx)
        return self._run(value, text, ctx, codec)

    def compress_value(self, value: Any, text: str, ctx: CompressContext) -> CompressResult:
        """Like ``compress`` when the caller has already parsed ``text`` into ``value``.

        The parse is reused unless ``text`` holds numbers a double cannot represent exactly;
        then it is parsed again here so those numbers are written back digit for digit.
        """
        codec = Codec.for_text(text)
        if codec.precise:
            return self.compress(text, ctx)
        if type(value) not in (list, dict):
            return self._passthrough(text, ctx)
        return self._run(value, text, ctx, codec)

    def compress_parsed(self, text: str, value: Any, ctx: CompressContext) -> CompressResult:
        """The pipeline's name and argument order for ``compress_value``."""
        return self.compress_value(value, text, ctx)

    def _run(self, value: Any, text: str, ctx: CompressContext, codec: Codec) -> CompressResult:
        keys: list[str] = []
        try:
            output = _Walk(self, codec, ctx, keys).document(value)
        except (TypeError, ValueError, RecursionError):
            return self._passthrough(text, ctx)  # e.g. a lone surrogate orjson cannot write
        before = estimate_tokens(text, ctx.model)
        after = estimate_tokens(output, ctx.model)
        if output == text or after > before or (after == before and not keys):
            return self._passthrough(text, ctx)
        unique = tuple(dict.fromkeys(keys))
        return CompressResult(output, self.name, before, after, unique)

    @staticmethod
    def _passthrough(text: str, ctx: CompressContext) -> CompressResult:
        tokens = estimate_tokens(text, ctx.model)
        return CompressResult(text, "passthrough", tokens, tokens)
