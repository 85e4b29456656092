"""The pipeline's guarantees, checked with the real compressors and with small protocol
objects that misbehave on purpose (growing output, unbacked markers, exceptions)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from headroom.ccr.markers import content_key, find_keys, lines_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.pipeline import PASSTHROUGH, Pipeline
from headroom.transforms.pipeline_config import PipelineConfig
from headroom.transforms.tokens import estimate_tokens
from tests.corpus import corpus

CORPUS = {s.name: s for s in corpus()}
STRICT = PipelineConfig(raise_errors=True)
LOG_TEXT = "\n".join(f"2026-11-21 10:00:{i % 60:02d} INFO step {i} done" for i in range(400))


def _ctx(store: PendingWrites | None = None, query: str = "") -> CompressContext:
    return CompressContext(query=query, store=store)


@dataclass
class Scripted:
    """A compressor double: returns ``make(text, ctx)`` and records what it was given."""

    make: object
    name: str = "scripted"
    calls: list[CompressContext] = field(default_factory=list)

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        self.calls.append(ctx)
        out = self.make(text, ctx)
        return CompressResult(out, self.name, estimate_tokens(text), estimate_tokens(out))


def _offload(text: str, ctx: CompressContext) -> str:
    key = ctx.store.put(text)
    ctx.store.put("an original the output never names")
    return "INFO first line\n" + lines_marker(key, 400, 1)


def test_source_code_html_and_numbered_source_pass_through():
    pipeline = Pipeline(STRICT)
    for name in ("source_code", "html_page", "read_source"):
        text = CORPUS[name].text
        result, stats = pipeline.compress_with_stats(text, _ctx(PendingWrites()))
        assert result.output == text and result.strategy == PASSTHROUGH, name
    assert stats.reason == "numbered_read"


def test_text_with_a_marker_is_left_alone():
    text = LOG_TEXT + "\n" + lines_marker("a" * 24, 10, 2)
    result, stats = Pipeline(STRICT).compress_with_stats(text, _ctx(PendingWrites()))
    assert result.output == text and stats.reason == "already_compressed"


def test_output_that_grows_is_refused():
    grow = Scripted(lambda text, ctx: text + "\nextra words that make it longer")
    pipeline = Pipeline(STRICT, compressors={"log": grow})
    result = pipeline.compress(LOG_TEXT, _ctx(PendingWrites()))
    assert grow.calls and result.output == LOG_TEXT and result.strategy == PASSTHROUGH
    assert result.tokens_after == result.tokens_before


def test_only_named_originals_reach_the_store():
    store = PendingWrites()
    pipeline = Pipeline(STRICT, compressors={"log": Scripted(_offload)})
    result = pipeline.compress(LOG_TEXT, _ctx(store))
    assert result.keys == (content_key(LOG_TEXT),)
    assert list(store.items) == [content_key(LOG_TEXT)]
    assert store.get(result.keys[0]) == LOG_TEXT.encode()


def test_marker_naming_an_unstored_key_is_refused():
    liar = Scripted(lambda text, ctx: "short\n" + lines_marker("b" * 24, 400, 1))
    store = PendingWrites()
    result, stats = Pipeline(compressors={"log": liar}).compress_with_stats(LOG_TEXT, _ctx(store))
    assert result.output == LOG_TEXT and stats.reason == "unbacked_marker" and stats.errors
    assert len(store) == 0
    with pytest.raises(RuntimeError, match="never stored"):
        Pipeline(STRICT, compressors={"log": liar}).compress(LOG_TEXT, _ctx(store))
    no_store = PipelineConfig(enable_ccr_marker=False)
    assert (
        Pipeline(no_store, compressors={"log": liar}).compress(LOG_TEXT, _ctx()).output == LOG_TEXT
    )


def test_no_store_means_no_store_for_compressors():
    spy = Scripted(lambda text, ctx: text[: len(text) // 2])
    Pipeline(STRICT, compressors={"log": spy}).compress(LOG_TEXT, _ctx(None))
    no_marker = PipelineConfig(enable_ccr_marker=False, raise_errors=True)
    Pipeline(no_marker, compressors={"log": spy}).compress(LOG_TEXT, _ctx(PendingWrites()))
    assert [c.store for c in spy.calls] == [None, None]


def test_compressor_exception_costs_the_saving_not_the_request():
    def boom(text: str, ctx: CompressContext) -> str:
        raise RuntimeError("bug")

    pipeline = Pipeline(compressors={"log": Scripted(boom)})
    result, stats = pipeline.compress_with_stats(LOG_TEXT, _ctx(PendingWrites()))
    assert result.output == LOG_TEXT and stats.errors == ["log: RuntimeError: bug"]
    with pytest.raises(RuntimeError):
        Pipeline(STRICT, compressors={"log": Scripted(boom)}).compress(LOG_TEXT, _ctx())


def test_small_sections_are_not_compressed():
    spy = Scripted(lambda text, ctx: "x")
    config = PipelineConfig(min_tokens_log=10_000, raise_errors=True)
    result = Pipeline(config, compressors={"log": spy}).compress(LOG_TEXT, _ctx())
    assert spy.calls == [] and result.output == LOG_TEXT


def test_parsed_json_is_handed_over_when_the_compressor_takes_it():
    seen = []

    class Parsed(Scripted):
        def compress_parsed(self, text, value, ctx):
            seen.append(value)
            return self.compress(text, ctx)

    rows = [{"id": i, "v": "x" * 20} for i in range(50)]
    crusher = Parsed(lambda text, ctx: "[]")
    Pipeline(STRICT, compressors={"smart_crusher": crusher}).compress(json.dumps(rows), _ctx())
    assert seen == [rows]


def test_unknown_override_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy"):
        Pipeline(compressors={"xml": Scripted(lambda t, c: t)})


def test_lossy_off_keeps_only_lossless_routes():
    text = CORPUS["json_db_rows"].text
    pipeline = Pipeline(PipelineConfig(lossy=False, raise_errors=True))
    store = PendingWrites()
    result = pipeline.compress(text, _ctx(store))
    assert result.keys == () and len(store) == 0
    assert result.tokens_after < result.tokens_before  # the table form still applies
    for row in json.loads(text):  # lossless: every row is still there
        assert str(row["order_id"]) in result.output
    log = CORPUS["log_service"].text
    assert pipeline.compress(log, _ctx(store)).output == log


def test_numbered_log_read_keeps_line_numbers_on_kept_lines():
    sample = CORPUS["read_log"]
    store = PendingWrites()
    result = Pipeline(STRICT).compress(sample.text, _ctx(store))
    assert result.tokens_after < result.tokens_before / 5
    for item in sample.must_keep:  # numbered lines, verbatim with their numbers
        assert item in result.output
    # Retrieval gives back exactly what the tool returned, numbers included.
    assert result.keys and [store.get(k) for k in result.keys] == [sample.text.encode()]
    assert list(store.items) == list(result.keys)


def test_mixed_text_keeps_code_fence_verbatim_and_compresses_the_rest():
    sample = CORPUS["mixed"]
    result, stats = Pipeline(STRICT).compress_with_stats(sample.text, _ctx(PendingWrites()))
    assert stats.sections > 3 and result.strategy.startswith("mixed:")
    start = sample.text.index("```python")
    end = sample.text.index("```\n", start + 3) + 4
    assert sample.text[start:end] in result.output
    assert result.tokens_after < result.tokens_before / 2


def test_stats_record_stage_timings():
    _, stats = Pipeline(STRICT).compress_with_stats(
        CORPUS["log_service"].text, _ctx(PendingWrites())
    )
    assert stats.kind == "log" and stats.strategy != PASSTHROUGH
    assert stats.detect_ms > 0 and stats.compress_ms > 0 and stats.total_ms >= stats.compress_ms


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_is_deterministic_and_idempotent(name):
    text = CORPUS[name].text
    pipeline = Pipeline(STRICT)
    first_store, second_store = PendingWrites(), PendingWrites()
    first = pipeline.compress(text, _ctx(first_store, CORPUS[name].query))
    second = Pipeline(STRICT).compress(text, _ctx(second_store, CORPUS[name].query))
    assert first == second and first_store.items == second_store.items
    again = pipeline.compress(first.output, _ctx(PendingWrites(), CORPUS[name].query))
    assert again.output == first.output
    assert set(find_keys(first.output)) == set(first.keys) <= set(first_store.items)


def test_one_instance_serves_several_threads():
    from concurrent.futures import ThreadPoolExecutor

    pipeline = Pipeline(STRICT)
    samples = [CORPUS[n] for n in ("json_api_rows", "log_service", "git_diff", "grep_results")]

    def run(sample):
        return pipeline.compress(sample.text, _ctx(PendingWrites(), sample.query)).output

    expected = [run(s) for s in samples]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(run, samples * 3))
    assert outputs == expected * 3


def test_json_with_a_trailer_line_is_compressed_and_stays_compressed():
    rows = [{"id": i, "state": "error" if i == 37 else "ok", "msg": f"m{i}"} for i in range(300)]
    text = json.dumps(rows, indent=2) + "\n(showing 300 of 512 rows)\n"
    store = PendingWrites()
    result = Pipeline(STRICT).compress(text, _ctx(store))
    assert result.strategy == "smart_crusher" and result.tokens_after < result.tokens_before / 3
    assert result.output.endswith("\n(showing 300 of 512 rows)\n")
    again = Pipeline(STRICT).compress(result.output, _ctx(PendingWrites()))
    assert again.output == result.output


def test_codex_header_stays_verbatim_and_retrieval_gives_the_whole_output() -> None:
    log = "\n".join(
        [
            f"2026-12-02 03:50:{i % 60:02d} INFO worker handled job {i} in {i % 7}ms"
            for i in range(300)
        ]
        + ["2026-12-02 03:55:00 ERROR worker lost db-7.internal:5432 (exit code 3)"]
    )
    header = (
        "Chunk ID: 3f9a1c\nWall time: 2.4170 seconds\nProcess exited with code 1\n"
        "Original token count: 9000\nOutput:\n"
    )
    store = PendingWrites()
    res = Pipeline().compress(header + log, _ctx(store))
    assert res.output.startswith(header)
    assert "ERROR worker lost db-7.internal:5432 (exit code 3)" in res.output
    assert res.tokens_after < res.tokens_before
    (key,) = res.keys
    assert store.get(key) == (header + log).encode()
