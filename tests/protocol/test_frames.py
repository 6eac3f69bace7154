"""Stream frames: round trips, and readable reasons for every kind of bad frame."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tapi_agent.protocol import (
    MAX_FRAME_BYTES,
    AckFrame,
    AuthFrame,
    FrameError,
    HeartbeatFrame,
    NotificationFrame,
    ReplayedFrame,
    ResumeFrame,
    WelcomeFrame,
    dump_frame,
    parse_client_frame,
    parse_server_frame,
    validate_envelope,
)

EXAMPLE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "platform" / "incomingCall.json").read_text()
)


def test_server_frames_round_trip():
    env = validate_envelope(EXAMPLE)
    frames = [
        WelcomeFrame(connectionId="c1", negotiatorId="JAS", epoch="e1", heartbeatMs=15000),
        NotificationFrame(seq=41, sentAt=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
                          notification=env),
        ReplayedFrame(count=2, complete=False),
        HeartbeatFrame(),
    ]
    for frame in frames:
        assert parse_server_frame(dump_frame(frame)) == frame


def test_sent_at_is_written_as_utc_with_z():
    env = validate_envelope(EXAMPLE)
    frame = NotificationFrame(seq=1, sentAt=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
                              notification=env)
    assert json.loads(dump_frame(frame))["sentAt"] == "2026-11-30T09:00:00.000Z"


def test_client_frames_round_trip():
    for frame in (ResumeFrame(epoch="e1", lastSeq=40), AckFrame(seq=41),
                  AuthFrame(accessToken="t0ken")):
        assert parse_client_frame(dump_frame(frame)) == frame


def test_auth_frame_never_shows_its_token():
    assert "t0ken" not in repr(AuthFrame(accessToken="t0ken"))
    assert "t0ken" not in str(AuthFrame(accessToken="t0ken"))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "party"}', "unknown frame type 'party'"),
        ('{"seq": 1}', "unknown frame type None"),
        ('{"type": "notification", "seq": "one", "sentAt": "2026-01-01T00:00:00Z",'
         ' "notification": ' + json.dumps(EXAMPLE) + "}", "invalid notification frame: seq"),
        ('{"type": "welcome"}', "invalid welcome frame"),
        ('{"type": "notification", "seq": 1, "sentAt": "2026-01-01T00:00:00Z",'
         ' "notification": {"type": "telephony"}}', "notification.subType: is required"),
        (" " * (MAX_FRAME_BYTES + 1), "frame too large"),
    ],
)
def test_bad_frames_have_a_readable_reason(raw, reason):
    with pytest.raises(FrameError) as exc:
        parse_server_frame(raw)
    assert reason in exc.value.reason
