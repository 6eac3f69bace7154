"""Schemathesis fuzz of the mock's whole HTTP API from its own OpenAPI: never a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tapi_agent.mock.app import create_app
from tapi_agent.mock.state import MockState

STATE = MockState()
APP = create_app(STATE)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=12, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_endpoint_answers_with_a_server_error(case: schemathesis.Case) -> None:
    if isinstance(case.body, dict):
        # Scenario pacing is real waiting; fuzzing it would only make the run slow.
        case.body.pop("gapMs", None)
    headers = {"Authorization": f"Bearer {STATE.provider_token()}"}
    case.call_and_validate(headers=headers, checks=[not_a_server_error])


def test_openapi_documents_every_public_endpoint() -> None:
    paths = set(APP.openapi()["paths"])
    assert {"/notifications", "/notifications/deferred", "/notifications/deferred/{deferred_id}",
            "/negotiators", "/negotiators/{negotiator_id}", "/contacts", "/oauth/authorize",
            "/oauth/token", "/oidc/logout", "/.well-known/jwks.json", "/_mock/tokens",
            "/_mock/journal", "/_mock/connections", "/_mock/faults",
            "/_mock/scenarios/{name}"} <= paths
    body = APP.openapi()["paths"]["/notifications"]["post"]["requestBody"]
    variants = body["content"]["application/json"]["schema"]["oneOf"]
    assert {v["properties"]["subType"]["enum"][0] for v in variants} == {
        "incomingCall", "answeredCall", "endedCall", "missedCall"}
