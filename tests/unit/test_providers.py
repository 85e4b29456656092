"""Provider adapters, request rewrite and the retrieval-loop helpers, in memory."""

from __future__ import annotations

import json

from headroom.ccr.markers import find_keys
from headroom.providers.apis import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES
from headroom.providers.registry import provider_for
from headroom.providers.retrieval import find_calls, follow_up, strip_calls, tool_result_text
from headroom.providers.rewrite import rewrite_request
from headroom.transforms.pipeline import Pipeline

LOG = "\n".join(f"2026-01-01 12:00:{i % 60:02d} INFO worker {i} ok" for i in range(400))
LOG += "\nERROR database connection refused at db.py:42\n"


def _anthropic_body(**extra: object) -> bytes:
    return json.dumps(
        {
            "model": "claude-sonnet-4",
            "system": "S" * 3000,
            "messages": [
                {"role": "user", "content": "check the database"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "c2ln=="},
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "Bash",
                            "input": {"cmd": "pytest"},
                        },
                        {
                            "type": "tool_use",
                            "id": "t2",
                            "name": "headroom_retrieve",
                            "input": {"hash": "0" * 24},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": LOG},
                        {"type": "tool_result", "tool_use_id": "t2", "content": LOG},
                        {"type": "text", "text": "U" * 2000},
                    ],
                },
            ],
            **extra,
        },
        indent=1,
    ).encode()


def test_paths_pick_the_right_adapter() -> None:
    assert provider_for("/v1/messages") is ANTHROPIC
    assert provider_for("/v1/messages/count_tokens") is ANTHROPIC
    assert provider_for("/api/v1/chat/completions") is OPENAI_CHAT
    assert provider_for("/v1/responses") is OPENAI_RESPONSES
    assert provider_for("/v1/models") is None


def test_anthropic_outputs_skip_retrieve_results_and_carry_the_call_context() -> None:
    outputs = ANTHROPIC.find_outputs(json.loads(_anthropic_body()))
    assert [o.path for o in outputs] == [("messages", 2, "content", 0, "content")]
    assert outputs[0].tool_name == "Bash"
    assert "pytest" in outputs[0].query and "check the database" in outputs[0].query


def test_openai_chat_and_responses_outputs() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "find it"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "grep", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "x"}]},
        ]
    }
    assert [o.path for o in OPENAI_CHAT.find_outputs(chat)] == [
        ("messages", 2, "content", 0, "text")
    ]
    responses = {
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "go"}]},
            {"type": "function_call", "call_id": "f", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "f", "output": "out"},
            {"type": "local_shell_call_output", "call_id": "g", "output": "out2"},
        ]
    }
    found = OPENAI_RESPONSES.find_outputs(responses)
    assert [o.path for o in found] == [("input", 2, "output"), ("input", 3, "output")]
    assert found[0].tool_name == "exec_command" and "go" in found[0].query


def test_rewrite_changes_only_the_compressed_value_and_injects_the_tool_once() -> None:
    body = _anthropic_body(tools=[{"name": "Bash", "input_schema": {"type": "object"}}])
    result = rewrite_request(body, ANTHROPIC, Pipeline())
    assert result.changed
    out = json.loads(result.body)
    compressed = out["messages"][2]["content"][0]["content"]
    assert "ERROR database connection refused at db.py:42" in compressed
    [key] = find_keys(compressed)
    assert result.writes.get(key) is not None
    assert [t["name"] for t in out["tools"]] == ["Bash", "headroom_retrieve"]
    # every other byte is the client's: put the original back and compare
    original = json.loads(body)
    out["messages"][2]["content"][0]["content"] = LOG
    out["tools"].pop()
    assert out == original
    restored = result.body.replace(
        json.dumps(compressed, ensure_ascii=False).encode(), json.dumps(LOG).encode()
    )
    assert restored.replace(b"," + ANTHROPIC.retrieve_tool_json.encode(), b"") == body
    again = rewrite_request(body, ANTHROPIC, Pipeline())
    assert again.body == result.body  # deterministic: caches keep hitting


