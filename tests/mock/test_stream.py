"""The websocket stream against the running mock backend, with raw `websockets` clients."""

from __future__ import annotations

from datetime import datetime

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tapi_agent.mock.server import MockServer
from tapi_agent.protocol import parse_server_frame
from tests.helpers import wait_until
from tests.mock.conftest import Api, envelope, open_stream, recv, recv_type


def _connections(api: Api) -> list[dict[str, object]]:
    conns: list[dict[str, object]] = api.get("/_mock/connections").json()["connections"]
    return conns


def test_welcome_frame_names_connection_negotiator_epoch_and_heartbeat(
    mock_server: MockServer,
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        frame = parse_server_frame(ws.recv(timeout=5))
    assert frame.type == "welcome"
    assert frame.negotiatorId == "JAS"
    assert frame.epoch == mock_server.epoch
    assert frame.heartbeatMs == 2000
    assert frame.connectionId


@pytest.mark.parametrize("token", [None, "garbage", "expired"])
def test_bad_token_gets_http_401_before_the_upgrade(
    mock_server: MockServer, token: str | None
) -> None:
    headers = {}
    if token == "expired":
        headers["Authorization"] = "Bearer " + mock_server.mint_token("JAS", ttl=-5)
    elif token:
        headers["Authorization"] = "Bearer " + token
    from websockets.sync.client import connect

    url = mock_server.base_url.replace("http", "ws") + "/notifications/stream?product=AgencyCloud"
    with pytest.raises(InvalidStatus) as info:
        connect(url, additional_headers=headers, open_timeout=5)
    assert info.value.response.status_code == 401
    assert info.value.response.headers["x-amzn-RequestId"]


def test_notification_fans_out_to_each_target_with_its_own_seq(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as jas, open_stream(mock_server, "RPT") as rpt, \
            open_stream(mock_server, "TST") as tst:
        for ws in (jas, rpt, tst):
            recv_type(ws, "welcome")
        assert api.post(envelope(id="only-jas", to=["JAS"])).status_code == 202
        assert api.post(envelope(id="both", to=["JAS", "RPT"])).status_code == 202
        first, second = recv_type(jas, "notification"), recv_type(jas, "notification")
        assert (first["seq"], first["notification"]["payload"]["id"]) == (1, "only-jas")
        assert (second["seq"], second["notification"]["payload"]["id"]) == (2, "both")
        r = recv_type(rpt, "notification")
        assert (r["seq"], r["notification"]["payload"]["id"]) == (1, "both")
        # The same acceptance time goes to every recipient.
        assert r["sentAt"] == second["sentAt"] and r["sentAt"].endswith("Z")
        datetime.fromisoformat(r["sentAt"])
        # TST was not targeted: the first event it gets is the one sent to it afterwards.
        api.post(envelope(id="for-tst", to=["TST"]))
        t = recv_type(tst, "notification")
        assert (t["seq"], t["notification"]["payload"]["id"]) == (1, "for-tst")


def test_every_connection_of_a_negotiator_gets_the_event(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as a, open_stream(mock_server, "JAS") as b:
        ids = {recv_type(a, "welcome")["connectionId"], recv_type(b, "welcome")["connectionId"]}
        assert len(ids) == 2
        api.post(envelope(id="x"))
        fa, fb = recv_type(a, "notification"), recv_type(b, "notification")
        assert fa == fb and fa["seq"] == 1


def test_product_filter_is_case_insensitive_and_excludes_other_products(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS", product="agencycloud") as ac, \
            open_stream(mock_server, "JAS", product="Console") as other:
        recv_type(ac, "welcome")
        recv_type(other, "welcome")
        api.post(envelope(id="ac-only", products=["AGENCYCLOUD"]))
        api.post(envelope(id="console-too", products=["Console"]))
        assert recv_type(ac, "notification")["notification"]["payload"]["id"] == "ac-only"
        got = recv_type(other, "notification")
        assert got["notification"]["payload"]["id"] == "console-too"
        assert got["seq"] == 2  # seq is per negotiator, not per product


def test_heartbeat_is_sent_when_nothing_else_was() -> None:
    with MockServer(heartbeat_ms=100) as server, open_stream(server, "JAS") as ws:
        assert recv(ws)["heartbeatMs"] == 100
        assert recv(ws, timeout=5) == {"type": "heartbeat"}
        assert recv(ws, timeout=5) == {"type": "heartbeat"}


def test_notification_frame_round_trips_through_the_protocol_parser(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        api.post(envelope(sub_type="answeredCall", id="c9", answeredById="RPT", huntGroup=True))
        raw = ws.recv(timeout=5)
        while '"heartbeat"' in raw:
            raw = ws.recv(timeout=5)
    frame = parse_server_frame(raw)
    assert frame.type == "notification"
    assert frame.notification.subType == "answeredCall"
    assert frame.notification.payload.answered_by == "RPT"


def test_stop_closes_sockets_with_going_away() -> None:
    server = MockServer()
    server.start()
    with open_stream(server, "JAS") as ws:
        recv_type(ws, "welcome")
        server.stop()
        server.stop()  # idempotent
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


def test_restart_closes_with_1012_and_serves_a_new_epoch_on_the_same_port(
    mock_server: MockServer, api: Api
) -> None:
    port, epoch = mock_server.port, mock_server.epoch
    token = mock_server.mint_token("JAS")
    with open_stream(mock_server, "JAS", token=token) as ws:
        recv_type(ws, "welcome")
        api.post(envelope())
        recv_type(ws, "notification")
        mock_server.restart()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    assert mock_server.port == port and mock_server.epoch != epoch
    # The signing key survives: the old token still opens the stream, and numbering restarts.
    with open_stream(mock_server, "JAS", token=token) as again:
        welcome = recv_type(again, "welcome")
        assert welcome["epoch"] == mock_server.epoch
        api.post(envelope(id="after-restart"))
        assert recv_type(again, "notification")["seq"] == 1


def test_connections_lists_live_sockets_and_forgets_closed_ones(
    mock_server: MockServer, api: Api
) -> None:
    with open_stream(mock_server, "LKM", product="AgencyCloud") as ws:
        cid = recv_type(ws, "welcome")["connectionId"]
        live = wait_until(lambda: _connections(api), what="a live connection")
        assert live[0]["connectionId"] == cid and live[0]["negotiatorId"] == "LKM"
    wait_until(lambda: not _connections(api), what="closed connection forgotten")


def test_inactive_negotiator_is_closed_with_4003(mock_server: MockServer) -> None:
    with open_stream(mock_server, "OLD") as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4003


def test_provider_token_is_not_a_negotiator_and_is_closed_with_4003(
    mock_server: MockServer,
) -> None:
    with open_stream(mock_server, "JAS", token=mock_server.provider_token()) as ws, \
            pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4003


def test_negotiator_on_the_forbidden_list_is_closed_with_4003(mock_server: MockServer) -> None:
    mock_server.state.forbidden.add("DWH")
    with open_stream(mock_server, "DWH") as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4003
