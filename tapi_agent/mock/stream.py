"""`GET /notifications/stream`: the websocket of DESIGN.md section 4, server side."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.responses import JSONResponse

from tapi_agent.mock.http import ApiError, bearer_claims, error_body, state_of
from tapi_agent.mock.hub import Connection
from tapi_agent.mock.tokens import TokenError
from tapi_agent.protocol import (
    AckFrame,
    AuthFrame,
    FrameError,
    ResumeFrame,
    WelcomeFrame,
    dump_frame,
    parse_client_frame,
)

_log = logging.getLogger("tapi_agent.mock.stream")

router = APIRouter()

CLOSE_TOKEN = 4001
CLOSE_FORBIDDEN = 4003


async def _deny(websocket: WebSocket, status: int, description: str,
                headers: dict[str, str] | None = None) -> None:
    # A real HTTP status before the upgrade (the websocket denial response extension);
    # closing before accept would always read as 403.
    await websocket.send_denial_response(
        JSONResponse(error_body(status, description), status_code=status, headers=headers)
    )


@router.websocket("/notifications/stream")
async def notification_stream(websocket: WebSocket, product: str = "AgencyCloud") -> None:
    """The real-time stream of one negotiator's notifications."""
    state = state_of(websocket)
    hub = state.hub
    try:
        claims = bearer_claims(websocket)
    except ApiError as exc:
        await _deny(websocket, exc.status, exc.description, exc.headers)
        return
    status = hub.reject_status(claims.negotiator_id)
    if status is not None:
        await _deny(websocket, status, "Service unavailable (injected fault)")
        return

    await websocket.accept()
    negotiator_id = claims.negotiator_id
    person = state.seed.negotiator(negotiator_id) if negotiator_id else None
    if negotiator_id is None or person is None or not person.get("active", True) or (
        negotiator_id in state.forbidden
    ):
        await websocket.close(CLOSE_FORBIDDEN, "negotiator not allowed on the stream")
        return

    conn = Connection(hub, websocket, negotiator_id, product, claims.expires_at)
    welcome = WelcomeFrame(
        connectionId=conn.id, negotiatorId=negotiator_id, epoch=hub.epoch,
        heartbeatMs=hub.heartbeat_ms,
    )
    await websocket.send_text(dump_frame(welcome))
    hub.add(conn)
    try:
        await _receive_loop(websocket, conn)
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(conn)
        await conn.finish()


async def _receive_loop(websocket: WebSocket, conn: Connection) -> None:
    state = state_of(websocket)
    hub = state.hub
    while not conn.closed:
        remaining = conn.expires_at - time.time()
        if remaining <= 0:
            await conn.close(CLOSE_TOKEN, "token expired")
            return
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), remaining)
        except TimeoutError:
            continue  # the expiry check at the top closes unless an `auth` extended it
        except (KeyError, RuntimeError) as exc:
            # A binary frame (no "text" key) or a socket we already closed.
            if conn.closed:
                return
            _log.info("ignored frame on %s: %s", conn.id, exc)
            continue
        try:
            frame = parse_client_frame(raw)
        except FrameError as exc:
            _log.info("ignored bad frame on %s: %s", conn.id, exc.reason)
            state.record({"kind": "bad_frame", "connectionId": conn.id, "reason": exc.reason})
            continue
        if isinstance(frame, ResumeFrame):
            count, complete = hub.resume(conn, frame.epoch, frame.lastSeq)
            state.record({"kind": "resume", "connectionId": conn.id,
                          "negotiatorId": conn.negotiator_id, "epoch": frame.epoch,
                          "lastSeq": frame.lastSeq, "count": count, "complete": complete})
        elif isinstance(frame, AckFrame):
            acked = hub.ack(conn.negotiator_id, frame.seq)
            state.record({"kind": "ack", "connectionId": conn.id,
                          "negotiatorId": conn.negotiator_id, "seq": frame.seq,
                          "known": acked})
        elif isinstance(frame, AuthFrame):
            try:
                claims = state.verify(frame.accessToken)
            except TokenError as exc:
                await conn.close(CLOSE_TOKEN, f"auth refused: {exc.reason}")
                return
            if claims.negotiator_id != conn.negotiator_id:
                await conn.close(CLOSE_FORBIDDEN, "auth token is for another negotiator")
                return
            conn.expires_at = claims.expires_at
            state.record({"kind": "auth", "connectionId": conn.id,
                          "negotiatorId": conn.negotiator_id})
