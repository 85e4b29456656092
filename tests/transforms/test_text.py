"""TextCompressor: repetition only, never an error line, never growth."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.ccr.markers import find_keys, has_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.text import TextCompressor, TextConfig
from headroom.transforms.tokens import estimate_tokens

SENTENCES = [
    "The scheduler assigns each job to the least loaded worker in the pool.",
    "Workers report their queue depth every five seconds over the control channel.",
    "When a worker misses three reports it is marked unhealthy and drained.",
    "Drained workers finish their current job before they are restarted.",
    "Operators can pin a job to a worker with the affinity flag.",
    "The control channel is authenticated with a per-cluster shared key.",
    "Metrics are exported in the Prometheus text format on port 9100.",
    "Configuration is reloaded on SIGHUP without dropping connections.",
]
DISCLAIMER = (
    "This message and any attachments are confidential and intended solely for the "
    "addressee. If you received it by mistake, notify the sender and delete it."
)
ERROR_LINE = "Error: the migration aborted because the lock table was already held."


def doc(seed: int, paragraphs: int = 30) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    for p in range(paragraphs):
        out.extend(rng.sample(SENTENCES, 3))
        if p % 3 == 0:
            out.append(DISCLAIMER)
        out.append("")
    out.insert(10, ERROR_LINE)
    out.insert(40, ERROR_LINE)
    return "\n".join(out)


def big_text(seed: int) -> str:
    return doc(seed, paragraphs=6000)


def test_repeated_lines_fold_but_error_lines_stay() -> None:
    text = doc(1)
    store = PendingWrites()
    res = TextCompressor().compress(text, CompressContext(store=store))
    out = res.output.split("\n")
    assert res.strategy == "text"
    assert out.count(ERROR_LINE) == 2
    assert out.count(DISCLAIMER) == 1
    for s in SENTENCES:
        assert s in out
    assert res.tokens_after < res.tokens_before
    (key,) = find_keys(res.output)
    assert store.get(key) == text.encode()


def test_repeated_paragraphs_become_one_note() -> None:
    para = "\n".join(SENTENCES[:4])
    text = "\n\n".join(["Intro line that is unique to this text.", para, para, para, "End."])
    res = TextCompressor(TextConfig(min_lines=3)).compress(text, CompressContext())
    assert res.output.count(SENTENCES[0]) == 1
    assert "[... 2 repeated paragraphs omitted]" in res.output
    assert not has_marker(res.output)


def test_declines_plain_prose() -> None:
    text = "\n".join(SENTENCES * 1 + ["", "A closing remark."])
    res = TextCompressor().compress(text, CompressContext(store=PendingWrites()))
    assert res.output == text and res.strategy == "passthrough"


def test_deterministic_and_idempotent() -> None:
    text = doc(4)
    a = TextCompressor().compress(text, CompressContext(store=PendingWrites()))
    b = TextCompressor().compress(text, CompressContext(store=PendingWrites()))
    assert a.output == b.output
    assert TextCompressor().compress(a.output, CompressContext()).output == a.output
    plain = TextCompressor().compress(text, CompressContext())
    assert TextCompressor().compress(plain.output, CompressContext()).output == plain.output


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.sampled_from([DISCLAIMER, ERROR_LINE, "", "short"]) | st.text(max_size=80), max_size=60
    ),
    st.booleans(),
)
def test_arbitrary_prose_never_grows_and_keeps_error_lines(parts: list[str], store: bool) -> None:
    text = "\n".join(parts)
    ctx = CompressContext(store=PendingWrites() if store else None)
    res = TextCompressor(TextConfig(min_lines=2)).compress(text, ctx)
    assert estimate_tokens(res.output) <= estimate_tokens(text)
    if ERROR_LINE in text.split("\n"):
        assert res.output.split("\n").count(ERROR_LINE) == text.split("\n").count(ERROR_LINE)


def test_fenced_code_is_never_folded() -> None:
    code = "    result = compute_everything(first_argument, second_argument, third)"
    lines = [
        "Two examples follow, and they share a long line on purpose.",
        "",
        "```python",
        code,
        "print(result)",
        "```",
        "",
        "And the second one:",
        "",
        "```python",
        code,
        "print(result * 2)",
        "```",
        "",
        "The end of this short note.",
    ]
    text = "\n".join(lines)
    res = TextCompressor(TextConfig(min_lines=3)).compress(text, CompressContext())
    assert res.output == text
