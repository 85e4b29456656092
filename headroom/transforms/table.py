"""Tables as text: CSV/TSV files, the column output of SQL shells (``sqlite3 -column``,
``psql``) and ruled reports (``coverage report``), whose rows are records.

Kept verbatim: the header (and its rule line), the first and last rows, and every row
that holds something a question may be about:

* a numeric column's maximum and minimum (the hottest day, the longest flipper);
* a value seen at most once or twice in a column of few values (the one ``fog`` among
  ``rain`` and ``sun``, the one ``BSD`` licence among ``MIT``);
* a term of the query that few rows have (the id or name the user asked for);
* an error keyword (a CSV-shaped log's ``ERROR`` rows, a ``failed`` status).

The rest are folded into notes that say how many rows went. A line that does not split
into as many cells as the header (a blank line, a footer such as ``(344 rows)``) is kept.
Without a store the same rows are kept and the notes are the only record of the others.
"""

from __future__ import annotations

import csv
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from itertools import zip_longest

from headroom.ccr.markers import lines_marker
from headroom.signals.importance import KeywordTier, line_starts
from headroom.signals.keywords import ERROR
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.lines import (
    already_compressed,
    finish,
    head_lines,
    note,
    passthrough,
    render,
    split_lines,
)
from headroom.transforms.terms import rare_term_hits


@dataclass(frozen=True)
class TableConfig:
    min_rows: int = 20  # fewer rows: untouched
    head_rows: int = 3
    tail_rows: int = 2
    rare_count: int = 2  # a value seen this often or less in a column of few values stays
    few_values: int = 12  # ... a column of at most this many distinct values


_RULE_RE = re.compile(r"^-{2,}(?:(?: +|\+|\|)-{2,})+ *\r?$")
_SINGLE_RULE_RE = re.compile(r"^(?:-{8,}|={8,}) *\r?$")
_DELIMITERS = (",", "\t", ";", "|")
_CONSISTENT = 0.9  # share of sampled lines with the header's cell count


@dataclass(frozen=True)
class Table:
    header: int  # line index of the header
    first_row: int  # line index of the first data row
    cells: dict[int, list[str]]  # line index -> cells, for the data rows


def parse(lines: list[str]) -> Table | None:
    """The table in ``lines``, or None if they are not one."""
    return _parse_columns(lines) or _parse_ruled(lines) or _parse_delimited(lines)


def _parse_ruled(lines: list[str]) -> Table | None:
    """A header, one long rule, rows split at white space (``coverage report``, ``pip
    list``): the last column takes the rest of the line, spaces and all."""
    if len(lines) < 3 or not _SINGLE_RULE_RE.match(lines[1]):
        return None
    width = len(lines[0].split())
    if width < 2:
        return None
    cells: dict[int, list[str]] = {}
    for i in range(2, len(lines)):
        row = lines[i].split(maxsplit=width - 1)
        if len(row) >= width - 1 and not _SINGLE_RULE_RE.match(lines[i]):
            cells[i] = row
    return Table(0, 2, cells) if len(cells) >= 2 else None


def _parse_columns(lines: list[str]) -> Table | None:
    """``sqlite3 -column`` / ``psql`` output: a header, a rule of dashes, aligned rows."""
    if len(lines) < 3 or not _RULE_RE.match(lines[1]):
        return None
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    cells: dict[int, list[str]] = {}
    for i in range(2, len(lines)):
        line = lines[i]
        if not line.strip() or len(line) < spans[-1][0]:
            continue
        cells[i] = [
            line[a : (spans[k + 1][0] if k + 1 < len(spans) else None)].strip(" |")
            for k, (a, _b) in enumerate(spans)
        ]
    return Table(0, 2, cells) if cells else None


def _parse_delimited(lines: list[str]) -> Table | None:
    sample = [x for x in lines[:200] if x.strip()]
    if len(sample) < 3:
        return None
    for delim in _DELIMITERS:
        width = sample[0].count(delim)
        if width == 0:
            continue
        same = sum(1 for x in sample if x.count(delim) == width)
        if same < _CONSISTENT * len(sample) or (delim == "," and _prose(sample)):
            continue
        cells: dict[int, list[str]] = {}
        rows = csv.reader(lines[1:], delimiter=delim)
        for i, row in zip(range(1, len(lines)), rows, strict=False):
            if len(row) == width + 1:
                cells[i] = row
        return Table(0, 1, cells) if cells else None
    return None


def _prose(sample: list[str]) -> bool:
    """Sentences, not records: commas followed by spaces in most lines."""
    return sum(1 for x in sample if ", " in x and x.count(" ") > 2 * x.count(",")) > len(sample) / 2


