"""HTTP/2 and WebSocket through the proxy, each against a baseline from the same run.

* h2 multiplexed small requests (``h2load -c 8 -m 32``, C, not the bottleneck) through the
  proxy, as a share of the HTTP/1.1 path's rate (``wrk -c 32``) on the same proxy and
  upstream (target ≥ 50%).
* WebSocket echo round trip, direct to a ``websockets`` echo server vs through the proxy,
  interleaved on one connection each (target: added p50 ≤ 0.2 ms).
* 1,000 idle WebSocket sessions held through the proxy: the proxy's RSS (target ≤ 100 MiB).

The echo server runs in its own process so the client's and the server's CPU are not the
proxy's; all three share the machine's two cores, which the numbers include.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import websockets

from bench.loadgen import Addr, percentile
from bench.proxy import Proc, _proxy_argv, _python, _raise_fd_limit, _wrk

_ECHO = """
import asyncio, json, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", 0, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"event": "listening", "addr": f"127.0.0.1:{port}"}), flush=True)
        print(json.dumps({"event": "ready"}), flush=True)
        await asyncio.Future()
asyncio.run(main())
"""
_H2LOAD_RPS = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_H2LOAD_OK = re.compile(r"(\d+) succeeded")


def _row(
    metric: str,
    baseline: float | None,
    proxied: float | None,
    result: float | None,
    target: str,
    unit: str,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "baseline": _r(baseline),
        "proxied": _r(proxied),
        "result": _r(result),
        "target": target,
        "unit": unit,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _h2load(url: str, requests: int) -> tuple[float, int]:
    out = subprocess.run(
        ["h2load", "-n", str(requests), "-c", "8", "-m", "32", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rps, ok = _H2LOAD_RPS.search(out), _H2LOAD_OK.search(out)
    if rps is None or ok is None:
        raise RuntimeError(f"h2load output not understood: {out[-400:]}")
    return float(rps.group(1)), int(ok.group(1))


def _h2_vs_h1(proxy: Proc, quick: bool) -> list[dict[str, Any]]:
    if shutil.which("h2load") is None:
        return [
            _row(
                "h2 small GET req/s (h2load -c8 -m32)",
                None,
                None,
                None,
                "needs h2load (nghttp2-client)",
                "",
            )
        ]
    url = f"http://{proxy.addr}/small"
    h1 = _wrk(url, 1 if quick else 5, 32).rps
    h2rps, ok = _h2load(url, 2000 if quick else 30000)
    return [
        _row(
            "h2 vs h1 small GET req/s through the proxy",
            h1,
            h2rps,
            h2rps / h1,
            ">= 0.5 of h1",
            f"ratio; {ok} ok",
        )
    ]


async def _ws_rtts(addrs: list[str], count: int) -> list[list[float]]:
    conns = [await websockets.connect(f"ws://{a}/ws") for a in addrs]
    out: list[list[float]] = [[] for _ in addrs]
    try:
        for i in range(count + 50):
            for series, ws in zip(out, conns, strict=True):
                t0 = time.perf_counter_ns()
                await ws.send("x" * 64)
                await ws.recv()
                if i >= 50:
                    series.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        for ws in conns:
            await ws.close()
    return out


async def _idle_sessions(addr: str, count: int, proxy: Proc) -> tuple[int, int]:
    before = proxy.memory_kib("VmRSS")
    sessions = []
    try:
        for _ in range(count):
            sessions.append(await websockets.connect(f"ws://{addr}/ws", open_timeout=10))
        await asyncio.sleep(0.5)
        return before, proxy.memory_kib("VmRSS")
    finally:
        await asyncio.gather(*(ws.close() for ws in sessions), return_exceptions=True)


def run(quick: bool) -> list[dict[str, Any]]:
    _raise_fd_limit(16384)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="headroom-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        up = Proc("upstream", _python("-m", "bench.fake_upstream"), workdir)
        stack.callback(up.stop)
        proxy = Proc("proxy", _proxy_argv(up.addr, "warning"), workdir)
        stack.callback(proxy.stop)
        rows += _h2_vs_h1(proxy, quick)
        echo = Proc("echo", [sys.executable, "-c", _ECHO], workdir)
        stack.callback(echo.stop)
        ws_proxy = Proc("ws-proxy", _proxy_argv(Addr.parse(str(echo.addr)), "warning"), workdir)
        stack.callback(ws_proxy.stop)
        direct, proxied = asyncio.run(
            _ws_rtts([str(echo.addr), str(ws_proxy.addr)], 200 if quick else 2000)
        )
        d50, p50 = percentile(direct, 0.5), percentile(proxied, 0.5)
        rows.append(_row("WebSocket echo RTT p50", d50, p50, p50 - d50, "added <= 0.2", "ms"))
        d99, p99 = percentile(direct, 0.99), percentile(proxied, 0.99)
        rows.append(_row("WebSocket echo RTT p99", d99, p99, p99 - d99, "", "ms"))
        count = 100 if quick else 1000
        before, after = asyncio.run(_idle_sessions(str(ws_proxy.addr), count, ws_proxy))
        rows.append(
            _row(
                f"{count} idle WebSocket sessions: proxy RSS",
                before / 1024,
                after / 1024,
                after / 1024,
                "<= 100",
                "MiB",
            )
        )
    return rows
