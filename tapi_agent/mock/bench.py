"""The test bench under `/_mock/`: tokens, journal, connections, faults and scenarios."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from tapi_agent.mock.http import ApiError, request_id, state_of
from tapi_agent.mock.hub import ONE_SHOT_FAULTS, PERSISTENT_FAULTS
from tapi_agent.mock.notifications import post_envelope, validate_or_422
from tapi_agent.mock.openapi import error_responses
from tapi_agent.mock.seed import DEMO_CALLS

router = APIRouter(prefix="/_mock", tags=["test bench"])


class TokenRequest(BaseModel):
    """Mint an access token for a negotiator without signing in."""

    negotiatorId: str = Field(min_length=1, max_length=32)
    scopes: list[str] | None = None
    ttl: int | None = Field(default=None, ge=1, le=86400)


class TokenResponse(BaseModel):
    """An access token as `POST /oauth/token` would return it."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


@router.post("/tokens", summary="Mint an access token for a negotiator",
             responses=error_responses(400, 404, 413, 422))
async def mint_token(body: TokenRequest, request: Request) -> TokenResponse:
    """Default scopes: `negotiators.read contacts.read journalEntries.read journalEntries.write`;
    default life: `--token-ttl`."""
    state = state_of(request)
    if state.seed.negotiator(body.negotiatorId) is None:
        raise ApiError(404, f"Negotiator {body.negotiatorId!r} was not found")
    ttl = body.ttl or state.token_ttl
    token = state.mint_token(body.negotiatorId, scopes=body.scopes, ttl=ttl)
    return TokenResponse(access_token=token, expires_in=ttl)


@router.get("/journal", summary="Every request and every delivery, oldest first")
async def get_journal(request: Request) -> dict[str, Any]:
    """Requests carry method, path, status and requestId; deliveries carry negotiatorId,
    connectionId, seq and notificationId."""
    return {"entries": list(state_of(request).journal)}


@router.delete("/journal", status_code=204, summary="Forget the journal")
async def clear_journal(request: Request) -> Response:
    """Empty the journal."""
    state_of(request).journal.clear()
    return Response(status_code=204)


@router.get("/connections", summary="Live stream connections")
async def get_connections(request: Request) -> dict[str, Any]:
    """Every open websocket with its negotiator, product and token expiry, and the epoch."""
    hub = state_of(request).hub
    return {
        "epoch": hub.epoch,
        "connections": [c.as_dict() for c in hub.connections.values() if not c.closed],
    }


class RawFrame(BaseModel):
    """A frame to push as is: `text` verbatim, or `frame` serialised as JSON (exactly one)."""

    text: str | None = Field(default=None, max_length=1_000_000)
    frame: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("text", "frame"):
                if key in data and data[key] is None:
                    raise ValueError(f"{key} must not be null: give exactly one of text or frame")
        return data


_RAW_FRAME_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 1_000_000},
                       "frame": {"type": "object"}},
        "oneOf": [{"required": ["text"]}, {"required": ["frame"]}],
    }}},
}


@router.post("/connections/{connection_id}/frames", summary="Push a raw frame to one socket",
             responses=error_responses(400, 404, 413, 422),
             openapi_extra={"requestBody": _RAW_FRAME_BODY})
async def push_frame(connection_id: str, body: RawFrame, request: Request) -> dict[str, Any]:
    """Send exactly this frame on one connection (after anything already queued), to see how
    a client copes with frames the backend would never send."""
    if (body.text is None) == (body.frame is None):
        raise ApiError(422, "Give exactly one of 'text' or 'frame'",
                       [{"field": "text", "message": "exactly one of text or frame"}])
    conn = state_of(request).hub.connections.get(connection_id)
    if conn is None or conn.closed:
        raise ApiError(404, f"No live connection {connection_id!r}")
    text = body.text if body.text is not None else json.dumps(body.frame)
    conn.push(text)
    return {"connectionId": connection_id, "queued": True}


class FaultRequest(BaseModel):
    """A fault; `negotiatorId` absent means every negotiator."""

    kind: Literal["drop", "close", "silence", "delay", "duplicate", "reorder", "reject"]
    negotiatorId: str | None = Field(default=None, min_length=1, max_length=32)
    code: int = Field(default=1000, ge=1000, le=4999, json_schema_extra={"anyOf": [
        {"minimum": 1000, "maximum": 1003}, {"minimum": 1007, "maximum": 1014},
        {"minimum": 3000, "maximum": 4999}]})  # RFC 6455 7.4: the codes a close frame may carry
    reason: str = Field(default="", max_length=120)
    ms: int = Field(default=200, ge=0, le=60000)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    window: int = Field(default=3, ge=2, le=100)
    status: int = Field(default=503, ge=400, le=599)


_PARAMS = {"close": ("code", "reason"), "delay": ("ms",), "duplicate": ("probability",),
           "reorder": ("window",), "reject": ("status",)}


def _sendable_close_code(code: int) -> bool:
    # RFC 6455 7.4: only these may appear in a close frame.
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class FaultsResponse(BaseModel):
    """How many live connections a fault touched, and the persistent faults now active."""

    applied: int
    faults: list[dict[str, Any]]


