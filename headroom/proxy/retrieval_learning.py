"""What a retrieval teaches: count it against the output it came from, and find the words the
model used that only the dropped lines carried (``learning.evidence``).

Runs beside the exchange (``Learner.in_background``) once the tool loop looked the hashes
up, so it never delays an answer. A retrieval
costs the original and the request re-sent to fetch it (both counted, see
``learning.model``). The evidence needs the original, what the model saw of it (the output
in the forwarded body whose marker names the key) and what the model said in the turn that
asked and in the answer it gave after (``learn_from_answer``); the comparison and the token
counts run in a worker thread, since an original may be megabytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from headroom.learning.evidence import wanted_terms
from headroom.learning.learner import Provenance, guarded, tokens_of
from headroom.providers.base import Provider
from headroom.providers.retrieval import output_naming
from headroom.proxy.seams import ExchangeView


@dataclass(frozen=True)
class Fetched:
    """One original the model fetched back, and the request it had seen it compressed in."""

    key: str
    original: bytes
    body: bytes


async def learn_from_retrievals(
    ex: ExchangeView, provider: Provider, fetched: Sequence[Fetched], response: dict[str, Any]
) -> None:
    """Count this round's retrievals and what they cost; ``response`` is the turn that
    asked, whose words are the first evidence of what was wanted."""
    learner = ex.app.learner
    if learner is None or not fetched:
        return
    said = provider.shape.answer_text(response)
    request_id = ex.request_id.decode()
    resent = await asyncio.to_thread(tokens_of, fetched[0].body)
    for item in fetched:
        size = await asyncio.to_thread(tokens_of, item.original)
        call = learner.record_retrieval(item.key, size, resent)
        provenance = await guarded(learner, "retrieval", call, ex.app.log, request_id=request_id)
        ex.app.log.info(
            "learning_retrieval",
            request_id=request_id,
            key=item.key,
            tool=provenance.tool if provenance is not None else "",
            tokens=size + resent,
        )
        if provenance is not None:
            await _learn_words(ex, provider, item, provenance, said)


async def learn_from_answer(
    ex: ExchangeView, provider: Provider, fetched: Sequence[Fetched], response: dict[str, Any]
) -> None:
    """The answer the model gave after its retrievals: the words it used of what it fetched
    (a quoted line, a package name, a path) are the strongest evidence of what was wanted."""
    learner = ex.app.learner
    said = provider.shape.answer_text(response)
    if learner is None or not fetched or not said:
        return
    for item in fetched:
        call = learner.provenance(item.key)
        provenance = await guarded(learner, "provenance", call, ex.app.log)
        if provenance is not None:
            await _learn_words(ex, provider, item, provenance, said)


async def _learn_words(
    ex: ExchangeView, provider: Provider, item: Fetched, provenance: Provenance, said: str
) -> None:
    learner = ex.app.learner
    if learner is None or not said or not item.body:
        return
    terms = await asyncio.to_thread(_evidence, provider, item, said)
    if not terms:
        return
    request_id = ex.request_id.decode()
    call = learner.record_terms(provenance, terms)
    await guarded(learner, "terms", call, ex.app.log, request_id=request_id)
    ex.app.log.info(
        "learning_evidence",
        request_id=request_id,
        key=item.key,
        tool=provenance.tool,
        program=provenance.program,
        kind=provenance.kind,
        terms=" ".join(terms),
    )


def _evidence(provider: Provider, item: Fetched, said: str) -> list[str]:
    seen = output_naming(provider, item.body, item.key)
    if seen is None:
        return []
    return wanted_terms(item.original.decode("utf-8", "replace"), seen.text, said)
