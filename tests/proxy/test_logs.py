"""Issue 2 point 11: one JSON line per request, and secrets never in the output."""

from __future__ import annotations

import contextlib
import json
import signal
import socket

import hpack
import httpx
from hyperframe.frame import HeadersFrame

from tests.proxy.conftest import StartProxy
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request, request
from tests.support.upstream import FakeUpstream, free_port

FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "upstream_status",
    "bytes_in",
    "bytes_out",
    "time_to_headers_ms",
    "total_ms",
    "upstream_request_id",
)


def test_one_request_line_with_every_field(client: httpx.Client, proxy: ProxyProcess) -> None:
    body = b"q" * 300
    resp = client.post(
        "/headers?rid=req_up_42", content=body, headers={"x-request-id": "log-test-1"}
    )
    assert resp.status_code == 200
    line = proxy.request_log("log-test-1")
    missing = [f for f in FIELDS if f not in line]
    assert not missing, (missing, line)
    assert isinstance(line["ts"], (str, int, float)) and line["level"]
    assert (line["method"], line["status"], line["upstream_status"]) == ("POST", 200, 200)
    assert line["path"].startswith("/headers"), line
    assert line["upstream_request_id"] == "req_up_42"
    assert line["bytes_in"] >= len(body) and line["bytes_out"] >= len(b"headers"), line
    assert 0 <= line["time_to_headers_ms"] <= line["total_ms"], line
    same = [e for e in proxy.events("request") if e.get("request_id") == "log-test-1"]
    assert len(same) == 1, same


def test_every_stdout_line_is_a_json_log_entry(client: httpx.Client, proxy: ProxyProcess) -> None:
    client.get("/echo")
    client.get("/healthz")
    for line in proxy.stdout_lines:
        entry = json.loads(line)
        assert {"ts", "level", "event"} <= entry.keys(), entry


def test_error_responses_are_logged(start_proxy: StartProxy) -> None:
    proc = start_proxy(f"http://127.0.0.1:{free_port()}")
    resp = httpx.get(f"{proc.url}/v1/models", trust_env=False)
    line = proc.request_log(resp.headers["x-request-id"])
    assert line["status"] == 502 and line["upstream_status"] in (None, 0), line


SECRETS = ("sk-SECRET-AUTH-7f3a", "sk-ant-SECRET-KEY-91bc", "SECRET-COOKIE-55de")


def test_secrets_never_logged_even_at_debug(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    proc = start_proxy(upstream_server.url, "--log-level", "debug")
    headers = [
        ("Host", "x"),
        ("Authorization", f"Bearer {SECRETS[0]}"),
        ("x-api-key", SECRETS[1]),
        ("Cookie", f"session={SECRETS[2]}"),
    ]
    request(proc.port, "GET", "/echo", headers)
    request(
        proc.port,
        "POST",
        "/v1/messages",
        [*headers, ("Content-Type", "application/json"), ("Content-Length", "2")],
        b"{}",
    )
    request(proc.port, "GET", "/status/500", headers)
    request(
        proc.port,
        "POST",
        "/echo",
        [*headers, ("Content-Length", "1"), ("Transfer-Encoding", "chunked")],
        b"0\r\n\r\n",
    )
    request(proc.port, "GET", "/redirect?to=/x", headers)
    dead = start_proxy(f"http://127.0.0.1:{free_port()}", "--log-level", "debug")
    request(dead.port, "GET", "/echo", headers)
    for each in (proc, dead):
        each.send_signal(signal.SIGTERM)
        each.wait(5)
        text = "\n".join(each.stdout_lines + each.stderr_lines)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"secrets in the log: {leaked}"
        assert each.events("request"), "no request lines to check"


def test_requests_that_end_badly_are_logged_too(
    proxy: ProxyProcess, upstream: FakeUpstream
) -> None:
    """A client that leaves mid-stream and an upstream that dies mid-body still get their
    one line each (with the status that was sent)."""
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request(
                "GET", "/sse?n=100&gap_ms=50", [("Host", "x"), ("X-Request-Id", "left-mid-stream")]
            )
        )
        assert conn.read_until(b"event-1") is not None
    with RawConn(proxy.port) as conn:
        conn.send(
            build_request(
                "GET", "/reset-mid-body", [("Host", "x"), ("X-Request-Id", "upstream-died")]
            )
        )
        assert not conn.read_response().complete
    for rid in ("left-mid-stream", "upstream-died"):
        line = proxy.request_log(rid, timeout=3)
        assert line["status"] == 200 and line["bytes_out"] > 0, line


def test_broken_headers_and_userinfo_never_leak(
    start_proxy: StartProxy, upstream_server: FakeUpstream
) -> None:
    """Issue 11 point 9: a key read from a CRLF file (trailing CR), a cookie with a control
    character, an h2 value with stray spaces and a password in an absolute-form target:
    the log says which header and why, never the value."""
    proc = start_proxy(upstream_server.url, "--log-level", "debug")
    bad = [
        ("Host", "x"),
        ("Authorization", f"Bearer {SECRETS[0]}\r"),
    ]
    resp = request(proc.port, "GET", "/echo", bad)
    assert resp.status == 400
    assert SECRETS[0] not in resp.body.decode()
    request(proc.port, "GET", "/echo", [("Host", "x"), ("Cookie", f"s={SECRETS[2]}\x7f\r")])
    request(proc.port, "GET", f"http://user:{SECRETS[1]}@x/echo", [("Host", "x")])
    request(proc.port, "GET", f"http://user:{SECRETS[1]}@x/echo x", [("Host", "x")])
    block = hpack.Encoder().encode(
        [
            (":method", "GET"),
            (":path", "/echo"),
            (":scheme", "http"),
            (":authority", "x"),
            ("authorization", f" Bearer {SECRETS[1]} "),
        ]
    )
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        frame = HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
        sock.sendall(preface + frame)
        sock.settimeout(3)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
    proc.wait_for_log(lambda e: e.get("event") == "h2_connection_closed")
    line = proc.wait_for_log(lambda e: "authorization" in str(e.get("message", "")))
    assert line["event"] == "bad_request", line
    proc.send_signal(signal.SIGTERM)
    proc.wait(5)
    text = "\n".join(proc.stdout_lines + proc.stderr_lines)
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets in the log: {leaked}\n{text[-3000:]}"
    paths = [e["path"] for e in proc.events("request")]
    assert "http://x/echo" in paths, paths
