"""`tapi-agent demo`: an embedded mock backend and a loop of calls, so a newcomer sees real pops.

The calls go the whole real way: an HTTP `POST /notifications` with a provider token, the backend's
validation and fan-out, the websocket stream, the CallBook and the pop. Part of the composition
root (it imports the mock); nothing else imports it but `app`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tapi_agent.mock.seed import LINE_NAMES
from tapi_agent.net.http import HttpClient

log = logging.getLogger("tapi_agent.demo")

SALES = "01865 000100"
LETTINGS = "01223 000200"
DEMO_LINES = dict(LINE_NAMES)
"""Friendly names of the demo's dialled numbers (the `calls.lines` setting in real use)."""


@dataclass(frozen=True)
class Step:
    """One notification of the demo script, then a pause of `wait` gaps."""

    sub_type: str
    call: str
    caller: str
    destination: str
    to: tuple[str, ...]
    hunt_group: bool = False
    answered_by: str | None = None
    wait: float = 1.0


def script(me: str, colleagues: tuple[str, str] = ("RPT", "TST")) -> list[list[Step]]:
    """The demo's calls, each a list of steps: a known contact answered by me, a hunt-group call
    a colleague answers (its number matches two contacts), an unknown caller, then two calls at
    once (one missed, one withheld)."""
    group = (me, *colleagues)
    return [
        [
            Step("incomingCall", "a", "07123 456789", SALES, (me,), wait=3),
            Step("answeredCall", "a", "07123 456789", SALES, (me,), answered_by=me, wait=3),
            Step("endedCall", "a", "07123 456789", SALES, (me,), answered_by=me, wait=2),
        ],
        [
            Step("incomingCall", "b", "07911 123456", LETTINGS, group, hunt_group=True, wait=3),
            Step("answeredCall", "b", "07911 123456", LETTINGS, group, hunt_group=True,
                 answered_by=colleagues[0], wait=2),
            Step("endedCall", "b", "07911 123456", LETTINGS, group, hunt_group=True,
                 answered_by=colleagues[0], wait=2),
        ],
        [
            Step("incomingCall", "u", "01632 960123", SALES, (me,), wait=3),  # no contact
            Step("answeredCall", "u", "01632 960123", SALES, (me,), answered_by=me, wait=2),
            Step("endedCall", "u", "01632 960123", SALES, (me,), answered_by=me, wait=1),
        ],
        [
            Step("incomingCall", "c", "020 7946 0321", SALES, (me,), wait=0.5),
            Step("incomingCall", "d", "", LETTINGS, (me,), wait=3),  # a withheld number
            Step("endedCall", "c", "020 7946 0321", SALES, (me,), wait=0),
            Step("missedCall", "c", "020 7946 0321", SALES, (me,), wait=1),
            Step("answeredCall", "d", "", LETTINGS, (me,), answered_by=me, wait=2),
            Step("endedCall", "d", "", LETTINGS, (me,), answered_by=me, wait=2),
        ],
    ]


def envelope(step: Step, call_id: str) -> dict[str, Any]:
    """The JSON a telephony provider would POST for `step`."""
    payload: dict[str, Any] = {
        "id": call_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "callerId": step.caller,
        "destinationId": step.destination,
        "huntGroup": step.hunt_group,
    }
    if step.answered_by and step.sub_type in ("answeredCall", "endedCall"):
        payload["answeredById"] = step.answered_by
    return {
        "type": "telephony",
        "subType": step.sub_type,
        "products": ["AgencyCloud"],
        "targets": {"negotiatorId": list(step.to)},
        "payload": payload,
    }


def start_demo_backend(negotiator: str) -> Any:
    """Start the mock backend in-process on a free loopback port."""
    from tapi_agent.mock.server import MockServer

    server = MockServer(port=0, auto_approve=negotiator)
    server.start()
    log.info("demo backend listening on %s", server.base_url)
    return server


class DemoPlayer:
    """Plays the demo script against the backend, forever or for `calls` calls."""

    def __init__(self, server: Any, me: str, *, calls: int = 0, gap: float = 1.0) -> None:
        self._server = server
        self._me = me
        self._calls = calls
        self._gap = gap

    async def run(self) -> None:
        await asyncio.sleep(1.0 * self._gap)  # let the agent connect first
        played = 0
        token = self._server.provider_token()
        headers = {"Authorization": f"Bearer {token}"}
        http = HttpClient(proxy="none", timeout_s=5, headers=headers)
        try:
            for round_no in itertools.count(1):
                for call in script(self._me):
                    for step in call:
                        call_id = f"demo-{round_no}-{step.call}"
                        resp = await http.post(f"{self._server.base_url}/notifications",
                                               json=envelope(step, call_id))
                        if resp.status_code != 202:
                            log.warning("demo POST refused: %s %s", resp.status_code, resp.text)
                        await asyncio.sleep(step.wait * self._gap)
                    played += 1
                    if self._calls and played >= self._calls:
                        return
        finally:
            await http.aclose()
