"""Hostile loads against a real proxy: does it stay small and keep answering others?

Each row starts a fresh proxy (``python -m headroom.proxy``, memory CCR store, uvloop,
warning-level logs) in front of ``bench.fake_upstream``, both on 127.0.0.1, and runs one
attack from this process. Meanwhile a separate monitor process (``bench/hostile.py``)
sums VmRSS over the proxy and its descendants every 50 ms and times ``GET /healthz`` on a
fresh connection every 50 ms (2 s timeout; a failed probe counts as 2000 ms), over the
attack and 0.5 s after it. The first row is the same sampling with no attack: on this
shared 2-core machine that row is the noise floor for the latency goals. ``ok`` compares
the measured figures with the row's goal; every loop is bounded in count and time, and
each proxy and whatever it started is gone before the next row begins.

Attacks: pipelined GETs read slowly; bodies that stop (408); more buffered bodies than
``--max-buffered-bytes`` over HTTP/1.1 and h2 (paused, then 503 or 408); PRIORITY and
unknown-type h2 frame floods (GOAWAY ENHANCE_YOUR_CALM); brotli bombs (413); ``kill -9`` of
a proxy, and of one worker, with a compression process running (no orphans).
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from math import inf
from pathlib import Path
from typing import Any

import brotli
from hyperframe.frame import PriorityFrame

from bench.hostile import (
    Body,
    FloodResult,
    H1Request,
    Monitor,
    Pid,
    Sample,
    alive,
    children,
    descendants,
    drive,
    flood,
    h2_upload,
    json_body,
    kill_all,
    label,
    post_head,
    probe_healthz,
    process,
    tally,
    unread_bytes,
    wait_quiet,
)
from bench.loadgen import Addr, connect
from bench.proxy import Proc, _proxy_argv, _python

KEYS = ("attack", "outcome", "rss_start_mb", "rss_peak_mb", "rss_growth_mb",
        "healthz_worst_ms", "healthz_failed", "goal", "ok", "detail")  # fmt: skip
HEALTHZ_MS = 250.0
RSS_SLACK_MB = 64.0  # growth allowed on top of what a row deliberately buffers
ENHANCE_YOUR_CALM = 11
Check = tuple[str, bool]


@dataclass(frozen=True)
class Plan:
    """Sizes and durations; ``--quick`` shrinks each one so the suite takes < 40 s."""

    window_s: float  # baseline and pipelining
    slow_clients: int
    slow_body_timeout_s: float
    cap_mib: int  # --max-buffered-bytes of the buffering rows
    max_body_mib: int
    buffer_body_timeout_s: float
    h1_clients: int
    h1_body_mb: float
    held_clients: int
    held_mb: float
    h2_streams: int
    h2_mb: float
    priority_frames: int
    unknown_frames: int
    sustained_rate: int  # PRIORITY frames per second
    sustained_s: float
    bomb_requests: int
    bomb_mb: int  # decoded size of the brotli bomb
    bomb_limit: str  # --max-body-bytes of the bomb row
    deadline_s: float  # longest any one attack may run
    tail_s: float  # sampling goes on this long after each attack


FULL = Plan(
    window_s=8, slow_clients=20, slow_body_timeout_s=2, cap_mib=256, max_body_mib=64,
    buffer_body_timeout_s=5, h1_clients=30, h1_body_mb=21, held_clients=20, held_mb=50,
    h2_streams=20, h2_mb=26, priority_frames=350_000, unknown_frames=510_000,
    sustained_rate=120_000, sustained_s=5, bomb_requests=40, bomb_mb=600, bomb_limit="100MB",
    deadline_s=60, tail_s=0.5,
)  # fmt: skip
QUICK = Plan(
    window_s=1, slow_clients=20, slow_body_timeout_s=1, cap_mib=16, max_body_mib=8,
    buffer_body_timeout_s=1, h1_clients=8, h1_body_mb=4, held_clients=6, held_mb=6,
    h2_streams=6, h2_mb=4, priority_frames=50_000, unknown_frames=60_000,
    sustained_rate=120_000, sustained_s=1, bomb_requests=8, bomb_mb=64, bomb_limit="16MiB",
    deadline_s=20, tail_s=0.3,
)  # fmt: skip


@dataclass(frozen=True)
class Env:
    upstream: Addr
    workdir: Path


# ------------------------------------------------------------------ rows and goals


def _row(
    attack: str, outcome: str, sample: Sample | None, checks: list[Check], detail: str
) -> dict[str, Any]:
    figures: tuple[Any, ...] = (None,) * 5
    if sample is not None:
        figures = (
            sample.rss_start_mb,
            sample.rss_peak_mb,
            sample.growth_mb,
            sample.worst_ms,
            sample.failed,
        )
    goal = "; ".join(text for text, _ in checks)
    ok = bool(checks) and all(met for _, met in checks)
    return dict(zip(KEYS, (attack, outcome, *figures, goal, ok, detail), strict=True))


def _rss_within(sample: Sample, limit_mb: float) -> Check:
    return f"RSS growth <= {limit_mb:g} MB", sample.growth_mb <= limit_mb


def _healthz_within(sample: Sample, limit_ms: float = HEALTHZ_MS) -> Check:
    return f"healthz worst <= {limit_ms:g} ms", sample.worst_ms <= limit_ms


def _stays_up(proxy: Proc) -> Check:
    """Without it a proxy that died mid-attack would pass every RSS goal."""
    return "proxy stays up", proxy.popen.poll() is None


# ------------------------------------------------------------------ processes


@contextmanager
def _proxy(env: Env, name: str, *flags: str) -> Iterator[Proc]:
    """A fresh proxy for one row; afterwards it and everything it started are gone."""
    proxy = Proc(name, [*_proxy_argv(env.upstream, "warning"), *flags], env.workdir)
    try:
        yield proxy
    finally:
        _stop_tree(proxy)


def _stop_tree(proxy: Proc) -> None:
    left = descendants(proxy.pid) if proxy.popen.poll() is None else []
    try:
        proxy.stop()  # SIGTERM, SIGKILL after 5 s
    finally:
        kill_all(left)  # a helper would follow its parent within 0.5 s; do not wait


def _tool_result_body(size: int) -> bytes:
    """An Anthropic Messages body whose tool_result holds ``size`` bytes of service log:
    over PROCESS_MIN_BYTES (256 KiB), so the proxy starts its compression process."""
    lines: list[str] = []
    total = 0
    while total < size:
        n = len(lines)
        lines.append(
            f"2026-01-01T00:00:{n % 60:02d}Z INFO [api] GET /v1/items/{n} 200 "
            f"{n % 97}ms req={n * 2654435761 % 2**48:012x}"
        )
        total += len(lines[-1]) + 1
    body = {
        "model": "bench",
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": "Why is the service slow?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Bash",
                        "input": {"command": "cat service.log"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "\n".join(lines)}
                ],
            },
        ],
    }
    return json.dumps(body).encode()


def _post_large(addr: Addr) -> str:
    """One large tool_result POST (starts the helper); returns its status or error."""
    body = _tool_result_body(300_000)
    req = H1Request(post_head("/v1/messages", len(body)), Body(body, len(body)))
    drive(addr, [req], 1, time.monotonic() + 30)
    return req.outcome


def _start_helper(addr: Addr, root: int) -> list[Pid]:
    """Start the compression process and wait until it is idle (done importing). The
    buffering rows do this first so its one-time start is not counted as buffered bytes."""
    _post_large(addr)
    return wait_quiet(root, timeout=20)


# ------------------------------------------------------------------ baseline, HTTP/1.1


def _baseline(plan: Plan, env: Env) -> dict[str, Any]:
    with _proxy(env, "baseline") as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            time.sleep(plan.window_s)
        up = _stays_up(proxy)
    s = mon.result
    detail = f"no attack: {s.probes} probes; load {os.getloadavg()[0]:.2f}"
    return _row("baseline", "idle", s, [_healthz_within(s), up], detail)


_PIPELINED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass
class _Pipe:
    sent: int = 0  # bytes
    answers: int = 0
    unread: int | None = None  # bytes the proxy left in its kernel receive queue
    closed: bool = False


def _pipeline(addr: Addr, seconds: float, per_send: int = 1000) -> _Pipe:
    """One connection: ``per_send`` pipelined GETs per send() for ``seconds``, reading the
    answers slowly (64 KiB every 100 ms). A proxy that stops reading leaves our bytes in its
    kernel receive queue (read from /proc/net/tcp at the end) instead of its memory."""
    payload, marker = _PIPELINED * per_send, b"HTTP/1.1 "
    res, out, tail, next_read = _Pipe(), memoryview(b""), b"", 0.0
    with connect(addr, timeout=2.0) as sock:
        sock.setblocking(False)
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end and not res.closed:
            out = out or memoryview(payload)
            readable, writable, _ = select.select(
                [sock] if now >= next_read else [], [sock], [], 0.02
            )
            try:
                if writable:
                    n = sock.send(out)
                    res.sent, out = res.sent + n, out[n:]
                if readable:
                    data = sock.recv(65536)
                    res.closed, next_read = not data, now + 0.1
                    chunk = tail + data
                    res.answers += chunk.count(marker)
                    tail = chunk[-(len(marker) - 1) :]
            except BlockingIOError:
                pass
            except OSError:
                res.closed = True
        res.unread = unread_bytes(addr, [sock.getsockname()]).get(sock.getsockname())
    return res


def _pipelining(plan: Plan, env: Env) -> dict[str, Any]:
    with _proxy(env, "pipelining") as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            res = _pipeline(proxy.addr, plan.window_s)
        up = _stays_up(proxy)
    s = mon.result
    unread = res.unread or 0
    outcome = "closed" if res.closed else ("paused" if unread >= 64 * 1024 else "reading")
    detail = (
        f"sent {res.sent / 1e6:.1f} MB ({res.sent // len(_PIPELINED):,} requests) in "
        f"{plan.window_s:g} s, {res.answers:,} answers read; {unread / 1e6:.1f} MB left "
        "unread in the proxy's socket"
    )
    return _row(
        "pipelining", outcome, s, [_rss_within(s, RSS_SLACK_MB), _healthz_within(s), up], detail
    )


def _slow_body(plan: Plan, env: Env) -> dict[str, Any]:
    n, timeout = plan.slow_clients, plan.slow_body_timeout_s
    flags = ("--max-connections", str(n), "--body-timeout", f"{timeout:g}s")
    reqs = [H1Request(post_head("/v1/messages", 1000), Body(b'{"mod', 5)) for _ in range(n)]
    with _proxy(env, "slow_body", *flags) as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            drive(proxy.addr, reqs, n, time.monotonic() + timeout + 5)
            after = [probe_healthz(proxy.addr) for _ in range(3)]
        up = _stays_up(proxy)
    waits = [r.answered - r.body_done for r in reqs if r.answered and r.body_done]
    all_408 = all(r.status == 408 for r in reqs)
    answered_after = sum(a is not None for a in after)
    checks = [
        (
            f"all {n} get 408 within {timeout + 1:g} s",
            all_408 and max(waits, default=inf) <= timeout + 1,
        ),
        ("/healthz answers after", answered_after == len(after)),
        up,
    ]
    spread = f"{min(waits):.2f}-{max(waits):.2f} s" if waits else "never"
    detail = (
        f"answers after {spread} of silence; /healthz after: {answered_after}/{len(after)}"
        f" ok; every --max-connections slot is held, so probes wait meanwhile"
    )
    return _row(
        "slow_body",
        "408" if all_408 else tally(r.outcome for r in reqs),
        mon.result,
        checks,
        detail,
    )


def _buffer_flags(plan: Plan) -> tuple[str, ...]:
    return (
        "--max-buffered-bytes",
        f"{plan.cap_mib}MiB",
        "--max-body-bytes",
        f"{plan.max_body_mib}MiB",
        "--body-timeout",
        f"{plan.buffer_body_timeout_s:g}s",
    )


def _buffering(
    plan: Plan, env: Env, name: str, reqs: list[H1Request], complete: bool
) -> dict[str, Any]:
    """Every request at once against the buffered route; RSS may grow by the cap plus slack.
    ``complete`` bodies go on to compression: the helper is started first (its one-time
    start is not buffering) and other clients' /healthz must stay fast meanwhile."""
    with _proxy(env, name, *_buffer_flags(plan)) as proxy:
        helper = _start_helper(proxy.addr, proxy.pid) if complete else []
        held: list[int | None] = []
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            t0 = time.monotonic()
            drive(proxy.addr, reqs, len(reqs), t0 + plan.deadline_s,
                  lambda: held.append(_buffered_now(proxy.addr)))  # fmt: skip
            took = time.monotonic() - t0
        up = _stays_up(proxy)
    s = mon.result
    checks = [_rss_within(s, plan.cap_mib + RSS_SLACK_MB), *([_healthz_within(s)] * complete), up]
    detail = (
        f"{len(reqs)} bodies, done in {took:.1f} s; cap {plan.cap_mib} MiB; proxy process "
        f"alone peaked at {s.root_peak_mb:g} MB"
        + (f"; helper started beforehand ({len(helper)} processes)" if complete else "")
        + _stuck_note([r for r in reqs if r.status is None], held)
    )
    return _row(name, tally(r.outcome for r in reqs), s, checks, detail)


