"""One way to build the agent's HTTP clients: OS trust store for TLS, proxy from settings."""

from __future__ import annotations

import ssl
import threading

import httpx
import truststore

USER_AGENT = "tapi-agent"

_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """The process's one TLS client context: it trusts what the OS trusts (corporate roots too).

    Shared by every HTTP client and the stream: on Linux each context loads the system's CA
    bundle into its own store at its first handshake (about 1.7 MiB), so one context per client
    would hold as many copies. truststore configures it under its own lock at every handshake,
    which makes sharing it between clients and threads safe.
    """
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return _tls


def make_http_client(proxy: str = "system", *, timeout_s: float = 15.0) -> httpx.AsyncClient:
    """An AsyncClient for the backend and Reapit Connect.

    `proxy` is the `network.proxy` setting: `system` (environment, and on Windows the registry
    settings, through httpx's trust_env), `none`, or a proxy URL.
    """
    from tapi_agent import __version__

    explicit = proxy not in ("system", "none", "")
    return httpx.AsyncClient(
        verify=tls_context(),
        trust_env=proxy == "system",
        proxy=proxy if explicit else None,
        timeout=httpx.Timeout(timeout_s),
        headers={"User-Agent": f"{USER_AGENT}/{__version__}"},
        follow_redirects=False,
    )
