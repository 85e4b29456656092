"""Where listening sockets come from: systemd socket activation, ``--inherit-fd``, or
``bind`` on ``--listen``.

Kept apart from the server so the supervisor (which opens listeners once and hands them to
its workers) can use it without importing the proxy.
"""

from __future__ import annotations

import socket

from headroom.config import Config
from headroom.systemd import ActivationError, listen_fds
from headroom.values import ListenAddr

BACKLOG = 1024
# Listening descriptors whose connections are TLS (see ``is_tls``).
TLS_FDS: set[int] = set()


class BindError(Exception):
    """A listener could not be opened; maps to exit code 1."""


def bind(addr: ListenAddr) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr.host, addr.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {addr}: {exc.strerror or exc}") from None
    return sock


def adopt(fd: int, source: str) -> socket.socket:
    """Wrap an inherited descriptor, refusing anything but a listening TCP socket (a wrong
    fd number would otherwise fail later, on the first accept, far from its cause)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"{source}: fd {fd} is not a socket ({exc.strerror or exc})") from None
    ok = (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    )
    if not ok:
        sock.detach()  # not ours to close
        raise BindError(f"{source}: fd {fd} is not a listening TCP socket")
    sock.setblocking(False)
    return sock


def open_listeners(config: Config) -> tuple[list[socket.socket], bool]:
    """Listening sockets and whether they were inherited. Inherited sockets (systemd's, then
    ``--inherit-fd``) replace ``--listen``: binding the same port again would fail, and the
    inherited ones are the point of the exercise."""
    try:
        passed = listen_fds()
    except ActivationError as exc:
        raise BindError(f"socket activation: {exc}") from None
    fds = [(p.fd, f"systemd socket {p.name}") for p in passed]
    fds += [(fd, f"--inherit-fd {fd}") for fd in config.inherit_fd]
    TLS_FDS.update(p.fd for p in passed if p.name.lower().startswith(("tls", "https")))
    if fds:
        return [adopt(fd, source) for fd, source in fds], True
    sockets: list[socket.socket] = []
    try:
        for addr in config.listen:
            sockets.append(bind(addr))
        for addr in config.tls_listen:
            sock = bind(addr)
            TLS_FDS.add(sock.fileno())
            sockets.append(sock)
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets, False


def is_tls(sock: socket.socket, config: Config) -> bool:
    """Whether connections on this listener speak TLS: bound here from --tls-listen, a
    systemd socket named tls*/https*, or an inherited socket on a --tls-listen address."""
    if sock.fileno() in TLS_FDS:
        return True
    host, port = sock.getsockname()[:2]
    return any(a.port and a.port == port and a.host == host for a in config.tls_listen)


def shown_addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
