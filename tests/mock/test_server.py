"""MockServer as an embeddable object: independence, seed files, tokens, JWKS, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jwt

from tapi_agent.mock.seed import DEMO_CALLS, LINE_NAMES, default_seed
from tapi_agent.mock.server import MockServer
from tests.mock.conftest import Api, envelope, open_stream, recv_type


def test_two_servers_in_one_process_share_nothing() -> None:
    with MockServer() as a, MockServer() as b:
        assert a.port != b.port and a.epoch != b.epoch
        token_a = a.mint_token("JAS")
        r = httpx.get(b.base_url + "/negotiators", headers={"Authorization": f"Bearer {token_a}"})
        assert r.status_code == 401  # different signing keys
        Api(a).post(envelope(id="only-on-a"))
        with open_stream(b, "JAS") as ws:
            epoch = recv_type(ws, "welcome")["epoch"]
            ws.send(json.dumps({"type": "resume", "epoch": epoch, "lastSeq": 0}))
            assert recv_type(ws, "replayed")["count"] == 0


def test_mint_token_and_post_mock_tokens_give_working_negotiator_tokens(
    mock_server: MockServer, api: Api
) -> None:
    r = api.http.post("/_mock/tokens", json={"negotiatorId": "RPT", "ttl": 60})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["custom:reapit:userCode"] == "RPT"
    assert claims["exp"] - claims["iat"] == 60
    assert api.http.post("/_mock/tokens", json={"negotiatorId": "NOPE"}).status_code == 404
    assert api.http.post("/_mock/tokens", json={}).status_code == 422
    scoped = mock_server.mint_token("JAS", scopes=["notifications.telephony.write"])
    assert api.post(envelope(), token=scoped).status_code == 202


def test_tokens_verify_against_the_published_jwks(mock_server: MockServer) -> None:
    jwks = httpx.get(mock_server.base_url + "/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(mock_server.provider_token(), key.key, algorithms=["RS256"],
                        audience="demo-provider", issuer=mock_server.base_url)
    assert set(claims["scope"].split()) == {"notifications.telephony.write",
                                            "negotiators.read", "contacts.read",
                                            "journalEntries.read", "journalEntries.write"}


def test_seed_file_replaces_the_demo_directory(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"negotiators": [
        {"id": "ABC", "name": "Alex Brown", "officeId": "LON", "email": "a@example.com"}]}))
    with MockServer(seed=seed) as server:
        api = Api(server)
        body = api.get("/negotiators").json()
        assert [n["id"] for n in body["_embedded"]] == ["ABC"]
        assert body["_embedded"][0]["active"] is True
        assert api.get("/contacts", params={"contactDetail": "07123 456789"}).json()[
            "totalCount"] == 1  # contacts kept from the built-in seed
        api.http.close()


def test_demo_data_has_five_negotiators_in_two_offices_and_matching_callers() -> None:
    seed = default_seed()
    active = [n for n in seed.negotiators if n["active"]]
    assert len(active) >= 5 and len({n["officeId"] for n in active}) >= 2
    assert {"JAS", "RPT", "TST", "LKM", "DWH"} <= {n["id"] for n in active}
    phones = {c.get(k) for c in seed.contacts for k in ("homePhone", "workPhone", "mobilePhone")}
    assert "07123 456789" in phones
    assert sum(call.caller in phones for call in DEMO_CALLS) >= 3
    assert LINE_NAMES["01865 000100"] == "Sales line"
    assert seed.client("demo-provider") is not None and seed.client("tapi-agent") is not None


def test_journal_never_keeps_credentials_from_query_strings(
    mock_server: MockServer, api: Api
) -> None:
    api.http.get("/oidc/logout", params={"refresh_token": "sekrit-refresh", "state": "s1"})
    text = json.dumps(api.get("/_mock/journal").json())
    assert "sekrit-refresh" not in text
    assert "refresh_token=%2A%2A%2A&state=s1" in text


def test_docs_and_openapi_are_served(mock_server: MockServer) -> None:
    assert httpx.get(mock_server.base_url + "/docs").status_code == 200
    spec = httpx.get(mock_server.base_url + "/openapi.json").json()
    assert spec["info"]["title"] == "tapi-agent-mock"
