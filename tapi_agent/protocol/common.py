"""What both sides of the protocol share, in plain Python: no pydantic, no msgspec.

The errors (`FieldError`, `ValidationFailed`, `FrameError`), the frame size limit, the
type/subType table and the one timestamp rule. The backend's pydantic models
(`protocol.envelope`, `protocol.frames`) and the agent's msgspec models (`protocol.wire`) both
use these, so a caller catches one `FrameError` whichever side parsed the frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TYPES: tuple[str, ...] = ("telephony",)
SUBTYPES: dict[str, tuple[str, ...]] = {
    "telephony": ("incomingCall", "answeredCall", "endedCall", "missedCall"),
}

MAX_FRAME_BYTES = 128 * 1024
"""A frame larger than this is refused unread (a POST body is at most 64 KiB)."""

TIMESTAMP_HINT = (
    "must be an ISO 8601 date-time such as 2023-11-01T10:28:00 or 2023-11-01T10:28:00Z"
)
SENT_AT_OUT_OF_RANGE = "out of range: not a time the backend can have sent"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation problem: the dotted path of the field and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ValidationFailed(ValueError):
    """Raised when an envelope or payload does not match the contract; carries every problem."""

    def __init__(self, errors: list[FieldError], description: str = "") -> None:
        self.errors = errors
        self.description = description or "One or more fields failed validation"
        super().__init__(
            self.description + ": " + "; ".join(f"{e.field}: {e.message}" for e in errors)
        )


class FrameError(ValueError):
    """A frame that cannot be used: not JSON, unknown type, invalid fields or too large."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def check_sent_at(value: datetime) -> None:
    """Raise ValueError for a `sentAt` at the very edge of datetime's range.

    Such a time cannot be converted to UTC or to epoch seconds (OverflowError): it is refused
    while parsing, before its seq could be counted as seen (issue 14). Only the first and the
    last year can fail (a UTC offset moves a time by less than a day, and an aware time's
    timestamp is a subtraction), so every other year is accepted without the conversions.
    """
    if 1 < value.year < 9999:
        return
    try:
        (value if value.tzinfo is None else value.astimezone(UTC)).replace(
            tzinfo=UTC).timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(SENT_AT_OUT_OF_RANGE) from None


def load_json_object(raw: str | bytes) -> dict[str, Any]:
    """`json.loads` of a frame, with the reasons both sides give: not JSON, nested too deeply
    (a RecursionError must not escape the frame), not an object."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"not JSON: {exc}") from None
    except RecursionError:
        raise FrameError("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise FrameError("frame is not a JSON object")
    return data
