"""The demo: the mock backend started in-process, tokens it mints, the calls it will play."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapi_agent.demo import DemoPlayer
    from tapi_agent.mock.server import MockServer
    from tapi_agent.net.session import CallableTokenSource


def start_demo(negotiator: str, *, calls: int, gap: float,
               ) -> tuple[MockServer, CallableTokenSource, DemoPlayer]:
    """Start the embedded backend; return it, the tokens the agent connects with (minted by the
    backend for `negotiator`) and the player whose `run()` the worker then plays."""
    from tapi_agent.demo import DemoPlayer, start_demo_backend
    from tapi_agent.net.session import CallableTokenSource

    mock: MockServer = start_demo_backend(negotiator)

    async def mint() -> tuple[str, float]:
        return mock.mint_token(negotiator), time.time() + 3600

    return mock, CallableTokenSource(mint), DemoPlayer(mock, negotiator, calls=calls, gap=gap)
