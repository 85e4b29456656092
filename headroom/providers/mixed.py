"""Turns where the model called ``headroom_retrieve`` and the client's own tools together.

The client must get its own calls (it has to run them) and never ours. So the proxy answers
ours itself, sends the client the turn without them, and remembers the removed calls with
their results, keyed by the client's call ids. When the client's next request carries that
turn back (recognised by those ids), the removed calls and their results are put back into
the history at the same place, so the provider sees the conversation the model actually
had — its retrieval answered — and the bytes put back are the same on every later turn.

The memory is per process, bounded and time-limited. A worker that did not see the turn
(or a record that aged out) leaves the history as the client sent it: still a valid
conversation, only without the retrieved text.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from headroom.providers.base import Plan, Provider, is_retrieve_tool
from headroom.providers.jsondoc import JsonDoc, Span
from headroom.providers.retrieval import tool_calls

MAX_RECORDS = 4096
TTL_SECONDS = 6 * 3600.0
MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class Removed:
    calls: tuple[dict[str, Any], ...]  # our call elements, in the provider's own shape
    results: tuple[tuple[str, str], ...]  # (call id, tool result text)
    created: float
    # Where each call stood among the turn's blocks (Anthropic content, OpenAI tool_calls),
    # so it goes back exactly where the model wrote it.
    positions: tuple[int, ...] = ()


class MixedLedger:
    """Removed calls by client call id, bounded by records, bytes and age.

    A turn's record is counted in full under each call id that names it (a turn with two
    client calls counts twice): the byte figure is a bound on what is held, never less."""

    def __init__(
        self,
        max_records: int = MAX_RECORDS,
        ttl: float = TTL_SECONDS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._by_call: OrderedDict[str, tuple[Removed, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.bytes = 0
        self.remembered = 0  # turns whose removed calls were kept
        self.restored = 0  # requests that had them put back

    def remember(self, client_call_ids: list[str], removed: Removed) -> None:
        size = len(orjson.dumps(removed.calls)) + sum(len(t) for _, t in removed.results)
        if size > self.max_bytes:
            return  # larger than the whole bound: the next turn goes without it
        with self._lock:
            self.remembered += 1
            for call_id in client_call_ids:
                self._drop(call_id)
                self._by_call[call_id] = (removed, size)
                self.bytes += size
            while len(self._by_call) > self.max_records or self.bytes > self.max_bytes:
                self._drop(next(iter(self._by_call)))

    def find(self, call_id: str) -> Removed | None:
        with self._lock:
            entry = self._by_call.get(call_id)
            if entry is not None and time.time() - entry[0].created > self.ttl:
                self._drop(call_id)
                return None
            return entry[0] if entry is not None else None

    def _drop(self, call_id: str) -> None:
        entry = self._by_call.pop(call_id, None)
        if entry is not None:
            self.bytes -= entry[1]

    def __len__(self) -> int:
        return len(self._by_call)


def removed_calls(provider: Provider, response: dict[str, Any]) -> list[dict[str, Any]]:
    """Our call elements as they stand in an answer (before they are stripped)."""
    return [call for _, call in _ours_with_positions(provider, response)]


def removed_positions(provider: Provider, response: dict[str, Any]) -> tuple[int, ...]:
    return tuple(index for index, _ in _ours_with_positions(provider, response))


def _ours_with_positions(
    provider: Provider, response: dict[str, Any]
) -> list[tuple[int, dict[str, Any]]]:
    shape = provider.shape
    return [
        (i, item)
        for i, item in enumerate(shape.call_items(response))
        if isinstance(item, dict) and is_retrieve_tool(shape.call_name(item))
    ]


def client_call_ids(provider: Provider, response: dict[str, Any]) -> list[str]:
    return [
        str(cid) for name, cid, _ in tool_calls(provider, response) if not is_retrieve_tool(name)
    ]


def restore(provider: Provider, body: bytes, payload: dict[str, Any], ledger: MixedLedger) -> bytes:
    """The body with every remembered removal put back; the same object if none applies."""
    if not len(ledger):
        return body
    plan = _plan(provider, payload, ledger)
    if not plan:
        return body
    doc = JsonDoc(body)
    spans = doc.spans([path for path, _, _ in plan])
    for path, where, text in plan:
        span = spans.get(path)
        if span is None:
            return body
        _insert(doc, span, where, text)
    return doc.render()


def _insert(doc: JsonDoc, span: Span, where: str, text: str) -> None:
    if where == "after":
        doc.insert(span.end, "," + text)
    elif where == "before":
        doc.insert(span.start, text + ",")
    else:  # "append" into the array at span
        doc.append_to_array(span, text)


def _plan(provider: Provider, payload: dict[str, Any], ledger: MixedLedger) -> Plan:
    key = provider.shape.history_key
    items = payload.get(key)
    if not isinstance(items, list):
        return []
    plan: Plan = []
    done: set[int] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for call_id in provider.shape.ids_in(item):
            removed = ledger.find(call_id)
            if removed is None or id(removed) in done or _already_back(items, removed):
                continue
            done.add(id(removed))
            calls = list(removed.calls)
            plan.extend(
                provider.shape.restore(items, i, calls, list(removed.results), removed.positions)
            )
    return plan


def _already_back(items: list[Any], removed: Removed) -> bool:
    """The client kept our calls itself (it echoes history verbatim): nothing to restore."""
    wanted = {cid for cid, _ in removed.results}
    blob = orjson.dumps(items)
    return all(cid.encode() in blob for cid in wanted) and b"headroom_retrieve" in blob
