"""The lossless table form of an array of objects, and its parser.

Format (chosen so a model reads it like CSV and a program can rebuild the rows exactly)::

    [table: 3 rows]
    id,name,address.city,address.zip,tags,note
    1,Ada Lovelace,London,N1,["math"],""
    2,"Grace, Rear Admiral",,,[],"42"
    3,Linus,Helsinki,00100,null,"true"

(row 2 has no ``address``; its ``note`` is the string "42", row 3's the string "true").

* Line 1 ``[table: N rows]``; line 2 the columns, in order of first appearance; then one
  line per row, cells separated by ``,``.
* A column named ``a.b`` is key ``b`` of a nested object under ``a``. Only uniform nested
  objects are flattened (every row that has ``a`` holds an object with the same keys, at
  most ``max_flatten_keys`` of them); all of a flattened group's cells empty = ``a`` absent.
  Column names that are not plain words (letters, digits, ``_ $ @ -``) are JSON-quoted and
  never flattened.
* A cell is empty when the key is absent from that row. Otherwise it is a compact JSON
  value — number, ``true``, ``false``, ``null``, ``"string"``, ``[…]``, ``{…}`` — except
  that a string is written bare when that cannot be misread: not empty, no ``,``, no control
  characters, no leading/trailing space, does not start with ``"``, ``[`` or ``{`` and is
  not itself a JSON number or literal.

Row key order follows the column order; everything else round-trips (``parse_table``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

HEADER_PREFIX = "[table: "
_HEADER_RE = re.compile(r"\[table: (\d+) rows\]\Z")
_PLAIN_NAME = re.compile(r"[\w$@\-]+\Z", re.ASCII)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?\Z")
_NEEDS_QUOTES = re.compile(r'[,\x00-\x1f\x7f]|\A[\s"\[{]|\s\Z')
_LITERALS = {"true": True, "false": False, "null": None}
_MISSING = object()
_DECODER = json.JSONDecoder()

Cell = Callable[[Any], str]


def _bare_ok(text: str) -> bool:
    if not text or text in _LITERALS or _NEEDS_QUOTES.search(text):
        return False
    return _JSON_NUMBER.match(text) is None


def _column_name(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else json.dumps(name, ensure_ascii=False)


def _columns(
    rows: list[dict[str, Any]], max_flatten_keys: int
) -> list[tuple[str, tuple[str, ...]]]:
    """(key, nested keys) per column; nested keys empty when the column is not flattened."""
    keys = dict.fromkeys(k for row in rows for k in row)
    out: list[tuple[str, tuple[str, ...]]] = []
    for key in keys:
        shapes = {
            tuple(v) if type(v) is dict else None
            for row in rows
            if (v := row.get(key, _MISSING)) is not _MISSING
        }
        shape = shapes.pop() if len(shapes) == 1 else None
        flat = (
            shape is not None
            and 0 < len(shape) <= max_flatten_keys
            and _PLAIN_NAME.match(key) is not None
            and all(_PLAIN_NAME.match(sub) for sub in shape)
        )
        out.append((key, shape if flat and shape else ()))
    return out


def render_table(
    rows: list[dict[str, Any]],
    dumps: Callable[[Any], str],
    number_text: Callable[[Any], str],
    max_flatten_keys: int = 6,
) -> str:
    """The table text for ``rows`` (all dicts). ``dumps``/``number_text`` come from the codec.

    Built column by column so each column's type is looked at once and repeated values are
    rendered once; rows are then joined in C.
    """

    def cell(value: Any) -> str:
        kind = type(value)
        if kind is str:
            return value if _bare_ok(value) else dumps(value)
        if value is None or kind is bool:
            return "null" if value is None else ("true" if value else "false")
        if value is _MISSING:
            return ""
        if isinstance(value, (int, float)):
            return number_text(value)
        return dumps(value)

    columns = _columns(rows, max_flatten_keys)
    header = ",".join(
        ",".join(f"{key}.{sub}" for sub in subs) if subs else _column_name(key)
        for key, subs in columns
    )
    rendered: list[list[str]] = []
    for key, subs in columns:
        values = [row.get(key, _MISSING) for row in rows]
        if not subs:
            rendered.append(_render_column(values, cell, dumps))
            continue
        for sub in subs:
            inner = [_MISSING if v is _MISSING else v[sub] for v in values]
            rendered.append(_render_column(inner, cell, dumps))
    lines = [f"{HEADER_PREFIX}{len(rows)} rows]", header]
    lines.extend(map(",".join, zip(*rendered, strict=True)) if rendered else ("" for _ in rows))
    return "\n".join(lines)


_MEMO_TYPES = frozenset((str, type(None), object))  # types whose equality is type-exact


def _render_column(
    values: list[Any], cell: Callable[[Any], str], dumps: Callable[[Any], str]
) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= {int, float}:  # plain numbers: one C dump, split (no commas inside numbers)
        return dumps(values)[1:-1].split(",")
    if kinds <= _MEMO_TYPES:
        distinct = set(values)
        if 2 * len(distinct) <= len(values):
            memo = {v: cell(v) for v in distinct}
            return [memo[v] for v in values]
    return [cell(v) for v in values]


def _split_cells(line: str, decoder: json.JSONDecoder = _DECODER) -> list[str | tuple[Any]]:
    """Cells of one line: a 1-tuple holds a decoded JSON value, a str is a bare token."""
    cells: list[str | tuple[Any]] = []
    pos, end = 0, len(line)
    while True:
        if pos < end and line[pos] in '"[{':
            value, pos = decoder.raw_decode(line, pos)
            cells.append((value,))
        else:
            comma = line.find(",", pos)
            stop = end if comma < 0 else comma
            cells.append(line[pos:stop])
            pos = stop
        if pos >= end:
            return cells
        if line[pos] != ",":
            raise ValueError(f"expected ',' at column {pos} of {line!r}")
        pos += 1
        if pos == end:
            cells.append("")
            return cells


def _bare_value(token: str, decoder: json.JSONDecoder) -> Any:
    if token in _LITERALS:
        return _LITERALS[token]
    if _JSON_NUMBER.match(token):
        return decoder.decode(token)
    return token


def _parse_header(line: str) -> list[tuple[str, str | None]]:
    names: list[tuple[str, str | None]] = []
    for raw in _split_cells(line):
        if isinstance(raw, tuple):
            names.append((raw[0], None))
        elif "." in raw:
            parent, sub = raw.split(".", 1)
            names.append((parent, sub))
        else:
            names.append((raw, None))
    return names


def is_table(text: str) -> bool:
    return text.startswith(HEADER_PREFIX)


def parse_table(text: str, decoder: json.JSONDecoder = _DECODER) -> list[dict[str, Any]]:
    """Rebuild the rows of a table rendered by ``render_table``. Raises ValueError if malformed.

    Pass a decoder with ``parse_float=decimal.Decimal`` to read numbers beyond double precision.
    """
    lines = text.split("\n")
    match = _HEADER_RE.match(lines[0])
    if match is None or len(lines) < 2:
        raise ValueError("not a table: missing header")
    count = int(match.group(1))
    names = _parse_header(lines[1])
    body = lines[2:] if count else []
    if len(body) != count:
        raise ValueError(f"table says {count} rows, has {len(body)}")
    rows: list[dict[str, Any]] = []
    for line in body:
        cells = _split_cells(line, decoder)
        if len(cells) != len(names):
            raise ValueError(f"row has {len(cells)} cells, header has {len(names)}")
        row: dict[str, Any] = {}
        for (key, sub), raw in zip(names, cells, strict=True):
            if raw == "":
                continue
            value = raw[0] if isinstance(raw, tuple) else _bare_value(raw, decoder)
            if sub is None:
                row[key] = value
            else:
                row.setdefault(key, {})[sub] = value
        rows.append(row)
    return rows