def _stuck_note(stuck: list[H1Request], held: list[int | None]) -> str:
    """What the requests still unanswered at the deadline had sent, how much of that the
    proxy had not even read, and what /stats said it held for buffering then."""
    if not stuck:
        return ""
    sent = [r.sent / 1e6 for r in stuck]
    unread = sum(r.unread or 0 for r in stuck) / 1e6
    gauge = f"{held[0] / 1e6:.0f} MB" if held and held[0] is not None else "?"
    whole = sum(r.body_done is not None for r in stuck)
    return (f"; at the deadline {len(stuck)} unanswered had sent {min(sent):.2f}-"
            f"{max(sent):.2f} MB each ({whole} all they meant to; {unread:.0f} MB in all still "
            f"unread in the proxy's sockets); /stats buffered_request_bytes {gauge}")  # fmt: skip


def _buffered_now(addr: Addr) -> int | None:
    """The proxy's own count of request bytes held for buffering (/stats)."""
    conn = http.client.HTTPConnection(addr.host, addr.port, timeout=2)
    try:
        conn.request("GET", "/stats")
        value = json.loads(conn.getresponse().read())["connections"]["buffered_request_bytes"]
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return int(value)


def _buffering_h1(plan: Plan, env: Env) -> dict[str, Any]:
    size = int(plan.h1_body_mb * 1e6)
    reqs = [
        H1Request(post_head("/v1/messages", size), json_body(size)) for _ in range(plan.h1_clients)
    ]
    return _buffering(plan, env, "buffering_h1", reqs, complete=True)


