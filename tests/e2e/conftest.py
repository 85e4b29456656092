"""Fixtures: the scripted LLM upstream and the real proxy process in front of it.

One upstream and one proxy per test session (per xdist worker): a process start costs more
than most tests, and CCR keys are content addresses, so tests cannot see each other's
entries wrongly. Each test gets the upstream cleared. ``start_proxy`` starts a proxy with
other flags; every process is killed at teardown. CCR is in memory so nothing touches ~/.headroom.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.llm_upstream import LLMUpstream
from tests.support.proxy_process import ProxyProcess

FLAGS = (
    "--ccr-backend",
    "memory",
    "--upstream-timeout",
    "10s",
    "--upstream-connect-timeout",
    "2s",
    "--graceful-shutdown-timeout",
    "2s",
)

StartProxy = Callable[..., ProxyProcess]


def _start(upstream_url: str, home: Path, flags: tuple[str, ...]) -> ProxyProcess:
    args = ["--upstream", upstream_url, "--listen", "127.0.0.1:0", *FLAGS, *flags]
    return ProxyProcess(args, home=home).start()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LLMUpstream]:
    server = LLMUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def llm(llm_server: LLMUpstream) -> LLMUpstream:
    llm_server.clear()
    return llm_server


@pytest.fixture(scope="session")
def shared_proxy(
    llm_server: LLMUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    proc = _start(llm_server.url, tmp_path_factory.mktemp("home"), ())
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def proxy(shared_proxy: ProxyProcess, llm: LLMUpstream) -> ProxyProcess:
    assert shared_proxy.running, f"shared proxy died\n{shared_proxy.output()}"
    return shared_proxy


@pytest.fixture
def start_proxy(tmp_path: Path, llm: LLMUpstream) -> Iterator[Callable[..., ProxyProcess]]:
    """``start_proxy(*flags, base_path="")``: a proxy of its own in front of the same
    upstream (under ``base_path`` when given)."""
    started: list[ProxyProcess] = []

    def start(*flags: str, base_path: str = "") -> ProxyProcess:
        proc = _start(llm.url + base_path, tmp_path, flags)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def http(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=15, trust_env=False) as client:
        yield client
