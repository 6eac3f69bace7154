"""Structured log events (DESIGN.md section 7) and masking of personal data.

Code anywhere calls `log_event("pop.shown", callId=..., ...)`. The record goes through stdlib
logging (logger `tapi_agent.events`) with the fields attached, so the JSON sink set up by the app
(`--log-json`) and the human log file both see it. Never pass a token or a secret here.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

EVENTS_LOGGER = "tapi_agent.events"
_events = logging.getLogger(EVENTS_LOGGER)

_DIGITS = re.compile(r"\d")


def mask_phone(number: str | None, keep: int = 3) -> str:
    """Mask every digit of a phone number except the last `keep`: `07123 456789` -> `*****
    ***789`."""
    if not number:
        return ""
    total = sum(ch.isdigit() for ch in number)
    seen = 0
    out = []
    for ch in number:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > total - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Emit one structured event; `fields` must be JSON-serialisable and free of secrets."""
    if not _events.isEnabledFor(level):
        return
    _events.log(level, "%s %s", event, _summary(fields), extra={"event": event, "fields": fields})


def _summary(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonEventFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `event`, the event's fields (and `level`, `logger`).

    Records that are not structured events become `{"event": "log", "message": ...}`.
    """

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "event": event or "log",
            "level": record.levelname.lower(),
        }
        if event:
            data.update(getattr(record, "fields", {}))
        else:
            data["logger"] = record.name
            data["message"] = record.getMessage()
            if record.exc_info:
                # exc_text when a filter set it: the logs' filter masks numbers and secrets
                # there (formatting exc_info again would undo that)
                data["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, default=str, separators=(",", ":"))
