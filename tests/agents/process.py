"""An agent CLI as a child process that never outlives its test.

The CLIs re-launch themselves and their shell tools spawn more, so each runs in a session
of its own: killing its process group when it ends or times out takes all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

CLI_TIMEOUT = 60.0  # one CLI run, start to exit
KILL_WAIT = 5.0


@dataclass
class Run:
    """One finished CLI run: what it printed, its JSON lines, how long it took."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def document(self) -> dict[str, Any]:
        """The one JSON document on stdout (Gemini CLI's ``-o json``)."""
        value = orjson.loads(self.stdout)
        assert isinstance(value, dict), self.describe()
        return value

    def describe(self) -> str:
        return (
            f"exit {self.returncode} after {self.seconds:.1f}s\n--- stdout ---\n"
            f"{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


class Agent:
    """A CLI process in a session of its own, so the shells and commands it spawns are in
    its process group and die with it."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait(self, timeout: float = CLI_TIMEOUT) -> Run:
        """The finished run; a run past ``timeout`` is killed and returned as it stood."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate(timeout=KILL_WAIT)
            err += f"\n[killed after {timeout}s]"
        self.kill()  # whatever the CLI left running in its group
        run = Run(self.proc.returncode, out, err, time.monotonic() - self.started)
        run.events = json_lines(out)
        return run

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own child's group, by its id
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(KILL_WAIT)


def json_lines(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events
