"""HTTP/2 to the upstream: ALPN over TLS (trustme CA), prior-knowledge h2c, stream limits,
GOAWAY, and the off switch. Clients speak HTTP/1.1 to the proxy; the origin sees streams."""

from __future__ import annotations

import asyncio
import hashlib
import random
import ssl
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import trustme

from tests.support.h2_upstream import H2Upstream
from tests.support.proxy_process import ProxyProcess

FLAGS = ("--ccr-backend", "memory", "--upstream-timeout", "10s")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_ctx(ca: trustme.CA, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ctx.set_alpn_protocols(alpn)
    return ctx


def _proxy(upstream_url: str, home: Path, *extra: str) -> ProxyProcess:
    return ProxyProcess(
        ["--upstream", upstream_url, "--listen", "127.0.0.1:0", *FLAGS, *extra], home
    ).start()


async def _many(url: str, count: int, size: int = 20_000) -> list[dict]:
    bodies = [random.Random(i).randbytes(size) for i in range(count)]
    async with httpx.AsyncClient(
        base_url=url, trust_env=False, timeout=20, limits=httpx.Limits(max_connections=count)
    ) as client:
        responses = await asyncio.gather(*(client.post("/echo", content=b) for b in bodies))
    out = [r.json() for r in responses]
    for body, got in zip(bodies, out, strict=True):
        assert got["sha256"] == hashlib.sha256(body).hexdigest()
    return out


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def test_alpn_h2_multiplexes_requests_over_few_connections(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    upstream = H2Upstream(tls=_server_ctx(ca, ["h2", "http/1.1"])).start()
    proxy = _proxy(upstream.url, tmp_path, "--upstream-ca", str(ca_file))
    try:
        got = asyncio.run(_many(proxy.url, 40))
        assert {g["method"] for g in got} == {"POST"}
        assert got[0]["authority"] == f"127.0.0.1:{upstream.port}"
        assert "x-request-id" in got[0]["headers"] and "connection" not in got[0]["headers"]
        assert len(upstream.connections) <= 3, "h2 streams should share connections"
        assert sum(c.streams for c in upstream.connections) == 40
    finally:
        proxy.kill()
        upstream.stop()


def test_stream_limit_of_the_peer_is_respected(tmp_path: Path) -> None:
    upstream = H2Upstream(max_streams=4).start()
    proxy = _proxy(upstream.url, tmp_path, "--upstream-http2", "prior-knowledge")
    try:

        async def slow_ones() -> None:
            async with httpx.AsyncClient(
                base_url=proxy.url,
                trust_env=False,
                timeout=20,
                limits=httpx.Limits(max_connections=20),
            ) as client:
                responses = await asyncio.gather(
                    *(client.get("/slow", params={"delay_ms": 300}) for _ in range(12))
                )
            assert {r.status_code for r in responses} == {200}

        asyncio.run(slow_ones())
        assert max(c.max_open for c in upstream.connections) <= 4
        assert len(upstream.connections) >= 3
    finally:
        proxy.kill()
        upstream.stop()


def test_goaway_retires_a_connection_without_failing_accepted_streams(tmp_path: Path) -> None:
    upstream = H2Upstream(goaway_after=10).start()
    proxy = _proxy(upstream.url, tmp_path, "--upstream-http2", "prior-knowledge")
    try:
        got = asyncio.run(_many(proxy.url, 20, size=1000))
        assert len(got) == 20
        assert len(upstream.connections) >= 2  # retired connections were replaced
    finally:
        proxy.kill()
        upstream.stop()


def test_sse_from_an_h2_upstream_streams_event_by_event(tmp_path: Path) -> None:
    upstream = H2Upstream().start()
    proxy = _proxy(upstream.url, tmp_path, "--upstream-http2", "prior-knowledge")
    try:
        import time

        arrivals: list[float] = []
        with httpx.stream(
            "GET", f"{proxy.url}/sse", params={"n": 4, "gap_ms": 150}, trust_env=False, timeout=10
        ) as response:
            for chunk in response.iter_raw():
                arrivals.extend(time.monotonic() for _ in range(chunk.count(b"\n\n")))
        assert len(arrivals) == 4
        assert min(b - a for a, b in pairwise(arrivals)) > 0.08
    finally:
        proxy.kill()
        upstream.stop()


def test_off_keeps_http1_to_a_tls_upstream(ca: trustme.CA, ca_file: Path, tmp_path: Path) -> None:
    from tests.support.upstream import FakeUpstream

    upstream = FakeUpstream(tls=_server_ctx(ca, ["http/1.1"])).start()
    proxy = _proxy(upstream.url, tmp_path, "--upstream-ca", str(ca_file), "--upstream-http2", "off")
    try:
        response = httpx.get(f"{proxy.url}/echo", trust_env=False, timeout=10)
        assert response.status_code == 200
        assert upstream.requests[-1].http_version == "1.1"
    finally:
        proxy.kill()
        upstream.stop()
