"""The fidelity corpus through each API's request shape: does an output compress the same
whether it arrives as an Anthropic ``tool_result``, an OpenAI Chat ``tool`` message, a
Responses ``function_call_output`` or a Gemini ``functionResponse``?

Each artifact becomes one request body per API (the same user turn, the same assistant
text, the same tool call and arguments, the same output), goes through ``rewrite_request``
with that API's adapter (so its own output finding, query context and byte surgery), and
the compressed output is read back out of the rewritten body by the same adapter and
scored like ``bench.fidelity`` scores it. One row per API: tokens forwarded/sent over the
outputs, needles kept verbatim and by content, and time per MB of body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.fidelity import MODEL, Artifact, load, score, score_columns, tool_result
from headroom.providers.apis import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES
from headroom.providers.base import Provider
from headroom.providers.gemini import GEMINI
from headroom.providers.rewrite import rewrite_request
from headroom.transforms.pipeline import Pipeline, PipelineConfig
from headroom.transforms.tokens import estimate_tokens

Body = dict[str, Any]


def _call(artifact: Artifact) -> tuple[str, Any, str, str]:
    tool = artifact.manifest.get("tool") or {"name": "Bash", "arguments": {}}
    m = artifact.manifest
    return tool["name"], tool.get("arguments", {}), m.get("assistant", ""), m.get("user", "")


def anthropic_body(artifact: Artifact, result: str) -> Body:
    name, args, said, user = _call(artifact)
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": user},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": said},
                    {"type": "tool_use", "id": "call_1", "name": name, "input": args},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": result}],
            },
        ],
    }


def chat_body(artifact: Artifact, result: str) -> Body:
    name, args, said, user = _call(artifact)
    call = {"name": name, "arguments": orjson.dumps(args).decode()}
    return {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": user},
            {
                "role": "assistant",
                "content": said,
                "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": result},
        ],
    }


def responses_body(artifact: Artifact, result: str) -> Body:
    name, args, said, user = _call(artifact)
    return {
        "model": MODEL,
        "input": [
            {"role": "user", "content": user},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": said}]},
            {"type": "function_call", "call_id": "call_1", "name": name,
             "arguments": orjson.dumps(args).decode()},
            {"type": "function_call_output", "call_id": "call_1", "output": result},
        ],
    }  # fmt: skip


def gemini_body(artifact: Artifact, result: str) -> Body:
    name, args, said, user = _call(artifact)
    return {
        "model": MODEL,
        "contents": [
            {"role": "user", "parts": [{"text": user}]},
            {"role": "model", "parts": [
                {"text": said}, {"functionCall": {"name": name, "args": args}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": name, "response": {"output": result}}}]},
        ],
    }  # fmt: skip


SHAPES: tuple[tuple[Provider, Callable[[Artifact, str], Body]], ...] = (
    (ANTHROPIC, anthropic_body),
    (OPENAI_CHAT, chat_body),
    (OPENAI_RESPONSES, responses_body),
    (GEMINI, gemini_body),
)


def compressed_output(
    provider: Provider, artifact: Artifact, pipeline: Pipeline
) -> tuple[str, float, int]:
    """What the model would read of this artifact's output in this API's request, the ms
    the rewrite took, and the body's size."""
    body = orjson.dumps(dict(SHAPES)[provider](artifact, tool_result(artifact)))
    started = time.perf_counter()
    rewritten = rewrite_request(body, provider, pipeline)
    ms = (time.perf_counter() - started) * 1000
    outputs = provider.find_outputs(orjson.loads(rewritten.body))
    return (outputs[0].text if outputs else ""), ms, len(body)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """One row per API over the whole corpus (``--quick`` changes nothing)."""
    artifacts = load()
    pipeline = Pipeline(PipelineConfig())
    rows = []
    for provider, _ in SHAPES:
        tin = tout = size = 0
        ms = 0.0
        scores = []
        for artifact in artifacts:
            sent = tool_result(artifact)
            got, took, length = compressed_output(provider, artifact, pipeline)
            scores.append(score(artifact.needles, got, len(artifact.fragments)))
            tin += estimate_tokens(sent, MODEL)
            tout += estimate_tokens(got, MODEL)
            ms += took
            size += length
        rows.append(
            {
                "api": provider.name,
                "artifacts": len(artifacts),
                **score_columns(tin, tout, scores),
                "ms_per_MB": round(ms / (size / 1e6), 1) if size else 0.0,
            }
        )
    return rows
