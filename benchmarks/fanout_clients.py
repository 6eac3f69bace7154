"""N websocket clients in one process, for the fan-out benchmark (mock backend or floor server).

    python benchmarks/fanout_clients.py --url WS_URL --count N [--mint HTTP_BASE]

With `--mint`, each client k connects as negotiator `B000k` with a token from
`POST /_mock/tokens`; without, it connects bare (the floor server needs no auth). Prints
`{"ready": N}` once all are connected. Then for each stdin line `report CALL_ID` it waits until
every client has received a notification for that call and prints
`{"callId", "count", "sentAt", "first", "last"}` (epoch seconds of the first and last
receipt; `sentAt` as the server stamped the frame).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import bench_negotiator
from common import raise_nofile


class StampingConnection(ClientConnection):
    """Stamps when bytes reach this socket's protocol, before websockets parses them: the
    receipt time does not include the queueing behind other sockets' frame handling here."""

    stamp: float | None = None

    def data_received(self, data: bytes) -> None:
        if self.stamp is None:
            self.stamp = time.time()
        super().data_received(data)


received: dict[str, list[float]] = defaultdict(list)
sent_at: dict[str, str] = {}
arrived = asyncio.Event()


async def client(ws: StampingConnection) -> None:
    async for raw in ws:
        now = ws.stamp or time.time()
        ws.stamp = None
        # Cheap prefix test first so heartbeats and welcome cost nothing to skip.
        if '"notification"' not in raw[:40]:
            continue
        frame = json.loads(raw)
        call_id = frame["notification"]["payload"]["id"]
        received[call_id].append(now)
        sent_at.setdefault(call_id, frame["sentAt"])
        arrived.set()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mint", default="")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    raise_nofile(16384)

    tokens: list[str | None] = [None] * args.count
    if args.mint:
        async with httpx.AsyncClient(base_url=args.mint, timeout=30) as http:
            sem = asyncio.Semaphore(20)

            async def mint(i: int) -> None:
                async with sem:
                    r = await http.post("/_mock/tokens",
                                        json={"negotiatorId": bench_negotiator(i + 1)})
                    r.raise_for_status()
                    tokens[i] = r.json()["access_token"]

            await asyncio.gather(*(mint(i) for i in range(args.count)))

    sockets: list[StampingConnection] = []
    sem = asyncio.Semaphore(50)

    async def open_one(i: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[i]}"} if tokens[i] else None
        async with sem:
            ws = await connect(args.url, additional_headers=headers, ping_interval=None,
                               max_queue=None, open_timeout=60,
                               create_connection=StampingConnection)
        assert isinstance(ws, StampingConnection)
        ws.stamp = None  # the handshake's bytes are not a frame
        sockets.append(ws)

    await asyncio.gather(*(open_one(i) for i in range(args.count)))
    tasks = [asyncio.create_task(client(ws)) for ws in sockets]
    print(json.dumps({"ready": len(sockets)}), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if not line.startswith("report "):
            break
        call_id = line.split(" ", 1)[1]
        deadline = time.monotonic() + args.timeout
        while len(received[call_id]) < args.count and time.monotonic() < deadline:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        times = received.pop(call_id, [])
        print(json.dumps({"callId": call_id, "count": len(times),
                          "sentAt": sent_at.pop(call_id, None),
                          "first": min(times, default=0), "last": max(times, default=0)}),
              flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
