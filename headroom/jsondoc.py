"""Byte-exact surgery on a JSON request body.

The proxy must change only the string values it compresses and leave every other byte —
key order, whitespace, number spelling, escapes, signed thinking blocks — exactly as the
client sent it (a re-serialised body differs from the prefix a provider's prompt cache holds,
so the cache misses).
So the body is never re-serialised: ``JsonDoc`` finds the character spans of the values it
is asked for and splices new text into those spans only.

Finding spans uses the C scanner of the standard ``json`` module (``scan_once`` parses one
value starting at an index and returns where it ends). Containers on a wanted path are
walked key by key; everything else — a 76 KB system prompt, fifty tool schemas — is skipped
by one C call per sibling, so the cost follows the number of messages, not of tokens.

Positions are character indices into the decoded text; the result is encoded back to UTF-8,
which restores the original bytes exactly wherever nothing was replaced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # C scanner

Path = tuple[str | int, ...]
_END = object()  # trie marker: a wanted path ends at this node


class JsonDocError(ValueError):
    """The body is not the JSON it claimed to be (the caller forwards it untouched)."""


@dataclass(frozen=True)
class Span:
    start: int  # index of the value's first character
    end: int  # index just past its last character


class JsonDoc:
    def __init__(self, body: bytes | str) -> None:
        """``body``: UTF-8 bytes, or text already decoded."""
        try:
            self.text = body if isinstance(body, str) else body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonDocError(f"body is not UTF-8: {exc}") from None
        self._edits: list[tuple[int, int, str]] = []
        # Values of the wanted leaves, by start index, as ``spans`` scanned them: a 270 KB
        # tool output is scanned (and decoded) once, not again by ``value``.
        self._values: dict[int, Any] = {}

    # ------------------------------------------------------------------ locating

    def spans(self, paths: Iterable[Path]) -> dict[Path, Span]:
        """Spans of the values at ``paths`` (missing paths are left out). One pass."""
        trie: dict[Any, Any] = {}
        for path in paths:
            node = trie
            for part in path:
                node = node.setdefault(part, {})
            node[_END] = path
        found: dict[Path, Span] = {}
        text = self.text
        start = _WS.match(text, 0).end()  # type: ignore[union-attr]
        self._walk(start, trie, found)
        return found

    def _walk(self, pos: int, node: dict[Any, Any], found: dict[Path, Span]) -> int:
        """Walk the value at ``pos`` along ``node``; return the index just past it."""
        text = self.text
        children = {k: v for k, v in node.items() if k is not _END}
        if not children and _END in node:  # a wanted leaf: keep what the scan built
            self._values[pos], end = self._scan(pos)
        elif not children:
            end = self._skip(pos)
        elif text.startswith("{", pos):
            end = self._walk_object(pos, children, found)
        elif text.startswith("[", pos):
            end = self._walk_array(pos, children, found)
        else:
            end = self._skip(pos)
        if _END in node:
            found[node[_END]] = Span(pos, end)
        return end

    def _walk_object(self, pos: int, children: dict[Any, Any], found: dict[Path, Span]) -> int:
        text = self.text
        i = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text.startswith("}", i):
            return i + 1
        while True:
            key, i = self._scan(i)
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if not text.startswith(":", i):
                raise JsonDocError(f"expected ':' at {i}")
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            child = children.get(key) if isinstance(key, str) else None
            i = self._walk(i, child, found) if child is not None else self._skip(i)
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            elif text.startswith("}", i):
                return i + 1
            else:
                raise JsonDocError(f"expected ',' or '}}' at {i}")

    def _walk_array(self, pos: int, children: dict[Any, Any], found: dict[Path, Span]) -> int:
        text = self.text
        i = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text.startswith("]", i):
            return i + 1
        index = 0
        while True:
            child = children.get(index)
            i = self._walk(i, child, found) if child is not None else self._skip(i)
            index += 1
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            elif text.startswith("]", i):
                return i + 1
            else:
                raise JsonDocError(f"expected ',' or ']' at {i}")

    def _scan(self, pos: int) -> tuple[Any, int]:
        try:
            found: tuple[Any, int] = _scan_once(self.text, pos)
            return found
        except (StopIteration, json.JSONDecodeError, ValueError):
            raise JsonDocError(f"invalid JSON value at {pos}") from None

    def _skip(self, pos: int) -> int:
        return self._scan(pos)[1]

    def value(self, span: Span) -> Any:
        if span.start in self._values:
            return self._values[span.start]
        return self._scan(span.start)[0]

    # ------------------------------------------------------------------ editing

    def replace(self, span: Span, new_json: str) -> None:
        """Put ``new_json`` (already JSON text) where the value at ``span`` stood."""
        self._edits.append((span.start, span.end, new_json))

    def insert(self, pos: int, new_json: str) -> None:
        self._edits.append((pos, pos, new_json))

    def append_to_array(self, span: Span, element_json: str) -> None:
        """Add an element just before the array's closing bracket."""
        text = self.text
        close = span.end - 1
        inner_start = _WS.match(text, span.start + 1).end()  # type: ignore[union-attr]
        empty = inner_start == close
        self.insert(close, element_json if empty else "," + element_json)

    def add_member(self, span: Span, key: str, value_json: str) -> None:
        """Add ``"key": value`` as the last member of the object at ``span``."""
        text = self.text
        close = span.end - 1
        inner_start = _WS.match(text, span.start + 1).end()  # type: ignore[union-attr]
        member = json.dumps(key) + ":" + value_json
        self.insert(close, member if inner_start == close else "," + member)

    @property
    def changed(self) -> bool:
        return bool(self._edits)

    def render(self) -> bytes:
        if not self._edits:
            return self.text.encode("utf-8")
        parts: list[str] = []
        last = 0
        for start, end, new in sorted(self._edits, key=lambda e: (e[0], e[1])):
            if start < last:
                raise JsonDocError("overlapping edits")
            parts.append(self.text[last:start])
            parts.append(new)
            last = end
        parts.append(self.text[last:])
        return "".join(parts).encode("utf-8")


def root_span(doc: JsonDoc) -> Span:
    text = doc.text
    start = _WS.match(text, 0).end()  # type: ignore[union-attr]
    return Span(start, doc._skip(start))


def dump_string(value: str) -> str:
    """JSON text of a string, non-ASCII kept as is (valid JSON, fewer bytes and tokens)."""
    return json.dumps(value, ensure_ascii=False)
