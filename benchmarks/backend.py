"""The mock backend as a benchmark child process: prints its address, obeys stdin commands.

    python benchmarks/backend.py [--heartbeat-ms MS] [--negotiators N]
                                 [--patch fanout|nodelay|restart|sender|nodeflate]

First stdout line: `{"baseUrl", "providerToken", "pid"}`. Commands on stdin, one per line, each
answered by one JSON line: `restart` (what `MockServer.restart()` does, same port, new epoch;
`{"t0", "tDown", "t1"}`: command, old server gone, new one listening),
`pid`. EOF or `quit` stops it. `--negotiators N` adds negotiators `B0001`..`BNNNN` to the seed
(fan-out to 1,000). `--patch NAME` (fanout, nodelay, restart, sender, nodeflate) applies a
change proposed in BENCHMARKS.md, so the before/after can be measured without editing the
product.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import raise_nofile


def bench_negotiator(i: int) -> str:
    """The id of the i-th (1-based) benchmark negotiator."""
    return f"B{i:04d}"


def write_seed(n: int, directory: Path) -> Path:
    """A seed file: the demo negotiators plus `n` benchmark ones."""
    from tapi_agent.mock.seed import NEGOTIATORS

    extra = [
        {"id": bench_negotiator(i), "name": f"Bench Negotiator {i}", "jobTitle": "Negotiator",
         "officeId": "OXF", "workPhone": "01865 000999", "mobilePhone": "07700 900999",
         "email": f"bench{i}@example.com", "active": True}
        for i in range(1, n + 1)
    ]
    path = directory / "seed.json"
    path.write_text(json.dumps({"negotiators": [*NEGOTIATORS, *extra]}), encoding="utf-8")
    return path


def patch_fanout() -> None:
    """The proposed `Hub.deliver`: connections indexed by negotiator, the envelope dumped once.

    Product code is untouched; this replaces the method in this process only, to measure the
    change before proposing it.
    """
    import time as _time
    from datetime import datetime

    from tapi_agent.mock import hub as hub_mod
    from tapi_agent.mock.hub import Delivery, Hub
    from tapi_agent.protocol import NotificationFrame, dump_frame

    cache: dict[int, tuple[object, str, str]] = {}

    def by_negotiator(self: Hub) -> dict[str, list[hub_mod.Connection]]:
        index: dict[str, list[hub_mod.Connection]] = {}
        for conn in self.connections.values():
            index.setdefault(conn.negotiator_id, []).append(conn)
        return index

    def frame_text(envelope: object, seq: int, sent_at: datetime) -> str:
        # One serialisation per notification: only `seq` differs between recipients.
        key = id(envelope)
        hit = cache.get(key)
        if hit is None or hit[0] is not envelope:
            probe = dump_frame(NotificationFrame(seq=1, sentAt=sent_at,
                                                 notification=envelope))  # type: ignore[arg-type]
            head, tail = probe.split('"seq":1', 1)
            cache.clear()
            hit = (envelope, head, tail)
            cache[key] = hit
        return f'{hit[1]}"seq":{seq}{hit[2]}'

    orig_add, orig_remove = Hub.add, Hub.remove

    def add(self: Hub, conn: hub_mod.Connection) -> None:
        orig_add(self, conn)
        self.__dict__.setdefault("_index", {}).setdefault(conn.negotiator_id, {})[conn.id] = conn

    def remove(self: Hub, conn: hub_mod.Connection) -> None:
        orig_remove(self, conn)
        self.__dict__.setdefault("_index", {}).get(conn.negotiator_id, {}).pop(conn.id, None)

    def deliver(self: Hub, negotiator_id: str, envelope: object, notification_id: str,
                sent_at: datetime) -> Delivery:
        ch = self.channel(negotiator_id)
        seq = ch.next_seq
        ch.next_seq += 1
        text = frame_text(envelope, seq, sent_at)
        delivery = Delivery(seq, notification_id, text, envelope,  # type: ignore[arg-type]
                            _time.monotonic())
        ch.retained[seq] = delivery
        self._prune(ch)
        for conn in self.__dict__.get("_index", {}).get(negotiator_id, {}).values():
            if envelope.for_product(conn.product):  # type: ignore[attr-defined]
                conn.push(delivery.text, delivery)
        return delivery

    Hub.add = add  # type: ignore[method-assign]
    Hub.remove = remove  # type: ignore[method-assign]
    Hub.deliver = deliver  # type: ignore[method-assign,assignment]
    _ = by_negotiator


def patch_nodelay() -> None:
    """The proposed `MockServer._bind`: the listening socket is created with `IPPROTO_TCP`.

    asyncio turns on TCP_NODELAY only for sockets whose `proto` is IPPROTO_TCP, and accepted
    sockets inherit the listener's `proto` (0 when not given). Without NODELAY, uvicorn's
    response (headers and body in two writes) waits for the client's delayed ACK: ~40 ms.
    """
    import socket

    from tapi_agent.mock.server import MockServer

    def bind(self: MockServer) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        return sock

    MockServer._bind = bind  # type: ignore[method-assign]


def patch_sender() -> None:
    """The proposed `Connection._next_batch`: take every frame already queued in one go.

    As is, each frame costs an `asyncio.wait_for(queue.get())` (a task and a timer) and a turn
    of the event loop, so under load the sender falls behind the POST handlers that feed it.
    Reorder faults keep the original path.
    """
    import asyncio

    from tapi_agent.mock.hub import Connection

    original = Connection._next_batch

    async def next_batch(self: Connection, heartbeat_s: float) -> Any:
        if self.queue.empty() or self.hub.reorder_window(self.negotiator_id) > 1:
            return await original(self, heartbeat_s)
        batch = [self.queue.get_nowait()]
        while not self.queue.empty() and len(batch) < 256:
            batch.append(self.queue.get_nowait())
        await asyncio.sleep(0)  # still one turn of the loop per batch, as before per frame
        return batch

    Connection._next_batch = next_batch  # type: ignore[method-assign]


def patch_nodeflate() -> None:
    """Proposed: no permessage-deflate on the stream. Frames are a few hundred bytes (a hunt
    group's carries every target's id), compressed once per socket: for a 1,000-negotiator hunt
    group that is 1,000 deflates of ~10 KB in the backend's one thread."""
    import functools

    import uvicorn

    uvicorn.Config = functools.partial(  # type: ignore[misc,assignment]
        uvicorn.Config, ws_per_message_deflate=False)


