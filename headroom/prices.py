"""Provider prices for the cost estimate of ``/stats`` and ``/metrics`` (``--price-table``).

USD per million tokens, per model: fresh input, cached input (read from the provider's
prompt cache), cache writes, and output. The table is the operator's: providers change
prices and the proxy cannot know them, so none are built in (``prices.example.json`` beside
this module shows the format).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Price:
    """Per million tokens."""

    input: float
    cached_input: float
    output: float
    cache_write: float


@dataclass(frozen=True)
class Prices:
    """Model name → price. A model is priced by its own name, or else by the longest name
    in the table it starts with (``gpt-4o`` prices ``gpt-4o-2024-08-06``)."""

    models: dict[str, Price]

    def find(self, model: str) -> Price | None:
        if model in self.models:
            return self.models[model]
        names = [n for n in self.models if model.startswith(n)]
        return self.models[max(names, key=len)] if names else None

    def cost(self, model: str, row: list[int]) -> dict[str, Any]:
        """``row``: a tally row (answers, input, cached, cache_write, output, saved,
        saved_cached); the saved tokens are priced as the prompts they left were."""
        price = self.find(model)
        if price is None:
            return {"model": model, "priced": False}
        _, tokens_in, cached, written, output, saved, saved_cached = row
        fresh = max(0, tokens_in - cached - written)
        billed = (
            fresh * price.input
            + cached * price.cached_input
            + written * price.cache_write
            + output * price.output
        ) / 1e6
        without = (
            billed
            + ((saved - saved_cached) * price.input + saved_cached * price.cached_input) / 1e6
        )
        return {
            "model": model,
            "priced": True,
            "with_headroom": round(billed, 6),
            "without_headroom": round(without, 6),
        }


class PriceTableError(ValueError):
    """The --price-table file is missing, unreadable or not in the documented format."""


_PRICE_KEYS = ("input", "cached_input", "output", "cache_write")


def load_prices(path: Path) -> Prices:
    """Read a price table (a ``note`` beside ``models`` is allowed, for its source)::

        {"models": {"claude-sonnet-4-5": {"input": 3.0, "cached_input": 0.3,
                                          "cache_write": 3.75, "output": 15.0}, ...}}

    USD per million tokens; ``input`` and ``output`` are required, ``cached_input`` and
    ``cache_write`` default to ``input``. Anything else is an error naming what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceTableError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PriceTableError(f"{path} is not JSON: {exc}") from None
    if isinstance(data, dict) and set(data) - {"models", "note"}:
        raise PriceTableError(f"{path}: unknown keys {sorted(set(data) - {'models', 'note'})}")
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise PriceTableError(f'{path}: expected {{"models": {{"<model>": {{...}}}}}}')
    return Prices({str(name): _price(path, str(name), entry) for name, entry in models.items()})


def _price(path: Path, name: str, entry: Any) -> Price:
    if not isinstance(entry, dict):
        raise PriceTableError(f"{path}: models.{name} must be an object")
    unknown = sorted(set(entry) - set(_PRICE_KEYS))
    if unknown:
        raise PriceTableError(f"{path}: models.{name} has unknown keys {unknown}")
    values: dict[str, float] = {}
    for key in _PRICE_KEYS:
        value = entry.get(
            key, entry.get("input") if key in ("cached_input", "cache_write") else None
        )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PriceTableError(f"{path}: models.{name}.{key} must be a number")
        if not math.isfinite(value) or value < 0:
            raise PriceTableError(f"{path}: models.{name}.{key} must be a finite price >= 0")
        values[key] = float(value)
    return Price(**values)