def is_table(text: str) -> bool:
    """Whether ``text`` opens as a table (its first 60 lines decide; no copy of the rest)."""
    lines = head_lines(text, _SNIFF_LINES)
    return len(lines) >= 4 and parse(lines) is not None


_SNIFF_LINES = 60


def _number(cell: str) -> float | None:
    # A cell opening with a letter is a number only as ``nan``/``inf``/``infinity``: most
    # text cells are turned away here, without the cost of a raised ``ValueError``.
    head = cell.lstrip()[:1]
    if not head or (head.isalpha() and head not in "nNiI"):
        return None
    try:
        return float(cell.replace(",", "").rstrip("%"))
    except ValueError:
        return None


def signal_rows(table: Table, cfg: TableConfig) -> set[int]:
    """Rows holding a numeric column's extremes or a rare value of a column of few values."""
    rows = list(table.cells)
    out: set[int] = set()
    # Transposed in C; a row shorter than the widest has empty cells at its end.
    for column in zip_longest(*table.cells.values(), fillvalue=""):
        values = list(column)
        extremes = _extremes(values, rows)
        if extremes is not None:
            out.update(extremes)
            continue
        counts = Counter(values)
        if len(counts) <= cfg.few_values:
            out.update(i for v, i in zip(values, rows, strict=True) if counts[v] <= cfg.rare_count)
    return out


def _extremes(values: list[str], rows: list[int]) -> tuple[int, int] | None:
    """The rows of a numeric column's largest and smallest value (the first row holding
    each), or None when under 80 % of its cells that are neither empty nor ``NA`` are
    numbers. Parsing stops as soon as that share is out of reach, so a text column costs
    a fifth of its cells."""
    bulk = _all_numbers(values)
    if bulk is not None:
        return rows[bulk.index(max(bulk))], rows[bulk.index(min(bulk))]
    counted = sum(1 for v in values if v and v != "NA")
    present: list[tuple[float, int]] = []
    failed = 0
    for v, i in zip(values, rows, strict=True):
        x = _number(v)
        if x is not None:
            present.append((x, i))
        elif v and v != "NA":
            failed += 1
            if counted - failed < 0.8 * counted:
                return None
    if not present or len(present) < 0.8 * counted:
        return None
    return max(present, key=lambda p: (p[0], -p[1]))[1], min(present)[1]


def _all_numbers(values: list[str]) -> list[float] | None:
    """Every cell as a number, in one C-level ``map``, when no cell needs ``_number``'s
    care: none empty, none with a thousands comma or a ``%``, and no ``n`` (so no ``NA``
    and no ``nan``, whose comparisons would make the first extreme depend on order).
    None when a cell is not a plain number (the cell-by-cell path decides then)."""
    if "" in values:
        return None
    blob = "\0".join(values)
    if any(c in blob for c in ",%nN"):
        return None
    try:
        return list(map(float, values))
    except ValueError:
        return None


class TableCompressor:
    name = "table"

    def __init__(self, config: TableConfig | None = None) -> None:
        self.config = config or TableConfig()
        self._keywords = KeywordTier()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        cfg = self.config
        lines = split_lines(text)
        table = None if already_compressed(text) else parse(lines)
        if table is None or len(table.cells) < cfg.min_rows:
            return passthrough(text, ctx)
        rows = list(table.cells)
        keep = set(range(table.first_row))
        keep.update(i for i in range(len(lines)) if i not in table.cells)  # footers, blanks
        keep.update(rows[: cfg.head_rows])
        keep.update(rows[-cfg.tail_rows :])
        keep |= signal_rows(table, cfg)
        keep |= _asked(text, ctx.query, len(rows))
        keep |= {i for i, imp in self._keywords.scan(text, "log").items() if imp.category == ERROR}
        body = render(
            lines, keep, lambda a, b: note(b - a, "rows omitted" if b - a != 1 else "row omitted")
        )
        kept = sum(1 for i in keep if i in table.cells)
        return finish(
            text, body, ctx, self.name, lambda k: lines_marker(k, len(rows), kept, "rows")
        )


def _asked(text: str, query: str, rows: int) -> set[int]:
    # A term in a tenth of the rows still picks them out (the ``math`` modules of a coverage
    # table); a term in most rows (the package name) picks nothing.
    hits = rare_term_hits(text, query, max(3, rows // 10))
    if not hits:
        return set()
    starts = line_starts(text)
    return {bisect_right(starts, h.start) - 1 for h in hits}
