"""The agent's wire models: stream frames and notification envelopes, read with msgspec.

Why a second set of models. The backend's contract is written in pydantic (`protocol.envelope`,
`protocol.frames`): FastAPI builds the mock's OpenAPI document and its 422 naming every wrong
field from them. In the agent, pydantic and those models cost ~12 MiB of a ~100 MiB idle
process and 20-30 µs a frame (issue 14); msgspec reads the same frame in ~1.5 µs and adds ~2 MiB.
So the agent process reads with this module and never imports pydantic (a test starts the
agent's worker side in a fresh interpreter and checks `sys.modules`), while the mock keeps its
pydantic models. This module imports only the stdlib, msgspec and `protocol.common`.

What it reads is what the agent read before, with the same attribute names and the same
accept/reject rules as `frames.parse_server_frame` and `envelope.validate_envelope(strict=False)`:
no coercion (a bool is not an int, 1.0 is not an int, "1" is not an int), the same lengths and
bounds, unknown keys ignored (a newer backend may add fields), timestamps read by
`datetime.fromisoformat` (naive kept naive), a `sentAt` that cannot be put on the UTC axis
refused, frames over MAX_FRAME_BYTES refused unread, and nesting too deep for the JSON parser a
FrameError, never a RecursionError. `tests/protocol/test_wire_differential.py` generates valid
and broken frames and checks that both sets of models accept the same ones with equal values.

How a frame is read:

- fast path: one `msgspec.json.Decoder` over the union of server frames (tagged by `type`, the
  envelope tagged by `subType`), for a text frame;
- on any failure there (and for a binary frame, or one that may hold a number longer than
  Python converts), the frame is read again as the pydantic
  side reads it: `json.loads` decides what is JSON (it accepts NaN, lone surrogates and UTF-16
  bytes, which msgspec's parser refuses), then `msgspec.convert` checks the fields. So what is
  accepted never depends on which parser ran, and a rejection gets the reason today's agent
  gives: `not JSON`, `unknown frame type 'x'`, `invalid notification: notification.subType: is
  required`, `invalid welcome frame: heartbeatMs: must be > 0`. msgspec stops at the first wrong
  field, so a reason names one field where pydantic listed them all; the agent only logs it.

Timestamps are `Timestamp`/`SentAt`, subclasses of `datetime` (msgspec calls a hook only for
its own types, and checks that the hook returns that type): they compare, format and convert as
any datetime.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from tapi_agent.protocol.common import (
    MAX_FRAME_BYTES,
    SUBTYPES,
    TIMESTAMP_HINT,
    TYPES,
    FieldError,
    FrameError,
    ValidationFailed,
    check_sent_at,
    load_json_object,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "AckFrame",
    "AnsweredCall",
    "AuthFrame",
    "CallPayload",
    "ClientFrame",
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
    "SentAt",
    "ServerFrame",
    "Targets",
    "Timestamp",
    "ValidationFailed",
    "WelcomeFrame",
    "dump_frame",
    "parse_server_frame",
    "read_envelope",
]


class Timestamp(datetime):
    """A date-time read from ISO 8601 text by `datetime.fromisoformat`: naive or zoned."""

    __slots__ = ()


class SentAt(Timestamp):
    """A frame's `sentAt`: a Timestamp that can also be put on the UTC axis (issue 14)."""

    __slots__ = ()


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Timestamp or kind is SentAt:
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date-time string")
        try:
            parsed = kind.fromisoformat(value)
        except ValueError:
            raise ValueError(TIMESTAMP_HINT) from None
        if kind is SentAt:
            check_sent_at(parsed)
        return parsed
    raise NotImplementedError(f"no decoder for {kind!r}")


# -- the notification envelope and its telephony payloads ----------------------------------

NegotiatorId = Annotated[str, Meta(min_length=1, max_length=32)]


