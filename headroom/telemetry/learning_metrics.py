"""``/metrics`` lines for what the learner knows (its ``stats()`` dict, shared by every
process on the store, so a worker's view is the fleet's and nothing is summed over workers).

Decayed counts are gauges (they fall as evidence ages); the learner's own event counts are
this process's and are counters."""

from __future__ import annotations

from typing import Any

from headroom.telemetry.exposition import Exposition

_DECISIONS = ("default", "terms", "lossless")


def learning_metrics(learning: dict[str, Any]) -> str:
    out = Exposition()
    rows = learning.get("by_tool", [])

    def per_row(field: str) -> list[tuple[dict[str, str], float]]:
        return [({"tool": r["tool"], "kind": r["kind"]}, float(r[field])) for r in rows]

    out.metric(
        "headroom_learning_retrieved",
        "gauge",
        "Retrievals of compressed outputs, decayed, by tool and kind.",
        per_row("retrieved"),
    )
    out.metric(
        "headroom_learning_compressed",
        "gauge",
        "Outputs compressed lossily for the first time, decayed, by tool and kind.",
        per_row("compressed"),
    )
    out.metric(
        "headroom_learning_decision",
        "gauge",
        "1 for the decision now applied to new outputs of a tool and kind.",
        [
            ({"tool": r["tool"], "kind": r["kind"], "decision": d}, float(r["decision"] == d))
            for r in rows
            for d in _DECISIONS
        ],
    )
    out.metric(
        "headroom_learning_extra_tokens",
        "gauge",
        "Tokens kept because of the learning (estimated), decayed.",
        [({}, float(learning.get("extra_tokens", 0)))],
    )
    out.metric(
        "headroom_learning_retrievals_saved",
        "gauge",
        "Retrievals the learning avoided (estimated from the rates it acted on), decayed.",
        [({}, float(learning.get("retrievals_saved", 0)))],
    )
    for name in ("retrievals", "unknown_retrievals", "terms", "refused", "errors"):
        out.metric(
            f"headroom_learning_{name}_total",
            "counter",
            f"Learner events in this process: {name.replace('_', ' ')}.",
            [({}, float(learning.get(name, 0)))],
        )
    return "\n".join(out.lines) + "\n"
