"""Proxy overhead against the same fake upstream reached directly, measured in one run.

Processes: ``bench.fake_upstream`` (uvloop, canned responses: far cheaper per request than
the proxy), the proxy (``python -m headroom.proxy``, one worker, uvloop, memory CCR store,
warning-level logs so logging is not what is measured; an info-level twin gives the logging
cost row), and the clients. The throughput load generator is ``wrk``: C, epoll, two threads,
so it is not the bottleneck — but on a 2-core machine wrk, the upstream and the proxy share
both CPUs, so "direct" runs with two busy processes and "proxied" with three, and the ratio
understates what the proxy would do on a machine of its own. The CPU-per-request row
(``/proc/<pid>/stat`` ticks over wrk's request count) is the figure that does not depend on
that sharing. Latency, transfer, SSE and open-stream rows use the raw-socket clients in
``bench/loadgen.py``.

Every row has a baseline from the same run; the machine is shared, absolute numbers drift.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.loadgen import (
    Addr,
    BenchError,
    Reader,
    close_streams,
    connect,
    download,
    first_event_ns,
    hold_streams,
    keepalive_check,
    latencies_ns,
    percentile,
    request_head,
    upload,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
_READY_TIMEOUT = 20.0
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    """Sizes and durations; ``--quick`` shrinks every one of them."""

    wrk_seconds: int
    wrk_rounds: int  # direct, proxied, info-logged in turn; the best round of each counts
    wrk_connections: int
    post_seconds: int
    post_connections: int
    post_bytes: int
    latency_requests: int
    transfer_bytes: int
    sse_delay_ms: int
    sse_samples: int
    open_streams: int


FULL = Plan(2, 3, 32, 3, 16, 100_000, 2000, 1 << 30, 10, 100, 1000)
QUICK = Plan(1, 1, 32, 1, 16, 100_000, 200, 16 * MiB, 5, 10, 50)

_KEYS = ("metric", "unit", "direct", "proxied", "ratio_or_added", "target", "met", "note")


def _row(
    metric: str,
    unit: str,
    *,
    direct: float | None = None,
    proxied: float,
    result: float,
    target: str = "",
    met: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One table row. ``result`` is proxied/direct for rates, proxied-direct for times,
    the growth itself for memory; ``met`` is left blank for rows without a target."""
    values = (
        metric,
        unit,
        _round(direct),
        _round(proxied),
        _round(result),
        target,
        "" if met is None else ("yes" if met else "NO"),
        note,
    )
    return dict(zip(_KEYS, values, strict=True))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ------------------------------------------------------------------ processes


class Proc:
    """A child process speaking the ``listening``/``ready`` JSON-lines startup contract.

    Stdout goes to a file, not a pipe, so an info-level proxy never blocks on a full pipe
    and the bench never spends CPU draining it during a measurement. A process that logs
    nothing at its level (the proxy at ``--log-level warning`` keeps its startup lines at
    info) is found through its listening socket in ``/proc`` and a ``/healthz`` answer.
    """

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT, env=env
            )
        try:
            self.addrs = self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def addr(self) -> Addr:
        return self.addrs[0]

    def _wait_ready(self) -> list[Addr]:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            addrs, ready = self._startup_lines()
            if ready:
                if not addrs:
                    raise BenchError(f"{self.name}: ready without a listening line")
                return addrs
            silent = [a for a in _listening(self.pid) if _healthy(a)]
            if silent:
                return silent
            if self.popen.poll() is not None:
                raise BenchError(f"{self.name} exited {self.popen.returncode}: {self.stderr()}")
            time.sleep(0.02)
        raise BenchError(f"{self.name} not ready within {_READY_TIMEOUT:.0f}s: {self.stderr()}")

    def _startup_lines(self) -> tuple[list[Addr], bool]:
        addrs: list[Addr] = []
        with open(self.out_path, "rb") as f:
            for line in f.read(1 << 20).splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                if event.get("event") == "listening":
                    addrs.append(Addr.parse(event["addr"]))
                elif event.get("event") == "ready":
                    return addrs, True
        return addrs, False

    def stderr(self, limit: int = 2000) -> str:
        text = self.err_path.read_text(errors="replace")
        return text[-limit:].strip() or "(no stderr)"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime

    def memory_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise BenchError(f"{key} missing from /proc/{self.pid}/status")

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where not allowed."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True