class CallPayload(msgspec.Struct, frozen=True, kw_only=True):
    """Fields shared by every telephony payload."""

    sub_type: ClassVar[str] = ""

    id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    created: Timestamp
    callerId: Annotated[str, Meta(max_length=64)]
    destinationId: Annotated[str, Meta(min_length=1, max_length=64)]
    huntGroup: bool | None = None

    @property
    def answered_by(self) -> str | None:
        return getattr(self, "answeredById", None)


class IncomingCall(CallPayload, frozen=True, kw_only=True):
    """`telephony/incomingCall`: a call starts ringing at the targeted negotiators."""

    sub_type: ClassVar[str] = "incomingCall"


class AnsweredCall(CallPayload, frozen=True, kw_only=True):
    """`telephony/answeredCall`: somebody (maybe `answeredById`) picked the call up."""

    sub_type: ClassVar[str] = "answeredCall"
    answeredById: NegotiatorId | None = None


class EndedCall(CallPayload, frozen=True, kw_only=True):
    """`telephony/endedCall`: the call is over."""

    sub_type: ClassVar[str] = "endedCall"
    answeredById: NegotiatorId | None = None


class MissedCall(CallPayload, frozen=True, kw_only=True):
    """`telephony/missedCall`: stored as a deferred notification, polled by products."""

    sub_type: ClassVar[str] = "missedCall"


class Targets(msgspec.Struct, frozen=True):
    """Where a notification goes: one or more negotiator ids (fan-out)."""

    negotiatorId: Annotated[list[NegotiatorId], Meta(min_length=1, max_length=1000)]


class Envelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="subType"):
    """A notification: the envelope with its typed payload (one subclass per subType)."""

    type: Literal["telephony"]
    products: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(min_length=1, max_length=20)
    ]
    targets: Targets
    payload: CallPayload

    @property
    def subType(self) -> str:
        return str(self.__struct_config__.tag)

    def for_product(self, product: str) -> bool:
        """True when `product` is among the envelope's products (case-insensitive)."""
        wanted = product.casefold()
        return any(p.casefold() == wanted for p in self.products)


class IncomingCallEnvelope(Envelope, frozen=True, tag="incomingCall"):
    payload: IncomingCall


class AnsweredCallEnvelope(Envelope, frozen=True, tag="answeredCall"):
    payload: AnsweredCall


class EndedCallEnvelope(Envelope, frozen=True, tag="endedCall"):
    payload: EndedCall


class MissedCallEnvelope(Envelope, frozen=True, tag="missedCall"):
    payload: MissedCall


AnyEnvelope = IncomingCallEnvelope | AnsweredCallEnvelope | EndedCallEnvelope | MissedCallEnvelope
_ENVELOPES: dict[str, Any] = {c.__struct_config__.tag: c for c in AnyEnvelope.__args__}
assert set(_ENVELOPES) == set(SUBTYPES["telephony"])
assert TYPES == ("telephony",)  # the Literal above


# -- stream frames (DESIGN.md section 4) ---------------------------------------------------


class _Frame(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)


class WelcomeFrame(_Frame, frozen=True, tag="welcome"):
    """First frame on every connection."""

    connectionId: str
    negotiatorId: str
    epoch: str
    heartbeatMs: Annotated[int, Meta(gt=0)]


class NotificationFrame(_Frame, frozen=True, tag="notification"):
    """One notification for this negotiator, numbered by `seq` within the backend's `epoch`."""

    seq: Annotated[int, Meta(ge=1)]
    sentAt: SentAt
    notification: AnyEnvelope

    @property
    def sent_at_utc(self) -> datetime:
        """`sentAt` as an aware UTC datetime (a naive value is read as UTC)."""
        t = self.sentAt
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class ReplayedFrame(_Frame, frozen=True, tag="replayed"):
    """Sent after a resume: how many events were replayed and whether any were lost."""

    count: Annotated[int, Meta(ge=0)]
    complete: bool


class HeartbeatFrame(_Frame, frozen=True, tag="heartbeat"):
    """Sent every `heartbeatMs` when nothing else was."""


class ResumeFrame(_Frame, frozen=True, tag="resume"):
    """Client: replay what I have not acknowledged after `lastSeq` in `epoch`."""

    epoch: str
    lastSeq: Annotated[int, Meta(ge=0)]


