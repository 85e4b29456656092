"""``--workers N``: a supervisor and real worker processes on one shared listening socket."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from headroom.ccr.markers import find_keys
from headroom.config import UsageError, load
from tests.deploy.conftest import (
    Start,
    alive,
    get,
    served_by,
    stats,
    stop,
    worker_pids,
)
from tests.e2e.traffic import claude_code_body, claude_step, encode, service_log
from tests.support.proxy_process import REPO, ProxyProcess, proxy_env, run_cli
from tests.support.rawhttp import request
from tests.support.upstream import FakeUpstream
from tests.support.waiting import wait_for


def _compressible() -> bytes:
    step = claude_step(0, "Bash", {"command": "cat service.log"}, service_log(600))
    return encode(claude_code_body("why did the deploy fail?", [step], stream=False))


def test_two_workers_serve_share_markers_and_stats_add_up(start: Start) -> None:
    proc = start("--workers", "2")
    pids = set(worker_pids(proc))
    assert len(pids) == 2

    echoes = 0
    for i in range(400):  # the kernel picks the worker: go on until both served some
        assert get(proc.port, "/echo", f"echo-{i}").status == 200
        echoes += 1
        if i >= 60 and i % 20 == 0 and _both_served(proc, "echo-", echoes):
            break
    # a marker written through one worker ...
    body = _compressible()
    resp = request(
        proc.port,
        "POST",
        "/v1/messages",
        [("Host", "x"), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        body,
    )
    assert resp.status == 200
    keys = find_keys(resp.body.decode())
    assert keys, "the 600-line log was not compressed"
    # ... is retrieved through both (the kernel spreads fresh connections over the workers)
    retrievals = 0
    for i in range(200):
        got = get(proc.port, f"/v1/retrieve/{keys[0]}", f"ret-{i}")
        assert got.status == 200, got.body
        retrievals += 1
        if i >= 10 and i % 5 == 0 and _both_served(proc, "ret-", retrievals):
            break
    wait_for(lambda: len(served_by(proc, "ret-")) == retrievals, what="request logs")
    assert set(served_by(proc, "ret-").values()) == pids
    assert set(served_by(proc, "echo-").values()) == pids

    def settled() -> dict | None:
        data = stats(proc.port)
        other = data["requests"]["by_path"].get("other", 0)
        return data if other == echoes + retrievals else None

    data = wait_for(settled, what="/stats totals")  # files lag by at most 0.5 s
    assert data["requests"]["by_path"]["/v1/messages"] == 1
    assert data["compression"]["requests_compressed"] == 1
    assert data["ccr_endpoints"]["retrievals_ok"] == retrievals
    workers = data["workers"]
    assert workers["count"] == 2 and {w["pid"] for w in workers["per_worker"]} == pids
    assert sum(w["requests"] for w in workers["per_worker"]) == data["requests"]["total"]
    answered: set[int] = set()
    for _ in range(200):
        answered.add(stats(proc.port)["workers"]["answered_by"])
        if answered == pids:
            break
    assert answered == pids, "every worker answers /stats for the cluster"

    # Another worker's numbers are at most one publish interval (0.5 s) old in any answer.
    wanted = f'headroom_requests_by_path_total{{path="other"}} {echoes + retrievals}\n'

    def metrics() -> str | None:
        text = get(proc.port, "/metrics").body.decode()
        return text if wanted in text else None

    text = wait_for(metrics, what="/metrics totals")
    series = [line for line in text.splitlines() if line.startswith("headroom_worker_requests")]
    assert len(series) == 2 and {int(s.split('pid="')[1].split('"')[0]) for s in series} == pids


def _both_served(proc: ProxyProcess, prefix: str, sent: int) -> bool:
    """Whether both workers logged requests with ``prefix`` (after all ``sent`` logged)."""
    wait_for(lambda: len(served_by(proc, prefix)) == sent, what="request logs")
    return len(set(served_by(proc, prefix).values())) == 2


def test_killed_worker_is_replaced_and_its_counts_kept(start: Start) -> None:
    proc = start("--workers", "2")
    for i in range(20):
        assert get(proc.port, "/echo", f"a-{i}").status == 200

    def published() -> tuple[int, int] | None:
        """A worker whose file holds all its counts: the totals are complete in a /stats
        answered by the other one (which counts itself live). Its (pid, slot)."""
        data = stats(proc.port)
        workers = data["workers"]
        if data["requests"]["by_path"].get("other", 0) != 20:
            return None
        rows = [w for w in workers["per_worker"] if w["pid"] != workers["answered_by"]]
        return (rows[0]["pid"], rows[0]["worker"]) if rows else None

    victim, slot = wait_for(published, what="a worker with its counts published")
    os.kill(victim, signal.SIGKILL)
    proc.wait_for_log(lambda e: e.get("event") == "worker_exit" and e.get("crashed"), 5)
    proc.wait_for_log(
        lambda e: (
            e.get("event") == "worker_ready" and e.get("worker") == slot and e.get("pid") != victim
        ),
        10,
    )
    for i in range(10):
        assert get(proc.port, "/echo", f"b-{i}").status == 200

    def settled() -> dict | None:
        data = stats(proc.port)
        return data if data["requests"]["by_path"].get("other", 0) == 30 else None

    data = wait_for(settled, what="totals after a crash")
    workers = data["workers"]
    assert workers["count"] == 2 and victim not in {w["pid"] for w in workers["per_worker"]}
    assert workers["retired"]["workers"] == 1
    assert proc.running


def test_sigterm_drains_all_workers_with_requests_in_flight(
    start: Start, upstream: FakeUpstream
) -> None:
    proc = start("--workers", "2", "--ccr-backend", "memory", "--graceful-shutdown-timeout", "8s")
    warning = proc.events("per_worker_state")[0]["message"]
    assert "NOT shared: the CCR store" in warning and "--ccr-backend sqlite" in warning
    assert "memo of compressed tool outputs" in warning

    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def slow(i: int) -> None:
        try:
            resp = get(proc.port, "/slow?delay_ms=2500", f"slow-{i}", timeout=10)
            outcome = (resp.status, resp.header("connection") or "")
        except OSError as exc:
            outcome = (0, repr(exc))
        with lock:
            results.append(outcome)

    threads: list[threading.Thread] = []

    def busy_workers() -> int:
        """Workers with a slow request in flight: the one answering this /stats counts
        that request too, so it needs two."""
        workers = stats(proc.port)["workers"]
        me = workers["answered_by"]
        return sum(1 for w in workers["per_worker"] if w["in_flight"] > (w["pid"] == me))

    for i in range(8):  # the kernel picks the worker; eight make both near certain
        thread = threading.Thread(target=slow, args=(i,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)
    wait_for(lambda: busy_workers() == 2, 2.0, "a request in flight on each worker")
    proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(10)
    assert results == [(200, "close")] * len(threads)
    assert proc.wait(10) == 0
    drains = proc.events("drain_start")
    assert len({d["pid"] for d in drains}) == 2 and all(d["in_flight"] >= 1 for d in drains)
    assert not proc.events("worker_killed")


def test_sighup_replaces_every_worker_without_refusing_a_request(start: Start) -> None:
    proc = start("--workers", "2")
    old = set(worker_pids(proc))
    errors: list[str] = []
    sent = 0
    done = threading.Event()

    def load_loop() -> None:
        nonlocal sent
        while not done.is_set() and sent < 5000:
            try:
                resp = get(proc.port, "/echo", f"hup-{sent}")
                if resp.status != 200:
                    errors.append(f"status {resp.status}")
            except OSError as exc:
                errors.append(repr(exc))
            sent += 1

    client = threading.Thread(target=load_loop)
    client.start()
    try:
        time.sleep(0.3)
        proc.send_signal(signal.SIGHUP)
        proc.wait_for_log(lambda e: e.get("event") == "reload_done", 20)
        wait_for(lambda: len(proc.events("worker_exit")) == 2, 10, "old workers drained")
        time.sleep(0.3)
    finally:
        done.set()
        client.join(10)
    assert errors == []
    new = {w["pid"] for w in stats(proc.port)["workers"]["per_worker"]}
    assert len(new) == 2 and not new & old
    served = set(served_by(proc, "hup-").values())
    assert old <= served and new <= served, "both generations served the load"

    seen: list[int] = []

    def settled() -> dict | None:
        data = stats(proc.port)
        seen.append(data["requests"]["by_path"].get("other", 0))
        return data if seen[-1] == sent else None

    try:
        data = wait_for(settled, what="totals across generations")
    except AssertionError as exc:
        logged = served_by(proc, "hup-")
        unlogged = [i for i in range(sent) if f"hup-{i}" not in logged][:5]
        drains = proc.events("drain_end")
        raise AssertionError(
            f"{exc}: sent {sent}, counted {seen[-5:]}, never logged {unlogged}, {drains}"
        ) from None
    assert data["workers"]["retired"]["workers"] == 2
    assert {w["generation"] for w in data["workers"]["per_worker"]} == {2}


def test_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    result = run_cli(
        [
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--ccr-path",
            str(tmp_path),  # a directory: the store cannot open
        ],
        tmp_path,
        timeout=30,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ccr sqlite" in result.stderr
    assert '"startup_failed"' in result.stdout


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("3", 3), ("auto", len(os.sched_getaffinity(0))), (" AUTO ", len(os.sched_getaffinity(0)))],
)
def test_workers_flag(value: str, wanted: int) -> None:
    assert load(["--upstream", "http://x", "--workers", value]).workers == wanted
    env = {"HEADROOM_PROXY_WORKERS": value}
    assert load(["--upstream", "http://x"], env).workers == wanted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers: must be a positive integer"),
        (["--workers", "many"], "--workers:"),
        (["--workers", "5000"], "--workers: at most 1024"),
        (["--inherit-fd", "1"], "--inherit-fd: file descriptor must be 3 or more"),
        (["--inherit-fd", "x"], "--inherit-fd:"),
    ],
)
def test_bad_deploy_flags(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load(["--upstream", "http://x", *args], {})


def test_without_workers_one_process_serves_and_sighup_is_ignored(start: Start) -> None:
    proc = start()
    assert proc.events("worker_started") == []
    proc.send_signal(signal.SIGHUP)
    proc.wait_for_log(lambda e: e.get("event") == "reload_ignored", 5)
    assert get(proc.port, "/echo").status == 200
    stop(proc)
    assert proc.proc is not None and proc.proc.returncode == 0


def test_inherit_fd_that_is_not_a_listening_socket_is_refused(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        result = subprocess_with_fd(tmp_path, read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 1
    assert f"--inherit-fd {read_end}: fd {read_end} is not a socket" in result.stderr


def subprocess_with_fd(tmp_path: Path, fd: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "headroom.proxy",
            "--upstream",
            "http://127.0.0.1:9",
            "--inherit-fd",
            str(fd),
            "--ccr-backend",
            "memory",
        ],
        cwd=REPO,
        env=proxy_env(tmp_path),
        pass_fds=(fd,),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_workers_do_not_outlive_a_killed_supervisor(start: Start) -> None:
    proc = start("--workers", "2", "--graceful-shutdown-timeout", "2s")
    pids = worker_pids(proc)
    assert proc.proc is not None
    proc.proc.kill()  # SIGKILL: no chance to signal anyone
    proc.wait(5)
    wait_for(lambda: not any(alive(p) for p in pids), 8, "orphaned workers to drain and exit")
    assert len(proc.events("supervisor_gone")) == 2


def test_hung_worker_is_killed_and_replaced(start: Start) -> None:
    proc = start("--workers", "2", "--worker-hang-timeout", "1500ms")
    victim = worker_pids(proc)[1]
    os.kill(victim, signal.SIGSTOP)  # its event loop stops: no heartbeat, no accepts
    try:
        hung = proc.wait_for_log(lambda e: e.get("event") == "worker_hung", 6)
        assert hung["pid"] == victim
        proc.wait_for_log(
            lambda e: (
                e.get("event") == "worker_ready"
                and e.get("pid") not in (victim, None)
                and e.get("worker") == 1
            ),
            10,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    for i in range(20):
        assert get(proc.port, "/echo", f"after-{i}", timeout=3).status == 200
