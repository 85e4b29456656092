"""Rounds the proxy answered itself, put back into the client's later requests.

When the model calls ``headroom_retrieve`` the proxy answers and asks the upstream again, so
the conversation the model had holds turns the client never saw: the model's turn with our
call, the tool result, and then the rest of its answer. The client's next request carries
only what it was shown (the rounds' visible content merged into one answer). Left so, the
model loses what it fetched, and the provider's prompt cache misses: the prefix it cached
held the rounds. So the proxy records, under a key of the answer as the client saw it, the
history elements the upstream saw in its place (serialised exactly as they were sent), and
when a later request carries that answer, puts them back where it stands.

The key hashes the visible words of the answer (its text parts and call ids, whitespace
removed) and those of the element before it: what a client keeps when it echoes an answer,
however it re-serialises it; the element before ties the answer to its place in one
conversation, so the same short answer in another conversation does not match.

A record holds no originals: each tool result that was an original names its CCR key and is
read again from the store when the record is used (the read keeps it warm there); a result
that was not one (a "not found" sentence) is recorded as its text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from headroom.jsondoc import JsonDoc, Span
from headroom.providers.base import Json, Plan, Provider, Results

PLACEHOLDER = "\x00headroom-result-{}\x00"
_OUTPUT_TYPES = frozenset({"tool_result", "function_call_output", "custom_tool_call_output"})
_TEXT_TYPES = frozenset({None, "text", "input_text", "output_text"})
_RESULT_IDS = ("tool_use_id", "tool_call_id", "call_id")


@dataclass(frozen=True)
class Served:
    """One round as the upstream saw it: the model's answer (with our calls), the results
    the proxy gave those calls (call id, text) in order, and for each result the CCR key
    whose original it is (None when the text is a sentence of ours)."""

    response: Json
    results: Results
    keys: tuple[str | None, ...]


@dataclass(frozen=True)
class Resolved:
    """A record with its tool results read back: the history elements that replace the
    answer (JSON text, comma-joined) and the results owed to calls of its last round
    (placed in the client's next turn)."""

    run: str
    after: list[Json]


# ---------------------------------------------------------------- keys


def _collect(value: Any, texts: list[str], ids: list[str]) -> None:
    """The visible words of a history element: text parts (not thoughts, not tool outputs)
    and call ids, each kind in document order. The common block types are read directly;
    every request computes this for each answer of its history."""
    if type(value) is list:
        for item in value:
            _collect(item, texts, ids)
        return
    if type(value) is not dict:
        return
    kind = value.get("type")
    if kind in _TEXT_TYPES and kind is not None:
        text = value.get("text")
        if isinstance(text, str):
            texts.append(text)
        return
    if kind == "tool_use" or kind == "function":  # an Anthropic block, a Chat tool call
        ids.append(str(value.get("id")))
        return
    if kind in _OUTPUT_TYPES or kind == "function_call" or value.get("role") == "tool":
        # an output (the proxy may have compressed it) or a call: its ids identify it
        ids.extend(value[k] for k in _RESULT_IDS if isinstance(value.get(k), str))
        return
    _collect_other(value, kind, texts, ids)


def _collect_other(value: Json, kind: Any, texts: list[str], ids: list[str]) -> None:
    """Messages, turns and parts of no common block type (Gemini parts have none)."""
    if "function" in value and isinstance(value.get("id"), str):
        ids.append(value["id"])  # a Chat tool call echoed without its "type"
        return
    for name in ("functionCall", "functionResponse", "function_call", "function_response"):
        inner = value.get(name)
        if isinstance(inner, dict):
            ids.append(str(inner.get("id") or inner.get("name") or ""))
            return
    text = value.get("text")
    if isinstance(text, str) and kind is None and not value.get("thought"):
        texts.append(text)
    content = value.get("content")
    if isinstance(content, str):
        texts.append(content)
    for name in ("content", "parts", "tool_calls"):
        nested = value.get(name)
        if type(nested) is list:
            _collect(nested, texts, ids)


def words(elements: list[Any]) -> str:
    texts: list[str] = []
    ids: list[str] = []
    _collect(elements, texts, ids)
    return "".join("".join(texts).split()) + "\x1f" + "".join("".join(ids).split())


def context_of(items: Any) -> str:
    """The words of the element a request's history ends with, as the client sent it (a
    bare string input is one user message): what ties an answer to it to its place."""
    if isinstance(items, str):
        return words([{"role": "user", "content": items}])
    return words([items[-1]]) if isinstance(items, list) and items else ""


def turn_key(provider: Provider, context: str, run: list[Any]) -> str | None:
    """The key of an answer run after an element of words ``context``; None when the run
    shows nothing to recognise it by."""
    shown = words(run)
    if shown == "\x1f":
        return None
    # The conversation's format, not the endpoint: a Gemini turn answered by a stream is
    # echoed to generateContent as readily as to streamGenerateContent.
    api = type(provider.shape).__name__
    raw = "\x1e".join((api, context, shown)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]


def answer_runs(provider: Provider, items: list[Any]) -> list[tuple[int, int, str]]:
    """(start, end, key) of each run of consecutive elements the model wrote."""
    shape = provider.shape
    runs: list[tuple[int, int, str]] = []
    i = 0
    while i < len(items):
        if not (isinstance(items[i], dict) and shape.is_answer(items[i])):
            i += 1
            continue
        end = i + 1
        while end < len(items) and isinstance(items[end], dict) and shape.is_answer(items[end]):
            end += 1
        key = turn_key(provider, words([items[i - 1]]) if i else "", items[i:end])
        if key is not None:
            runs.append((i, end, key))
        i = end
    return runs


# ---------------------------------------------------------------- records


def record_for(
    provider: Provider,
    context: str,
    rounds: list[Served],
    final: Json,
    last: Served | None,
) -> tuple[str, bytes] | None:
    """The key and record of an answer that took ``rounds`` the proxy served, to a request
    whose history ended with an element of words ``context`` (``context_of``). ``final``: the
    last answer (our calls in it); ``last``: its calls of ours, answered now because the
    client's own calls stand beside them (None: the client gets ``final`` without them)."""
    shape = provider.shape
    texts: list[list[str | None]] = []

    def held(served: Served) -> Results:
        out: Results = []
        for (call_id, text), key in zip(served.results, served.keys, strict=True):
            out.append((call_id, PLACEHOLDER.format(len(texts))))
            texts.append([key, None] if key is not None else [None, text])
        return out

    run: list[Json] = []
    for served in rounds:
        run += shape.follow_up(served.response, held(served))
    after: list[Json] = []
    if last is None:
        run += shape.answer_elements(shape.strip_calls(final))
    else:
        elements = shape.follow_up(last.response, held(last))
        shown = len(shape.answer_elements(last.response))
        run, after = run + elements[:shown], elements[shown:]
    visible = [e for s in rounds for e in shape.answer_elements(shape.strip_calls(s.response))]
    visible += shape.answer_elements(shape.strip_calls(final))
    key = turn_key(provider, context, visible)
    if key is None:
        return None
    return key, orjson.dumps({"run": run, "after": after, "texts": texts})


def originals_of(record: bytes) -> list[str]:
    """The CCR keys a record needs read back."""
    return [key for key, _ in orjson.loads(record)["texts"] if key is not None]


def resolve(record: bytes, originals: Mapping[str, str]) -> Resolved | None:
    """The record with its texts filled in; None when an original it names is gone."""
    data = orjson.loads(record)
    texts: list[str] = []
    for key, text in data["texts"]:
        value = originals.get(key) if key is not None else text
        if value is None:
            return None
        texts.append(value)
    run = [_filled(e, texts) for e in data["run"]]
    after = [_filled(e, texts) for e in data["after"]]
    return Resolved(_joined(run), after)


def _filled(value: Any, texts: list[str]) -> Any:
    if isinstance(value, str) and value.startswith("\x00headroom-result-"):
        return texts[int(value[len("\x00headroom-result-") : -1])]
    if isinstance(value, list):
        return [_filled(v, texts) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, texts) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- restoring


Where = frozenset[tuple[str | int, ...]]
"""Paths of what was put back (history elements, or the first parts of one): the outputs
under them are the originals the model fetched, never compressed again."""


def restore(
    provider: Provider, body: bytes, payload: Json, found: Mapping[str, Resolved]
) -> tuple[bytes, int, Where, Json]:
    """The body with each recognised answer replaced by the rounds the upstream saw; how
    many were put back, and where; and the payload edited the same way (what parsing the
    new body would give, without parsing it all again). The same body and payload objects
    when none applies."""
    key = provider.shape.history_key
    items = payload.get(key)
    unchanged: tuple[bytes, int, Where, Json] = body, 0, frozenset(), payload
    if not found or not isinstance(items, list):
        return unchanged
    runs = [(s, e, found[k]) for s, e, k in answer_runs(provider, items) if k in found]
    if not runs:
        return unchanged
    plans = [_results_plan(provider, items, end, resolved.after) for _, end, resolved in runs]
    wanted: list[tuple[str | int, ...]] = [path for plan in plans for path, _, _ in plan]
    for start, end, _ in runs:
        wanted += [(key, start), (key, end - 1)]
    doc = JsonDoc(body)
    spans = doc.spans(wanted)
    put_back: set[tuple[str | int, ...]] = set()
    edited = list(items)
    shift = 0  # elements the replacements so far added before the next run
    field = provider.shape.results_field
    for (start, end, resolved), plan in zip(runs, plans, strict=True):
        first, last = spans.get((key, start)), spans.get((key, end - 1))
        if first is None or last is None or any(path not in spans for path, _, _ in plan):
            return unchanged
        doc.replace(Span(first.start, last.end), resolved.run)
        for path, where, text in plan:
            at = spans[path]
            if where == "after":
                doc.insert(at.end, "," + text)
            else:
                doc.insert(at.start, text + ",")
        elements = orjson.loads("[" + resolved.run + "]")
        if _after(plan):
            elements += resolved.after
        edited[start + shift : end + shift] = elements
        put_back |= {(key, start + shift + j) for j in range(len(elements))}
        shift += len(elements) - (end - start)
        if plan and not _after(plan) and field is not None:
            parts = [p for e in resolved.after for p in e.get(field) or []]
            nxt = edited[end + shift]
            edited[end + shift] = {**nxt, field: [*parts, *nxt[field]]}
            put_back |= {(key, end + shift, field, j) for j in range(len(parts))}
    return doc.render(), len(runs), frozenset(put_back), {**payload, key: edited}


def _after(plan: Plan) -> bool:
    return any(where == "after" for _, where, _ in plan)


def _results_plan(provider: Provider, items: list[Any], end: int, after: list[Json]) -> Plan:
    """Where results owed to the run's last calls go: the API's own rule for the turn that
    answers calls (first in the next user turn's parts, or right after the run)."""
    if not after:
        return []
    key, field = provider.shape.history_key, provider.shape.results_field
    nxt = items[end] if end < len(items) else None
    if field is not None and isinstance(nxt, dict) and not provider.shape.is_answer(nxt):
        parts = nxt.get(field)
        if isinstance(parts, list) and parts:
            inner = [p for e in after for p in e.get(field) or []]
            return [((key, end, field, 0), "before", _joined(inner))]
    return [((key, end - 1), "after", _joined(after))]


def _joined(elements: list[Any]) -> str:
    return ",".join(orjson.dumps(e).decode() for e in elements)
