"""Recovery: backend restart (and a dropped connection) to the agent connected again.

    .venv/bin/python benchmarks/bench_recovery.py [--quick]

The mock backend runs in its own process and restarts on command (`MockServer.restart()`: every
socket gets close code 1012, the server stops, then serves again on the same port with a new
epoch). The agent harness (the real `Agent`) logs `connection.state`; the floor is a bare
`websockets` client in this driver that retries every 5 ms until a `welcome` arrives. Per round:
- restart: from the command to the agent's `connected` event (and from the moment the backend
  listens again, which is what the agent can do anything about);  rounds are 5.5 s apart, as
  the agent gives an instant retry only to a connection that lived 5 s (`stable_after_s`);
- drop: `POST /_mock/faults {"kind": "drop"}` cuts the TCP connections without a close frame
  (the agent sees 1006 and reconnects with its backoff policy).
(The first run also ran the restart rounds with a proposed mock change patched in; it is in
the product now: `results/before/recovery.json`.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Backend, agent, fmt, percentiles, write_result

# The agent gives instant retries only to connections that lived 5 s (core.backoff
# `stable_after_s`); back-to-back rounds would measure its flapping guard instead.
STABLE_S = 5.5


class FloorClient:
    """Reconnects as fast as it can (every 5 ms); notes when each `welcome` arrives."""

    def __init__(self, url: str, base_url: str) -> None:
        self.url, self.base_url = url, base_url
        self.welcomes: list[float] = []
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as http:
            token = ""
            while True:
                try:
                    if not token:
                        r = await http.post("/_mock/tokens", json={"negotiatorId": "RPT"})
                        token = r.json()["access_token"]
                    # Pings every 0.5 s: a socket the old server accepted while shutting down
                    # and then left open (see BENCHMARKS.md) is given up within a second.
                    async with connect(self.url, ping_interval=0.5, ping_timeout=0.5,
                                       open_timeout=5,
                                       additional_headers={"Authorization": f"Bearer {token}"}
                                       ) as ws:
                        async for raw in ws:
                            if json.loads(raw).get("type") == "welcome":
                                self.welcomes.append(time.time())
                                self.changed.set()
                except (OSError, WebSocketException, httpx.HTTPError, TimeoutError):
                    pass
                await asyncio.sleep(0.005)

    async def welcome_after(self, t: float, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while True:
            later = [w for w in self.welcomes if w > t]
            if later:
                return later[0]
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.monotonic()))


async def run(rounds: int) -> dict[str, Any]:
    backend = Backend.start()
    restart: list[dict[str, float]] = []
    drop: list[dict[str, float]] = []
    try:
        floor = FloorClient(backend.ws_url, backend.base_url)
        floor_task = asyncio.create_task(floor.run())
        async with agent(backend.base_url) as a, httpx.AsyncClient(
            base_url=backend.base_url, timeout=10) as http:
            await floor.welcome_after(0)
            for _ in range(rounds):
                await asyncio.sleep(STABLE_S)
                t0 = time.time()
                answer = await asyncio.to_thread(backend.command, "restart")
                # A client may get in while the old server shuts down (and be closed again):
                # only a connection made after the old server was gone is the recovery.
                ev = await a.wait_for("connection.state", timeout=60, state="connected")
                while ev["t"] < answer["tDown"]:
                    ev = await a.wait_for("connection.state", timeout=60, state="connected")
                fl = await floor.welcome_after(answer["tDown"])
                restart.append({
                    "agentMs": (ev["t"] - t0) * 1000, "floorMs": (fl - t0) * 1000,
                    "downMs": (answer["t1"] - t0) * 1000,
                    "agentAfterUpMs": (ev["t"] - answer["t1"]) * 1000,
                    "floorAfterUpMs": (fl - answer["t1"]) * 1000,
                })
            for _ in range(rounds):
                await asyncio.sleep(STABLE_S)
                t0 = time.time()
                r = await http.post("/_mock/faults", json={"kind": "drop"})
                r.raise_for_status()
                ev = await a.wait_for("connection.state", timeout=60, state="connected")
                fl = await floor.welcome_after(t0)
                drop.append({"agentMs": (ev["t"] - t0) * 1000, "floorMs": (fl - t0) * 1000})
        floor_task.cancel()
        await asyncio.gather(floor_task, return_exceptions=True)
    finally:
        backend.stop()

    def col(rows: list[dict[str, float]], key: str) -> dict[str, float]:
        return percentiles([r[key] for r in rows])

    return {
        "rounds": rounds,
        "restart": {k: col(restart, k) for k in
                    ("agentMs", "floorMs", "downMs", "agentAfterUpMs", "floorAfterUpMs")},
        "drop": {k: col(drop, k) for k in ("agentMs", "floorMs")} if drop else {},
        "samples": {"restart": restart, "drop": drop},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 8")
    args = parser.parse_args()
    rounds = 3 if args.quick else 8
    out = asyncio.run(run(rounds))
    r, d = out["restart"], out["drop"]
    print(f"restart: backend down for       {fmt(r['downMs'])}")
    print(f"restart -> agent connected:     {fmt(r['agentMs'])}")
    print(f"restart -> floor connected:     {fmt(r['floorMs'])}")
    print(f"listening -> agent connected:   {fmt(r['agentAfterUpMs'])}")
    print(f"listening -> floor connected:   {fmt(r['floorAfterUpMs'])}")
    print(f"drop -> agent connected:        {fmt(d['agentMs'])}")
    print(f"drop -> floor connected:        {fmt(d['floorMs'])}")
    write_result("recovery", out, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
