"""The stream client against the real mock backend over loopback, with its `/_mock/faults`.

Each test runs the client's asyncio loop itself (`asyncio.run`) while the mock serves from its
own thread; waits are conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from tapi_agent.core.backoff import Backoff
from tapi_agent.core.connection import ConnectionStatus, ConnState
from tapi_agent.mock.server import MockServer
from tapi_agent.net.session import CallableTokenSource, SessionGone
from tapi_agent.net.stream import Delivery, StreamClient
from tests.helpers import capturing_events

NEG = "JAS"
FAST = Backoff(base_s=0.05, cap_s=0.2, jitter=0.1, stable_after_s=0.0)


class Events(logging.Handler):
    """Collects structured log events (`log_event`) by name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event:
            self.records.append((event, dict(getattr(record, "fields", {}))))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self.records if event == name]


@pytest.fixture
def events() -> Iterator[Events]:
    with capturing_events(Events()) as handler:
        yield handler


class Tokens(CallableTokenSource):
    """Mints real mock tokens and counts them; can start with a bad token or end the session."""

    def __init__(
        self, server: MockServer, ttl: int = 3600, *, first: str | None = None,
        gone: bool = False, report_expiry: bool = True,
    ) -> None:
        self.server = server
        self.ttl = ttl
        self.mints = 0  # tokens handed out: the first one, then one per refresh
        self.issued: list[str] = []
        self.fail_next: Exception | None = None
        self._first = first
        self._gone = gone
        self._report_expiry = report_expiry
        super().__init__(self._mint_one, margin_s=0.0)

    async def _mint_one(self) -> tuple[str, float]:
        self.mints += 1
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        if self._gone:
            raise SessionGone("refresh token revoked")
        if self._first is not None:
            token, self._first = self._first, None
            return token, time.time() + self.ttl
        token = self.server.mint_token(NEG, ttl=self.ttl)
        self.issued.append(token)
        # The token's own `exp` (whole seconds), as a real session reads it.
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        return token, float(exp)

    def expires_at(self) -> float | None:
        # report_expiry=False hides the expiry, so only the server's 4001 can trigger renewal.
        return super().expires_at() if self._report_expiry else None


