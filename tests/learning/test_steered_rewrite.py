"""Decisions are made once per output: a rewrite steered by what was learned compresses an
output the way its first sight did, in this process (the memo) and in any other (the
decision record), and only outputs seen for the first time use what was learned."""

from __future__ import annotations

import json
from pathlib import Path

from headroom.learning.model import encode_steer
from headroom.providers.apis import ANTHROPIC
from headroom.providers.memo import MemoPipeline
from headroom.providers.rewrite import Rewrite, Steering, rewrite_request
from headroom.transforms.base import Steer
from headroom.transforms.pipeline import Pipeline

CORPUS = Path(__file__).resolve().parents[1] / "fidelity" / "corpus"
DPKG = (CORPUS / "b_dpkg_log_today.txt").read_text()
LOSSLESS = {"Bash": {"log": Steer(lossless=True)}}


def _body(text: str = DPKG) -> bytes:
    return json.dumps(
        {
            "model": "claude-sonnet-4",
            "messages": [
                {"role": "user", "content": "what did dpkg do today?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": text}],
                },
            ],
        }
    ).encode()


def _steered(memo: MemoPipeline, steers: dict[str, dict[str, Steer]]) -> Rewrite:
    """What the proxy does: a first pass, then the fetched decisions (here: none stored)."""
    first = rewrite_request(_body(), ANTHROPIC, memo, steering=Steering(steers))
    if not first.needs:
        return first
    assert first.body == _body() and not first.seen  # nothing compressed before the fetch
    return rewrite_request(_body(), ANTHROPIC, memo, steering=Steering(steers, {}))


def test_a_first_sight_is_compressed_as_learned_and_its_decision_recorded() -> None:
    plain = _steered(MemoPipeline(Pipeline()), {})
    assert plain.changed
    [seen] = plain.seen
    assert (seen.tool, seen.strategy, seen.held, seen.first) == ("Bash", "log", (), True)
    assert seen.keys and seen.tokens_after < seen.tokens_before
    [(key, decided)] = plain.decided.items()
    assert decided == encode_steer({})
    held = _steered(MemoPipeline(Pipeline()), LOSSLESS)
    assert not held.changed and held.body == _body()  # kept whole
    [seen] = held.seen
    assert seen.held == ("log",) and seen.keys == ()
    assert held.decided == {key: encode_steer(LOSSLESS["Bash"])}


def test_an_output_decided_before_keeps_its_bytes_whatever_was_learned_since() -> None:
    first = _steered(MemoPipeline(Pipeline()), {})
    # Same process: the memo answers, no decision is fetched, nothing is seen again.
    memo = MemoPipeline(Pipeline())
    _steered(memo, {})
    again = rewrite_request(_body(), ANTHROPIC, memo, steering=Steering(LOSSLESS))
    assert not again.needs and again.body == first.body and again.decided == {}
    assert [s.first for s in again.seen] == [False]  # carried again: it saves again
    # Another process (a fresh memo): the decision record says how it was compressed.
    other = MemoPipeline(Pipeline())
    asked = rewrite_request(_body(), ANTHROPIC, other, steering=Steering(LOSSLESS))
    assert asked.needs == list(first.decided)
    replay = rewrite_request(_body(), ANTHROPIC, other, steering=Steering(LOSSLESS, first.decided))
    assert replay.body == first.body and replay.decided == {}
    assert [s.first for s in replay.seen] == [False]


def test_without_learning_a_rewrite_neither_asks_nor_records() -> None:
    result = rewrite_request(_body(), ANTHROPIC, MemoPipeline(Pipeline()))
    assert result.changed and result.needs == [] and result.seen == [] and result.decided == {}
