"""The envelope and payload contract, checked against the platform page's own four examples."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path

import pytest

from tapi_agent.protocol import (
    AnsweredCall,
    EndedCall,
    IncomingCall,
    MissedCall,
    ValidationFailed,
    validate_envelope,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platform"
EXAMPLES = {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e.field for e in exc.value.errors]


@pytest.mark.parametrize(
    ("sub_type", "model"),
    [("incomingCall", IncomingCall), ("answeredCall", AnsweredCall),
     ("endedCall", EndedCall), ("missedCall", MissedCall)],
)
def test_platform_examples_are_accepted_with_their_payload_model(sub_type, model):
    env = validate_envelope(EXAMPLES[sub_type])
    assert isinstance(env.payload, model)
    assert env.targets.negotiatorId == ["JAS", "RPT"]
    assert env.payload.callerId == "07123 456789"
    # the platform's example time has no zone: it stays naive, never guessed
    assert env.payload.created == datetime(2023, 11, 1, 10, 28)


def test_answered_by_is_read_on_answered_and_ended_calls():
    assert validate_envelope(EXAMPLES["answeredCall"]).payload.answered_by == "TST"
    assert validate_envelope(EXAMPLES["incomingCall"]).payload.answered_by is None


def test_wire_form_round_trips():
    env = validate_envelope(EXAMPLES["endedCall"])
    assert validate_envelope(env.to_wire()) == env


def test_zoned_created_keeps_its_zone():
    body = copy.deepcopy(EXAMPLES["incomingCall"])
    body["payload"]["created"] = "2023-11-01T10:28:00Z"
    assert validate_envelope(body).payload.created.tzinfo is not None


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["payload"].update(huntGroup="yes"), "payload.huntGroup"),
        (lambda b: b["payload"].pop("callerId"), "payload.callerId"),
        (lambda b: b["payload"].update(callerId=7123456789), "payload.callerId"),
        (lambda b: b["payload"].update(created="yesterday"), "payload.created"),
        (lambda b: b["payload"].update(destinationId=""), "payload.destinationId"),
        (lambda b: b["payload"].update(colour="red"), "payload.colour"),
        (lambda b: b.update(type="email"), "type"),
        (lambda b: b.update(subType="droppedCall"), "subType"),
        (lambda b: b.pop("subType"), "subType"),
        (lambda b: b["targets"].update(negotiatorId=[]), "targets.negotiatorId"),
        (lambda b: b["targets"].update(negotiatorId=["JAS", 5]), "targets.negotiatorId.1"),
        (lambda b: b.update(products=[]), "products"),
        (lambda b: b.update(priority="high"), "priority"),
        (lambda b: b.update(payload="hello"), "payload"),
    ],
)
def test_each_corruption_is_rejected_naming_its_field(mutate, field):
    body = copy.deepcopy(EXAMPLES["incomingCall"])
    mutate(body)
    with pytest.raises(ValidationFailed) as exc:
        validate_envelope(body)
    assert fields_of(exc) == [field]


def test_answered_by_on_incoming_call_is_an_unknown_field():
    body = copy.deepcopy(EXAMPLES["incomingCall"])
    body["payload"]["answeredById"] = "TST"
    with pytest.raises(ValidationFailed) as exc:
        validate_envelope(body)
    assert fields_of(exc) == ["payload.answeredById"]


def test_lenient_parsing_ignores_unknown_fields_for_forward_compatibility():
    body = copy.deepcopy(EXAMPLES["incomingCall"])
    body["payload"]["recordingUrl"] = "https://example.com/r"
    body["trace"] = "abc"
    env = validate_envelope(body, strict=False)
    assert env.payload.callerId == "07123 456789"


def test_all_problems_are_reported_at_once():
    body = copy.deepcopy(EXAMPLES["incomingCall"])
    body["payload"]["huntGroup"] = "yes"
    body["targets"]["negotiatorId"] = []
    with pytest.raises(ValidationFailed) as exc:
        validate_envelope(body)
    assert sorted(fields_of(exc)) == ["payload.huntGroup", "targets.negotiatorId"]


def test_a_body_that_is_not_an_object_is_rejected():
    with pytest.raises(ValidationFailed) as exc:
        validate_envelope(["not", "an", "object"])
    assert fields_of(exc) == ["body"]


def test_product_match_is_case_insensitive():
    env = validate_envelope(EXAMPLES["incomingCall"])
    assert env.for_product("agencycloud")
    assert not env.for_product("PropertyPulse")
