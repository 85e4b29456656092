"""HTTP/1.1 over a bare socket, for requests no well-behaved client would send.

Malformed framing, oversized heads, trickled bytes and exact header order need a client
that writes precisely the bytes a test gives it and reads back precisely what came, and
that can tell a clean close from a reset from silence.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool  # the body ended as its framing said; False on early EOF/reset
    raw_head: bytes

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """The exact bytes of a request; nothing is added (no Host, no Content-Length)."""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


class RawConn:
    """A socket plus a read buffer; every read is bounded by a deadline."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False
        self.reset = False

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read more into the buffer; False on EOF/reset. Raises TimeoutError at deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data before the deadline")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("no data before the deadline") from None
        except (ConnectionResetError, BrokenPipeError):
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take_until(self, marker: bytes, deadline: float) -> bytes | None:
        while marker not in self.buf:
            if not self._fill(deadline):
                return None
        out, self.buf = self.buf.split(marker, 1)
        return out + marker

    def _take(self, n: int, deadline: float) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill(deadline):
                out, self.buf = self.buf, b""
                return out, False
        out, self.buf = self.buf[:n], self.buf[n:]
        return out, True

    def read_response(
        self, method: str = "GET", timeout: float = 5.0, informational: bool = False
    ) -> RawResponse:
        """Read one response; 1xx responses are skipped unless ``informational``.
        Raises ``ConnectionError`` when the connection ended before a status line."""
        deadline = time.monotonic() + timeout
        while True:
            head = self._take_until(b"\r\n\r\n", deadline)
            if head is None:
                raise ConnectionError(
                    f"closed before a response (reset={self.reset}); partial: {self.buf[:200]!r}"
                )
            status, reason, headers = _parse_head(head)
            if status >= 200 or informational:
                break
        resp = RawResponse(status, reason, headers, b"", True, head)
        if method == "HEAD" or status < 200 or status in (204, 304):
            return resp
        names = {k.lower(): v for k, v in headers}
        if "chunked" in names.get("transfer-encoding", "").lower():
            resp.body, resp.complete = self._read_chunked(deadline)
        elif "content-length" in names:
            resp.body, resp.complete = self._take(int(names["content-length"]), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
            resp.complete = not self.reset
        return resp

    def _read_chunked(self, deadline: float) -> tuple[bytes, bool]:
        body = b""
        while True:
            line = self._take_until(b"\r\n", deadline)
            if line is None:
                return body + self.buf, False
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                trailer_end = self._take_until(b"\r\n", deadline)
                while trailer_end not in (None, b"\r\n"):
                    trailer_end = self._take_until(b"\r\n", deadline)
                return body, trailer_end is not None
            data, ok = self._take(size + 2, deadline)
            body += data[:size]
            if not ok:
                return body, False

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes | None:
        """Bytes up to and including ``marker``; None when the peer closed first."""
        return self._take_until(marker, time.monotonic() + timeout)

    def closed_within(self, timeout: float) -> bool:
        """True when the peer closes (FIN or RST) within ``timeout``; bytes that arrive
        meanwhile are kept in the buffer."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            return False
        return True

    def silent_for(self, seconds: float) -> bool:
        """True when nothing at all arrives (and the socket stays open) for ``seconds``."""
        if self.buf or self.eof:
            return False
        try:
            self._fill(time.monotonic() + seconds)
        except TimeoutError:
            return True
        return False  # data arrived, or the peer closed


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def request(
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    timeout: float = 5.0,
) -> RawResponse:
    """One request on a fresh connection (Host is the caller's to include)."""
    with RawConn(port, timeout=timeout) as conn:
        conn.send(build_request(method, target, headers, body))
        return conn.read_response(method, timeout)