class AckFrame(_Frame, frozen=True, tag="ack"):
    """Client: event `seq` is handled."""

    seq: Annotated[int, Meta(ge=1)]


class AuthFrame(_Frame, frozen=True, tag="auth"):
    """Client: renew the connection's access token in-band."""

    accessToken: Annotated[str, Meta(min_length=1)]

    def __repr__(self) -> str:  # never show the token
        return "AuthFrame(accessToken=<redacted>)"

    __str__ = __repr__


ServerFrame = WelcomeFrame | NotificationFrame | ReplayedFrame | HeartbeatFrame
ClientFrame = ResumeFrame | AckFrame | AuthFrame

_SERVER: dict[str, Any] = {  # type name -> frame class
    "welcome": WelcomeFrame,
    "notification": NotificationFrame,
    "replayed": ReplayedFrame,
    "heartbeat": HeartbeatFrame,
}
_DECODER = msgspec.json.Decoder(ServerFrame, dec_hook=_dec_hook)
_ENCODER = msgspec.json.Encoder()


# -- reading -------------------------------------------------------------------------------


def parse_server_frame(raw: str | bytes) -> ServerFrame:
    """Decode a server-to-client frame; raise FrameError with a readable reason."""
    size = len(raw)
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame too large ({size} bytes, limit {MAX_FRAME_BYTES})")
    if isinstance(raw, str) and not _long_number(raw, size):
        try:
            frame: ServerFrame = _DECODER.decode(raw)
            return frame
        except (ValueError, RecursionError):  # msgspec's errors are ValueErrors
            pass
    return _parse_slowly(raw)


_DIGIT_RUN = re.compile(r"[0-9]+")


def _long_number(raw: str, size: int) -> bool:
    """True when `raw` may hold a number longer than Python converts (4300 digits by default).

    json.loads refuses such a frame ("not JSON"); msgspec would skip the number in a key it
    ignores. Such frames take the slow path, so that both read them alike. Only a frame longer
    than the limit is scanned, in linear time.
    """
    limit = sys.get_int_max_str_digits()
    if not limit or size <= limit:
        return False
    return any(m.end() - m.start() > limit for m in _DIGIT_RUN.finditer(raw))


def _parse_slowly(raw: str | bytes) -> ServerFrame:
    """The frame as the pydantic side reads it: json.loads, then field by field."""
    data = load_json_object(raw)
    kind = data.get("type")
    model = _SERVER.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise FrameError(f"unknown frame type {kind!r}")
    if model is NotificationFrame:
        try:
            read_envelope(data.get("notification"), prefix="notification")
        except ValidationFailed as exc:
            raise FrameError(
                "invalid notification: "
                + "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
            ) from None
    try:
        frame: ServerFrame = _convert(data, model, "")
    except _Invalid as exc:
        raise FrameError(f"invalid {kind} frame: {exc.error.field}: {exc.error.message}") from None
    return frame


def read_envelope(data: Any, *, prefix: str = "") -> Envelope:
    """Read decoded JSON as a notification envelope, leniently (unknown keys are ignored).

    What `validate_envelope(data, strict=False)` accepts, with the same values; raises
    ValidationFailed naming the (first) wrong field, its path under `prefix`.
    """
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError(prefix or "body", "must be a JSON object")])
    sub_type = data.get("subType")
    # One struct type when subType names one: msgspec.convert analyses a union on every call
    # (~9 µs against ~2 µs); the union only for the errors (missing or unknown subType).
    kind = _ENVELOPES.get(sub_type, AnyEnvelope) if isinstance(sub_type, str) else AnyEnvelope
    try:
        envelope: Envelope = _convert(data, kind, prefix, unicode_only=True)
    except _Invalid as exc:
        raise ValidationFailed([exc.error]) from None
    return envelope


class _Invalid(Exception):
    def __init__(self, error: FieldError) -> None:
        self.error = error
        super().__init__(f"{error.field}: {error.message}")