def test_nothing_to_compress_returns_the_same_bytes_object() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    assert rewrite_request(body, ANTHROPIC, Pipeline()).body is body


def test_retrieval_helpers_round_trip_for_anthropic() -> None:
    response = {
        "content": [
            {"type": "text", "text": "need it"},
            {
                "type": "tool_use",
                "id": "r1",
                "name": "headroom_retrieve",
                "input": {"hash": " HASH=" + "A" * 24},
            },
        ],
        "stop_reason": "tool_use",
    }
    calls = find_calls(ANTHROPIC, response)
    assert calls.others == 0 and calls.ours[0].key == "a" * 24
    body = _anthropic_body()
    nxt = json.loads(follow_up(ANTHROPIC, body, response, [("r1", "ORIGINAL")]))
    assert nxt["messages"][-2] == {"role": "assistant", "content": response["content"]}
    assert nxt["messages"][-1]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "r1",
        "content": "ORIGINAL",
    }
    stripped = strip_calls(ANTHROPIC, response)
    assert stripped["stop_reason"] == "end_turn"
    assert all(b["type"] != "tool_use" for b in stripped["content"])
    assert "expired" in tool_result_text("a" * 24, "x", None, "expired")


def test_retrieval_helpers_for_openai_shapes() -> None:
    chat = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {
                                "name": "headroom_retrieve",
                                "arguments": '{"hash":"' + "b" * 24 + '"}',
                            },
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "Bash", "arguments": "{}"},
                        },
                    ],
                },
            }
        ]
    }
    calls = find_calls(OPENAI_CHAT, chat)
    assert calls.others == 1 and calls.ours[0].key == "b" * 24
    kept = strip_calls(OPENAI_CHAT, chat)["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in kept] == ["c2"]
    responses = {
        "output": [
            {
                "type": "function_call",
                "call_id": "f1",
                "name": "headroom_retrieve",
                "arguments": '{"hash":"' + "c" * 24 + '"}',
            }
        ]
    }
    body = json.dumps({"model": "m", "input": "hello"}).encode()
    nxt = json.loads(follow_up(OPENAI_RESPONSES, body, responses, [("f1", "ORIG")]))
    assert nxt["input"][0] == {"role": "user", "content": "hello"}
    assert nxt["input"][-1] == {"type": "function_call_output", "call_id": "f1", "output": "ORIG"}


def test_memo_reuses_results_and_replays_originals_into_each_store() -> None:
    from headroom.ccr.store import PendingWrites
    from headroom.providers.memo import MemoPipeline
    from headroom.transforms.base import CompressContext

    memo = MemoPipeline(Pipeline())
    first_store, second_store = PendingWrites(), PendingWrites()
    a = memo.compress(LOG, CompressContext("q", first_store, "claude-x"))
    b = memo.compress(LOG, CompressContext("q", second_store, "claude-x"))
    assert a == b and (memo.hits, memo.misses) == (1, 1)
    assert first_store.items == second_store.items and len(second_store) == 1
    memo.compress(LOG, CompressContext("other query", PendingWrites(), "claude-x"))
    assert memo.misses == 2  # the relevance context is part of the key
    tiny = MemoPipeline(Pipeline(), max_bytes=10)
    tiny.compress(LOG, CompressContext("q", PendingWrites(), "claude-x"))
    tiny.compress(LOG, CompressContext("q", PendingWrites(), "claude-x"))
    assert tiny.hits == 0  # too big to keep: recomputed, still correct
    assert tiny.size == (0, 0)
    held, entries = memo.size
    assert entries == 2 and len(LOG) < held <= memo.max_bytes  # two results, one original


def test_query_holds_what_the_assistant_said_and_the_text_beside_the_result() -> None:
    anthropic = {
        "messages": [
            {"role": "user", "content": "The retry loop in HttpClient never stops."},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me find where RetryError is raised."},
                    {"type": "tool_use", "id": "t1", "name": "Grep", "input": {"pattern": "Retry"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "a.py:1:x"},
                    {"type": "text", "text": "focus on pool.py"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "later words"}]},
            {"role": "user", "content": "a later turn"},
        ]
    }
    (out,) = ANTHROPIC.find_outputs(anthropic)
    for part in ("Retry", "RetryError is raised", "HttpClient never stops", "focus on pool.py"):
        assert part in out.query
    assert "later" not in out.query
    chat = {
        "messages": [
            {"role": "user", "content": "why does the build fail?"},
            {
                "role": "assistant",
                "content": "Running make to see the first error.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "make: *** Error 1"},
        ]
    }
    (out,) = OPENAI_CHAT.find_outputs(chat)
    assert "Running make" in out.query and "build fail" in out.query
    responses = {
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "go"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking the lockfile."}],
            },
            {"type": "function_call", "call_id": "f", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "f", "output": "out"},
        ]
    }
    (out,) = OPENAI_RESPONSES.find_outputs(responses)
    assert "Checking the lockfile." in out.query and "go" in out.query


