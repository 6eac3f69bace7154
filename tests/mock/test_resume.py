"""Stream resume, ack, replay limits, in-band auth and token expiry on the running backend."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tapi_agent.mock.server import MockServer
from tests.helpers import wait_until
from tests.mock.conftest import Api, envelope, open_stream, recv, recv_type


def _send(ws: ClientConnection, **frame: object) -> None:
    ws.send(json.dumps(frame))


def _acked(api: Api, negotiator: str, seq: int) -> bool:
    entries = api.get("/_mock/journal").json()["entries"]
    return any(e["kind"] == "ack" and e["negotiatorId"] == negotiator and e["seq"] == seq
               for e in entries)


def _close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    return info.value.rcvd.code if info.value.rcvd else None


def test_hunt_group_reaches_the_three_targets_in_order_and_resume_replays_missed_events(
    mock_server: MockServer, api: Api
) -> None:
    jas, rpt, tst = (open_stream(mock_server, n) for n in ("JAS", "RPT", "TST"))
    lkm = open_stream(mock_server, "LKM")  # not in the hunt group
    with jas, rpt, tst, lkm:
        epoch = recv_type(jas, "welcome")["epoch"]
        for ws in (rpt, tst, lkm):
            recv_type(ws, "welcome")
        r = api.http.post("/_mock/scenarios/hunt-group",
                          json={"negotiators": ["JAS", "RPT", "TST"], "answeredBy": "RPT"})
        assert r.status_code == 200 and len(r.json()["notifications"]) == 3
        for ws in (jas, rpt, tst):
            frames = [recv_type(ws, "notification") for _ in range(3)]
            assert [f["seq"] for f in frames] == [1, 2, 3]
            assert [f["notification"]["subType"] for f in frames] == [
                "incomingCall", "answeredCall", "endedCall"]
            assert frames[1]["notification"]["payload"]["answeredById"] == "RPT"
            assert all(f["notification"]["payload"]["huntGroup"] is True for f in frames)
            for f in frames:
                _send(ws, type="ack", seq=f["seq"])
        # LKM was not in the hunt group: the first event it sees is one sent to it afterwards.
        api.post(envelope(id="for-lkm", to=["LKM"]))
        assert recv_type(lkm, "notification")["notification"]["payload"]["id"] == "for-lkm"
        wait_until(lambda: _acked(api, "TST", 3), what="TST's acks")

        tst.close()
        # TST misses two events while away; the others keep receiving.
        assert api.post(envelope(id="away-1", to=["TST", "JAS"])).status_code == 202
        assert api.post(envelope(sub_type="endedCall", id="away-1", to=["TST"])).status_code == 202
        assert recv_type(jas, "notification")["seq"] == 4

        with open_stream(mock_server, "TST") as back:
            assert recv_type(back, "welcome")["epoch"] == epoch
            _send(back, type="resume", epoch=epoch, lastSeq=3)
            replay = [recv_type(back, "notification"), recv_type(back, "notification")]
            assert [(f["seq"], f["notification"]["subType"]) for f in replay] == [
                (4, "incomingCall"), (5, "endedCall")]
            assert recv_type(back, "replayed") == {"type": "replayed", "count": 2,
                                                   "complete": True}
            for f in replay:
                _send(back, type="ack", seq=f["seq"])
            wait_until(lambda: _acked(api, "TST", 5), what="acks of the replay")

        # Acknowledged events are never replayed again.
        with open_stream(mock_server, "TST") as again:
            recv_type(again, "welcome")
            _send(again, type="resume", epoch=epoch, lastSeq=0)
            assert recv_type(again, "replayed") == {"type": "replayed", "count": 0,
                                                    "complete": True}


def test_unacknowledged_event_is_replayed_with_its_original_sent_at(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        epoch = recv_type(ws, "welcome")["epoch"]
        api.post(envelope(id="unacked"))
        first = recv_type(ws, "notification")
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        _send(ws, type="resume", epoch=epoch, lastSeq=0)
        again = recv_type(ws, "notification")
        assert again == first  # same seq, same sentAt, same notification
        assert recv_type(ws, "replayed")["count"] == 1


def test_replay_is_incomplete_when_retention_dropped_events() -> None:
    with MockServer(retention_max=2) as server:
        api = Api(server)
        epoch = server.epoch
        for i in range(3):
            api.post(envelope(id=f"c{i}"))
        with open_stream(server, "JAS") as ws:
            recv_type(ws, "welcome")
            _send(ws, type="resume", epoch=epoch, lastSeq=0)
            seqs = [recv_type(ws, "notification")["seq"] for _ in range(2)]
            assert seqs == [2, 3]
            assert recv_type(ws, "replayed") == {"type": "replayed", "count": 2,
                                                 "complete": False}
        api.http.close()


def test_resume_with_an_unknown_epoch_is_incomplete(mock_server: MockServer, api: Api) -> None:
    api.post(envelope(id="new-epoch-event"))
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        _send(ws, type="resume", epoch="an-old-run", lastSeq=41)
        assert recv_type(ws, "notification")["notification"]["payload"]["id"] == "new-epoch-event"
        assert recv_type(ws, "replayed") == {"type": "replayed", "count": 1, "complete": False}


def test_bad_client_frames_are_ignored_and_the_connection_carries_on(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        ws.send("not json")
        ws.send(b"\x00\x01binary")
        _send(ws, type="resume", epoch=5, lastSeq="x")
        _send(ws, type="launch-missiles")
        ws.send(json.dumps([1, 2]))
        api.post(envelope(id="still-alive"))
        assert recv_type(ws, "notification")["notification"]["payload"]["id"] == "still-alive"
    entries = api.get("/_mock/journal").json()["entries"]
    assert sum(e["kind"] == "bad_frame" for e in entries) >= 3


def test_token_expiring_while_connected_closes_with_4001() -> None:
    with MockServer(heartbeat_ms=200) as server, \
            open_stream(server, "JAS", token=server.mint_token("JAS", ttl=2)) as ws:
        recv_type(ws, "welcome")
        assert _close_code(ws) == 4001


def test_auth_frame_renews_the_token_and_keeps_the_connection_open() -> None:
    with MockServer(heartbeat_ms=200) as server:
        # `exp` is whole seconds, so a 3 s token lives 2-3 s: time enough to send `auth`.
        short = server.mint_token("JAS", ttl=3)
        old_expiry = time.time() + 3
        with open_stream(server, "JAS", token=short) as ws:
            recv_type(ws, "welcome")
            _send(ws, type="auth", accessToken=server.mint_token("JAS", ttl=600))
            # Keep reading past the old expiry: only heartbeats, no close.
            while time.time() < old_expiry + 1.0:
                assert recv(ws, timeout=5)["type"] == "heartbeat"


def test_auth_frame_for_another_negotiator_closes_with_4003(mock_server: MockServer) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        _send(ws, type="auth", accessToken=mock_server.mint_token("RPT"))
        assert _close_code(ws) == 4003


def test_auth_frame_with_an_invalid_token_closes_with_4001(mock_server: MockServer) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        _send(ws, type="auth", accessToken="forged")
        assert _close_code(ws) == 4001
