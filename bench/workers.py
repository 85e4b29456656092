"""``--workers``: throughput of two workers against one, a SIGHUP rollout under load, and
the supervisor's memory.

Processes: ``bench.fake_upstream``, the proxy (one process without ``--workers``, or a
supervisor with ``--workers 2``; uvloop, warning-level logs) and ``wrk`` (two threads,
keep-alive). Two rates per setting: ``/small`` through the proxy to the upstream, and
``/healthz``, answered by the proxy itself, which leaves the upstream process out of the
CPU budget. On a 2-core machine wrk and (for ``/small``) the upstream share the cores with
the workers, so the 2-worker ratio is bounded well below 2 by the load generator itself;
the note column says how much CPU wrk left.

The rollout row runs wrk for a few seconds, sends the supervisor SIGHUP in the middle and
counts what wrk saw fail (socket errors and non-2xx). wrk reuses keep-alive connections, so
this is the strict case: a connection whose response was under way when its worker began
to drain. The RSS row is the supervisor's VmRSS with both workers running.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.loadgen import Addr, BenchError
from bench.proxy import _TICK, Proc, WrkResult, _proxy_argv, _python, _wrk

KEYS = ("metric", "unit", "one_worker", "two_workers", "result", "target", "met", "note")
ROLLOUT_TIMEOUT = 60.0


def _row(
    metric: str,
    unit: str,
    one: float | None,
    two: float | None,
    result: float,
    target: str,
    met: bool | None,
    note: str = "",
) -> dict[str, Any]:
    shown = "" if met is None else ("yes" if met else "NO")
    values = (metric, unit, one, two, round(result, 3), target, shown, note)
    return dict(zip(KEYS, values, strict=True))


def _stats(addr: Addr) -> dict[str, Any]:
    conn = http.client.HTTPConnection(addr.host, addr.port, timeout=5)
    try:
        conn.request("GET", "/stats")
        data: dict[str, Any] = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return data


def _wait_workers(addr: Addr, count: int, generation: int = 1) -> list[int]:
    """Worker pids once ``count`` workers of ``generation`` publish their stats."""
    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    while time.monotonic() < deadline:
        rows = _stats(addr).get("workers", {}).get("per_worker", [])
        if len(rows) == count and all(r["generation"] == generation for r in rows):
            return [int(r["pid"]) for r in rows]
        time.sleep(0.1)
    raise BenchError(f"{count} workers of generation {generation} not up in time")


@dataclass(frozen=True)
class Measured:
    wrk: WrkResult
    cpu_us: float  # proxy CPU (all workers) per request
    split: tuple[int, ...]  # requests per worker, when there are several


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _best(url: str, seconds: int, rounds: int, pids: list[int]) -> Measured:
    """The best of ``rounds`` wrk runs, with the CPU the serving processes spent per
    request: on a shared machine the rate drifts with other load, CPU per request less."""
    best: Measured | None = None
    for _ in range(rounds):
        before = sum(_cpu_seconds(p) for p in pids)
        result = _wrk(url, seconds, 32)
        cpu = sum(_cpu_seconds(p) for p in pids) - before
        got = Measured(result, cpu / max(1, result.requests) * 1e6, ())
        if best is None or got.wrk.rps > best.wrk.rps:
            best = got
    assert best is not None
    return best


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


def _wrk_cpu_share(url: str, seconds: int) -> float:
    """CPU wrk itself used per wall second during one run (0-2 on two cores)."""
    before = os.times()
    _wrk(url, seconds, 32)
    after = os.times()
    return (after.children_user + after.children_system - before.children_user
            - before.children_system) / seconds  # fmt: skip


def run(quick: bool) -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found: apt-get install wrk")
    seconds, rounds = (1, 1) if quick else (3, 2)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="headroom-bench-workers-") as tmp:
        workdir = Path(tmp)
        up = Proc("upstream", _python("-m", "bench.fake_upstream"), workdir)
        try:
            one = Proc("one", _proxy_argv(up.addr, "warning"), workdir)
            try:
                single = {
                    p: _best(f"http://{one.addr}{p}", seconds, rounds, [one.pid]) for p in _PATHS
                }
            finally:
                one.stop()
            two = Proc("two", [*_proxy_argv(up.addr, "warning"), "--workers", "2"], workdir)
            try:
                pids = _wait_workers(two.addr, 2)
                double = {}
                for path in _PATHS:
                    before = _per_worker(two.addr)
                    got = _best(f"http://{two.addr}{path}", seconds, rounds, pids)
                    after = _per_worker(two.addr)
                    split = tuple(after[p] - before.get(p, 0) for p in sorted(after))
                    double[path] = replace(got, split=split)
                wrk_cpu = _wrk_cpu_share(f"http://{two.addr}/healthz", seconds)
                rows += _throughput_rows(single, double, wrk_cpu)
                rss = _rss_kib(two.pid) / 1024
                rows.append(
                    _row("supervisor RSS", "MiB", None, round(rss, 1), rss, "<= 30", rss <= 30)
                )
                rows.append(_rollout(two, seconds))
            finally:
                two.stop()
        finally:
            up.stop()
    return rows


_PATHS = ("/small", "/healthz")


def _per_worker(addr: Addr) -> dict[int, int]:
    time.sleep(0.6)  # one publish interval: every worker's file is current
    rows = _stats(addr)["workers"]["per_worker"]
    return {int(r["pid"]): int(r["requests"]) for r in rows}


def _throughput_rows(
    single: dict[str, Measured], double: dict[str, Measured], wrk_cpu: float
) -> list[dict[str, Any]]:
    out = []
    for path in _PATHS:
        one, two = single[path], double[path]
        ratio = two.wrk.rps / one.wrk.rps
        errors = "; ".join(filter(None, (one.wrk.errors, two.wrk.errors)))
        note = (
            f"proxy CPU/req {one.cpu_us:.0f} vs {two.cpu_us:.0f} us; split "
            f"{'/'.join(map(str, two.split))}; wrk {wrk_cpu:.2f} CPU; load "
            f"{os.getloadavg()[0]:.1f}" + (f"; {errors}" if errors else "")
        )
        label = "proxied GET /small" if path == "/small" else "local GET /healthz"
        out.append(
            _row(
                f"{label} throughput",
                "req/s",
                round(one.wrk.rps),
                round(two.wrk.rps),
                ratio,
                ">= 1.6x",
                ratio >= 1.6,
                note,
            )
        )
    return out


def _rollout(two: Proc, seconds: int) -> dict[str, Any]:
    """wrk across a SIGHUP; failed requests are wrk's socket errors plus non-2xx."""
    duration = max(4, 2 * seconds)
    result: list[WrkResult] = []
    load = threading.Thread(
        target=lambda: result.append(_wrk(f"http://{two.addr}/small", duration, 32))
    )
    load.start()
    time.sleep(duration / 3)
    two.popen.send_signal(signal.SIGHUP)
    _wait_workers(two.addr, 2, generation=2)
    load.join(duration + 30)
    if not result:
        raise BenchError("wrk did not finish during the rollout")
    failed = _failed(result[0].errors)
    return _row(
        "SIGHUP rollout under load",
        "failed req",
        None,
        failed,
        failed,
        "0",
        failed == 0,
        f"{result[0].requests} requests; {result[0].errors or 'no errors'}",
    )


def _failed(errors: str) -> int:
    """Sum of wrk's error counters ("Socket errors: connect 0, read 1, ...", "Non-2xx ...")."""
    total = 0
    for part in errors.replace(";", ",").split(","):
        digits = "".join(ch for ch in part.split(":")[-1] if ch.isdigit())
        total += int(digits) if digits else 0
    return total
