"""Flags and environment folded into one frozen ``Config``.

Precedence is flag, then ``HEADROOM_PROXY_<FLAG>`` environment variable, then the default.
Every value is checked here, once, so the running proxy never meets a bad setting: a bad
value raises ``UsageError`` naming the flag, and the CLI turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom.values import (
    ListenAddr,
    Upstream,
    ca_file,
    choice,
    existing_file,
    parse_bool,
    parse_duration,
    parse_fd,
    parse_listen,
    parse_size,
    parse_upstream,
    parse_workers,
    path_value,
    positive_int,
    redis_url,
    stream_count,
    text_value,
)

ENV_PREFIX = "HEADROOM_PROXY_"


class UsageError(Exception):
    """A flag or environment value that cannot be used; maps to exit code 2."""


@dataclass(frozen=True)
class Config:
    upstream: Upstream
    listen: tuple[ListenAddr, ...] = (ListenAddr("0.0.0.0", 8787),)
    upstream_timeout: float = 600.0
    upstream_connect_timeout: float = 10.0
    max_body_bytes: int = 100_000_000
    log_level: str = "info"
    rewrite_host: bool = True
    graceful_shutdown_timeout: float = 30.0
    upstream_ca: Path | None = None
    loop: str = "auto"
    max_connections: int = 10_000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_buffered_bytes: int = 512 * 2**20
    memo_max_bytes: int = 64 * 2**20  # compressed outputs remembered, per process
    ledger_max_bytes: int = 16 * 2**20  # mixed-turn ledger, per process
    keepalive_timeout: float = 60.0
    upstream_pool_size: int = 256
    upstream_idle_timeout: float = 30.0
    # CCR store
    ccr_backend: str = "sqlite"
    ccr_path: Path = field(default_factory=lambda: Path.home() / ".headroom" / "ccr.sqlite3")
    ccr_ttl: float = 86_400.0
    ccr_max_bytes: int = 1 << 30
    ccr_max_entries: int = 100_000
    ccr_redis_url: str | None = None
    ccr_redis_prefix: str = "headroom:ccr:"
    ccr_allow_remote: bool = False
    proxy_token: str | None = field(default=None, repr=False)
    tls_listen: tuple[ListenAddr, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    upstream_http2: str = "auto"
    h2_max_streams: int = 100
    # compression
    compression: str = "on"
    compression_timeout: float = 2.0
    compression_min_chars: int = 1000
    learning: str = "on"
    learning_readonly: bool = False
    # deployment
    workers: int | None = None  # None: one process serves; N: a supervisor runs N workers
    inherit_fd: tuple[int, ...] = ()
    worker_hang_timeout: float = 30.0
    stats_redis: str | None = None


# ---------------------------------------------------------------- flag table


@dataclass(frozen=True)
class _Flag:
    name: str  # without the leading dashes
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"
    repeat: bool = False  # may be given more than once; env value is comma-separated

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.replace("-", "_").upper()


_FLAGS: tuple[_Flag, ...] = (
    _Flag(
        "listen",
        parse_listen,
        "address to listen on, IP:PORT or [IPv6]:PORT; repeatable (default 0.0.0.0:8787)",
        "ADDR",
        repeat=True,
    ),
    _Flag(
        "upstream",
        parse_upstream,
        "upstream base URL, http(s)://host[:port][/base/path] (required)",
        "URL",
    ),
    _Flag(
        "upstream-timeout",
        parse_duration,
        "time allowed until response headers and between response body chunks (default 600s)",
        "DURATION",
    ),
    _Flag(
        "upstream-connect-timeout",
        parse_duration,
        "TCP + TLS connect timeout (default 10s)",
        "DURATION",
    ),
    _Flag(
        "max-body-bytes",
        parse_size,
        "largest request body buffered on the compression routes; larger gets 413 (default 100MB)",
        "SIZE",
    ),
    _Flag(
        "log-level",
        choice("debug", "info", "warning", "error"),
        "debug, info, warning or error (default info)",
        "LEVEL",
    ),
    _Flag(
        "graceful-shutdown-timeout",
        parse_duration,
        "how long in-flight requests may run after SIGTERM (default 30s)",
        "DURATION",
    ),
    _Flag(
        "upstream-ca",
        ca_file,
        "PEM file of a private CA to trust for an https upstream, in addition to the system CAs",
        "FILE",
    ),
    _Flag(
        "loop",
        choice("auto", "uvloop", "asyncio"),
        "event loop: auto (uvloop when installed), uvloop, asyncio (default auto)",
        "LOOP",
    ),
    _Flag(
        "max-connections",
        positive_int,
        "client connections held at once; accepting pauses above it (default 10000)",
        "N",
    ),
    _Flag(
        "header-timeout",
        parse_duration,
        "time a client has to send complete request headers (default 10s)",
        "DURATION",
    ),
    _Flag(
        "body-timeout",
        parse_duration,
        "silence allowed between request body bytes; then 408 and close (default 30s)",
        "DURATION",
    ),
    _Flag(
        "max-buffered-bytes",
        parse_size,
        "request bytes all connections together may hold for buffering; past it bodies wait,"
        " then 503 (default 512MiB)",
        "SIZE",
    ),
    _Flag(
        "memo-max-bytes",
        parse_size,
        "compressed tool outputs remembered per process, so a re-sent history is not"
        " compressed again (default 64MiB)",
        "SIZE",
    ),
    _Flag(
        "ledger-max-bytes",
        parse_size,
        "retrieval rounds remembered per process to restore into later turns (default 16MiB)",
        "SIZE",
    ),
    _Flag(
        "keepalive-timeout",
        parse_duration,
        "idle time before a client keep-alive connection is closed (default 60s)",
        "DURATION",
    ),
    _Flag(
        "upstream-pool-size",
        positive_int,
        "idle upstream connections kept per origin (default 256)",
        "N",
    ),
    _Flag(
        "upstream-idle-timeout",
        parse_duration,
        "idle time before a pooled upstream connection is closed (default 30s)",
        "DURATION",
    ),
    _Flag(
        "compression",
        choice("on", "off"),
        "compress tool outputs in request bodies (default on); the request header "
        "x-headroom-bypass: true skips one request",
        "on|off",
    ),
    _Flag(
        "compression-timeout",
        parse_duration,
        "deadline for compressing one request; past it the original body is forwarded (default 2s)",
        "DURATION",
    ),
    _Flag(
        "compression-min-chars",
        positive_int,
        "tool outputs shorter than this are left alone (default 1000)",
        "N",
    ),
    _Flag(
        "learning",
        choice("on", "off"),
        "learn from retrievals: a tool whose outputs the model fetches back is compressed "
        "less from then on, shared through the CCR store (default on)",
        "on|off",
    ),
    _Flag(
        "ccr-backend",
        choice("memory", "sqlite", "redis"),
        "where dropped content is kept: memory, sqlite or redis (default sqlite)",
        "NAME",
    ),
    _Flag(
        "ccr-path",
        path_value,
        "SQLite file for the CCR store (default ~/.headroom/ccr.sqlite3)",
        "FILE",
    ),
    _Flag(
        "ccr-ttl",
        parse_duration,
        "how long a stored original lives after its last use (default 24h)",
        "DURATION",
    ),
    _Flag(
        "ccr-max-bytes",
        parse_size,
        "size cap of the memory and SQLite CCR stores (for Redis use its maxmemory); "
        "least recently used go first (default 1GiB)",
        "SIZE",
    ),
    _Flag(
        "ccr-max-entries", positive_int, "entry cap of the memory CCR store (default 100000)", "N"
    ),
    _Flag("ccr-redis-url", text_value, "redis:// or rediss:// URL for --ccr-backend redis", "URL"),
    _Flag(
        "ccr-redis-prefix",
        text_value,
        "key prefix in Redis, for tenants sharing one server (default headroom:ccr:)",
        "PREFIX",
    ),
    _Flag(
        "tls-listen",
        parse_listen,
        "address for a TLS listener offering ALPN h2 and http/1.1 (needs --tls-cert and "
        "--tls-key); repeatable",
        "ADDR",
        repeat=True,
    ),
    _Flag("tls-cert", existing_file, "PEM certificate chain for --tls-listen", "FILE"),
    _Flag("tls-key", existing_file, "PEM private key for --tls-listen", "FILE"),
    _Flag(
        "upstream-http2",
        choice("auto", "off", "prior-knowledge"),
        "HTTP/2 to the upstream: auto (offer h2 over TLS, use it when chosen), off, or "
        "prior-knowledge (h2c to an http upstream) (default auto)",
        "MODE",
    ),
    _Flag(
        "h2-max-streams",
        stream_count,
        "concurrent HTTP/2 streams a client may open per connection (default 100)",
        "N",
    ),
    _Flag(
        "workers",
        parse_workers,
        "worker processes behind a supervisor, N or auto (= CPUs); without it one process "
        "serves (see deploy/README.md)",
        "N|auto",
    ),
    _Flag(
        "inherit-fd",
        parse_fd,
        "serve on this already-listening socket instead of binding --listen (zero-downtime "
        "rollouts outside systemd); repeatable",
        "FD",
        repeat=True,
    ),
    _Flag(
        "worker-hang-timeout",
        parse_duration,
        "with --workers: a worker whose event loop has not answered the supervisor for this "
        "long is killed and replaced (default 30s)",
        "DURATION",
    ),
    _Flag(
        "stats-redis",
        redis_url,
        "redis:// or rediss:// URL where this host publishes its totals, so that "
        "/stats?scope=fleet on any host adds up every host using the same Redis",
        "URL",
    ),
)

_BOOL_FLAGS: tuple[tuple[str, str], ...] = (
    (
        "rewrite-host",
        "rewrite Host to the upstream's (default); --no-rewrite-host keeps the client's",
    ),
    (
        "learning-readonly",
        "apply what was learned but record no evidence (for fleets with one writer)",
    ),
    (
        "ccr-allow-remote",
        "serve /v1/retrieve to non-loopback clients that present "
        "HEADROOM_PROXY_TOKEN as a bearer token",
    ),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, never usage noise
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="headroom-proxy",
        description="Reverse proxy for LLM APIs. Every flag can also be set with "
        f"{ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}UPSTREAM); flags win over the environment. "
        f"{ENV_PREFIX}TOKEN protects /stats and remote retrieval.",
        epilog="other commands: headroom-proxy compress FILE|- (a dry run on one tool output), "
        "stats [URL] (a running proxy's /stats), ccr get HASH | ccr stats | ccr learned [--reset] "
        "(the CCR store and what was learned from retrievals)",
    )
    for flag in _FLAGS:
        parser.add_argument(
            f"--{flag.name}",
            dest=flag.dest,
            metavar=flag.metavar,
            action="append" if flag.repeat else "store",
            help=f"{flag.help} [env {flag.env}]",
        )
    for name, help_text in _BOOL_FLAGS:
        dest = name.replace("-", "_")
        env = ENV_PREFIX + dest.upper()
        parser.add_argument(
            f"--{name}",
            dest=dest,
            action="store_true",
            default=None,
            help=f"{help_text} [env {env}]",
        )
        parser.add_argument(f"--no-{name}", dest=dest, action="store_false")
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Parse flags and environment into a ``Config``; raise ``UsageError`` on any bad value."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for flag in _FLAGS:
        raw = getattr(args, flag.dest)
        source = f"--{flag.name}"
        if raw is None and flag.env in environ:
            env_raw = environ[flag.env]
            raw = [p for p in env_raw.split(",") if p.strip()] if flag.repeat else env_raw
            source = flag.env
        if raw is None:
            continue
        try:
            values[flag.dest] = (
                tuple(flag.parse(r) for r in raw) if flag.repeat else flag.parse(raw)
            )
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
    for name, _ in _BOOL_FLAGS:
        dest = name.replace("-", "_")
        env = ENV_PREFIX + dest.upper()
        value = getattr(args, dest)
        if value is None and env in environ:
            try:
                value = parse_bool(environ[env])
            except ValueError as exc:
                raise UsageError(f"{env}: {exc}") from None
        if value is not None:
            values[dest] = value
    if "upstream" not in values:
        raise UsageError(f"--upstream is required (or set {ENV_PREFIX}UPSTREAM)")
    token = environ.get(ENV_PREFIX + "TOKEN") or None
    _check_combinations(values, token)
    return Config(proxy_token=token, **values)


def _check_combinations(values: dict[str, Any], token: str | None) -> None:
    backend = values.get("ccr_backend", "sqlite")
    if backend == "redis" and not values.get("ccr_redis_url"):
        raise UsageError("--ccr-backend redis needs --ccr-redis-url")
    if values.get("ccr_redis_url") and backend != "redis":
        raise UsageError("--ccr-redis-url is set but --ccr-backend is not redis")
    if values.get("ccr_allow_remote") and not token:
        raise UsageError(f"--ccr-allow-remote needs {ENV_PREFIX}TOKEN to be set")
    has_pair = bool(values.get("tls_cert")) and bool(values.get("tls_key"))
    if values.get("tls_listen") and not has_pair:
        raise UsageError("--tls-listen needs both --tls-cert and --tls-key")
    if (values.get("tls_cert") or values.get("tls_key")) and not values.get("tls_listen"):
        raise UsageError("--tls-cert/--tls-key are set but no --tls-listen address is")
    for name in (
        "upstream_timeout",
        "upstream_connect_timeout",
        "header_timeout",
        "body_timeout",
        "keepalive_timeout",
        "ccr_ttl",
        "compression_timeout",
        "worker_hang_timeout",
    ):
        if name in values and values[name] <= 0:
            raise UsageError(f"--{name.replace('_', '-')}: must be greater than zero")
    for name in ("max_body_bytes", "max_buffered_bytes", "memo_max_bytes", "ledger_max_bytes"):
        if values.get(name, 1) <= 0:
            raise UsageError(f"--{name.replace('_', '-')}: must be greater than zero")
    body = values.get("max_body_bytes", Config.max_body_bytes)
    if values.get("max_buffered_bytes", Config.max_buffered_bytes) < body:
        # One body the size of the cap could then never be read whole.
        raise UsageError("--max-buffered-bytes must be at least --max-body-bytes")
