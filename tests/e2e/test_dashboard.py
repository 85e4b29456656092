"""``GET /dashboard`` end to end: a real proxy that has compressed real tool outputs, the
page as a real headless Chromium renders it (what the page drew must be what ``/stats``
says), and the page's promise to need no network.

The browser test is skipped only where no Chromium is installed (``.ci/run`` installs
Debian's ``chromium``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FLAGS
from tests.support.llm_upstream import LLMUpstream
from tests.support.proxy_process import ProxyGroup, ProxyProcess

pytestmark = [pytest.mark.timeout(120)]

CORPUS = Path(__file__).resolve().parents[1] / "fidelity" / "corpus"
MODEL = "claude-sonnet-4-5-20250929"
PRICES = {"models": {"claude-sonnet-4-5": {"input": 3, "cached_input": 0.3, "output": 15}}}
# A tool name a hostile client chose: the page must show it as text, never as markup.
HOSTILE_TOOL = '<img src=x onerror="document.title=1">'
OUTPUTS = [
    ("Bash", (CORPUS / "b_git_log_stat_main.txt").read_text()),
    ("Grep", (CORPUS / "b_ls_lR_pip_site_packages.txt").read_text()),
    (HOSTILE_TOOL, (CORPUS / "b_git_log_stat_main.txt").read_text()[:30000]),
]
BROWSER_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    home = tmp_path_factory.mktemp("dashboard")
    prices = home / "prices.json"
    prices.write_text(json.dumps(PRICES))
    upstream = LLMUpstream().start()
    args = ["--listen", "127.0.0.1:0", *FLAGS, "--upstream", upstream.url]
    try:
        with ProxyGroup() as group:
            proc = group.start([*args, "--price-table", str(prices)], home)
            _traffic(proc.url)
            yield proc
    finally:
        upstream.stop()


def _traffic(url: str) -> None:
    """One request per tool output, each in a history that names its tool."""
    with httpx.Client(base_url=url, timeout=20, trust_env=False) as client:
        for i, (tool, output) in enumerate(OUTPUTS):
            call = {"type": "tool_use", "id": f"toolu_{i}", "name": tool, "input": {}}
            result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": output}
            messages = [
                {"role": "user", "content": "What changed?"},
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result]},
            ]
            body = {"model": MODEL, "max_tokens": 256, "messages": messages}
            got = client.post(
                "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
            )
            assert got.status_code == 200, got.text


def _stats(proxy: ProxyProcess) -> dict[str, Any]:
    got = httpx.get(proxy.url + "/stats", timeout=10, trust_env=False)
    assert got.status_code == 200
    data: dict[str, Any] = got.json()
    return data


# -------------------------------------------------------------------- the page itself


def test_the_page_is_small_self_contained_and_locked_to_its_own_origin(
    proxy: ProxyProcess,
) -> None:
    got = httpx.get(proxy.url + "/dashboard", timeout=10, trust_env=False)
    assert got.status_code == 200
    assert got.headers["content-type"] == "text/html; charset=utf-8"
    assert len(got.content) <= 200 * 1024
    page = got.content
    # Nothing to load: no src/href attribute, no URL but the SVG namespace name.
    assert not re.search(rb"\b(?:src|href)\s*=", page.replace(HOSTILE_TOOL.encode(), b""))
    assert set(re.findall(rb"https?://[^\s\"')]+", page)) == {b"http://www.w3.org/2000/svg"}
    csp = got.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    for tag in ("script", "style"):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>".encode(), page, re.S)
        assert blocks, tag
        for block in blocks:
            digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
            assert f"'sha256-{digest}'" in csp, tag
    assert "unsafe-inline" not in csp


def test_stats_carry_what_the_page_draws(proxy: ProxyProcess) -> None:
    stats = _stats(proxy)
    compression = stats["compression"]
    assert compression["requests_compressed"] == len(OUTPUTS)
    by_tool = stats["tokens_saved_by_tool"]
    assert set(by_tool) == {tool for tool, _ in OUTPUTS}
    assert sum(by_tool.values()) == compression["tokens_saved"]
    assert sum(stats["tokens_saved_by_strategy"].values()) == compression["tokens_saved"]
    histogram = compression["ratio_histogram"]
    assert len(histogram["le"]) == len(histogram["counts"])
    assert sum(histogram["counts"]) == len(OUTPUTS)
    metrics = httpx.get(proxy.url + "/metrics", timeout=10, trust_env=False).text
    assert 'headroom_tokens_saved_by_tool_total{tool="Bash"} ' + str(by_tool["Bash"]) in metrics


# -------------------------------------------------------------------- in a real browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium installed")


def _browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a fresh profile, nothing of Google's switched on, and time
    for the page's first poll; returns what it printed."""
    argv = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--no-default-browser-check", "--disable-background-networking", "--disable-sync",
        "--disable-component-update", "--disable-extensions", f"--user-data-dir={profile}",
        "--window-size=1280,1200", "--virtual-time-budget=4000", *extra, url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


class _Dom(HTMLParser):
    """Elements by id and the ``data-*`` of every SVG bar, from the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.bars: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self._open: str | None = None
        self.text: dict[str, str] = {}
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if tag == "body":
            self.body = found
        if found.get("id"):
            self.ids[str(found["id"])] = found
            self._open = str(found["id"])
        if tag == "rect" and found.get("class") == "bar":
            self.bars.append(found)

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.text[self._open] = self.text.get(self._open, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def test_chromium_draws_the_proxys_numbers(proxy: ProxyProcess, tmp_path: Path) -> None:
    stats = _stats(proxy)
    done = _browse(proxy.url + "/dashboard?interval=1000", tmp_path / "profile", "--dump-dom")
    dom = _Dom()
    dom.feed(done.stdout)
    assert int(str(dom.body.get("data-polls"))) >= 1, done.stdout[-2000:]
    assert dom.text.get("status", "").startswith("updated"), done.stdout[-2000:]
    saved = dom.ids["tokens-saved"]["data-value"]
    assert saved == str(stats["compression"]["tokens_saved"])
    assert dom.ids["cache-hit-rate"]["data-value"] is not None
    cost = stats["tokens"]["cost"]["saved"]
    assert float(str(dom.ids["cost-saved"]["data-value"])) == pytest.approx(cost)
    drawn = {str(b["data-name"]): int(str(b["data-value"])) for b in dom.bars}
    expected = {**stats["tokens_saved_by_strategy"], **stats["tokens_saved_by_tool"]}
    assert drawn == {k: v for k, v in expected.items() if v > 0}
    # The hostile tool name is drawn as a bar label, and no element came of it.
    assert HOSTILE_TOOL in drawn
    assert "img" not in dom.tags


def test_chromium_screenshot_of_the_page(proxy: ProxyProcess, tmp_path: Path) -> None:
    """The page paints: a screenshot of the window's size that is not one flat colour."""
    shot = tmp_path / "dashboard.png"
    _browse(proxy.url + "/dashboard", tmp_path / "profile", f"--screenshot={shot}")
    width, height, pixels = _png(shot.read_bytes())
    assert (width, height) == (1280, 1200)
    assert len(set(pixels[i : i + 3] for i in range(0, len(pixels) - 3, 4099))) > 3


def _png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return width, height, zlib.decompress(idat)
