"""The stream hub: live connections, per-negotiator `seq` and retention, fan-out, faults.

Everything here runs on the server's event loop; nothing is shared with other threads except
through `MockServer`, which hops onto the loop first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketState

from tapi_agent.protocol import (
    Envelope,
    HeartbeatFrame,
    NotificationFrame,
    ReplayedFrame,
    ValidationFailed,
    dump_frame,
    validate_envelope,
)

if TYPE_CHECKING:
    from tapi_agent.mock.store import Store

_log = logging.getLogger("tapi_agent.mock.hub")

PERSISTENT_FAULTS = ("delay", "duplicate", "reorder", "reject")
ONE_SHOT_FAULTS = ("drop", "close", "silence")
REORDER_FLUSH_S = 0.1  # how long a partial reorder window waits for more events
_MAX_BATCH = 256  # frames a sender takes from its queue at once


def utc_iso(t: datetime) -> str:
    """A UTC datetime as ISO 8601 with milliseconds and `Z`."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Delivery:
    """One numbered event of a negotiator, serialised once and shared by all their sockets."""

    seq: int
    notification_id: str
    text: str
    envelope: Envelope
    retained_at: float


@dataclass
class Channel:
    """A negotiator's numbering and unacknowledged events within one epoch."""

    next_seq: int = 1
    retained: OrderedDict[int, Delivery] = field(default_factory=OrderedDict)
    lost_upto: int = 0  # highest unacknowledged seq that retention dropped


@dataclass
class Fault:
    """A persistent fault; `negotiator_id` None means every negotiator."""

    kind: str
    negotiator_id: str | None
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON form, the same shape as the POST that created it."""
        data: dict[str, Any] = {"kind": self.kind, **self.params}
        if self.negotiator_id is not None:
            data["negotiatorId"] = self.negotiator_id
        return data

    def matches(self, negotiator_id: str) -> bool:
        return self.negotiator_id is None or self.negotiator_id == negotiator_id


_QueueItem = tuple[str, Delivery | None]


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


async def _finish(send: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive a send coroutine that suspended on `waiting` (a future) to its end, as a task would."""
    while True:
        try:
            await waiting
        except asyncio.CancelledError:
            if not (isinstance(waiting, asyncio.Future) and waiting.done()):
                send.close()
                raise
        except Exception:  # the send reads the same outcome from the future itself
            pass
        try:
            waiting = send.send(None)
        except StopIteration:
            return
        except Exception as exc:  # the socket went away meanwhile: the receive loop cleans up
            _log.debug("delayed direct send failed: %s", exc)
            return


