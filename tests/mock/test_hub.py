"""The hub's sender, without sockets: what one turn of a connection's sender takes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from starlette.websockets import WebSocket

from tapi_agent.mock.hub import Connection, Hub


def _hub() -> Hub:
    return Hub(heartbeat_ms=60_000, retention_s=300, retention_max=1000, journal=lambda e: None)


def _conn(hub: Hub, negotiator_id: str = "JAS") -> Connection:
    # The sender is never started here, so the websocket is never touched.
    return Connection(hub, cast(WebSocket, object()), negotiator_id, "AgencyCloud", 0.0)


def test_sender_takes_every_queued_frame_in_one_batch_in_order() -> None:
    async def scenario() -> list[Any] | None:
        conn = _conn(_hub())
        for i in range(5):
            conn.push(f"frame-{i}")
        batch = await conn._next_batch(60.0)
        assert conn.queue.empty()
        return batch

    batch = asyncio.run(scenario())
    assert batch is not None and [text for text, _ in batch] == [f"frame-{i}" for i in range(5)]


def test_sender_with_nothing_queued_waits_for_the_heartbeat() -> None:
    async def scenario() -> list[Any] | None:
        return await _conn(_hub())._next_batch(0.01)

    assert asyncio.run(scenario()) is None
