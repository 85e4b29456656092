"""HTTP/2 (prior-knowledge h2c) through the proxy: real clients (httpx, curl, h2load), an
HTTP/1.1 fake upstream, and raw frames (h2 as a client, hyperframe) for the defences."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
from hyperframe.frame import PingFrame, SettingsFrame

from tests.support.proxy_process import ProxyGroup, ProxyProcess
from tests.support.upstream import FakeUpstream, pattern

FLAGS = (
    "--ccr-backend",
    "memory",
    "--upstream-timeout",
    "10s",
    "--graceful-shutdown-timeout",
    "5s",
)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 11


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    with ProxyGroup() as group:
        args = ["--upstream", upstream.url, "--listen", "127.0.0.1:0", *FLAGS]
        yield group.start(args, tmp_path_factory.mktemp("h2"))


async def _reached(upstream: FakeUpstream, tag: str) -> None:
    """Wait (off the loop) until the request carrying ``tag`` is at the upstream."""
    await asyncio.to_thread(upstream.wait_for, lambda r: tag in r.target, 5.0)


def _client(proxy: ProxyProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http1=False, http2=True, base_url=proxy.url, trust_env=False, timeout=20
    )


def test_curl_prior_knowledge(proxy: ProxyProcess) -> None:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            f"{proxy.url}/echo",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert out.stdout == "2 200"


def test_hundred_streams_on_one_connection_each_byte_exact(proxy: ProxyProcess) -> None:
    bodies = [random.Random(i).randbytes(1024 * 1024) for i in range(100)]

    async def main() -> list[dict]:
        async with _client(proxy) as client:
            responses = await asyncio.gather(*(client.post("/upload", content=b) for b in bodies))
        assert {r.http_version for r in responses} == {"HTTP/2"}
        return [r.json() for r in responses]

    digests = asyncio.run(main())
    for body, got in zip(bodies, digests, strict=True):
        assert got == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_download_byte_exact_and_response_headers_legal(proxy: ProxyProcess) -> None:
    async def main() -> None:
        async with _client(proxy) as client:
            response = await client.get("/bytes", params={"n": 3_000_000, "cl": 1})
            assert response.content == pattern(3_000_000)
            assert "connection" not in response.headers
            assert response.headers["x-request-id"]

    asyncio.run(main())


def test_sse_over_h2_arrives_event_by_event(proxy: ProxyProcess) -> None:
    async def main() -> list[float]:
        arrivals: list[float] = []
        async with (
            _client(proxy) as client,
            client.stream("GET", "/sse", params={"n": 5, "gap_ms": 150}) as response,
        ):
            async for chunk in response.aiter_raw():
                arrivals.extend(time.monotonic() for _ in range(chunk.count(b"\n\n")))
        return arrivals

    arrivals = asyncio.run(main())
    assert len(arrivals) == 5
    gaps = [b - a for a, b in pairwise(arrivals)]
    assert min(gaps) > 0.08, f"events batched: {gaps}"


def _raw(proxy: ProxyProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    return sock


def _goaway_code(sock: socket.socket, timeout: float = 5.0) -> int | None:
    """Read until the proxy's GOAWAY (its error code) or EOF (None)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.data_to_send()
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return None
        if not data:
            return None
        try:
            events = client.receive_data(data)
        except Exception:  # our fake client may itself object; the GOAWAY was seen first
            return None
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return int(event.error_code)
    raise AssertionError("no GOAWAY and no close within the timeout")


def test_rapid_reset_ends_the_connection_with_enhance_your_calm(proxy: ProxyProcess) -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(client.data_to_send())
    headers = [(":method", "GET"), (":path", "/hang"), (":scheme", "http"), (":authority", "x")]
    for i in range(150):
        stream_id = 1 + 2 * i
        client.send_headers(stream_id, headers, end_stream=True)
        client.reset_stream(stream_id)
    sock.sendall(client.data_to_send())
    assert _goaway_code(sock) == ENHANCE_YOUR_CALM
    sock.close()
    assert httpx.get(f"{proxy.url}/healthz", trust_env=False).status_code == 200


def test_ping_flood_is_stopped(proxy: ProxyProcess) -> None:
    sock = _raw(proxy)
    sock.sendall(
        b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(200))
    )
    assert _goaway_code(sock) == ENHANCE_YOUR_CALM
    sock.close()


