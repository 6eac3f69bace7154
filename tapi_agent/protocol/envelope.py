"""The notification envelope and the telephony payloads, validated as the Platform API does.

`validate_envelope` is the one entry point: `type` + `subType` choose the payload model, and every
problem is reported as a `FieldError` with a dotted path (`payload.huntGroup`,
`targets.negotiatorId.0`). `strict=True` (the backend) also rejects unknown keys; the agent parses
with `strict=False` so a newer backend adding fields does not break older agents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

from tapi_agent.protocol.common import (
    SUBTYPES,
    TIMESTAMP_HINT,
    TYPES,
    FieldError,
    ValidationFailed,
)


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(TIMESTAMP_HINT) from None


Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp)]
"""A date-time from an ISO 8601 string; naive (the platform's own example) or zoned."""

NegotiatorId = Annotated[StrictStr, Field(min_length=1, max_length=32)]


class CallPayload(BaseModel):
    """Fields shared by every telephony payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    sub_type: ClassVar[str] = ""

    id: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None
    created: Timestamp
    callerId: Annotated[StrictStr, Field(max_length=64)]
    destinationId: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    huntGroup: StrictBool | None = None

    @property
    def answered_by(self) -> str | None:
        return getattr(self, "answeredById", None)


class IncomingCall(CallPayload):
    """`telephony/incomingCall`: a call starts ringing at the targeted negotiators."""

    sub_type: ClassVar[str] = "incomingCall"


class AnsweredCall(CallPayload):
    """`telephony/answeredCall`: somebody (maybe `answeredById`) picked the call up."""

    sub_type: ClassVar[str] = "answeredCall"
    answeredById: NegotiatorId | None = None


class EndedCall(CallPayload):
    """`telephony/endedCall`: the call is over."""

    sub_type: ClassVar[str] = "endedCall"
    answeredById: NegotiatorId | None = None


class MissedCall(CallPayload):
    """`telephony/missedCall`: stored as a deferred notification, polled by products."""

    sub_type: ClassVar[str] = "missedCall"


PAYLOAD_MODELS: dict[tuple[str, str], type[CallPayload]] = {
    ("telephony", "incomingCall"): IncomingCall,
    ("telephony", "answeredCall"): AnsweredCall,
    ("telephony", "endedCall"): EndedCall,
    ("telephony", "missedCall"): MissedCall,
}


class Targets(BaseModel):
    """Where a notification goes: one or more negotiator ids (fan-out)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    negotiatorId: list[NegotiatorId] = Field(min_length=1, max_length=1000)


class _EnvelopeHead(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    products: list[Annotated[StrictStr, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=20
    )
    targets: Targets


class Envelope(BaseModel):
    """A validated notification: the envelope with its typed payload."""

    model_config = ConfigDict(frozen=True)

    type: Literal["telephony"]
    subType: Literal["incomingCall", "answeredCall", "endedCall", "missedCall"]
    products: list[str]
    targets: Targets
    payload: CallPayload

    def to_wire(self) -> dict[str, Any]:
        """The envelope as JSON-ready data, in the shape a provider POSTs."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["payload"] = self.payload.model_dump(mode="json", exclude_none=True)
        return data

    def for_product(self, product: str) -> bool:
        """True when `product` is among the envelope's products (case-insensitive)."""
        wanted = product.casefold()
        return any(p.casefold() == wanted for p in self.products)


_MESSAGES = {
    "missing": "is required",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "int_type": "must be an integer",
}


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    parts = [prefix] if prefix else []
    parts.extend(str(p) for p in loc)
    return ".".join(parts)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "too_short":
        return "must not be empty"
    if kind in ("string_too_long", "too_long"):
        limit = err.get("ctx", {}).get("max_length")
        return f"is too long (at most {limit})" if limit is not None else "is too long"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return str(err["msg"])


def _errors_from(exc: ValidationError, prefix: str) -> list[FieldError]:
    return [FieldError(_path(prefix, tuple(e["loc"])), _message(e)) for e in exc.errors()]


def _unknown_keys(data: dict[str, Any], known: set[str], prefix: str) -> list[FieldError]:
    return [
        FieldError(_path(prefix, (key,)), "is not a known field")
        for key in data
        if key not in known
    ]


def validate_payload(
    type_: str, sub_type: str, payload: Any, *, strict: bool = True, prefix: str = "payload"
) -> CallPayload:
    """Validate `payload` against the model `type_`/`sub_type` selects; raise ValidationFailed."""
    model = PAYLOAD_MODELS.get((type_, sub_type))
    if model is None:
        raise ValidationFailed([FieldError("subType", f"unknown subType {sub_type!r}")])
    errors: list[FieldError] = []
    if not isinstance(payload, dict):
        raise ValidationFailed([FieldError(prefix, "must be an object")])
    if strict:
        errors.extend(_unknown_keys(payload, set(model.model_fields), prefix))
    try:
        result = model.model_validate(payload)
    except ValidationError as exc:
        errors.extend(_errors_from(exc, prefix))
        raise ValidationFailed(errors) from None
    if errors:
        raise ValidationFailed(errors)
    return result


_ENVELOPE_KEYS = {"type", "subType", "products", "targets", "payload"}


def validate_envelope(data: Any, *, strict: bool = True, prefix: str = "") -> Envelope:
    """Validate a decoded JSON body as a notification envelope; raise ValidationFailed.

    Every problem found is reported at once, each with its dotted field path.
    """
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError(prefix or "body", "must be a JSON object")])
    errors: list[FieldError] = []
    if strict:
        errors.extend(_unknown_keys(data, _ENVELOPE_KEYS, prefix))
        if isinstance(data.get("targets"), dict):
            errors.extend(
                _unknown_keys(data["targets"], {"negotiatorId"}, _path(prefix, ("targets",)))
            )

    type_ = data.get("type")
    sub_type = data.get("subType")
    type_ok = sub_type_ok = False
    if "type" not in data:
        errors.append(FieldError(_path(prefix, ("type",)), "is required"))
    elif type_ not in TYPES:
        errors.append(
            FieldError(_path(prefix, ("type",)), "must be one of: " + ", ".join(TYPES))
        )
    else:
        type_ok = True
    if "subType" not in data:
        errors.append(FieldError(_path(prefix, ("subType",)), "is required"))
    elif type_ok and sub_type not in SUBTYPES[str(type_)]:
        errors.append(
            FieldError(
                _path(prefix, ("subType",)),
                f"must be one of: {', '.join(SUBTYPES[str(type_)])} (for type {type_})",
            )
        )
    elif type_ok:
        sub_type_ok = True

    head: _EnvelopeHead | None = None
    try:
        head = _EnvelopeHead.model_validate(
            {k: data[k] for k in ("products", "targets") if k in data}
        )
    except ValidationError as exc:
        errors.extend(_errors_from(exc, prefix))

    payload: CallPayload | None = None
    if "payload" not in data:
        errors.append(FieldError(_path(prefix, ("payload",)), "is required"))
    elif sub_type_ok:
        try:
            payload = validate_payload(
                str(type_), str(sub_type), data["payload"], strict=strict,
                prefix=_path(prefix, ("payload",)),
            )
        except ValidationFailed as exc:
            errors.extend(exc.errors)

    if errors or head is None or payload is None:
        raise ValidationFailed(errors)
    return Envelope.model_construct(
        type=type_, subType=sub_type, products=list(head.products), targets=head.targets,
        payload=payload,
    )
