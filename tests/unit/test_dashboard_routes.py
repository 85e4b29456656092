"""Who may read ``/dashboard`` and ``/stats`` (loopback, or the proxy token as Bearer,
header or HTTP Basic password), and the per-tool counters the dashboard draws."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from types import SimpleNamespace

import orjson
import pytest

from headroom.config import load
from headroom.proxy.local import LocalRequest, LocalResponse, presented_token
from headroom.proxy.routes import LocalRoutes
from headroom.telemetry.metrics import prometheus
from headroom.telemetry.stats import MAX_TOOLS, Stats

TOKEN = "s3cret-token"
REMOTE = "203.0.113.7"


def request(path: str, client: str, *headers: tuple[bytes, bytes]) -> LocalRequest:
    return LocalRequest("GET", path, "", tuple(headers), b"", client)


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))


def routes(token: str | None) -> LocalRoutes:
    config = dataclasses.replace(load(["--upstream", "http://127.0.0.1:9"], {}), proxy_token=token)
    host = SimpleNamespace(
        config=config, stats=Stats(), prices=None, draining=False, retrieve=None, learner=None
    )
    return LocalRoutes(host)  # type: ignore[arg-type]


def answer(routes: LocalRoutes, req: LocalRequest) -> LocalResponse:
    handler = routes.match(req.path.encode())
    assert handler is not None
    return asyncio.run(handler(req))


@pytest.mark.parametrize(
    "headers",
    [
        (),
        ((b"authorization", b"Bearer wrong"),),
        (basic("admin", "wrong"),),
        ((b"authorization", b"Basic !!notbase64"),),
        ((b"authorization", b"Basic " + base64.b64encode(b"no-colon")),),
    ],
    ids=["none", "wrong-bearer", "wrong-basic", "bad-base64", "no-colon"],
)
@pytest.mark.parametrize("path", ["/dashboard", "/stats"])
def test_a_remote_caller_without_the_token_is_asked_for_it(
    path: str, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    got = answer(routes(TOKEN), request(path, REMOTE, *headers))
    assert got.status == 401
    assert orjson.loads(got.body)["error"]["type"] == "unauthorized"
    assert (b"www-authenticate", b'Basic realm="headroom-proxy", charset="UTF-8"') in got.headers
    assert TOKEN.encode() not in got.body


@pytest.mark.parametrize(
    "header",
    [
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"x-headroom-proxy-token", TOKEN.encode()),
        basic("anyone", TOKEN),
        basic("", TOKEN),
    ],
    ids=["bearer", "header", "basic", "basic-no-user"],
)
def test_the_token_opens_the_dashboard_from_anywhere(header: tuple[bytes, bytes]) -> None:
    got = answer(routes(TOKEN), request("/dashboard", REMOTE, header))
    assert got.status == 200
    assert got.content_type == b"text/html; charset=utf-8"
    assert b"<svg" in got.body


def test_loopback_needs_no_token_and_the_page_forbids_other_origins() -> None:
    got = answer(routes(TOKEN), request("/dashboard", "::1"))
    assert got.status == 200
    csp = dict(got.headers)[b"content-security-policy"].decode()
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_a_post_to_the_dashboard_is_refused() -> None:
    req = LocalRequest("POST", "/dashboard", "", (), b"", "127.0.0.1")
    got = answer(routes(None), req)
    assert got.status == 405
    assert (b"allow", b"GET, HEAD") in got.headers


def test_a_password_with_colons_is_kept_whole() -> None:
    req = request("/stats", REMOTE, basic("u", "a:b:c"))
    assert presented_token(req) == "a:b:c"


def test_tool_names_past_the_cap_are_counted_as_other() -> None:
    stats = Stats()
    for i in range(MAX_TOOLS + 10):
        stats.compressed_tool(f"tool-{i}", 1, 5)
    stats.compressed_tool("", 2, 7)
    stats.compressed_tool("tool-0", 1, 5)
    assert len(stats.by_tool) == MAX_TOOLS + 1
    assert stats.saved_by_tool["other"] == 10 * 5 + 7  # the ten late names and the unnamed
    assert stats.saved_by_tool["tool-0"] == 10
    snap = stats.snapshot()
    assert snap["tokens_saved_by_tool"]["other"] == 57
    text = prometheus(stats)
    assert 'headroom_compressions_by_tool_total{tool="other"} 12' in text


def test_workers_counts_of_tools_add_up() -> None:
    one, two = Stats(), Stats()
    one.compressed_tool("Bash", 1, 100)
    two.compressed_tool("Bash", 2, 50)
    two.compressed_tool("Grep", 1, 10)
    total = Stats.merged([one.to_data(), two.to_data()])
    assert total.saved_by_tool == {"Bash": 150, "Grep": 10}
    assert total.by_tool == {"Bash": 3, "Grep": 1}
