"""The agent's wire models (msgspec): what the agent sends, its reasons for a bad frame, and the
rule that keeps pydantic out of it (`tapi_agent/protocol/wire.py`)."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tapi_agent.protocol import FrameError as ContractFrameError
from tapi_agent.protocol import ValidationFailed as ContractValidationFailed
from tapi_agent.protocol import wire
from tapi_agent.protocol.wire import (
    MAX_FRAME_BYTES,
    AckFrame,
    AnsweredCall,
    AuthFrame,
    FrameError,
    NotificationFrame,
    ResumeFrame,
    ValidationFailed,
    WelcomeFrame,
    dump_frame,
    parse_server_frame,
    read_envelope,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platform"
ANSWERED = json.loads((FIXTURES / "answeredCall.json").read_text())


def notification(**changes: object) -> str:
    frame = {"type": "notification", "seq": 41, "sentAt": "2026-11-30T09:00:00.000Z",
             "notification": ANSWERED, **changes}
    return json.dumps(frame)


def test_client_frames_are_written_as_the_backend_reads_them():
    assert dump_frame(AckFrame(seq=41)) == '{"type":"ack","seq":41}'
    assert dump_frame(ResumeFrame(epoch="e1", lastSeq=40)) == \
        '{"type":"resume","epoch":"e1","lastSeq":40}'
    assert json.loads(dump_frame(AuthFrame(accessToken="t0ken"))) == {
        "type": "auth", "accessToken": "t0ken"}


def test_auth_frame_never_shows_its_token():
    assert "t0ken" not in repr(AuthFrame(accessToken="t0ken"))
    assert "t0ken" not in str(AuthFrame(accessToken="t0ken"))


def test_a_notification_frame_reads_with_the_attributes_the_agent_uses():
    frame = parse_server_frame(notification())
    assert isinstance(frame, NotificationFrame) and frame.type == "notification"
    env = frame.notification
    assert env.subType == "answeredCall" and env.for_product("agencycloud")
    assert isinstance(env.payload, AnsweredCall) and env.payload.answered_by == "TST"
    assert env.payload.created == datetime(2023, 11, 1, 10, 28)  # naive stays naive
    assert env.payload.created.tzinfo is None
    assert frame.sent_at_utc == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    welcome = parse_server_frame('{"type":"welcome","connectionId":"c","negotiatorId":"JAS",'
                                 '"epoch":"e1","heartbeatMs":15000,"newField":[1]}')
    assert welcome == WelcomeFrame(connectionId="c", negotiatorId="JAS", epoch="e1",
                                   heartbeatMs=15000)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "party"}', "unknown frame type 'party'"),
        ('{"seq": 1}', "unknown frame type None"),
        (notification(seq="one"), "invalid notification frame: seq: must be an integer"),
        (notification(seq=True), "invalid notification frame: seq: must be an integer"),
        (notification(seq=0), "invalid notification frame: seq: must be >= 1"),
        ('{"type": "welcome"}', "invalid welcome frame: connectionId: is required"),
        (notification(sentAt="0001-01-01T00:00:00+14:00"),
         "invalid notification frame: sentAt: out of range"),
        (notification(notification={"type": "telephony"}),
         "invalid notification: notification.subType: is required"),
        (notification(notification={**ANSWERED, "payload": {**ANSWERED["payload"],
                                                            "callerId": 7}}),
         "invalid notification: notification.payload.callerId: must be a string"),
        ('{"type":"heartbeat","x":' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
        (" " * (MAX_FRAME_BYTES + 1), "frame too large"),
    ],
)
def test_bad_frames_have_a_readable_reason_naming_the_field(raw, reason):
    with pytest.raises(FrameError) as exc:
        parse_server_frame(raw)
    assert reason in exc.value.reason


def test_an_envelope_read_from_json_data_names_the_wrong_field():
    body = {**ANSWERED, "targets": {"negotiatorId": ["x" * 33]}}
    with pytest.raises(ValidationFailed) as exc:
        read_envelope(body)
    assert [(e.field, e.message) for e in exc.value.errors] == [
        ("targets.negotiatorId.0", "is too long (at most 32)")]


def test_one_error_class_for_both_sides():
    assert FrameError is ContractFrameError and ValidationFailed is ContractValidationFailed


def test_the_wire_module_imports_neither_pydantic_nor_the_backend_models():
    imported = set()
    for node in ast.walk(ast.parse(Path(wire.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {n for n in imported if n.startswith("tapi_agent")} == {"tapi_agent.protocol.common"}
    assert not any(n.startswith("pydantic") for n in imported)