def test_malformed_frame_closes_only_that_connection(proxy: ProxyProcess) -> None:
    sock = _raw(proxy)
    # DATA on stream 0 (hyperframe refuses to build it, so by hand): length, type, flags, id
    sock.sendall((5).to_bytes(3, "big") + b"\x00\x00" + (0).to_bytes(4, "big") + b"hello")
    code = _goaway_code(sock)
    assert code not in (0, ENHANCE_YOUR_CALM)
    sock.close()

    async def other() -> int:
        async with _client(proxy) as client:
            return (await client.get("/echo")).status_code

    assert asyncio.run(other()) == 200


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) missing")
def test_h2load_multiplexed_requests_all_succeed(proxy: ProxyProcess) -> None:
    out = subprocess.run(
        ["h2load", "-n", "2000", "-c", "4", "-m", "16", f"{proxy.url}/echo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "2000 succeeded" in out, out


def test_drain_finishes_open_streams_then_goaway(upstream: FakeUpstream, tmp_path: Path) -> None:
    proc = ProxyProcess(
        ["--upstream", upstream.url, "--listen", "127.0.0.1:0", *FLAGS], tmp_path
    ).start()

    async def main() -> int:
        async with _client(proc) as client:
            tag = uuid.uuid4().hex
            slow = asyncio.create_task(client.get("/slow", params={"delay_ms": 600, "t": tag}))
            await _reached(upstream, tag)  # the stream is open upstream: now drain
            proc.send_signal(signal.SIGTERM)
            response = await slow
            return response.status_code

    try:
        assert asyncio.run(main()) == 200
        assert proc.wait(8) == 0
        drain = proc.events("drain_end")
        assert drain and drain[0]["cut"] == 0, json.dumps(drain)
    finally:
        proc.kill()


def test_slow_reader_on_one_stream_does_not_stall_another(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    """Stream 1 never reads its 20 MB download (no stream credit); stream 3 must still be
    answered, and the upstream must have been held back rather than buffered."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(client.data_to_send())

    def get(stream_id: int, path: str) -> None:
        client.send_headers(
            stream_id,
            [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")],
            end_stream=True,
        )
        sock.sendall(client.data_to_send())

    get(1, f"/bytes?n={20_000_000}")
    rec = upstream.wait_path("/bytes")
    get(3, "/echo")
    done = False
    deadline = time.monotonic() + 10
    sock.settimeout(0.5)
    while not done and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        for event in client.receive_data(data):
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                # connection credit only: stream 1 stays stuck at its window
                client.increment_flow_control_window(event.flow_controlled_length)
            if isinstance(event, h2.events.StreamEnded) and event.stream_id == 3:
                done = True
        sock.sendall(client.data_to_send())
    sock.close()
    assert done, "stream 3 starved behind a stalled stream"
    assert rec.bytes_sent < 8_000_000, f"upstream pushed {rec.bytes_sent} bytes unread"


def test_hpack_garbage_ends_only_that_connection(proxy: ProxyProcess) -> None:
    sock = _raw(proxy)
    # HEADERS on stream 1, END_HEADERS, with a header block that is not valid HPACK
    block = b"\xff\xff\xff\xff\xff\xff"
    sock.sendall(len(block).to_bytes(3, "big") + b"\x01\x04" + (1).to_bytes(4, "big") + block)
    code = _goaway_code(sock)
    assert code not in (0, ENHANCE_YOUR_CALM)  # COMPRESSION_ERROR (or PROTOCOL_ERROR)
    sock.close()
    response = subprocess.run(
        [
            "curl",
            "-s",
            "--http2-prior-knowledge",
            f"{proxy.url}/echo",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert response.stdout == "200"


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp (nghttp2-client) missing")
def test_nghttp_concurrent_requests(proxy: ProxyProcess) -> None:
    urls = [f"{proxy.url}/echo?i={i}" for i in range(10)]
    out = subprocess.run(["nghttp", "-n", "-s", *urls], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("/echo?i=") >= 10


@pytest.mark.parametrize("flood", ["settings", "empty_data", "window_update"])
def test_other_frame_floods_are_stopped(proxy: ProxyProcess, flood: str) -> None:
    from hyperframe.frame import DataFrame, HeadersFrame, WindowUpdateFrame

    sock = _raw(proxy)
    if flood == "settings":
        frames = [SettingsFrame(0, settings={0x4: 65535}).serialize() for _ in range(150)]
    elif flood == "window_update":
        frames = [WindowUpdateFrame(0, window_increment=1).serialize() for _ in range(11_000)]
    else:
        import hpack

        block = hpack.Encoder().encode(
            [(":method", "POST"), (":path", "/hang"), (":scheme", "http"), (":authority", "x")]
        )
        frames = [HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize()]
        frames += [DataFrame(1, data=b"").serialize() for _ in range(150)]
    sock.sendall(b"".join(frames))
    assert _goaway_code(sock) == ENHANCE_YOUR_CALM
    sock.close()


def test_stats_count_exchanges_in_flight(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    """/stats itself is one exchange; a slow HTTP/2 stream in flight makes two."""

    async def main() -> tuple[int, int]:
        async with _client(proxy) as client:
            tag = uuid.uuid4().hex
            slow = asyncio.create_task(client.get("/slow", params={"delay_ms": 800, "t": tag}))
            await _reached(upstream, tag)
            during = (await client.get("/stats")).json()["connections"]["exchanges"]
            await slow
            after = (await client.get("/stats")).json()["connections"]["exchanges"]
            return during, after

    during, after = asyncio.run(main())
    assert (during, after) == (2, 1)
    metrics = httpx.get(f"{proxy.url}/metrics", trust_env=False).text
    assert "# TYPE headroom_active_exchanges gauge" in metrics


@pytest.mark.parametrize("kind", ["priority", "unknown_type"])
def test_frames_that_do_no_work_are_counted_and_stopped(proxy: ProxyProcess, kind: str) -> None:
    """350k PRIORITY frames (or frames of an unknown type) used to hold the loop for
    seconds without any event: now every frame counts, and the flood ends in GOAWAY while
    other clients are served."""
    from hyperframe.frame import PriorityFrame

    if kind == "priority":
        frame = PriorityFrame(1, depends_on=0, stream_weight=16).serialize()
    else:
        frame = (0).to_bytes(3, "big") + b"\xfa\x00" + (0).to_bytes(4, "big")
    sock = _raw(proxy)
    flood = frame * 350_000

    def send() -> None:
        try:
            sock.sendall(flood)
        except OSError:
            pass  # the proxy closed the connection mid-flood

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    worst = 0.0
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=5) as other:
        for _ in range(5):
            started = time.monotonic()
            assert other.get("/healthz").status_code == 200
            worst = max(worst, time.monotonic() - started)
    assert _goaway_code(sock) == ENHANCE_YOUR_CALM
    sock.close()
    sender.join(10)
    assert worst < 1.0, worst
    assert proxy.wait_for_log(
        lambda e: e.get("event") == "h2_connection_closed" and "frame flood" in e["reason"]
    )


def _first_answer_on_stream_1(sock: socket.socket) -> object:
    """The error code of an RST_STREAM on stream 1, or "headers" if a response came."""
    buf = b""
    sock.settimeout(3)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, stream = buf[3], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload, buf = buf[9 : 9 + length], buf[9 + length :]
            if stream == 1 and kind == 0x3:
                return int.from_bytes(payload[:4], "big")
            if stream == 1 and kind == 0x1:
                return "headers"
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    return None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b'x"a', b"1"),
        (b"x(a),b", b"1"),
        (b":path", b"evil.example/x"),
        (b":path", b"*"),
        (b":path", b"/a b"),
        (b":method", b"G ET"),
    ],
    ids=["quote-name", "paren-name", "authority-path", "star-get", "space-path", "space-method"],
)
def test_what_http11_cannot_carry_is_refused_at_the_h2_edge(
    proxy: ProxyProcess, upstream: FakeUpstream, name: bytes, value: bytes
) -> None:
    """Issue 11 point 12: the HTTP/1.1 leg skips h11's validation, so names that are not
    tokens and paths that are not origin-form must stop at the h2 edge (stream reset),
    never reach the upstream and never cost a 500."""
    import hpack
    from hyperframe.frame import HeadersFrame

    fields = {b":method": b"GET", b":path": b"/echo", b":scheme": b"http", b":authority": b"x"}
    extra: list[tuple[bytes, bytes]] = []
    if name.startswith(b":"):
        fields[name] = value
    else:
        extra.append((name, value))
    block = hpack.Encoder().encode([*fields.items(), *extra])
    upstream.clear()
    sock = _raw(proxy)
    sock.sendall(HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    reset = _first_answer_on_stream_1(sock)
    sock.close()
    assert reset == h2.errors.ErrorCodes.PROTOCOL_ERROR, reset
    assert not upstream.requests
    assert not proxy.events("exchange_failed")
