"""Flags and environment folded into one frozen ``Config``.

Precedence is flag, then ``HEADROOM_PROXY_<FLAG>`` environment variable, then the default.
Every value is checked here, once, so the running proxy never meets a bad setting: a bad
value raises ``UsageError`` naming the flag, and the CLI turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom.config_flags import BOOL_FLAGS, ENV_PREFIX, FLAGS, UPSTREAM_APIS
from headroom.values import (
    ListenAddr,
    Upstream,
    parse_bool,
)


class UsageError(Exception):
    """A flag or environment value that cannot be used; maps to exit code 2."""


DEFAULT_UPSTREAM = "upstream"  # the name of --upstream beside the APIs' own


@dataclass(frozen=True)
class UpstreamSettings:
    """One upstream's URL, CA and HTTP/2 mode, a per-API CA or mode defaulting to
    --upstream's; ``http2_flag`` names the flag the mode came from."""

    flag: str  # "--upstream" or "--<api>-upstream"
    url: Upstream | None
    ca: Path | None
    http2: str
    http2_flag: str


@dataclass(frozen=True)
class Config:
    upstream: Upstream | None = None  # None: only per-API upstreams (at least one is set)
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
    ledger_max_bytes: int = 16 * 2**20  # cache of served rounds, per process
    keepalive_timeout: float = 60.0
    upstream_pool_size: int = 256
    upstream_idle_timeout: float = 30.0
    price_table: Path | None = None  # --price-table: prices for the cost estimate
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
    # per-API upstreams (headroom.proxy.origins routes to them); ca/http2 None: --upstream's
    anthropic_upstream: Upstream | None = None
    anthropic_upstream_ca: Path | None = None
    anthropic_upstream_http2: str | None = None
    openai_upstream: Upstream | None = None
    openai_upstream_ca: Path | None = None
    openai_upstream_http2: str | None = None
    gemini_upstream: Upstream | None = None
    gemini_upstream_ca: Path | None = None
    gemini_upstream_http2: str | None = None
    h2_max_streams: int = 100
    # compression
    compression: str = "on"
    retrieve_tool: str = "when-needed"  # --retrieve-tool: or "always"
    compression_timeout: float = 2.0
    compression_min_chars: int = 1000
    learning: str = "on"
    learning_readonly: bool = False
    # deployment
    workers: int | None = None  # None: one process serves; N: a supervisor runs N workers
    inherit_fd: tuple[int, ...] = ()
    worker_hang_timeout: float = 30.0
    stats_redis: str | None = None

    def upstream_settings(self, name: str) -> UpstreamSettings:
        """``name``: ``DEFAULT_UPSTREAM`` or one of ``UPSTREAM_APIS``."""
        flag = "--upstream" if name == DEFAULT_UPSTREAM else f"--{name}-upstream"
        if name == DEFAULT_UPSTREAM:
            return UpstreamSettings(
                flag, self.upstream, self.upstream_ca, self.upstream_http2, "--upstream-http2"
            )
        own_http2 = getattr(self, f"{name}_upstream_http2")
        return UpstreamSettings(
            flag,
            getattr(self, f"{name}_upstream"),
            getattr(self, f"{name}_upstream_ca") or self.upstream_ca,
            own_http2 or self.upstream_http2,
            f"{flag}-http2" if own_http2 else "--upstream-http2",
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
    for flag in FLAGS:
        parser.add_argument(
            f"--{flag.name}",
            dest=flag.dest,
            metavar=flag.metavar,
            action="append" if flag.repeat else "store",
            help=f"{flag.help} [env {flag.env}]",
        )
    for name, help_text in BOOL_FLAGS:
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
    for flag in FLAGS:
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
    for name, _ in BOOL_FLAGS:
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
    token = environ.get(ENV_PREFIX + "TOKEN") or None
    _check_combinations(values, token)
    config = Config(proxy_token=token, **values)
    _check_upstreams(config)
    return config


def _check_upstreams(config: Config) -> None:
    """At least one upstream; a per-API setting only beside that API's upstream; h2c
    (prior-knowledge) only to an http one: over TLS, ALPN chooses h2 ("auto")."""
    settings = [config.upstream_settings(n) for n in (DEFAULT_UPSTREAM, *UPSTREAM_APIS)]
    if all(s.url is None for s in settings):
        flags = ", ".join(f"--{api}-upstream" for api in UPSTREAM_APIS)
        raise UsageError(
            f"--upstream is required (or set {ENV_PREFIX}UPSTREAM), unless one of {flags} is set"
        )
    for api in UPSTREAM_APIS:
        for setting in ("ca", "http2"):
            if getattr(config, f"{api}_upstream_{setting}") and not getattr(
                config, f"{api}_upstream"
            ):
                raise UsageError(f"--{api}-upstream-{setting} is set but --{api}-upstream is not")
    for s in settings:
        if s.url is not None and s.url.tls and s.http2 == "prior-knowledge":
            raise UsageError(
                f"{s.http2_flag} prior-knowledge is h2c, for an http upstream; "
                f"{s.flag} is https (use auto)"
            )


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
