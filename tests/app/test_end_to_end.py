"""The walking skeleton end to end: a provider's POST pops a call on the negotiator's screen.

Real parts only: the mock backend on a free loopback port, the agent's worker thread with its real
websocket client, the Qt signal bridge, the CallBook and the pop widget (offscreen).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import httpx
import pytest

from tapi_agent.app import Agent
from tapi_agent.config import Paths, load_settings
from tapi_agent.net.session import CallableTokenSource

EXAMPLE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "platform" / "incomingCall.json").read_text()
)


def call(sub_type: str, call_id: str, to: list[str], **payload: object) -> dict:
    body = copy.deepcopy(EXAMPLE)
    body["subType"] = sub_type
    body["targets"]["negotiatorId"] = to
    body["payload"]["id"] = call_id
    body["payload"].update(payload)
    return body


def build_agent(server, tmp_path: Path, *, with_tray: bool = False, **cli: str) -> Agent:
    """An Agent for negotiator JAS against `server`, files under `tmp_path`, not started."""
    settings = load_settings(environ={}, cli={"server.url": server.base_url, **cli})
    paths = Paths(machine_config=tmp_path / "machine.toml", user_config=tmp_path / "user.toml",
                  data_dir=tmp_path / "data", log_dir=tmp_path / "logs")

    async def mint() -> tuple[str, float]:
        return server.mint_token("JAS"), time.time() + 3600

    return Agent(settings, paths, tokens=CallableTokenSource(mint), negotiator_id="JAS",
                 with_tray=with_tray)


def connected(agent: Agent) -> bool:
    return agent._status is not None and agent._status.state.value == "connected"


@pytest.fixture
def agent(qtbot, mock_server, tmp_path):
    agent = build_agent(mock_server, tmp_path, **{"calls.linger_s": "0"})
    agent.start()
    qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
    yield agent
    agent.shutdown()
    assert not agent.worker.running  # the loop thread is joined before Qt goes away


def post(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/notifications", json=body,
                      headers={"Authorization": f"Bearer {server.provider_token()}"})


def pop_visible(agent: Agent, key: str) -> bool:
    # a bool, never None: qtbot.waitUntil treats a None result as "condition met"
    pop = agent.pops.pops.get(key)
    return pop is not None and pop.isVisible()


def test_incoming_call_pops_up_and_ended_call_closes_it(qtbot, agent, mock_server):
    assert post(mock_server, call("incomingCall", "e2e-1", ["JAS", "RPT"])).status_code == 202
    qtbot.waitUntil(lambda: pop_visible(agent, "e2e-1"), timeout=5000)

    assert post(mock_server, call("endedCall", "e2e-1", ["JAS", "RPT"])).status_code == 202
    qtbot.waitUntil(lambda: not pop_visible(agent, "e2e-1"), timeout=5000)
    assert [h.outcome for h in agent.pops.book.history if h.call_id == "e2e-1"] == ["missed"]


def test_a_call_for_someone_else_does_not_pop(qtbot, agent, mock_server):
    assert post(mock_server, call("incomingCall", "other", ["RPT"])).status_code == 202
    assert post(mock_server, call("incomingCall", "mine", ["JAS"])).status_code == 202
    qtbot.waitUntil(lambda: pop_visible(agent, "mine"), timeout=5000)
    assert "other" not in agent.pops.pops


def test_a_bad_payload_is_refused_naming_the_field_and_nothing_is_delivered(
    qtbot, agent, mock_server
):
    resp = post(mock_server, call("incomingCall", "bad", ["JAS"], huntGroup="yes"))
    assert resp.status_code == 422  # Reapit: a validation failure is 422
    assert resp.headers["x-amzn-RequestId"]
    assert [e["field"] for e in resp.json()["errors"]] == ["payload.huntGroup"]
    # the next good call is the first thing the agent sees
    assert post(mock_server, call("incomingCall", "good", ["JAS"])).status_code == 202
    qtbot.waitUntil(lambda: pop_visible(agent, "good"), timeout=5000)
    assert "bad" not in agent.pops.pops
    assert all(h.call_id != "bad" for h in agent.pops.book.history)
