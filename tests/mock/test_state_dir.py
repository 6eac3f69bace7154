"""`--state-dir`: a mock started again on the same directory carries on (in-process servers).

The process-level proof (`kill -9` of `tapi-agent-mock serve` with a real agent connected) is
in `tests/mock/test_state_dir_process.py`.
"""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import httpx
import jwt
import pytest

from tapi_agent.mock.server import MockServer
from tapi_agent.mock.store import StateDirError
from tests.mock.conftest import Api, envelope, open_stream, recv_type
from tests.mock.test_oauth import _code, _exchange, _refresh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sign_in(server: MockServer) -> dict[str, str]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        verifier = secrets.token_urlsafe(48)
        r = _exchange(http, _code(http, verifier), verifier)
        assert r.status_code == 200, r.text
        tokens: dict[str, str] = r.json()
        return tokens


def test_everything_acknowledged_survives_a_restart_on_the_same_directory(
    tmp_path: Path,
) -> None:
    port = free_port()
    first = MockServer(port=port, heartbeat_ms=2000, state_dir=tmp_path / "state")
    first.start()
    try:
        api = Api(first)
        tokens = _sign_in(first)
        epoch = first.epoch
        kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
        with open_stream(first, "JAS", token=tokens["access_token"]) as ws:
            recv_type(ws, "welcome")
            assert api.post(envelope(id="seen")).status_code == 202
            seen = recv_type(ws, "notification")
            ws.send(json.dumps({"type": "ack", "seq": seen["seq"]}))
            assert api.post(envelope(id="unacked")).status_code == 202
            unacked = recv_type(ws, "notification")
        # Posted while JAS is not connected: retained, never sent.
        assert api.post(envelope(id="while-away", to=["JAS", "RPT"])).status_code == 202
        assert api.post(envelope(sub_type="missedCall", id="missed")).status_code == 202
        r = api.http.post("/journalEntries", headers=api.auth(), json={
            "associatedType": "contact", "associatedId": "OXF20000001", "description": "kept"})
        assert r.status_code == 201
        location = r.headers["location"]
        contact = api.get("/contacts/OXF20000001").json()
        api.http.close()
    finally:
        first.stop()

    second = MockServer(port=port, heartbeat_ms=2000, state_dir=tmp_path / "state")
    second.start()
    try:
        api = Api(second)
        assert second.epoch == epoch  # the same run carries on
        # The access token handed out before the restart still works: same key, same issuer.
        assert api.get("/negotiators/JAS", token=tokens["access_token"]).status_code == 200
        assert second.state.issuer.jwks()["keys"][0]["kid"] == kid
        with open_stream(second, "JAS", token=tokens["access_token"]) as ws:
            assert recv_type(ws, "welcome")["epoch"] == epoch
            ws.send(json.dumps({"type": "resume", "epoch": epoch, "lastSeq": seen["seq"]}))
            replayed = [recv_type(ws, "notification") for _ in range(2)]
            assert [f["notification"]["payload"]["id"] for f in replayed] == [
                "unacked", "while-away"]
            assert replayed[0]["seq"] == unacked["seq"]
            assert replayed[0]["sentAt"] == unacked["sentAt"]  # a replay keeps its sentAt
            assert recv_type(ws, "replayed") == {"type": "replayed", "count": 2,
                                                 "complete": True}
            # Numbering carries on after the kept events.
            assert api.post(envelope(id="after")).status_code == 202
            assert recv_type(ws, "notification")["seq"] == replayed[1]["seq"] + 1
        deferred = api.get("/notifications/deferred", token=tokens["access_token"]).json()
        assert [d["notification"]["payload"]["id"] for d in deferred["_embedded"]] == ["missed"]
        assert api.get(location).json()["description"] == "kept"
        again = api.get("/contacts/OXF20000001").json()
        assert (again["created"], again["modified"], again["_eTag"]) == (
            contact["created"], contact["modified"], contact["_eTag"])
        # The refresh token rotates on from where it was; the one before it is a reuse.
        with httpx.Client(base_url=second.base_url, timeout=10) as http:
            fresh = _refresh(http, tokens["refresh_token"])
            assert fresh.status_code == 200, fresh.text
            assert _refresh(http, tokens["refresh_token"]).json()["error"] == "invalid_grant"
        api.http.close()
    finally:
        second.stop()


def test_a_deleted_missed_call_and_a_revoked_session_stay_so(tmp_path: Path) -> None:
    port = free_port()
    with MockServer(port=port, state_dir=tmp_path) as server:
        api = Api(server)
        tokens = _sign_in(server)
        assert api.post(envelope(sub_type="missedCall", id="m1")).status_code == 202
        item = api.get("/notifications/deferred", token=tokens["access_token"]).json()[
            "_embedded"][0]
        assert api.http.delete(f"/notifications/deferred/{item['id']}",
                               headers=api.auth(tokens["access_token"])).status_code == 204
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            assert http.get("/oidc/logout", params={
                "refresh_token": tokens["refresh_token"]}).status_code == 200
        api.http.close()
    with MockServer(port=port, state_dir=tmp_path) as server:
        api = Api(server)
        token = server.mint_token("JAS")
        assert api.get("/notifications/deferred", token=token).json()["_embedded"] == []
        assert api.get("/negotiators", token=tokens["access_token"]).status_code == 401
        api.http.close()


def test_a_second_mock_on_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    with MockServer(state_dir=tmp_path), pytest.raises(StateDirError, match="in use"):
        MockServer(state_dir=tmp_path)
    # Released once the first has stopped.
    MockServer(state_dir=tmp_path).stop()


def test_the_directory_is_private(tmp_path: Path) -> None:
    MockServer(state_dir=tmp_path / "private").stop()
    assert (tmp_path / "private").stat().st_mode & 0o077 == 0
    for path in (tmp_path / "private").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path


def test_serve_on_a_directory_in_use_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tapi_agent.mock.cli import main

    with MockServer(state_dir=tmp_path):
        assert main(["serve", "--port", "0", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "in use by another tapi-agent-mock" in err and "Traceback" not in err
