"""Which upstream a request goes to: one listener in front of several LLM APIs.

``--upstream`` takes everything; ``--anthropic-upstream``, ``--openai-upstream`` and
``--gemini-upstream`` take their API's requests, recognised by path first and then by the
credentials header each API's clients send. A request of an API with no upstream of its
own goes to ``--upstream``; with none set either it is answered 404 naming the flags.

Each origin has its own pool (so its own HTTP/2 choice, CA and keep-alive sockets), its own
Host authority and base path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from headroom.config import DEFAULT_UPSTREAM, Config
from headroom.config_flags import UPSTREAM_APIS
from headroom.protocol.pool import UpstreamPool, client_tls_context

# Paths that name their API whatever headers come with them: (exact path or prefix, API).
# A prefix ends with "/" and also matches the path without it.
_BY_PATH: tuple[tuple[bytes, str], ...] = (
    (b"/v1/messages/", "anthropic"),  # also /v1/messages/count_tokens, /v1/messages/batches
    (b"/v1/complete", "anthropic"),
    (b"/v1/chat/completions", "openai"),
    (b"/v1/completions", "openai"),
    (b"/v1/responses/", "openai"),  # also /v1/responses/{id}, and the Responses WebSocket
    (b"/v1beta/", "gemini"),
    (b"/upload/v1beta/", "gemini"),
)

_GEMINI_METHODS = frozenset(
    (
        b"generateContent",
        b"streamGenerateContent",
        b"countTokens",
        b"embedContent",
        b"batchEmbedContents",
        b"batchGenerateContent",
    )
)


def api_of(path: bytes, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The API a request belongs to, or None when nothing says.

    The path decides when it is one API's own. Otherwise the credentials do: Anthropic's
    clients send ``anthropic-version`` (and ``x-api-key``, or a Bearer OAuth token with
    ``anthropic-version``), Gemini's send ``x-goog-api-key`` or ``?key=`` (the query is not
    part of ``path``; its ``/v1/models/{model}:{method}`` paths end in a method name, where
    an OpenAI fine-tuned model's id has colons too), and OpenAI's a Bearer key on a
    ``/v1/`` path (so ``/v1/models`` goes by who asks)."""
    for prefix, api in _BY_PATH:
        if path.startswith(prefix) or path == prefix.rstrip(b"/"):
            return api
    if path.startswith(b"/v1/models/") and path.rpartition(b":")[2] in _GEMINI_METHODS:
        return "gemini"
    bearer = False
    for raw, value in headers:
        name = raw.lower()
        if name in (b"anthropic-version", b"x-api-key"):
            return "anthropic"
        if name == b"x-goog-api-key":
            return "gemini"
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = True
    if bearer and path.startswith(b"/v1/"):
        return "openai"
    return None


@dataclass(eq=False)
class Origin:
    """One upstream: where its requests go and the connections that carry them."""

    name: str  # "upstream" (for --upstream) or an API's name
    url: str  # for logs, /healthz/upstream and /stats: scheme, authority and base path
    authority: bytes  # the Host it is sent
    base: bytes  # prefixed to every request path
    pool: UpstreamPool


@dataclass(frozen=True)
class Unrouted:
    """No upstream takes this request: the 404 message says which flag would."""

    message: str


class Origins:
    """The upstreams of one process, by name; ``route`` picks one per request."""

    def __init__(self, origins: Sequence[Origin]) -> None:
        self.by_name = {origin.name: origin for origin in origins}
        self._default = self.by_name.get(DEFAULT_UPSTREAM)

    @classmethod
    def from_config(cls, config: Config) -> Origins:
        """One origin per upstream the configuration sets, --upstream first."""
        names = (DEFAULT_UPSTREAM, *UPSTREAM_APIS)
        origins = (_origin(name, config) for name in names)
        return cls([origin for origin in origins if origin is not None])

    def route(self, path: bytes, headers: Sequence[tuple[bytes, bytes]]) -> Origin | Unrouted:
        if len(self.by_name) == 1 and self._default is not None:
            return self._default  # one upstream: nothing to decide (the common case)
        api = api_of(path, headers)
        origin = self.by_name.get(api) if api is not None else None
        if origin is not None:
            return origin
        if self._default is not None:
            return self._default
        return Unrouted(_unrouted_message(api, list(self.by_name)))

    def __iter__(self) -> Iterator[Origin]:
        return iter(self.by_name.values())

    def close(self) -> None:
        for origin in self.by_name.values():
            origin.pool.close()


def _origin(name: str, config: Config) -> Origin | None:
    settings = config.upstream_settings(name)
    up, ca, http2 = settings.url, settings.ca, settings.http2
    if up is None:
        return None
    authority = up.authority.encode("ascii")
    pool = UpstreamPool(
        up.host,
        up.port,
        tls=client_tls_context(ca) if up.tls else None,
        connect_timeout=config.upstream_connect_timeout,
        max_idle=config.upstream_pool_size,
        idle_timeout=config.upstream_idle_timeout,
        http2=http2 if up.tls or http2 != "auto" else "off",
        authority=authority,
        extra_ca=ca,
    )
    return Origin(name, str(up), authority, up.base_path.encode("ascii"), pool)


def _unrouted_message(api: str | None, names: list[str]) -> str:
    if api is not None:
        return f"no upstream for {api} API requests: set --{api}-upstream or --upstream"
    flags = ", ".join(f"--{name}-upstream" for name in names)
    return f"no upstream for this request's API: set --upstream (only {flags} set)"
