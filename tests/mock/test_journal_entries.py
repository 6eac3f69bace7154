"""POST /journalEntries and GET /journalEntries on the running mock: rules, scopes, paging."""

from __future__ import annotations

from typing import Any

import pytest

from tapi_agent.mock.server import MockServer
from tests.mock.conftest import Api


def post(api: Api, body: Any, token: str | None = None) -> Any:
    return api.http.post("/journalEntries", json=body, headers=api.auth(token))


def test_an_entry_is_created_with_a_location_that_serves_it(api: Api) -> None:
    r = post(api, {"associatedType": "contact", "associatedId": "OXF20000001",
                   "description": "Incoming call from 07123 456789"})
    assert r.status_code == 201 and r.content == b""
    location = r.headers["location"]
    assert location.startswith("/journalEntries/")
    entry = api.get(location).json()
    assert entry["description"] == "Incoming call from 07123 456789"
    assert entry["typeId"] == "MI"  # Reapit's documented default
    assert "negotiatorId" not in entry  # a provider token is nobody in particular
    assert api.get("/journalEntries/nope").status_code == 404


def test_a_negotiators_entry_records_that_negotiator(mock_server: MockServer, api: Api) -> None:
    token = mock_server.mint_token("LKM")
    assert post(api, {"associatedType": "contact", "associatedId": "CAM20000003",
                      "description": "Left a voicemail"}, token).status_code == 201
    entry = api.get("/journalEntries", params={"associatedId": "CAM20000003"}).json()
    assert entry["_embedded"][0]["negotiatorId"] == "LKM"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"associatedType": "contact", "associatedId": "OXF20000001"}, "description",
     "is required"),
    ({"description": "x"}, "associatedId", "is required when propertyId is not given"),
    ({"description": "x", "associatedId": "OXF20000001"}, "associatedType",
     "is required when associatedId is given"),
    ({"description": "x", "associatedType": "contact", "propertyId": "P1"}, "associatedId",
     "is required when associatedType is given"),
    ({"description": "x", "associatedType": "buyer", "associatedId": "A1"}, "associatedType",
     "must be one of: applicant, contact, company, enquiry, landlord, tenancy, worksOrder"),
    ({"description": "x", "associatedType": "contact", "associatedId": "NOPE"}, "associatedId",
     "no contact has the id 'NOPE'"),
    ({"description": "x", "associatedType": "worksOrder", "associatedId": "W1"}, "typeId",
     "must be WO for a worksOrder entry"),
    ({"description": "x", "propertyId": "P1", "negotiatorId": "ZZZ"}, "negotiatorId",
     "no negotiator has the id 'ZZZ'"),
    ({"description": "", "propertyId": "P1"}, "description", "must not be empty"),
    ({"description": "x" * 4001, "propertyId": "P1"}, "description",
     "is too long (at most 4000)"),
])
def test_a_body_that_fails_the_model_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, message: str
) -> None:
    r = post(api, body)
    assert r.status_code == 422
    data = r.json()
    assert data["statusCode"] == 422 and data["dateTime"].endswith("Z")
    assert {"field": field, "message": message} in data["errors"]
    assert api.get("/journalEntries").json()["totalCount"] == 0  # nothing was kept


def test_a_property_alone_or_a_works_order_with_wo_is_enough(api: Api) -> None:
    assert post(api, {"description": "Valuation booked", "propertyId": "OXF100001"}
                ).status_code == 201
    assert post(api, {"description": "Boiler fixed", "associatedType": "worksOrder",
                      "associatedId": "W1", "typeId": "WO"}).status_code == 201


def test_json_that_is_not_an_object_is_422_and_not_json_is_400(api: Api) -> None:
    r = post(api, ["description"])
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "body", "message": "must be a JSON object"}]
    r = api.http.post("/journalEntries", content=b"{",
                      headers={**api.auth(), "Content-Type": "application/json"})
    assert r.status_code == 400 and "errors" not in r.json()
    r = api.http.post("/journalEntries", content=b"description=x",
                      headers={**api.auth(), "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_scopes_are_required(mock_server: MockServer, api: Api) -> None:
    reader = mock_server.mint_token("JAS", scopes=["journalEntries.read"])
    body = {"description": "x", "propertyId": "P1"}
    assert post(api, body, reader).status_code == 403
    assert api.get("/journalEntries", token=reader).status_code == 200
    writer = mock_server.mint_token("JAS", scopes=["journalEntries.write"])
    assert post(api, body, writer).status_code == 201
    assert api.get("/journalEntries", token=writer).status_code == 403
    assert api.http.get("/journalEntries").status_code == 401


def test_the_list_filters_sorts_and_pages_like_the_platform_api(api: Api) -> None:
    for i in range(5):
        assert post(api, {"associatedType": "contact", "associatedId": "OXF20000001",
                          "description": f"call {i}"}).status_code == 201
    assert post(api, {"associatedType": "contact", "associatedId": "OXF20000002",
                      "description": "other"}).status_code == 201
    page1 = api.get("/journalEntries", params={"associatedId": "OXF20000001",
                                               "pageSize": 2}).json()
    assert [e["description"] for e in page1["_embedded"]] == ["call 0", "call 1"]
    assert (page1["pageNumber"], page1["pageSize"], page1["pageCount"],
            page1["totalPageCount"], page1["totalCount"]) == (1, 2, 2, 3, 5)
    nxt = page1["_links"]["next"]["href"]
    assert "associatedId=OXF20000001" in nxt
    page2 = api.get(nxt).json()
    assert [e["description"] for e in page2["_embedded"]] == ["call 2", "call 3"]
    newest = api.get("/journalEntries", params={"sortBy": "-created", "pageSize": 1}).json()
    assert newest["_embedded"][0]["description"] == "other"
    both = api.get("/journalEntries", params=[("associatedId", "OXF20000001"),
                                              ("associatedId", "OXF20000002")]).json()
    assert both["totalCount"] == 6
    assert api.get("/journalEntries", params={"sortBy": "name"}).status_code == 400
    assert api.get("/journalEntries", params={"createdFrom": "yesterday"}).status_code == 400