def test_only_the_top_level_stream_key_decides_streaming() -> None:
    """Issue 11 point 10: a tool input's ``{"stream": false}`` before the request's own
    ``"stream": true`` (or a nested true with no top-level key) must not decide."""
    tool_use = {"type": "tool_use", "id": "t1", "name": "cfg", "input": {"stream": False}}
    messages = [{"role": "assistant", "content": [tool_use]}]
    nested_first = json.dumps({"model": "m", "messages": messages, "stream": True}).encode()
    assert nested_first.index(b'"stream"') < nested_first.rindex(b'"stream"')
    assert rewrite_request(nested_first, ANTHROPIC, Pipeline()).streams is True
    tool_use["input"] = {"stream": True}
    only_nested = json.dumps({"model": "m", "messages": messages}).encode()
    assert rewrite_request(only_nested, ANTHROPIC, Pipeline()).streams is False


def test_program_of_names_what_a_shell_tool_ran() -> None:
    from headroom.providers.base import program_of

    cases = {
        "grep -rn 'raise ValueError' .": "grep",
        "cd repo && python -m pytest -q": "pytest",
        "DEBIAN_FRONTEND=noninteractive sudo -n apt-get install -y ruby": "apt-get install",
        "git -C repo diff HEAD~1 HEAD": "git diff",
        "timeout 60 /usr/bin/make -k": "make",
        "bash -lc 'npx tsc --noEmit'": "tsc",
        "ls -lR pip | head -n 50": "ls",
        "uv run pytest tests": "pytest",
    }
    for command, program in cases.items():
        assert program_of({"command": command}) == program, command
    assert program_of({"cmd": ["bash", "-lc", "cargo build"]}) == "cargo build"  # Codex
    assert program_of({"file_path": "/etc/hosts"}) == ""
    assert program_of("grep x") == ""
    body = _anthropic_body()
    [output] = [o for o in ANTHROPIC.find_outputs(json.loads(body)) if o.tool_name == "Bash"]
    assert output.program == "pytest"  # the call's {"cmd": "pytest"}, as Codex spells it


def test_answer_text_reads_what_each_api_says_besides_its_calls() -> None:
    claude = {
        "content": [
            {"type": "text", "text": "pkg_resources is 109364 bytes"},
            {"type": "tool_use", "id": "t", "name": "x", "input": {}},
        ]
    }
    assert ANTHROPIC.shape.answer_text(claude) == "pkg_resources is 109364 bytes"
    chat = {
        "choices": [{"message": {"role": "assistant", "content": "it failed", "tool_calls": []}}]
    }
    assert OPENAI_CHAT.shape.answer_text(chat) == "it failed"
    assert OPENAI_CHAT.shape.answer_text({"role": "assistant", "content": "streamed"}) == "streamed"
    responses = {
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "message", "content": [{"type": "output_text", "text": "two"}]},
            {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"},
        ]
    }
    assert OPENAI_RESPONSES.shape.answer_text(responses) == "two"
    assert OPENAI_RESPONSES.shape.answer_text({}) == ""
