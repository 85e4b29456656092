"""Every must-keep item of the seeded corpus survives the pipeline.

The rule: an item survives verbatim in the output, or the output carries a marker
whose key retrieves, from the store the pipeline wrote to, an original that contains it.
A second, stricter check asks for verbatim survival of the signal items (error lines,
anomalous records, changed diff lines, the searched-for hit) — the reason to compress
selectively at all — with a store and without one (then no marker may appear either).
"""

from __future__ import annotations

import pytest

from headroom.ccr.markers import find_keys
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig
from tests.corpus import corpus

CORPUS = corpus()
_PIPELINE: list[Pipeline] = []


def _compress(sample, with_store: bool = True):
    if not _PIPELINE:
        _PIPELINE.append(Pipeline(PipelineConfig(raise_errors=True)))
    store = PendingWrites() if with_store else None
    result = _PIPELINE[0].compress(sample.text, CompressContext(query=sample.query, store=store))
    return result, store


@pytest.mark.parametrize("sample", CORPUS, ids=lambda s: s.name)
def test_must_keep_is_in_output_or_retrievable(sample):
    result, store = _compress(sample)
    keys = find_keys(result.output)
    originals = [store.get(k) for k in keys]
    assert None not in originals, "a marker names a key the store does not hold"
    texts = [o.decode("utf-8") for o in originals if o is not None]
    for item in sample.must_keep:
        assert item in result.output or any(item in t for t in texts), item


@pytest.mark.parametrize("with_store", [True, False], ids=["store", "no-store"])
@pytest.mark.parametrize("sample", CORPUS, ids=lambda s: s.name)
def test_signal_items_survive_verbatim(sample, with_store):
    result, _ = _compress(sample, with_store)
    lost = [item for item in sample.must_keep if item not in result.output]
    assert lost == [], f"{sample.name} ({result.strategy}) dropped {lost}"
    if not with_store:
        assert find_keys(result.output) == [] and result.keys == ()


@pytest.mark.parametrize("sample", CORPUS, ids=lambda s: s.name)
def test_compression_happens_where_it_should(sample):
    result, _ = _compress(sample)
    assert result.tokens_after <= result.tokens_before
    if sample.kind in ("source_code", "html") or sample.name == "read_source":
        assert result.output == sample.text
    elif sample.kind in ("json_array", "json_object", "log", "diff", "search", "mixed"):
        assert result.tokens_after < result.tokens_before, "nothing saved"
