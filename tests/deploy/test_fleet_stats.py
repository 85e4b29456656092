"""``--stats-redis``: two hosts (a supervisor with two workers, and a lone process) publish
to one real Redis; ``/stats?scope=fleet`` on either adds them up."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import Start, get, stop
from tests.support.proxy_process import run_cli
from tests.support.redis_server import RedisServer, need_redis_server
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    need_redis_server()
    with RedisServer() as server:
        yield server.url


def _fleet(port: int) -> dict[str, Any]:
    resp = get(port, "/stats?scope=fleet")
    assert resp.status == 200, resp.body
    data: dict[str, Any] = resp.json()
    return data


def test_fleet_totals_add_up_every_host(start: Start, redis_url: str) -> None:
    host_a = start("--workers", "2", "--stats-redis", redis_url)
    host_b = start("--stats-redis", redis_url)
    for i in range(10):
        assert get(host_a.port, "/echo", f"a-{i}").status == 200
    for i in range(7):
        assert get(host_b.port, "/echo", f"b-{i}").status == 200

    def settled(port: int) -> dict[str, Any] | None:
        data = _fleet(port)
        return data if data["requests"]["by_path"].get("other", 0) == 17 else None

    for port in (host_a.port, host_b.port):
        data = wait_for(lambda p=port: settled(p), 6, "fleet totals")
        assert data["scope"] == "fleet"
        assert sorted(h["workers"] for h in data["hosts"]) == [1, 2]
    assert get(host_a.port, "/stats").json()["requests"]["by_path"]["other"] == 10

    stop(host_b)  # a clean stop takes its key away at once
    assert host_b.proc is not None and host_b.proc.returncode == 0
    wait_for(lambda: len(_fleet(host_a.port)["hosts"]) == 1, 3, "host B leaving the fleet")
    host_a.send_signal(signal.SIGTERM)
    assert host_a.wait(10) == 0


def test_fleet_scope_without_redis_is_a_clear_400(start: Start) -> None:
    proc = start()
    resp = get(proc.port, "/stats?scope=fleet")
    assert resp.status == 400 and b"--stats-redis" in resp.body


def test_unreachable_stats_redis_stops_startup(tmp_path: Path) -> None:
    result = run_cli(
        ["--upstream", "http://127.0.0.1:9", "--listen", "127.0.0.1:0", "--ccr-backend",
         "memory", "--stats-redis", "redis://127.0.0.1:1/0"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--stats-redis:" in result.stderr
