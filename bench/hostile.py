"""Pieces of the hostile-load suite (``bench/hardening.py``): the proxy's process tree, a
monitor process that samples RSS and probes ``/healthz``, and raw HTTP/1.1 and h2c attack
clients that never block and always stop at a deadline.

The monitor is a process of its own, not a thread of the bench: the attack clients are
Python too, and a probe sharing their GIL would time the bench instead of the proxy.
``python -m bench.hostile monitor HOST:PORT PID`` prints a ``ready`` line, samples until its
stdin closes, then prints one JSON summary line.

Sizes in the ``*_mb`` figures are MiB (VmRSS / 1024).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from h2 import events as h2e
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import H2Error, StreamClosedError
from hyperframe.frame import Frame, GoAwayFrame

from bench.loadgen import Addr, BenchError, Reader

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
PROBE_EVERY = 0.05  # seconds between RSS samples, and between /healthz probe starts
PROBE_TIMEOUT = 2.0  # a probe slower than this failed; a failed probe counts as this long
_TREE_EVERY = 10  # RSS samples between walks of /proc for new descendants
_FILL = memoryview(b"x" * MiB)
_RECV = 256 * 1024

# ------------------------------------------------------------------ process tree

_STATE, _PPID, _UTIME, _STIME, _START = 0, 1, 11, 12, 19  # /proc/<pid>/stat after "comm)"


@dataclass(frozen=True)
class Pid:
    """A process by pid and start time, so a reused pid is never mistaken for it."""

    pid: int
    start: int


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _table() -> dict[int, list[str]]:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) is not None:
            table[int(name)] = fields
    return table


def descendants(root: int) -> list[Pid]:
    """Every live process below ``root`` (children, theirs, ...), from the ppid fields."""
    table = _table()
    kids: dict[int, list[int]] = {}
    for pid, fields in table.items():
        if fields[_STATE] not in "ZX":
            kids.setdefault(int(fields[_PPID]), []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(Pid(child, int(table[child][_START])))
            todo.append(child)
    return found


def children(root: int) -> list[Pid]:
    return [p for p in descendants(root) if (f := _stat(p.pid)) and int(f[_PPID]) == root]


def process(pid: int) -> Pid | None:
    """``pid`` with its start time, or None when it is not running."""
    fields = _stat(pid)
    return None if fields is None else Pid(pid, int(fields[_START]))


def alive(proc: Pid) -> bool:
    fields = _stat(proc.pid)
    return fields is not None and fields[_STATE] not in "ZX" and int(fields[_START]) == proc.start


def label(proc: Pid) -> str:
    """A short name: the multiprocessing role (spawn, resource_tracker) or argv[0]."""
    try:
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "gone"
    role = re.search(r"multiprocessing\.(\w+)", argv)
    if role:
        return role.group(1)
    module = re.search(r"-m\x00([\w.]+)", argv)
    return module.group(1) if module else Path(argv.split("\x00", 1)[0]).name


def kill_all(procs: Iterable[Pid]) -> None:
    """SIGKILL each one still running (the bench's cleanup: nothing may outlive a row)."""
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)


def _cpu_ticks(procs: Iterable[Pid]) -> int:
    total = 0
    for proc in procs:
        if (fields := _stat(proc.pid)) is not None:
            total += int(fields[_UTIME]) + int(fields[_STIME])
    return total


def wait_quiet(root: int, timeout: float, quiet: float = 0.3) -> list[Pid]:
    """``root``'s descendants once there is one and none used CPU for ``quiet`` s (a helper
    that has finished importing), or whatever there is at ``timeout``."""
    deadline = time.monotonic() + timeout
    found: list[Pid] = []
    last: tuple[frozenset[Pid], int] | None = None
    while time.monotonic() < deadline:
        found = descendants(root)
        now = (frozenset(found), _cpu_ticks(found))
        if found and now == last:
            break
        last = now
        time.sleep(quiet)
    return found


def rss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(ln.split()[1]) for ln in lines if ln.startswith("VmRSS:")), 0)
    return total


# ------------------------------------------------------------------ monitor


@dataclass(frozen=True)
class Sample:
    """What the monitor saw while one attack ran."""

    rss_start_mb: float
    rss_peak_mb: float
    root_peak_mb: float  # the proxy process alone, without its helpers
    worst_ms: float
    failed: int
    probes: int

    @property
    def growth_mb(self) -> float:
        return round(self.rss_peak_mb - self.rss_start_mb, 1)


