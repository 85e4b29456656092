"""The real proxy as a child process: start it, learn its ports from its own log, read its
JSON log lines as they come, signal it and wait for its exit, and never leak it.

The proxy is run exactly as an operator runs it (``python -m headroom.proxy``, stdout a
pipe, no PYTHONUNBUFFERED), so a log line that is not flushed when written shows up here
as a hang on startup instead of passing unnoticed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENV_PREFIX = "HEADROOM_PROXY_"


def proxy_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any HEADROOM_PROXY_* leaking in, HOME in a tmp dir
    (so nothing lands in the real ~/.headroom), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.pop("PYTHONUNBUFFERED", None)
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str], home: Path, env: Mapping[str, str] | None = None, timeout: float = 15.0
) -> subprocess.CompletedProcess[str]:
    """Run the proxy to completion (for flags that must make it exit)."""
    return subprocess.run(
        [sys.executable, "-m", "headroom.proxy", *args],
        cwd=REPO,
        env=proxy_env(home, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ProxyProcess:
    def __init__(
        self,
        args: Sequence[str],
        home: Path,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.args = list(args)
        self.command = list(command or [sys.executable, "-m", "headroom.proxy"])
        self.env = proxy_env(home, env)
        self.logs: list[dict[str, Any]] = []
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.addrs: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        self._readers: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> ProxyProcess:
        self.proc = subprocess.Popen(
            [*self.command, *self.args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        for stream, sink in (
            (self.proc.stdout, self._on_stdout),
            (self.proc.stderr, self._on_stderr),
        ):
            thread = threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            thread.start()
            self._readers.append(thread)
        try:
            self.wait_for_log(lambda e: e.get("event") == "ready", timeout)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"proxy not ready within {timeout}s\n{self.output()}") from None
        self.addrs = [e["addr"] for e in self.events("listening")]
        if not self.addrs:
            self.kill()
            raise RuntimeError(f"proxy logged ready but no listening addr\n{self.output()}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for thread in self._readers:
            thread.join(2)

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code; raises ``TimeoutError`` when still running after ``timeout``."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"proxy still running after {timeout}s") from None
        for thread in self._readers:
            thread.join(2)
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        return int(self.addrs[0].rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return f"http://{self.addrs[0]}"

    # ------------------------------------------------------------ logs

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.logs if e.get("event") == name]

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for entry in self.logs:
                    if predicate(entry):
                        return entry
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self.proc is not None
                    and self.proc.poll() is not None
                    and not any(t.is_alive() for t in self._readers)
                ):
                    raise TimeoutError(f"no matching log line within {timeout}s")
                self._changed.wait(min(left, 0.1))

    def request_log(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The per-request log line for ``request_id``."""
        return self.wait_for_log(
            lambda e: e.get("event") == "request" and e.get("request_id") == request_id, timeout
        )

    def output(self) -> str:
        with self._changed:
            return (
                "--- stdout ---\n"
                + "\n".join(self.stdout_lines[-50:])
                + "\n--- stderr ---\n"
                + "\n".join(self.stderr_lines[-50:])
            )

    def _read(self, stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line.rstrip("\n"))
        stream.close()
        with self._changed:
            self._changed.notify_all()

    def _on_stdout(self, line: str) -> None:
        with self._changed:
            self.stdout_lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                self.logs.append(entry)
            self._changed.notify_all()

    def _on_stderr(self, line: str) -> None:
        with self._changed:
            self.stderr_lines.append(line)
            self._changed.notify_all()


class ProxyGroup:
    """Proxy processes a fixture starts, every one ended at teardown (``end``: kill, or a
    gentler stop the fixture passes), so no test leaves a process behind."""

    def __init__(self, end: Callable[[ProxyProcess], None] | None = None) -> None:
        self.started: list[ProxyProcess] = []
        self._end = end or ProxyProcess.kill

    def start(
        self,
        args: Sequence[str],
        home: Path,
        *,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        timeout: float = 10.0,
    ) -> ProxyProcess:
        proc = ProxyProcess(args, home=home, env=env, command=command)
        self.started.append(proc)
        return proc.start(timeout)

    def __enter__(self) -> ProxyGroup:
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.started:
            self._end(proc)
