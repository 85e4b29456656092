"""Issue 2 point 9: /healthz and /healthz/upstream are answered by the proxy itself."""

from __future__ import annotations

import time

import httpx
import pytest

import headroom
from tests.proxy.conftest import StartProxy
from tests.proxy.helpers import assert_proxy_error
from tests.support.upstream import FakeUpstream, free_port


def test_healthz(client: httpx.Client, upstream: FakeUpstream) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert "json" in resp.headers["content-type"]
    assert resp.json() == {"ok": True, "service": "headroom-proxy", "version": headroom.__version__}
    assert not upstream.requests, "/healthz was forwarded"


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/healthz"), ("PUT", "/healthz"), ("DELETE", "/healthz/upstream")]
)
def test_other_methods_on_local_routes_are_405(
    method: str, path: str, client: httpx.Client, upstream: FakeUpstream
) -> None:
    resp = client.request(method, path, content=b"{}")
    assert_proxy_error(resp.status_code, 405, resp.headers.multi_items(), resp.content)
    assert not upstream.requests, f"{method} {path} was forwarded"


def test_healthz_upstream_ok_probes_origin_healthz(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    proc = start_proxy(upstream_server.url + "/base")
    resp = httpx.get(f"{proc.url}/healthz/upstream", trust_env=False)
    url = upstream_server.url + "/base"
    assert (resp.status_code, resp.json()) == (
        200,
        {"ok": True, "upstreams": {"upstream": {"url": url, "ok": True}}},
    )
    assert upstream_server.only().path == "/healthz"  # the origin's, not the base path's


def test_healthz_upstream_bad_status_is_503(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.health_status = 500
    resp = client.get("/healthz/upstream")
    assert resp.status_code == 503
    body = resp.json()
    assert body["ok"] is False and body["upstream_status"] == 500, body


def test_healthz_upstream_down_is_503_with_error(start_proxy: StartProxy) -> None:
    proc = start_proxy(f"http://127.0.0.1:{free_port()}")
    resp = httpx.get(f"{proc.url}/healthz/upstream", trust_env=False)
    assert resp.status_code == 503
    body = resp.json()
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"], body
    assert httpx.get(f"{proc.url}/healthz", trust_env=False).status_code == 200


@pytest.mark.slow
def test_healthz_upstream_has_its_own_5s_timeout(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    upstream_server.clear()
    upstream_server.health_hang = True
    proc = start_proxy(upstream_server.url, "--upstream-timeout", "60s")
    started = time.monotonic()
    resp = httpx.get(f"{proc.url}/healthz/upstream", trust_env=False, timeout=20)
    elapsed = time.monotonic() - started
    assert resp.status_code == 503
    assert 4.5 < elapsed < 7.0, elapsed