_NOT_UNICODE = "is not valid Unicode (a lone surrogate)"


def _convert(data: Any, kind: Any, prefix: str, *, unicode_only: bool = False) -> Any:
    """`msgspec.convert` for decoded JSON, refusing what pydantic refuses; raises _Invalid.

    json.loads turns `\\ud800` into a lone surrogate, which msgspec cannot always handle,
    and which pydantic refuses in a string with a length limit (every string of the envelope:
    `unicode_only`), keeps in one without (the welcome frame's), ignores in a key: keys that
    are not valid Unicode are dropped (no field has such a name).
    """
    where = prefix or "body"
    try:
        try:
            result = msgspec.convert(data, kind, dec_hook=_dec_hook)
        except UnicodeEncodeError:
            result = msgspec.convert(_valid_keys(data), kind, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise _Invalid(_field_error(str(exc), prefix)) from None
    except RecursionError:
        raise _Invalid(FieldError(where, "is nested too deeply")) from None
    except UnicodeEncodeError:  # a value msgspec had to compare or quote (a tag, a literal)
        raise _Invalid(FieldError(where, "holds text that " + _NOT_UNICODE)) from None
    bad = _not_unicode(result, prefix) if unicode_only and not _all_ascii(result) else None
    if bad is not None:
        raise _Invalid(FieldError(bad, "is text that " + _NOT_UNICODE))
    return result


def _all_ascii(env: Envelope) -> bool:
    """True when every string of a read envelope is ASCII (the usual case: no walk needed)."""
    p = env.payload
    return "".join([*env.products, *env.targets.negotiatorId, p.callerId, p.destinationId,
                    p.id or "", p.answered_by or ""]).isascii()


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _valid_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _valid_keys(v) for k, v in data.items() if not isinstance(k, str)
                or _is_unicode(k)}
    if isinstance(data, list):
        return [_valid_keys(v) for v in data]
    return data


def _not_unicode(value: Any, path: str) -> str | None:
    """The path of the first string in a read struct that is not valid Unicode, or None."""
    if isinstance(value, str):
        return None if _is_unicode(value) else (path or "body")
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            found = _not_unicode(getattr(value, name), f"{path}.{name}" if path else name)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _not_unicode(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def dump_frame(frame: ClientFrame) -> str:
    """Serialise a client frame to its JSON text (`{"type":"ack","seq":41}`)."""
    return _ENCODER.encode(frame).decode()


# -- readable reasons from msgspec's messages ----------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?(?P<rest>.*)$")
_NOUNS = {
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
}
_ALLOWED = {"type": ", ".join(TYPES), "subType": ", ".join(SUBTYPES["telephony"])}


def _field_error(text: str, prefix: str) -> FieldError:
    match = _AT.match(text)
    message, path = (match["msg"], match["path"] or "") if match else (text, "")
    parts = [prefix] if prefix else []
    parts.extend(p for p in re.sub(r"\[(\d+)\]", r".\1", path).split(".") if p)
    missing = _MISSING.match(message)
    if missing:
        parts.append(missing["name"])
        return FieldError(".".join(parts), "is required")
    field = ".".join(parts) or prefix or "body"
    return FieldError(field, _readable(message, parts[-1] if parts else ""))


def _readable(message: str, name: str) -> str:
    if message.startswith(("Invalid enum value", "Invalid value")) and name in _ALLOWED:
        return f"must be one of: {_ALLOWED[name]}"
    expected = _EXPECTED.match(message)
    if expected is None:
        return message  # ours (timestamps, sentAt) or msgspec's own words
    want = expected["want"].removesuffix(" | null")
    rest = expected["rest"].strip()
    if expected["got"] is not None:
        return f"must be {_NOUNS.get(want, want)}"
    bound = re.match(r"^of length (?P<op>[<>]=) (?P<n>\d+)$", rest)
    if bound:
        return "must not be empty" if bound["op"] == ">=" else \
            f"is too long (at most {bound['n']})"
    return f"must be {rest}" if rest else message
