"""Headroom against a plain nginx reverse proxy, in the same run, in front of the same upstream.

nginx is what an operator would otherwise put on the port, so it is the yardstick for what
a proxy costs here: one worker and no master (``master_process off``, so the process whose
CPU is read is the one serving), keep-alive connections to the upstream (``keepalive 64``,
HTTP/1.1, no ``Connection`` header passed on), ``proxy_buffering off`` (an SSE event goes on
as it arrives, as headroom streams it), access log off (headroom's runs at warning level).
Both proxies front one ``bench.fake_upstream``; wrk rounds go direct / nginx / headroom in
turn so a burst of other load on the shared machine hits all three, and the best round of
each counts. CPU per request is read from ``/proc/<pid>/stat`` over every request of every
round: it does not depend on how the two CPUs were shared.

The memory rows send 1,000 mixed requests to each proxy on one keep-alive connection, as an
agent session would (small GETs, SSE streams, 84 KB JSON tool results — a new one each time,
so headroom compresses every one — and the same result re-sent, which its memo answers),
and read the proxy's RSS before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.compression import _anthropic
from bench.loadgen import (
    Addr,
    BenchError,
    Reader,
    connect,
    first_event_ns,
    latencies_ns,
    percentile,
    request_head,
)
from bench.proxy import Proc, _proxy_argv, _python, _row, _Series, _wrk
from tests.corpus import scaled

_CONF = """\
worker_processes 1;
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;  # the default (1000) would close a bench connection
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 64m;
    upstream fake {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def _free_port() -> int:
    """A port for nginx's config (nginx cannot report one it chose). Another process could
    take it before nginx binds; then nginx fails to start and the suite says so."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _nginx(workdir: Path, upstream: Addr) -> Proc:
    conf = workdir / "nginx.conf"
    listen = f"127.0.0.1:{_free_port()}"
    conf.write_text(_CONF.format(dir=workdir, upstream=upstream, listen=listen))
    argv = ["nginx", "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")]
    return Proc("nginx", argv, workdir)


# ------------------------------------------------------------------ measurements


def _throughput(rounds: int, seconds: int, procs: list[Proc]) -> list[_Series]:
    """wrk small GETs, 32 connections, rounds alternating over ``procs``."""
    series = [_Series() for _ in procs]
    for _ in range(rounds):
        for s, proc in zip(series, procs, strict=True):
            before = proc.cpu_seconds()
            s.add(_wrk(f"http://{proc.addr}/small", seconds, 32), proc.cpu_seconds() - before)
    return series


def _added(direct: list[int], proxied: list[int], q: float = 0.5) -> float:
    return (percentile(proxied, q) - percentile(direct, q)) / 1e6


def _mixed(addr: Addr, bodies: list[bytes], repeat: bytes, count: int) -> None:
    """``count`` requests on one keep-alive connection, in rounds of ten: six small GETs, an
    SSE stream of three events, two new tool results, one re-sent."""
    fresh = iter(bodies)
    with connect(addr, timeout=30) as sock:
        reader = Reader(sock)
        for i in range(count):
            kind = i % 10
            if kind < 6:
                sock.sendall(request_head("GET", "/small", addr))
            elif kind == 6:
                sock.sendall(request_head("GET", "/sse?delay_ms=0&events=3", addr))
            else:
                body = repeat if kind == 9 else next(fresh)
                extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                sock.sendall(request_head("POST", "/v1/messages", addr, extra) + body)
            status, _size = reader.response()
            if status != 200:
                raise BenchError(f"mixed request {i} via {addr}: status {status}")


def _tool_results(count: int, size: int) -> list[bytes]:
    """Anthropic requests each carrying a JSON tool result with one record changed."""
    base = json.loads(scaled("json_api_rows", size).text)
    out = []
    for n in range(count):
        records = [dict(r) for r in base]
        records[n % len(records)]["note"] = f"changed in request {n}"
        out.append(_anthropic(json.dumps(records, indent=2)))
    return out


def _memory_rows(nginx: Proc, proxy: Proc, quick: bool) -> list[dict[str, Any]]:
    count = 100 if quick else 1000
    bodies = _tool_results(count // 10 * 2, 21_000 if quick else 85_000)
    repeat = bodies[0]
    found: dict[str, tuple[float, float]] = {}
    for proc in (nginx, proxy):
        start = proc.memory_kib("VmRSS") / 1024
        _mixed(proc.addr, bodies, repeat, count)
        found[proc.name] = (start, proc.memory_kib("VmRSS") / 1024)
    (n0, n1), (h0, h1) = found["nginx"], found["proxy"]
    mix = "6 small GETs, 1 SSE, 2 new 84 KB tool results, 1 re-sent, per 10"
    return [
        _row(
            "RSS at start (direct column: nginx)", "MiB", direct=n0, proxied=h0, result=h0,
            target="headroom <= 40 MiB", met=h0 <= 40,
        ),
        _row(
            f"RSS after {count} mixed requests (direct column: nginx)", "MiB", direct=n1,
            proxied=h1, result=h1, target="headroom <= 60 MiB", met=h1 <= 60,
            note=f"{mix}; growth headroom {h1 - h0:.1f} MiB, nginx {n1 - n0:.1f} MiB",
        ),
    ]  # fmt: skip


def _speed_rows(up: Proc, nginx: Proc, proxy: Proc, quick: bool) -> list[dict[str, Any]]:
    rounds, seconds, samples = (1, 1, 200) if quick else (3, 2, 2000)
    direct, ng, hr = _throughput(rounds, seconds, [up, nginx, proxy])
    load = f"{os.cpu_count()} CPUs shared by wrk, upstream and proxy; load {os.getloadavg()[0]:.1f}"
    d_lat, n_lat, h_lat = latencies_ns([up.addr, nginx.addr, proxy.addr], "/small", samples)
    n50, h50 = _added(d_lat, n_lat), _added(d_lat, h_lat)
    n99, h99 = _added(d_lat, n_lat, 0.99), _added(d_lat, h_lat, 0.99)
    d_sse, n_sse, h_sse = first_event_ns([up.addr, nginx.addr, proxy.addr], 10, samples // 20)
    return [
        _row(
            "small GET req/s through nginx (wrk, 32 conns)", "req/s", direct=direct.rps,
            proxied=ng.rps, result=ng.rps / direct.rps, note=f"{load}; best of {rounds}",
        ),
        _row(
            "small GET req/s through headroom (wrk, 32 conns)", "req/s", direct=direct.rps,
            proxied=hr.rps, result=hr.rps / direct.rps, note=f"{load}; best of {rounds}",
        ),
        _row(
            "small GET req/s, headroom / nginx", "req/s", direct=ng.rps, proxied=hr.rps,
            result=hr.rps / ng.rps, note="direct column = nginx",
        ),
        _row(
            "CPU per small GET, headroom / nginx", "us/req", direct=ng.cpu_us,
            proxied=hr.cpu_us, result=hr.cpu_us / ng.cpu_us,
            note=f"direct column = nginx; the upstream itself: {direct.cpu_us:.0f} us/req",
        ),
        _row(
            f"added latency p50, {samples} sequential GETs (direct column: nginx)", "ms",
            direct=n50, proxied=h50, result=h50 - n50,
            note=f"p99 added: nginx {n99:.3f} ms, headroom {h99:.3f} ms",
        ),
        _row(
            "SSE added time to first event p50 (direct column: nginx)", "ms",
            direct=_added(d_sse, n_sse), proxied=_added(d_sse, h_sse),
            result=_added(d_sse, h_sse) - _added(d_sse, n_sse),
            note=f"{samples // 20} streams each; event sent 10 ms after the headers",
        ),
    ]  # fmt: skip


def run(quick: bool) -> list[dict[str, Any]]:
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: apt-get install {tool}")
    with tempfile.TemporaryDirectory(prefix="headroom-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        up = Proc("upstream", _python("-m", "bench.fake_upstream"), workdir)
        stack.callback(up.stop)
        nginx = _nginx(workdir, up.addr)
        stack.callback(nginx.stop)
        proxy = Proc("proxy", _proxy_argv(up.addr, "warning"), workdir)
        stack.callback(proxy.stop)
        rows = _memory_rows(nginx, proxy, quick)  # first: RSS at start means before any load
        rows += _speed_rows(up, nginx, proxy, quick)
    return rows