def _listening(pid: int) -> list[Addr]:
    """IPv4 TCP sockets in LISTEN state owned by ``pid`` (from /proc/<pid>/fd and
    /proc/net/tcp)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:  # the process is gone or not ours; the caller's poll notices
        return []
    found = []
    for line in table:
        cols = line.split()
        if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
            ip_hex, port_hex = cols[1].split(":")
            ip = ".".join(str(b) for b in reversed(bytes.fromhex(ip_hex)))
            found.append(Addr(ip, int(port_hex, 16)))
    return found


def _healthy(addr: Addr) -> bool:
    try:
        with connect(addr, timeout=2) as sock:
            sock.sendall(request_head("GET", "/healthz", addr))
            return Reader(sock).response()[0] == 200
    except (OSError, BenchError):
        return False


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _proxy_argv(upstream: Addr, log_level: str) -> list[str]:
    return _python(
        "-m",
        "headroom.proxy",
        "--upstream",
        f"http://{upstream}",
        "--listen",
        "127.0.0.1:0",
        "--ccr-backend",
        "memory",
        "--log-level",
        log_level,
        "--loop",
        "uvloop",
        "--graceful-shutdown-timeout",
        "1s",
    )


def _raise_fd_limit(want: int) -> None:
    """Children inherit the limit, so the proxy can hold the open-streams test too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ------------------------------------------------------------------ wrk


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    errors: str


_WRK_RPS = re.compile(r"Requests/sec:\s*([\d.]+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in")
_WRK_ERRORS = re.compile(r"(Socket errors:.*|Non-2xx or 3xx responses:.*)")


def _wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> WrkResult:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", url]
    if script is not None:
        argv[1:1] = ["-s", str(script)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    rps, total = _WRK_RPS.search(done.stdout), _WRK_TOTAL.search(done.stdout)
    if done.returncode != 0 or rps is None or total is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr}")
    errors = "; ".join(m.group(1).strip() for m in _WRK_ERRORS.finditer(done.stdout))
    return WrkResult(float(rps.group(1)), int(total.group(1)), errors)


def _post_body(size: int) -> str:
    """A Messages-shaped JSON body of exactly ``size`` bytes, so the buffered route sees what
    it would see from an agent."""
    shell = '{"model":"bench","max_tokens":1,"messages":[{"role":"user","content":"%s"}]}'
    body = shell % ("x" * (size - len(shell) + 2))
    assert len(body) == size
    return body


def _post_script(workdir: Path, body: str) -> Path:
    """A wrk Lua script POSTing ``body`` as JSON."""
    path = workdir / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body}]==]\n"
    )
    return path


def _cpu_during(proc: Proc, action: Callable[[Addr], T], addr: Addr) -> tuple[T, float]:
    """``action(addr)`` and the CPU seconds ``proc`` used meanwhile."""
    before = proc.cpu_seconds()
    result = action(addr)
    return result, proc.cpu_seconds() - before


# ------------------------------------------------------------------ measurements


@dataclass
class _Series:
    """wrk rounds against one address: best rate, and CPU over all requests of all rounds."""

    best: float = 0.0
    requests: int = 0
    cpu: float = 0.0
    errors: str = ""

    def add(self, result: WrkResult, cpu: float) -> None:
        self.best = max(self.best, result.rps)
        self.requests += result.requests
        self.cpu += cpu
        self.errors = "; ".join(filter(None, [self.errors, result.errors]))

    @property
    def rps(self) -> float:
        return self.best

    @property
    def cpu_us(self) -> float:
        return self.cpu / max(1, self.requests) * 1e6


