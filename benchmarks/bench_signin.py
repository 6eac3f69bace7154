"""Sign-in: how long the agent's OpenID Connect sign-in and a refresh take, and what the ID
token check costs in memory.

    .venv/bin/python benchmarks/bench_signin.py [--quick]

Per round, a new `ReapitConnect` (nothing cached: discovery, keys and all) and `Session`
sign in through a browser stand-in that follows the redirects at once (no person typing), so
the figure is the agent's own cost plus the provider's: discovery, the authorize redirect,
the loopback listener, the token exchange, the ID token verified against the JWKS, and (for
oidc-provider, which keeps claims for UserInfo) a UserInfo request. Then one refresh.
Providers: the mock with an issuer path (as Reapit Connect's), and panva's `oidc-provider`
(npm; `npm ci --prefix tests/oidc` first). Memory: the peak RSS of a fresh interpreter that
imports what the agent imports for the network, with and without PyJWT + cryptography and one
RS256 key: what an interactive sign-in added to the agent for the rest of its life before the
check moved to a child process (net/id_token_child.py, issue 14); the agent no longer loads
them (its RSS after a sign-in: benchmarks/bench_signin_rss.py). The sign-in time includes
starting that child.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, percentiles, write_result

from tapi_agent.mock.server import MockServer
from tapi_agent.net.auth import ReapitConnect, Session
from tapi_agent.net.tokens import MemoryTokenStore
from tests.net.test_auth import Browser
from tests.oidc_provider import OidcBrowser, start_oidc_provider

# VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child would report this process's peak.
_RSS = """
import re
import httpx, pydantic, websockets
{extra}
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024)
"""
_JOSE = """
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwt.decode(jwt.encode({"a": 1}, key, algorithm="RS256"), key.public_key(), algorithms=["RS256"])
"""


async def _rounds(issuer: str, browser: Callable[[], Any], n: int) -> dict[str, Any]:
    sign_in: list[float] = []
    refresh: list[float] = []
    for _ in range(n):
        connect = ReapitConnect(issuer, "tapi-agent")
        session = Session(connect, MemoryTokenStore(), open_browser=browser())
        started = time.perf_counter()
        await session.sign_in(port=0, timeout_s=20)
        sign_in.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await session.refresh()
        refresh.append((time.perf_counter() - started) * 1000)
        await connect.aclose()
    return {"signInMs": percentiles(sign_in), "refreshMs": percentiles(refresh)}


def _peak_rss(extra: str) -> float:
    out = subprocess.run([sys.executable, "-c", _RSS.format(extra=extra)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 30")
    args = parser.parse_args()
    n = 5 if args.quick else 30
    result: dict[str, Any] = {}
    with MockServer(auto_approve="JAS", issuer_path="/eu-west-2_demo") as mock:
        result["mock"] = asyncio.run(_rounds(mock.base_url + "/eu-west-2_demo", Browser, n))
    with start_oidc_provider() as provider:
        result["oidcProvider"] = asyncio.run(
            _rounds(provider.issuer, lambda: OidcBrowser("JAS"), n))
    without = statistics.median(_peak_rss("") for _ in range(3))
    with_jose = statistics.median(_peak_rss(_JOSE) for _ in range(3))
    result["peakRssMiB"] = {"withoutJose": without, "withJose": with_jose,
                            "joseCost": with_jose - without}
    for name in ("mock", "oidcProvider"):
        print(f"{name}: sign-in {fmt(result[name]['signInMs'])}")
        print(f"{name}: refresh {fmt(result[name]['refreshMs'])}")
    print(f"peak RSS: {without:.1f} MiB without PyJWT+cryptography, {with_jose:.1f} MiB with "
          f"(+{with_jose - without:.1f} MiB, now in the ID token check's child only)")
    print(f"wrote {write_result('signin', result, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
