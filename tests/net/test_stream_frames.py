"""The stream client's frame handling: resume, acks, dedupe, and every kind of bad frame.

Most frames go straight into `StreamClient.process_frame`; a few go through a real websocket
served by the `websockets` library on loopback, to cover the size limits of the real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from tapi_agent.core.connection import ConnectionStatus, ConnState
from tapi_agent.net.session import CallableTokenSource
from tapi_agent.net.stream import (
    HARD_FRAME_LIMIT,
    Delivery,
    InsecureServerError,
    StreamClient,
    stream_url,
)
from tapi_agent.protocol import MAX_FRAME_BYTES
from tests.helpers import capturing_events


class Rejections(logging.Handler):
    """Counts `notification.rejected` events and keeps their reasons."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "notification.rejected":
            self.reasons.append(getattr(record, "fields", {})["reason"])


@pytest.fixture
def rejections() -> Iterator[Rejections]:
    with capturing_events(Rejections()) as handler:
        yield handler


async def _no_token() -> tuple[str, float]:
    return "test-token", time.time() + 3600


class Recorder:
    """A StreamClient (never run) with its callbacks recorded."""

    def __init__(self, product: str = "AgencyCloud") -> None:
        self.deliveries: list[Delivery] = []
        self.statuses: list[ConnectionStatus] = []
        self.resyncs: list[str] = []
        self.client = StreamClient(
            "http://127.0.0.1:9", CallableTokenSource(_no_token), product=product,
            on_delivery=self.deliveries.append, on_status=self.statuses.append,
            on_resync=self.resyncs.append,
        )

    def welcome(self, epoch: str = "e1") -> list[str]:
        self.client.begin_connection()
        return self.client.process_frame(welcome(epoch))


def welcome(epoch: str = "e1", heartbeat_ms: int = 60_000) -> str:
    return json.dumps({"type": "welcome", "connectionId": "c1", "negotiatorId": "JAS",
                       "epoch": epoch, "heartbeatMs": heartbeat_ms})


def notification_dict(seq: int = 1, call_id: str | None = "call-1",
                      sub_type: str = "incomingCall",
                      products: list[str] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"created": "2023-11-01T10:28:00", "callerId": "07123 456789",
                               "destinationId": "01865 000100", "huntGroup": False}
    if call_id is not None:
        payload["id"] = call_id
    return {
        "type": "notification", "seq": seq, "sentAt": "2026-01-01T10:00:00.000Z",
        "notification": {"type": "telephony", "subType": sub_type,
                         "products": products or ["AgencyCloud"],
                         "targets": {"negotiatorId": ["JAS"]}, "payload": payload},
    }


def notification(seq: int = 1, call_id: str | None = "call-1", **kw: Any) -> str:
    return json.dumps(notification_dict(seq, call_id, **kw))


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("https://api.example.com", "wss://api.example.com/notifications/stream?product=AgencyCloud"),
        ("https://api.example.com/v1/", "wss://api.example.com/v1/notifications/stream?product=AgencyCloud"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/notifications/stream?product=AgencyCloud"),
        ("http://localhost:8765", "ws://localhost:8765/notifications/stream?product=AgencyCloud"),
        ("http://[::1]:8765", "ws://[::1]:8765/notifications/stream?product=AgencyCloud"),
        ("wss://api.example.com", "wss://api.example.com/notifications/stream?product=AgencyCloud"),
    ],
)
def test_stream_url_follows_the_server_base(server: str, expected: str) -> None:
    assert stream_url(server) == expected


def test_stream_url_encodes_the_product() -> None:
    assert stream_url("https://h", "Agency Cloud&x").endswith("?product=Agency%20Cloud%26x")


@pytest.mark.parametrize(
    "server", ["http://api.example.com", "ws://10.0.0.5:8765", "ftp://x", "api.example.com"]
)
def test_plain_text_to_another_host_is_refused_with_a_clear_error(server: str) -> None:
    with pytest.raises(InsecureServerError, match="https"):
        stream_url(server)


# -- good frames ------------------------------------------------------------------------------


