"""Wire contracts: the notification envelope, the telephony payloads and the stream frames.

Pure data and validation; every other room may import it. Two sets of models, one contract:

- `envelope` and `frames` (pydantic): the backend's contract. The mock validates POST bodies
  with them (FastAPI, OpenAPI, a 422 naming every wrong field) and builds and parses frames.
- `wire` (msgspec): the agent's models. The agent process reads frames and envelopes with
  them and never imports pydantic (issue 14: pydantic cost ~12 MiB of its idle RSS). Same
  attribute names, same accept/reject rules; tests/protocol/test_wire_differential.py checks
  that the two agree.
- `common` (stdlib): the errors, limits and rules both share.

The names below are the backend's (pydantic) models, as before; they load on first use (PEP 562
`__getattr__`), so that `import tapi_agent.protocol.wire` does not pull pydantic in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tapi_agent.protocol.common import (
    MAX_FRAME_BYTES,
    SUBTYPES,
    TYPES,
    FieldError,
    FrameError,
    ValidationFailed,
)

if TYPE_CHECKING:
    from tapi_agent.protocol.envelope import (
        PAYLOAD_MODELS,
        AnsweredCall,
        CallPayload,
        EndedCall,
        Envelope,
        IncomingCall,
        MissedCall,
        Targets,
        validate_envelope,
        validate_payload,
    )
    from tapi_agent.protocol.frames import (
        AckFrame,
        AuthFrame,
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

_LAZY = {
    **dict.fromkeys(("PAYLOAD_MODELS", "AnsweredCall", "CallPayload", "EndedCall", "Envelope",
                     "IncomingCall", "MissedCall", "Targets", "validate_envelope",
                     "validate_payload"), "tapi_agent.protocol.envelope"),
    **dict.fromkeys(("AckFrame", "AuthFrame", "HeartbeatFrame", "NotificationFrame",
                     "ReplayedFrame", "ResumeFrame", "ServerFrame", "WelcomeFrame", "dump_frame",
                     "parse_client_frame", "parse_server_frame"), "tapi_agent.protocol.frames"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