class Harness:
    """A StreamClient wired to recorders, plus the mock's HTTP API."""

    def __init__(self, server: MockServer, tokens: Tokens | None = None, **kw: Any) -> None:
        self.server = server
        self.tokens = tokens or Tokens(server)
        self.deliveries: list[Delivery] = []
        self.statuses: list[ConnectionStatus] = []
        self.resyncs: list[str] = []
        kw.setdefault("backoff", FAST)
        self.client = StreamClient(
            kw.pop("server_url", server.base_url), self.tokens,
            on_delivery=self.deliveries.append, on_status=self.statuses.append,
            on_resync=self.resyncs.append, **kw,
        )
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=10)
        self.provider = server.provider_token()
        self._task: asyncio.Task[None] | None = None
        self._n = 0

    async def __aenter__(self) -> Harness:
        self._task = asyncio.create_task(self.client.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.stop()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)
        await self.http.aclose()

    def states(self) -> list[ConnState]:
        return [s.state for s in self.statuses]

    def connected_count(self) -> int:
        return self.states().count(ConnState.CONNECTED)

    async def until(
        self, cond: Callable[[], object], timeout: float = 10.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or cond}; "
                    f"states={[str(s) for s in self.states()]}"
                )
            await asyncio.sleep(0.005)

    async def connected(self, count: int = 1, timeout: float = 10.0) -> None:
        await self.until(
            lambda: self.connected_count() >= count and self.client.status.state
            is ConnState.CONNECTED,
            timeout, f"connection #{count}",
        )

    async def post(self, call_id: str | None = None, sub_type: str = "incomingCall") -> None:
        self._n += 1
        payload: dict[str, Any] = {
            "created": "2023-11-01T10:28:00", "callerId": "07123 456789",
            "destinationId": "01865 000100",
        }
        if call_id is not None:
            payload["id"] = call_id
        env = {
            "type": "telephony", "subType": sub_type, "products": ["AgencyCloud"],
            "targets": {"negotiatorId": [NEG]}, "payload": payload,
        }
        r = await self.http.post(
            "/notifications", json=env, headers={"Authorization": f"Bearer {self.provider}"}
        )
        assert r.status_code == 202, r.text

    async def fault(self, kind: str, **params: Any) -> int:
        r = await self.http.post("/_mock/faults", json={"kind": kind, **params})
        assert r.status_code == 200, r.text
        applied: int = r.json()["applied"]
        return applied

    async def clear_faults(self) -> None:
        assert (await self.http.delete("/_mock/faults")).status_code == 200

    async def journal(self, kind: str) -> list[dict[str, Any]]:
        entries = (await self.http.get("/_mock/journal")).json()["entries"]
        return [e for e in entries if e.get("kind") == kind]

    def call_ids(self) -> list[str | None]:
        return [d.frame.notification.payload.id for d in self.deliveries]


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 60.0) -> None:
    """Run an async scenario with an overall deadline."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout)

    asyncio.run(bounded())


@pytest.fixture
def fast_server() -> Iterator[MockServer]:
    """A mock backend with a short heartbeat (the watchdog tests need it)."""
    server = MockServer(port=0, heartbeat_ms=300)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the basics -------------------------------------------------------------------------------


def test_connects_delivers_logs_and_acks_each_event(
    mock_server: MockServer, events: Events
) -> None:
    async def scenario() -> None:
        async with Harness(mock_server) as h:
            await h.connected()
            await h.post("call-1")
            await h.until(lambda: h.deliveries, what="delivery")
            await h.until(lambda: not mock_server.state.hub.channel(NEG).retained, what="ack")
            d = h.deliveries[0]
            assert (d.epoch, d.frame.seq, d.replayed) == (mock_server.epoch, 1, False)
            assert [a["seq"] for a in await h.journal("ack")] == [1]
        assert h.states()[:2] == [ConnState.CONNECTING, ConnState.CONNECTED]

    run(scenario)
    received = events.named("notification.received")
    assert received[0]["seq"] == 1 and received[0]["callId"] == "call-1"
    assert received[0]["subType"] == "incomingCall"
    assert 0 <= received[0]["latencyMs"] < 60_000
    states = events.named("connection.state")
    assert {"state", "attempt", "retryInMs"} <= states[0].keys()
    assert [s["state"] for s in states[:2]] == ["connecting", "connected"]


def test_plain_ws_to_a_remote_host_is_refused_and_fails(mock_server: MockServer) -> None:
    async def scenario() -> None:
        async with Harness(mock_server, server_url="http://notifications.example.com") as h:
            await h.until(lambda: h.client.status.state is ConnState.FAILED)
            assert "https" in h.client.status.detail
            assert h.tokens.mints == 0  # no token was ever fetched, let alone sent

    run(scenario)


def test_tokens_never_reach_the_log_even_at_debug_level(mock_server: MockServer) -> None:
    lines: list[str] = []

    class Everything(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + repr(getattr(record, "fields", "")))

    root = logging.getLogger()
    handler, old = Everything(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async def scenario() -> None:
            tokens = Tokens(mock_server, ttl=2)
            async with Harness(mock_server, tokens) as h:
                await h.connected()
                await h.until(lambda: tokens.mints >= 2, what="an in-band renewal")
                await h.post("call-1")
                await h.until(lambda: h.deliveries)
                await h.until(lambda: any("renewed" in line for line in lines))
            assert len(tokens.issued) >= 2
            tokens_seen.extend(tokens.issued)

        tokens_seen: list[str] = []
        run(scenario)
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert any("connection.state" in line for line in lines)
    for token in tokens_seen:
        signature = token.rsplit(".", 1)[-1]
        assert not [line for line in lines if signature in line]


# -- restarts and close codes -----------------------------------------------------------------


def test_backend_restart_is_back_within_two_seconds_in_the_new_epoch(
    mock_server: MockServer,
) -> None:
    async def scenario() -> None:
        # Default backoff: the real timings a user gets.
        async with Harness(mock_server, backoff=Backoff()) as h:
            await h.connected()
            await h.post("before")
            await h.until(lambda: h.deliveries)
            old_epoch = mock_server.epoch
            await asyncio.to_thread(mock_server.restart)
            listening_again = time.monotonic()
            await h.until(
                lambda: h.client.status.state is ConnState.CONNECTED
                and h.client.continuity.epoch == mock_server.epoch,
                timeout=2.0, what="reconnect to the restarted backend",
            )
            assert time.monotonic() - listening_again < 2.0
            assert mock_server.epoch != old_epoch
            assert h.resyncs == ["epoch_changed"]
            await h.post("after")
            await h.until(lambda: len(h.deliveries) == 2)
            assert h.call_ids() == ["before", "after"]
            assert h.deliveries[1].epoch == mock_server.epoch

    run(scenario)


def test_a_long_backend_restart_is_still_back_within_two_seconds_of_listening(
    mock_server: MockServer,
) -> None:
    async def scenario() -> None:
        async with Harness(mock_server, backoff=Backoff()) as h:
            await h.connected()
            # A restart that takes a while: 1012, then the backend is gone for several tries.
            await h.fault("close", code=1012, reason="deploying")
            await asyncio.to_thread(mock_server.stop)
            await h.until(
                lambda: h.states().count(ConnState.CONNECTING) >= 6, timeout=10,
                what="several failed attempts while the backend is down",
            )
            mock_server.state.hub.new_epoch()
            await asyncio.to_thread(mock_server.start)
            listening_again = time.monotonic()
            await h.until(
                lambda: h.client.status.state is ConnState.CONNECTED
                and h.client.continuity.epoch == mock_server.epoch,
                timeout=2.0, what="reconnect after the long restart",
            )
            assert time.monotonic() - listening_again < 2.0
            assert h.client.status.state is ConnState.CONNECTED

    run(scenario)


def test_close_1012_reconnects_at_once(mock_server: MockServer) -> None:
    async def scenario() -> None:
        async with Harness(mock_server, backoff=Backoff(base_s=20, cap_s=30)) as h:
            await h.connected()
            assert await h.fault("close", code=1012, reason="restarting") == 1
            await h.connected(2, timeout=5)
            lost = [s for s in h.statuses if s.state is ConnState.DISCONNECTED]
            assert lost[0].retry_in_ms == 0
            assert "restarting" in lost[0].detail
            assert h.resyncs == []  # same epoch: resumed, nothing to distrust

    run(scenario)


def test_close_4003_stops_retrying_and_fails_until_the_user_asks(mock_server: MockServer) -> None:
    async def scenario() -> None:
        async with Harness(mock_server) as h:
            await h.connected()
            await h.fault("close", code=4003, reason="licence withdrawn")
            await h.until(lambda: h.client.status.state is ConnState.FAILED)
            failed = h.client.status
            assert failed.retry_in_ms is None
            assert failed.detail.startswith("Forbidden")
            assert "licence withdrawn" in failed.detail
            attempts = h.states().count(ConnState.CONNECTING)
            # Nothing happens until the user acts: no attempt within a deadline far longer than
            # the test backoff's longest wait (0.2 s).
            with pytest.raises(AssertionError):
                await h.until(
                    lambda: h.states().count(ConnState.CONNECTING) > attempts, timeout=0.5
                )
            assert h.client.status.state is ConnState.FAILED
            h.client.reconnect_now()
            await h.connected(2)

    run(scenario)


def test_http_403_at_the_upgrade_fails_without_retrying(mock_server: MockServer) -> None:
    async def scenario() -> None:
        async with Harness(mock_server) as h:
            await h.connected()
            await h.fault("reject", status=403)
            await h.fault("drop")
            await h.until(lambda: h.client.status.state is ConnState.FAILED)
            assert h.client.status.detail.startswith("Forbidden")

    run(scenario)


def test_http_401_at_the_upgrade_refreshes_the_token_then_connects(
    mock_server: MockServer,
) -> None:
    async def scenario() -> None:
        tokens = Tokens(mock_server, first="not-a-jwt")
        async with Harness(mock_server, tokens) as h:
            await h.connected()
            assert tokens.mints == 2  # the refused one, then one refresh
            lost = [s for s in h.statuses if s.state is ConnState.DISCONNECTED]
            assert lost[0].retry_in_ms == 0

    run(scenario)


def test_a_gone_session_means_signed_out(mock_server: MockServer, events: Events) -> None:
    async def scenario() -> None:
        async with Harness(mock_server, Tokens(mock_server, gone=True)) as h:
            await h.until(lambda: h.client.status.state is ConnState.SIGNED_OUT)
            assert h.client.status.retry_in_ms is None

    run(scenario)
    assert events.named("connection.state")[-1]["state"] == "signed_out"


def test_an_unreachable_token_service_is_retried_like_a_network_error(
    mock_server: MockServer,
) -> None:
    async def scenario() -> None:
        tokens = Tokens(mock_server)
        tokens.fail_next = OSError("auth server unreachable")
        async with Harness(mock_server, tokens) as h:
            await h.connected()
            lost = next(s for s in h.statuses if s.state is ConnState.DISCONNECTED)
            assert "access token" in lost.detail

    run(scenario)


def test_session_ending_during_in_band_renewal_means_signed_out(mock_server: MockServer) -> None:
    async def scenario() -> None:
        tokens = Tokens(mock_server, ttl=2)
        async with Harness(mock_server, tokens) as h:
            await h.connected()
            tokens._gone = True  # the refresh token is revoked (signed out elsewhere)
            await h.until(lambda: h.client.status.state is ConnState.SIGNED_OUT, timeout=5)
            assert h.connected_count() == 1

    run(scenario)


def test_rejected_upgrades_back_off_and_reconnect_now_skips_the_wait(
    mock_server: MockServer,
) -> None:
    async def scenario() -> None:
        async with Harness(mock_server, backoff=Backoff(base_s=20, cap_s=30)) as h:
            await h.connected()
            await h.fault("reject", status=503)
            await h.fault("drop")
            await h.until(
                lambda: (h.client.status.retry_in_ms or 0) >= 10_000, what="a long backoff"
            )
            assert "Reconnecting in" in h.client.status.detail
            await h.clear_faults()
            h.client.reconnect_now()
            await h.connected(2, timeout=3)

    run(scenario)


def test_long_outage_turns_suspended_with_slow_retries_and_recovers(
    mock_server: MockServer, events: Events
) -> None:
    async def scenario() -> None:
        backoff = Backoff(base_s=0.02, cap_s=0.1, suspend_after_s=0.3)
        async with Harness(mock_server, backoff=backoff) as h:
            await h.connected()
            await h.fault("reject", status=503)
            await h.fault("drop")
            await h.until(lambda: h.client.status.state is ConnState.SUSPENDED, timeout=5)
            assert 50 <= (h.client.status.retry_in_ms or 0) <= 100  # the cap, jittered
            await h.clear_faults()
            await h.connected(2, timeout=3)

    run(scenario)
    logged = [e["state"] for e in events.named("connection.state")]
    assert "suspended" in logged and logged[-1] == "connected"


# -- dead links, sleep, tokens ----------------------------------------------------------------


def test_half_open_connection_is_detected_and_replaced_within_heartbeat_plus_grace(
    fast_server: MockServer,
) -> None:
    async def scenario() -> None:
        async with Harness(fast_server, watchdog_grace_s=0.5) as h:
            await h.connected()
            assert await h.fault("silence") == 1
            silenced = time.monotonic()
            await h.connected(2, timeout=0.3 + 0.5 + 1.5)
            assert time.monotonic() - silenced < 0.3 + 0.5 + 1.5
            lost = next(s for s in h.statuses if s.state is ConnState.DISCONNECTED)
            assert "heartbeat" in lost.detail
            await h.post("after-silence")
            await h.until(lambda: h.call_ids() == ["after-silence"])

    run(scenario)


def test_a_wall_clock_jump_after_sleep_reconnects_at_once(mock_server: MockServer) -> None:
    offset = [0.0]

    async def scenario() -> None:
        async with Harness(
            mock_server, clock=lambda: time.time() + offset[0],
            backoff=Backoff(base_s=20, cap_s=30),
        ) as h:
            h.client._sleep_tick_s = 0.05
            await h.connected()
            offset[0] = 3600.0  # the PC slept for an hour
            await h.connected(2, timeout=3)
            lost = next(s for s in h.statuses if s.state is ConnState.DISCONNECTED)
            assert "sleep" in lost.detail and lost.retry_in_ms == 0

    run(scenario)


def test_a_network_change_under_the_connection_reconnects_at_once(
    mock_server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tapi_agent.net.stream as stream

    real = stream.route_source
    moved: list[str] = []

    def route_after_wifi_switch(peer: str) -> str | None:
        if not moved:  # the OS now routes to the backend from a new address, once
            moved.append(peer)
            return "10.20.30.40"
        return real(peer)

    async def scenario() -> None:
        async with Harness(mock_server, backoff=Backoff(base_s=20, cap_s=30)) as h:
            h.client._route_tick_s = 0.05
            await h.connected()
            assert real("127.0.0.1") == "127.0.0.1"
            monkeypatch.setattr(stream, "route_source", route_after_wifi_switch)
            await h.connected(2, timeout=3)
            lost = next(s for s in h.statuses if s.state is ConnState.DISCONNECTED)
            assert "network changed" in lost.detail and lost.retry_in_ms == 0

    run(scenario)
    assert moved == ["127.0.0.1"]


@pytest.mark.parametrize("path", ["in_band_auth", "close_4001_then_refresh"])
def test_token_expiring_while_connected_loses_no_event(mock_server: MockServer, path: str) -> None:
    async def scenario() -> None:
        tokens = Tokens(mock_server, ttl=2, report_expiry=path == "in_band_auth")
        async with Harness(mock_server, tokens) as h:
            await h.connected()
            in_band = path == "in_band_auth"

            async def replaced_three_times() -> bool:
                if in_band:
                    return len(await h.journal("auth")) >= 3
                return h.connected_count() >= 4

            n = 0
            # Keep calls flowing until the token has been replaced three times.
            while not await replaced_three_times():
                n += 1
                await h.post(f"call-{n}")
                await h.until(lambda: len(h.deliveries) == n, what=f"call-{n}")  # noqa: B023
            assert h.call_ids() == [f"call-{i}" for i in range(1, n + 1)]
            if in_band:
                assert h.connected_count() == 1  # never dropped
            else:
                assert await h.journal("auth") == []
                assert tokens.mints >= 4
            await h.until(lambda: not mock_server.state.hub.channel(NEG).retained, what="acks")

    run(scenario)


# -- continuity -------------------------------------------------------------------------------


def test_incomplete_replay_after_retention_loss_asks_for_a_resync(events: Events) -> None:
    server = MockServer(port=0, heartbeat_ms=2000, retention_max=2)
    server.start()

    async def scenario() -> None:
        async with Harness(server) as h:
            await h.connected()
            await h.fault("reject", status=503)
            await h.fault("drop")
            await h.until(lambda: h.client.status.state is not ConnState.CONNECTED)
            for i in range(1, 6):
                await h.post(f"offline-{i}")
            await h.clear_faults()
            h.client.reconnect_now()
            await h.until(lambda: h.resyncs, what="the replayed frame")
            assert h.resyncs == ["replay_incomplete"]
            assert h.call_ids() == ["offline-4", "offline-5"]
            assert all(d.replayed for d in h.deliveries)
            # The loss is in the log at WARNING, not only in the pops' closing reason.
            resync = events.named("stream.resync")
            assert [(e["reason"], e["replayed"]) for e in resync] == [("replay_incomplete", 2)]

    try:
        run(scenario)
    finally:
        server.stop()


def test_acks_lost_with_a_dropped_connection_are_sent_again_after_the_resume(
    mock_server: MockServer,
) -> None:
    """A busy backend reads acks late; when the link is cut, the acks it had not read are gone
    and the events stay retained (counting against its 1,000-event retention) although the
    client has them. The client acks again, after the resume, what it acked recently: here
    100 acks (the soak's reorder bursts lost ~100 at a drop; 64 were repeated before)."""
    hub = mock_server.state.hub

    async def stop_reading_acks() -> None:
        (conn,) = [c for c in hub.connections.values() if not c.closed]
        transport = conn.transport()
        assert transport is not None
        transport.pause_reading()

    async def scenario() -> None:
        async with Harness(mock_server) as h:
            await h.connected()
            await asyncio.to_thread(mock_server.call, stop_reading_acks())
            for i in range(100):
                await h.post(f"call-{i}")
            await h.until(lambda: len(h.deliveries) == 100, what="100 events")
            assert len(hub.channel(NEG).retained) == 100  # acked, but none read by the mock
            await h.fault("drop")
            await h.connected(2)
            await h.until(lambda: not hub.channel(NEG).retained, what="every event acked")
            assert [r["count"] for r in await h.journal("resume")] == [0]
            assert len(h.deliveries) == 100

    run(scenario)


def test_an_old_retention_loss_is_not_reported_again_on_the_next_reconnect(
    events: Events,
) -> None:
    """After a resume that came back incomplete (events lost to the backend's retention), the
    lost seqs can never come: the next resume starts after them, so the backend does not say
    "incomplete" again and the pops are not closed a second time for the same old loss."""
    server = MockServer(port=0, heartbeat_ms=2000, retention_max=2)
    server.start()

    async def offline_then_back(h: Harness, posts: list[str]) -> None:
        await h.fault("reject", status=503)
        await h.fault("drop")
        await h.until(lambda: h.client.status.state is not ConnState.CONNECTED)
        for call_id in posts:
            await h.post(call_id)
        await h.clear_faults()
        h.client.reconnect_now()

    async def scenario() -> None:
        async with Harness(server) as h:
            await h.connected()
            await h.post("seen-1")  # the client's watermark is anchored in the epoch
            await h.until(lambda: h.call_ids() == ["seen-1"], what="the first event")
            await offline_then_back(h, [f"offline-{i}" for i in range(1, 6)])
            await h.until(lambda: h.resyncs, what="the first replay")
            assert h.call_ids() == ["seen-1", "offline-4", "offline-5"]
            await h.until(lambda: not server.state.hub.channel(NEG).retained, what="acks")
            # Nothing is lost this time: one event while offline, within retention.
            await offline_then_back(h, ["offline-6"])
            await h.until(lambda: h.call_ids()[-1:] == ["offline-6"], what="the replay")
            await h.post("live-7")  # after the `replayed` frame on the same connection
            await h.until(lambda: h.call_ids()[-1:] == ["live-7"], what="a live event")
            resumes = await h.journal("resume")
            assert [r["complete"] for r in resumes] == [False, True]
            assert h.resyncs == ["replay_incomplete"]

    try:
        run(scenario)
    finally:
        server.stop()


def test_thousand_events_with_20_random_drops_duplicates_and_reorder_arrive_exactly_once(
    mock_server: MockServer,
) -> None:
    rng = random.Random(4)
    total, drops, burst = 1000, 20, 10
    drop_after = set(rng.sample(range(2, total // burst - 2), drops))  # burst numbers
    sub_types = ["incomingCall", "answeredCall", "endedCall"]

    async def scenario() -> None:
        async with Harness(mock_server) as h:
            await h.connected()
            await h.fault("duplicate", probability=0.3)
            await h.fault("reorder", window=3)
            dropped = 0
            for b in range(total // burst):
                # Bursts of concurrent POSTs, like a busy switchboard (and 10x faster than
                # one request at a time).
                await asyncio.gather(*(
                    h.post(f"call-{i // 3}", sub_types[i % 3])
                    for i in range(b * burst, (b + 1) * burst)
                ))
                if b in drop_after:
                    dropped += await h.fault("drop")
            assert dropped >= drops - 3  # a drop may land while the client is reconnecting
            await h.until(lambda: len(h.deliveries) >= total, timeout=40, what="1000 events")
            await h.until(
                lambda: not mock_server.state.hub.channel(NEG).retained, timeout=20,
                what="every event acknowledged",
            )
            dupes = len([e for e in await h.journal("delivery") if e.get("duplicate")])
            assert dupes > 100  # the fault really doubled frames
            assert h.connected_count() >= dropped + 1
            # Events in flight at a drop came back by resume/replay, not by luck.
            assert sum(d.replayed for d in h.deliveries) > 0
            keys = Counter(
                (d.frame.notification.payload.id, d.frame.notification.subType)
                for d in h.deliveries
            )
            assert len(h.deliveries) == total
            assert set(keys.values()) == {1}
            per_call = Counter(h.call_ids())
            assert len(per_call) == (total + 2) // 3 and max(per_call.values()) == 3

    run(scenario, timeout=80)
