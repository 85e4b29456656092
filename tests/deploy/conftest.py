"""Fixtures for deployment tests: a fake upstream, and proxies (often supervisors) that are
always stopped at teardown, workers included."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxy_process import ProxyGroup, ProxyProcess
from tests.support.rawhttp import RawResponse, request
from tests.support.upstream import FakeUpstream

FAST = ("--upstream-timeout", "5s", "--upstream-connect-timeout", "2s")

Start = Callable[..., ProxyProcess]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def start(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Start]:
    """``start(*flags, env=None, command=None, listen=True)``: the proxy with a SQLite CCR
    store in this test's tmp dir unless the flags choose otherwise."""
    with ProxyGroup(end=stop) as group:

        def run(
            *flags: str,
            env: dict[str, str] | None = None,
            command: list[str] | None = None,
            listen: bool = True,
            timeout: float = 20.0,
        ) -> ProxyProcess:
            args = ["--upstream", upstream.url, *FAST]
            if listen:
                args += ["--listen", "127.0.0.1:0"]
            if "--ccr-backend" not in flags and "--ccr-path" not in flags:
                args += ["--ccr-path", str(tmp_path / f"ccr{len(group.started)}.sqlite3")]
            return group.start([*args, *flags], tmp_path, env=env, command=command, timeout=timeout)

        yield run


def worker_pids(proc: ProxyProcess) -> list[int]:
    return [int(e["pid"]) for e in proc.events("worker_started")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); its /proc state says Z
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return False


def stop(proc: ProxyProcess) -> None:
    """SIGTERM and wait; then kill whatever of it (supervisor or worker) is left."""
    if proc.running:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            proc.wait(10)
    proc.kill()
    for pid in worker_pids(proc):
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def get(port: int, path: str, rid: str = "", timeout: float = 5.0) -> RawResponse:
    """A GET on a fresh connection (so the kernel may hand it to any worker)."""
    headers = [("Host", "127.0.0.1"), ("Connection", "close")]
    if rid:
        headers.append(("X-Request-Id", rid))
    return request(port, "GET", path, headers, timeout=timeout)


def stats(port: int) -> dict[str, Any]:
    resp = get(port, "/stats")
    assert resp.status == 200, resp.body
    data: dict[str, Any] = resp.json()
    return data


def served_by(proc: ProxyProcess, prefix: str) -> dict[str, int]:
    """request id → pid of the worker that logged it (0 without workers), for ids starting
    with ``prefix``."""
    return {
        e["request_id"]: int(e.get("pid", 0))
        for e in proc.events("request")
        if str(e.get("request_id", "")).startswith(prefix)
    }
