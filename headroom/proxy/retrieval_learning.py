"""What a retrieval teaches: count it against the output it came from, and find the words the
model used that only the dropped lines carried (``learning.evidence``).

Runs after the tool loop looked the hashes up, before the follow-up leaves. A retrieval
costs the original and the request re-sent to fetch it (both counted, see
``learning.model``). The evidence needs the original, what the model saw of it (the output
in the forwarded body whose marker names the key) and what the model said in the turn that
asked; the comparison and the token counts run in a worker thread, since an original may
be megabytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from headroom.learning.evidence import wanted_terms
from headroom.learning.learner import guarded, tokens_of
from headroom.providers.base import Provider
from headroom.providers.retrieval import answer_text, output_naming
from headroom.proxy.seams import ExchangeView


async def learn_from_retrievals(
    ex: ExchangeView,
    provider: Provider,
    found: Sequence[tuple[str, bytes]],
    body: bytes,
    response: dict[str, Any] | None,
) -> None:
    """``found``: (key, original) of each hash the model fetched in this round."""
    learner = ex.app.learner
    if learner is None or not found:
        return
    said = answer_text(provider, response) if response is not None else ""
    request_id = ex.request_id.decode()
    resent = await asyncio.to_thread(tokens_of, body)
    for key, original in found:
        size = await asyncio.to_thread(tokens_of, original)
        call = learner.record_retrieval(key, size, resent)
        provenance = await guarded(learner, "retrieval", call, ex.app.log, request_id=request_id)
        if provenance is None or not said or not body:
            continue
        terms = await asyncio.to_thread(_evidence, provider, body, key, original, said)
        if terms:
            call = learner.record_terms(provenance, terms)
            await guarded(learner, "terms", call, ex.app.log, request_id=request_id)
            ex.app.log.info(
                "learning_evidence",
                request_id=request_id,
                key=key,
                tool=provenance.tool,
                kind=provenance.kind,
                terms=" ".join(terms),
            )


def _evidence(provider: Provider, body: bytes, key: str, original: bytes, said: str) -> list[str]:
    seen = output_naming(provider, body, key)
    if seen is None:
        return []
    return wanted_terms(original.decode("utf-8", "replace"), seen.text, said)
