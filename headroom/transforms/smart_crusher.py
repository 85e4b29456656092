"""SmartCrusher: shrink JSON tool output, lossless first, then keep the rows that matter.

Per array, innermost first:

1. An array that already ends in a ``{"_ccr_dropped": …}`` sentinel is left alone
   (idempotence: compressing our own output changes nothing).
2. Its items are walked first: nested arrays get their own decision (and sentinel), strings
   that start with ``[`` or ``{`` and parse as JSON are compressed and re-embedded as
   strings, base64 blobs of ≥ ``opaque_min_chars`` are stored whole and replaced by
   ``<<ccr:KEY,base64,SIZE>>`` (store conditions as in 3).
3. **Lossy**, only when a store is given, ``enable_ccr_marker`` is on and ``lossless_only``
   is off, for arrays of ≥ ``min_items_to_crush`` items whose lossless form is still above
   ``max_lossless_tokens``: ``json_select`` picks the items to keep; they are emitted in
   their original order (as walked in 2, otherwise verbatim), followed by the sentinel
   ``{"_ccr_dropped":"<<ccr:KEY N_rows_offloaded>>"}``; KEY names the whole original array
   in the store, as the document spelled it (its exact text, nested arrays too; the compact
   JSON only where the text cannot be found again). Without a store no item is ever
   dropped: a row cut with no way back would be information lost without the model knowing.
4. **Lossless** otherwise: an array of ≥ ``min_table_rows`` objects becomes the
   ``json_table`` form when that is ≥ ``lossless_min_savings`` fewer tokens. A top-level
   table is emitted as raw text, a nested one as a JSON string.

Everything else is written compactly (``,``/``:``, non-ASCII kept, key order kept; numbers
keep their meaning, see ``json_codec``). The result is returned only if it has fewer tokens
than the input (``estimate_tokens``); otherwise the input comes back unchanged with strategy
``passthrough``, and so does a document with a duplicate key in an object (a rewrite would
keep only the last value). Same input, config and query → same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from headroom.ccr.markers import find_keys, opaque_marker, rows_marker
from headroom.jsondoc import JsonDoc, JsonDocError, Path
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.json_codec import Codec, NotJSON, has_duplicate_keys
from headroom.transforms.json_config import SmartCrusherConfig
from headroom.transforms.json_query import ItemTexts
from headroom.transforms.json_select import error_detector, select
from headroom.transforms.json_table import render_table
from headroom.transforms.tokens import estimate_tokens

__all__ = ["SENTINEL_KEY", "SmartCrusher", "SmartCrusherConfig"]

SENTINEL_KEY = "_ccr_dropped"
_BASE64_BLOB = re.compile(r"(?:data:[\w/+.\-]+;base64,)?[A-Za-z0-9+/_\-]+={0,2}")


def _is_base64_blob(text: str) -> bool:
    """Encoded binary (images, archives): no words a model could read, so offloaded whole."""
    return _BASE64_BLOB.fullmatch(text) is not None and len(set(text[:4096])) >= 16


_TOKEN_CHUNK = 1 << 16


def _tokens(text: str, model: str) -> int:
    """``estimate_tokens`` a slice at a time: the estimate is a sum over characters, and
    slicing keeps its temporary copies small on megabyte inputs (peak memory)."""
    if len(text) <= _TOKEN_CHUNK:
        return estimate_tokens(text, model)
    return sum(
        estimate_tokens(text[i : i + _TOKEN_CHUNK], model)
        for i in range(0, len(text), _TOKEN_CHUNK)
    )


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
        self.top_compact: str | None = None
        self.top_text: str | None = None
        self._doc: JsonDoc | None = None  # the top text's spans, found when first needed

    def document(
        self, value: Any, depth: int = 0, compact: str | None = None, text: str | None = None
    ) -> str:
        """The compressed text of a whole document; ``compact`` is its compact JSON if the
        caller already wrote it, ``text`` the document as the client sent it: what the store
        keeps of a cut array (its span of ``text``), so a retrieval gives back the client's
        bytes."""
        self.top_compact = compact
        self.top_text = text
        out = self.value(value, depth, top=True)
        return str(out) if isinstance(out, _Table) else self.codec.dumps(out)

    def value(self, value: Any, depth: int, top: bool = False, path: Path = ()) -> Any:
        """``path``: where ``value`` stands in the document (keys and indices)."""
        if depth >= self.cfg.max_depth:
            return value
        kind = type(value)
        if kind is list:
            return self.array(value, depth, top, path) if value else value
        if kind is dict:
            return {k: self.nested(v, depth + 1, (*path, k)) for k, v in value.items()}
        if kind is str:
            return self.string(value, depth)
        return value

    def nested(self, value: Any, depth: int, path: Path) -> Any:
        out = self.value(value, depth, path=path)
        return str(out) if isinstance(out, _Table) else out

    def exact(self, path: Path, compact: str) -> str:
        """The document's own text of the array at ``path`` (whose compact JSON is
        ``compact``); ``compact`` itself when the text is not at hand or does not read back
        as the same array."""
        if self.top_text is None:
            return compact
        if self._doc is None:
            self._doc = JsonDoc(self.top_text)
        try:
            span = self._doc.spans([path]).get(path)
            # The scanner's value, written as this walk writes it, must be the array walked
            # (it is not when the codec reads numbers more precisely than the scanner does).
            same = span is not None and self.codec.dumps(self._doc.value(span)) == compact
        except (JsonDocError, TypeError, ValueError, RecursionError):
            return compact
        return self._doc.text[span.start : span.end] if same and span is not None else compact

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
            compact = codec.dumps(inner)
            if has_duplicate_keys(text, inner, compact):
                return text
            walk = _Walk(self.crusher, codec, self.ctx, self.keys)
            out = walk.document(inner, depth + 1, compact, text)
        except (NotJSON, TypeError, ValueError, RecursionError):
            return text
        return out if len(out) < len(text) else text

    def tokens(self, text: str) -> int:
        return _tokens(text, self.ctx.model)

    def array(self, items: list[Any], depth: int, top: bool, path: Path) -> Any:
        last = items[-1]
        if type(last) is dict and SENTINEL_KEY in last:
            return items
        original = self.top_compact if top and self.top_compact else self.codec.dumps(items)
        walked, compact = self.walk_items(items, original, depth, path)
        rows: ItemTexts | None = None
        if self.lossy and len(items) >= self.cfg.min_items_to_crush:
            # compact is exactly the items' texts joined; only their lengths are kept
            rows = ItemTexts(compact, self.codec.lengths_each(walked))
            baseline = self.tokens(compact)
            if baseline * self.cfg.table_best_ratio > self.cfg.max_lossless_tokens:
                cut = self.crush(walked, rows, baseline, lambda: self.stored(top, path, original))
                if cut is not None:
                    return cut
                rows = None  # nothing worth cutting: every item stays
        whole, size = self.keep_all(walked, compact, top)
        if rows is not None and size > self.cfg.max_lossless_tokens:
            cut = self.crush(walked, rows, size, lambda: self.stored(top, path, original))
            if cut is not None:
                return cut
        return whole

    def stored(self, top: bool, path: Path, compact: str) -> str:
        """What the store keeps if an array's items are dropped: the document's own text."""
        return self.top_text if top and self.top_text is not None else self.exact(path, compact)

    def walk_items(
        self, items: list[Any], compact: str, depth: int, path: Path
    ) -> tuple[list[Any], str]:
        """Items with their own nested arrays, blobs and JSON strings compressed first.

        The compact text tells cheaply when there is nothing to walk into: no ``[`` after
        the outer one (no nested array), no ``"{`` (no string that starts like an object)
        and items too short to hold a blob. Returns the items and their compact JSON.
        """
        blobs_possible = self.lossy and len(compact) >= len(items) * self.cfg.opaque_min_chars
        if not blobs_possible and compact.find("[", 1) < 0 and '"{' not in compact:
            return items, compact
        walked = [self.nested(item, depth + 1, (*path, i)) for i, item in enumerate(items)]
        text = self.codec.dumps(walked)
        return (items, compact) if text == compact else (walked, text)

    def keep_all(self, items: list[Any], compact: str, top: bool) -> tuple[Any, int]:
        """Every item kept: the table form if it is enough shorter, else the items as they
        are. Returns the replacement and its size in tokens."""
        size = self.tokens(compact)
        if len(items) >= self.cfg.min_table_rows and all(type(r) is dict for r in items):
            table = render_table(
                items, self.codec.dumps, self.codec.number_text, self.cfg.max_flatten_keys
            )
            table_size = self.tokens(table if top else self.codec.dumps(table))
            if table_size <= (1.0 - self.cfg.lossless_min_savings) * size:
                return _Table(table), table_size
        return items, size

    def crush(
        self, items: list[Any], rows: ItemTexts, baseline: int, original: Callable[[], str]
    ) -> list[Any] | None:
        """The selected items and a sentinel, if that beats ``baseline`` tokens enough.

        ``items``/``rows`` may be the walked items (nested arrays already cut); ``original``
        gives what the sentinel's key names (the array as the document spelled it, see
        ``stored``), asked for only once the cut is decided: finding a nested array's own
        text scans the document.
        """
        kept = select(items, rows, self.ctx.query, self.cfg, self.crusher.detector)
        dropped = len(items) - len(kept)
        if dropped <= 0:
            return None
        sentinel = {SENTINEL_KEY: rows_marker("0" * 24, dropped)}  # same length as the real one
        size = self.tokens(",".join([*(rows.text(i) for i in kept), self.codec.dumps(sentinel)]))
        if size > (1.0 - self.cfg.min_lossy_savings) * baseline:
            return None
        assert self.ctx.store is not None  # guaranteed by self.lossy
        key = self.ctx.store.put(original())
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
        try:
            compact = codec.dumps(value)
        except (TypeError, ValueError, RecursionError):
            return self._passthrough(text, ctx)  # e.g. a lone surrogate orjson cannot write
        if compact == text:
            compact = text  # already compact (most API output): one copy of it, not two
        if has_duplicate_keys(text, value, compact):  # a rewrite would drop earlier values
            return self._passthrough(text, ctx)
        keys: list[str] = []
        try:
            output = _Walk(self, codec, ctx, keys).document(value, compact=compact, text=text)
        except (TypeError, ValueError, RecursionError):
            return self._passthrough(text, ctx)  # e.g. a lone surrogate orjson cannot write
        before = _tokens(text, ctx.model)
        after = _tokens(output, ctx.model)
        if output == text or after >= before:
            return self._passthrough(text, ctx)
        # only keys the output still names: a row dropped by an outer cut may have held an
        # inner marker, and its key then lives on only inside the outer original
        mine = set(keys)
        named = tuple(key for key in find_keys(output) if key in mine)
        return CompressResult(output, self.name, before, after, named)

    @staticmethod
    def _passthrough(text: str, ctx: CompressContext) -> CompressResult:
        tokens = _tokens(text, ctx.model)
        return CompressResult(text, "passthrough", tokens, tokens)
