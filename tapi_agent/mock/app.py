"""The FastAPI application of the mock backend, built around one MockState."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from tapi_agent.mock import bench, directory, notifications, oauth, stream
from tapi_agent.mock.http import ApiError, RequestIdMiddleware, error_body, error_response
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
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
             "message": str(e["msg"])}
            for e in exc.errors()
        ]
        return JSONResponse(
            error_body(400, "One or more parameters failed validation", errors), status_code=400
        )

    app.include_router(notifications.router)
    app.include_router(stream.router)
    app.include_router(directory.router)
    app.include_router(oauth.router)
    app.include_router(bench.router)
    return app
