"""A throw-away ``redis-server`` on 127.0.0.1 and a free port, in its own directory.

Persistence is off (``--save "" --appendonly no``) so nothing outlives the process. The
port comes from binding port 0 and releasing it, which can race with another process; a
start that fails is retried on a new port a few times.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_START_ATTEMPTS = 3
_START_TIMEOUT = 10.0


class RedisUnavailable(RuntimeError):
    """``redis-server`` is not installed."""


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if the test process dies without stopping it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    def __init__(self, workdir: Path | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
        self._binary = binary
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="headroom-redis-"))
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        errors = []
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            error = self._try_start()
            if error is None:
                return self
            errors.append(error)
        raise RuntimeError("redis-server did not start: " + " | ".join(errors))

    def _try_start(self) -> str | None:
        log = self.workdir / f"redis-{self.port}.log"
        self._proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
            ],
            preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
                return f"exited {self._proc.returncode}: {tail.strip()}"
            if _answers_ping(self.port):
                return None
            time.sleep(0.02)
        self.stop()
        return f"no PONG on port {self.port} within {_START_TIMEOUT}s"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def must_run_redis_tests() -> bool:
    """In CI the Redis tests are required: a missing server is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_redis_server() -> None:
    """Skip the calling test when ``redis-server`` is missing (fail it under CI)."""
    import pytest

    if redis_server_binary() is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if must_run_redis_tests():
            pytest.fail(message + " [CI=true: Redis tests must run]")
        pytest.skip(message)
