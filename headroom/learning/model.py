"""What the retrievals taught: decayed counts in, one explainable verdict per (tool, kind) out.

Every ``headroom_retrieve`` call says a compression dropped something the model needed. The
evidence is kept as plain counters, each a (value, time) pair that halves every
``HALF_LIFE`` seconds, so old behaviour fades and nothing grows without bound:

* ``c`` outputs of the tool and kind compressed lossily for the first time; ``b`` and ``a``
  their estimated tokens before and after, added for every request that carried them (an
  agent re-sends its history each turn, so an output saves again in every later request;
  their ratio is the share a compression keeps);
* ``r`` retrievals of such outputs, ``o`` the tokens of the originals they fetched and ``p``
  the tokens of the request each re-sent to fetch them (the follow-up carries the whole
  conversation again);
* ``t`` one per word of the dropped lines a retrieval showed were wanted (see
  ``evidence``);
* ``k`` requests that carried an output kept whole because of a verdict; ``x`` the tokens
  a steer (kept whole, or learned terms) cost an output, measured once against the default
  compression of the same output; ``s`` the retrievals a kept-whole output is expected to
  save (the verdict's retrieval rate, once per output).

A verdict is arithmetic on those counts. Compressing this tool's outputs of this kind saved
``b - a`` tokens; the retrievals that compression caused cost ``o + p``. Once there is
enough evidence (``MIN_RETRIEVALS``) and the retrievals cost at least what the compression
saved, new outputs are kept whole ("lossless"): both sums are over the same decayed window,
so this is "compressing it has cost more than it saved". Below that, words seen in at least
``MIN_TERM`` wanted lines (one, for a program's own verdict) join the relevance context
("terms"). Every verdict carries the
numbers it was made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from headroom.transforms.base import NO_STEER, Steer

HALF_LIFE = 3 * 86_400.0
MIN_RETRIEVALS = 2.0
MIN_TERM = 2.0  # for a tool; for one program a single wanted line counts
MAX_TERMS = 12
FORGET_BELOW = 0.05  # a counter decayed below this is gone
SEP = "\t"

Counts = Mapping[str, tuple[float, float]]  # counter name -> (value, time it was last moved)


def decayed(value: float, since: float, now: float) -> float:
    factor: float = 0.5 ** (max(0.0, now - since) / HALF_LIFE)
    return value * factor


def counter(kind: str, tool: str, strategy: str, term: str = "") -> str:
    parts = (kind, tool, strategy, term) if term else (kind, tool, strategy)
    return SEP.join(p.replace(SEP, " ") for p in parts)


def parse_counter(name: str) -> tuple[str, str, str, str] | None:
    parts = name.split(SEP)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2], ""
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    return None


@dataclass
class Verdict:
    tool: str
    kind: str  # the compressor's strategy name ("log", "search", "smart_crusher", ...)
    compressed: float = 0.0
    retrieved: float = 0.0
    retrieved_tokens: float = 0.0  # originals fetched
    resent_tokens: float = 0.0  # requests re-sent to fetch them
    tokens_before: float = 0.0
    tokens_after: float = 0.0
    held: float = 0.0
    extra_tokens: float = 0.0
    saved_retrievals: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def kept_share(self) -> float:
        return self.tokens_after / self.tokens_before if self.tokens_before else 1.0

    @property
    def rate(self) -> float:
        return self.retrieved / self.compressed if self.compressed else 0.0

    @property
    def saved(self) -> float:
        """Tokens the compression of these outputs removed."""
        return max(0.0, self.tokens_before - self.tokens_after)

    @property
    def retrieval_cost(self) -> float:
        return self.retrieved_tokens + self.resent_tokens

    @property
    def lossless(self) -> bool:
        return _at_least(self.retrieved, MIN_RETRIEVALS) and self.retrieval_cost >= self.saved

    @property
    def has_evidence(self) -> bool:
        return _at_least(max(self.compressed, self.retrieved), MIN_RETRIEVALS)

    @property
    def min_term(self) -> float:
        """A program's outputs look alike, so one fetched-back line teaches; a tool's
        programs differ (``Bash`` runs everything), so a word must recur."""
        return 1.0 if PROGRAM_SEP in self.tool else MIN_TERM

    @property
    def learned_terms(self) -> tuple[str, ...]:
        ranked = sorted(
            (t for t, n in self.terms.items() if _at_least(n, self.min_term)),
            key=lambda t: (-self.terms[t], t),
        )
        return tuple(ranked[:MAX_TERMS])

    @property
    def steer(self) -> Steer | None:
        if self.lossless:
            return Steer(lossless=True)
        terms = self.learned_terms
        return Steer(terms=terms) if terms else None

    @property
    def applied(self) -> Steer | None:
        """What this name contributes to ``steer_for``: its steer, or for a program with
        evidence of its own an empty one (its "default" overrides its tool's verdict)."""
        steer = self.steer
        if steer is None and PROGRAM_SEP in self.tool and self.has_evidence:
            return Steer()
        return steer

    def why(self) -> str:
        cost = (
            f"{self.retrieved:.1f} retrievals of {self.compressed:.1f} compressed outputs cost "
            f"{self.retrieval_cost:,.0f} tokens (originals {self.retrieved_tokens:,.0f}, "
            f"re-sent requests {self.resent_tokens:,.0f})"
        )
        if self.lossless:
            return f"lossless: {cost} >= the {self.saved:,.0f} the compression saved"
        terms = self.learned_terms
        if terms:
            shown = ", ".join(terms)
            return f"keeps lines with {shown}: words of dropped lines the model fetched and named"
        if not _at_least(self.retrieved, MIN_RETRIEVALS):
            return f"default: {self.retrieved:.1f} retrievals, fewer than {MIN_RETRIEVALS:.0f}"
        return f"default: {cost} < the {self.saved:,.0f} the compression saved"

    def as_json(self) -> dict[str, Any]:
        steer = self.steer
        return {
            "tool": self.tool,
            "kind": self.kind,
            "compressed": round(self.compressed, 2),
            "retrieved": round(self.retrieved, 2),
            "rate": round(self.rate, 3),
            "kept_share": round(self.kept_share, 3),
            "saved_tokens": round(self.saved),
            "retrieval_tokens": round(self.retrieval_cost),
            "decision": "lossless" if self.lossless else ("terms" if steer else "default"),
            "terms": list(self.learned_terms),
            "why": self.why(),
            "held_whole": round(self.held, 2),
            "extra_tokens": round(self.extra_tokens),
            "retrievals_saved": round(self.saved_retrievals, 2),
        }


def _at_least(count: float, threshold: float) -> bool:
    """A threshold on decayed counts, to two decimals: three retrievals a second ago are
    still three (2.99999 after decay), not "fewer than three"."""
    return round(count, 2) >= threshold


_FIELD = {
    "c": "compressed",
    "r": "retrieved",
    "o": "retrieved_tokens",
    "p": "resent_tokens",
    "b": "tokens_before",
    "a": "tokens_after",
    "k": "held",
    "x": "extra_tokens",
    "s": "saved_retrievals",
}


@dataclass(frozen=True)
class Learned:
    """A snapshot of the verdicts, by (tool, kind); ``steers`` is what compression applies."""

    verdicts: Mapping[tuple[str, str], Verdict]
    faded: tuple[str, ...] = ()  # counters decayed to nothing, for the backend to forget

    @classmethod
    def of(cls, counts: Counts, now: float) -> Learned:
        verdicts: dict[tuple[str, str], Verdict] = {}
        faded: list[str] = []
        for name, (value, since) in sorted(counts.items()):
            parsed = parse_counter(name)
            now_value = decayed(value, since, now)
            if parsed is None or now_value < FORGET_BELOW:
                faded.append(name)
                continue
            kind, tool, strategy, term = parsed
            verdict = verdicts.setdefault((tool, strategy), Verdict(tool, strategy))
            if kind == "t":
                verdict.terms[term] = now_value
            elif kind in _FIELD:
                setattr(verdict, _FIELD[kind], now_value)
        return cls(MappingProxyType(verdicts), tuple(faded))

    def steers(self) -> dict[str, Mapping[str, Steer]]:
        """learned name -> (strategy -> steer), only where something was learned.

        Two levels (see ``learned_names``): a tool (``Bash``) and a program run through it
        (``Bash:grep``). A program with evidence of its own (``MIN_RETRIEVALS`` outputs or
        retrievals) gets its own verdict, even "default" (an empty ``Steer``, so a
        tool-wide "lossless" learned from other programs does not reach it); otherwise
        the tool's verdict applies (``steer_for``)."""
        out: dict[str, dict[str, Steer]] = {}
        for (name, strategy), verdict in self.verdicts.items():
            steer = verdict.applied
            if steer is not None:
                out.setdefault(name, {})[strategy] = steer
        return dict(out)  # plain dicts: they travel to the compression process by pickle

    def verdict(self, tool: str, strategy: str) -> Verdict | None:
        return self.verdicts.get((tool, strategy))


EMPTY = Learned(MappingProxyType({}))
PROGRAM_SEP = ":"


def learned_names(tool: str, program: str) -> list[str]:
    """The names evidence about one output counts under: its tool, and the program a shell
    tool ran (``Bash`` and ``Bash:grep``)."""
    return [tool, f"{tool}{PROGRAM_SEP}{program}"] if program else [tool]


def steer_for(
    steers: Mapping[str, Mapping[str, Steer]], tool: str, program: str
) -> Mapping[str, Steer]:
    """What applies to a new output: the tool's steers, overridden per strategy by the
    program's own where it has evidence of its own."""
    merged: dict[str, Steer] = {}
    for name in learned_names(tool, program):
        merged.update(steers.get(name, {}))
    return {s: v for s, v in merged.items() if v.lossless or v.terms}


def encode_steer(steer: Mapping[str, Steer]) -> bytes:
    """A decision as stored: what was applied to one output, by strategy."""
    return orjson.dumps(
        {s: [v.lossless, list(v.terms)] for s, v in sorted(steer.items())},
    )


def decode_steer(raw: bytes) -> Mapping[str, Steer]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return NO_STEER
    if not isinstance(value, dict) or not value:
        return NO_STEER
    out: dict[str, Steer] = {}
    for strategy, pair in value.items():
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], list):
            out[str(strategy)] = Steer(bool(pair[0]), tuple(str(t) for t in pair[1]))
    return out
