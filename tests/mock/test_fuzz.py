"""Schemathesis over the mock's whole OpenAPI, per operation and stateful (following links).

Every operation is fuzzed with valid and invalid data and checked by Schemathesis' own checks:
no 5xx, documented status codes, content types and headers, response schemas, `Allow` on 405,
valid data accepted. Invalid data must be rejected where the Platform validates bodies
(`POST /notifications`, `POST /journalEntries`): a query value such as `id=-1` is a string on
the wire, so "negative" queries are often valid ones and that check would only report noise.
Reapit Connect's endpoints (sign-in pages, form posts) get every check but the two about data:
whether a form is acceptable depends on codes, clients and sessions that exist, not on its shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, assume, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation

from tapi_agent.mock.app import create_app
from tapi_agent.mock.seed import PROVIDER_SCOPES
from tapi_agent.mock.state import MockState

STATE = MockState()
APP = create_app(STATE)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# A negotiator's token with every scope: deferred calls need a negotiator, posting a provider's
# scope. A day's life: the run must not outlive it.
TOKEN = STATE.mint_token("JAS", scopes=list(PROVIDER_SCOPES), ttl=86400)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}

VALIDATED_BODIES = {("POST", "/notifications"), ("POST", "/journalEntries")}
CONNECT = ("/authorize", "/token", "/oauth/", "/oauth2/", "/oidc/", "/.well-known/")
KNOWN = {"contact": "OXF20000001"}


def _prepare(case: schemathesis.Case) -> None:
    body = case.body
    # A body over 64 KiB is refused unread (413), which Schemathesis does not count as a
    # rejection of invalid data; `test_body_limits.py` covers that answer.
    assume(len(json.dumps(body, default=str)) < 60_000)
    if not isinstance(body, dict):
        return
    body.pop("gapMs", None)  # scenario pacing is real waiting: it would only make runs slow
    if (case.method, case.path) == ("POST", "/journalEntries") and not (
            case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY)):
        # Valid by the schema, and about records the mock knows: which ids exist is data,
        # not schema, and an unknown one is (rightly) a 422.
        if isinstance(body.get("associatedType"), str) and body["associatedType"] in KNOWN:
            body["associatedId"] = KNOWN[body["associatedType"]]
        if "negotiatorId" in body:
            body["negotiatorId"] = "RPT"


def _checks(case: schemathesis.Case) -> dict[str, Any]:
    if case.path.startswith(CONNECT):
        return {"excluded_checks": [negative_data_rejection, positive_data_acceptance]}
    if (case.method, case.path) in VALIDATED_BODIES:
        return {}
    return {"excluded_checks": [negative_data_rejection]}


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    _prepare(case)
    case.call_and_validate(headers=HEADERS, **_checks(case))


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences along the documented links: a page to its first item, a new journal entry to
    its `Location` and its record's journal, the deferred list to a delete."""

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        _prepare(case)
        return {"headers": HEADERS}

    def validate_response(self, response: Any, case: schemathesis.Case,
                          additional_checks: Any = None, **kwargs: Any) -> None:
        checks = _checks(case)
        if "checks" in checks:
            case.validate_response(response, checks=checks["checks"])
        else:
            case.validate_response(response, excluded_checks=checks.get("excluded_checks"))


def test_stateful_sequences_along_the_links() -> None:
    start = len(STATE.journal)
    # Derandomized: the assertions below about which links were followed hold on every run.
    run_state_machine_as_test(Workflow, settings=settings(
        max_examples=25, stateful_step_count=6, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
    served = {(e["path"], e["status"]) for e in list(STATE.journal)[start:]
              if e["kind"] == "request"}
    # The links were followed: items fetched by the ids their pages and Locations gave.
    assert any(re.fullmatch(r"/journalEntries/[0-9a-f]{16}", p) and s == 200 for p, s in served)
    assert any(p.startswith(("/negotiators/", "/contacts/")) and s == 200 for p, s in served)


def test_openapi_documents_every_public_endpoint_and_its_links() -> None:
    doc = APP.openapi()
    paths = set(doc["paths"])
    assert {"/notifications", "/notifications/deferred", "/notifications/deferred/{deferred_id}",
            "/negotiators", "/negotiators/{negotiator_id}", "/contacts", "/contacts/{contact_id}",
            "/journalEntries", "/journalEntries/{entry_id}", "/oidc/logout",
            "/.well-known/jwks.json", "/_mock/tokens", "/_mock/journal", "/_mock/connections",
            "/_mock/faults", "/_mock/scenarios/{name}"} <= paths
    body = doc["paths"]["/notifications"]["post"]["requestBody"]
    variants = body["content"]["application/json"]["schema"]["oneOf"]
    assert {v["properties"]["subType"]["enum"][0] for v in variants} == {
        "incomingCall", "answeredCall", "endedCall", "missedCall"}
    links = doc["paths"]["/journalEntries"]["post"]["responses"]["201"]["links"]
    assert links["GetCreated"]["operationId"] == "getJournalEntry"
    assert "422" in doc["paths"]["/journalEntries"]["post"]["responses"]
