"""Run as a script: fetch a listening socket over a unix socket (SCM_RIGHTS), then exec the
proxy with ``{fd}`` in its arguments replaced by the descriptor's number. This is how a
test (or an operator's tooling) hands one socket to several proxy generations in turn.

Usage: python fdpass.py UNIX_SOCKET_PATH -- --inherit-fd {fd} [flags]
"""

from __future__ import annotations

import os
import socket
import sys


def main() -> None:
    split = sys.argv.index("--")
    path, proxy_args = sys.argv[1], sys.argv[split + 1 :]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        _, fds, _, _ = socket.recv_fds(conn, 16, 1)
    if len(fds) != 1:
        sys.exit(f"fdpass: expected one descriptor, got {len(fds)}")
    fd = fds[0]
    os.set_inheritable(fd, True)
    args = [a.replace("{fd}", str(fd)) for a in proxy_args]
    os.execv(sys.executable, [sys.executable, "-m", "headroom.proxy", *args])


if __name__ == "__main__":
    main()
