"""The real `tapi-agent` process signs in through the browser flow, connects and pops a call.

The browser is `curl` (via `$BROWSER`, which Python's `webbrowser` honours): it follows the
authorize URL of a mock started with `--auto-approve` to the agent's one-shot loopback redirect.
"""

from __future__ import annotations

import socket

import httpx

from tests.app.test_single_instance_process import (
    _wait_event,
    agent_env,
    curl_sign_in_env,
    running_agent,
)
from tests.helpers import require_tool

__all__ = ["agent_env"]  # the fixture, re-used


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_agent_signs_in_through_the_browser_flow_and_pops_a_call(agent_env, approving_mock):
    curl = require_tool("curl", "plays the system browser in the sign-in test")
    env = curl_sign_in_env(agent_env, curl, free_port())
    with running_agent(["--server", approving_mock.base_url], env) as (proc, lines):
        signed_in = _wait_event(lines, proc, "auth.state", 20, state="signed_in")
        assert signed_in["negotiatorId"] == "JAS"
        _wait_event(lines, proc, "connection.state", 20, state="connected")
        body = {
            "type": "telephony", "subType": "incomingCall", "products": ["AgencyCloud"],
            "targets": {"negotiatorId": ["JAS"]},
            "payload": {"id": "proc-1", "created": "2026-11-30T10:00:00",
                        "callerId": "07123 456789", "destinationId": "01865 000100"},
        }
        resp = httpx.post(f"{approving_mock.base_url}/notifications", json=body,
                          headers={"Authorization": f"Bearer {approving_mock.provider_token()}"})
        assert resp.status_code == 202
        shown = _wait_event(lines, proc, "pop.shown", 20, callId="proc-1")
        assert shown["state"] == "ringing" and shown["latencyMs"] >= 0