def probe_healthz(addr: Addr, timeout: float = PROBE_TIMEOUT) -> float | None:
    """Milliseconds for one ``GET /healthz`` on a fresh connection (so it also proves the
    listener accepts, and holds no ``--max-connections`` slot between probes); None when it
    failed, answered other than 200 or took longer than ``timeout``."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout) as sock:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                % str(addr).encode()
            )
            sock.settimeout(max(0.001, timeout - (time.perf_counter() - t0)))
            status, _ = Reader(sock).response()
    except (OSError, BenchError, ValueError):
        return None
    ms = (time.perf_counter() - t0) * 1000
    return ms if status == 200 and ms <= timeout * 1000 else None


class Monitor:
    """``with Monitor(addr, pid) as mon: attack()`` then ``mon.result``: RSS summed over
    ``pid`` and its descendants every 50 ms, and a ``/healthz`` probe every 50 ms from a
    separate well-behaved client. ``tail`` seconds after the attack are sampled too."""

    def __init__(self, addr: Addr, pid: int, tail: float = 0.5) -> None:
        self.argv = [sys.executable, "-m", "bench.hostile", "monitor", str(addr), str(pid)]
        self.tail = tail
        self._proc: subprocess.Popen[str] | None = None
        self._result: Sample | None = None

    @property
    def result(self) -> Sample:
        if self._result is None:
            raise BenchError("monitor produced no result")
        return self._result

    def __enter__(self) -> Monitor:
        self._proc = subprocess.Popen(
            self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            self._line(10.0)
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                time.sleep(self.tail)
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.close()
                summary = json.loads(self._line(PROBE_TIMEOUT + 5))
                self._result = Sample(**summary)
                self._proc.wait(5)
        finally:
            self._kill()

    def _line(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise BenchError(f"monitor silent for {timeout:g}s")
        line = self._proc.stdout.readline()
        if not line:
            raise BenchError(f"monitor exited {self._proc.poll()}")
        return line

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)


class _RssSampler:
    def __init__(self, root: int) -> None:
        self.root = root
        self.tree = [root, *(p.pid for p in descendants(root))]
        self.start = self.peak = rss_kib(self.tree)
        self.root_peak = rss_kib([root])

    def run(self, stop: threading.Event) -> None:
        n = 0
        while not stop.wait(PROBE_EVERY):
            n += 1
            if n % _TREE_EVERY == 0:  # a helper may have started; walking /proc costs ms
                self.tree = [self.root, *(p.pid for p in descendants(self.root))]
            root = rss_kib([self.root])
            self.root_peak = max(self.root_peak, root)
            self.peak = max(self.peak, root + rss_kib(self.tree[1:]))


def _probe_loop(addr: Addr, stop: threading.Event, out: list[float | None]) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        out.append(probe_healthz(addr))
        stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - t0)))


def _monitor_main(addr: Addr, root: int) -> None:
    stop = threading.Event()
    rss = _RssSampler(root)
    probes: list[float | None] = []
    threads = [
        threading.Thread(target=rss.run, args=(stop,), daemon=True),
        threading.Thread(target=_probe_loop, args=(addr, stop, probes), daemon=True),
    ]
    for thread in threads:
        thread.start()
    print(json.dumps({"event": "ready"}), flush=True)
    sys.stdin.read()  # until the bench closes it (or dies)
    stop.set()
    for thread in threads:
        thread.join(PROBE_TIMEOUT + 1)
    ms = [PROBE_TIMEOUT * 1000 if p is None else p for p in probes]
    summary = {
        "rss_start_mb": round(rss.start / 1024, 1),
        "rss_peak_mb": round(rss.peak / 1024, 1),
        "root_peak_mb": round(rss.root_peak / 1024, 1),
        "worst_ms": round(max(ms, default=0.0), 1),
        "failed": sum(p is None for p in probes),
        "probes": len(probes),
    }
    print(json.dumps(summary), flush=True)


# ------------------------------------------------------------------ HTTP/1.1 clients


@dataclass(frozen=True)
class Body:
    """``size`` bytes: ``prefix``, then ``x`` filler, then ``suffix``; as large as an attack
    wants without the bench holding it in memory."""

    prefix: bytes
    size: int
    suffix: bytes = b""

    def piece(self, offset: int) -> bytes | memoryview:
        if offset < len(self.prefix):
            return self.prefix[offset : self.size]
        fill_end = self.size - len(self.suffix)
        if offset < fill_end:
            return _FILL[: min(len(_FILL), fill_end - offset)]
        return self.suffix[offset - fill_end :]


def json_body(size: int) -> Body:
    """A Messages-shaped JSON body of exactly ``size`` bytes (one long user string)."""
    return Body(
        b'{"model":"bench","max_tokens":1,"messages":[{"role":"user","content":"', size, b'"}]}'
    )


def post_head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


@dataclass
class H1Request:
    """One request on its own connection; the driver fills in what happened."""

    head: bytes
    body: Body
    status: int | None = None
    error: str = ""  # reset, closed, unanswered, not_started, connect_failed, bad_response
    sent: int = 0  # body bytes sent
    unread: int | None = None  # of those, left in the proxy's socket when still open at the end
    started: float = 0.0
    body_done: float | None = None  # when the last planned byte went out
    answered: float | None = None

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else (self.error or "pending")


class _H1Conn:
    def __init__(self, req: H1Request, sock: socket.socket) -> None:
        self.req, self.sock = req, sock
        self.total = len(req.head) + req.body.size
        self.offset = 0
        self.writing = True
        self.done = False
        self.rbuf = bytearray()

    def _piece(self) -> bytes | memoryview:
        head = self.req.head
        if self.offset < len(head):
            return head[self.offset :]
        return self.req.body.piece(self.offset - len(head))

    def on_writable(self) -> None:
        try:
            self.offset += self.sock.send(self._piece())
        except BlockingIOError:
            return
        except OSError:  # the proxy closed on us; its answer may still be readable
            self.writing = False
            return
        self.req.sent = max(0, self.offset - len(self.req.head))
        if self.offset >= self.total:
            self.writing = False
            self.req.body_done = time.monotonic()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._finish("reset")
            return
        if not data:
            self._finish("closed")
            return
        self.rbuf += data
        if b"\r\n" in self.rbuf:
            try:
                self.req.status = int(bytes(self.rbuf).split(b" ", 2)[1])
            except (IndexError, ValueError):
                self._finish("bad_response")
                return
            self.req.answered = time.monotonic()
            self.done = True  # only the status matters; closing drops the rest

    def _finish(self, error: str) -> None:
        self.req.error = error
        self.done = True


def drive(
    addr: Addr,
    requests: list[H1Request],
    concurrency: int,
    deadline: float,
    at_deadline: Callable[[], None] | None = None,
) -> None:
    """Run ``requests``, each on a fresh connection, at most ``concurrency`` at once, from one
    thread: send head and body as far as the socket takes them, stop sending once answered
    (an early 408/413/503 is read even while the body is still going out). Returns when all
    are answered or failed, or at ``deadline`` (monotonic): then ``at_deadline`` runs while
    the rest are still open, and they get an error and how much of what they sent the proxy
    had left unread in its socket."""
    waiting = list(reversed(requests))
    sel = selectors.DefaultSelector()
    try:
        while (waiting or sel.get_map()) and time.monotonic() < deadline:
            while waiting and len(sel.get_map()) < concurrency:
                _open(sel, addr, waiting.pop())
            for key, mask in sel.select(max(0.0, min(0.05, deadline - time.monotonic()))):
                conn: _H1Conn = key.data
                if mask & selectors.EVENT_READ:
                    conn.on_readable()
                if conn.writing and not conn.done and mask & selectors.EVENT_WRITE:
                    conn.on_writable()
                if conn.done:
                    sel.unregister(conn.sock)
                    conn.sock.close()
                elif not conn.writing and key.events & selectors.EVENT_WRITE:
                    sel.modify(conn.sock, selectors.EVENT_READ, conn)
    finally:
        stuck: list[_H1Conn] = [key.data for key in sel.get_map().values()]
        if stuck and at_deadline is not None:
            at_deadline()
        unread = unread_bytes(addr, [c.sock.getsockname() for c in stuck])
        for conn in stuck:
            conn.req.error = conn.req.error or "unanswered"  # by the deadline
            conn.req.unread = unread.get(conn.sock.getsockname())
            conn.sock.close()
        sel.close()
    for req in waiting:
        req.error = "not_started"


def _open(sel: selectors.BaseSelector, addr: Addr, req: H1Request) -> None:
    req.started = time.monotonic()
    try:  # loopback: the kernel completes the handshake even while the proxy is not accepting
        sock = socket.create_connection((addr.host, addr.port), timeout=2.0)
    except OSError:
        req.error = "connect_failed"
        return
    sock.setblocking(False)
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, _H1Conn(req, sock))


def unread_bytes(server: Addr, clients: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """rx_queue of the server's end of each client's connection, from /proc/net/tcp: bytes
    the client sent that the server has not read (they are in the kernel, not its RSS)."""

    def hexaddr(host: str, port: int) -> str:
        return socket.inet_aton(host)[::-1].hex().upper() + f":{port:04X}"

    local = hexaddr(server.host, server.port)
    wanted = {hexaddr(*c): c for c in clients}
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if wanted else []:
        cols = line.split()
        if cols[1] == local and cols[2] in wanted:
            found[wanted[cols[2]]] = int(cols[4].split(":")[1], 16)
    return found


def tally(outcomes: Iterable[str]) -> str:
    """``["503", "200", "200"]`` -> ``"200x2/503x1"``."""
    return "/".join(f"{k}x{n}" for k, n in sorted(Counter(outcomes).items())) or "none"


# ------------------------------------------------------------------ h2c clients


def h2_preface() -> bytes:
    """The client connection preface and SETTINGS, as h2 writes them."""
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn.data_to_send()


class FrameReader:
    """Splits the proxy's bytes into hyperframe frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        frames = []
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(bytes(self.buf[:9])))
            if len(self.buf) < 9 + length:
                break
            frame.parse_body(memoryview(bytes(self.buf[9 : 9 + length])))
            del self.buf[: 9 + length]
            frames.append(frame)
        return frames


