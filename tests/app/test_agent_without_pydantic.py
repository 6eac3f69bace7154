"""The agent process never loads pydantic (issue 14): its frames and envelopes are read with
msgspec (`tapi_agent/protocol/wire.py`); pydantic is the mock's.

Checked where it counts: in a fresh interpreter that runs the agent's worker side (stream,
deferred missed calls, diagnose) against the real mock, and in the real `tapi-agent` process,
whose mapped shared objects show which compiled extensions it loaded. (The pytest-qt tests run
the agent inside the pytest process, beside the mock and its pydantic, so they cannot show it.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.app.test_agent_process import free_port
from tests.app.test_end_to_end import call, post
from tests.app.test_single_instance_process import (
    _wait_event,
    agent_env,
    curl_sign_in_env,
    running_agent,
)
from tests.helpers import require_tool

__all__ = ["agent_env"]  # the fixture, re-used

WORKER_SIDE = textwrap.dedent("""
    import asyncio, json, sys, time
    import httpx
    import tapi_agent.app, tapi_agent.app.agent, tapi_agent.app.session_flow
    import tapi_agent.app.missed_flow, tapi_agent.app.journal_flow, tapi_agent.app.contacts
    import tapi_agent.net.auth, tapi_agent.worker
    from tapi_agent.core.calls import CallEvent
    from tapi_agent.core.missed import MissedCalls
    from tapi_agent.net.api import ApiClient
    from tapi_agent.net.diagnose import diagnose
    from tapi_agent.net.session import CallableTokenSource
    from tapi_agent.net.stream import StreamClient

    url, token, provider, body = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

    async def mint():
        return token, time.time() + 3600

    async def main():
        tokens = CallableTokenSource(mint)
        delivered, connected = asyncio.Event(), asyncio.Event()
        events = []

        def on_delivery(d):
            events.append(CallEvent.from_frame(d.frame))
            delivered.set()

        def on_status(s):
            if s.state.value == "connected":
                connected.set()

        client = StreamClient(url, tokens, on_delivery=on_delivery, on_status=on_status,
                              on_resync=lambda reason: None)
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(connected.wait(), 20)
        async with httpx.AsyncClient() as http:
            r = await http.post(url + "/notifications", json=body,
                                headers={"Authorization": "Bearer " + provider})
            assert r.status_code == 202, r.text
        await asyncio.wait_for(delivered.wait(), 20)
        await client.stop()
        await asyncio.wait_for(task, 10)
        api = ApiClient(url, tokens)
        missed = MissedCalls()
        added = missed.merge(await api.deferred())
        await api.aclose()
        report = await diagnose(url, tokens=tokens, timeout_s=10)
        return {"delivered": [e.call_id for e in events], "missed": [c.call_id for c in added],
                "diagnose": report.ok}

    result = asyncio.run(main())
    result["modules"] = sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("pydantic", "pydantic_core", "fastapi", "msgspec")
        or m.startswith(("tapi_agent.protocol", "tapi_agent.mock")))
    print(json.dumps(result))
""")


def test_the_worker_side_reads_frames_envelopes_and_diagnose_without_pydantic(mock_server):
    assert post(mock_server, call("missedCall", "m-1", ["JAS"])).status_code == 202
    out = subprocess.run(
        [sys.executable, "-c", WORKER_SIDE, mock_server.base_url, mock_server.mint_token("JAS"),
         mock_server.provider_token(), json.dumps(call("incomingCall", "w-1", ["JAS"]))],
        capture_output=True, text=True, timeout=90,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # it did the work: a frame read, a deferred envelope read, the diagnose run through
    assert result["delivered"] == ["w-1"] and result["missed"] == ["m-1"]
    assert result["diagnose"] is True
    assert [m for m in result["modules"] if not m.startswith("msgspec")] == [
        "tapi_agent.protocol", "tapi_agent.protocol.common", "tapi_agent.protocol.wire"]
    assert "msgspec" in result["modules"]


def _mapped(pid: int) -> set[str]:
    """Paths of the shared objects a process has mapped (compiled extensions among them)."""
    paths = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and ".so" in fields[5]:
            paths.add(fields[5].strip())
    return paths


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/maps")
def test_the_shipped_agent_process_pops_a_call_without_loading_pydantic(
    agent_env, approving_mock,
):
    curl = require_tool("curl", "plays the system browser in the sign-in")
    assert post(approving_mock, call("missedCall", "m-1", ["JAS"])).status_code == 202
    env = curl_sign_in_env(agent_env, curl, free_port())
    with running_agent(["--server", approving_mock.base_url], env) as (proc, lines):
        _wait_event(lines, proc, "connection.state", 30, state="connected")
        _wait_event(lines, proc, "missed.added", 20, callId="m-1")  # an envelope read
        resp = httpx.post(f"{approving_mock.base_url}/notifications",
                          json=call("incomingCall", "p-1", ["JAS"]),
                          headers={"Authorization": f"Bearer {approving_mock.provider_token()}"})
        assert resp.status_code == 202
        _wait_event(lines, proc, "pop.shown", 20, callId="p-1")  # a frame read
        mapped = _mapped(proc.pid)
    assert any("/msgspec/_core" in path for path in mapped), sorted(mapped)
    assert [path for path in mapped if "pydantic" in path] == []
    # nor QtNetwork: the single-instance channel is multiprocessing.connection (issue 14)
    assert [path for path in mapped if "QtNetwork" in path or "Qt6Network" in path] == []
    # the check can see pydantic: this pytest process runs the mock, so it has it mapped
    assert any("pydantic_core" in path for path in _mapped(os.getpid()))
