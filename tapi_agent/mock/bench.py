"""The test bench under `/_mock/`: tokens, journal, connections, faults and scenarios."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tapi_agent.mock.http import ApiError, state_of
from tapi_agent.mock.hub import ONE_SHOT_FAULTS, PERSISTENT_FAULTS
from tapi_agent.mock.openapi import error_responses

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
             responses=error_responses(400, 404))
async def mint_token(body: TokenRequest, request: Request) -> TokenResponse:
    """Default scopes: `negotiators.read contacts.read`; default life: `--token-ttl`."""
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


class FaultRequest(BaseModel):
    """A fault; `negotiatorId` absent means every negotiator."""

    kind: Literal["drop", "close", "silence", "delay", "duplicate", "reorder", "reject"]
    negotiatorId: str | None = Field(default=None, min_length=1, max_length=32)
    code: int = Field(default=1000, ge=1000, le=4999)
    reason: str = Field(default="", max_length=120)
    ms: int = Field(default=200, ge=0, le=60000)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    window: int = Field(default=3, ge=2, le=100)
    status: int = Field(default=503, ge=400, le=599)


_PARAMS = {"close": ("code", "reason"), "delay": ("ms",), "duplicate": ("probability",),
           "reorder": ("window",), "reject": ("status",)}


class FaultsResponse(BaseModel):
    """How many live connections a fault touched, and the persistent faults now active."""

    applied: int
    faults: list[dict[str, Any]]


@router.post("/faults", summary="Inject a fault", responses=error_responses(400))
async def post_fault(body: FaultRequest, request: Request) -> FaultsResponse:
    """One-shot: drop, close, silence (current connections). Persistent: delay, duplicate,
    reorder, reject (until `DELETE /_mock/faults`)."""
    assert body.kind in ONE_SHOT_FAULTS + PERSISTENT_FAULTS
    if body.kind == "close" and body.code in (1004, 1005, 1006, 1015):
        raise ApiError(400, "This close code cannot be sent on the wire",
                       [{"field": "code", "message": "1004, 1005, 1006 and 1015 are reserved"}])
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
