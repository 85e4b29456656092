"""Issue 2 points 4 and 5: byte-exact large bodies both ways, and end-to-end backpressure."""

from __future__ import annotations

import hashlib
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request
from tests.support.upstream import FakeUpstream, pattern

FIVE_MIB = 5 * 1024 * 1024
BIG_STREAM = 256 * 1024 * 1024
# Two hops of loopback socket buffers measured at ~4-5 MiB each when the reader stops; a
# proxy that keeps reading while its sink is full lets the whole stream through instead.
IN_FLIGHT_BOUND = 32 * 1024 * 1024


def _random_bytes(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def _chunks(data: bytes, size: int = 100_003) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_upload_5mib_with_content_length(client: httpx.Client, upstream: FakeUpstream) -> None:
    data = _random_bytes(FIVE_MIB)
    resp = client.post("/upload", content=data)
    assert resp.json() == {"length": FIVE_MIB, "sha256": hashlib.sha256(data).hexdigest()}
    rec = upstream.only()
    assert rec.framing == "content-length"
    assert bytes(rec.body) == data


def test_upload_5mib_chunked(client: httpx.Client, upstream: FakeUpstream) -> None:
    data = _random_bytes(FIVE_MIB)
    resp = client.post("/upload", content=_chunks(data))
    assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest()
    rec = upstream.only()
    assert rec.framing == "chunked"
    assert bytes(rec.body) == data


def test_download_5mib_with_content_length_and_chunked(client: httpx.Client) -> None:
    known = client.get(f"/bytes?n={FIVE_MIB}&cl=1")
    assert known.headers["content-length"] == str(FIVE_MIB)
    assert known.content == pattern(FIVE_MIB)
    unknown = client.get(f"/bytes?n={FIVE_MIB}")
    assert "content-length" not in unknown.headers
    assert unknown.content == pattern(FIVE_MIB)


def test_5mib_both_ways_with_curl(
    proxy: ProxyProcess, upstream: FakeUpstream, tmp_path: Path
) -> None:
    data = _random_bytes(FIVE_MIB)
    up_file, down_file = tmp_path / "up.bin", tmp_path / "down.bin"
    up_file.write_bytes(data)
    upload = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "--http1.1",
            "--data-binary",
            f"@{up_file}",
            "-H",
            "Content-Type: application/octet-stream",
            f"{proxy.url}/upload",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert upload.returncode == 0, upload.stderr
    assert hashlib.sha256(data).hexdigest() in upload.stdout
    assert bytes(upstream.only().body) == data
    download = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "--http1.1",
            "-o",
            str(down_file),
            f"{proxy.url}/bytes?n={FIVE_MIB}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert download.returncode == 0, download.stderr
    assert down_file.read_bytes() == pattern(FIVE_MIB)


def test_download_backpressure_when_client_stops_reading(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(build_request("GET", f"/bytes?n={BIG_STREAM}", [("Host", "x")]))
        rec = upstream.wait_path("/bytes")
        time.sleep(1.5)
        in_flight = rec.bytes_sent
    assert 0 < in_flight < IN_FLIGHT_BOUND, f"upstream pushed {in_flight >> 20} MiB"


def test_upload_backpressure_when_upstream_stops_reading(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    stream = (b"10000\r\n" + b"a" * 0x10000 + b"\r\n") * 16  # well-formed chunks, looped
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request(
                "POST", "/upload?pause_ms=3000", [("Host", "x"), ("Transfer-Encoding", "chunked")]
            )
        )
        upstream.wait_path("/upload")
        conn.sock.setblocking(False)
        accepted, deadline = 0, time.monotonic() + 1.5
        while time.monotonic() < deadline and accepted < BIG_STREAM:
            offset = accepted % len(stream)
            try:
                accepted += conn.sock.send(stream[offset:])
            except BlockingIOError:
                time.sleep(0.01)
    assert accepted < IN_FLIGHT_BOUND, f"proxy accepted {accepted >> 20} MiB while stalled"


def test_paused_download_resumes_intact(proxy: ProxyProcess) -> None:
    """Many pause/resume cycles (a reader that keeps stopping) lose and reorder nothing."""
    n = 24 * 1024 * 1024
    got = bytearray()
    with httpx.stream("GET", f"{proxy.url}/bytes?n={n}", trust_env=False, timeout=20) as resp:
        for chunk in resp.iter_raw():
            got += chunk
            if len(got) % (2 * 1024 * 1024) < len(chunk):
                time.sleep(0.05)  # let every buffer on the way fill up
    assert len(got) == n
    assert got == pattern(n)


def test_paused_upload_resumes_intact(client: httpx.Client, upstream: FakeUpstream) -> None:
    data = _random_bytes(12 * 1024 * 1024)
    resp = client.post("/upload?pause_ms=500", content=_chunks(data), timeout=20)
    assert resp.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_many_concurrent_streams(proxy: ProxyProcess) -> None:
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        with httpx.stream(
            "GET", f"{proxy.url}/sse?n=5&gap_ms=30", trust_env=False, timeout=10
        ) as resp:
            results[i] = resp.read()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    expected = b"".join(f"data: event-{i}\n\n".encode() for i in range(5))
    assert len(results) == 40
    assert all(body == expected for body in results.values())
