"""The TLS listener: ALPN picks h2 or http/1.1, certificates from trustme, real clients."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.support.proxy_process import REPO, ProxyProcess, proxy_env
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    base = tmp_path_factory.mktemp("tls")
    paths = {"ca": base / "ca.pem", "cert": base / "cert.pem", "key": base / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(
    upstream: FakeUpstream, certs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    proc = ProxyProcess(_tls_args(upstream, certs), tmp_path_factory.mktemp("tlsproxy")).start()
    yield proc
    proc.kill()


def _tls_args(upstream: FakeUpstream, certs: dict[str, Path], *flags: str) -> list[str]:
    """A plain and a TLS listener, both on ephemeral ports."""
    return [
        *("--upstream", upstream.url, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"),
        *("--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"])),
        *("--ccr-backend", "memory", *flags),
    ]


def _ca(certs: dict[str, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs["ca"]))


def _tls_url(proxy: ProxyProcess) -> str:
    assert len(proxy.addrs) == 2, proxy.addrs
    return f"https://{proxy.addrs[1]}"


@pytest.mark.parametrize(("http2", "expected"), [(True, "HTTP/2"), (False, "HTTP/1.1")])
def test_alpn_chooses_the_protocol(
    proxy: ProxyProcess, upstream: FakeUpstream, certs: dict[str, Path], http2: bool, expected: str
) -> None:
    with httpx.Client(http2=http2, verify=_ca(certs), trust_env=False) as client:
        response = client.get(f"{_tls_url(proxy)}/echo")
    assert response.status_code == 200
    assert response.http_version == expected
    sent = dict((k.lower(), v) for k, v in upstream.requests[-1].headers)
    assert sent["x-forwarded-proto"] == "https"


def test_curl_over_tls_both_protocols(proxy: ProxyProcess, certs: dict[str, Path]) -> None:
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        out = subprocess.run(
            [
                "curl",
                "-s",
                flag,
                "--cacert",
                str(certs["ca"]),
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
                f"{_tls_url(proxy)}/echo",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        assert out.stdout == f"{version} 200"


def test_plaintext_on_the_tls_port_hurts_no_one(
    proxy: ProxyProcess, certs: dict[str, Path]
) -> None:
    host, port = proxy.addrs[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        try:
            sock.recv(100)
        except OSError:
            pass
    response = httpx.get(f"{_tls_url(proxy)}/healthz", verify=_ca(certs), trust_env=False)
    assert response.json()["ok"] is True


def test_unusable_certificate_stops_startup_with_exit_1(
    certs: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "headroom.proxy",
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            str(bad),
            "--tls-key",
            str(certs["key"]),
            "--ccr-backend",
            "memory",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=REPO,
        env=proxy_env(tmp_path),
    )
    assert done.returncode == 1
    assert "--tls-cert" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_tls_flags_must_come_together(tmp_path: Path, certs: dict[str, Path]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "headroom.proxy",
            "--upstream",
            "http://127.0.0.1:1",
            "--tls-listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=REPO,
        env=proxy_env(tmp_path),
    )
    assert done.returncode == 2 and "--tls-cert" in done.stderr


def test_a_client_that_never_says_hello_is_closed_at_the_header_timeout(
    upstream: FakeUpstream, certs: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 11 point 15: the header deadline starts at accept, TLS handshake included
    (connections with no ClientHello were held 60 s with --header-timeout 3s)."""
    flags = ("--header-timeout", "1s", "--max-connections", "3")
    proc = ProxyProcess(_tls_args(upstream, certs, *flags), tmp_path).start()
    try:
        host, port = proc.addrs[1].rsplit(":", 1)
        silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
        started = time.monotonic()
        for sock in silent:
            sock.settimeout(5)
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
        assert time.monotonic() - started < 3.5
        # Their slots are free again: a real client gets in.
        response = httpx.get(f"https://{proc.addrs[1]}/healthz", verify=_ca(certs), trust_env=False)
        assert response.status_code == 200
        for sock in silent:
            sock.close()
    finally:
        proc.kill()
