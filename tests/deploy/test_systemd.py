"""systemd integration on real sockets: socket activation, sd_notify, the unit files."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headroom.systemd import ActivationError, Notifier, child_environ, listen_fds
from tests.deploy.conftest import Start, get, worker_pids
from tests.support.proxy_process import REPO

ACTIVATE = Path(__file__).with_name("activate.py")
DEPLOY = REPO / "deploy"


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: datagrams with the sender's pid."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + path[1:] if path.startswith("@") else path)
        self.messages: list[tuple[int, dict[str, str]]] = []

    def wait(self, key: str, timeout: float) -> tuple[float, int, dict[str, str]]:
        """The next message carrying ``key``, when it arrived and who sent it."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                break
            pid = -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((pid, fields))
            if key in fields:
                return time.monotonic(), pid, fields
        raise AssertionError(f"no {key} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[str, NotifyListener]]:
    path = f"@headroom-test-{uuid.uuid4().hex}"  # abstract: no path length limits
    listener = NotifyListener(path)
    yield path, listener
    listener.close()


@pytest.mark.parametrize("workers", [None, "2"])
def test_socket_activation_and_notify(
    start: Start, notify: tuple[str, NotifyListener], workers: str | None
) -> None:
    path, listener = notify
    flags = ["--workers", workers] if workers else []
    ipv6 = socket.has_ipv6 and _ipv6_loopback()
    addrs = ["127.0.0.1:0", *(["[::1]:0"] if ipv6 else [])]
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"}
    command = [sys.executable, str(ACTIVATE), *addrs, "--"]
    proc = start(*flags, env=env, command=command, listen=False)
    assert proc.proc is not None
    main_pid = proc.proc.pid

    _, pid, ready = listener.wait("READY", 10)
    # READY=1 means answering: the very next request is served at once
    assert get(proc.port, "/healthz", timeout=1.0).status == 200
    assert pid == main_pid and ready["MAINPID"] == str(main_pid) and ready["STATUS"]
    assert len(proc.addrs) == len(addrs) and not any(a.endswith(":0") for a in proc.addrs)
    if ipv6:
        port6 = int(proc.addrs[1].rsplit(":", 1)[1])
        with socket.create_connection(("::1", port6), timeout=2) as s6:
            s6.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s6.recv(100).startswith(b"HTTP/1.1 200")
    listener.wait("WATCHDOG", 2)
    if workers:  # the activation variables were not passed on: workers use handed-down fds
        assert len(worker_pids(proc)) == 2
        for wpid in worker_pids(proc):
            environ = Path(f"/proc/{wpid}/environ").read_bytes().split(b"\0")
            assert not any(v.startswith((b"LISTEN_", b"NOTIFY_SOCKET")) for v in environ)

    proc.send_signal(signal.SIGTERM)
    _, pid, _ = listener.wait("STOPPING", 5)
    assert pid == main_pid
    assert proc.wait(10) == 0
    assert {p for p, _ in listener.messages} == {main_pid}, "only the main pid notifies"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_listen_fds_are_ours_only_and_removed(tmp_path: Path) -> None:
    r, w = os.pipe()  # fds 3/4 are open in a test process anyway; only numbers matter here
    try:
        env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDNAMES": "x"}
        assert listen_fds(env) == [] and env == {}
        env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid()), "LISTEN_FDNAMES": "web"}
        passed = listen_fds(env)
        assert [(p.fd, p.name) for p in passed] == [(3, "web")] and env == {}
        with pytest.raises(ActivationError, match="not numbers"):
            listen_fds({"LISTEN_FDS": "two", "LISTEN_PID": str(os.getpid())})
        with pytest.raises(ActivationError, match=r"LISTEN_FDS=1000 but fd \d+ is not open"):
            listen_fds({"LISTEN_FDS": "1000", "LISTEN_PID": str(os.getpid())})
    finally:
        os.close(r)
        os.close(w)


def test_notifier_paths_and_child_environment(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    listener = NotifyListener(str(path))
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert notifier.watchdog_interval == 1.0
        notifier.status("hello")
        assert listener.wait("STATUS", 1)[2]["STATUS"] == "hello"
    finally:
        listener.close()
    assert not Notifier({}).send("READY=1"), "no NOTIFY_SOCKET: nothing sent"
    assert not Notifier({"NOTIFY_SOCKET": str(path)}).send("READY=1"), "gone: dropped"
    other = {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other).watchdog_interval is None
    env = {"NOTIFY_SOCKET": "x", "LISTEN_FDS": "1", "WATCHDOG_USEC": "5", "PATH": "/bin"}
    assert child_environ(env) == {"PATH": "/bin"}


def test_notifier_never_blocks_on_a_full_socket_and_keeps_the_state_change(
    tmp_path: Path,
) -> None:
    """A manager that reads late: the datagram queue fills (ten messages by default), and a
    blocking send would stall the event loop for as long (the supervisor once never
    announced READY this way). Pings that do not fit are dropped; READY is sent again."""
    path = tmp_path / "notify.sock"
    listener = NotifyListener(str(path))
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        started = time.monotonic()
        delivered = [notifier.send("WATCHDOG=1") for _ in range(600)]
        assert time.monotonic() - started < 2.0, "a send blocked"
        assert not all(delivered), "the queue never filled: the test proves nothing"
        assert not notifier.send("READY=1", "STATUS=up")
        got = [listener.wait("WATCHDOG", 1)[2] for _ in range(delivered.count(True))]
        assert all(g == {"WATCHDOG": "1"} for g in got)
        notifier.watchdog()  # room again: the kept READY goes first
        assert listener.wait("READY", 1)[2] == {"READY": "1", "STATUS": "up"}
        assert listener.wait("WATCHDOG", 1)[2] == {"WATCHDOG": "1"}
    finally:
        listener.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_files_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` wants ExecStart to exist, so the copy points at a real
    executable; everything else is verified as shipped."""
    service = (DEPLOY / "headroom-proxy.service").read_text()
    assert "ExecStart=/usr/local/bin/headroom-proxy " in service
    (tmp_path / "headroom-proxy.service").write_text(
        service.replace("/usr/local/bin/headroom-proxy", os.path.realpath(sys.executable))
    )
    shutil.copy(DEPLOY / "headroom-proxy.socket", tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "headroom-proxy.socket", "headroom-proxy.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "headroom-proxy" not in result.stderr, result.stderr
    for required in (
        "Type=notify",
        "Restart=on-failure",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=headroom",
        "NoNewPrivileges=yes",
        "LimitNOFILE=65536",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "--ccr-path /var/lib/headroom/ccr.sqlite3",
    ):
        assert required in service, required
