"""ApiClient against the real mock backend: contacts, negotiators, deferred calls, 401 retry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from tapi_agent.core.missed import MissedCalls
from tapi_agent.mock.server import MockServer
from tapi_agent.net.api import ApiClient, ApiError, delete_seen
from tapi_agent.net.session import CallableTokenSource

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await factory()

    return asyncio.run(main())


def tokens_for(server: MockServer, negotiator: str) -> CallableTokenSource:
    async def mint() -> tuple[str, float]:
        return server.mint_token(negotiator), 1e12

    return CallableTokenSource(mint)


class StaleThenFresh:
    """A TokenSource whose first token the backend refuses; refresh gives a good one."""

    def __init__(self, server: MockServer, negotiator: str) -> None:
        self.server = server
        self.negotiator = negotiator
        self.token = "not-a-valid-token"
        self.refreshes = 0

    async def access_token(self) -> str:
        return self.token

    async def refresh(self) -> str:
        self.refreshes += 1
        self.token = self.server.mint_token(self.negotiator)
        return self.token

    def expires_at(self) -> float | None:
        return None


def post_missed(server: MockServer, to: str, caller: str, call_id: str) -> None:
    envelope: dict[str, Any] = {
        "type": "telephony", "subType": "missedCall", "products": ["AgencyCloud"],
        "targets": {"negotiatorId": [to]},
        "payload": {"id": call_id, "created": "2026-01-05T09:00:00Z", "callerId": caller,
                    "destinationId": "01865 000100"},
    }
    r = httpx.post(server.base_url + "/notifications", json=envelope,
                   headers={"Authorization": f"Bearer {server.provider_token()}"})
    assert r.status_code == 202, r.text


def test_find_contacts_matches_any_formatting_of_the_number(mock_server: MockServer) -> None:
    api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))
    found = run(lambda: api.find_contacts("+44 7123 456789"))
    assert [(c.id, c.name) for c in found] == [("OXF20000001", "Mrs Emma Thompson")]
    assert "07123 456789" in found[0].phones
    assert found[0].record_url == "agencycloud://contacts/OXF20000001"


def test_shared_landline_matches_two_contacts_and_unknown_matches_none(
    mock_server: MockServer,
) -> None:
    api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))

    async def both() -> tuple[list[Any], list[Any]]:
        found = await api.find_contacts("01223 765432"), await api.find_contacts("01632 960123")
        await api.aclose()
        return found

    shared, unknown = run(both)
    assert sorted(c.id for c in shared) == ["CAM20000003", "CAM20000004"]
    assert unknown == []


def test_negotiators_reads_every_page(mock_server: MockServer, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    import tapi_agent.net.api as api_module

    monkeypatch.setattr(api_module, "PAGE_SIZE", 2)  # six seeded negotiators: three pages
    api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))
    people = run(api.negotiators)
    assert set(people) == {"JAS", "RPT", "TST", "LKM", "DWH", "OLD"}
    assert people["RPT"].name == "Rachel Patel"
    assert people["LKM"].office_id == "CAM"
    assert people["OLD"].active is False


def test_refused_token_is_refreshed_once_and_the_request_retried(
    mock_server: MockServer,
) -> None:
    tokens = StaleThenFresh(mock_server, "JAS")
    api = ApiClient(mock_server.base_url, tokens)
    people = run(api.negotiators)
    assert "JAS" in people
    assert tokens.refreshes == 1


def test_error_answer_raises_api_error_with_the_backend_description(
    mock_server: MockServer,
) -> None:
    # a provider token has no negotiator: the deferred list is forbidden
    async def provider() -> tuple[str, float]:
        return mock_server.provider_token(), 1e12

    api = ApiClient(mock_server.base_url, CallableTokenSource(provider))
    with pytest.raises(ApiError) as err:
        run(api.deferred)
    assert err.value.status == 403
    assert "negotiator" in str(err.value)


def test_unreachable_backend_is_an_api_error(mock_server: MockServer) -> None:
    url = mock_server.base_url
    tokens = tokens_for(mock_server, "JAS")
    mock_server.stop()
    with pytest.raises(ApiError) as err:
        run(lambda: ApiClient(url, tokens).negotiators())
    assert err.value.status == 0


def test_missed_calls_posted_while_agent_was_down_are_fetched_and_deleted_only_when_seen(
    mock_server: MockServer,
) -> None:
    # the agent is not running: a provider reports two missed calls for JAS, one for RPT
    post_missed(mock_server, "JAS", "07123 456789", "m-1")
    post_missed(mock_server, "JAS", "07911 123456", "m-2")
    post_missed(mock_server, "RPT", "07700 900555", "m-3")

    async def agent() -> None:
        # the agent starts: it polls and lists JAS's two calls
        api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))
        missed = MissedCalls()
        new = missed.merge(await api.deferred())
        assert sorted(c.call_id or "" for c in new) == ["m-1", "m-2"]
        assert missed.unseen_count == 2
        assert {c.caller for c in new} == {"07123 456789", "07911 123456"}

        # polling again before the user looks: nothing new, nothing deleted on the backend
        assert missed.merge(await api.deferred()) == []
        assert len(await api.deferred()) == 2

        # the user marks them seen: only now are they deleted on the backend
        ids = missed.mark_all_seen()
        done = await delete_seen(api, ids)
        missed.confirm_deleted(done)
        assert sorted(done) == sorted(ids)
        assert await api.deferred() == []
        assert missed.unseen_count == 0
        await api.aclose()

        # RPT's call is untouched
        rpt = ApiClient(mock_server.base_url, tokens_for(mock_server, "RPT"))
        assert [d.notification.payload.id for d in await rpt.deferred()] == ["m-3"]
        await rpt.aclose()

    asyncio.run(agent())


def test_deleting_a_call_already_gone_counts_as_deleted(mock_server: MockServer) -> None:
    post_missed(mock_server, "JAS", "07123 456789", "m-1")

    async def agent() -> None:
        api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))
        (item,) = await api.deferred()
        await api.delete_deferred(item.id)
        await api.delete_deferred(item.id)  # a second device deleted it first: no error
        assert await api.deferred() == []
        await api.aclose()

    asyncio.run(agent())


def test_a_journal_entry_is_posted_and_read_back(
    mock_server: MockServer,
) -> None:
    api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))
    body = {"associatedType": "contact", "associatedId": "OXF20000001",
            "description": "Incoming call from 07123 456789, 1 min. Note: viewing Friday",
            "negotiatorId": "JAS"}

    async def go() -> str:
        try:
            return await api.post_journal_entry(body)
        finally:
            await api.aclose()

    location = run(go)
    assert location.startswith("/journalEntries/")
    listed = httpx.get(f"{mock_server.base_url}/journalEntries",
                       params={"associatedId": "OXF20000001"},
                       headers={"Authorization": f"Bearer {mock_server.mint_token('JAS')}"})
    [entry] = listed.json()["_embedded"]
    assert entry["description"] == body["description"] and entry["negotiatorId"] == "JAS"
    assert entry["associatedType"] == "contact"


def test_a_refused_journal_entry_is_an_api_error_naming_the_field(
    mock_server: MockServer,
) -> None:
    api = ApiClient(mock_server.base_url, tokens_for(mock_server, "JAS"))

    async def go() -> None:
        try:
            await api.post_journal_entry({"associatedType": "contact", "associatedId": "NOPE",
                                          "description": "x"})
        finally:
            await api.aclose()

    with pytest.raises(ApiError) as err:
        run(go)
    assert err.value.status == 422
    assert "associatedId: no contact has the id 'NOPE'" in err.value.description
