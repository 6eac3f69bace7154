"""The fan-out floor: a minimal websockets server that broadcasts one frame to every client.

    python benchmarks/floor_broadcast.py

Prints `{"port": N}`. Clients connect to `/stream`; a client on `/trigger` sends an envelope
(JSON text) and the server wraps it in a notification frame once and broadcasts that text to
every `/stream` client, then answers `ok`. No auth, no validation, no per-client numbering:
the least work that gets the same bytes to the same sockets. No permessage-deflate either,
as the mock backend: with `websockets`' default the floor compressed the frame once per
socket, work the mock does not do (most of its time at 1,000 clients).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.server import ServerConnection, broadcast, serve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import raise_nofile

clients: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else ""
    if path.startswith("/trigger"):
        async for raw in ws:
            sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            text = json.dumps({"type": "notification", "seq": 1, "sentAt": sent_at,
                               "notification": json.loads(raw)}, separators=(",", ":"))
            broadcast(clients, text)
            await ws.send("ok")
        return
    clients.add(ws)
    try:
        await ws.wait_closed()
    finally:
        clients.discard(ws)


async def main() -> int:
    raise_nofile(16384)
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, backlog=2048,
                     compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()  # until EOF
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
