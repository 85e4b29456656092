"""What every compressor takes and returns; the seam between the engine and its callers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from headroom.ccr.store import CCRWriter


@dataclass(frozen=True)
class Steer:
    """What learning from retrievals changes for one compressor (``headroom.learning``).

    ``lossless``: its outputs of this tool were fetched back so often that dropping anything
    costs more than it saves, so only its lossless work runs. ``terms``: words of dropped
    lines the model fetched back and used; they join the relevance context, so lines and
    records that carry them are kept like lines the task names.
    """

    lossless: bool = False
    terms: tuple[str, ...] = ()


NO_STEER: Mapping[str, Steer] = MappingProxyType({})


@dataclass(frozen=True)
class CompressContext:
    """Inputs besides the text itself.

    ``query`` is the relevance context: the proxy passes the tool call's own arguments and
    the user turn that led to it, never later turns, so a turn compresses the same way
    forever. ``store`` is ``None`` when no marker may be emitted (then compressors drop
    nothing they could not describe in place, see each compressor's docstring).
    ``steer``: per strategy name, what was learned about this tool's outputs; the pipeline
    applies it, compressors never see it.
    """

    query: str = ""
    store: CCRWriter | None = None
    model: str = ""
    steer: Mapping[str, Steer] = field(default_factory=lambda: NO_STEER)


@dataclass(frozen=True)
class CompressResult:
    output: str
    strategy: str  # e.g. "smart_crusher", "log", "diff", "search", "text", "passthrough"
    tokens_before: int
    tokens_after: int
    keys: tuple[str, ...] = field(default=())  # CCR keys the output's markers name

    @property
    def modified(self) -> bool:
        return self.tokens_after < self.tokens_before or self.keys != ()

    @property
    def tokens_saved(self) -> int:
        return max(0, self.tokens_before - self.tokens_after)


class Compressor(Protocol):
    name: str

    def compress(self, text: str, ctx: CompressContext) -> CompressResult: ...
