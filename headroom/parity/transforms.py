"""The transforms the harness can replay, each as ``(input, config) -> JSON-able output``.

``config`` in a fixture: ``query``/``model`` build the ``CompressContext``, ``ccr`` (default
true) says whether a store is passed, and ``options`` are keyword arguments for the
transform's own config dataclass.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.detect import detect
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig, config_class
from headroom.transforms.sections import split_sections
from headroom.transforms.wrappers import split_numbering


class TransformUnavailable(Exception):
    """The transform's module does not exist (yet): its fixtures are skipped, not failed."""


def _context(config: dict[str, Any]) -> CompressContext:
    store = PendingWrites() if config.get("ccr", True) else None
    return CompressContext(
        query=config.get("query", ""), store=store, model=config.get("model", "")
    )


def _load(module_name: str, attr: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise TransformUnavailable(f"{module_name} is not there") from exc
        raise
    if not hasattr(module, attr):
        raise TransformUnavailable(f"{module_name} has no {attr}")
    return getattr(module, attr)


def _compressor(module_name: str, cls_name: str) -> Callable[[str, dict[str, Any]], Any]:
    def run(text: str, config: dict[str, Any]) -> Any:
        cls = _load(module_name, cls_name)
        options = config.get("options") or {}
        compressor = cls(config_class(cls)(**options)) if options else cls(None)
        result = compressor.compress(text, _context(config))
        return {"strategy": result.strategy, "keys": list(result.keys), "text": result.output}

    return run


def _detector(text: str, config: dict[str, Any]) -> Any:
    numbered = split_numbering(text)
    body = numbered.body if numbered is not None else text
    found = detect(body)
    sections = [s.detection.kind for s in split_sections(body)] if config.get("sections") else []
    out: dict[str, Any] = {
        "kind": found.kind,
        "confidence": round(found.confidence, 3),
        "numbered": numbered is not None,
    }
    if sections:
        out["sections"] = sections
    return out


def _pipeline(text: str, config: dict[str, Any]) -> Any:
    try:
        pipeline = Pipeline(PipelineConfig(**(config.get("options") or {})))
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("headroom.transforms."):
            raise
        raise TransformUnavailable(f"the pipeline needs {exc.name}, which is not there") from exc
    result, stats = pipeline.compress_with_stats(text, _context(config))
    return {
        "kind": stats.kind,
        "strategy": result.strategy,
        "reason": stats.reason,
        "keys": list(result.keys),
        "text": result.output,
    }


TRANSFORMS: dict[str, Callable[[str, dict[str, Any]], Any]] = {
    "detector": _detector,
    "smart_crusher": _compressor("headroom.transforms.smart_crusher", "SmartCrusher"),
    "log": _compressor("headroom.transforms.log", "LogCompressor"),
    "diff": _compressor("headroom.transforms.diff", "DiffCompressor"),
    "search": _compressor("headroom.transforms.search", "SearchCompressor"),
    "text": _compressor("headroom.transforms.text", "TextCompressor"),
    "pipeline": _pipeline,
}


def apply(transform: str, text: str, config: dict[str, Any]) -> Any:
    runner = TRANSFORMS.get(transform)
    if runner is None:
        raise TransformUnavailable(f"unknown transform {transform!r}")
    return runner(text, config)
