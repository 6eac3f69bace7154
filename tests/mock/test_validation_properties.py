"""Property tests of envelope validation: every valid envelope passes, every single-field
corruption is rejected naming that field's path (directly and through POST /notifications)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapi_agent.mock.server import MockServer
from tapi_agent.protocol import ValidationFailed, validate_envelope

SUBTYPES = ["incomingCall", "answeredCall", "endedCall", "missedCall"]
ANSWERABLE = {"answeredCall", "endedCall"}

short_text = st.text(min_size=1, max_size=32)
zones = st.sampled_from([None, UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))])


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
    zone = draw(zones)
    value = moment.replace(tzinfo=zone) if zone else moment
    text = value.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    sub_type = draw(st.sampled_from(SUBTYPES))
    payload: dict[str, Any] = {
        "created": draw(timestamps()),
        "callerId": draw(st.text(max_size=64)),
        "destinationId": draw(st.text(min_size=1, max_size=64)),
    }
    if draw(st.booleans()):
        payload["id"] = draw(st.text(min_size=1, max_size=128))
    if draw(st.booleans()):
        payload["huntGroup"] = draw(st.booleans())
    if sub_type in ANSWERABLE and draw(st.booleans()):
        payload["answeredById"] = draw(short_text)
    return {
        "type": "telephony",
        "subType": sub_type,
        "products": draw(st.lists(st.text(min_size=1, max_size=64), min_size=1, max_size=5)),
        "targets": {"negotiatorId": draw(st.lists(short_text, min_size=1, max_size=5))},
        "payload": payload,
    }


Corruption = tuple[str, Callable[[dict[str, Any]], None]]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(env: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = env
        for key in parents:
            node = node[key]
        node[last] = value
    return apply


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(env: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = env
        for key in parents:
            node = node[key]
        node.pop(last, None)
    return apply


def _first_target(value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(env: dict[str, Any]) -> None:
        env["targets"]["negotiatorId"][0] = value
    return apply


CORRUPTIONS: list[Corruption] = [
    ("type", _set("type", "fax")),
    ("type", _set("type", 1)),
    ("type", _delete("type")),
    ("subType", _set("subType", "voicemail")),
    ("subType", _delete("subType")),
    ("products", _set("products", [])),
    ("products", _set("products", "AgencyCloud")),
    ("products", _delete("products")),
    ("products.0", _set("products", [7])),
    ("products.0", _set("products", [""])),
    ("targets", _set("targets", ["JAS"])),
    ("targets", _delete("targets")),
    ("targets.negotiatorId", _set("targets.negotiatorId", [])),
    ("targets.negotiatorId", _set("targets.negotiatorId", "JAS")),
    ("targets.negotiatorId.0", _first_target("")),
    ("targets.negotiatorId.0", _first_target(42)),
    ("targets.negotiatorId.0", _first_target("N" * 33)),
    ("targets.team", _set("targets.team", "sales")),
    ("payload", _set("payload", "call")),
    ("payload", _delete("payload")),
    ("payload.created", _set("payload.created", "yesterday")),
    ("payload.created", _set("payload.created", 1698834480)),
    ("payload.created", _delete("payload.created")),
    ("payload.callerId", _set("payload.callerId", 7123456789)),
    ("payload.callerId", _set("payload.callerId", "0" * 65)),
    ("payload.callerId", _delete("payload.callerId")),
    ("payload.destinationId", _set("payload.destinationId", "")),
    ("payload.destinationId", _set("payload.destinationId", None)),
    ("payload.destinationId", _delete("payload.destinationId")),
    ("payload.huntGroup", _set("payload.huntGroup", "yes")),
    ("payload.huntGroup", _set("payload.huntGroup", 1)),
    ("payload.id", _set("payload.id", "")),
    ("payload.id", _set("payload.id", 99)),
    ("payload.id", _set("payload.id", "x" * 129)),
    ("payload.colour", _set("payload.colour", "red")),
    ("priority", _set("priority", "high")),
]


@given(envelopes())
@settings(max_examples=300, deadline=None)
def test_every_valid_envelope_is_accepted(env: dict[str, Any]) -> None:
    result = validate_envelope(env, strict=True)
    assert result.subType == env["subType"]
    assert result.targets.negotiatorId == env["targets"]["negotiatorId"]


@given(envelopes(), st.sampled_from(CORRUPTIONS))
@settings(max_examples=400, deadline=None)
def test_every_single_field_corruption_is_rejected_naming_that_field(
    env: dict[str, Any], corruption: Corruption
) -> None:
    field, corrupt = corruption
    broken = copy.deepcopy(env)
    corrupt(broken)
    with pytest.raises(ValidationFailed) as info:
        validate_envelope(broken, strict=True)
    fields = [e.field for e in info.value.errors]
    assert field in fields, fields
    assert all(f == field or f.startswith(field + ".") for f in fields), fields


@given(st.sampled_from(sorted(ANSWERABLE)), envelopes())
@settings(max_examples=50, deadline=None)
def test_answered_by_must_be_a_negotiator_id(sub_type: str, env: dict[str, Any]) -> None:
    env = {**env, "subType": sub_type, "payload": {**env["payload"], "answeredById": 12}}
    with pytest.raises(ValidationFailed) as info:
        validate_envelope(env, strict=True)
    assert [e.field for e in info.value.errors] == ["payload.answeredById"]


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[httpx.Client, str]]:
    with MockServer() as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client, server.provider_token()


@given(envelopes(), st.sampled_from(CORRUPTIONS), st.booleans())
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_answers_like_the_validator(
    live: tuple[httpx.Client, str], env: dict[str, Any], corruption: Corruption, corrupt: bool
) -> None:
    client, token = live
    field, apply = corruption
    body = copy.deepcopy(env)
    if corrupt:
        apply(body)
    r = client.post("/notifications", json=body, headers={"Authorization": f"Bearer {token}"})
    if not corrupt:
        assert r.status_code == 202, r.text
        assert r.json()["recipients"] == list(dict.fromkeys(env["targets"]["negotiatorId"]))
    else:
        assert r.status_code == 422
        assert field in [e["field"] for e in r.json()["errors"]]
