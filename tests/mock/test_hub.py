"""The hub's sender, without sockets: what one turn of a connection's sender takes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from starlette.websockets import WebSocket, WebSocketState

from tapi_agent.mock.hub import Connection, Fault, Hub
from tapi_agent.protocol import Envelope, NotificationFrame, dump_frame, validate_envelope


def _hub() -> Hub:
    return Hub(heartbeat_ms=60_000, retention_s=300, retention_max=1000, journal=lambda e: None)


def _conn(hub: Hub, negotiator_id: str = "JAS") -> Connection:
    # The sender is never started here, so the websocket is never touched.
    return Connection(hub, cast(WebSocket, object()), negotiator_id, "AgencyCloud", 0.0)


def test_sender_takes_every_queued_frame_in_one_batch_in_order() -> None:
    async def scenario() -> list[Any] | None:
        conn = _conn(_hub())
        for i in range(5):
            conn.push(f"frame-{i}")
        batch = await conn._next_batch(60.0)
        assert conn.queue.empty()
        return batch

    batch = asyncio.run(scenario())
    assert batch is not None and [text for text, _ in batch] == [f"frame-{i}" for i in range(5)]


def test_sender_with_nothing_queued_waits_for_the_heartbeat() -> None:
    async def scenario() -> list[Any] | None:
        return await _conn(_hub())._next_batch(0.01)

    assert asyncio.run(scenario()) is None


def test_reorder_fills_its_window_from_a_backlog_without_waiting() -> None:
    """Under a burst of POSTs a sender that waits a loop turn per frame falls behind by
    thousands of frames (issue 14's soak: ~30 frames a second against ~1,000 POSTs a second,
    then all of them at once); frames already queued fill the window at once."""
    hub = _hub()
    hub.faults.append(Fault("reorder", None, {"window": 3}))

    async def scenario() -> tuple[list[str], list[str]]:
        conn = _conn(hub)
        for i in range(5):
            conn.push(f"frame-{i}")
        turn = conn._next_batch(60.0)
        try:
            turn.send(None)
        except StopIteration as done:
            return [text for text, _ in done.value], _queued(conn)
        turn.close()
        raise AssertionError("the sender waited although a full window was queued")

    batch, left = asyncio.run(scenario())
    assert sorted(batch) == ["frame-0", "frame-1", "frame-2"] and batch != sorted(batch)
    assert left == ["frame-3", "frame-4"]


def _envelope(to: list[str], call_id: str = "call-1", products: list[str] | None = None
              ) -> Envelope:
    return validate_envelope({
        "type": "telephony", "subType": "incomingCall", "products": products or ["AgencyCloud"],
        "targets": {"negotiatorId": to},
        "payload": {"id": call_id, "created": "2023-11-01T10:28:00", "callerId": "07123 456789",
                    "destinationId": "01865 000100", "huntGroup": True},
    })


def _queued(conn: Connection) -> list[str]:
    texts = []
    while not conn.queue.empty():
        texts.append(conn.queue.get_nowait()[0])
    return texts


def test_hunt_group_frames_differ_only_in_each_negotiators_seq() -> None:
    hub = _hub()
    sent_at = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    earlier = _envelope(["JAS"], call_id="earlier")
    hub.deliver("JAS", earlier, "n-0", sent_at)  # JAS is one ahead in numbering
    group = _envelope(["JAS", "RPT", "LKM"])
    texts = {neg: hub.deliver(neg, group, "n-1", sent_at).text for neg in ("JAS", "RPT", "LKM")}
    for neg, seq in (("JAS", 2), ("RPT", 1), ("LKM", 1)):
        expected = dump_frame(NotificationFrame(seq=seq, sentAt=sent_at, notification=group))
        assert texts[neg] == expected
    # The next notification is serialised afresh, not from the previous one's text.
    later = _envelope(["RPT"], call_id="later")
    assert hub.deliver("RPT", later, "n-2", sent_at).text == dump_frame(
        NotificationFrame(seq=2, sentAt=sent_at, notification=later))


def test_delivery_reaches_only_the_recipients_live_connections_for_the_product() -> None:
    async def scenario() -> dict[str, list[str]]:
        hub = _hub()
        conns = {
            "jas-1": _conn(hub, "JAS"), "jas-2": _conn(hub, "JAS"), "rpt": _conn(hub, "RPT"),
            "gone": _conn(hub, "JAS"),
        }
        other_product = Connection(hub, cast(WebSocket, object()), "JAS", "Marketplace", 0.0)
        conns["other-product"] = other_product
        for conn in conns.values():
            hub.add(conn)
        hub.remove(conns["gone"])
        # No senders: the queues are read here instead.
        senders = [conn._sender for conn in conns.values() if conn._sender is not None]
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        hub.deliver("JAS", _envelope(["JAS"]), "n-1", datetime.now(UTC))
        return {name: _queued(conn) for name, conn in conns.items()}

    queued = asyncio.run(scenario())
    assert [len(queued[n]) for n in ("jas-1", "jas-2", "rpt", "gone", "other-product")] == [
        1, 1, 0, 0, 0]


class RecordingSocket:
    """A websocket stand-in: `send_text` records the text, waiting while not `writable`."""

    application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.writable = asyncio.Event()
        self.writable.set()

    async def send_text(self, text: str) -> None:
        await self.writable.wait()
        self.sent.append(text)


async def _until(condition: Callable[[], bool], what: str, turns: int = 10_000) -> None:
    """Let the loop run (no wall-clock wait) until `condition` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def _live(hub: Hub, negotiator_id: str = "JAS") -> tuple[Connection, RecordingSocket]:
    sock = RecordingSocket()
    conn = Connection(hub, cast(WebSocket, sock), negotiator_id, "AgencyCloud", 0.0)
    hub.add(conn)
    return conn, sock


