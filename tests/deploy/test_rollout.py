"""Zero-downtime rollout: two proxy generations on one inherited listening socket, a client
load running across the switch, not one error."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import Start, served_by, stats
from tests.support.rawhttp import RawConn, build_request, request
from tests.support.waiting import wait_for

FDPASS = Path(__file__).with_name("fdpass.py")


class SocketHolder:
    """Holds the public listening socket (as systemd would) and hands it to each
    generation that asks over a unix socket."""

    def __init__(self, tmp_path: Path) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.listener.getsockname()[1]
        self.path = str(tmp_path / "fd.sock")
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.path)
        self.unix.listen(4)
        self.unix.settimeout(0.2)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.unix.accept()
            except TimeoutError:
                continue
            with conn:
                socket.send_fds(conn, [b"x"], [self.listener.fileno()])

    def command(self) -> list[str]:
        return [sys.executable, str(FDPASS), self.path, "--"]

    def close(self) -> None:
        self.done.set()
        self.thread.join(2)
        self.unix.close()
        self.listener.close()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[SocketHolder]:
    held = SocketHolder(tmp_path)
    yield held
    held.close()


class Load:
    """Two clients in a loop: one opens a connection per request, one keeps its
    connection alive (and reconnects only when told ``Connection: close``)."""

    def __init__(self, port: int, limit: int = 20_000) -> None:
        self.port = port
        self.limit = limit
        self.sent = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._fresh, daemon=True),
            threading.Thread(target=self._keepalive, daemon=True),
        ]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def _next(self) -> int | None:
        with self.lock:
            if self.stop.is_set() or self.sent >= self.limit:
                return None
            self.sent += 1
            return self.sent

    def _fresh(self) -> None:
        while (n := self._next()) is not None:
            try:
                headers = [("Host", "x"), ("Connection", "close"), ("X-Request-Id", f"ro-{n}")]
                resp = request(self.port, "GET", "/echo", headers)
                if resp.status != 200 or not resp.complete:
                    self.errors.append(f"fresh #{n}: status {resp.status}")
            except OSError as exc:
                self.errors.append(f"fresh #{n}: {exc!r}")

    def _keepalive(self) -> None:
        conn: RawConn | None = None
        while (n := self._next()) is not None:
            try:
                if conn is None:
                    conn = RawConn(self.port)
                conn.send(
                    build_request("GET", "/echo", [("Host", "x"), ("X-Request-Id", f"ro-{n}")])
                )
                resp = conn.read_response()
                if resp.status != 200 or not resp.complete:
                    self.errors.append(f"keep-alive #{n}: status {resp.status}")
                if (resp.header("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except OSError as exc:
                self.errors.append(f"keep-alive #{n}: {exc!r}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def test_generation_switch_on_a_shared_socket_loses_nothing(
    start: Start, holder: SocketHolder
) -> None:
    old = start("--inherit-fd", "{fd}", command=holder.command(), listen=False)
    assert old.port == holder.port
    load = Load(holder.port).start()
    try:
        wait_for(lambda: load.sent >= 300, 20, "load before the switch")
        new = start(
            "--inherit-fd", "{fd}", "--workers", "2", command=holder.command(), listen=False
        )
        old.send_signal(signal.SIGTERM)
        assert old.wait(10) == 0
        switched = load.sent
        wait_for(lambda: load.sent >= max(1200, switched + 400), 30, "load after the switch")
    finally:
        load.finish()
    fresh = [e for e in load.errors if e.startswith("fresh")]
    assert fresh == [], fresh[:5]
    assert load.sent >= 1000
    answered = load.sent - len(load.errors)

    def logged() -> int:  # read again each time: the old output may still be in its pipe
        return len(served_by(old, "ro-")) + len(served_by(new, "ro-"))

    with contextlib.suppress(AssertionError):
        wait_for(lambda: logged() == answered, 15, "logs")
    assert logged() == answered, (logged(), answered, load.sent, load.errors[:5])
    by_old = set(served_by(old, "ro-"))
    by_new = served_by(new, "ro-")
    assert by_old and by_new and not by_old & set(by_new)
    assert len(set(by_new.values())) == 2, "both new workers took part"

    def settled() -> bool:
        return stats(holder.port)["requests"]["by_path"].get("other", 0) == len(by_new)

    wait_for(settled, 5, "the new generation's /stats equal the requests it served")
    assert not load.errors, f"keep-alive requests failed at the switch: {load.errors[:2]}"
