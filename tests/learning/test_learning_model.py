"""The learning model (decay, verdicts that explain themselves, bounds), the evidence rule,
and the pipeline's steering, on real artifacts of the fidelity corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headroom.ccr.store import PendingWrites
from headroom.learning.evidence import MAX_WORDS, wanted_terms
from headroom.learning.model import (
    HALF_LIFE,
    MIN_RETRIEVALS,
    Learned,
    counter,
    decayed,
    decode_steer,
    encode_steer,
    steer_for,
)
from headroom.transforms.base import CompressContext, Steer
from headroom.transforms.pipeline import Pipeline

CORPUS = Path(__file__).resolve().parents[1] / "fidelity" / "corpus"
NOW = 1_800_000_000.0


def _artifact(name: str) -> tuple[str, list[str]]:
    meta = json.loads((CORPUS / f"{name}.json").read_text())
    return (CORPUS / f"{name}.txt").read_text(), meta["needles"]


def _counts(**by_kind: float) -> dict[str, tuple[float, float]]:
    return {counter(k, "Bash", "log"): (v, NOW) for k, v in by_kind.items()}


def test_a_count_halves_every_half_life() -> None:
    assert decayed(8.0, NOW, NOW) == 8.0
    assert decayed(8.0, NOW, NOW + HALF_LIFE) == pytest.approx(4.0)
    assert decayed(8.0, NOW, NOW + 3 * HALF_LIFE) == pytest.approx(1.0)
    assert decayed(8.0, NOW, NOW - 100) == 8.0  # a clock behind the writer's never grows it


def test_lossless_once_the_retrievals_cost_more_than_the_compression_saved() -> None:
    few = Learned.of(_counts(c=1, r=1, o=5000, b=1000, a=200), NOW).verdict("Bash", "log")
    assert few is not None and not few.lossless
    assert f"fewer than {MIN_RETRIEVALS:.0f}" in few.why()
    # 10 outputs saved 8,000 tokens; 2 retrievals cost 2,000 + 3,000 re-sent
    rare = Learned.of(_counts(c=10, r=2, o=2000, p=3000, b=10000, a=2000), NOW)
    verdict = rare.verdict("Bash", "log")
    assert verdict is not None and not verdict.lossless
    assert verdict.why() == (
        "default: 2.0 retrievals of 10.0 compressed outputs cost 5,000 tokens (originals "
        "2,000, re-sent requests 3,000) < the 8,000 the compression saved"
    )
    costly = _counts(c=10, r=3, o=3000, p=6000, b=10000, a=2000)
    often = Learned.of(costly, NOW).verdict("Bash", "log")
    assert often is not None and often.lossless
    assert often.why().startswith("lossless: 3.0 retrievals of 10.0 compressed outputs cost 9,000")
    assert Learned.of(costly, NOW).steers() == {"Bash": {"log": Steer(lossless=True)}}


def test_evidence_fades_until_the_decision_is_default_again() -> None:
    counts = _counts(c=10, r=4, o=4000, p=6000, b=10000, a=2000)
    assert Learned.of(counts, NOW).steers()
    later = Learned.of(counts, NOW + 2 * HALF_LIFE)  # 4 retrievals are now 1: too few
    assert later.steers() == {}
    gone = Learned.of(counts, NOW + 20 * HALF_LIFE)
    assert gone.verdicts == {} and len(gone.faded) == len(counts)


def test_a_program_with_evidence_of_its_own_overrides_its_tool() -> None:
    """``Bash`` as a whole is kept whole (its greps were fetched back), but its ``pytest``
    runs, never fetched, keep being compressed; a program without evidence follows Bash."""
    counts = _counts(c=10, r=4, o=4000, p=6000, b=10000, a=2000)
    counts[counter("c", "Bash:pytest", "log")] = (5.0, NOW)
    counts[counter("b", "Bash:pytest", "log")] = (5000.0, NOW)
    counts[counter("a", "Bash:pytest", "log")] = (1000.0, NOW)
    steers = Learned.of(counts, NOW).steers()
    assert steer_for(steers, "Bash", "pytest") == {}
    assert steer_for(steers, "Bash", "grep") == {"log": Steer(lossless=True)}
    assert steer_for(steers, "Read", "") == {}


def test_terms_need_two_wanted_lines_and_are_capped() -> None:
    counts = _counts(c=10, r=2, b=10000, a=2000)
    counts[counter("t", "Bash", "log", "upgrade")] = (3.0, NOW)
    counts[counter("t", "Bash", "log", "purge")] = (1.0, NOW)  # seen once: not yet
    for i in range(20):
        counts[counter("t", "Bash", "log", f"w{i:02d}")] = (2.0, NOW)
    verdict = Learned.of(counts, NOW).verdict("Bash", "log")
    assert verdict is not None
    assert verdict.learned_terms[0] == "upgrade"
    assert "purge" not in verdict.learned_terms
    assert len(verdict.learned_terms) == 12
    assert verdict.as_json()["decision"] == "terms"
    assert "upgrade" in verdict.why()


def test_a_decision_round_trips_and_a_damaged_one_reads_as_default() -> None:
    steer = {"log": Steer(terms=("upgrade",)), "search": Steer(lossless=True)}
    assert decode_steer(encode_steer(steer)) == steer
    assert decode_steer(b"not json") == {}
    assert decode_steer(b"[1, 2]") == {}


def test_wanted_terms_are_words_only_dropped_lines_carry() -> None:
    original = "\n".join(
        [f"2026-12-02 status installed pkg{i}:amd64 1.{i}" for i in range(60)]
        + ["2026-12-02 remove libjxr-tools:amd64 1.2 <none>", "done installing"]
    )
    seen = "\n".join(original.splitlines()[:3]) + "\n[... 59 lines omitted]"
    said = "I see libjxr-tools was removed; the status lines say installed, nothing else."
    terms = wanted_terms(original, seen, said)
    assert "libjxr" in terms or "libjxr-tools" in terms
    assert "status" not in terms and "installed" not in terms  # the seen text has them
    assert wanted_terms(original, original, said) == []  # nothing was dropped
    many = " ".join(f"word{i}" for i in range(40))
    assert len(wanted_terms(original + "\n" + many, seen, many)) <= MAX_WORDS


def test_learned_terms_bring_back_the_hunks_a_diff_dropped() -> None:
    """The real packaging 23.2 -> 24.0 diff without a task: its four needed lines are
    dropped; the words the model used after fetching it, learned, keep them."""
    text, needles = _artifact("b_git_diff_packaging_23.2_24.0")
    pipeline = Pipeline()
    plain = pipeline.compress(text, CompressContext("", PendingWrites()))
    lost = [n for n in needles if n not in plain.output]
    assert lost
    said = "It now uses version.rpartition and rest.split instead of result.append."
    terms = tuple(wanted_terms(text, plain.output, said))
    assert terms
    steered = pipeline.compress(
        text, CompressContext("", PendingWrites(), steer={"diff": Steer(terms=terms)})
    )
    assert [n for n in needles if n not in steered.output] == []
    assert steered.tokens_after < steered.tokens_before  # still compressed


def test_a_lossless_steer_keeps_the_tool_output_whole() -> None:
    text, _ = _artifact("b_dpkg_log_today")
    pipeline = Pipeline()
    plain = pipeline.compress(text, CompressContext("", PendingWrites()))
    assert plain.strategy == "log" and plain.tokens_after < plain.tokens_before / 5
    whole = pipeline.compress(
        text, CompressContext("", PendingWrites(), steer={"log": Steer(lossless=True)})
    )
    assert whole.output == text and whole.strategy == "passthrough"
    other = pipeline.compress(
        text, CompressContext("", PendingWrites(), steer={"search": Steer(lossless=True)})
    )
    assert other.output == plain.output  # a steer for another kind changes nothing