def _seqs(texts: list[str]) -> list[int]:
    return [json.loads(t)["seq"] for t in texts]


def test_a_frame_for_an_idle_sender_is_written_before_deliver_returns_and_journaled_after(
) -> None:
    async def scenario() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        journal: list[dict[str, Any]] = []
        hub = Hub(heartbeat_ms=60_000, retention_s=300, retention_max=1000,
                  journal=journal.append)
        conns = [_live(hub, neg) for neg in ("JAS", "RPT")]
        await _until(lambda: all(c._wakeup is not None for c, _ in conns), "senders idle")
        group = _envelope(["JAS", "RPT"])
        for neg in ("JAS", "RPT"):
            hub.deliver(neg, group, "n-1", datetime.now(UTC))
        # No await since: the frames are on the sockets already, the journal follows.
        written = [text for _, sock in conns for text in sock.sent]
        before = list(journal)
        await _until(lambda: len(journal) == 2, "deliveries journaled")
        return written, before, journal

    written, before, journal = asyncio.run(scenario())
    assert [json.loads(t)["notification"]["payload"]["id"] for t in written] == ["call-1"] * 2
    assert before == []
    assert [(e["kind"], e["negotiatorId"], e["seq"]) for e in journal] == [
        ("delivery", "JAS", 1), ("delivery", "RPT", 1)]


def test_a_frame_never_overtakes_one_the_sender_already_holds() -> None:
    async def scenario() -> list[str]:
        hub = _hub()
        conn, sock = _live(hub)
        await _until(lambda: conn._wakeup is not None, "sender idle")
        # A delay fault routes the first frame through the sender, which then holds it.
        hub.faults.append(Fault("delay", "JAS", {"ms": 30}))
        hub.deliver("JAS", _envelope(["JAS"], call_id="first"), "n-1", datetime.now(UTC))
        hub.faults.clear()
        hub.deliver("JAS", _envelope(["JAS"], call_id="second"), "n-2", datetime.now(UTC))
        await asyncio.wait_for(_until_sent(sock, 2), 10)
        return sock.sent

    assert _seqs(asyncio.run(scenario())) == [1, 2]


async def _until_sent(sock: RecordingSocket, count: int) -> None:
    while len(sock.sent) < count:
        await asyncio.sleep(0)


def test_a_direct_send_that_has_to_wait_still_goes_out_before_later_frames() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        hub = _hub()
        conn, sock = _live(hub)
        await _until(lambda: conn._wakeup is not None, "sender idle")
        sock.writable.clear()  # the transport is paused: the send suspends
        for i in range(3):
            hub.deliver("JAS", _envelope(["JAS"], call_id=f"call-{i}"), f"n-{i}",
                        datetime.now(UTC))
        held = list(sock.sent)
        sock.writable.set()
        await _until(lambda: len(sock.sent) == 3, "all three sent")
        return held, sock.sent

    held, sent = asyncio.run(scenario())
    assert held == []
    assert _seqs(sent) == [1, 2, 3]


def test_a_silent_connection_gets_nothing_sent_directly() -> None:
    async def scenario() -> list[str]:
        hub = _hub()
        conn, sock = _live(hub)
        await _until(lambda: conn._wakeup is not None, "sender idle")
        conn.silent = True
        hub.deliver("JAS", _envelope(["JAS"]), "n-1", datetime.now(UTC))
        await _until(lambda: conn.queue.empty() and conn._wakeup is not None, "sender idle")
        return sock.sent

    assert asyncio.run(scenario()) == []


class BrokenSocket(RecordingSocket):
    """A socket that went away: every send raises, as uvicorn's does after a disconnect."""

    async def send_text(self, text: str) -> None:
        raise RuntimeError("client disconnected")


def test_a_failed_direct_send_stops_the_connection_and_is_not_journaled() -> None:
    async def scenario() -> tuple[Connection, list[dict[str, Any]]]:
        journal: list[dict[str, Any]] = []
        hub = Hub(heartbeat_ms=60_000, retention_s=300, retention_max=1000,
                  journal=journal.append)
        conn = Connection(hub, cast(WebSocket, BrokenSocket()), "JAS", "AgencyCloud", 0.0)
        hub.add(conn)
        await _until(lambda: conn._wakeup is not None, "sender idle")
        hub.deliver("JAS", _envelope(["JAS"]), "n-1", datetime.now(UTC))
        sender = conn._sender
        assert sender is not None
        await asyncio.gather(sender, return_exceptions=True)
        return conn, journal

    conn, journal = asyncio.run(scenario())
    assert conn.closed and journal == []
    # Still retained: a resume on the next connection replays it.
    assert 1 in conn.hub.channel("JAS").retained


class DroppingSocket(RecordingSocket):
    """A paused socket that is gone by the time it could write again."""

    async def send_text(self, text: str) -> None:
        await self.writable.wait()
        raise RuntimeError("client disconnected")


def test_a_direct_send_whose_socket_goes_while_it_waits_ends_quietly() -> None:
    async def scenario() -> BaseException | None:
        hub = _hub()
        sock = DroppingSocket()
        conn = Connection(hub, cast(WebSocket, sock), "JAS", "AgencyCloud", 0.0)
        hub.add(conn)
        await _until(lambda: conn._wakeup is not None, "sender idle")
        sock.writable.clear()
        hub.deliver("JAS", _envelope(["JAS"]), "n-1", datetime.now(UTC))
        pending = conn._pending
        assert pending is not None
        sock.writable.set()
        await asyncio.wait([pending], timeout=10)
        await conn.finish()
        return pending.exception()

    assert asyncio.run(scenario()) is None