def test_welcome_reports_connected_and_resumes_only_a_known_epoch() -> None:
    r = Recorder()
    assert r.welcome("e1") == []
    assert r.statuses[-1].state is ConnState.CONNECTED
    assert r.client.process_frame(notification(1)) == ['{"type":"ack","seq":1}']
    assert r.welcome("e1") == [
        '{"type":"resume","epoch":"e1","lastSeq":1}',
        '{"type":"ack","seq":1}',  # repeated: the first may have died with the connection
    ]
    assert r.resyncs == []


def test_new_epoch_resyncs_and_resumes_from_zero() -> None:
    r = Recorder()
    r.welcome("e1")
    r.client.process_frame(notification(1))
    assert r.welcome("e2") == ['{"type":"resume","epoch":"e2","lastSeq":0}']
    assert r.resyncs == ["epoch_changed"]


def test_duplicates_are_acked_but_delivered_once() -> None:
    r = Recorder()
    r.welcome()
    for raw in (notification(1), notification(1), notification(2, "call-1")):
        assert json.loads(r.client.process_frame(raw)[0])["type"] == "ack"
    assert [d.frame.seq for d in r.deliveries] == [1]


def test_replayed_events_are_flagged_until_the_replayed_frame() -> None:
    r = Recorder()
    r.welcome()
    r.client.process_frame(notification(1, "a"))
    r.welcome()  # same epoch: resume
    r.client.process_frame(notification(2, "b"))
    r.client.process_frame(json.dumps({"type": "replayed", "count": 1, "complete": True}))
    r.client.process_frame(notification(3, "c"))
    assert [(d.frame.seq, d.replayed) for d in r.deliveries] == [
        (1, False), (2, True), (3, False),
    ]
    assert r.resyncs == []


def test_a_crashing_consumer_is_logged_and_its_event_is_neither_acked_nor_marked_seen(
    rejections: Rejections,
) -> None:
    r = Recorder()

    def boom(_: Delivery) -> None:
        raise RuntimeError("bug downstream")

    r.client._on_delivery = boom
    r.welcome()
    assert r.client.process_frame(notification(1)) == []  # not handed over: not acked
    assert "RuntimeError" in rejections.reasons[-1]
    r.client._on_delivery = r.deliveries.append
    # Redelivered (the backend kept it unacknowledged): this time it gets through.
    assert r.client.process_frame(notification(1)) == ['{"type":"ack","seq":1}']
    assert [d.frame.seq for d in r.deliveries] == [1]


# -- bad frames -------------------------------------------------------------------------------

_REQUIRED = [
    ("seq",), ("sentAt",), ("notification",), ("notification", "type"),
    ("notification", "subType"), ("notification", "products"), ("notification", "targets"),
    ("notification", "payload"), ("notification", "payload", "created"),
    ("notification", "payload", "callerId"), ("notification", "payload", "destinationId"),
]
_BREAKS: list[tuple[tuple[str, ...], Any]] = [
    (("seq",), 0), (("seq",), -3), (("seq",), "7"), (("seq",), 1.5), (("seq",), True),
    (("seq",), None), (("sentAt",), "yesterday"), (("sentAt",), 12),
    (("notification",), "text"), (("notification", "type"), "email"),
    (("notification", "subType"), "voicemail"), (("notification", "products"), []),
    (("notification", "products"), "AgencyCloud"), (("notification", "targets"), {}),
    (("notification", "payload"), []), (("notification", "payload", "callerId"), 7123),
    (("notification", "payload", "callerId"), "0" * 65),
    (("notification", "payload", "huntGroup"), "yes"),
    (("notification", "payload", "created"), "tomorrow"),
]


