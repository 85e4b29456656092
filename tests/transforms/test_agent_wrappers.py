"""Agents wrap tool outputs; the wrapper stays verbatim and retrieval returns the client's bytes.

Claude Code's ``Read`` numbers every line (``     1\\tline`` or ``     1→line``); the
compressors see the file without the numbers, but what a marker names must be the exact
bytes the client sent. Checked on every real artifact of the fidelity corpus, read as a
numbered file, and on the plain artifacts for the rule beneath it: every hash the model
can see names something stored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from headroom.ccr.markers import UNITS, find_keys, lines_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.pipeline import PASSTHROUGH, Pipeline
from headroom.transforms.pipeline_config import PipelineConfig
from headroom.transforms.sections import split_json_header
from headroom.transforms.wrappers import split_wrapper

CORPUS = sorted((Path(__file__).parents[1] / "fidelity" / "corpus").glob("*.txt"))
PIPELINE = Pipeline(PipelineConfig(raise_errors=True))
# Looser than find_keys on purpose: anything that looks like a hash to a model.
_ANY_HASH = re.compile(r"(?:hash=|<<ccr:)([0-9a-f]{24})")


def _numbered(text: str, separator: str) -> str:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return "\n".join(f"{i + 1:>6}{separator}{line}" for i, line in enumerate(lines))


@pytest.mark.parametrize("separator", ["\t", "\u2192"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_a_numbered_read_retrieves_exactly_what_the_client_sent(path: Path, separator: str) -> None:
    text = _numbered(path.read_text(encoding="utf-8", errors="replace"), separator)
    store = PendingWrites()
    result = PIPELINE.compress(text, CompressContext(store=store))
    if result.strategy == PASSTHROUGH:
        return
    assert [store.get(k) for k in result.keys] == [text.encode()] * len(result.keys)
    last = result.output.rstrip("\n").rsplit("\n", 1)[-1]
    assert not re.fullmatch(r" *\d+(?:\t|\u2192)\s*", last), f"bare number at the end: {last!r}"


@pytest.mark.parametrize("around", [("", "\n"), ("\n", "\n\n  ")], ids=["newline", "spaces"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_a_retrieval_gives_back_the_whitespace_around_an_output(
    path: Path, around: tuple[str, str]
) -> None:
    """Outputs end with a newline (a program's last line): a marker for the whole output
    names it with that newline, not the stripped text a compressor saw."""
    text = around[0] + path.read_text(encoding="utf-8", errors="replace").strip() + around[1]
    store = PendingWrites()
    result = PIPELINE.compress(text, CompressContext(store=store))
    originals = [store.get(k) for k in result.keys]
    assert None not in originals
    assert text.strip().encode() not in originals


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_every_hash_the_model_sees_is_stored(path: Path) -> None:
    """A marker find_keys does not recognise is never written to the store (text tables
    said "rows", which it did not know): the model would retrieve nothing."""
    store = PendingWrites()
    result = PIPELINE.compress(
        path.read_text(encoding="utf-8", errors="replace"), CompressContext(store=store)
    )
    shown = _ANY_HASH.findall(result.output)
    assert set(shown) == set(find_keys(result.output)) == set(result.keys)
    assert all(store.get(k) is not None for k in shown)


def test_a_line_marker_only_counts_units_find_keys_knows() -> None:
    for unit in UNITS:
        marker = lines_marker("0" * 24, 10, 2, unit)
        assert find_keys(marker) == ["0" * 24]
    with pytest.raises(ValueError):
        lines_marker("0" * 24, 10, 2, "records")


def _persisted(full: str, path: str) -> str:
    """Claude Code 2.1's stand-in for a result over its size limit (the format and the
    2,000-character preview cut at a line end, as its bundled code builds them)."""
    limit = 2000
    if len(full) <= limit:
        preview, more = full, False
    else:
        cut = full[:limit].rfind("\n")
        preview, more = full[: cut if cut > limit * 0.5 else limit], True
    return (
        "<persisted-output>\n"
        f"Output too large ({len(full) / 1024:.1f}KB). Full output saved to: {path}\n\n"
        "Preview (first 2KB):\n" + preview + ("\n...\n" if more else "\n") + "</persisted-output>"
    )


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_a_persisted_output_preview_keeps_its_frame(path: Path) -> None:
    text = _persisted(
        path.read_text(encoding="utf-8", errors="replace"),
        "/home/dev/.claude/projects/-repo/0b1c/tool-results/toolu_01ABC.txt",
    )
    header, payload, trailer = split_wrapper(text)
    assert header and trailer and header + payload + trailer == text
    store = PendingWrites()
    result = PIPELINE.compress(text, CompressContext(store=store))
    assert result.output.startswith(header) and result.output.endswith(trailer)
    assert [store.get(k) for k in result.keys] == [text.encode()] * len(result.keys)


_NPM = CORPUS[0].parent / "b_npm_query_all_express"
# Response headers as ``curl -sS -i`` printed them for this file served by
# ``python -m http.server`` here (CRLF line ends, then a blank line, then the body).
_CURL_HEAD = (
    "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.7\r\n"
    "Date: Wed, 02 Dec 2026 13:54:41 GMT\r\nContent-type: application/json\r\n"
    "Content-Length: 155686\r\nLast-Modified: Wed, 02 Dec 2026 13:54:40 GMT\r\n\r\n"
)


@pytest.mark.parametrize("header", ["Fetching installed packages...\n", _CURL_HEAD])
def test_json_after_a_header_is_compressed_as_json(header: str) -> None:
    """A status line or HTTP headers in front of a JSON document: the JSON compressor takes
    the document (before, the whole text went to the line compressor, which dropped the one
    record with a different license), and the header stays as it was."""
    facts = json.loads(_NPM.with_suffix(".json").read_text(encoding="utf-8"))
    text = header + _NPM.with_suffix(".txt").read_text(encoding="utf-8")
    store = PendingWrites()
    result = PIPELINE.compress(text, CompressContext(query=facts["question"], store=store))
    assert result.strategy == "smart_crusher" and result.output.startswith(header)
    compact = result.output.replace('": ', '":').replace(", ", ",")
    for needle in facts["needles"]:
        assert needle.strip().rstrip(",").replace('": ', '":') in compact, needle
    # The marker names the document itself, byte for byte as the client sent it.
    (stored,) = [store.get(k) for k in result.keys]
    assert stored == text[len(header) :].strip().encode()


def test_a_log_of_json_lines_after_a_header_stays_one_log() -> None:
    lines = [json.dumps({"level": "info", "n": i, "msg": f"step {i} done"}) for i in range(400)]
    text = "starting worker\n" + "\n".join(lines)
    assert split_json_header(text) is None
