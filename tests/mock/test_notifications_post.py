"""POST /notifications against the running mock backend: acceptance, validation, errors."""

from __future__ import annotations

from tapi_agent.mock.server import MockServer
from tapi_agent.protocol import parse_server_frame
from tests.helpers import wait_until
from tests.mock.conftest import Api, envelope, open_stream, recv_type


def test_valid_notification_is_accepted_with_id_and_recipients(api: Api) -> None:
    r = api.post(envelope(to=["JAS", "RPT", "JAS"]))
    assert r.status_code == 202
    body = r.json()
    assert body["recipients"] == ["JAS", "RPT"]
    assert isinstance(body["id"], str) and body["id"]
    assert r.headers["x-amzn-RequestId"]


def test_every_response_carries_a_distinct_request_id(api: Api) -> None:
    ok = api.post(envelope())
    bad = api.post(envelope(huntGroup="yes"))
    unauth = api.http.post("/notifications", json=envelope())
    ids = {ok.headers["x-amzn-RequestId"], bad.headers["x-amzn-RequestId"],
           unauth.headers["x-amzn-RequestId"]}
    assert len(ids) == 3 and "" not in ids


def test_bad_hunt_group_is_422_naming_the_field_and_nothing_is_delivered(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        r = api.post(envelope(huntGroup="yes", id="bad-call"))
        assert r.status_code == 422
        body = r.json()
        assert body["statusCode"] == 422
        assert body["dateTime"].endswith("Z")
        assert body["description"]
        assert {"field": "payload.huntGroup", "message": "must be true or false"} in body["errors"]
        # The next frame is the following good event, numbered 1: the bad one never went out.
        assert api.post(envelope(id="good-call")).status_code == 202
        frame = recv_type(ws, "notification")
        assert frame["seq"] == 1
        assert frame["notification"]["payload"]["id"] == "good-call"


def test_validation_reports_every_problem_at_once(api: Api) -> None:
    env = envelope(subType_ignored=1)
    env["payload"].pop("callerId")
    env["targets"]["negotiatorId"] = []
    env["extra"] = True
    fields = {e["field"] for e in api.post(env).json()["errors"]}
    assert {"payload.callerId", "targets.negotiatorId", "extra",
            "payload.subType_ignored"} <= fields


def test_unknown_subtype_is_rejected_naming_subtype(api: Api) -> None:
    r = api.post(envelope(sub_type="voicemail"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["subType"]


def test_body_that_is_not_json_is_400_saying_so(api: Api) -> None:
    r = api.http.post("/notifications", content=b"{nope", headers={
        **api.auth(), "Content-Type": "application/json"})
    assert r.status_code == 400
    body = r.json()
    assert body["statusCode"] == 400 and "not valid JSON" in body["description"]
    assert "errors" not in body  # Reapit: `errors` is "only populated for 422"


def test_json_that_is_not_an_object_is_422_on_field_body(api: Api) -> None:
    r = api.post([1, 2, 3])
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body"


def test_missing_or_bad_token_is_401(mock_server: MockServer, api: Api) -> None:
    r = api.http.post("/notifications", json=envelope())
    assert r.status_code == 401
    assert r.json()["statusCode"] == 401
    assert "x-amzn-RequestId" in r.headers
    assert api.post(envelope(), token="not-a-jwt").status_code == 401
    expired = mock_server.state.provider_token(ttl=-10)
    assert api.post(envelope(), token=expired).status_code == 401


def test_token_without_write_scope_is_403(mock_server: MockServer, api: Api) -> None:
    r = api.post(envelope(), token=mock_server.mint_token("JAS"))
    assert r.status_code == 403
    assert "notifications.telephony.write" in r.json()["description"]


def test_body_over_64_kib_is_413(api: Api) -> None:
    env = envelope()
    env["payload"]["padding"] = "x" * (64 * 1024)
    r = api.post(env)
    assert r.status_code == 413
    assert r.json()["statusCode"] == 413


def test_other_content_type_is_415(api: Api) -> None:
    r = api.http.post("/notifications", content=b"type=telephony",
                      headers={**api.auth(), "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_missed_call_is_stored_as_deferred_and_not_pushed(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        assert api.post(envelope(sub_type="missedCall", id="missed-1",
                                 to=["JAS", "RPT"])).status_code == 202
        assert api.post(envelope(id="after-missed")).status_code == 202
        frame = parse_server_frame(ws.recv(timeout=5))
        while frame.type == "heartbeat":
            frame = parse_server_frame(ws.recv(timeout=5))
        assert frame.type == "notification"
        assert frame.notification.payload.id == "after-missed"
    for neg in ("JAS", "RPT"):
        items = api.get("/notifications/deferred", token=mock_server.mint_token(neg)).json()
        assert [i["notification"]["payload"]["id"] for i in items["_embedded"]] == ["missed-1"]


def test_accepted_post_appears_in_the_journal(mock_server: MockServer, api: Api) -> None:
    r = api.post(envelope())
    rid = r.headers["x-amzn-RequestId"]

    def journal_entry() -> dict[str, object] | None:
        entries = api.get("/_mock/journal").json()["entries"]
        return next((e for e in entries if e.get("requestId") == rid
                     and e["kind"] == "request"), None)

    entry = wait_until(journal_entry, what="request in journal")
    assert entry is not None
    assert entry["method"] == "POST" and entry["path"] == "/notifications"
    assert entry["status"] == 202
