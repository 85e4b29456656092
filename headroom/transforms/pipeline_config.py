"""Every knob of the compression pipeline, and which compressor each strategy name builds.

A strategy's compressor lives in its own module and takes its own config dataclass (the
``PipelineConfig`` field named like the strategy); ``enable_<kind>`` turns it off and
``min_tokens_<kind>`` sets the smallest section it is worth calling for. A lossless-only
pipeline (``lossy=False``) sets a compressor's ``lossless_only`` field, and turns off a
compressor without one.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass
from typing import Any

from headroom.transforms.base import Compressor


@dataclass(frozen=True)
class PipelineConfig:
    """Every knob of the pipeline, with the defaults the proxy uses.

    ``min_tokens_*``: a section smaller than this (estimated tokens) is left alone — the
    saving would not pay for the marker and the model's retrieval round trip.
    ``lossy=False``: only lossless work (see module docstring).
    ``enable_ccr_marker=False``: compressors get no store, so they emit no marker and must
    keep or describe in place whatever they drop.
    ``raise_errors``: a compressor exception, or an output naming a key nobody stored,
    raises (tests) instead of turning into a passthrough recorded in
    ``PipelineStats.errors`` (proxy).
    """

    lossy: bool = True
    enable_ccr_marker: bool = True
    split_mixed: bool = True
    raise_errors: bool = False
    enable_json: bool = True
    enable_log: bool = True
    enable_diff: bool = True
    enable_search: bool = True
    enable_text: bool = True
    enable_table: bool = True
    enable_docs: bool = True
    min_tokens_json: int = 60
    min_tokens_log: int = 120
    min_tokens_diff: int = 120
    min_tokens_search: int = 80
    min_tokens_text: int = 300
    min_tokens_table: int = 120
    min_tokens_docs: int = 600
    # Each compressor's own config dataclass; None → its defaults.
    smart_crusher: Any = None
    log: Any = None
    diff: Any = None
    search: Any = None
    text: Any = None
    table: Any = None
    docs: Any = None


# strategy → (module, class, the suffix of its ``enable_*`` and ``min_tokens_*`` fields);
# its own config is the PipelineConfig field named like the strategy.
ROUTES: dict[str, tuple[str, str, str]] = {
    "smart_crusher": ("headroom.transforms.smart_crusher", "SmartCrusher", "json"),
    "log": ("headroom.transforms.log", "LogCompressor", "log"),
    "diff": ("headroom.transforms.diff", "DiffCompressor", "diff"),
    "search": ("headroom.transforms.search", "SearchCompressor", "search"),
    "docs": ("headroom.transforms.docs", "DocsCompressor", "docs"),
    "table": ("headroom.transforms.table", "TableCompressor", "table"),
    "text": ("headroom.transforms.text", "TextCompressor", "text"),
}
STRATEGIES = tuple(ROUTES)  # every compressor's name, in routing order


@dataclass(frozen=True)
class Route:
    strategy: str
    compressor: Any
    min_tokens: int


def build_route(strategy: str, config: PipelineConfig, override: Compressor | None) -> Route | None:
    module_name, cls_name, kind = ROUTES[strategy]
    flag, min_field, cfg_field = f"enable_{kind}", f"min_tokens_{kind}", strategy
    if not getattr(config, flag):
        return None
    if override is not None:
        return Route(strategy, override, getattr(config, min_field))
    module = importlib.import_module(module_name)
    cfg = getattr(config, cfg_field)
    if not config.lossy:
        cfg_cls = config_class(getattr(module, cls_name))
        names = {f.name for f in dataclasses.fields(cfg_cls)}
        if "lossless_only" not in names:
            return None  # this compressor has no lossless mode: off when lossy is off
        cfg = dataclasses.replace(cfg if cfg is not None else cfg_cls(), lossless_only=True)
    compressor = getattr(module, cls_name)(cfg)
    return Route(strategy, compressor, getattr(config, min_field))


def config_class(cls: type) -> type:
    """The config dataclass a compressor's ``__init__(config: X | None)`` takes."""
    init = cls.__init__  # type: ignore[misc]  # the class's own signature is what we read
    hint = typing.get_type_hints(init).get("config")
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return typing.cast(type, options[0])
