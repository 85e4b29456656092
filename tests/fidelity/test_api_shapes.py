"""The fidelity corpus through every API's request shape compresses to the same text: an
output is kept or dropped for what it says, not for which API carried it (``python -m
bench api_shapes`` reports the totals)."""

from __future__ import annotations

import pytest

from bench import api_shapes, fidelity
from headroom.providers.apis import ANTHROPIC
from headroom.providers.base import Provider
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig

ARTIFACTS = fidelity.load()
PIPELINE = Pipeline(PipelineConfig())


@pytest.mark.parametrize(
    "provider", [p for p, _ in api_shapes.SHAPES if p is not ANTHROPIC], ids=lambda p: p.name
)
def test_each_api_reads_back_what_the_anthropic_shape_gives(provider: Provider) -> None:
    differ = []
    sent_chars = kept_chars = 0
    for artifact in ARTIFACTS:
        ours, _, _ = api_shapes.compressed_output(provider, artifact, PIPELINE)
        reference, _, _ = api_shapes.compressed_output(ANTHROPIC, artifact, PIPELINE)
        if ours != reference:
            differ.append(artifact.name)
        sent = fidelity.tool_result(artifact)
        assert len(ours) <= len(sent), artifact.name
        sent_chars += len(sent)
        kept_chars += len(ours)
    assert differ == []
    assert kept_chars < sent_chars / 2  # the corpus did compress through this shape
