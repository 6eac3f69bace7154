"""The FastAPI application of the mock backend, built around one MockState."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from tapi_agent.mock import bench, directory, journal_entries, notifications, oauth, stream
from tapi_agent.mock.http import (
    ApiError,
    BodyLimitMiddleware,
    RequestIdMiddleware,
    error_body,
    error_response,
)
from tapi_agent.mock.state import MockState

DESCRIPTION = """\
A local stand-in for Reapit's Notifications API, Reapit Connect sign-in and the real-time stream
the TAPI Agent listens on. Get a provider token with
`POST /oauth/token` (`grant_type=client_credentials`, `demo-provider` / `demo-secret`), then
`POST /notifications`. The `/_mock/` endpoints are the test bench (journal, faults, scenarios).
"""


def create_app(state: MockState) -> FastAPI:
    """A new app serving `state`; two apps never share anything."""
    app = FastAPI(title="tapi-agent-mock", version="1.0", description=DESCRIPTION)
    app.state.mock = state
    app.add_middleware(BodyLimitMiddleware)  # inside RequestIdMiddleware: a 413 gets an id too
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; every method the
            # path serves belongs in `Allow` (RFC 9110 15.5.6).
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return validation_response(exc.errors())

    app.include_router(notifications.router)
    app.include_router(stream.router)
    app.include_router(directory.router)
    app.include_router(journal_entries.router)
    app.include_router(oauth.router)
    app.include_router(bench.router)
    return app


def allowed_methods(app: FastAPI, scope: Any) -> list[str]:
    """Every method some route serves at the request's path, sorted."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def validation_response(errors: Any) -> JSONResponse:
    """FastAPI's validation errors as the Platform API answers them.

    A body that is JSON but fails validation is `422` with `errors` (Reapit: "errors ... only
    populated for 422"); a body that is not JSON, or a bad query or path parameter, is `400`.
    """
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body(400, "The request body is not valid JSON"),
                            status_code=400)
    fields = [
        {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
         "message": str(e["msg"])}
        for e in errors
    ]
    if all(e["loc"] and e["loc"][0] == "body" for e in errors):
        return JSONResponse(
            error_body(422, "One or more fields failed validation", fields), status_code=422)
    return JSONResponse(
        error_body(400, "One or more parameters are not valid: "
                   + "; ".join(f"{f['field']}: {f['message']}" for f in fields)),
        status_code=400)
