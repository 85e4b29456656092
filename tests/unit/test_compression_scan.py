"""Issue 13 point 1: a buffered body that cannot hold a tool output is decided on the loop
thread from a scan of its bytes, with no executor hand-off and no parse."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from headroom.config import Config
from headroom.log import Logger
from headroom.protocol.events import RequestHead
from headroom.proxy.compression import Compression
from headroom.proxy.turns import TurnGate
from headroom.telemetry.stats import Stats
from headroom.values import parse_upstream


class _NoExecutor:
    def submit(self, *args: Any, **kw: Any) -> None:
        raise RuntimeError("the executor was asked")

    def shutdown(self, wait: bool = True) -> None:
        pass


def _request(path: bytes) -> SimpleNamespace:
    head = RequestHead(b"POST", path, [(b"content-type", b"application/json")])
    return SimpleNamespace(head=head, path=path, request_id=b"rid")


def _app(loop: asyncio.AbstractEventLoop) -> Any:
    """What ``Compression`` asks of the process, with no store."""
    return SimpleNamespace(
        config=Config(upstream=parse_upstream("http://upstream.test")),
        stats=Stats(),
        log=Logger("debug", io.BytesIO()),
        loop=loop,
        rounds=None,
        store=None,
        learner=None,
        turns=TurnGate(loop),
    )


@pytest.fixture
def compression() -> Any:
    loop = asyncio.new_event_loop()
    comp = Compression(_app(loop))
    comp.executor.shutdown()
    comp.executor = _NoExecutor()  # type: ignore[assignment]
    yield comp
    loop.close()


BODIES = {
    "/v1/messages": (
        {"messages": [{"role": "user", "content": "x" * 5000}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "content": "y" * 5000}]}
            ]
        },
    ),
    "/v1/chat/completions": (
        {"messages": [{"role": "user", "content": "x" * 5000}]},
        {"messages": [{"role": "tool", "tool_call_id": "c", "content": "y" * 5000}]},
    ),
    "/v1/responses": (
        {"input": [{"role": "user", "content": "x" * 5000}]},
        {"input": [{"type": "function_call_output", "call_id": "c", "output": "y" * 5000}]},
    ),
}


@pytest.mark.parametrize("path", list(BODIES))
def test_no_tool_output_is_decided_without_the_executor(compression: Any, path: str) -> None:
    without, with_output = (json.dumps({"model": "m", **b}).encode() for b in BODIES[path])
    run = compression.app.loop.run_until_complete
    decision = run(compression(_request(path.encode()), without))
    assert decision.body is without and decision.retrieval is None
    with pytest.raises(RuntimeError, match="executor was asked"):
        run(compression(_request(path.encode()), with_output))


def test_a_body_shorter_than_min_chars_never_leaves_the_loop(compression: Any) -> None:
    small = json.dumps({"messages": [{"role": "tool", "content": "y"}]}).encode()
    decision = compression.app.loop.run_until_complete(
        compression(_request(b"/v1/chat/completions"), small)
    )
    assert decision.body is small


def test_encoded_bodies_are_decoded_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 point 5: a small brotli body may inflate to --max-body-bytes (~0.4 s of C
    work for 100 MB): it must never be decoded on the loop's thread. (The latency other
    clients see during such bombs is measured by ``python -m bench hardening``.)"""
    import brotli

    from headroom.proxy import compression as module

    threads: list[int] = []
    real = module.decode

    def recording(*args: Any) -> bytes:
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(module, "decode", recording)
    loop = asyncio.new_event_loop()
    comp = Compression(_app(loop))
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]})
    request = _request(b"/v1/messages")
    request.head.headers.append((b"content-encoding", b"br"))
    try:
        loop.run_until_complete(comp(request, brotli.compress(body.encode())))
    finally:
        comp.executor.shutdown()
        loop.close()
    assert threads and threading.get_ident() not in threads
