"""A scripted model that reads its prompt, and an agent that talks to it over many turns:
the model calls ``headroom_retrieve`` for every marker whose original its conversation
does not hold yet, otherwise runs the agent's next command, otherwise answers.
So a retrieval lost from the history is asked for again, as a real model would, and the
count of retrievals per hash shows it.

The agent sends what a client keeps: each answer as it was shown (the text and its own tool
calls, never ours), then the result of its command, the whole history every turn.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from headroom.ccr.markers import find_keys
from tests.support.llm_upstream import ToolCall, Turn, retrieve_call, text_turn, tool_turn

_ASKED = re.compile(r'hash\\?"\s*:\s*\\?"([0-9a-f]{24})')
_STEP = re.compile(r"call_cmd_(\d+)")


class MarkerModel:
    """``commands``: what the agent runs, one per turn, with the named tool."""

    def __init__(self, commands: Sequence[str], tool: str = "Bash") -> None:
        self.commands = list(commands)
        self.tool = tool
        self.retrievals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, body: bytes) -> Turn:
        text = body.decode("utf-8", "replace")
        asked = set(_ASKED.findall(text))
        wanted = [k for k in find_keys(text) if k not in asked]
        if wanted:
            with self._lock:
                self.retrievals[wanted[0]] += 1
                n = sum(self.retrievals.values())
            call = retrieve_call(wanted[0], f"call_ret_{n}")
            return tool_turn(call, text=f"I need all of {wanted[0][:8]}.")
        step = max((int(s) + 1 for s in _STEP.findall(text)), default=0)
        if step < len(self.commands):
            run = ToolCall(self.tool, {"command": self.commands[step]}, f"call_cmd_{step}")
            return tool_turn(run, text=f"Step {step}: running it.")
        return text_turn("All done: the failures are explained above.")

    @property
    def repeated(self) -> int:
        """Retrievals of a hash already retrieved once in this conversation."""
        return sum(n - 1 for n in self.retrievals.values())


@dataclass
class Agent:
    """An Anthropic Messages agent over HTTP (JSON or SSE), with the outputs its commands
    print given in order; each request goes to the next of ``urls`` (proxies sharing one
    store, as behind a load balancer)."""

    urls: Sequence[str]
    outputs: Sequence[str]
    stream: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def run(self, task: str, max_turns: int = 40) -> list[dict[str, Any]]:
        """The conversation to its end; the messages it last sent."""
        self.messages = [{"role": "user", "content": task}]
        with httpx.Client(timeout=30, trust_env=False) as client:
            for turn in range(max_turns):
                blocks = self._ask(client, self.urls[turn % len(self.urls)])
                self.messages.append({"role": "assistant", "content": blocks})
                calls = [b for b in blocks if b["type"] == "tool_use"]
                if not calls:
                    return self.messages
                results = [self._result(c) for c in calls]
                self.messages.append({"role": "user", "content": results})
        raise AssertionError("the conversation did not end")

    def _result(self, call: dict[str, Any]) -> dict[str, Any]:
        assert call["name"] != "headroom_retrieve", "the client saw headroom_retrieve"
        step = int(call["id"].rsplit("_", 1)[1])
        output = self.outputs[step] if step < len(self.outputs) else "ok"
        return {"type": "tool_result", "tool_use_id": call["id"], "content": output}

    def _ask(self, client: httpx.Client, url: str) -> list[dict[str, Any]]:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": self.tools,
                "messages": self.messages, "stream": self.stream}  # fmt: skip
        headers = {"anthropic-version": "2023-06-01"}
        got = client.post(url + "/v1/messages", json=body, headers=headers)
        assert got.status_code == 200, got.text
        if not self.stream:
            content: list[dict[str, Any]] = got.json()["content"]
            return content
        return _blocks_of_stream(got.text)


def _blocks_of_stream(raw: str) -> list[dict[str, Any]]:
    """The content blocks a streaming client assembles (text and tool input from deltas)."""
    blocks: dict[int, dict[str, Any]] = {}
    parts: dict[int, list[str]] = {}
    for line in raw.splitlines():
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        index = event.get("index")
        if event["type"] == "content_block_start":
            blocks[index] = dict(event["content_block"])
            parts[index] = []
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                blocks[index]["text"] = blocks[index].get("text", "") + delta["text"]
            elif delta["type"] == "input_json_delta":
                parts[index].append(delta["partial_json"])
        elif event["type"] == "content_block_stop" and parts.get(index):
            blocks[index]["input"] = json.loads("".join(parts[index]))
    return [blocks[i] for i in sorted(blocks)]


def tools_of(name: str = "Bash") -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "description": "Run a shell command.",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        }
    ]