def _small_get(plan: Plan, up: Proc, proxy: Proc, info_proxy: Proc) -> list[dict[str, Any]]:
    """Rounds alternate direct / proxied / info-logged so a burst of load from other work on
    the shared machine hits all three alike; the best round of each is kept."""
    direct, proxied, logged = _Series(), _Series(), _Series()
    for _ in range(plan.wrk_rounds):
        for series, proc in ((direct, up), (proxied, proxy), (logged, info_proxy)):
            cpu_before = proc.cpu_seconds()
            result = _wrk(f"http://{proc.addr}/small", plan.wrk_seconds, plan.wrk_connections)
            series.add(result, proc.cpu_seconds() - cpu_before)
    up_us, proxy_us = direct.cpu_us, proxied.cpu_us
    ratio = proxied.rps / direct.rps
    errors = "; ".join(f"{k}: {r.errors}" for k, r in (("direct", direct), ("proxied", proxied),
                       ("info", logged)) if r.errors)  # fmt: skip
    shared = f"{os.cpu_count()} CPUs shared by wrk+upstream+proxy; load {os.getloadavg()[0]:.1f}"
    return [
        _row(
            f"small GET req/s, keep-alive, {plan.wrk_connections} conns (wrk)", "req/s",
            direct=direct.rps, proxied=proxied.rps, result=ratio,
            target="ratio >= 0.15", met=ratio >= 0.15, note="; ".join(filter(None, [shared,
            f"best of {plan.wrk_rounds} x {plan.wrk_seconds}s",
            errors])),
        ),
        _row(
            "CPU per small GET (direct: upstream; proxied: proxy)", "us/req",
            direct=up_us, proxied=proxy_us, result=proxy_us / up_us,
            note=f"from /proc/<pid>/stat; info-level proxy {logged.cpu_us:.0f} us/req",
        ),
        _row(
            "small GET req/s with info-level request logs", "req/s",
            direct=proxied.rps, proxied=logged.rps, result=logged.rps / proxied.rps,
            note="direct column = the warning-level proxy; logs go to a file",
        ),
    ]  # fmt: skip


def _latency(plan: Plan, up: Proc, proxy: Proc) -> list[dict[str, Any]]:
    direct, proxied = latencies_ns([up.addr, proxy.addr], "/small", plan.latency_requests)
    rows = []
    for label, q, limit in (("p50", 0.5, 0.3), ("p99", 0.99, 1.0)):
        d, p = percentile(direct, q) / 1e6, percentile(proxied, q) / 1e6
        rows.append(_row(
            f"added latency {label}, {plan.latency_requests} sequential GETs on 1 conn", "ms",
            direct=d, proxied=p, result=p - d, target=f"added <= {limit} ms", met=p - d <= limit,
            note=f"interleaved direct/proxied; load {os.getloadavg()[0]:.1f}",
        ))  # fmt: skip
    return rows


def _post_throughput(plan: Plan, up: Proc, proxy: Proc, workdir: Path) -> list[dict[str, Any]]:
    body = _post_body(plan.post_bytes)
    script = _post_script(workdir, body)
    rows = []
    for path, label in (("/sink", "streamed path"), ("/v1/messages", "buffered /v1/messages")):
        stall = keepalive_check(proxy.addr, path, body.encode())
        results = [
            _wrk(f"http://{p.addr}{path}", plan.post_seconds, plan.post_connections, script)
            for p in (up, proxy)
        ]
        direct, proxied = (r.rps * plan.post_bytes / 1e6 for r in results)
        rows.append(_row(
            f"{plan.post_bytes // 1000} KB POST, {label}, {plan.post_connections} conns (wrk)",
            "MB/s", direct=direct, proxied=proxied, result=proxied / direct,
            note="; ".join(filter(None, [stall, *(r.errors for r in results)])),
        ))  # fmt: skip
    return rows


