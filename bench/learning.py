"""Learning from retrievals: a scripted agent conversation over the fidelity corpus, with the
learner off and on (target: retrievals down >= 50%, total tokens no higher).

Two conversations of 30 turns; turn ``t`` runs the tool of one corpus artifact and the
request carries every earlier turn's output as well, as an agent's history does:

* ``corpus``: artifacts 0..29 in corpus order, each once (every output a different program:
  the hardest case for learning, which can only generalise across programs of one tool);
* ``reruns``: the first 15 shell-tool artifacts, then the same 15 commands again (an agent
  re-running its checks after a change; here the outputs come back identical, in a new turn,
  so to the proxy they are new outputs).
 The agent calls its tools without saying why (the first user turn is the only
task text), which is how long sessions look, so the compressor has no question to aim at.
The scripted model needs the artifact's needles: when one of them is missing from what it
saw (content score of the fidelity bench) it retrieves the output, saying the question it
is answering, and then answers quoting the needed lines; the learner takes both as
evidence, as the proxy's tool loop does with the asking turn and the answer after it.

Tokens, both runs: every turn's prompt (the forwarded size of all outputs in the history),
plus, per retrieval, a second request (the prompt again) carrying the whole original.

``engine_ms``: the time of the rewrite passes and the learner's calls over all turns (a
memo answers every output after its first turn, so this is mostly what learning adds to a
request that re-sends a conversation). Engine level, in one process: the proxy's own
``rewrite_request`` with a memo, and the learner over the memory backend (its decision
records included), so what differs between the two runs is only the learning.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench.fidelity import MODEL, Artifact, load, score, tool_result
from headroom.ccr.markers import find_keys
from headroom.learning.backend import MemoryBackend
from headroom.learning.evidence import wanted_terms
from headroom.learning.learner import Learner
from headroom.providers.apis import ANTHROPIC
from headroom.providers.memo import MemoPipeline
from headroom.providers.rewrite import Steering, rewrite_request
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.tokens import estimate_tokens

TURNS = 30
TASK = "Work through this repository's build, test and dependency state and report problems."


@dataclass
class Run:
    learning: bool
    retrievals: int = 0
    prompt_tokens: int = 0
    retrieval_tokens: int = 0
    kept_whole: int = 0
    retrieved_turns: list[int] = field(default_factory=list)
    engine_ms: float = 0.0  # rewrite passes and learner calls, all turns

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.retrieval_tokens


def schedules(artifacts: list[Artifact]) -> dict[str, list[Artifact]]:
    shell = [a for a in artifacts if a.manifest["tool"]["name"] in ("Bash", "exec_command")]
    return {"corpus": artifacts[:TURNS], "reruns": (shell[: TURNS // 2] * 2)[:TURNS]}


def _history(artifacts: list[Artifact], upto: int) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    for t in range(upto + 1):
        a = artifacts[t]
        tool = a.manifest.get("tool") or {"name": "Bash", "arguments": {}}
        call = {"type": "tool_use", "id": f"t{t}", "name": tool["name"], "input": tool["arguments"]}
        result = {"type": "tool_result", "tool_use_id": f"t{t}", "content": tool_result(a)}
        messages += [
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ]
        if t < upto:
            messages += [
                {"role": "assistant", "content": [{"type": "text", "text": f"noted {t}"}]},
                {"role": "user", "content": f"step {t + 1}: go on"},
            ]
    return json.dumps({"model": MODEL, "max_tokens": 1024, "messages": messages}).encode()


def tool_results(body: bytes) -> dict[str, str]:
    """tool_use_id -> the tool_result content an Anthropic request body carries."""
    out: dict[str, str] = {}
    for message in json.loads(body)["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    out[block["tool_use_id"]] = block["content"]
    return out


async def _conversation(artifacts: list[Artifact], learning: bool, turns: int) -> Run:
    run = Run(learning)
    memo = MemoPipeline(Pipeline())
    learner = Learner(MemoryBackend(), ttl=86_400.0) if learning else None
    for t in range(turns):
        artifact = artifacts[t]
        body = _history(artifacts, t)
        started = time.perf_counter()
        steering = None
        if learner is not None:
            steering = Steering(await learner.steers())
        result = rewrite_request(body, ANTHROPIC, memo, steering=steering, keep_plan=True)
        if learner is not None and result.needs:
            decided = await learner.decisions(result.needs)
            again = Steering(steering.steers if steering else {}, decided)
            result = rewrite_request(body, ANTHROPIC, memo, steering=again, plan=result.plan)
        if learner is not None:
            await learner.record_compressed(result.seen, result.decided)
            run.kept_whole += sum(1 for s in result.seen if s.held)
        run.engine_ms += (time.perf_counter() - started) * 1000
        forwarded = tool_results(result.body)
        prompt = sum(estimate_tokens(text, MODEL) for text in forwarded.values())
        run.prompt_tokens += prompt
        seen = forwarded[f"t{t}"]
        needed = score(artifact.needles, seen, len(artifact.fragments))
        if all(needed.content):
            continue
        sent = tool_result(artifact)
        run.retrievals += 1
        run.retrieved_turns.append(t)
        run.retrieval_tokens += prompt + estimate_tokens(sent, MODEL)
        keys = find_keys(seen)
        if learner is not None and keys:  # the model fetches the output's (first) marker
            found = await learner.record_retrieval(keys[0], estimate_tokens(sent, MODEL), prompt)
            if found is not None:  # the turn that asked names the question; the answer
                question = str(artifact.manifest.get("question", ""))  # quotes the lines
                await learner.record_terms(found, wanted_terms(sent, seen, question))
                answer = "\n".join(artifact.needles)
                await learner.record_terms(found, wanted_terms(sent, seen, answer))
    return run


def run(quick: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, schedule in schedules(load()).items():
        turns = min(len(schedule), 10 if quick else TURNS)
        off, on = (
            asyncio.run(_conversation(schedule, learning, turns)) for learning in (False, True)
        )
        for r in (off, on):
            rows.append(
                {
                    "scenario": name,
                    "learning": "on" if r.learning else "off",
                    "turns": turns,
                    "retrievals": r.retrievals,
                    "prompt_tokens": r.prompt_tokens,
                    "retrieval_tokens": r.retrieval_tokens,
                    "total_tokens": r.total,
                    "kept_whole": r.kept_whole,
                    "engine_ms": round(r.engine_ms, 1),
                    "retrieved_at": " ".join(map(str, r.retrieved_turns)),
                }
            )
        rows.append(
            {
                "scenario": name,
                "learning": "on/off",
                "turns": turns,
                "retrievals": round(on.retrievals / off.retrievals, 3) if off.retrievals else None,
                "prompt_tokens": round(on.prompt_tokens / off.prompt_tokens, 3),
                "retrieval_tokens": None,
                "total_tokens": round(on.total / off.total, 3),
                "kept_whole": None,
                "engine_ms": round(on.engine_ms / off.engine_ms, 3) if off.engine_ms else None,
                "retrieved_at": "",
            }
        )
    return rows
