"""``headroom-proxy stats URL`` against a running proxy: the table an operator reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from headroom.stats_cli import render, stats_url
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.timeout(60)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEADROOM_PROXY_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "headroom.cli", "stats", *args],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip


def test_it_shows_the_proxys_counts(proxy: ProxyProcess) -> None:
    base = f"http://127.0.0.1:{proxy.port}"
    httpx.get(base + "/healthz", timeout=10, trust_env=False)
    shown = _run(base)
    assert shown.returncode == 0, shown.stderr
    rows = dict(line.split(None, 1) for line in shown.stdout.splitlines() if line[:1] != " ")
    total = int(rows["requests"].replace(",", ""))
    assert total >= 1 and rows["proxy"].startswith("headroom-proxy ")
    assert "by outcome" in shown.stdout and "tokens" in shown.stdout
    assert rows["learning"] == "off"  # the shared proxy runs with --learning off
    raw = _run(f"127.0.0.1:{proxy.port}", "--json")
    assert raw.returncode == 0 and json.loads(raw.stdout)["requests"]["total"] >= total


def test_an_unreachable_proxy_is_one_line_and_exit_1(unused_port: int) -> None:
    got = _run(f"http://127.0.0.1:{unused_port}")
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr.count("\n") == 1 and "refused" in got.stderr.lower()


def test_the_url_gets_stats_added_only_when_it_has_no_path() -> None:
    assert stats_url("127.0.0.1:8787") == "http://127.0.0.1:8787/stats"
    assert stats_url("http://h:1/") == "http://h:1/stats"
    assert stats_url("https://h/proxy/stats?x=1") == "https://h/proxy/stats?x=1"


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_learning_rows_name_each_steered_tool_and_why() -> None:
    why = "lossless: 2.0 retrievals of 2.0 compressed outputs cost 9 tokens"
    data = {
        "learning": {
            "enabled": True,
            "retrievals": 3,
            "extra_tokens": 1200,
            "by_tool": [
                {"tool": "Bash:grep", "kind": "search", "decision": "lossless", "why": why},
                {"tool": "Bash", "kind": "log", "decision": "default", "why": "default: ..."},
            ],
        }
    }
    shown = render(data)
    assert "learning" in shown and "3 retrievals recorded here, 1,200 tokens kept" in shown
    assert f"  Bash:grep (search)  {why}" in shown and "Bash (log)" not in shown
    assert "unavailable: ccr sqlite: locked" in render(
        {"learning": {"enabled": True, "error": "ccr sqlite: locked"}}
    )


def test_the_provider_rows_show_tokens_cache_and_cost() -> None:
    data = {
        "tokens_saved_by_tool": {"Bash": 900, "Grep": 1200},
        "tokens": {
            "answers": 4, "input": 30000, "cached": 21000, "output": 120,
            "cache_hit_rate": 0.7,
            "cost": {"with_headroom": 0.0312, "without_headroom": 0.1, "saved": 0.0688},
        },
    }  # fmt: skip
    shown = render(data)
    assert "saved by tool" in shown and "Grep 1,200, Bash 900" in shown
    assert "30,000 in (21,000 cached, hit rate 70.0%), 120 out, over 4 answers" in shown
    assert "$0.0312 billed, $0.1000 without headroom (saved $0.0688)" in shown
    unpriced = render({"tokens": {**data["tokens"], "cost": None}})
    assert "estimated cost" not in unpriced
    assert re.search(r"^provider tokens +-$", render({}), re.M)
