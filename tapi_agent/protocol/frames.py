"""Frames of the websocket stream between the agent and the backend (DESIGN.md section 4).

Server to client: `welcome`, `notification`, `replayed`, `heartbeat`.
Client to server: `resume`, `ack`, `auth`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from tapi_agent.protocol.common import (
    MAX_FRAME_BYTES,
    FrameError,
    check_sent_at,
    load_json_object,
)
from tapi_agent.protocol.envelope import (
    Envelope,
    Timestamp,
    ValidationFailed,
    validate_envelope,
)


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WelcomeFrame(_Frame):
    """First frame on every connection."""

    type: Literal["welcome"] = "welcome"
    connectionId: StrictStr
    negotiatorId: StrictStr
    epoch: StrictStr
    heartbeatMs: StrictInt = Field(gt=0)


class NotificationFrame(_Frame):
    """One notification for this negotiator, numbered by `seq` within the backend's `epoch`."""

    type: Literal["notification"] = "notification"
    seq: StrictInt = Field(ge=1)
    sentAt: Timestamp
    notification: Envelope

    @field_validator("sentAt")
    @classmethod
    def _sent_at_in_range(cls, value: datetime) -> datetime:
        check_sent_at(value)  # before its seq could be counted as seen (issue 14)
        return value

    @property
    def sent_at_utc(self) -> datetime:
        """`sentAt` as an aware UTC datetime (a naive value is read as UTC)."""
        t = self.sentAt
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class ReplayedFrame(_Frame):
    """Sent after a resume: how many events were replayed and whether any were lost."""

    type: Literal["replayed"] = "replayed"
    count: StrictInt = Field(ge=0)
    complete: StrictBool


class HeartbeatFrame(_Frame):
    """Sent every `heartbeatMs` when nothing else was."""

    type: Literal["heartbeat"] = "heartbeat"


class ResumeFrame(_Frame):
    """Client: replay what I have not acknowledged after `lastSeq` in `epoch`."""

    type: Literal["resume"] = "resume"
    epoch: StrictStr
    lastSeq: StrictInt = Field(ge=0)


class AckFrame(_Frame):
    """Client: event `seq` is handled."""

    type: Literal["ack"] = "ack"
    seq: StrictInt = Field(ge=1)


class AuthFrame(_Frame):
    """Client: renew the connection's access token in-band."""

    type: Literal["auth"] = "auth"
    accessToken: StrictStr = Field(min_length=1)

    def __repr__(self) -> str:  # never show the token
        return "AuthFrame(accessToken=<redacted>)"

    __str__ = __repr__


ServerFrame = WelcomeFrame | NotificationFrame | ReplayedFrame | HeartbeatFrame
ClientFrame = ResumeFrame | AckFrame | AuthFrame

_SERVER: dict[str, type[_Frame]] = {
    "welcome": WelcomeFrame,
    "notification": NotificationFrame,
    "replayed": ReplayedFrame,
    "heartbeat": HeartbeatFrame,
}
_CLIENT: dict[str, type[_Frame]] = {"resume": ResumeFrame, "ack": AckFrame, "auth": AuthFrame}


def _decode(raw: str | bytes) -> dict[str, Any]:
    size = len(raw)
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame too large ({size} bytes, limit {MAX_FRAME_BYTES})")
    return load_json_object(raw)


def _build(kinds: dict[str, type[_Frame]], data: dict[str, Any]) -> Any:
    kind = data.get("type")
    model = kinds.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise FrameError(f"unknown frame type {kind!r}")
    if model is NotificationFrame:
        try:
            env = validate_envelope(data.get("notification"), strict=False, prefix="notification")
        except ValidationFailed as exc:
            raise FrameError(
                "invalid notification: "
                + "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
            ) from None
        data = {**data, "notification": env}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()
        )
        raise FrameError(f"invalid {kind} frame: {problems}") from None


def parse_server_frame(raw: str | bytes) -> ServerFrame:
    """Decode a server-to-client frame; raise FrameError with a readable reason."""
    result: ServerFrame = _build(_SERVER, _decode(raw))
    return result


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Decode a client-to-server frame; raise FrameError with a readable reason."""
    result: ClientFrame = _build(_CLIENT, _decode(raw))
    return result


def dump_frame(frame: _Frame) -> str:
    """Serialise a frame to its JSON text."""
    data = frame.model_dump(mode="json", exclude_none=True)
    if isinstance(frame, NotificationFrame):
        data["notification"] = frame.notification.to_wire()
        data["sentAt"] = frame.sent_at_utc.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
    return json.dumps(data, separators=(",", ":"))