def _big_transfers(plan: Plan, up: Proc, proxy: Proc) -> list[dict[str, Any]]:
    size = plan.transfer_bytes
    label = f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size // MiB} MiB"
    rows = []
    for kind, action in (
        ("download", lambda a: download(a, size)),
        ("upload", lambda a: upload(a, "/sink", size)),
    ):
        direct_s = action(up.addr)
        before = proxy.memory_kib("VmRSS")
        exact = proxy.reset_peak()
        proxied_s, cpu = _cpu_during(proxy, action, proxy.addr)
        growth = (proxy.memory_kib("VmHWM") - before) / 1024
        rows.append(_row(
            f"{label} streamed {kind}", "MB/s", direct=size / direct_s / 1e6,
            proxied=size / proxied_s / 1e6, result=direct_s / proxied_s,
            note=f"proxy CPU {cpu / size * 1e9:.2f} s per GB",
        ))  # fmt: skip
        rows.append(_row(
            f"{label} streamed {kind}: proxy peak RSS growth", "MiB", proxied=growth,
            result=growth, target="<= 64 MiB", met=growth <= 64,
            note=f"RSS before {before / 1024:.1f} MiB"
            + ("" if exact else "; VmHWM not resettable, growth is an upper bound"),
        ))  # fmt: skip
    return rows


def _sse_first_event(plan: Plan, up: Proc, proxy: Proc) -> list[dict[str, Any]]:
    direct, proxied = first_event_ns([up.addr, proxy.addr], plan.sse_delay_ms, plan.sse_samples)
    d, p = percentile(direct, 0.5) / 1e6, percentile(proxied, 0.5) / 1e6
    p90 = (percentile(proxied, 0.9) - percentile(direct, 0.9)) / 1e6
    return [_row(
        f"SSE time to first event p50 (event sent {plan.sse_delay_ms} ms after headers)", "ms",
        direct=d, proxied=p, result=p - d, target="added <= 1 ms", met=p - d <= 1.0,
        note=f"{plan.sse_samples} streams each; p90 added {p90:.3f} ms",
    )]  # fmt: skip


async def _streams_rss(proxy: Proc, count: int) -> tuple[int, int, int]:
    idle = proxy.memory_kib("VmRSS")
    writers = await hold_streams(proxy.addr, count)
    try:
        await asyncio.sleep(0.3)  # let any per-stream lazy allocation happen
        held = proxy.memory_kib("VmRSS")
    finally:
        await close_streams(writers)
    await asyncio.sleep(0.3)
    return idle, held, proxy.memory_kib("VmRSS")


def _open_streams(plan: Plan, proxy: Proc) -> list[dict[str, Any]]:
    idle, held, after = asyncio.run(_streams_rss(proxy, plan.open_streams))
    total = held / 1024
    return [_row(
        f"{plan.open_streams} concurrent open SSE streams: proxy RSS", "MiB", proxied=total,
        result=(held - idle) / 1024, target="total <= 100 MiB", met=total <= 100,
        note=f"before {idle / 1024:.1f} MiB; {(held - idle) / plan.open_streams:.1f} KiB/stream;"
        f" after close {after / 1024:.1f} MiB; result = growth",
    )]  # fmt: skip


# ------------------------------------------------------------------ suite


@contextmanager
def _processes(workdir: Path) -> Iterator[tuple[Proc, Proc, Proc]]:
    with ExitStack() as stack:
        up = Proc("upstream", _python("-m", "bench.fake_upstream"), workdir)
        stack.callback(up.stop)
        proxy = Proc("proxy", _proxy_argv(up.addr, "warning"), workdir)
        stack.callback(proxy.stop)
        info_proxy = Proc("proxy-info", _proxy_argv(up.addr, "info"), workdir)
        stack.callback(info_proxy.stop)
        yield up, proxy, info_proxy


def run(quick: bool) -> list[dict[str, Any]]:
    plan = QUICK if quick else FULL
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found: apt-get install wrk (.ci/run does)")
    _raise_fd_limit(4 * plan.open_streams + 1024)
    with tempfile.TemporaryDirectory(prefix="headroom-bench-") as tmp:
        workdir = Path(tmp)
        with _processes(workdir) as (up, proxy, info_proxy):
            rows = _small_get(plan, up, proxy, info_proxy)
            info_proxy.stop()  # idle from here on; free its CPU and sockets
            rows += _latency(plan, up, proxy)
            rows += _post_throughput(plan, up, proxy, workdir)
            rows += _big_transfers(plan, up, proxy)
            rows += _sse_first_event(plan, up, proxy)
            rows += _open_streams(plan, proxy)
    return rows
