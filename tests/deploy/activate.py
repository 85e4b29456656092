"""Stand-in for systemd socket activation, run as a script: bind the listening sockets
given as arguments before ``--``, place them at fds 3, 4, …, set ``LISTEN_FDS``,
``LISTEN_PID`` (our own pid: ``exec`` keeps it) and ``LISTEN_FDNAMES``, then exec the proxy
with the arguments after ``--``.

Usage: python activate.py 127.0.0.1:0 [::1]:0 -- --upstream http://… [flags]
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys


def _listen(addr: str) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, int(port)))
    sock.listen(128)
    return sock


def main() -> None:
    split = sys.argv.index("--")
    addrs, proxy_args = sys.argv[1:split], sys.argv[split + 1 :]
    sockets = [_listen(a) for a in addrs]
    # Park them above the target range first, so placing one never clobbers another.
    parked = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in sockets]
    for sock in sockets:
        sock.close()
    for i, fd in enumerate(parked):
        os.dup2(fd, 3 + i)  # dup2 makes the copy inheritable
        os.close(fd)
    os.environ["LISTEN_FDS"] = str(len(parked))
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDNAMES"] = ":".join(["http"] * len(parked))
    os.execv(sys.executable, [sys.executable, "-m", "headroom.proxy", *proxy_args])


if __name__ == "__main__":
    main()