@dataclass
class FloodResult:
    sent: int = 0  # bytes after the preface
    goaway: int | None = None  # the GOAWAY error code, if one came
    closed: bool = False


def flood(
    addr: Addr, schedule: Iterator[tuple[float, bytes]], deadline: float, linger: float = 2.0
) -> FloodResult:
    """One h2c connection: the preface, then each ``(due, frames)`` batch of ``schedule`` once
    ``due`` (monotonic) has come, reading the proxy's frames all along. Sending stops at
    GOAWAY; the call returns when the proxy closes, ``linger`` s after GOAWAY or after the
    last batch, or at ``deadline``. A shared ``schedule`` goes on over later calls."""
    res = FloodResult()
    reader = FrameReader()
    preface = h2_preface()
    out = memoryview(preface)
    batch = next(schedule, None)
    stop_at = deadline
    with socket.create_connection((addr.host, addr.port), timeout=2.0) as sock:
        sock.setblocking(False)
        while (now := time.monotonic()) < stop_at:
            if not out and batch is not None and batch[0] <= now and res.goaway is None:
                out, batch = memoryview(batch[1]), next(schedule, None)
            if not out and (batch is None or res.goaway is not None):
                stop_at = min(stop_at, now + linger)
            due = 0.01 if batch is None else max(0.0, batch[0] - now)
            wait = min(due if not out else 0.01, stop_at - now)
            readable, writable = _select(sock, bool(out), max(0.0, wait))
            if writable:
                try:
                    n = sock.send(out)
                except BlockingIOError:
                    n = 0
                except OSError:
                    res.closed, out = True, memoryview(b"")
                    n = 0
                res.sent += n
                out = out[n:]
            data = _recv(sock) if readable else None
            if data == b"":
                res.closed = True
                break
            for frame in reader.feed(data or b""):
                if isinstance(frame, GoAwayFrame):
                    res.goaway, out = frame.error_code, memoryview(b"")
    res.sent = max(0, res.sent - len(preface))
    return res