def _buffering_h1_held(plan: Plan, env: Env) -> dict[str, Any]:
    size = int(plan.held_mb * 1e6)
    body = json_body(size)
    held = Body(body.prefix, size - 1)  # all but the last byte, then silence
    reqs = [H1Request(post_head("/v1/messages", size), held) for _ in range(plan.held_clients)]
    return _buffering(plan, env, "buffering_h1_held", reqs, complete=False)


# ------------------------------------------------------------------ HTTP/2


def _buffering_h2(plan: Plan, env: Env) -> dict[str, Any]:
    size = int(plan.h2_mb * 1e6)
    with _proxy(env, "buffering_h2", *_buffer_flags(plan)) as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            t0 = time.monotonic()
            res = h2_upload(proxy.addr, plan.h2_streams, size, t0 + plan.deadline_s)
            took = time.monotonic() - t0
        up = _stays_up(proxy)
    s = mon.result
    outcome = tally(st.outcome for st in res.streams)
    if res.goaway is not None:
        outcome += f"/goaway{res.goaway}"
    sent = sum(size - st.left for st in res.streams)
    detail = (
        f"{plan.h2_streams} streams on 1 connection, {sent / 1e6:.0f} MB of DATA sent in "
        f"{took:.1f} s; cap {plan.cap_mib} MiB"
        + (f"; {res.error}" if res.error else "")
        + ("; connection closed" if res.closed else "")
    )
    checks = [_rss_within(s, plan.cap_mib + RSS_SLACK_MB), up]
    return _row("buffering_h2", outcome, s, checks, detail)


