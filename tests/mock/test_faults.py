"""Fault injection and scenarios on the running backend (the API the stream client tests use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tapi_agent.mock.server import MockServer
from tests.helpers import wait_until
from tests.mock.conftest import Api, envelope, open_stream, recv, recv_type


@pytest.fixture
def fast() -> Iterator[tuple[MockServer, Api]]:
    """A backend with a short heartbeat, so silence is noticed quickly."""
    with MockServer(heartbeat_ms=100) as server:
        api = Api(server)
        yield server, api
        api.http.close()


def _fault(api: Api, **body: object) -> dict[str, object]:
    r = api.http.post("/_mock/faults", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result


def _closed(ws: object) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)  # type: ignore[attr-defined]
    return info.value


def test_drop_aborts_without_a_close_frame_only_for_that_negotiator(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as jas, open_stream(mock_server, "RPT") as rpt:
        recv_type(jas, "welcome")
        recv_type(rpt, "welcome")
        assert _fault(api, kind="drop", negotiatorId="JAS")["applied"] == 1
        closed = _closed(jas)
        assert closed.rcvd is None  # no close frame: the client reports 1006
        api.post(envelope(id="rpt-still-here", to=["RPT"]))
        assert recv_type(rpt, "notification")["notification"]["payload"]["id"] == "rpt-still-here"


def test_close_fault_uses_the_given_code_and_reason(mock_server: MockServer, api: Api) -> None:
    with open_stream(mock_server, "JAS") as a, open_stream(mock_server, "RPT") as b:
        recv_type(a, "welcome")
        recv_type(b, "welcome")
        assert _fault(api, kind="close", code=4001, reason="token revoked")["applied"] == 2
        for ws in (a, b):
            closed = _closed(ws)
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "token revoked")


def test_silence_keeps_the_socket_open_but_sends_nothing_and_events_wait_for_replay(
    fast: tuple[MockServer, Api]
) -> None:
    server, api = fast
    with open_stream(server, "JAS") as ws:
        epoch = recv_type(ws, "welcome")["epoch"]
        assert recv(ws)["type"] == "heartbeat"
        assert _fault(api, kind="silence", negotiatorId="JAS")["applied"] == 1
        api.post(envelope(id="held-back"))
        # Heartbeats every 100 ms stop: ten heartbeat periods pass without a single frame.
        with pytest.raises(TimeoutError):
            while True:
                ws.recv(timeout=1.0)
        conns = api.get("/_mock/connections").json()["connections"]
        assert [c["silent"] for c in conns] == [True]
    with open_stream(server, "JAS") as again:
        recv_type(again, "welcome")
        again.send(f'{{"type":"resume","epoch":"{epoch}","lastSeq":0}}')
        assert recv_type(again, "notification")["notification"]["payload"]["id"] == "held-back"


def test_delay_holds_back_deliveries_of_the_delayed_negotiator_only(
    mock_server: MockServer, api: Api
) -> None:
    body = _fault(api, kind="delay", ms=60000, negotiatorId="JAS")
    assert body["faults"] == [{"kind": "delay", "ms": 60000, "negotiatorId": "JAS"}]
    with open_stream(mock_server, "JAS") as jas, open_stream(mock_server, "RPT") as rpt:
        recv_type(jas, "welcome")
        recv_type(rpt, "welcome")
        api.post(envelope(id="slow", to=["JAS", "RPT"]))
        assert recv_type(rpt, "notification")["notification"]["payload"]["id"] == "slow"
        with pytest.raises(TimeoutError):
            recv_type(jas, "notification", timeout=1.0)


def test_duplicate_sends_each_delivery_twice(mock_server: MockServer, api: Api) -> None:
    _fault(api, kind="duplicate", probability=1.0)
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        api.post(envelope(id="twice"))
        api.post(envelope(id="after"))
        seqs = [recv_type(ws, "notification")["seq"] for _ in range(4)]
        assert seqs == [1, 1, 2, 2]
    deliveries = [e for e in api.get("/_mock/journal").json()["entries"]
                  if e["kind"] == "delivery"]
    assert sum(bool(e.get("duplicate")) for e in deliveries) == 2


def test_reorder_shuffles_within_the_window(mock_server: MockServer, api: Api) -> None:
    _fault(api, kind="reorder", window=3)
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        api.http.post("/_mock/scenarios/burst", json={"count": 3})
        seqs = [recv_type(ws, "notification")["seq"] for _ in range(3)]
        assert sorted(seqs) == [1, 2, 3] and seqs != [1, 2, 3]


def test_reject_refuses_new_upgrades_until_faults_are_cleared(
    mock_server: MockServer, api: Api
) -> None:
    _fault(api, kind="reject", status=503)
    with pytest.raises(InvalidStatus) as info:
        open_stream(mock_server, "JAS")
    assert info.value.response.status_code == 503
    assert api.http.get("/_mock/faults").json()["faults"] == [{"kind": "reject", "status": 503}]
    cleared = api.http.delete("/_mock/faults").json()
    assert cleared == {"applied": 1, "faults": []}
    with open_stream(mock_server, "JAS") as ws:
        assert recv_type(ws, "welcome")["negotiatorId"] == "JAS"


@pytest.mark.parametrize("body", [{"kind": "explode"}, {"kind": "close", "code": 1006},
                                  {"kind": "close", "code": 2000},
                                  {"kind": "delay", "ms": -1}, {}])
def test_bad_fault_requests_are_422(api: Api, body: dict[str, object]) -> None:
    r = api.http.post("/_mock/faults", json=body)
    assert r.status_code == 422
    assert r.json()["statusCode"] == 422 and r.json()["errors"]


def test_answered_scenario_plays_incoming_answered_ended(mock_server: MockServer,
                                                         api: Api) -> None:
    with open_stream(mock_server, "DWH") as ws:
        recv_type(ws, "welcome")
        r = api.http.post("/_mock/scenarios/answered", json={"negotiators": ["DWH"]}).json()
        frames = [recv_type(ws, "notification") for _ in range(3)]
        assert [f["notification"]["subType"] for f in frames] == [
            "incomingCall", "answeredCall", "endedCall"]
        assert {f["notification"]["payload"]["id"] for f in frames} == set(r["callIds"])
        assert frames[1]["notification"]["payload"]["answeredById"] == "DWH"


def test_missed_scenario_rings_ends_and_leaves_a_deferred_missed_call(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        r = api.http.post("/_mock/scenarios/missed").json()
        subtypes = [recv_type(ws, "notification")["notification"]["subType"] for _ in range(2)]
        assert subtypes == ["incomingCall", "endedCall"]
    items = api.get("/notifications/deferred", token=mock_server.mint_token("JAS")).json()
    assert [i["notification"]["payload"]["id"] for i in items["_embedded"]] == r["callIds"]


def test_burst_delivers_every_call_in_order(mock_server: MockServer, api: Api) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        r = api.http.post("/_mock/scenarios/burst", json={"count": 50})
        assert len(r.json()["notifications"]) == 50
        seqs = [recv_type(ws, "notification")["seq"] for _ in range(50)]
        assert seqs == list(range(1, 51))


def test_scenarios_go_through_the_notifications_path_and_the_journal(
    mock_server: MockServer, api: Api
) -> None:
    r = api.http.post("/_mock/scenarios/hunt-group")
    rid = r.headers["x-amzn-RequestId"]
    ids = r.json()["notifications"]

    def logged() -> list[str]:
        return [e["notificationId"] for e in api.get("/_mock/journal").json()["entries"]
                if e["kind"] == "notification" and e["requestId"] == rid]

    assert wait_until(logged) == ids
    assert api.http.post("/_mock/scenarios/nope").status_code == 404


def test_journal_records_deliveries_with_connection_and_seq_and_can_be_cleared(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        cid = recv_type(ws, "welcome")["connectionId"]
        nid = api.post(envelope()).json()["id"]
        recv_type(ws, "notification")

        def delivery() -> dict[str, object] | None:
            return next((e for e in api.get("/_mock/journal").json()["entries"]
                         if e["kind"] == "delivery"), None)

        entry = wait_until(delivery)
        assert entry is not None
        assert (entry["connectionId"], entry["seq"], entry["notificationId"],
                entry["negotiatorId"]) == (cid, 1, nid, "JAS")
    assert api.http.delete("/_mock/journal").status_code == 204
    entries = api.get("/_mock/journal").json()["entries"]
    assert all(e["kind"] == "request" for e in entries) and len(entries) <= 2


def test_a_scenario_with_an_invalid_negotiator_posts_nothing(
    mock_server: MockServer, api: Api
) -> None:
    r = api.http.post("/_mock/scenarios/answered", json={"negotiators": ["JAS", "X" * 40]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "targets.negotiatorId.1"
    entries = api.get("/_mock/journal").json()["entries"]
    assert not [e for e in entries if e["kind"] == "notification"]


def test_a_raw_frame_can_be_pushed_to_one_connection(mock_server: MockServer, api: Api) -> None:
    with open_stream(mock_server, "JAS") as a, open_stream(mock_server, "JAS") as b:
        cid = recv_type(a, "welcome")["connectionId"]
        recv_type(b, "welcome")
        r = api.http.post(f"/_mock/connections/{cid}/frames", json={"text": "{not json"})
        assert r.status_code == 200
        assert a.recv(timeout=10) == "{not json"
        api.http.post(f"/_mock/connections/{cid}/frames", json={"frame": {"type": "mystery"}})
        assert recv(a) == {"type": "mystery"}
        # Only that socket: the other connection of the same negotiator gets the next real event.
        api.post(envelope(id="real"))
        assert recv_type(b, "notification")["notification"]["payload"]["id"] == "real"
    assert api.http.post("/_mock/connections/c-nope/frames",
                         json={"text": "x"}).status_code == 404
    assert api.http.post(f"/_mock/connections/{cid}/frames", json={}).status_code == 422
