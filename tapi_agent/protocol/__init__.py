"""Wire contracts: the notification envelope, the telephony payloads and the stream frames.

Everything here is pure data and validation (stdlib + pydantic); every other room may import it.
"""

from __future__ import annotations

from tapi_agent.protocol.envelope import (
    PAYLOAD_MODELS,
    SUBTYPES,
    TYPES,
    AnsweredCall,
    CallPayload,
    EndedCall,
    Envelope,
    FieldError,
    IncomingCall,
    MissedCall,
    Targets,
    ValidationFailed,
    validate_envelope,
    validate_payload,
)
from tapi_agent.protocol.frames import (
    MAX_FRAME_BYTES,
    AckFrame,
    AuthFrame,
    FrameError,
    HeartbeatFrame,
    NotificationFrame,
    ReplayedFrame,
    ResumeFrame,
    ServerFrame,
    WelcomeFrame,
    dump_frame,
    parse_client_frame,
    parse_server_frame,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "PAYLOAD_MODELS",
    "SUBTYPES",
    "TYPES",
    "AckFrame",
    "AnsweredCall",
    "AuthFrame",
    "CallPayload",
    "EndedCall",
    "Envelope",
    "FieldError",
    "FrameError",
    "HeartbeatFrame",
    "IncomingCall",
    "MissedCall",
    "NotificationFrame",
    "ReplayedFrame",
    "ResumeFrame",
    "ServerFrame",
    "Targets",
    "ValidationFailed",
    "WelcomeFrame",
    "dump_frame",
    "parse_client_frame",
    "parse_server_frame",
    "validate_envelope",
    "validate_payload",
]