_PRIORITY = PriorityFrame(1, depends_on=0, stream_weight=16).serialize()
_UNKNOWN = bytes.fromhex("000000fa0000000000")  # length 0, type 0xfa, no flags, stream 0


def _frame_flood(plan: Plan, env: Env, name: str, frame: bytes, frames: int) -> dict[str, Any]:
    """Every frame in one go on one h2c connection, then wait for the proxy's answer."""
    with _proxy(env, name) as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            t0 = time.monotonic()
            res = flood(proxy.addr, iter([(0.0, frame * frames)]), t0 + 20, linger=2.0)
            took = time.monotonic() - t0
        up = _stays_up(proxy)
    s = mon.result
    outcome = _goaway_word(res.goaway, res.closed)
    checks = [("GOAWAY ENHANCE_YOUR_CALM", res.goaway == ENHANCE_YOUR_CALM), _healthz_within(s), up]
    detail = f"{res.sent // len(frame):,} of {frames:,} frames sent before the answer, {took:.2f} s"
    return _row(name, outcome, s, checks, detail)


def _goaway_word(code: int | None, closed: bool) -> str:
    if code == ENHANCE_YOUR_CALM:
        return "goaway"
    if code is not None:
        return f"goaway{code}"
    return "closed" if closed else "no_answer"


