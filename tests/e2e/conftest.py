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
from tests.support.proxy_process import ProxyGroup, ProxyProcess

# Learning off: the proxy is shared by every test of a worker, and what one test's scripted
# retrievals teach would change how the next test's outputs compress. The learning tests
# start proxies of their own.
FLAGS = (
    "--learning",
    "off",
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


def _args(upstream_url: str, flags: tuple[str, ...]) -> list[str]:
    return ["--upstream", upstream_url, "--listen", "127.0.0.1:0", *FLAGS, *flags]


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
    with ProxyGroup() as group:
        yield group.start(_args(llm_server.url, ()), tmp_path_factory.mktemp("home"))


@pytest.fixture
def proxy(shared_proxy: ProxyProcess, llm: LLMUpstream) -> ProxyProcess:
    assert shared_proxy.running, f"shared proxy died\n{shared_proxy.output()}"
    return shared_proxy


@pytest.fixture
def start_proxy(tmp_path: Path, llm: LLMUpstream) -> Iterator[Callable[..., ProxyProcess]]:
    """``start_proxy(*flags, base_path="")``: a proxy of its own in front of the same
    upstream (under ``base_path`` when given)."""
    with ProxyGroup() as group:

        def start(*flags: str, base_path: str = "") -> ProxyProcess:
            return group.start(_args(llm.url + base_path, flags), tmp_path)

        yield start


@pytest.fixture
def http(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=15, trust_env=False) as client:
        yield client
