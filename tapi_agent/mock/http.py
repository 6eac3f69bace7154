"""HTTP plumbing shared by the mock's routes: Platform error bodies, request ids, bearer auth."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tapi_agent.mock.state import MockState
from tapi_agent.mock.tokens import AccessClaims, TokenError

REQUEST_ID_HEADER = "x-amzn-RequestId"
MAX_BODY_BYTES = 64 * 1024  # the Platform endpoints
MAX_BENCH_BODY_BYTES = 2 * 1024 * 1024  # /_mock/: raw frames larger than the stream allows
_SCOPE_KEY = "tapi_agent.request_id"
# Query parameters the journal must not keep: they are credentials.
SECRET_PARAMS = frozenset({"access_token", "refresh_token", "id_token_hint", "code",
                           "code_verifier", "client_secret", "token"})


def redact_query(query: str) -> str:
    """A query string with the values of credential parameters replaced by `***`."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k in SECRET_PARAMS else v) for k, v in pairs])


def now_z() -> str:
    """The current UTC time as the Platform API writes `dateTime`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApiError(Exception):
    """An error answered with the Platform API body (statusCode, dateTime, description, errors)."""

    def __init__(
        self,
        status: int,
        description: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.description = description
        self.errors = errors
        self.headers = headers or {}
        super().__init__(description)


def error_body(status: int, description: str, errors: list[dict[str, str]] | None = None
               ) -> dict[str, Any]:
    """The Platform API error body."""
    body: dict[str, Any] = {"statusCode": status, "dateTime": now_z(), "description": description}
    if errors is not None:
        body["errors"] = errors
    return body


def error_response(exc: ApiError) -> JSONResponse:
    """Render an ApiError."""
    return JSONResponse(
        error_body(exc.status, exc.description, exc.errors), status_code=exc.status,
        headers=exc.headers,
    )


def decode_json(raw: bytes) -> Any:
    """A request body as JSON; ApiError 400 for anything the parser cannot take.

    Not JSON, not UTF-8, nested deeper than the parser goes (RecursionError), or an integer
    longer than Python converts: all are a body that is not JSON to us, never a 500.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiError(400, "The request body is not valid JSON: it is nested too deeply"
                       ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None


def is_json_media(content_type: str) -> bool:
    """True for `application/json` and `application/*+json` (parameters ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


def request_id(conn: HTTPConnection) -> str:
    """The id the middleware gave this request (also sent as `x-amzn-RequestId`)."""
    return str(conn.scope.get(_SCOPE_KEY, ""))


def state_of(conn: HTTPConnection) -> MockState:
    """The MockState of the app serving this request."""
    state: MockState = conn.app.state.mock
    return state


def bearer_claims(conn: HTTPConnection, *scopes: str) -> AccessClaims:
    """Verify the `Authorization: Bearer` token and require `scopes`; raise ApiError 401/403."""
    header = conn.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="tapi-agent-mock"'}
    if kind.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Missing bearer token: send 'Authorization: Bearer <access token>'",
                       headers=challenge)
    try:
        claims = state_of(conn).verify(token.strip())
    except TokenError as exc:
        raise ApiError(401, f"Unauthorized: {exc.reason}", headers=challenge) from None
    missing = [s for s in scopes if s not in claims.scopes]
    if missing:
        raise ApiError(403, "Forbidden: the token lacks the scope " + ", ".join(missing))
    return claims


def body_limit(path: str) -> int:
    """The largest request body `path` takes: 64 KiB, or 2 MiB on the `/_mock/` test bench."""
    return MAX_BENCH_BODY_BYTES if path.startswith("/_mock/") else MAX_BODY_BYTES


class BodyLimitMiddleware:
    """Reads each request body while counting, and answers 413 once it passes the limit.

    `Content-Length` over the limit is refused before a byte is read; a chunked body is read
    only up to the limit (never whole), so a 50 MiB upload costs the mock 64 KiB. The body read
    is handed on to the app unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._too_large(scope, receive, send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = JSONResponse(
            error_body(413, f"Payload too large: the limit is {limit} bytes"), status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class RequestIdMiddleware:
    """Gives every request an id, sends it as `x-amzn-RequestId`, and journals the outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope[_SCOPE_KEY] = rid
        status: list[int] = []

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status.append(int(message["status"]))
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            elif kind == "websocket.accept":
                status.append(101)
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            elif kind == "websocket.close" and not status:
                status.append(403)  # closing before accept is an HTTP 403 on the wire
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            mock: MockState | None = getattr(getattr(scope.get("app"), "state", None), "mock", None)
            if mock is not None:
                path = scope.get("path", "")
                query = redact_query(scope.get("query_string", b"").decode("latin-1"))
                mock.record({
                    "kind": "request",
                    "method": scope.get("method", "GET"),
                    "path": path,
                    "query": query,
                    "status": status[0] if status else 500,
                    "requestId": rid,
                    "websocket": scope["type"] == "websocket",
                })
