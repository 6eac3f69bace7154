"""`tapi-agent-mock`: serve, send, scenario, token and check, against a real backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tapi_agent.mock.cli import main
from tapi_agent.mock.server import MockServer
from tests.mock.conftest import Api, envelope, open_stream, recv_type


def test_send_incoming_reaches_the_negotiators_stream(
    mock_server: MockServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        code = main(["send", "incoming", "--to", "JAS,RPT", "--caller", "07123 456789",
                     "--destination", "01865 000100", "--id", "cli-call", "--hunt-group",
                     "--server", mock_server.base_url])
        assert code == 0
        frame = recv_type(ws, "notification")
    payload = frame["notification"]["payload"]
    assert (payload["id"], payload["callerId"], payload["huntGroup"]) == (
        "cli-call", "07123 456789", True)
    assert frame["notification"]["targets"]["negotiatorId"] == ["JAS", "RPT"]
    assert "cli-call" in capsys.readouterr().out


def test_send_answered_carries_answered_by(mock_server: MockServer) -> None:
    with open_stream(mock_server, "TST") as ws:
        recv_type(ws, "welcome")
        assert main(["send", "answered", "--to", "TST", "--answered-by", "RPT",
                     "--server", mock_server.base_url]) == 0
        frame = recv_type(ws, "notification")
    assert frame["notification"]["subType"] == "answeredCall"
    assert frame["notification"]["payload"]["answeredById"] == "RPT"


def test_send_missed_is_stored_as_deferred(mock_server: MockServer, api: Api) -> None:
    assert main(["send", "missed", "--to", "LKM", "--id", "m-cli",
                 "--server", mock_server.base_url]) == 0
    items = api.get("/notifications/deferred", token=mock_server.mint_token("LKM")).json()
    assert [i["notification"]["payload"]["id"] for i in items["_embedded"]] == ["m-cli"]


def test_send_rejected_prints_field_errors_and_exits_1(
    mock_server: MockServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["send", "incoming", "--to", "JAS", "--destination", "",
                 "--server", mock_server.base_url])
    assert code == 1
    assert "payload.destinationId: must not be empty" in capsys.readouterr().out


def test_scenario_and_token_commands(
    mock_server: MockServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        assert main(["scenario", "burst", "--count", "3", "--server", mock_server.base_url]) == 0
        assert [recv_type(ws, "notification")["seq"] for _ in range(3)] == [1, 2, 3]
    assert "3 notifications" in capsys.readouterr().out
    assert main(["token", "DWH", "--server", mock_server.base_url]) == 0
    token = capsys.readouterr().out.strip()
    assert mock_server.state.verify(token).negotiator_id == "DWH"
    assert main(["token", "NOBODY", "--server", mock_server.base_url]) == 2


def test_unreachable_server_is_a_clear_error_without_traceback(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["send", "incoming", "--to", "JAS", "--server", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach the mock backend at http://127.0.0.1:9" in err
    assert "Traceback" not in err


def test_check_valid_and_invalid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(envelope()))
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.json"
    env = envelope(huntGroup="yes")
    del env["payload"]["callerId"]
    bad.write_text(json.dumps(env))
    capsys.readouterr()
    assert main(["check", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == ["payload.callerId: is required",
                             "payload.huntGroup: must be true or false"]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main(["check", str(broken)]) == 1
    assert capsys.readouterr().out.startswith("body: is not valid JSON")
    assert main(["check", str(tmp_path / "missing.json")]) == 2


def test_check_gives_the_same_errors_as_the_api(
    tmp_path: Path, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    env = envelope(sub_type="answeredCall", answeredById=7, extra="x")
    env["products"] = []
    path = tmp_path / "e.json"
    path.write_text(json.dumps(env))
    main(["check", str(path)])
    printed = capsys.readouterr().out.splitlines()
    api_errors = api.post(env).json()["errors"]
    assert printed == [f"{e['field']}: {e['message']}" for e in api_errors]


def test_serve_runs_until_interrupted_without_a_warning_on_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapi_agent.mock.cli", "serve", "--port", "0",
         "--heartbeat-ms", "500", "--auto-approve", "JAS"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("tapi-agent-mock listening on http://127.0.0.1:")
        url = banner.split()[3]
        r = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=("demo-provider", "demo-secret"), timeout=10)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped." in out
    assert "WARNING" not in err


def test_serve_warns_loudly_on_a_non_loopback_host() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapi_agent.mock.cli", "serve", "--host", "0.0.0.0",
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("tapi-agent-mock listening on")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert "WARNING: binding to 0.0.0.0" in err


def test_serve_with_a_broken_seed_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text("[1, 2]")
    assert main(["serve", "--port", "0", "--seed", str(seed)]) == 2
    err = capsys.readouterr().err
    assert "seed file must hold a JSON object" in err and "Traceback" not in err
    assert main(["serve", "--port", "0", "--seed", str(tmp_path / "none.json")]) == 2
    assert main(["serve", "--port", "0", "--heartbeat-ms", "0"]) == 2
