"""The mock's resources and validation against Reapit's published TypeScript models.

`tests/fixtures/reapit_models.json` keeps the top-level field names, optionality and kinds of
`NegotiatorModel`, `ContactModel`, `CreateJournalEntryModel`, `JournalEntryModel` and the
`JournalEntries` query, taken from `@reapit/foundations-ts-definitions` (its `source` names the
version, file and npm integrity). A field the mock serves that Reapit's model lacks, a `null`
where Reapit leaves a field out, a kind that differs, or a published required field the mock
does not require, fails here.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tapi_agent.mock.server import MockServer
from tests.mock.conftest import Api

FIXTURE = Path(__file__).parent.parent / "fixtures" / "reapit_models.json"
PUBLISHED = json.loads(FIXTURE.read_text(encoding="utf-8"))
MODELS: dict[str, dict[str, dict[str, Any]]] = PUBLISHED["models"]
KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,), "boolean": (bool,), "number": (int, float), "array": (list,),
    "object": (dict,),
}


def test_the_fixture_names_its_source() -> None:
    source = PUBLISHED["source"]
    assert source["package"] == "@reapit/foundations-ts-definitions"
    assert source["version"] and source["file"] and source["integrity"].startswith("sha512-")
    assert not MODELS["CreateJournalEntryModel"]["description"]["optional"]


def _conforms(item: dict[str, Any], model: str) -> None:
    fields = MODELS[model]
    unknown = set(item) - set(fields)
    assert not unknown, f"{model} has no field {sorted(unknown)}: {item}"
    for key, value in item.items():
        assert value is not None, f"{model}.{key} is null; Reapit leaves an absent field out"
        kind = fields[key]["type"]
        assert isinstance(value, KINDS[kind]), f"{model}.{key} should be {kind}: {value!r}"


def _all_pages(api: Api, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    number = 1
    while True:
        body = api.get(path, params={"pageSize": 2, "pageNumber": number}).json()
        items.extend(body["_embedded"])
        if "next" not in body["_links"]:
            return items
        number += 1


@pytest.mark.parametrize(("path", "model"), [("/negotiators", "NegotiatorModel"),
                                             ("/contacts", "ContactModel")])
def test_every_record_in_pages_and_alone_is_shaped_as_the_published_model(
    api: Api, path: str, model: str
) -> None:
    items = _all_pages(api, path)
    assert len(items) >= 4
    for item in items:
        _conforms(item, model)
        # What the issue asks of every record, in a page too.
        assert item["_links"]["self"]["href"] == f"{path}/{item['id']}"
        assert item["_eTag"].startswith('"') and item["_eTag"].endswith('"')
        for stamp in ("created", "modified"):
            assert datetime.fromisoformat(item[stamp]).tzinfo is not None
        alone = api.get(item["_links"]["self"]["href"])
        assert alone.status_code == 200
        assert alone.json() == item
        assert alone.headers["etag"] == item["_eTag"]


def test_a_contact_without_a_work_phone_has_no_work_phone_field(api: Api) -> None:
    emma = api.get("/contacts/OXF20000001").json()
    assert "workPhone" not in emma and emma["homePhone"] == "01865 123456"


def test_a_seed_with_nulls_is_served_without_them_and_the_etag_follows_the_content(
    tmp_path: Path,
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"contacts": [
        {"id": "C1", "forename": "Ann", "surname": "Lee", "homePhone": None,
         "mobilePhone": "07700 900001", "officeIds": ["OXF"]}]}))
    with MockServer(seed=seed) as server:
        api = Api(server)
        first = api.get("/contacts/C1").json()
        _conforms(first, "ContactModel")
        assert "homePhone" not in first
        assert api.get("/contacts/C1").json()["_eTag"] == first["_eTag"]  # stable
        server.state.seed.contacts[0]["surname"] = "Leigh"  # the record changes
        second = api.get("/contacts/C1").json()
        assert second["_eTag"] != first["_eTag"]
        assert second["created"] == first["created"]
        assert second["modified"] > first["modified"]
        api.http.close()


def _entry(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"associatedType": "contact", "associatedId": "OXF20000001",
                            "description": "Incoming call answered"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def _post_entry(api: Api, body: Any, token: str | None = None) -> Any:
    return api.http.post("/journalEntries", json=body, headers=api.auth(token))


@pytest.mark.parametrize("field", [f for f, spec in MODELS["CreateJournalEntryModel"].items()
                                   if not spec["optional"]])
def test_every_published_required_field_is_required(api: Api, field: str) -> None:
    body = _entry()
    body.pop(field, None)
    r = _post_entry(api, body)
    assert r.status_code == 422
    assert {"field": field, "message": "is required"} in r.json()["errors"]


def test_every_published_field_is_accepted_and_comes_back_in_the_journal(api: Api) -> None:
    values = {"typeId": "MI", "propertyId": "OXF100001", "associatedType": "contact",
              "associatedId": "OXF20000002", "description": "Called back about a viewing",
              "negotiatorId": "RPT"}
    assert set(values) == set(MODELS["CreateJournalEntryModel"])
    r = _post_entry(api, values)
    assert r.status_code == 201, r.text
    listed = api.get("/journalEntries", params={"associatedId": "OXF20000002"}).json()
    assert listed["totalCount"] == 1
    entry = listed["_embedded"][0]
    _conforms(entry, "JournalEntryModel")
    assert {k: entry[k] for k in values} == values
    assert entry["_links"]["self"]["href"] == r.headers["location"]


@pytest.mark.parametrize("field", list(MODELS["CreateJournalEntryModel"]))
def test_every_published_string_field_refuses_another_kind(api: Api, field: str) -> None:
    assert MODELS["CreateJournalEntryModel"][field]["type"] == "string"
    r = _post_entry(api, _entry(**{field: 7}))
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["errors"]]


def test_a_field_the_published_model_lacks_is_refused(api: Api) -> None:
    r = _post_entry(api, _entry(subject="not in CreateJournalEntryModel"))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "subject", "message": "is not a known field"}]


def test_the_journal_query_takes_the_published_parameters(
    mock_server: MockServer, api: Api
) -> None:
    published = set(MODELS["JournalEntries"])
    params = {p["name"] for p in mock_server.app.openapi()["paths"]["/journalEntries"]["get"][
        "parameters"]}
    assert params <= published, params - published
    assert published - params == {"embed"}  # related records: the mock has no properties
    r = api.get("/journalEntries", params={
        "associatedType": "contact", "associatedId": ["OXF20000001", "X"], "negotiatorId": "JAS",
        "propertyId": "P", "typeId": "MI", "createdFrom": "2020-01-01T00:00:00Z",
        "createdTo": "2100-01-01", "sortBy": "-created", "pageSize": 5, "pageNumber": 1})
    assert r.status_code == 200 and r.json()["totalCount"] == 0


def test_a_seed_contact_without_an_id_is_refused(tmp_path: Path) -> None:
    from tapi_agent.mock.seed import load_seed

    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"contacts": [{"forename": "Ann"}]}))
    with pytest.raises(ValueError, match="every contact needs a string 'id'"):
        load_seed(seed)
