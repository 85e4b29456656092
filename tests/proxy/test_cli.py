"""Issue 2 point 2: flags, environment, exit codes, listeners."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.proxy.conftest import StartProxy
from tests.support.proxy_process import REPO, proxy_env, run_cli
from tests.support.upstream import FakeUpstream, free_port

UP = "http://127.0.0.1:9"

BAD_FLAGS = [
    (["--upstream-timeout", "10"], "--upstream-timeout"),  # a bare number has no unit
    (["--upstream-connect-timeout", "soon"], "--upstream-connect-timeout"),
    (["--max-body-bytes", "10XB"], "--max-body-bytes"),
    (["--listen", "localhost:8787"], "--listen"),  # hostnames are refused
    (["--listen", "127.0.0.1:70000"], "--listen"),
    (["--log-level", "loud"], "--log-level"),
    (["--graceful-shutdown-timeout", "forever"], "--graceful-shutdown-timeout"),
    (["--upstream-ca", "/nonexistent/ca.pem"], "--upstream-ca"),
    (["--loop", "trio"], "--loop"),
    (["--max-connections", "0"], "--max-connections"),
    (["--header-timeout", "0s"], "--header-timeout"),
    (["--keepalive-timeout", "x"], "--keepalive-timeout"),
    (["--body-timeout", "0s"], "--body-timeout"),
    (["--max-buffered-bytes", "lots"], "--max-buffered-bytes"),
    # one body as large as --max-body-bytes could never be read whole
    (["--max-buffered-bytes", "1MB", "--max-body-bytes", "2MB"], "--max-buffered-bytes"),
    (["--memo-max-bytes", "0"], "--memo-max-bytes"),
    (["--ledger-max-bytes", "lots"], "--ledger-max-bytes"),
    # Each of these used to be accepted at startup and then fail every connection.
    (["--h2-max-streams", "99999999999"], "--h2-max-streams"),
    (["--upstream-ca", "setup.cfg"], "--upstream-ca"),  # a file, but not PEM
    (["--price-table", "/nonexistent/prices.json"], "--price-table"),
    (["--price-table", "setup.cfg"], "--price-table"),  # a file, but not a price table
    (["--retrieve-tool", "sometimes"], "--retrieve-tool"),
]


def _assert_usage_error(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"want one line on stderr, got: {result.stderr!r}"
    assert names in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "flag"), BAD_FLAGS, ids=[f for _, f in BAD_FLAGS])
def test_bad_flag_value_exits_2_naming_the_flag(args: list[str], flag: str, tmp_path: Path) -> None:
    _assert_usage_error(run_cli(["--upstream", UP, *args], tmp_path), flag)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "127.0.0.1:8080", "http://", "http://a b", "http://h/a b"]
)
def test_bad_upstream_exits_2(url: str, tmp_path: Path) -> None:
    _assert_usage_error(run_cli(["--upstream", url], tmp_path), "--upstream")


def test_missing_upstream_exits_2(tmp_path: Path) -> None:
    _assert_usage_error(run_cli(["--listen", "127.0.0.1:0"], tmp_path), "--upstream")


def test_bad_env_value_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run_cli(["--upstream", UP], tmp_path, env={"HEADROOM_PROXY_UPSTREAM_TIMEOUT": "abc"})
    _assert_usage_error(result, "HEADROOM_PROXY_UPSTREAM_TIMEOUT")


def test_bind_failure_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli(
            ["--upstream", UP, "--listen", f"127.0.0.1:{port}", "--ccr-backend", "memory"], tmp_path
        )
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"want one line on stderr, got: {result.stderr!r}"
    assert str(port) in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_every_flag(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in (
        "--listen",
        "--upstream",
        "--upstream-timeout",
        "--upstream-connect-timeout",
        "--max-body-bytes",
        "--log-level",
        "--rewrite-host",
        "--no-rewrite-host",
        "--graceful-shutdown-timeout",
        "--upstream-ca",
        "--loop",
        "--max-connections",
        "--header-timeout",
        "--keepalive-timeout",
    ):
        assert flag in result.stdout, flag


def test_console_script_runs(tmp_path: Path) -> None:
    exe = shutil.which("headroom-proxy")
    if exe is None:
        pytest.skip("headroom-proxy console script not installed (pip install -e .)")
    result = subprocess.run(
        [exe, "--help"],
        cwd=REPO,
        env=proxy_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--upstream" in result.stdout


def test_upstream_from_env_and_flag_wins(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    from_env = start_proxy(None, env={"HEADROOM_PROXY_UPSTREAM": upstream_server.url})
    assert httpx.get(f"{from_env.url}/echo", trust_env=False).status_code == 200
    dead = f"http://127.0.0.1:{free_port()}"
    flag_wins = start_proxy(upstream_server.url, env={"HEADROOM_PROXY_UPSTREAM": dead})
    assert httpx.get(f"{flag_wins.url}/echo", trust_env=False).status_code == 200


def test_listen_from_env(start_proxy: StartProxy, upstream_server: FakeUpstream) -> None:
    proc = start_proxy(upstream_server.url, listen=(), env={"HEADROOM_PROXY_LISTEN": "127.0.0.1:0"})
    assert proc.addrs[0].startswith("127.0.0.1:")
    assert httpx.get(f"{proc.url}/healthz", trust_env=False).status_code == 200


def test_two_listeners_ipv4_and_ipv6(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, listen=("127.0.0.1:0", "[::1]:0"))
    assert len(proc.addrs) == 2, proc.addrs
    v4, v6 = proc.addrs
    assert v4.startswith("127.0.0.1:") and v6.startswith("[::1]:"), proc.addrs
    for addr in proc.addrs:
        resp = httpx.post(f"http://{addr}/echo", content=b"hi", trust_env=False)
        assert (resp.status_code, resp.content) == (200, b"hi")


def test_plain_asyncio_loop(start_proxy: StartProxy, upstream_server: FakeUpstream) -> None:
    proc = start_proxy(upstream_server.url, "--loop", "asyncio")
    resp = httpx.post(f"{proc.url}/echo", content=b"loop", trust_env=False)
    assert (resp.status_code, resp.content) == (200, b"loop")
    assert proc.events("ready")[0].get("loop") == "asyncio", proc.events("ready")


def test_restart_on_the_same_port_right_away(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    """An operator's restart must not fail to bind because of the old process's sockets."""
    first = start_proxy(upstream_server.url)
    for _ in range(3):  # closed connections leave TIME_WAIT entries on the port
        assert httpx.get(f"{first.url}/echo", trust_env=False).status_code == 200
    addr = first.addrs[0]
    first.send_signal(signal.SIGTERM)
    assert first.wait(5) == 0
    second = start_proxy(upstream_server.url, listen=(addr,))
    assert httpx.get(f"{second.url}/echo", trust_env=False).status_code == 200