@router.post("/faults", summary="Inject a fault", responses=error_responses(400, 413, 422))
async def post_fault(body: FaultRequest, request: Request) -> FaultsResponse:
    """One-shot: drop, close, silence (current connections). Persistent: delay, duplicate,
    reorder, reject (until `DELETE /_mock/faults`)."""
    assert body.kind in ONE_SHOT_FAULTS + PERSISTENT_FAULTS
    if body.kind == "close" and not _sendable_close_code(body.code):
        raise ApiError(422, "This close code cannot be sent on the wire", [{
            "field": "code",
            "message": "use 1000-1003, 1007-1014 or 3000-4999 (1004-1006 and 1015 are reserved)",
        }])
    hub = state_of(request).hub
    params = {k: getattr(body, k) for k in _PARAMS.get(body.kind, ())}
    applied = await hub.apply_fault(body.kind, body.negotiatorId, params)
    return FaultsResponse(applied=applied, faults=[f.as_dict() for f in hub.faults])


@router.get("/faults", summary="Active persistent faults")
async def get_faults(request: Request) -> FaultsResponse:
    """The persistent faults in force."""
    return FaultsResponse(applied=0, faults=[f.as_dict() for f in state_of(request).hub.faults])


@router.delete("/faults", summary="Clear persistent faults")
async def clear_faults(request: Request) -> FaultsResponse:
    """Remove every persistent fault; `applied` is how many were removed."""
    hub = state_of(request).hub
    removed = len(hub.faults)
    hub.faults.clear()
    return FaultsResponse(applied=removed, faults=[])


SCENARIOS = ("hunt-group", "answered", "missed", "burst")


class ScenarioRequest(BaseModel):
    """Options of a scenario; every field has a sensible default."""

    negotiators: list[str] | None = Field(default=None, min_length=1, max_length=50)
    callerId: str = Field(default=DEMO_CALLS[0].caller, max_length=64)
    destinationId: str = Field(default=DEMO_CALLS[0].destination, min_length=1, max_length=64)
    answeredBy: str | None = Field(default=None, min_length=1, max_length=32)
    count: int = Field(default=50, ge=1, le=1000)
    gapMs: int = Field(default=0, ge=0, le=10000)
    products: list[str] = Field(default_factory=lambda: ["AgencyCloud"], min_length=1)


class ScenarioResult(BaseModel):
    """The notifications a scenario posted, in order, and the call ids it used."""

    scenario: str
    notifications: list[str]
    callIds: list[str]


def scenario_events(name: str, opts: ScenarioRequest) -> list[dict[str, Any]]:
    """The envelopes a scenario posts, in order."""
    default_to = {"hunt-group": ["JAS", "RPT", "TST"]}.get(name, ["JAS"])
    to = opts.negotiators or default_to
    stamp = secrets.token_hex(3)
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def env(sub_type: str, call_id: str, targets: list[str], **extra: Any) -> dict[str, Any]:
        payload = {"id": call_id, "created": created, "callerId": opts.callerId,
                   "destinationId": opts.destinationId, **extra}
        return {"type": "telephony", "subType": sub_type, "products": opts.products,
                "targets": {"negotiatorId": targets}, "payload": payload}

    if name == "hunt-group":
        call = f"hunt-{stamp}"
        answerer = opts.answeredBy or to[0]
        return [
            env("incomingCall", call, to, huntGroup=True),
            env("answeredCall", call, to, huntGroup=True, answeredById=answerer),
            env("endedCall", call, to, huntGroup=True, answeredById=answerer),
        ]
    if name == "answered":
        call = f"call-{stamp}"
        answerer = opts.answeredBy or to[0]
        return [
            env("incomingCall", call, to, huntGroup=False),
            env("answeredCall", call, to, huntGroup=False, answeredById=answerer),
            env("endedCall", call, to, huntGroup=False, answeredById=answerer),
        ]
    if name == "missed":
        call = f"missed-{stamp}"
        return [
            env("incomingCall", call, to, huntGroup=len(to) > 1),
            env("endedCall", call, to, huntGroup=len(to) > 1),
            env("missedCall", call, to, huntGroup=len(to) > 1),
        ]
    if name == "burst":
        return [env("incomingCall", f"burst-{stamp}-{i + 1}", to, huntGroup=False)
                for i in range(opts.count)]
    raise ApiError(404, f"Unknown scenario {name!r}; try one of: " + ", ".join(SCENARIOS))


@router.post("/scenarios/{name}", summary="Play a scenario",
             responses=error_responses(400, 404, 413, 422))
async def play_scenario(name: str, request: Request,
                        body: ScenarioRequest | None = None) -> ScenarioResult:
    """`hunt-group`, `answered`, `missed`, `burst`: posted in order through POST
    /notifications' own path (the journal shows them)."""
    opts = body or ScenarioRequest()
    events = scenario_events(name, opts)
    state = state_of(request)
    for data in events:
        validate_or_422(data)  # all or nothing: never half a scenario
    ids: list[str] = []
    for i, data in enumerate(events):
        if i and opts.gapMs:
            await asyncio.sleep(opts.gapMs / 1000)
        ids.append(post_envelope(state, data, request_id(request)).id)
    call_ids = list(dict.fromkeys(str(e["payload"]["id"]) for e in events))
    return ScenarioResult(scenario=name, notifications=ids, callIds=call_ids)
