"""One TLS context for the whole agent process (issue 14: idle memory).

Each truststore context loads the OS CA bundle into its own store at its first handshake
(about 1.7 MiB on Linux); the HTTP clients and the stream share one.
"""

from __future__ import annotations

import asyncio

import truststore

from tapi_agent.net import http
from tapi_agent.net.stream import StreamClient


def test_http_clients_and_stream_build_one_context(monkeypatch):
    built = []
    real = truststore.SSLContext

    def counting(*args, **kwargs):
        ctx = real(*args, **kwargs)
        built.append(ctx)
        return ctx

    monkeypatch.setattr(truststore, "SSLContext", counting)
    monkeypatch.setattr(http, "_tls", None)

    async def build():
        clients = [http.make_http_client(), http.make_http_client("none"),
                   http.make_http_client("http://proxy.example:3128")]
        stream = StreamClient("https://api.example.com", tokens=None,  # type: ignore[arg-type]
                              on_delivery=print, on_status=print, on_resync=print)
        ctx = stream._ssl_context()
        for c in clients:
            await c.aclose()
        return ctx

    ctx = asyncio.run(build())
    assert len(built) == 1
    assert ctx is built[0] is http.tls_context()
