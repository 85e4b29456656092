"""One parse and compact serialisation for SmartCrusher, without changing what numbers mean.

orjson is the fast path (one C parse, one C dump per row). It reads every float as an IEEE
double and turns integers beyond 64 bits into floats, so a number with more significant
digits than a double holds, or an exponent written out of range, would silently change
value. Such inputs are rare, so a cheap regex finds the suspects and each is checked: when
one does not survive a double, the document is parsed with the stdlib instead, every float a
double cannot hold keeps its source text, and dumps writes that text back (through a
placeholder that orjson escapes, since the installed orjson has no raw-fragment type).
Same input → same bytes either way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson


def _shape_table() -> bytes:
    table = bytearray(b"x" * 256)
    for ch in b"0123456789.":
        table[ch] = ord("0")
    for ch in b"eE":
        table[ch] = ord("e")
    for ch in b"+-":
        table[ch] = ord("s")
    for ch in b":,[ \t\r\n":
        table[ch] = ord("c")  # what may precede a number token
    return bytes(table)


_SHAPES = _shape_table()
# Byte shapes every number a double might not hold contains: 16 digits/dots in a row (more
# significant digits than a double has, or an integer beyond 64 bits), or a three-digit
# exponent (beyond ±308 a double over- or underflows). Shorter forms (1e5, 2.5E-7) parse to
# the same double they denote. Candidates are found with C-speed finds on a translated copy.
_RISKY_SHAPES = (b"0" * 16, b"0e000", b"0es000")
_MANY_SUSPECTS = 256  # past this many, one regex pass beats a Python loop per candidate
_SUSPECT_NUMBER = re.compile(
    r"[:,\[][ \t\n\r]*+(-?\d(?:[\d.]{15,}(?:[eE][-+]?\d+)?|[\d.]*[eE][-+]?\d{3,}))"
)


def _suspect_numbers(text: str) -> list[str]:
    """Number tokens with a risky shape, to be checked by ``_all_double_exact``."""
    data = text.encode("utf-8", "surrogatepass")
    shapes = data.translate(_SHAPES)
    count = sum(shapes.count(shape) for shape in _RISKY_SHAPES)
    if count == 0:
        return []
    if count > _MANY_SUSPECTS:  # e.g. an array of full-precision floats
        return _SUSPECT_NUMBER.findall(text)
    found: dict[int, str] = {}
    for shape in _RISKY_SHAPES:
        pos = shapes.find(shape)
        while pos >= 0:
            start = pos
            while start > 0 and shapes[start - 1] == 0x30:  # back over digits and dots
                start -= 1
            if start > 0 and shapes[start - 1] == 0x73 and data[start - 1] == 0x2D:  # "-"
                start -= 1
            end = pos + len(shape)
            while end < len(shapes) and shapes[end] in b"0es":
                end += 1
            if start == 0 or shapes[start - 1] == 0x63:  # starts a token, not inside a word
                found[start] = data[start:end].decode()
            pos = shapes.find(shape, end)
    return list(found.values())


_PLACEHOLDER = re.compile(r'"\\u0000(-?[0-9][0-9.eE+\-]*)\\u0000"')


class RawFloat(float):
    """A float that remembers its JSON source text (precise mode only)."""

    raw: str


class RawInt(int):
    """An integer too large for orjson; serialised from its own digits."""


class NotJSON(ValueError):
    """The text is not a JSON document this codec can reproduce faithfully."""


def _all_double_exact(tokens: list[str]) -> bool:
    """Batch check in C first: tokens orjson writes back identically need no closer look."""
    if not tokens:
        return True
    tokens = [t.strip() for t in tokens]
    try:
        again = orjson.dumps(orjson.loads("[" + ",".join(tokens) + "]")).decode()[1:-1]
    except orjson.JSONDecodeError:
        return all(_double_exact(t) for t in tokens)
    return all(a == t or _double_exact(t) for a, t in zip(again.split(","), tokens, strict=True))


def _double_exact(token: str) -> bool:
    """True if orjson reads ``token`` as the same number (a double or a 64-bit integer)."""
    token = token.strip()
    try:
        if "." not in token and "e" not in token and "E" not in token:
            return -(2**63) <= int(token) < 2**64
        value = float(token)
        if repr(value) == token:
            return True
        return math.isfinite(value) and Decimal(repr(value)) == Decimal(token)
    except (ValueError, InvalidOperation):  # not a number after all (text inside a string)
        return False


def _parse_float(text: str) -> float:
    """A plain float when a double holds ``text`` exactly, so it is written as orjson writes
    it in the fast path too (a re-compression that takes the other path gives the same
    bytes); otherwise a ``RawFloat`` that writes ``text`` back."""
    if _double_exact(text):
        return float(text)
    value = RawFloat(text)
    value.raw = text
    return value


def _parse_int(text: str) -> int:
    return RawInt(text) if len(text) > 18 else int(text)


def _reject_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON")


def _placeholder(obj: Any) -> str:
    if isinstance(obj, RawFloat):
        return f"\x00{obj.raw}\x00"
    if isinstance(obj, RawInt):
        return f"\x00{int(obj)}\x00"
    raise TypeError(f"cannot serialise {type(obj).__name__}")


class Codec:
    """Parse once, then serialise values compactly (`,`/`:`, non-ASCII kept, key order kept)."""

    def __init__(self, precise: bool) -> None:
        self.precise = precise

    @classmethod
    def for_text(cls, text: str) -> Codec:
        return cls(precise=not _all_double_exact(_suspect_numbers(text)))

    def loads(self, text: str) -> Any:
        if not self.precise:
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise NotJSON(str(exc)) from None
        if "\\u0000" in text:  # the placeholder escape could be forged by a string value
            raise NotJSON("NUL escapes with high-precision numbers are not reproduced")
        try:
            return json.loads(
                text,
                parse_float=_parse_float,
                parse_int=_parse_int,
                parse_constant=_reject_constant,
            )
        except (ValueError, RecursionError) as exc:
            raise NotJSON(str(exc)) from None

    def dumps(self, value: Any) -> str:
        if not self.precise:
            return orjson.dumps(value).decode()
        out = orjson.dumps(value, default=_placeholder, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
        return _PLACEHOLDER.sub(r"\1", out.decode())

    def lengths_each(self, items: list[Any]) -> Iterator[int]:
        """The length of every item's compact text, each written when its length is asked
        for (so no list of all the texts is held); an all-number array is dumped once and
        split."""
        if items and not self.precise and all(type(x) in (int, float) for x in items):
            return map(len, self.dumps(items)[1:-1].split(","))
        return (len(self.dumps(item)) for item in items)

    def number_text(self, value: int | float) -> str:
        """A number as it appears in compact output (table cells use this)."""
        if isinstance(value, RawFloat):
            return value.raw
        if type(value) is float:
            return orjson.dumps(value).decode()
        return str(int(value))


def _key_ends(text: str) -> int:
    """Unescaped ``":`` in JSON text: each one ends an object key."""
    return text.count('":') - text.count('\\":')


def has_duplicate_keys(text: str, value: Any, compact: str) -> bool:
    """True if an object in ``text`` repeats a key (the parse kept only the last value).

    A quote inside a JSON string is always escaped, so every unescaped ``":`` ends a key.
    ``compact`` (the parsed value written back) holds one per key the parse kept; when the
    input holds as many, nothing was merged: four C-speed counts. Anything else (``"k" : v``
    spacing, a real duplicate) is settled by a slower parse that sees every pair.
    """
    if type(value) not in (dict, list) or _key_ends(text) == _key_ends(compact):
        return False
    duplicate = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicate
        if len({k for k, _ in pairs}) != len(pairs):
            duplicate = True
        return {}

    try:
        json.loads(text, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):
        return True
    return duplicate
