"""Fixtures: a fake upstream and the real proxy process in front of it.

One upstream and one proxy are shared per module (starting a process costs more than most
tests); each test gets the upstream with its records cleared. Tests that need other flags
start their own proxy with ``start_proxy``; every process is killed at teardown.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.proxy_process import ProxyGroup, ProxyProcess
from tests.support.upstream import FakeUpstream

# Short timeouts so failure paths finish fast; memory CCR so nothing touches ~/.headroom.
# HEADROOM_TEST_PROXY_FLAGS adds flags to every proxy started (e.g. "--loop asyncio").
FAST_FLAGS = (
    "--ccr-backend",
    "memory",
    "--upstream-timeout",
    "5s",
    "--upstream-connect-timeout",
    "2s",
    "--graceful-shutdown-timeout",
    "3s",
    *shlex.split(os.environ.get("HEADROOM_TEST_PROXY_FLAGS", "")),
)

StartProxy = Callable[..., ProxyProcess]


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    upstream_server.clear()
    return upstream_server


def module_proxy(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, *flags: str
) -> Iterator[ProxyProcess]:
    """The body of a module-scoped proxy fixture: started with the fast flags plus
    ``flags``, killed at the module's end."""
    args = ["--upstream", upstream.url, "--listen", "127.0.0.1:0", *FAST_FLAGS, *flags]
    with ProxyGroup() as group:
        yield group.start(args, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def shared_proxy(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    yield from module_proxy(upstream_server, tmp_path_factory)


@pytest.fixture
def proxy(shared_proxy: ProxyProcess, upstream: FakeUpstream) -> ProxyProcess:
    assert shared_proxy.running, f"shared proxy died\n{shared_proxy.output()}"
    return shared_proxy


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """``start_proxy(upstream_url, *flags, env=None, listen=("127.0.0.1:0",))``."""
    with ProxyGroup() as group:

        def start(
            upstream_url: str | None,
            *flags: str,
            env: dict[str, str] | None = None,
            listen: tuple[str, ...] = ("127.0.0.1:0",),
            fast: bool = True,
        ) -> ProxyProcess:
            args = ["--upstream", upstream_url] if upstream_url else []
            for addr in listen:
                args += ["--listen", addr]
            args += [*(FAST_FLAGS if fast else ()), *flags]
            return group.start(args, tmp_path, env=env)

        yield start


@pytest.fixture
def client(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=10, trust_env=False) as http:
        yield http
