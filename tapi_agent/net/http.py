"""One way to build the agent's HTTP clients: OS trust store for TLS, proxy from settings."""

from __future__ import annotations

import ssl

import httpx
import truststore

USER_AGENT = "tapi-agent"


def tls_context() -> ssl.SSLContext:
    """A TLS client context that trusts what the OS trusts (corporate roots included)."""
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


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