def _h2_priority_flood(plan: Plan, env: Env) -> dict[str, Any]:
    return _frame_flood(plan, env, "h2_priority_flood", _PRIORITY, plan.priority_frames)


def _h2_unknown_flood(plan: Plan, env: Env) -> dict[str, Any]:
    return _frame_flood(plan, env, "h2_unknown_flood", _UNKNOWN, plan.unknown_frames)


def _paced(rate: int, seconds: float, every: float = 0.01) -> Iterator[tuple[float, bytes]]:
    """``rate`` PRIORITY frames a second for ``seconds``, as a batch every ``every`` s."""
    batch = _PRIORITY * int(rate * every)
    start = time.monotonic()
    for i in range(int(seconds / every)):
        yield start + i * every, batch


def _h2_sustained_priority(plan: Plan, env: Env) -> dict[str, Any]:
    """The paced flood goes on over new connections after each GOAWAY (at most 1000), so
    the proxy sees the rate for the whole duration, not just until the first GOAWAY. The
    connection open when the time is up keeps the rate for up to 1 s more: one cut short
    before the proxy could judge it would otherwise count as unanswered."""
    results: list[FloodResult] = []
    with _proxy(env, "h2_sustained_priority") as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            schedule = _paced(plan.sustained_rate, plan.sustained_s + 1.0)
            end = time.monotonic() + plan.sustained_s
            while time.monotonic() < end and len(results) < 1000:
                results.append(flood(proxy.addr, schedule, end + 3, linger=1.0))
        up = _stays_up(proxy)
    s = mon.result
    calm = sum(r.goaway == ENHANCE_YOUR_CALM for r in results)
    every = bool(results) and calm == len(results)
    outcome = "goaway" if every else tally(_goaway_word(r.goaway, r.closed) for r in results)
    frames = sum(r.sent for r in results) // len(_PRIORITY)
    checks = [("GOAWAY ENHANCE_YOUR_CALM on every connection", every), _healthz_within(s), up]
    detail = (
        f"{frames:,} frames over {len(results)} connections in {plan.sustained_s:g} s (+<=1 s) "
        f"({plan.sustained_rate:,}/s offered); {calm} got GOAWAY 11"
    )
    return _row("h2_sustained_priority", outcome, s, checks, detail)


# ------------------------------------------------------------------ encodings


