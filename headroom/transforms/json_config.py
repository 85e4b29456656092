"""Every SmartCrusher threshold in one frozen object (re-exported by ``smart_crusher``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmartCrusherConfig:
    """Thresholds with their defaults and the reason for each.

    Lossless
      min_table_rows=8            shorter arrays stay JSON (only minified): the few tokens a
                                  table saves there are not worth changing the shape.
      lossless_min_savings=0.15   the table replaces compact JSON only if ≥ 15 % shorter.
      max_flatten_keys=6          nested objects with more keys stay a JSON cell.
      max_lossless_tokens=600     an array whose best lossless form fits this many tokens
                                  (estimate_tokens) is never cut: the model sees every row.
      table_best_ratio=0.25       no table is expected below this share of the compact
                                  JSON, so an array whose compact JSON is over
                                  max_lossless_tokens / 0.25 goes straight to row selection
                                  (saves rendering a table that could not fit anyway).
      json_in_string_min_chars=64 strings shorter than this are not tried as embedded JSON.
      max_depth=50                deeper values are copied compactly, never walked.

    Lossy (only with a store and ``enable_ccr_marker``; otherwise lossless only, because a
    row dropped with no way back is information lost without trace)
      lossless_only=False         never drop rows even with a store.
      enable_ccr_marker=True      False: no sentinel, no store write, so lossless only.
      min_items_to_crush=8        shorter arrays keep every item.
      min_lossy_savings=0.3       cut only if the result is ≥ 30 % smaller than lossless.
      keep_first=3, keep_last=2   positional anchors (head shows shape, tail shows latest).
      fill_min=5, fill_max=20     evenly spaced sample size K = sqrt(distinct items),
                                  clamped: grows with how many different rows there are.
      max_error_rows=100          items with an ERROR keyword in a value are all kept up to
                                  this many (then sampled evenly; all stay retrievable),
      error_max_df=0.5            except for a keyword found in more than half the items
                                  ("0 failed" in every row): it marks nothing (1.0: off).
      outlier_z=3.5               robust z (median/MAD) beyond which a number is an outlier.
      max_outliers_per_field=5    the most extreme ones per field.
      max_categories=12           a field with 2..this many distinct values is categorical;
      rare_fraction=0.02          values seen in ≤ max(1, 2 % of items) are rare,
      rare_keep=2                 and the first two items of each rare value are kept.
      change_window=5             window of the mean-shift test for change points,
      change_z=4.0                robust z of the shift, max_change_points=4 per field.
      max_anchor_rows=30          items quoting a query anchor (UUID, long number, host,
                                  quoted string, identifier) kept up to this many in
                                  all, most selective anchor first; an anchor found in
                                  more than relevance_max_df of the items selects nothing.
      relevance_ratio=0.5         IDF-weighted (BM25, binary tf): keep items scoring ≥ 50 %
                                  of the best item,
      relevance_max_df=0.5        counting only query words in ≤ half the items,
      max_relevance_rows=20       at most this many.
      opaque_min_chars=1024       a base64 string (optionally a data: URI) at least this long
                                  is stored whole and replaced by an opaque marker
                                  ``<<ccr:KEY,base64,SIZE>>`` (same store conditions).
    """

    min_table_rows: int = 8
    lossless_min_savings: float = 0.15
    max_flatten_keys: int = 6
    max_lossless_tokens: int = 600
    table_best_ratio: float = 0.25
    json_in_string_min_chars: int = 64
    max_depth: int = 50

    lossless_only: bool = False
    enable_ccr_marker: bool = True
    min_items_to_crush: int = 8
    min_lossy_savings: float = 0.3
    keep_first: int = 3
    keep_last: int = 2
    fill_min: int = 5
    fill_max: int = 20
    max_error_rows: int = 100
    error_max_df: float = 0.5
    outlier_z: float = 3.5
    max_outliers_per_field: int = 5
    max_categories: int = 12
    rare_fraction: float = 0.02
    rare_keep: int = 2
    change_window: int = 5
    change_z: float = 4.0
    max_change_points: int = 4
    max_anchor_rows: int = 30
    relevance_ratio: float = 0.5
    relevance_max_df: float = 0.5
    max_relevance_rows: int = 20
    opaque_min_chars: int = 1024

    def __post_init__(self) -> None:
        for name in (
            "error_max_df",
            "table_best_ratio",
            "lossless_min_savings",
            "min_lossy_savings",
            "rare_fraction",
            "relevance_ratio",
            "relevance_max_df",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SmartCrusherConfig.{name} must be in [0, 1], got {value}")
        if self.fill_min > self.fill_max or self.fill_min < 1:
            raise ValueError("SmartCrusherConfig needs 1 <= fill_min <= fill_max")
        if min(self.keep_first, self.keep_last, self.max_error_rows, self.rare_keep) < 0:
            raise ValueError("SmartCrusherConfig counts (keep_*, max_*_rows, rare_keep) are >= 0")
        if self.change_window < 2 or self.max_depth < 1:
            raise ValueError("SmartCrusherConfig needs change_window >= 2 and max_depth >= 1")