class Connection:
    """One accepted websocket: a send queue drained by one sender task, so frames stay in order."""

    def __init__(
        self, hub: Hub, websocket: WebSocket, negotiator_id: str, product: str, expires_at: float
    ) -> None:
        self.hub = hub
        self.websocket = websocket
        self.id = "c-" + secrets.token_hex(6)
        self.negotiator_id = negotiator_id
        self.product = product
        self.expires_at = expires_at
        self.connected_at = datetime.now(UTC)
        self.silent = False
        self.closed = False
        self.queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        # Set while the sender waits on an empty queue; `push` resolves it to wake the sender.
        self._wakeup: asyncio.Future[bool] | None = None
        self._pending: asyncio.Task[None] | None = None  # a direct send that had to wait
        self._last_sent = float("-inf")  # loop time of the last direct send (heartbeats)

    def as_dict(self) -> dict[str, Any]:
        """What `GET /_mock/connections` shows."""
        return {
            "connectionId": self.id,
            "negotiatorId": self.negotiator_id,
            "product": self.product,
            "connectedAt": utc_iso(self.connected_at),
            "tokenExpiresAt": utc_iso(datetime.fromtimestamp(self.expires_at, UTC)),
            "silent": self.silent,
        }

    def start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    def push(self, text: str, delivery: Delivery | None = None) -> None:
        """Send a frame now when nothing is ahead of it, else queue it for the sender."""
        if self.closed:
            return
        if self._can_send_now() and (delivery is None or self.hub.plain(self.negotiator_id)):
            if self._send_now(text) and delivery is not None:
                self.hub.journal_soon(self, delivery)
            return
        self.queue.put_nowait((text, delivery))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(True)

    def _can_send_now(self) -> bool:
        # Only while the sender idles on an empty queue (so nothing queued or in its hands can
        # be overtaken) and the link is not playing half-open.
        wakeup = self._wakeup
        return (wakeup is not None and not wakeup.done() and self.queue.empty()
                and not self.silent and (self._pending is None or self._pending.done()))

    def _send_now(self, text: str) -> bool:
        # Fan-out latency: a frame written from the POST handler itself reaches the socket
        # before the 202 is built, with no wake-up of a sender task per recipient (three
        # loop turns each through a queue). The ASGI send does not suspend while the transport
        # is writable, so one step runs it to the end; if it does suspend (the transport
        # paused), a task finishes it and the sender waits for that task before sending more.
        self._last_sent = asyncio.get_running_loop().time()
        send = self._send_raw(text)
        try:
            waiting = send.send(None)
        except StopIteration:
            return True
        except Exception as exc:  # a socket that went away mid-send: the receive loop cleans up
            _log.debug("direct send on %s failed: %s", self.id, exc)
            self.closed = True  # as the sender does on a failed send: nothing more goes out
            if self._sender is not None:
                self._sender.cancel()
            return False
        self._pending = asyncio.get_running_loop().create_task(_finish(send, waiting))
        return True

    async def _send_raw(self, text: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED and not self.closed:
            await self.websocket.send_text(text)

    async def _next_batch(self, heartbeat_s: float) -> list[_QueueItem] | None:
        # Only an empty queue waits (one task and one timer per wait): under load a frame per
        # wait let the sender fall behind the POST handlers feeding it.
        if self.queue.empty() and not await self._wait_for_frames(heartbeat_s):
            return None
        if self._pending is not None:  # a direct send still in progress goes first
            with contextlib.suppress(Exception):
                await self._pending
            self._pending = None
        first = self.queue.get_nowait()
        batch = [first]
        window = self.hub.reorder_window(self.negotiator_id)
        if window <= 1:
            while not self.queue.empty() and len(batch) < _MAX_BATCH:
                batch.append(self.queue.get_nowait())
        else:
            # Frames already queued fill the window at once; only a partial window waits (up
            # to REORDER_FLUSH_S) for more. Waiting a loop turn per frame let the sender fall
            # thousands of frames behind a burst of POSTs (issue 14's soak).
            while len(batch) < window and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            deadline = asyncio.get_running_loop().time() + REORDER_FLUSH_S
            while len(batch) < window:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            if len(batch) > 1:
                shuffled = batch[:]
                random.shuffle(shuffled)
                if shuffled == batch:  # a "reorder" that keeps the order tests nothing
                    shuffled = batch[1:] + batch[:1]
                batch = shuffled
        return batch

    async def _wait_for_frames(self, heartbeat_s: float) -> bool:
        """Wait until `push` queues a frame (True) or a heartbeat is due (False)."""
        loop = asyncio.get_running_loop()
        since = loop.time()
        while True:
            # A heartbeat goes out when nothing at all was sent for a whole interval, frames
            # sent directly by `push` included.
            due = max(since, self._last_sent) + heartbeat_s - loop.time()
            if due <= 0:
                return False
            # A future that `push` resolves, and a timer: one loop turn to wake, where
            # `wait_for(queue.get())` takes three and takes the frame out of the queue before
            # this task runs (a direct send could then overtake it).
            wakeup: asyncio.Future[bool] = loop.create_future()
            self._wakeup = wakeup
            timer = loop.call_later(due, _resolve, wakeup, False)
            try:
                woken = await wakeup
            finally:
                timer.cancel()
                self._wakeup = None
            if woken or not self.queue.empty():
                return True

    async def _send_loop(self) -> None:
        heartbeat_s = self.hub.heartbeat_ms / 1000
        heartbeat = dump_frame(HeartbeatFrame())
        try:
            while not self.closed:
                batch = await self._next_batch(heartbeat_s)
                if self.silent:
                    # Half-open: nothing goes out; undelivered events stay retained for replay.
                    continue
                if batch is None:
                    await self._send_raw(heartbeat)
                    continue
                for text, delivery in batch:
                    if delivery is not None:
                        delay_ms = self.hub.delay_ms(self.negotiator_id)
                        if delay_ms:
                            await asyncio.sleep(delay_ms / 1000)
                        if self.silent or self.closed:
                            break
                    await self._send_raw(text)
                    if delivery is not None:
                        self.hub.journal_delivery(self, delivery)
                        if random.random() < self.hub.duplicate_probability(self.negotiator_id):
                            await self._send_raw(text)
                            self.hub.journal_delivery(self, delivery, duplicate=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a socket that went away mid-send: the receive loop cleans up
            _log.debug("sender of %s stopped: %s", self.id, exc)

    async def close(self, code: int, reason: str = "") -> None:
        """Send a close frame with `code` and stop sending."""
        if self.closed:
            return
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
        with contextlib.suppress(Exception):
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.close(code, reason)

    def transport(self) -> asyncio.Transport | None:
        """The TCP transport under the websocket (uvicorn's protocol object), if reachable."""
        proto = getattr(self.websocket._receive, "__self__", None)
        transport = getattr(proto, "transport", None)
        return transport if isinstance(transport, asyncio.Transport) else None

    async def abort(self) -> None:
        """Cut the TCP connection without a close frame (the client sees 1006)."""
        transport = self.transport()
        if transport is None:
            # Another ASGI server hides its transport: the closest we can do is an error close.
            await self.close(1011, "dropped")
            return
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
        transport.abort()

    def go_silent(self) -> None:
        """Stop sending anything and stop reading (so pings go unanswered): a half-open link."""
        self.silent = True
        transport = self.transport()
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.pause_reading()

    async def finish(self) -> None:
        """Stop the sender once the socket is gone."""
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender


class Hub:
    """Connections, channels and faults for one backend run (`epoch`)."""

    def __init__(
        self,
        *,
        heartbeat_ms: int,
        retention_s: float,
        retention_max: int,
        journal: Callable[[dict[str, Any]], None],
    ) -> None:
        self.heartbeat_ms = heartbeat_ms
        self.retention_s = retention_s
        self.retention_max = retention_max
        self._journal = journal
        self.epoch = ""
        self.channels: dict[str, Channel] = {}
        self.connections: dict[str, Connection] = {}
        # The same connections by negotiator, so a delivery visits only its recipient's sockets.
        self._by_negotiator: dict[str, dict[str, Connection]] = {}
        # (notification id, text before seq, text after seq) of the last frame serialised: a
        # hunt group's recipients differ only in `seq`, so one dump serves them all.
        self._frame_parts: tuple[str, str, str] | None = None
        self.faults: list[Fault] = []
        self._sent: list[tuple[Connection, Delivery]] = []  # sent directly, not yet journaled
        self.store: Store | None = None  # `--state-dir`: see `attach`
        self.new_epoch()

    def new_epoch(self) -> None:
        """Start a new backend run: numbering restarts and retained events are forgotten."""
        self.epoch = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)
        self.channels = {}
        if self.store is not None:
            self.store.new_epoch(self.epoch)

    def attach(self, store: Store) -> None:
        """Keep numbering and unacknowledged events in `store`, resuming what it holds.

        A mock restarted on the same state is the same run: its epoch, each negotiator's next
        `seq` and every unacknowledged event carry on, so an agent's `resume` gets them all
        with `complete: true`. (`MockServer.restart()` still starts a new epoch.)
        """
        epoch = store.meta("epoch")
        if epoch is None:
            store.new_epoch(self.epoch)
        else:
            self.epoch = epoch
            self.channels = {}
            for negotiator_id, next_seq, lost_upto in store.channels():
                self.channels[negotiator_id] = Channel(next_seq=next_seq, lost_upto=lost_upto)
            now_mono, now_wall = time.monotonic(), time.time()
            for row in store.retained():
                try:
                    envelope = validate_envelope(row.envelope, strict=False)
                except ValidationFailed as exc:  # written by this code: should not happen
                    _log.warning("dropping a kept event that no longer validates: %s", exc)
                    continue
                age = max(0.0, now_wall - row.retained_wall)
                self.channel(row.negotiator_id).retained[row.seq] = Delivery(
                    row.seq, row.notification_id, row.text, envelope, now_mono - age)
        self.store = store

    # -- faults ---------------------------------------------------------------------------------

    def _persistent(self, kind: str, negotiator_id: str) -> Fault | None:
        found = None
        for f in self.faults:
            if f.kind == kind and f.matches(negotiator_id):
                found = f  # the most recent one wins
        return found

    def delay_ms(self, negotiator_id: str) -> int:
        f = self._persistent("delay", negotiator_id)
        return int(f.params.get("ms", 0)) if f else 0

    def duplicate_probability(self, negotiator_id: str) -> float:
        f = self._persistent("duplicate", negotiator_id)
        return float(f.params.get("probability", 1.0)) if f else 0.0

    def reorder_window(self, negotiator_id: str) -> int:
        f = self._persistent("reorder", negotiator_id)
        return int(f.params.get("window", 3)) if f else 0

    def plain(self, negotiator_id: str) -> bool:
        """No delay, duplicate or reorder fault applies: a frame may go out at once."""
        return not self.faults or not (
            self.delay_ms(negotiator_id) or self.duplicate_probability(negotiator_id)
            or self.reorder_window(negotiator_id) > 1
        )

    def reject_status(self, negotiator_id: str | None) -> int | None:
        for f in reversed(self.faults):
            if f.kind == "reject" and (
                f.negotiator_id is None or f.negotiator_id == negotiator_id
            ):
                return int(f.params.get("status", 503))
        return None

    def _targets(self, negotiator_id: str | None) -> list[Connection]:
        return [
            c for c in self.connections.values()
            if not c.closed and (negotiator_id is None or c.negotiator_id == negotiator_id)
        ]

    async def apply_fault(
        self, kind: str, negotiator_id: str | None, params: dict[str, Any]
    ) -> int:
        """Apply a fault; return how many live connections it affected."""
        targets = self._targets(negotiator_id)
        if kind == "drop":
            await asyncio.gather(*(c.abort() for c in targets))
            return len(targets)
        if kind == "close":
            code = int(params.get("code", 1000))
            reason = str(params.get("reason", ""))
            await asyncio.gather(*(c.close(code, reason) for c in targets))
            return len(targets)
        if kind == "silence":
            for c in targets:
                c.go_silent()
            return len(targets)
        self.faults.append(Fault(kind, negotiator_id, params))
        return len(targets)

    # -- connections ----------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        """Register an accepted connection and start its sender."""
        self.connections[conn.id] = conn
        self._by_negotiator.setdefault(conn.negotiator_id, {})[conn.id] = conn
        conn.start()

    def remove(self, conn: Connection) -> None:
        """Forget a connection that has gone."""
        self.connections.pop(conn.id, None)
        mine = self._by_negotiator.get(conn.negotiator_id)
        if mine is not None:
            mine.pop(conn.id, None)
            if not mine:
                del self._by_negotiator[conn.negotiator_id]

    async def close_all(self, code: int, reason: str = "") -> None:
        """Close every live connection with `code` (1001 on stop, 1012 on restart)."""
        await asyncio.gather(
            *(c.close(code, reason) for c in list(self.connections.values())),
            return_exceptions=True,
        )

    # -- delivery -------------------------------------------------------------------------------

    def channel(self, negotiator_id: str) -> Channel:
        return self.channels.setdefault(negotiator_id, Channel())

    def _prune(self, negotiator_id: str, ch: Channel) -> None:
        horizon = time.monotonic() - self.retention_s
        dropped: list[int] = []
        while ch.retained:
            seq, d = next(iter(ch.retained.items()))
            if len(ch.retained) > self.retention_max or d.retained_at < horizon:
                ch.retained.popitem(last=False)
                ch.lost_upto = max(ch.lost_upto, seq)
                dropped.append(seq)
            else:
                break
        if dropped and self.store is not None:
            self.store.drop(negotiator_id, dropped, ch.lost_upto)

    def deliver(
        self, negotiator_id: str, envelope: Envelope, notification_id: str, sent_at: datetime
    ) -> Delivery:
        """Number the event for this negotiator, retain it, and push it to matching sockets."""
        delivery = self.retain(negotiator_id, envelope, notification_id, sent_at)
        self.push(negotiator_id, delivery)
        return delivery

    def retain(
        self, negotiator_id: str, envelope: Envelope, notification_id: str, sent_at: datetime
    ) -> Delivery:
        """Number the event for this negotiator and retain it (in the store too), unsent.

        With a store, call it inside `store.transaction()` and `push` once that committed: an
        event goes out only once it is kept, so its `seq` is never given to another after a
        crash.
        """
        ch = self.channel(negotiator_id)
        seq = ch.next_seq
        ch.next_seq += 1
        text = self._frame_text(envelope, notification_id, seq, sent_at)
        delivery = Delivery(seq, notification_id, text, envelope, time.monotonic())
        ch.retained[seq] = delivery
        if self.store is not None:
            self.store.retain(negotiator_id, seq, notification_id, text, envelope.to_wire(),
                              ch.next_seq)
        self._prune(negotiator_id, ch)
        return delivery

    def push(self, negotiator_id: str, delivery: Delivery) -> None:
        """Send a retained event to the negotiator's sockets whose product it names."""
        envelope = delivery.envelope
        for conn in list(self._by_negotiator.get(negotiator_id, {}).values()):
            if envelope.for_product(conn.product):
                conn.push(delivery.text, delivery)

    def _frame_text(
        self, envelope: Envelope, notification_id: str, seq: int, sent_at: datetime
    ) -> str:
        parts = self._frame_parts
        if parts is None or parts[0] != notification_id:
            text = dump_frame(NotificationFrame(seq=seq, sentAt=sent_at, notification=envelope))
            head = f'{{"type":"notification","seq":{seq},'
            if not text.startswith(head):  # another field order: dump each frame whole
                self._frame_parts = None
                return text
            self._frame_parts = (notification_id, head[: -len(f"{seq},")], text[len(head) - 1:])
            return text
        return f"{parts[1]}{seq}{parts[2]}"

    def ack(self, negotiator_id: str, seq: int) -> bool:
        """Forget an acknowledged event; False when it was not retained."""
        known = self.channel(negotiator_id).retained.pop(seq, None) is not None
        if known and self.store is not None:
            self.store.drop(negotiator_id, [seq])
        return known

    def resume(self, conn: Connection, epoch: str, last_seq: int) -> tuple[int, bool]:
        """Queue the unacknowledged events after `last_seq`, then `replayed`; return both."""
        ch = self.channel(conn.negotiator_id)
        self._prune(conn.negotiator_id, ch)
        same_epoch = epoch == self.epoch
        after = last_seq if same_epoch else 0
        replay = [
            d for s, d in ch.retained.items()
            if s > after and d.envelope.for_product(conn.product)
        ]
        complete = same_epoch and ch.lost_upto <= last_seq
        for d in replay:
            conn.push(d.text, d)
        conn.push(dump_frame(ReplayedFrame(count=len(replay), complete=complete)))
        return len(replay), complete

    def journal_soon(self, conn: Connection, d: Delivery) -> None:
        """Journal a delivery sent directly, on the next loop turn: a hunt group's sockets all
        get their frame first, and the entries follow the notification's own, as before."""
        if not self._sent:
            asyncio.get_running_loop().call_soon(self._journal_sent)
        self._sent.append((conn, d))

    def _journal_sent(self) -> None:
        sent, self._sent = self._sent, []
        ts = utc_iso(datetime.now(UTC))
        for conn, d in sent:
            self.journal_delivery(conn, d, ts=ts)

    def journal_delivery(self, conn: Connection, d: Delivery, *, duplicate: bool = False,
                         ts: str | None = None) -> None:
        """Journal that `d` went out on `conn`."""
        entry: dict[str, Any] = {
            "kind": "delivery",
            "ts": ts or utc_iso(datetime.now(UTC)),
            "negotiatorId": conn.negotiator_id,
            "connectionId": conn.id,
            "seq": d.seq,
            "notificationId": d.notification_id,
            "subType": d.envelope.subType,
            "callId": d.envelope.payload.id,
        }
        if duplicate:
            entry["duplicate"] = True
        self._journal(entry)