@functools.cache
def _bomb(decoded_mb: int) -> bytes:
    """``decoded_mb`` MB of spaces as one brotli stream, compressed in 8 MiB pieces. Quality
    5 gives ~1 KB for 600 MB in ~1 s; quality 11 takes 17 s here for a stream of the same
    size, and the decoder's work is set by the output."""
    comp = brotli.Compressor(quality=5)
    piece = b" " * (8 << 20)
    parts = [comp.process(piece) for _ in range(-(-decoded_mb * 10**6 // len(piece)))]
    return b"".join(parts) + comp.finish()


def _brotli_bomb(plan: Plan, env: Env) -> dict[str, Any]:
    bomb = _bomb(plan.bomb_mb)
    head = post_head("/v1/messages", len(bomb), "Content-Encoding: br\r\n")
    reqs = [H1Request(head, Body(bomb, len(bomb))) for _ in range(plan.bomb_requests)]
    flags = ("--max-body-bytes", plan.bomb_limit)
    with _proxy(env, "brotli_bomb", *flags) as proxy:
        with Monitor(proxy.addr, proxy.pid, plan.tail_s) as mon:
            t0 = time.monotonic()
            drive(proxy.addr, reqs, 2, t0 + plan.deadline_s)
            took = time.monotonic() - t0
        up = _stays_up(proxy)
    s = mon.result
    all_413 = all(r.status == 413 for r in reqs)
    checks = [("every answer 413", all_413), _healthz_within(s), up]
    detail = (
        f"{len(reqs)} x {len(bomb):,} B decoding to {plan.bomb_mb} MB, 2 at a time, "
        f"{took:.1f} s; --max-body-bytes {plan.bomb_limit}"
    )
    return _row(
        "brotli_bomb", "413" if all_413 else tally(r.outcome for r in reqs), s, checks, detail
    )


# ------------------------------------------------------------------ kill -9


def _orphans(target: Pid | None, tree: list[Pid]) -> tuple[list[Pid], dict[int, str]]:
    """``kill -9`` the target, wait 1 s, return which of its descendants still run (and the
    names they had); the survivors are killed on the way out."""
    names = {p.pid: label(p) for p in tree}
    try:
        if target is not None and alive(target):
            os.kill(target.pid, signal.SIGKILL)
        time.sleep(1.0)
        return [p for p in tree if alive(p)], names
    finally:
        kill_all(tree)


def _orphan_row(
    attack: str,
    s: Sample,
    tree: list[Pid],
    left: list[Pid],
    names: dict[int, str],
    post: str,
    note: str,
) -> dict[str, Any]:
    outcome = "no_helper" if not tree else ("no_orphans" if not left else f"orphans{len(left)}")
    checks = [("helper running, 0 descendants alive 1 s after kill -9", bool(tree) and not left)]
    kinds = ", ".join(sorted(names.values())) or "none"
    alive_names = ", ".join(names[p.pid] for p in left) or "none"
    detail = f"descendants: {kinds} (POST {post}); alive after 1 s: {alive_names}; {note}"
    return _row(attack, outcome, s, checks, detail)


def _kill9_orphans(plan: Plan, env: Env) -> dict[str, Any]:
    with _proxy(env, "kill9_orphans") as proxy:
        with Monitor(proxy.addr, proxy.pid, tail=0) as mon:
            post = _post_large(proxy.addr)
            tree = wait_quiet(proxy.pid, timeout=20)
        left, names = _orphans(process(proxy.pid), tree)
        proxy.popen.wait(5)
    return _orphan_row(
        "kill9_orphans",
        mon.result,
        tree,
        left,
        names,
        post,
        "monitor covers the helper start, not the kill",
    )


def _kill9_workers(plan: Plan, env: Env) -> dict[str, Any]:
    with (
        _proxy(env, "kill9_orphans_workers", "--workers", "2") as sup,
        Monitor(sup.addr, sup.pid, plan.tail_s) as mon,
    ):
        post = _post_large(sup.addr)
        worker = _worker_with_helper(sup.pid, timeout=20)
        tree = wait_quiet(worker.pid, timeout=20) if worker else []
        left, names = _orphans(worker, tree) if worker else ([], {})
    return _orphan_row(
        "kill9_orphans_workers",
        mon.result,
        tree,
        left,
        names,
        post,
        "--workers 2, one worker killed; monitor covers the kill",
    )


def _worker_with_helper(supervisor: int, timeout: float) -> Pid | None:
    """The worker that answered the large POST: the one with processes of its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in children(supervisor):
            if descendants(worker.pid):
                return worker
        time.sleep(0.1)
    return None


# ------------------------------------------------------------------ suite

ATTACKS: tuple[tuple[str, Callable[[Plan, Env], dict[str, Any]]], ...] = (
    ("baseline", _baseline),
    ("pipelining", _pipelining),
    ("slow_body", _slow_body),
    ("buffering_h1", _buffering_h1),
    ("buffering_h1_held", _buffering_h1_held),
    ("buffering_h2", _buffering_h2),
    ("h2_priority_flood", _h2_priority_flood),
    ("h2_unknown_flood", _h2_unknown_flood),
    ("h2_sustained_priority", _h2_sustained_priority),
    ("brotli_bomb", _brotli_bomb),
    ("kill9_orphans", _kill9_orphans),
    ("kill9_orphans_workers", _kill9_workers),
)


def run(quick: bool) -> list[dict[str, Any]]:
    """Every attack, or those named in HEADROOM_BENCH_ATTACKS (comma-separated)."""
    plan = QUICK if quick else FULL
    only = {n for n in os.environ.get("HEADROOM_BENCH_ATTACKS", "").split(",") if n}
    rows = []
    with tempfile.TemporaryDirectory(prefix="headroom-bench-hardening-") as tmp:
        workdir = Path(tmp)
        upstream = Proc("upstream", _python("-m", "bench.fake_upstream"), workdir)
        try:
            env = Env(upstream.addr, workdir)
            for name, attack in ATTACKS:
                if only and name not in only and name != "baseline":
                    continue
                try:
                    rows.append(attack(plan, env))
                except Exception as exc:  # one broken row must not hide the others
                    traceback.print_exc(file=sys.stderr)
                    rows.append(
                        _row(
                            name,
                            "error",
                            None,
                            [("attack ran", False)],
                            f"{type(exc).__name__}: {exc}"[:300],
                        )
                    )
        finally:
            upstream.stop()
    return rows