def _recv(sock: socket.socket) -> bytes | None:
    """What the socket has: None when nothing yet, b"" once the peer closed or reset it."""
    try:
        return sock.recv(_RECV)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _select(sock: socket.socket, write: bool, timeout: float) -> tuple[bool, bool]:
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
    with selectors.DefaultSelector() as sel:
        sel.register(sock, events)
        got = sel.select(timeout)
    mask = got[0][1] if got else 0
    return bool(mask & selectors.EVENT_READ), bool(mask & selectors.EVENT_WRITE)


@dataclass
class H2Stream:
    sid: int
    left: int
    body: Body
    status: int | None = None
    reset: int | None = None  # RST_STREAM error code
    closed: bool = False  # h2 refused to send more on it

    @property
    def done(self) -> bool:
        return self.status is not None or self.reset is not None or self.closed

    @property
    def outcome(self) -> str:
        if self.status is not None:
            return str(self.status)
        if self.reset is not None:
            return f"rst{self.reset}"
        return "closed" if self.closed else "pending"


@dataclass
class Upload:
    streams: list[H2Stream] = field(default_factory=list)
    goaway: int | None = None
    closed: bool = False
    error: str = ""


class _H2Uploader:
    """The client side of ``h2_upload``: h2 keeps the flow-control books, this feeds it."""

    def __init__(self, addr: Addr, streams: int, size: int) -> None:
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.res = Upload()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", str(addr)),
            (":path", "/v1/messages"),
            ("content-type", "application/json"),
        ]
        for _ in range(streams):
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, headers)
            self.res.streams.append(H2Stream(sid, size, json_body(size)))
        self.by_id = {s.sid: s for s in self.res.streams}

    def produce(self, limit: int) -> bytes:
        """DATA (never END_STREAM) on each open stream, as far as its window allows."""
        queued = 0
        for stream in self.res.streams:
            while not stream.done and stream.left and queued < limit:
                try:
                    n = self._send(stream)
                except StreamClosedError:
                    stream.closed = True
                    break
                if not n:
                    break  # no window left on this stream (or the connection)
                queued += n
        return self.conn.data_to_send()

    def _send(self, stream: H2Stream) -> int:
        n = min(
            self.conn.local_flow_control_window(stream.sid),
            stream.left,
            self.conn.max_outbound_frame_size,
        )
        if n <= 0:
            return 0
        piece = bytes(stream.body.piece(stream.body.size - stream.left)[:n])
        self.conn.send_data(stream.sid, piece)
        stream.left -= len(piece)
        return len(piece)

    def receive(self, data: bytes) -> bytes:
        for event in self.conn.receive_data(data):
            stream = self.by_id.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2e.ResponseReceived) and stream is not None:
                stream.status = _status(event.headers or [])
            elif isinstance(event, h2e.StreamReset) and stream is not None:
                stream.reset = int(event.error_code or 0)
            elif isinstance(event, h2e.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2e.ConnectionTerminated):
                self.res.goaway = int(event.error_code or 0)
        return self.conn.data_to_send()


