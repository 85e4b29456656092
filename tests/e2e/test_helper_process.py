"""The compression process (bodies of 256 KB and more) dies with its proxy, kill -9 too."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e import traffic
from tests.support.llm_upstream import LLMUpstream, text_turn
from tests.support.proxy_process import ProxyProcess
from tests.support.waiting import wait_for


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(") ", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_compression_process_exits_when_the_proxy_is_killed(
    start_proxy: Callable[..., ProxyProcess], llm: LLMUpstream
) -> None:
    proxy = start_proxy()
    assert proxy.proc is not None
    big = traffic.Output(traffic.service_log(seed=3).text * 8)  # over the 256 KB threshold
    step = traffic.claude_step(0, "Bash", {"command": "kubectl logs api"}, big)
    body = traffic.encode(traffic.claude_code_body("why do payments fail?", [step], stream=False))
    llm.script(text_turn("ok"))
    with httpx.Client(base_url=proxy.url, timeout=30, trust_env=False) as client:
        client.post("/v1/messages", content=body, headers={"content-type": "application/json"})
    pid = proxy.proc.pid
    helpers: list[int] = wait_for(
        lambda: [c for c in _children(pid) if _alive(c)],
        10,
        "the compression process the first large body starts",
    )
    os.kill(pid, signal.SIGKILL)
    proxy.proc.wait(5)
    wait_for(
        lambda: not any(_alive(h) for h in helpers), 5, "the compression process to end with it"
    )