def patch_restart() -> None:
    """The proposed `MockServer._shutdown`: stop listening first, then close the websockets.

    As is, sockets get their close code while the server still accepts: clients that reconnect
    at once (the agent does on 1012) get in, nobody closes them, and uvicorn's graceful shutdown
    waits its full 2 s for them.
    """
    import contextlib

    from tapi_agent.mock.server import MockServer

    def shutdown(self: MockServer, close_code: int) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return

            async def close_listeners() -> None:
                for listener in getattr(server, "servers", []):
                    listener.close()

            with contextlib.suppress(Exception):
                self.call(close_listeners(), timeout=5)
            with contextlib.suppress(Exception):
                self.call(self.state.hub.close_all(close_code), timeout=5)
            server.should_exit = True
            thread.join(10)
            self._server = None
            self._thread = None
            self._loop = None

    MockServer._shutdown = shutdown  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat-ms", type=int, default=15000)
    parser.add_argument("--negotiators", type=int, default=0)
    parser.add_argument("--retention-max", type=int, default=1000)
    parser.add_argument("--patch", choices=["fanout", "nodelay", "restart", "sender", "nodeflate"],
                        action="append", default=[])
    args = parser.parse_args()
    raise_nofile(16384)
    if "fanout" in args.patch:
        patch_fanout()
    if "nodelay" in args.patch:
        patch_nodelay()
    if "restart" in args.patch:
        patch_restart()
    if "sender" in args.patch:
        patch_sender()
    if "nodeflate" in args.patch:
        patch_nodeflate()

    from tapi_agent.mock.server import CLOSE_RESTART, MockServer

    with tempfile.TemporaryDirectory(prefix="tapi-bench-") as tmp:
        seed = write_seed(args.negotiators, Path(tmp)) if args.negotiators else None
        server = MockServer(port=0, heartbeat_ms=args.heartbeat_ms,
                            retention_max=args.retention_max, seed=seed)
        server.start()
        print(json.dumps({"baseUrl": server.base_url, "providerToken": server.provider_token(),
                          "pid": __import__("os").getpid()}), flush=True)
        try:
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == "quit":
                    break
                if cmd == "restart":
                    # `MockServer.restart()` step by step, to time the moment nothing listens.
                    t0 = time.time()
                    server._shutdown(CLOSE_RESTART)
                    t_down = time.time()
                    server.state.hub.new_epoch()
                    server.start()
                    print(json.dumps({"t0": t0, "tDown": t_down, "t1": time.time()}),
                          flush=True)
                else:
                    print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