def _without(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return data


def _with(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


_sub_types = st.sampled_from(["incomingCall", "answeredCall", "endedCall", "missedCall"])
_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json_any = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=8,
)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


BAD_FRAME_KINDS: tuple[st.SearchStrategy[tuple[str, str | bytes]], ...] = (
    st.tuples(st.just("not_json"), st.text(max_size=40).filter(_not_json)),
    st.tuples(st.just("binary"), st.binary(min_size=1, max_size=40).filter(
        lambda b: not b.strip().startswith((b"{", b"[")) or _not_json(b.decode("latin-1")))),
    st.tuples(st.just("json_not_object"), _json_any.filter(lambda v: not isinstance(v, dict))
              .map(json.dumps)),
    st.tuples(st.just("unknown_type"), st.builds(
        lambda t, extra: json.dumps({**extra, "type": t}),
        st.text(max_size=12).filter(
            lambda t: t not in ("welcome", "notification", "replayed", "heartbeat")),
        st.dictionaries(st.text(max_size=6), _json_leaf, max_size=3))),
    st.tuples(st.just("no_type"), st.dictionaries(
        st.text(max_size=6).filter(lambda k: k != "type"), _json_any, max_size=4)
        .map(json.dumps)),
    st.tuples(st.just("missing_field"), st.builds(
        lambda path, seq, sub: json.dumps(_without(notification_dict(seq, sub_type=sub), path)),
        st.sampled_from(_REQUIRED), st.integers(1, 10**6), _sub_types)),
    st.tuples(st.just("wrong_value"), st.builds(
        lambda brk, seq, sub: json.dumps(_with(notification_dict(seq, sub_type=sub), *brk)),
        st.sampled_from(_BREAKS), st.integers(1, 10**6), _sub_types)),
    st.tuples(st.just("second_welcome"), st.builds(welcome, st.text(min_size=1, max_size=8))),
    st.tuples(st.just("bad_replayed"), st.builds(
        lambda count, complete: json.dumps(
            {"type": "replayed", "count": count, "complete": complete}),
        st.integers(max_value=-1) | st.text(max_size=3),
        st.booleans() | st.text(max_size=3))),
    st.tuples(st.just("bad_welcome_fields"), st.builds(
        lambda hb: json.dumps({"type": "welcome", "connectionId": "c", "negotiatorId": "JAS",
                               "epoch": "e", "heartbeatMs": hb}),
        st.integers(max_value=0) | st.text(max_size=3))),
    st.tuples(st.just("too_large"), st.integers(1, 5000).map(
        lambda extra: json.dumps({**notification_dict(99), "pad": "x" * (MAX_FRAME_BYTES + extra)})
    )),
)

PER_KIND = 4
# Every example holds PER_KIND frames of each kind, shuffled: 250 examples x 44 = 11,000 frames.
BAD_FRAME_BATCHES = st.tuples(
    *(st.lists(kind, min_size=PER_KIND, max_size=PER_KIND) for kind in BAD_FRAME_KINDS)
).map(lambda groups: [frame for group in groups for frame in group]).flatmap(st.permutations)


@settings(
    max_examples=250, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
@given(frames=BAD_FRAME_BATCHES)
def test_ten_thousand_malformed_frames_are_each_logged_and_dropped_and_the_stream_goes_on(
    rejections: Rejections, frames: list[tuple[str, str | bytes]]
) -> None:
    assert len({kind for kind, _ in frames}) == len(BAD_FRAME_KINDS) == 11
    r = Recorder()
    r.welcome("e1")
    before = len(rejections.reasons)
    for _, raw in frames:
        assert r.client.process_frame(raw) == []
    assert len(rejections.reasons) - before == len(frames)
    assert r.deliveries == [] and r.resyncs == []
    assert r.client.status.state is ConnState.CONNECTED
    # The stream still works after all of that.
    assert r.client.process_frame(notification(5, "good")) == ['{"type":"ack","seq":5}']
    assert [d.frame.seq for d in r.deliveries] == [5]


def test_frames_before_the_welcome_are_rejected(rejections: Rejections) -> None:
    r = Recorder()
    r.client.begin_connection()
    assert r.client.process_frame(notification(1)) == []
    assert r.deliveries == []
    assert rejections.reasons == ["notification frame before welcome"]


def test_a_notification_for_another_product_is_rejected_not_acked_and_not_delivered(
    rejections: Rejections,
) -> None:
    r = Recorder()
    r.welcome()
    assert r.client.process_frame(notification(1, products=["Other"])) == []
    assert r.deliveries == []
    assert "not for product" in rejections.reasons[0]
    r.client.process_frame(notification(2, "call-2"))
    assert r.welcome()[0] == '{"type":"resume","epoch":"e1","lastSeq":2}'  # moved past it


# -- through a real socket --------------------------------------------------------------------


def _run_client(handler: Callable[[ServerConnection], Awaitable[None]],
                done: Callable[[], object], what: str) -> tuple[list[Delivery], list[ConnState]]:
    """Run a StreamClient against `handler` on loopback until `done()`; its deliveries and
    connection states."""
    deliveries: list[Delivery] = []
    states: list[ConnState] = []

    async def scenario() -> None:
        async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            client = StreamClient(
                f"http://127.0.0.1:{port}", CallableTokenSource(_no_token),
                on_delivery=deliveries.append, on_status=lambda s: states.append(s.state),
                on_resync=lambda _: None,
            )
            task = asyncio.create_task(client.run())
            deadline = time.monotonic() + 10
            while not done():
                assert time.monotonic() < deadline, f"{what}; states={states}"
                await asyncio.sleep(0.005)
            await client.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    return deliveries, states



def test_bad_frames_over_a_real_socket_keep_the_connection_and_a_huge_one_reconnects(
    rejections: Rejections,
) -> None:
    received: list[list[dict[str, Any]]] = []  # client frames, per connection

    async def handler(ws: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        received.append(frames)
        await ws.send(welcome("e1"))
        if len(received) > 1:
            frames.append(json.loads(await ws.recv()))  # the resume
            await ws.wait_closed()
            return
        for raw in ("not json", b"\xff\xfe binary", '{"type":"bogus"}', notification(0),
                    json.dumps({**notification_dict(1), "pad": "x" * (MAX_FRAME_BYTES + 1)})):
            await ws.send(raw)
        await ws.send(notification(1, "good"))
        frames.append(json.loads(await ws.recv()))  # its ack: the connection survived
        await ws.send("x" * (HARD_FRAME_LIMIT + 1))  # beyond the hard limit: 1009
        await ws.wait_closed()

    deliveries, states = _run_client(handler, lambda: len(received) == 2 and received[1],
                                     "no reconnect")
    assert [d.frame.notification.payload.id for d in deliveries] == ["good"]
    assert received[0] == [{"type": "ack", "seq": 1}]
    assert received[1] == [{"type": "resume", "epoch": "e1", "lastSeq": 1}]  # then the re-ack
    reasons = rejections.reasons
    assert len(reasons) == 6
    assert reasons[0].startswith("not JSON") and reasons[1].startswith("not JSON")
    assert "unknown frame type 'bogus'" in reasons[2]
    assert reasons[3].startswith("invalid notification frame")
    assert reasons[4].startswith("frame too large")
    assert "connection reset" in reasons[5]
    assert states.count(ConnState.CONNECTED) == 2


# -- corporate networks: proxy from the environment, TLS verified -----------------------------


def _self_signed_context(host: str) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (trusted by nobody)."""
    import datetime as dt
    import tempfile
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def test_remote_servers_go_through_the_environment_proxy_and_tls_is_verified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = "notifications.example.test"
    server_tls = _self_signed_context(host)
    connects: list[str] = []
    statuses: list[ConnectionStatus] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        connects.append(head.split(b"\r\n", 1)[0].decode())
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        # Play a TLS-intercepting box whose certificate the OS does not trust.
        with contextlib.suppress(Exception):
            await writer.start_tls(server_tls)
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        client = StreamClient(
            f"https://{host}", CallableTokenSource(_no_token),
            on_delivery=lambda _: None, on_status=statuses.append, on_resync=lambda _: None,
        )
        task = asyncio.create_task(client.run())
        deadline = time.monotonic() + 10
        while not any(s.state is ConnState.DISCONNECTED for s in statuses):
            assert time.monotonic() < deadline, f"statuses={statuses}"
            await asyncio.sleep(0.005)
        await client.stop()
        await asyncio.wait_for(task, 5)
        server.close()

    asyncio.run(scenario())
    assert connects[0] == f"CONNECT {host}:443 HTTP/1.1"
    lost = next(s for s in statuses if s.state is ConnState.DISCONNECTED)
    assert "CERTIFICATE_VERIFY_FAILED" in lost.detail  # verification is on, not bypassed


def test_stop_before_run_means_run_returns_at_once() -> None:
    r = Recorder()

    async def scenario() -> None:
        await r.client.stop()
        await asyncio.wait_for(r.client.run(), 2)

    asyncio.run(scenario())
    assert r.statuses == []  # it never tried to connect


@pytest.mark.parametrize(("setting", "env_proxy", "through_proxy"), [
    ("{proxy}", False, True),   # network.proxy = a URL: used without any environment
    ("none", True, False),      # network.proxy = none: the environment's proxy is ignored
])
def test_the_proxy_setting_decides_the_streams_route(
    monkeypatch: pytest.MonkeyPatch, setting: str, env_proxy: bool, through_proxy: bool,
) -> None:
    host = "notifications.example.test"
    connects: list[str] = []
    statuses: list[ConnectionStatus] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        connects.append(head.split(b"\r\n", 1)[0].decode())
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
                     "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        if env_proxy:
            monkeypatch.setenv("https_proxy", url)
        client = StreamClient(
            f"https://{host}", CallableTokenSource(_no_token),
            on_delivery=lambda _: None, on_status=statuses.append, on_resync=lambda _: None,
            proxy=setting.format(proxy=url),
        )
        task = asyncio.create_task(client.run())
        deadline = time.monotonic() + 10
        while not any(s.state is ConnState.DISCONNECTED for s in statuses):
            assert time.monotonic() < deadline, f"statuses={statuses}"
            await asyncio.sleep(0.005)
        await client.stop()
        await asyncio.wait_for(task, 5)
        server.close()

    asyncio.run(scenario())
    assert bool(connects) is through_proxy
    if through_proxy:
        assert connects[0] == f"CONNECT {host}:443 HTTP/1.1"


# -- a backend that cannot be trusted (issue 14) ----------------------------------------------


def test_a_seq_far_ahead_is_a_continuity_break_and_the_next_calls_still_pop(
    rejections: Rejections,
) -> None:
    r = Recorder()
    r.welcome()
    for seq in (1, 2, 3):
        r.client.process_frame(notification(seq, f"call-{seq}"))
    # One frame numbered far ahead (a backend bug or glitch): not trusted, not acked.
    assert r.client.process_frame(notification(10**9, "glitch")) == []
    assert r.resyncs == ["seq_jump"]
    assert any("1000000000" in reason and "resync" in reason for reason in rejections.reasons)
    assert r.client.continuity.last_seq == 3  # never the new high-water mark
    for seq in (4, 5):
        assert r.client.process_frame(notification(seq, f"call-{seq}")) == [
            json.dumps({"type": "ack", "seq": seq}, separators=(",", ":"))]
    assert [d.frame.seq for d in r.deliveries] == [1, 2, 3, 4, 5]
    assert r.welcome()[0] == '{"type":"resume","epoch":"e1","lastSeq":5}'


def test_a_seq_far_below_after_a_bogus_first_frame_does_not_silence_the_stream(
    rejections: Rejections,
) -> None:
    r = Recorder()
    r.welcome()
    r.client.process_frame(notification(10**9, "glitch"))  # the first frame anchors
    assert r.client.process_frame(notification(42, "a")) == []  # one far frame: suspect
    assert r.client.process_frame(notification(43, "b")) == []  # a second agrees: moved
    assert r.client._wake.is_set()  # reconnects to have 42 and 43 replayed
    assert len(rejections.reasons) == 2
    resume = json.loads(r.welcome()[0])
    assert resume == {"type": "resume", "epoch": "e1", "lastSeq": 41}
    for seq, call in ((42, "a"), (43, "b")):  # the replay
        assert r.client.process_frame(notification(seq, call)) != []
    assert [d.frame.notification.payload.id for d in r.deliveries] == ["glitch", "a", "b"]


def test_numbering_that_really_moved_is_followed_after_two_frames_agree(
    rejections: Rejections,
) -> None:
    r = Recorder()
    r.welcome()
    for seq in (1, 2):
        r.client.process_frame(notification(seq, f"call-{seq}"))
    assert r.client.process_frame(notification(9_000, "x")) == []
    assert r.client.process_frame(notification(9_001, "y")) == []
    assert r.resyncs == ["seq_jump"]
    assert r.client._wake.is_set()  # reconnects
    # ... and resumes from the watermark: the backend replays all it still holds after it.
    assert json.loads(r.welcome()[0])["lastSeq"] == 2
    for seq, call in ((9_000, "x"), (9_001, "y"), (9_002, "z")):
        r.client.process_frame(notification(seq, call))
    assert [d.frame.seq for d in r.deliveries] == [1, 2, 9_000, 9_001, 9_002]


def _nested(depth: int = 50_000) -> str:  # ~100 KB, under MAX_FRAME_BYTES
    return '{"type":"notification","seq":1,"x":' + "[" * depth + "]" * depth + "}"


def test_a_deeply_nested_frame_is_rejected_and_the_stream_goes_on(
    rejections: Rejections,
) -> None:
    r = Recorder()
    r.welcome()
    assert r.client.process_frame(_nested()) == []
    assert "nested" in rejections.reasons[-1]
    assert r.client.process_frame(notification(1)) == ['{"type":"ack","seq":1}']
    assert [d.frame.seq for d in r.deliveries] == [1]


@pytest.mark.parametrize("sent_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_sent_at_out_of_range_is_rejected_and_its_seq_is_not_lost(
    rejections: Rejections, sent_at: str,
) -> None:
    r = Recorder()
    r.welcome()
    bad = notification_dict(1, "call-1")
    bad["sentAt"] = sent_at
    assert r.client.process_frame(json.dumps(bad)) == []
    assert "sentAt" in rejections.reasons[-1]
    # The same event sent again, well formed: it is new, not a duplicate.
    assert r.client.process_frame(notification(1, "call-1")) == ['{"type":"ack","seq":1}']
    assert [d.frame.seq for d in r.deliveries] == [1]


def test_any_exception_a_frame_causes_is_caught_at_the_frame_and_nothing_is_marked_seen(
    rejections: Rejections, monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = Recorder()
    r.welcome()
    real = r.client._clock
    monkeypatch.setattr(r.client, "_clock", lambda: 1 / 0)
    assert r.client.process_frame(notification(1)) == []
    assert "ZeroDivisionError" in rejections.reasons[-1]
    monkeypatch.setattr(r.client, "_clock", real)
    assert r.client.process_frame(notification(1)) == ['{"type":"ack","seq":1}']
    assert [d.frame.seq for d in r.deliveries] == [1]


def test_nested_and_out_of_range_frames_over_a_real_socket_keep_the_connection(
    rejections: Rejections,
) -> None:
    connections: list[list[dict[str, Any]]] = []

    async def handler(ws: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        connections.append(frames)
        await ws.send(welcome("e1"))
        if len(connections) > 1:
            await ws.wait_closed()
            return
        far = notification_dict(2, "far")
        far["sentAt"] = "0001-01-01T00:00:00+14:00"
        for raw in (notification(1, "a"), _nested(), json.dumps(far), notification(10**9, "bogus"),
                    notification(2, "b"), notification(3, "c")):
            await ws.send(raw)
        while len(frames) < 3:
            frames.append(json.loads(await ws.recv()))
        await ws.wait_closed()

    deliveries, states = _run_client(handler, lambda: connections and len(connections[0]) == 3,
                                     "acks missing")
    assert [d.frame.notification.payload.id for d in deliveries] == ["a", "b", "c"]
    assert [f["seq"] for f in connections[0]] == [1, 2, 3]
    assert len(connections) == 1 and states.count(ConnState.CONNECTED) == 1
    assert len(rejections.reasons) == 3  # nested, sentAt, the seq jump: each logged
