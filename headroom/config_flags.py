"""The proxy's flags: name, parser, help text and environment variable of each.

``config.load`` reads them (flag, then ``HEADROOM_PROXY_<FLAG>``, then the ``Config``
default); this table is the one place a flag is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headroom.values import (
    ca_file,
    choice,
    existing_file,
    parse_duration,
    parse_fd,
    parse_listen,
    parse_size,
    parse_upstream,
    parse_workers,
    path_value,
    positive_int,
    price_table,
    redis_url,
    stream_count,
    text_value,
)

ENV_PREFIX = "HEADROOM_PROXY_"
# The APIs with an upstream of their own: --<api>-upstream, --<api>-upstream-ca and
# --<api>-upstream-http2, with what the flags' help says each takes.
UPSTREAM_APIS: dict[str, str] = {
    "anthropic": "Anthropic Messages API (/v1/messages...)",
    "openai": "OpenAI API (/v1/chat/completions, /v1/responses, Bearer /v1/...)",
    "gemini": "Gemini API (/v1beta/..., /v1/models/M:generateContent...)",
}


@dataclass(frozen=True)
class Flag:
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


FLAGS: tuple[Flag, ...] = (
    Flag(
        "listen",
        parse_listen,
        "address to listen on, IP:PORT or [IPv6]:PORT; repeatable (default 0.0.0.0:8787)",
        "ADDR",
        repeat=True,
    ),
    Flag(
        "upstream",
        parse_upstream,
        "upstream base URL, http(s)://host[:port][/base/path]: every request no per-API "
        "upstream below takes (required unless one of those is set)",
        "URL",
    ),
    *(
        flag
        for api, label in UPSTREAM_APIS.items()
        for flag in (
            Flag(f"{api}-upstream", parse_upstream, f"upstream URL for the {label}", "URL"),
            Flag(
                f"{api}-upstream-ca",
                ca_file,
                f"private CA for --{api}-upstream (default --upstream-ca)",
                "FILE",
            ),
            Flag(
                f"{api}-upstream-http2",
                choice("auto", "off", "prior-knowledge"),
                f"HTTP/2 to --{api}-upstream (default --upstream-http2)",
                "MODE",
            ),
        )
    ),
    Flag(
        "upstream-timeout",
        parse_duration,
        "time allowed until response headers and between response body chunks (default 600s)",
        "DURATION",
    ),
    Flag(
        "upstream-connect-timeout",
        parse_duration,
        "TCP + TLS connect timeout (default 10s)",
        "DURATION",
    ),
    Flag(
        "max-body-bytes",
        parse_size,
        "largest request body buffered on the compression routes; larger gets 413 (default 100MB)",
        "SIZE",
    ),
    Flag(
        "log-level",
        choice("debug", "info", "warning", "error"),
        "debug, info, warning or error (default info)",
        "LEVEL",
    ),
    Flag(
        "graceful-shutdown-timeout",
        parse_duration,
        "how long in-flight requests may run after SIGTERM (default 30s)",
        "DURATION",
    ),
    Flag(
        "upstream-ca",
        ca_file,
        "PEM file of a private CA to trust for an https upstream, in addition to the system CAs",
        "FILE",
    ),
    Flag(
        "loop",
        choice("auto", "uvloop", "asyncio"),
        "event loop: auto (uvloop when installed), uvloop, asyncio (default auto)",
        "LOOP",
    ),
    Flag(
        "max-connections",
        positive_int,
        "client connections held at once; accepting pauses above it (default 10000)",
        "N",
    ),
    Flag(
        "header-timeout",
        parse_duration,
        "time a client has to send complete request headers (default 10s)",
        "DURATION",
    ),
    Flag(
        "body-timeout",
        parse_duration,
        "silence allowed between request body bytes; then 408 and close (default 30s)",
        "DURATION",
    ),
    Flag(
        "max-buffered-bytes",
        parse_size,
        "request bytes all connections together may hold for buffering; past it bodies wait,"
        " then 503 (default 512MiB)",
        "SIZE",
    ),
    Flag(
        "memo-max-bytes",
        parse_size,
        "compressed tool outputs remembered per process, so a re-sent history is not"
        " compressed again (default 64MiB)",
        "SIZE",
    ),
    Flag(
        "ledger-max-bytes",
        parse_size,
        "served retrieval rounds each process caches, originals filled in (default 16MiB)",
        "SIZE",
    ),
    Flag(
        "keepalive-timeout",
        parse_duration,
        "idle time before a client keep-alive connection is closed (default 60s)",
        "DURATION",
    ),
    Flag(
        "upstream-pool-size",
        positive_int,
        "idle upstream connections kept per origin (default 256)",
        "N",
    ),
    Flag(
        "upstream-idle-timeout",
        parse_duration,
        "idle time before a pooled upstream connection is closed (default 30s)",
        "DURATION",
    ),
    Flag(
        "compression",
        choice("on", "off"),
        "compress tool outputs in request bodies (default on); the request header "
        "x-headroom-bypass: true skips one request",
        "on|off",
    ),
    Flag(
        "retrieve-tool",
        choice("when-needed", "always"),
        "when headroom_retrieve is declared to the model: when-needed (default: only in "
        "requests that carry a marker, so others go byte for byte) or always (in every "
        "request with tools on a compression route, so the prompt's tools never change "
        "mid-conversation and the provider's prompt cache is never rewritten for it)",
        "when-needed|always",
    ),
    Flag(
        "compression-timeout",
        parse_duration,
        "deadline for compressing one request; past it the original body is forwarded (default 2s)",
        "DURATION",
    ),
    Flag(
        "compression-min-chars",
        positive_int,
        "tool outputs shorter than this are left alone (default 1000)",
        "N",
    ),
    Flag(
        "learning",
        choice("on", "off"),
        "learn from retrievals: a tool whose outputs the model fetches back is compressed "
        "less from then on, shared through the CCR store (default on)",
        "on|off",
    ),
    Flag(
        "price-table",
        price_table,
        "JSON file of per-model prices (USD per million input, cached input, cache write and "
        "output tokens): /stats and /metrics then estimate cost with and without headroom",
        "FILE",
    ),
    Flag(
        "ccr-backend",
        choice("memory", "sqlite", "redis"),
        "where dropped content is kept: memory, sqlite or redis (default sqlite)",
        "NAME",
    ),
    Flag(
        "ccr-path",
        path_value,
        "SQLite file for the CCR store (default ~/.headroom/ccr.sqlite3)",
        "FILE",
    ),
    Flag(
        "ccr-ttl",
        parse_duration,
        "how long a stored original lives after its last use (default 24h)",
        "DURATION",
    ),
    Flag(
        "ccr-max-bytes",
        parse_size,
        "size cap of the memory and SQLite CCR stores (for Redis use its maxmemory); "
        "least recently used go first (default 1GiB)",
        "SIZE",
    ),
    Flag(
        "ccr-max-entries", positive_int, "entry cap of the memory CCR store (default 100000)", "N"
    ),
    Flag("ccr-redis-url", text_value, "redis:// or rediss:// URL for --ccr-backend redis", "URL"),
    Flag(
        "ccr-redis-prefix",
        text_value,
        "key prefix in Redis, for tenants sharing one server (default headroom:ccr:)",
        "PREFIX",
    ),
    Flag(
        "tls-listen",
        parse_listen,
        "address for a TLS listener offering ALPN h2 and http/1.1 (needs --tls-cert and "
        "--tls-key); repeatable",
        "ADDR",
        repeat=True,
    ),
    Flag("tls-cert", existing_file, "PEM certificate chain for --tls-listen", "FILE"),
    Flag("tls-key", existing_file, "PEM private key for --tls-listen", "FILE"),
    Flag(
        "upstream-http2",
        choice("auto", "off", "prior-knowledge"),
        "HTTP/2 to the upstream: auto (offer h2 over TLS, use it when chosen), off, or "
        "prior-knowledge (h2c to an http upstream) (default auto)",
        "MODE",
    ),
    Flag(
        "h2-max-streams",
        stream_count,
        "concurrent HTTP/2 streams a client may open per connection (default 100)",
        "N",
    ),
    Flag(
        "workers",
        parse_workers,
        "worker processes behind a supervisor, N or auto (= CPUs); without it one process "
        "serves (see deploy/README.md)",
        "N|auto",
    ),
    Flag(
        "inherit-fd",
        parse_fd,
        "serve on this already-listening socket instead of binding --listen (zero-downtime "
        "rollouts outside systemd); repeatable",
        "FD",
        repeat=True,
    ),
    Flag(
        "worker-hang-timeout",
        parse_duration,
        "with --workers: a worker whose event loop has not answered the supervisor for this "
        "long is killed and replaced (default 30s)",
        "DURATION",
    ),
    Flag(
        "stats-redis",
        redis_url,
        "redis:// or rediss:// URL where this host publishes its totals, so that "
        "/stats?scope=fleet on any host adds up every host using the same Redis",
        "URL",
    ),
)

BOOL_FLAGS: tuple[tuple[str, str], ...] = (
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
