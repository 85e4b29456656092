"""Issue 14 point 1: which upstream a request goes to, and which flag combinations start."""

from __future__ import annotations

import pytest

from headroom.config import Config, UsageError, load
from headroom.proxy.origins import Origins, Unrouted, api_of
from headroom.values import parse_upstream

ANTHROPIC = [(b"x-api-key", b"sk-ant"), (b"anthropic-version", b"2023-06-01")]
OAUTH = [(b"authorization", b"Bearer oat-1"), (b"anthropic-version", b"2023-06-01")]
OPENAI = [(b"authorization", b"Bearer sk-proj-1")]
GOOGLE = [(b"x-goog-api-key", b"AIza")]


@pytest.mark.parametrize(
    ("path", "headers", "api"),
    [
        (b"/v1/messages", [], "anthropic"),
        (b"/v1/messages/count_tokens", OPENAI, "anthropic"),  # the path is Anthropic's own
        (b"/v1/messages/batches/msgbatch_1", [], "anthropic"),
        (b"/v1/messagesX", [], None),  # a prefix is a path segment, not a string prefix
        (b"/v1/chat/completions", [], "openai"),
        (b"/v1/chat/completions", ANTHROPIC, "openai"),
        (b"/v1/responses", [], "openai"),
        (b"/v1/responses/resp_123/cancel", [], "openai"),
        (b"/v1/models", OPENAI, "openai"),  # /v1/models goes by who asks
        (b"/v1/models", ANTHROPIC, "anthropic"),
        (b"/v1/models", OAUTH, "anthropic"),  # Claude Code's OAuth Bearer + anthropic-version
        (b"/v1/models/ft:gpt-4o-mini:acme::abc123", OPENAI, "openai"),  # colons, no method
        (b"/v1/embeddings", OPENAI, "openai"),
        (b"/v1/files", ANTHROPIC, "anthropic"),
        (b"/v1beta/models/gemini-2.5-pro:generateContent", [], "gemini"),
        (b"/v1beta/models/gemini-2.5-pro:streamGenerateContent", OPENAI, "gemini"),
        (b"/v1/models/gemini-2.5-flash:countTokens", [], "gemini"),
        (b"/v1beta/models", [], "gemini"),
        (b"/upload/v1beta/files", [], "gemini"),
        (b"/v1/cachedContents", GOOGLE, "gemini"),
        (b"/v1/models", [], None),
        (b"/healthz/whatever", [], None),
        (b"/v2/things", OPENAI, None),  # a Bearer key alone names OpenAI only under /v1/
    ],
)
def test_api_of(path: bytes, headers: list[tuple[bytes, bytes]], api: str | None) -> None:
    assert api_of(path, headers) == api


def _config(**upstreams: str) -> Config:
    return Config(**{name: parse_upstream(url) for name, url in upstreams.items()})


def test_each_api_goes_to_its_upstream_and_the_rest_to_upstream() -> None:
    origins = Origins.from_config(
        _config(
            upstream="http://127.0.0.1:9000",
            anthropic_upstream="https://api.anthropic.com",
            openai_upstream="http://127.0.0.1:9001/openai",
        )
    )
    picked = {
        path: origins.route(path, headers)
        for path, headers in [
            (b"/v1/messages", []),
            (b"/v1/responses", []),
            (b"/v1beta/models/g:generateContent", []),  # no Gemini upstream: --upstream
            (b"/other", []),
        ]
    }
    names = {path: getattr(origin, "name", origin) for path, origin in picked.items()}
    assert names == {
        b"/v1/messages": "anthropic",
        b"/v1/responses": "openai",
        b"/v1beta/models/g:generateContent": "upstream",
        b"/other": "upstream",
    }
    openai = origins.by_name["openai"]
    assert (openai.authority, openai.base, openai.url) == (
        b"127.0.0.1:9001",
        b"/openai",
        "http://127.0.0.1:9001/openai",
    )
    assert origins.by_name["anthropic"].authority == b"api.anthropic.com"
    assert origins.by_name["anthropic"].pool.tls is not None
    assert openai.pool.tls is None


def test_without_upstream_an_unknown_request_is_unrouted_with_the_flags_named() -> None:
    origins = Origins.from_config(_config(anthropic_upstream="http://127.0.0.1:9000"))
    got = origins.route(b"/v1/responses", [])
    assert isinstance(got, Unrouted)
    assert "--openai-upstream" in got.message and "--upstream" in got.message
    got = origins.route(b"/somewhere", [])
    assert isinstance(got, Unrouted)
    assert "--upstream" in got.message and "--anthropic-upstream" in got.message


def test_a_single_upstream_takes_everything() -> None:
    origins = Origins.from_config(_config(upstream="http://127.0.0.1:9000"))
    assert [o.name for o in origins] == ["upstream"]
    for path in (b"/v1/messages", b"/v1beta/models/g:generateContent", b"/x"):
        assert getattr(origins.route(path, []), "name", None) == "upstream"


def test_per_api_http2_defaults_to_the_upstream_one() -> None:
    config = load(
        [
            "--anthropic-upstream",
            "https://127.0.0.1:9443",
            "--openai-upstream",
            "http://127.0.0.1:9001",
            "--openai-upstream-http2",
            "prior-knowledge",
            "--upstream-http2",
            "off",
        ],
        {},
    )
    assert config.upstream is None  # no --upstream is fine when an API has one
    origins = Origins.from_config(config)
    assert origins.by_name["anthropic"].pool.http2 == "off"  # --upstream-http2's
    assert origins.by_name["openai"].pool.http2 == "prior-knowledge"


def test_prior_knowledge_stays_with_the_http_upstream_that_asked_for_it() -> None:
    config = load(
        [
            "--upstream",
            "http://127.0.0.1:9000",
            "--upstream-http2",
            "prior-knowledge",
            "--anthropic-upstream",
            "https://127.0.0.1:9443",
            "--anthropic-upstream-http2",
            "auto",
        ],
        {},
    )
    origins = Origins.from_config(config)
    assert origins.by_name["upstream"].pool.http2 == "prior-knowledge"
    assert origins.by_name["anthropic"].pool.http2 == "auto"


def test_environment_sets_per_api_upstreams() -> None:
    config = load([], {"HEADROOM_PROXY_GEMINI_UPSTREAM": "http://127.0.0.1:9002"})
    assert str(config.gemini_upstream) == "http://127.0.0.1:9002"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--upstream is required"),
        (["--gemini-upstream-http2", "off", "--upstream", "http://a"], "--gemini-upstream is not"),
        (["--openai-upstream", "ftp://x"], "--openai-upstream:"),
        (
            ["--upstream", "https://a", "--upstream-http2", "prior-knowledge"],
            "--upstream-http2 prior-knowledge is h2c.*--upstream is https",
        ),
        (  # inherited from --upstream-http2 by an https per-API upstream
            [
                "--upstream",
                "http://a",
                "--upstream-http2",
                "prior-knowledge",
                "--anthropic-upstream",
                "https://b",
            ],
            "--upstream-http2 prior-knowledge is h2c.*--anthropic-upstream is https",
        ),
        (
            ["--gemini-upstream", "https://g", "--gemini-upstream-http2", "prior-knowledge"],
            "--gemini-upstream-http2 prior-knowledge is h2c.*--gemini-upstream is https",
        ),
    ],
)
def test_bad_combinations_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load(argv, {})
