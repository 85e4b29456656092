"""The two systemd protocols the proxy speaks, with the standard library only.

* Socket activation: systemd (or anything imitating it) hands over listening sockets as fds
  3, 4, … with ``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES``. The variables are meant for
  exactly one process, so they are checked against our pid and removed from the environment
  once read: a worker started later must not mistake them for its own.
* ``sd_notify``: one datagram per state change to the AF_UNIX socket named by
  ``NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without the variable
  every call is a no-op, so the same code runs under systemd, in a container and in tests.

libsystemd is not used: it would be a C dependency for two small, stable wire formats.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import MutableMapping
from dataclasses import dataclass

SD_LISTEN_FDS_START = 3
_LISTEN_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_STATE_CHANGES = frozenset({"READY", "RELOADING", "STOPPING"})


class ActivationError(Exception):
    """The socket-activation variables are present but unusable."""


@dataclass(frozen=True)
class PassedFd:
    fd: int
    name: str


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[PassedFd]:
    """The sockets systemd passed to this process, and the variables removed.

    Variables meant for another process (``LISTEN_PID`` not ours, e.g. inherited from a
    parent that did not clear them) are removed and ignored, as sd_listen_fds does."""
    env = os.environ if environ is None else environ
    raw_count, raw_pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    raw_names = env.get("LISTEN_FDNAMES", "")
    for name in _LISTEN_VARS:
        env.pop(name, None)
    if raw_count is None:
        return []
    try:
        count, pid = int(raw_count), int(raw_pid or "")
    except ValueError:
        raise ActivationError(
            f"LISTEN_FDS={raw_count!r} LISTEN_PID={raw_pid!r}: not numbers"
        ) from None
    if pid != os.getpid() or count <= 0:
        return []
    names = raw_names.split(":") if raw_names else []
    out = []
    for i in range(count):
        fd = SD_LISTEN_FDS_START + i
        try:
            os.fstat(fd)
        except OSError:
            raise ActivationError(f"LISTEN_FDS={count} but fd {fd} is not open") from None
        out.append(PassedFd(fd, names[i] if i < len(names) and names[i] else f"fd{fd}"))
    return out


def _address(path: str) -> str | bytes:
    return "\0" + path[1:] if path.startswith("@") else path


class Notifier:
    """Sends sd_notify states; silent when ``NOTIFY_SOCKET`` is unset.

    Sends never block: the caller is an event loop, and a receiver that is slow to read (a
    busy service manager, a test that listens late) fills the datagram queue of an AF_UNIX
    socket in ten messages, after which a blocking send would stall every connection. A
    ``WATCHDOG=1`` or ``STATUS=`` that does not fit is dropped (the next one follows within
    seconds); a state change (``READY``, ``RELOADING``, ``STOPPING``) is kept, newest only,
    and sent again before the next message, so the manager's view catches up instead of
    missing a transition."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._addr = _address(path) if path else None
        self.watchdog_interval = _watchdog_interval(env)
        self._state: bytes | None = None  # a state change the socket had no room for

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def send(self, *states: str) -> bool:
        """One datagram; False when it was not delivered (kept for later if a state)."""
        if self._addr is None:
            return False
        if self._state is not None and self._deliver(self._state):
            self._state = None
        payload = "\n".join(states).encode()
        if self._deliver(payload):
            return True
        if states[0].split("=", 1)[0] in _STATE_CHANGES:
            self._state = payload
        return False

    def _deliver(self, payload: bytes) -> bool:
        assert self._addr is not None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self._addr)
        except OSError:  # full (EAGAIN), or no manager listening
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"MAINPID={os.getpid()}", f"STATUS={status}")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self, status: str = "draining") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def _watchdog_interval(env: MutableMapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` (systemd's advice), or None when no watchdog is asked of
    this process."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


def child_environ(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The environment for a worker: no notify socket (only the supervisor talks to systemd,
    which is what ``NotifyAccess=main`` enforces), no watchdog, no activation variables."""
    drop = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", *_LISTEN_VARS}
    return {k: v for k, v in environ.items() if k not in drop}
