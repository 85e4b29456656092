"""The values flags and environment variables take: durations, sizes, addresses, the
upstream URL, files. Each parser returns the typed value or raises ``ValueError`` with a
message that says what a good value looks like; ``config`` names the flag around it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from headroom.prices import PriceTableError, load_prices


@dataclass(frozen=True)
class ListenAddr:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Upstream:
    """The upstream origin plus the base path every request path is appended to."""

    scheme: str
    host: str
    port: int
    base_path: str  # no trailing slash; "" when the URL had none

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """Host header value: the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.base_path}"


# ---------------------------------------------------------------- value parsers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_duration(text: str) -> float:
    """``500ms``, ``10s``, ``5m``, ``24h``, ``1d`` → seconds. A bare number is refused:
    a missing unit is more often a mistake than a wish for seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 10s, 5m, 24h)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def parse_size(text: str) -> int:
    """``100MB`` (10^6), ``64MiB`` (2^20), or a bare byte count."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size {text!r} (use e.g. 1048576, 100MB, 64MiB)")
    unit = (m.group(2) or "b").lower()
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"invalid boolean {text!r} (use true or false)")


def parse_listen(text: str) -> ListenAddr:
    """``IP:port`` or ``[IPv6]:port``; hostnames are refused so the bind is unambiguous."""
    text = text.strip()
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:\[\]]+):(\d+)$", text)
    if not m:
        raise ValueError(f"invalid listen address {text!r} (use 0.0.0.0:8787 or [::1]:8787)")
    host, port = m.group(1), int(m.group(2))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid listen address {text!r}: {host!r} is not an IP") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid listen address {text!r}: port out of range")
    return ListenAddr(host, port)


def parse_upstream(text: str) -> Upstream:
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid upstream URL {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"invalid upstream URL {text!r}: scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"invalid upstream URL {text!r}: no host")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid upstream URL {text!r}: no query or fragment allowed")
    if parts.username or parts.password:
        raise ValueError(f"invalid upstream URL {text!r}: credentials are not allowed in it")
    if not _is_host(parts.hostname):
        raise ValueError(f"invalid upstream URL {text!r}: {parts.hostname!r} is not a host name")
    if _BAD_PATH.search(parts.path):
        raise ValueError(f"invalid upstream URL {text!r}: spaces or control characters in path")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?"
)
_BAD_PATH = re.compile(r"[\x00-\x20\x7f]")


def _is_host(host: str) -> bool:
    """A DNS name or an IP literal: what can go into a Host header and a connect()."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_NAME.fullmatch(host) is not None
    return True


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in allowed:
            raise ValueError(f"invalid choice {text!r} (one of {', '.join(allowed)})")
        return lowered

    return parse


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {text!r}")
    return value


# RFC 9113 §6.5.2: SETTINGS values are 32-bit; stream ids (and so counts) stop at 2^31-1.
MAX_H2_STREAMS = 2**31 - 1


def stream_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_H2_STREAMS:
        raise ValueError(f"must be at most {MAX_H2_STREAMS}, got {text!r}")
    return value


MAX_WORKERS = 1024


def parse_workers(text: str) -> int:
    """``N`` or ``auto`` (the CPUs this process may run on, which honours cgroup/affinity
    limits where ``os.cpu_count`` would report the whole host)."""
    if text.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    value = positive_int(text)
    if value > MAX_WORKERS:
        raise ValueError(f"at most {MAX_WORKERS} workers, got {text!r}")
    return value


def parse_fd(text: str) -> int:
    """A file descriptor number; 0-2 are stdio and never a listening socket."""
    value = int(text)
    if value < 3:
        raise ValueError(f"file descriptor must be 3 or more, got {text!r}")
    return value


def redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"not a redis:// or rediss:// URL: {text!r}")
    return text


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {text}")
    return path


def ca_file(text: str) -> Path:
    """A PEM file of CA certificates, loaded once here so that a wrong file stops startup
    with one line instead of failing every upstream connection later."""
    path = existing_file(text)
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"{text} holds no usable PEM CA certificate ({exc})") from None
    return path


def price_table(text: str) -> Path:
    """A ``--price-table`` file, read and checked once here so that a wrong file stops
    startup with one line naming what is wrong."""
    path = existing_file(text)
    try:
        load_prices(path)
    except PriceTableError as exc:
        raise ValueError(str(exc)) from None
    return path


def path_value(text: str) -> Path:
    return Path(text).expanduser()


def text_value(text: str) -> str:
    return text
