"""GET /negotiators, /negotiators/{id} and /contacts on the running backend."""

from __future__ import annotations

import pytest

from tapi_agent.mock.directory import normalise_phone
from tapi_agent.mock.server import MockServer
from tests.mock.conftest import Api

PAGE_KEYS = {"_embedded", "pageNumber", "pageSize", "pageCount", "totalPageCount",
             "totalCount", "_links"}


def test_negotiators_page_has_the_platform_shape_and_defaults(api: Api) -> None:
    body = api.get("/negotiators").json()
    assert set(body) == PAGE_KEYS
    assert body["pageNumber"] == 1 and body["pageSize"] == 25
    assert body["totalCount"] == len(body["_embedded"]) == body["pageCount"] >= 5
    assert body["totalPageCount"] == 1
    assert set(body["_links"]) == {"self", "first", "last"}  # no next on the last page
    person = body["_embedded"][0]
    assert set(person) >= {"id", "name", "jobTitle", "officeId", "workPhone", "mobilePhone",
                           "email", "active"}
    assert len({n["officeId"] for n in body["_embedded"]}) >= 2


def test_negotiators_page_through_with_links(api: Api) -> None:
    first = api.get("/negotiators", params={"pageSize": 2}).json()
    assert first["pageCount"] == 2 and first["totalPageCount"] == 3
    assert first["_links"]["next"]["href"] == "/negotiators?pageNumber=2&pageSize=2"
    assert first["_links"]["last"]["href"] == "/negotiators?pageNumber=3&pageSize=2"
    seen = [n["id"] for n in first["_embedded"]]
    href = first["_links"]["next"]["href"]
    while True:
        page = api.get(href).json()
        seen += [n["id"] for n in page["_embedded"]]
        if "next" not in page["_links"]:
            break
        href = page["_links"]["next"]["href"]
    assert len(seen) == len(set(seen)) == first["totalCount"]
    beyond = api.get("/negotiators", params={"pageSize": 2, "pageNumber": 9}).json()
    assert beyond["_embedded"] == [] and beyond["pageCount"] == 0


@pytest.mark.parametrize(("params", "expected"), [
    ({"id": ["JAS", "LKM"]}, {"JAS", "LKM"}),
    ({"officeId": "CAM"}, {"LKM", "DWH", "OLD"}),
    ({"email": "RACHEL.PATEL@example.com"}, {"RPT"}),
    ({"name": "smith"}, {"JAS"}),
    ({"active": "false"}, {"OLD"}),
    ({"officeId": "CAM", "active": "true"}, {"LKM", "DWH"}),
])
def test_negotiator_filters(api: Api, params: dict[str, object], expected: set[str]) -> None:
    body = api.get("/negotiators", params=params).json()
    assert {n["id"] for n in body["_embedded"]} == expected
    assert body["totalCount"] == len(expected)


@pytest.mark.parametrize("size", [0, 101, "x"])
def test_page_size_out_of_range_is_400(api: Api, size: object) -> None:
    r = api.get("/negotiators", params={"pageSize": size})
    assert r.status_code == 400
    body = r.json()
    # A bad query is 400 naming the parameter in `description`; `errors` is only for 422.
    assert body["statusCode"] == 400 and "pageSize" in body["description"]
    assert "errors" not in body


def test_one_negotiator_and_404_with_the_error_shape(api: Api) -> None:
    assert api.get("/negotiators/TST").json()["name"] == "Tom Stevens"
    r = api.get("/negotiators/NOPE")
    assert r.status_code == 404
    body = r.json()
    assert body["statusCode"] == 404 and "NOPE" in body["description"]
    assert r.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("detail", ["07123456789", "07123 456789", "+447123456789",
                                    "+44 (0)7123 456789", "EMMA.thompson@example.org"])
def test_contacts_match_any_phone_format_or_email(api: Api, detail: str) -> None:
    body = api.get("/contacts", params={"contactDetail": detail}).json()
    assert [c["id"] for c in body["_embedded"]] == ["OXF20000001"]
    assert set(body) == PAGE_KEYS


def test_contacts_match_home_and_work_phones_and_shared_numbers(api: Api) -> None:
    work = api.get("/contacts", params={"contactDetail": "02079460321"}).json()
    assert [c["surname"] for c in work["_embedded"]] == ["Okafor"]
    shared = api.get("/contacts", params={"contactDetail": "+441223765432"}).json()
    assert {c["id"] for c in shared["_embedded"]} == {"CAM20000003", "CAM20000004"}
    none = api.get("/contacts", params={"contactDetail": "01632 960123"}).json()
    assert none["_embedded"] == [] and none["totalCount"] == 0


def test_directory_accepts_negotiator_tokens_and_needs_read_scopes(
    mock_server: MockServer, api: Api
) -> None:
    assert api.get("/negotiators", token=mock_server.mint_token("JAS")).status_code == 200
    assert api.get("/contacts", token=mock_server.mint_token("JAS")).status_code == 200
    no_scope = mock_server.mint_token("JAS", scopes=[])
    assert api.get("/negotiators", token=no_scope).status_code == 403
    assert api.get("/contacts", token=no_scope).status_code == 403
    assert api.http.get("/negotiators").status_code == 401
    assert api.http.get("/contacts").status_code == 401


def test_phone_normalisation() -> None:
    assert normalise_phone("07123 456789") == "+447123456789"
    assert normalise_phone("+44 7123 456789") == "+447123456789"
    assert normalise_phone("not a number") is None


def test_deferred_list_and_delete(mock_server: MockServer, api: Api) -> None:
    api.post({"type": "telephony", "subType": "missedCall", "products": ["AgencyCloud"],
              "targets": {"negotiatorId": ["JAS", "RPT"]},
              "payload": {"id": "m1", "created": "2023-11-01T10:28:00Z",
                          "callerId": "07123 456789", "destinationId": "01865 000100"}})
    jas, rpt = mock_server.mint_token("JAS"), mock_server.mint_token("RPT")
    items = api.get("/notifications/deferred", token=jas).json()["_embedded"]
    assert len(items) == 1
    item = items[0]
    assert set(item) == {"id", "created", "notification"}
    assert item["notification"]["subType"] == "missedCall"
    assert item["created"].endswith("Z")
    # RPT cannot delete JAS's item; JAS can, once.
    assert api.http.delete(f"/notifications/deferred/{item['id']}",
                           headers=api.auth(rpt)).status_code == 404
    assert api.http.delete(f"/notifications/deferred/{item['id']}",
                           headers=api.auth(jas)).status_code == 204
    assert api.http.delete(f"/notifications/deferred/{item['id']}",
                           headers=api.auth(jas)).status_code == 404
    assert api.get("/notifications/deferred", token=jas).json() == {"_embedded": []}
    assert len(api.get("/notifications/deferred", token=rpt).json()["_embedded"]) == 1


def test_deferred_needs_a_negotiator_token(api: Api) -> None:
    assert api.get("/notifications/deferred").status_code == 403  # the provider's token
    assert api.http.get("/notifications/deferred").status_code == 401