def _status(headers: Iterable[tuple[bytes | str, bytes | str]]) -> int:
    for name, value in headers:
        if name in (":status", b":status"):
            return int(value)
    raise BenchError("response without :status")


def h2_upload(addr: Addr, streams: int, size: int, deadline: float) -> Upload:
    """One h2c connection opening ``streams`` POST /v1/messages streams and sending ``size``
    bytes of JSON-ish DATA on each without END_STREAM, within the flow-control windows, while
    reading and acknowledging the proxy's frames. Returns once every stream is answered or
    reset, the connection ends, or at ``deadline``."""
    up = _H2Uploader(addr, streams, size)
    out = bytearray(up.conn.data_to_send())
    with socket.create_connection((addr.host, addr.port), timeout=2.0) as sock:
        sock.setblocking(False)
        try:
            while time.monotonic() < deadline and up.res.goaway is None:
                if all(s.done for s in up.res.streams):
                    break
                if len(out) < MiB:
                    out += up.produce(MiB)
                readable, writable = _select(sock, bool(out), 0.05)
                if writable:
                    with contextlib.suppress(BlockingIOError):
                        del out[: sock.send(out)]
                data = _recv(sock) if readable else None
                if data == b"":
                    up.res.closed = True
                    break
                if data:
                    out += up.receive(data)
        except (OSError, H2Error) as exc:
            up.res.error = type(exc).__name__
    return up.res


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "monitor":
        raise SystemExit("usage: python -m bench.hostile monitor HOST:PORT PID")
    _monitor_main(Addr.parse(sys.argv[2]), int(sys.argv[3]))
