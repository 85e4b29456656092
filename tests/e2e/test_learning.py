"""Learning from retrievals end to end: real proxy processes, the scripted LLM
upstream, real tool outputs from the fidelity corpus.

The scripted model fetches back every output of ``Bash`` it is shown compressed and never
one of ``Grep``. After two such retrievals (each re-sends the whole conversation and the
agent's long system prompt, so together they cost more than compressing ``Bash``'s outputs
saved) new ``Bash`` outputs reach the model whole while
``Grep``'s are still compressed, and every output an earlier request carried keeps its exact
bytes in every later request, whichever proxy serves it (the prompt cache holds them). Two
proxies on one SQLite file, and two on one real redis-server, learn as one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.learning import tool_results
from headroom.ccr.markers import find_keys
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.pipeline import Pipeline
from tests.support.llm_upstream import LLMUpstream, retrieve_call, text_turn, tool_turn
from tests.support.proxy_process import ProxyProcess
from tests.support.redis_server import RedisServer, need_redis_server

pytestmark = [pytest.mark.timeout(120)]

CORPUS = Path(__file__).resolve().parents[1] / "fidelity" / "corpus"
BASH = [
    "b_dpkg_log_today",
    "b_apt_install_graphviz_gnuplot_ruby",
    "a_npm_install_verbose_jsdom",
    "a_service_log_docs_mirror",
]
GREP = [
    "a_ruff_requests_src",
    "b_grep_raise_valueerror_site_packages",
    "a_pylint_requests",
    "a_ruff_requests_src",  # the same output again, in a later turn: it must not matter
]
RETRIEVING_TURNS = 2
# An agent's system prompt and tool definitions run to tens of thousands of tokens (Claude
# Code's are ~20k), and a retrieval re-sends them with the whole conversation: that is what
# makes fetching outputs back cost more than compressing them saved. A real document stands
# in for it (no compressor touches a system prompt).
SYSTEM = (CORPUS / "b_debian_python_policy_html.txt").read_text()


def _text(name: str) -> str:
    return (CORPUS / f"{name}.txt").read_text()


def _key(text: str) -> str:
    """The key the proxy's marker names: a log's whole original (checked, not assumed)."""
    result = Pipeline().compress(text, CompressContext("", PendingWrites()))
    [key] = find_keys(result.output)
    return key


def _turn(i: int) -> list[dict[str, Any]]:
    ask = {"role": "user", "content": f"step {i}: check the logs and the search hits"}
    calls = {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": f"b{i}",
                "name": "Bash",
                "input": {"command": "journalctl -u app"},
            },
            {"type": "tool_use", "id": f"g{i}", "name": "Grep", "input": {"pattern": "x"}},
        ],
    }
    results = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": f"b{i}", "content": _text(BASH[i])},
            {"type": "tool_result", "tool_use_id": f"g{i}", "content": _text(GREP[i])},
        ],
    }
    return [ask, calls, results]


def _conversation(
    llm: LLMUpstream, proxies: list[ProxyProcess], learning: bool = True
) -> list[dict[str, str]]:
    """Four turns, served by the proxies in turn; what the upstream saw first at each."""
    history: list[dict[str, Any]] = []
    seen: list[dict[str, str]] = []
    for i in range(len(BASH)):
        history += _turn(i)
        key = _key(_text(BASH[i]))
        if i < RETRIEVING_TURNS:
            call = retrieve_call(key)
            llm.script(tool_turn(call, text=f"Let me fetch the whole log of step {i}."))
        llm.script(text_turn(f"step {i} looks fine"))
        before = len(llm.posts("/v1/messages"))
        proxy = proxies[i % len(proxies)]
        reply = httpx.post(
            proxy.url + "/v1/messages",
            json={
                "model": "claude-sonnet-4",
                "max_tokens": 64,
                "system": SYSTEM,
                "messages": history,
            },
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            timeout=30,
            trust_env=False,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["content"][-1]["text"] == f"step {i} looks fine"
        seen.append(tool_results(bytes(llm.posts("/v1/messages")[before].body)))
        if learning and i < RETRIEVING_TURNS:  # learning runs beside the exchange: let it land
            proxy.wait_for_log(
                lambda e, key=key: e.get("event") == "learning_retrieval" and e["key"] == key
            )
        history.append({"role": "assistant", "content": reply.json()["content"]})
    assert llm.pending == 0
    return seen


def _check(seen: list[dict[str, str]]) -> None:
    for i in range(len(BASH)):
        whole = seen[i][f"b{i}"] == _text(BASH[i])
        assert whole == (i >= RETRIEVING_TURNS), f"step {i}: Bash output whole: {whole}"
        assert find_keys(seen[i][f"g{i}"]), f"step {i}: Grep output not compressed"
    for later in range(1, len(BASH)):
        for earlier in range(later):
            for call in (f"b{earlier}", f"g{earlier}"):
                assert seen[later][call] == seen[earlier][call], (
                    f"request {later} changed the bytes of {call} sent in request {earlier}"
                )


def _learning(proxy: ProxyProcess) -> dict[str, Any]:
    stats = httpx.get(proxy.url + "/stats", timeout=5, trust_env=False).json()
    learning: dict[str, Any] = stats["learning"]
    return learning


def _row(learning: dict[str, Any], tool: str, kind: str) -> dict[str, Any]:
    return next(r for r in learning["by_tool"] if (r["tool"], r["kind"]) == (tool, kind))


def _same_learning(one: dict[str, Any], two: dict[str, Any]) -> None:
    """Two processes report what they learned from one store alike. They read it a moment
    apart and every count decays in between (a half-life of days), so a rounded token count
    may differ by one: numbers agree to a part in 10^4, and the explanation that quotes them
    agrees in its decision."""
    assert one.keys() == two.keys()
    for key, value in one.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert value == pytest.approx(two[key], rel=1e-4, abs=0.01), key
        elif key != "why":
            assert value == two[key], key
    assert one["why"].split(":")[0] == two["why"].split(":")[0] == one["decision"]
    assert one["retrieved"] == pytest.approx(2, abs=0.01)


def test_a_tool_whose_outputs_are_fetched_back_is_kept_whole_and_earlier_bytes_stay(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    proxy = start_proxy("--learning", "on")
    _check(_conversation(llm, [proxy]))
    learning = _learning(proxy)
    # Counted for the tool and for the program it ran ("Bash:journalctl"); the program has
    # evidence of its own, so its verdict decided and the kept-whole outputs count there.
    # Steps 2 and 3 carried the compressed outputs of steps 0 and 1 again, which saved
    # again: the verdict is whatever the sums say now, and says it.
    for name in ("Bash", "Bash:journalctl"):
        bash = _row(learning, name, "log")
        assert bash["retrieved"] == pytest.approx(2, abs=0.01)
        costly = bash["retrieval_tokens"] >= bash["saved_tokens"] > 0
        assert bash["decision"] == ("lossless" if costly else "default")
        assert bash["why"].startswith(f"{bash['decision']}: 2.0 retrievals of 2.0 compressed")
    # kept whole: step 2's output in requests 2 and 3, step 3's in request 3
    assert bash["held_whole"] == pytest.approx(3, abs=0.01) and bash["extra_tokens"] > 0
    grep = _row(learning, "Grep", "search")
    assert grep["decision"] == "default" and grep["retrieved"] == 0
    metrics = httpx.get(proxy.url + "/metrics", timeout=5, trust_env=False).text
    decision = _row(learning, "Bash", "log")["decision"]
    assert (
        f'headroom_learning_decision{{decision="{decision}",kind="log",tool="Bash"}} 1' in metrics
    )
    assert 'headroom_learning_decision{decision="default",kind="search",tool="Grep"} 1' in metrics


def test_learning_off_changes_nothing(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    proxy = start_proxy("--learning", "off")
    seen = _conversation(llm, [proxy], learning=False)
    last = len(BASH) - 1
    assert seen[last][f"b{last}"] != _text(BASH[last])  # still compressed
    assert _learning(proxy) == {"enabled": False}


def test_two_proxies_on_one_sqlite_file_learn_together(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    flags = ("--learning", "on", "--ccr-backend", "sqlite", "--ccr-path", str(tmp_path / "c.db"))
    proxies = [start_proxy(*flags), start_proxy(*flags)]
    _check(_conversation(llm, proxies))
    _same_learning(*(_row(_learning(p), "Bash", "log") for p in proxies))


def test_two_proxies_on_one_redis_server_learn_together(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    need_redis_server()
    with RedisServer() as server:
        flags = ("--learning", "on", "--ccr-backend", "redis", "--ccr-redis-url", server.url)
        proxies = [start_proxy(*flags), start_proxy(*flags)]
        _check(_conversation(llm, proxies))
        _same_learning(*(_row(_learning(p), "Bash", "log") for p in proxies))


LS = "b_ls_lR_pip_site_packages"
LS_NEEDLES = json.loads((CORPUS / f"{LS}.json").read_text())["needles"]
ANSWER = "pip/_vendor/pkg_resources/__init__.py is 109364 bytes (-rw-r--r-- root)."


def _ls_turn(i: int, prefix: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        *prefix,
        {"role": "user", "content": f"go on ({i})"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": f"l{i}",
                    "name": "Bash",
                    "input": {"command": "ls -lR pip"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": f"l{i}", "content": _text(LS)}],
        },
    ]


def _post(proxy: ProxyProcess, messages: list[dict[str, Any]], stream: bool) -> str:
    """The answer's last text, read whole (streamed or not)."""
    payload = {"model": "claude-sonnet-4", "max_tokens": 64, "messages": messages}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    if not stream:
        reply = httpx.post(
            proxy.url + "/v1/messages", json=payload, headers=headers, timeout=30, trust_env=False
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["content"][-1]["text"])
    text = ""
    with httpx.stream(
        "POST",
        proxy.url + "/v1/messages",
        json={**payload, "stream": True},
        headers=headers,
        timeout=30,
        trust_env=False,
    ) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("type") == "content_block_delta":
                    text += event["delta"].get("text", "")
    return text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_words_of_the_answer_after_a_retrieval_keep_those_lines_next_time(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess], stream: bool
) -> None:
    """The model fetches a listing back without saying why, then answers with the line it
    needed; the next listing the same program prints keeps that line."""
    proxy = start_proxy("--learning", "on")
    first = _ls_turn(0, [])
    llm.script(
        tool_turn(retrieve_call(_key(_text(LS))), text="Let me see the whole listing."),
        text_turn(ANSWER),
    )
    assert _post(proxy, first, stream).endswith(ANSWER)
    seen_first = tool_results(bytes(llm.posts("/v1/messages")[0].body))["l0"]
    assert [n for n in LS_NEEDLES if n not in seen_first.splitlines()]  # dropped at first
    evidence = proxy.wait_for_log(  # from the answer (the asking turn named nothing useful)
        lambda e: e.get("event") == "learning_evidence" and "pkg_resources" in e["terms"]
    )
    assert evidence["program"] == "ls" and evidence["tool"] == "Bash"
    llm.script(text_turn("same as before"))
    second = _ls_turn(1, [*first, {"role": "assistant", "content": ANSWER}])
    assert _post(proxy, second, stream) == "same as before"
    cost = proxy.wait_for_log(lambda e: e.get("event") == "learning_cost")  # measured beside
    assert cost["program"] == "ls" and cost["extra_tokens"] > 0
    sent = tool_results(bytes(llm.posts("/v1/messages")[-1].body))
    assert sent["l0"] == seen_first  # the first listing keeps its bytes
    assert all(n in sent["l1"].splitlines() for n in LS_NEEDLES), "the learned line was dropped"
    assert find_keys(sent["l1"])  # still compressed, only less
    row = _row(_learning(proxy), "Bash:ls", "log")
    assert row["decision"] == "terms" and "pkg_resources" in row["terms"]
    assert row["extra_tokens"] > 0  # what keeping those lines cost, measured
