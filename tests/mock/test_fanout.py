"""Hunt-group fan-out on the running backend: frames go straight to idle sockets, in order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tapi_agent.mock.server import MockServer
from tests.helpers import wait_until
from tests.mock.conftest import Api, envelope, open_stream, recv_type

CALLS = 30


def test_concurrent_hunt_group_posts_reach_every_socket_once_in_seq_order(
    mock_server: MockServer, api: Api
) -> None:
    targets = ["JAS", "RPT", "LKM"]
    with open_stream(mock_server, "JAS") as jas_a, open_stream(mock_server, "JAS") as jas_b, \
            open_stream(mock_server, "RPT") as rpt, open_stream(mock_server, "LKM") as lkm:
        sockets = {"jas-a": jas_a, "jas-b": jas_b, "rpt": rpt, "lkm": lkm}
        for ws in sockets.values():
            recv_type(ws, "welcome")
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(
                lambda i: api.post(envelope(id=f"hg-{i}", to=targets, huntGroup=True)).status_code,
                range(CALLS)))
        assert codes == [202] * CALLS
        frames = {name: [recv_type(ws, "notification") for _ in range(CALLS)]
                  for name, ws in sockets.items()}

    for name, got in frames.items():
        assert [f["seq"] for f in got] == list(range(1, CALLS + 1)), name
        assert sorted(f["notification"]["payload"]["id"] for f in got) == sorted(
            f"hg-{i}" for i in range(CALLS)), name
    # Every socket saw the calls in the same order (one numbering per negotiator).
    orders = {name: [f["notification"]["payload"]["id"] for f in got]
              for name, got in frames.items()}
    assert len({tuple(o) for o in orders.values()}) == 1

    def journal() -> list[dict[str, Any]] | None:
        entries: list[dict[str, Any]] = api.get("/_mock/journal").json()["entries"]
        deliveries = [e for e in entries if e["kind"] == "delivery"]
        return entries if len(deliveries) == CALLS * len(sockets) else None

    entries = wait_until(journal, what="every delivery journaled")
    assert entries is not None
    deliveries = [e for e in entries if e["kind"] == "delivery"]
    assert len({(e["connectionId"], e["seq"]) for e in deliveries}) == CALLS * len(sockets)
    # A notification's own entry comes before the entries of its deliveries.
    position = {e["notificationId"]: i for i, e in enumerate(entries)
                if e["kind"] == "notification"}
    assert all(position[e["notificationId"]] < i for i, e in enumerate(entries)
               if e["kind"] == "delivery")


def test_heartbeats_still_come_between_directly_sent_frames() -> None:
    with MockServer(heartbeat_ms=100) as server, open_stream(server, "JAS") as ws:
        api = Api(server)
        try:
            recv_type(ws, "welcome")
            assert api.post(envelope(id="direct", to=["JAS"])).status_code == 202
            assert recv_type(ws, "notification")["notification"]["payload"]["id"] == "direct"
            frame = recv_type(ws, "heartbeat", timeout=5)
            assert frame == {"type": "heartbeat"}
        finally:
            api.http.close()
