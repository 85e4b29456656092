"""Which items of a long JSON array to keep verbatim when the rest goes to the CCR store.

Kept, in this order of reasons (each capped in ``SmartCrusherConfig``): the first and last
items, every item with an ERROR keyword in a *value* (keys are ignored, so ``"error": null``
is not an error; a keyword in most items marks none of them), numeric outliers (robust z
on median/MAD; in a string array also by length) and each numeric field's largest and
smallest value, items holding a rare value of a
categorical field or a rare set of keys, both sides of each change point (level shift) in
a numeric field, items matching the query (``json_query``: anchors such as UUIDs, long
numbers, hosts, quoted strings and identifiers; then words weighted by IDF with a threshold
relative to the best item), and an evenly spaced sample whose size grows with the number of
distinct items.
Identical items are kept once.

Speed comes from doing per-byte work in C: one keyword/query automaton pass over the joined
compact text of all items, column statistics with sorted()/Counter, no per-item regexes.
A numeric field's values, sums and shifts are C doubles (``array("d")``), a quarter of the
memory of lists of floats: those lists were the peak of a crush.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import accumulate, chain
from typing import Any

from headroom.signals.keywords import ERROR, KeywordDetector
from headroom.transforms.json_codec import RawFloat, RawInt
from headroom.transforms.json_config import SmartCrusherConfig
from headroom.transforms.json_query import ItemTexts, evenly, in_key, query_items

_MISSING = object()
_MAD_SCALE = 1.4826  # MAD → standard deviation for normal data

_STATS_SAMPLE = 4096  # median/MAD from an evenly spaced sample: O(n) Python work stays small


def _median(values: Sequence[float]) -> float:
    """Median of ``values`` (of an evenly spaced sample of them when there are many)."""
    if len(values) > _STATS_SAMPLE:
        values = values[:: len(values) // _STATS_SAMPLE]
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _mad(values: Sequence[float], centre: float) -> float:
    if len(values) > _STATS_SAMPLE:
        values = values[:: len(values) // _STATS_SAMPLE]
    return _median([abs(v - centre) for v in values])


def error_items(
    rows: ItemTexts, detector: KeywordDetector, n: int, cfg: SmartCrusherConfig
) -> list[int]:
    """Items with an ERROR keyword in a value, by keyword; a keyword found in more than
    ``error_max_df`` of the items (``"0 failed"`` in every summary) describes the array, not
    an item, and marks nothing."""
    by_word: dict[str, dict[int, None]] = {}
    text = rows.joined
    for lo, hi in rows.spans():
        for hit in detector.hits(text[lo:hi]):
            start = lo + hit.start
            if not in_key(text, start + len(hit.word)):
                by_word.setdefault(hit.word, {})[rows.index(start)] = None
    limit = max(1.0, cfg.error_max_df * n)
    found = {i for hits in by_word.values() if len(hits) <= limit for i in hits}
    return sorted(found)


def _numeric_signals(
    idx: Sequence[int], values: Sequence[float], cfg: SmartCrusherConfig
) -> set[int]:
    """A field's outliers and level shifts."""
    keep: set[int] = set()
    med = _median(values)
    limit = cfg.outlier_z * _MAD_SCALE * _mad(values, med)
    outliers = [(-abs(v - med), idx[j]) for j, v in enumerate(values) if abs(v - med) > limit]
    if outliers and len(outliers) <= max(cfg.max_outliers_per_field, len(values) // 20):
        keep.update(i for _, i in sorted(outliers)[: cfg.max_outliers_per_field])
        # a few spikes are outliers, not level shifts: clip them before looking for shifts
        low, high = med - limit, med + limit
        values = array("d", (low if v < low else high if v > high else v for v in values))
    keep.update(_change_points(idx, values, cfg))
    return keep


def _change_points(
    idx: Sequence[int], values: Sequence[float], cfg: SmartCrusherConfig
) -> set[int]:
    """Both sides of each level shift: windowed mean difference far from its usual value."""
    w = cfg.change_window
    m = len(values)
    if m < 4 * w:
        return set()
    prefix = array("d", accumulate(values, initial=0.0))
    shift = array("d", (prefix[i + w] - 2 * prefix[i] + prefix[i - w] for i in range(w, m - w + 1)))
    centre = _median(shift)
    limit = cfg.change_z * _MAD_SCALE * _mad(shift, centre)
    peaks: list[tuple[float, int]] = []
    run_best: tuple[float, int] | None = None
    last = -(10**9)
    for j, s in enumerate(shift):
        dev = abs(s - centre)
        if dev <= limit or dev == 0:
            continue
        if j - last > w and run_best is not None:
            peaks.append(run_best)
            run_best = None
        if run_best is None or dev > -run_best[0]:
            run_best = (-dev, j + w)
        last = j
    if run_best is not None:
        peaks.append(run_best)
    keep: set[int] = set()
    for _, pos in sorted(peaks)[: cfg.max_change_points]:
        keep.add(idx[pos])
        keep.add(idx[pos - 1])
    return keep


def _rare_positions(col: list[Any], n: int, cfg: SmartCrusherConfig) -> list[int]:
    """Positions in ``col`` of the first ``rare_keep`` holders of each rare categorical value."""
    try:
        if len(set(col[:_CATEGORY_PROBE])) > cfg.max_categories:
            return []  # already too many distinct values: not categorical, skip the count
        counts = Counter(col)
    except TypeError:  # lists/objects in the field: count the scalar values only
        counts = Counter(v for v in col if type(v) in _CATEGORY_TYPES)
    if not 2 <= len(counts) <= cfg.max_categories:
        return []
    rare_max = max(1, int(cfg.rare_fraction * n))
    rare = [v for v, c in counts.items() if c <= rare_max]
    if not rare or len(rare) == len(counts):
        return []
    found: list[int] = []
    for value in rare:
        pos = -1
        for _ in range(cfg.rare_keep):
            pos = _index_of(col, value, pos + 1)
            if pos < 0:
                break
            found.append(pos)
    return found


def _index_of(col: list[Any], value: Any, start: int) -> int:
    """``col.index`` by identity-or-equality of same type (so True is not found as 1)."""
    while True:
        try:
            pos = col.index(value, start)
        except ValueError:
            return -1
        if type(col[pos]) is type(value):
            return pos
        start = pos + 1


_CATEGORY_TYPES = (str, bool, int, type(None))
_CATEGORY_PROBE = 512
_NUMBER_TYPES = (int, float, RawInt, RawFloat)


def _columns(items: list[Any]) -> Iterator[tuple[Sequence[int], list[Any]]]:
    """(item indices, values) per object key, plus one field for the scalar items.

    One column at a time: the caller is done with a column before the next is built, so
    an array of N objects with K keys holds N values here, not N x K (the peak memory of
    a crush)."""
    dict_idx = [i for i, r in enumerate(items) if type(r) is dict]
    if dict_idx:
        rows = items if len(dict_idx) == len(items) else [items[i] for i in dict_idx]
        for key in dict.fromkeys(chain.from_iterable(rows)):
            yield dict_idx, [r.get(key, _MISSING) for r in rows]
        # The set of keys is a field too: each row's key tuple stands for itself by one
        # shared text per distinct tuple (not numeric, and no tuple kept per row).
        yield dict_idx, _key_sets(rows)
    kinds = set(map(type, items))
    if not dict_idx and list not in kinds:
        yield range(len(items)), items
        if kinds == {str}:  # a line far longer or shorter than its siblings stands out
            yield range(len(items)), list(map(len, items))
    elif len(dict_idx) < len(items):
        scalar_idx = [i for i, v in enumerate(items) if type(v) not in (dict, list)]
        yield scalar_idx, [items[i] for i in scalar_idx]


def _key_sets(rows: list[dict[Any, Any]]) -> list[str]:
    shapes: dict[tuple[Any, ...], str] = {}
    out: list[str] = []
    for row in rows:
        keys = tuple(row)
        label = shapes.get(keys)
        if label is None:
            label = shapes[keys] = f"keys{len(shapes)}"
        out.append(label)
    return out


def field_signals(items: list[Any], cfg: SmartCrusherConfig) -> set[int]:
    """Outliers, change points, extremes and rare values, field by field (scalars form one
    field)."""
    n = len(items)
    keep: set[int] = set()
    for idx, col in _columns(items):
        keep.update(idx[p] for p in _rare_positions(col, n, cfg))
        types = Counter(map(type, col))
        numeric = sum(types[t] for t in _NUMBER_TYPES)
        present = len(col) - types[object]
        if numeric < max(cfg.min_items_to_crush, 0.5 * present):
            continue
        if numeric < len(col):
            pos = [j for j, v in enumerate(col) if type(v) in _NUMBER_TYPES]
            idx, col = [idx[j] for j in pos], [col[j] for j in pos]
        try:
            values = array("d", map(float, col))
        except (OverflowError, ValueError):
            continue  # a number beyond float range: no statistics for this field
        keep.update(_numeric_signals(idx, values, cfg))
        # The field's extremes (the first item holding each): the largest, the smallest.
        keep.add(idx[values.index(max(values))])
        keep.add(idx[values.index(min(values))])
    return keep


def fill_size(distinct: int, cfg: SmartCrusherConfig) -> int:
    return max(cfg.fill_min, min(cfg.fill_max, round(math.sqrt(distinct))))


def select(
    items: list[Any],
    rows: ItemTexts,
    query: str,
    cfg: SmartCrusherConfig,
    detector: KeywordDetector,
) -> list[int]:
    """Indices (ascending) of the items to keep; identical items appear once."""
    n = rows.count
    first = rows.first_of_each()
    distinct = [i for i in range(n) if first[i] == i]
    wanted = set(distinct[: cfg.keep_first]) | set(distinct[len(distinct) - cfg.keep_last :])
    errors = error_items(rows, detector, n, cfg)
    wanted.update(evenly(errors, cfg.max_error_rows))
    wanted.update(field_signals(items, cfg))
    if query.strip():
        wanted.update(query_items(rows, n, query, cfg))
    wanted.update(evenly(distinct, fill_size(len(distinct), cfg)))
    return sorted({first[i] for i in wanted})


def error_detector() -> KeywordDetector:
    return KeywordDetector(categories=(ERROR,))
