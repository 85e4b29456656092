"""The fidelity corpus: real outputs of real programs, each with the lines an engineer needs.

A lost needle fails here (``python -m bench fidelity`` reports the same runs with sizes and
times). Every artifact is also checked for what the corpus promises: the manifest's needles
are whole lines of the artifact, its command and source are recorded, and ``SOURCES.md``
lists it.
"""

from __future__ import annotations

import pytest

from bench import fidelity
from headroom.transforms.pipeline import Pipeline

ARTIFACTS = fidelity.load()
PIPELINE = Pipeline()


def test_the_corpus_is_large_enough_and_covers_many_programs() -> None:
    assert len(ARTIFACTS) >= 30
    assert len({a.kind for a in ARTIFACTS}) >= 12


@pytest.mark.parametrize("artifact", ARTIFACTS, ids=[a.name for a in ARTIFACTS])
def test_manifest_is_honest(artifact: fidelity.Artifact) -> None:
    lines = {line.rstrip() for line in artifact.text.split("\n")}
    assert artifact.needles
    for needle in artifact.needles[: len(artifact.needles) - len(artifact.fragments)]:
        assert needle in lines, f"needle is not a whole line of the artifact: {needle!r}"
    for fragment in artifact.fragments:
        assert any(fragment in line for line in lines), f"fragment not found: {fragment!r}"
    for key in ("command", "source", "question", "user"):
        assert artifact.manifest.get(key), key
    assert f"`{artifact.manifest['artifact']}`" in (fidelity.CORPUS / "SOURCES.md").read_text()


@pytest.mark.parametrize("artifact", ARTIFACTS, ids=[a.name for a in ARTIFACTS])
def test_every_needle_survives_and_nothing_grows(artifact: fidelity.Artifact) -> None:
    outcome = fidelity.run_one(artifact, PIPELINE)
    assert outcome.tokens_out <= outcome.tokens_in
    lost = [artifact.needles[i] for i in outcome.score.lost]
    assert not lost, f"{artifact.manifest['question']}\nlost: {lost}"


def test_scoring_counts_a_lost_needle_as_lost() -> None:
    needles = ["src/a.py:12: error: Incompatible types", '"version": ">=1.0"']
    output = "src/a.py:13: error: other\n[... 40 lines omitted]"
    got = fidelity.score(needles, output)
    assert got.content == [False, False]
    assert got.lost == [0, 1]


def test_scoring_accepts_a_regrouped_row_and_a_table_cell() -> None:
    needles = ["src/a.py:12: error: Incompatible types", '    "version": ">=1.0",']
    output = "src/a.py\n12: error: Incompatible types\n[2]{name:string,version:string}\nx,>=1.0"
    got = fidelity.score(needles, output)
    assert got.verbatim == [True, False]
    assert got.content == [True, True]
