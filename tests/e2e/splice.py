"""Check that the proxy changed only what it may: tool-output strings and one tool added.

``splice(sent, forwarded, originals)`` walks both bodies side by side. Between the places
where the client's body holds an original tool output, the forwarded bytes must be the
client's bytes exactly (key order, whitespace, escapes, signed thinking blocks), except for
at most one insertion: the retrieval tool appended to ``tools`` (or a new ``tools`` member).
At each original's place the forwarded body may hold any JSON string; those are returned,
decoded, for the test to judge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from headroom.ccr.markers import find_keys
from tests.e2e.traffic import Output, tokens

RETRIEVE = "headroom_retrieve"
_DECODER = json.JSONDecoder()


@dataclass
class Spliced:
    values: list[str]  # the forwarded string at each original's place, in body order
    inserted: list[Any] = field(default_factory=list)  # tool definitions the proxy added


def splice(sent: bytes, forwarded: bytes, originals: Sequence[str]) -> Spliced:
    src, dst = sent.decode(), forwarded.decode()
    places = []
    for original in originals:
        found = [t.decode() for t in tokens(original) if t.decode() in src]
        assert found, "original not in the sent body"
        tok = found[0]
        at = src.find(tok)
        assert src.find(tok, at + 1) < 0, "original occurs twice; the test body is ambiguous"
        places.append((at, tok))
    places.sort()
    out = Spliced([])
    pos_s = pos_d = 0
    for at, tok in places:
        pos_d = _same(src[pos_s:at], dst, pos_d, out)
        assert dst.startswith('"', pos_d), (
            f"no string at the tool output's place: {dst[pos_d : pos_d + 80]!r}"
        )
        value, pos_d = _DECODER.raw_decode(dst, pos_d)
        out.values.append(value)
        pos_s = at + len(tok)
    pos_d = _same(src[pos_s:], dst, pos_d, out)
    assert pos_d == len(dst), f"forwarded body has extra bytes: {dst[pos_d : pos_d + 200]!r}"
    return out


def _same(segment: str, dst: str, pos: int, out: Spliced) -> int:
    """Match ``segment`` at ``dst[pos:]``, allowing one insertion per body; new position."""
    if dst.startswith(segment, pos):
        return pos + len(segment)
    k = _common_prefix(segment, dst, pos)
    assert not out.inserted, (
        f"a second change in the body near {dst[pos + k - 60 : pos + k + 60]!r}"
    )
    at = pos + k
    out.inserted.extend(_insertion(dst, at))
    end = _insertion_end(dst, at)
    rest = segment[k:]
    assert dst.startswith(rest, end), (
        f"forwarded body differs from the client's near {segment[max(0, k - 80) : k + 80]!r}: "
        f"{dst[max(0, at - 80) : at + 160]!r}"
    )
    return end + len(rest)


def _common_prefix(segment: str, dst: str, pos: int) -> int:
    lo, hi = 0, min(len(segment), len(dst) - pos)
    while lo < hi:  # binary search on slice equality: fast on 100 KB segments
        mid = (lo + hi + 1) // 2
        if dst[pos : pos + mid] == segment[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _insertion(dst: str, at: int) -> list[Any]:
    """What was inserted at ``at``: ``,{tool}`` in an array or ``,"tools":[…]`` member."""
    assert dst.startswith(",", at), f"unexpected change: {dst[at - 80 : at + 120]!r}"
    value, end = _DECODER.raw_decode(dst, at + 1)
    if isinstance(value, dict):
        return [value]
    assert value == "tools" and dst.startswith(":", end), f"unexpected insertion {value!r}"
    tools, _ = _DECODER.raw_decode(dst, end + 1)
    return list(tools)


def _insertion_end(dst: str, at: int) -> int:
    _, end = _DECODER.raw_decode(dst, at + 1)
    if dst.startswith(":", end):
        _, end = _DECODER.raw_decode(dst, end + 1)
    return end


# -------------------------------------------------------------------- judging the values


def assert_compressed(value: str, output: Output) -> list[str]:
    """Shorter, must-keep lines verbatim, at least one marker; returns the marker keys."""
    assert len(value) < len(output.text), "tool output was not compressed"
    for line in output.keep:
        assert line in value, f"must-keep line lost: {line!r}"
    keys = find_keys(value)
    assert keys, f"compressed without a retrievable marker: {value[-300:]!r}"
    return keys


def retrieve(proxy_url: str, key: str) -> str:
    got = httpx.get(f"{proxy_url}/v1/retrieve/{key}", timeout=10, trust_env=False)
    assert got.status_code == 200, (key, got.status_code, got.text[:300])
    return got.json()["original"]


def assert_originals_back(proxy_url: str, keys: Sequence[str], original: str) -> None:
    """Every key retrieves: a line marker gives the exact original; a rows marker the
    original array (equal as JSON)."""
    for key in keys:
        got = retrieve(proxy_url, key)
        if got == original:
            continue
        try:
            same = json.loads(got) == json.loads(original)
        except ValueError:
            same = False
        assert same, f"hash {key} gives other content: {got[:120]!r} for {original[:120]!r}"


def retrieve_tools(tools: Any, api: str) -> list[dict[str, Any]]:
    """The entries of a ``tools`` list naming the retrieval tool, in the API's spelling."""
    out = []
    for tool in tools if isinstance(tools, list) else []:
        name = tool.get("function", {}).get("name") if api == "chat" else tool.get("name")
        if name == RETRIEVE:
            out.append(tool)
    return out


def assert_retrieve_tool(tool: dict[str, Any], api: str) -> None:
    """One required string parameter ``hash``, in the API's own tool format."""
    if api == "anthropic":
        schema = tool["input_schema"]
    elif api == "chat":
        assert tool["type"] == "function"
        schema = tool["function"]["parameters"]
    else:
        assert tool["type"] == "function"
        schema = tool["parameters"]
    assert schema["type"] == "object"
    assert schema["required"] == ["hash"]
    assert list(schema["properties"]) == ["hash"]
    assert schema["properties"]["hash"]["type"] == "string"
