"""Network shell: the websocket stream, the HTTP API client, Reapit Connect sign-in, token store."""

import sys

# httpx imports its command-line tool (and with it click, rich and pygments, ~9 MiB of RSS)
# whenever those happen to be installed, as in a developer's or a pip install; the agent never
# uses it. The installer leaves it out (installer/tapi-agent.spec); this does the same for the
# agent run from a wheel, before any module of this package imports httpx (issue 14, measured
# in BENCHMARKS.md). httpx then offers a stub `main` that asks for httpx[cli].
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
