"""`POST /notifications` and the deferred (missed call) list, as the Platform API answers them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tapi_agent.mock.http import (
    ApiError,
    bearer_claims,
    decode_json,
    is_json_media,
    request_id,
    state_of,
)
from tapi_agent.mock.openapi import ENVELOPE_REQUEST_BODY, error_responses, linked
from tapi_agent.mock.seed import NOTIFY_SCOPE
from tapi_agent.mock.state import Accepted, MockState
from tapi_agent.protocol import Envelope, ValidationFailed, validate_envelope

router = APIRouter(tags=["notifications"])


class NotificationAccepted(BaseModel):
    """202: the notification's id and the negotiators it goes to."""

    id: str
    recipients: list[str]


def parse_and_validate(raw: bytes) -> Envelope:
    """Decode a POST body and validate it as an envelope: ApiError 400 when it is not JSON,
    422 naming every field that fails validation."""
    return validate_or_422(decode_json(raw))


def validate_or_422(data: Any) -> Envelope:
    """Validate a decoded envelope; raise ApiError 422 with the Platform validation body."""
    try:
        return validate_envelope(data, strict=True)
    except ValidationFailed as exc:
        raise ApiError(422, exc.description, [e.as_dict() for e in exc.errors]) from None


def post_envelope(state: MockState, data: Any, rid: str = "") -> Accepted:
    """Validate an already-decoded envelope and accept it (the path scenarios share)."""
    return state.accept(validate_or_422(data), rid)


@router.post(
    "/notifications",
    status_code=202,
    response_model=NotificationAccepted,
    summary="Push a notification to negotiators",
    openapi_extra={"requestBody": ENVELOPE_REQUEST_BODY},
    responses=error_responses(400, 401, 403, 413, 415, 422),
)
async def post_notification(request: Request) -> Response:
    """Validate the envelope and fan it out; `missedCall` is stored as deferred per target."""
    bearer_claims(request, NOTIFY_SCOPE)
    if not is_json_media(request.headers.get("content-type", "")):
        raise ApiError(415, "Unsupported media type: send 'Content-Type: application/json'")
    # BodyLimitMiddleware has already refused a body over 64 KiB (413) while reading it.
    envelope = parse_and_validate(await request.body())
    accepted = state_of(request).accept(envelope, request_id(request))
    # The body `NotificationAccepted` documents, rendered directly: returning the model would
    # have FastAPI validate and serialise it again against `response_model` on every POST.
    return JSONResponse({"id": accepted.id, "recipients": accepted.recipients}, status_code=202)


@router.get(
    "/notifications/deferred",
    summary="Missed calls waiting for the signed-in negotiator",
    responses={**linked(200, "The negotiator's missed calls", DeleteFirst=(
        "deleteDeferred", {"deferred_id": "$response.body#/_embedded/0/id"})),
               **error_responses(401, 403)},
)
async def list_deferred(request: Request) -> dict[str, Any]:
    """`{"_embedded": [{"id", "created", "notification"}]}` for the token's negotiator."""
    claims = bearer_claims(request)
    if claims.negotiator_id is None:
        raise ApiError(403, "Forbidden: deferred notifications need a negotiator's token")
    items = state_of(request).deferred.get(claims.negotiator_id, [])
    return {"_embedded": [d.as_dict() for d in items]}


@router.delete(
    "/notifications/deferred/{deferred_id}",
    status_code=204,
    summary="Delete a deferred notification once it has been seen",
    operation_id="deleteDeferred",
    responses=error_responses(401, 403, 404),
)
async def delete_deferred(deferred_id: str, request: Request) -> Response:
    """204 when deleted; 404 when there is no such item for this negotiator."""
    claims = bearer_claims(request)
    if claims.negotiator_id is None:
        raise ApiError(403, "Forbidden: deferred notifications need a negotiator's token")
    if state_of(request).delete_deferred(claims.negotiator_id, deferred_id):
        return Response(status_code=204)
    raise ApiError(404, f"Deferred notification {deferred_id!r} was not found")
