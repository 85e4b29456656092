"""The official SDKs pointed at the proxy, with the exact request bytes they sent kept.

An event hook on the SDK's own HTTP client records each request body, so a test can
compare what the upstream received with what the SDK put on the wire, byte for byte.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from tests.support.proxy_process import ProxyProcess

API_KEY = "sk-test-dummy"


class Sent:
    """Bodies the SDK sent, in order."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def hook(self, request: Any) -> None:
        self.bodies.append(request.read())

    async def ahook(self, request: Any) -> None:
        self.bodies.append(await request.aread())

    @property
    def last(self) -> bytes:
        assert self.bodies, "the SDK sent nothing"
        return self.bodies[-1]


def anthropic_sync(proxy: ProxyProcess, sent: Sent) -> anthropic.Anthropic:
    http = anthropic.DefaultHttpxClient(event_hooks={"request": [sent.hook]})
    return anthropic.Anthropic(
        base_url=proxy.url, api_key=API_KEY, max_retries=0, timeout=20, http_client=http
    )


def anthropic_async(proxy: ProxyProcess, sent: Sent) -> anthropic.AsyncAnthropic:
    http = anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [sent.ahook]})
    return anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key=API_KEY, max_retries=0, timeout=20, http_client=http
    )


def openai_sync(proxy: ProxyProcess, sent: Sent) -> openai.OpenAI:
    http = openai.DefaultHttpxClient(event_hooks={"request": [sent.hook]})
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0, timeout=20, http_client=http
    )


def openai_async(proxy: ProxyProcess, sent: Sent) -> openai.AsyncOpenAI:
    http = openai.DefaultAsyncHttpxClient(event_hooks={"request": [sent.ahook]})
    return openai.AsyncOpenAI(
        base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0, timeout=20, http_client=http
    )
