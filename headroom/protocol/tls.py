"""The client-facing TLS context: ALPN offers h2 first, then http/1.1."""

from __future__ import annotations

import ssl
from pathlib import Path


class TLSSetupError(Exception):
    """The certificate or key cannot be used; startup stops with this one line (exit 1)."""


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TLSSetupError(f"cannot use --tls-cert {cert} / --tls-key {key}: {exc}") from None
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx
