"""``GET /dashboard``: one self-contained HTML page that polls ``/stats`` and draws it.

The page is shipped in the package (``headroom/static/dashboard.html``: its script and
style inline, no font, image or library from anywhere) and served with a Content Security
Policy that allows exactly that: the inline blocks by their hashes and ``fetch`` to this
origin only. So it loads with no network, and a tool name a client chose cannot run as
script even if it reached markup. Browsers get credentials in with HTTP Basic (any user
name, the proxy token as password), which they then send with the page's own ``fetch``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from headroom.proxy.local import LocalResponse

_BLOCK = re.compile(rb"<(script|style)>(.*?)</\1>", re.S)


@dataclass(frozen=True)
class Page:
    body: bytes
    csp: bytes


def _sources(body: bytes, tag: bytes) -> str:
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(2)).digest()).decode() + "'"
        for m in _BLOCK.finditer(body)
        if m.group(1) == tag
    ]
    return " ".join(hashes) or "'none'"


@lru_cache(maxsize=1)
def page() -> Page:
    """The page and its policy, read from the package once."""
    body = resources.files("headroom").joinpath("static/dashboard.html").read_bytes()
    csp = (
        "default-src 'none'; "
        f"script-src {_sources(body, b'script')}; style-src {_sources(body, b'style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return Page(body, csp.encode())


def dashboard_response() -> LocalResponse:
    served = page()
    return LocalResponse(
        200,
        served.body,
        b"text/html; charset=utf-8",
        (
            (b"content-security-policy", served.csp),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-cache"),
        ),
    )
