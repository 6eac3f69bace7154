"""End-to-end latency: `POST /notifications` accepted -> `pop.shown` (first paint), with the floor.

    .venv/bin/python benchmarks/bench_latency.py [--quick]

Three processes: the mock backend (`backend.py`), the agent (`agent_harness.py`: the real
`Agent`, offscreen Qt, real websocket client, real pop cards, product logging) and this driver,
which posts the calls and holds the floor: a bare `websockets` client connected to the same
backend as the same negotiator, so it receives the very same notifications. The floor connects
first, so the hub queues each frame for it before the agent (if anything, the floor is favoured).

Per call: POST incomingCall, wait for the agent's `pop.shown`, POST endedCall, wait for
`pop.closed`. Latencies are measured from the frame's `sentAt` (the backend's accept time,
ISO 8601 with milliseconds, so both sides carry the same 0-1 ms truncation):
- floor: bytes of the frame reach the bare client's socket protocol;
- agent received: the agent's `notification.received` log record;
- agent pop: the agent's `pop.shown` log record (written in the card's first paintEvent);
- on_event: how long the GUI thread spent in `PopStack.on_event` for the incoming call.
`--display xvfb` runs the agent on Qt's xcb platform against a private Xvfb display (real
window mapping and expose events) and writes `latency-xvfb.json`.
The first calls of each agent warm up (first card built, fonts loaded) and are reported apart.
(The first run also had the product take turns with proposed changes patched in, `--patch`;
those changes are in the product now: `results/before/latency*.json`.)
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
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Backend,
    Desktop,
    agent,
    child_env,
    envelope,
    fmt,
    parse_iso,
    percentiles,
    write_result,
)


class StampingConnection(ClientConnection):
    """Stamps the arrival of bytes before websockets parses them."""

    stamp: float | None = None

    def data_received(self, data: bytes) -> None:
        if self.stamp is None:
            self.stamp = time.time()
        super().data_received(data)


async def floor_client(url: str, token: str, seen: dict[str, tuple[float, float]],
                       arrived: asyncio.Event, ready: asyncio.Event) -> None:
    """The bare client: connect, then note (receipt, sentAt) of each incomingCall."""
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                       ping_interval=None, create_connection=StampingConnection) as ws:
        assert isinstance(ws, StampingConnection)
        ws.stamp = None  # the handshake's bytes are not a frame
        ready.set()
        async for raw in ws:
            stamp = ws.stamp or time.time()
            ws.stamp = None
            frame = json.loads(raw)
            if frame.get("type") != "notification":
                continue
            env = frame["notification"]
            if env["subType"] == "incomingCall":
                seen[env["payload"]["id"]] = (stamp, parse_iso(frame["sentAt"]))
                arrived.set()


async def run_rows(calls: int, warmup: int, agent_args: tuple[str, ...] = (),
                   env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One backend, one agent, one floor client: `warmup + calls` calls, one row each."""
    backend = Backend.start()
    try:
        async with httpx.AsyncClient(
            base_url=backend.base_url, timeout=10,
            headers={"Authorization": f"Bearer {backend.provider_token}"},
        ) as http:
            r = await http.post("/_mock/tokens", json={"negotiatorId": "JAS"})
            r.raise_for_status()
            seen: dict[str, tuple[float, float]] = {}
            arrived, ready = asyncio.Event(), asyncio.Event()
            floor = asyncio.create_task(
                floor_client(backend.ws_url, r.json()["access_token"], seen, arrived, ready))
            await asyncio.wait_for(ready.wait(), 10)

            rows: list[dict[str, Any]] = []
            async with agent(backend.base_url, *agent_args, env=env) as a:
                for i in range(warmup + calls):
                    call_id = f"lat-{i:04d}"
                    resp = await http.post("/notifications",
                                           json=envelope("incomingCall", call_id, ["JAS"]))
                    assert resp.status_code == 202, resp.text
                    received = await a.wait_for("notification.received", callId=call_id,
                                                subType="incomingCall", timeout=10)
                    handled = await a.wait_for("harness.on_event", callId=call_id, timeout=10)
                    shown = await a.wait_for("pop.shown", callId=call_id, timeout=10)
                    while call_id not in seen:
                        arrived.clear()
                        await asyncio.wait_for(arrived.wait(), 10)
                    floor_at, sent_at = seen.pop(call_id)
                    resp = await http.post("/notifications",
                                           json=envelope("endedCall", call_id, ["JAS"]))
                    assert resp.status_code == 202, resp.text
                    await a.wait_for("pop.closed", callId=call_id, timeout=10)
                    rows.append({
                        "callId": call_id, "warmup": i < warmup,
                        "floorMs": (floor_at - sent_at) * 1000,
                        "receivedMs": (received["t"] - sent_at) * 1000,
                        "popMs": (shown["t"] - sent_at) * 1000,
                        "onEventMs": handled["ms"],
                        # received (worker thread) -> on_event starts (GUI thread): the queued
                        # signal's wait; on_event ends -> first paint: the event loop's turn.
                        "queueMs": (handled["t"] - handled["ms"] / 1000 - received["t"]) * 1000,
                        "paintAfterMs": (shown["t"] - handled["t"]) * 1000,
                        "loggedLatencyMs": shown.get("latencyMs"),
                    })
            floor.cancel()
            await asyncio.gather(floor, return_exceptions=True)
    finally:
        backend.stop()

    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of the measured (not warm-up) rows, and the targets."""
    measured = [r for r in rows if not r["warmup"]]
    out: dict[str, Any] = {
        "calls": len(measured), "warmup": len(rows) - len(measured),
        "floor": percentiles([r["floorMs"] for r in measured]),
        "agentReceived": percentiles([r["receivedMs"] for r in measured]),
        "agentPop": percentiles([r["popMs"] for r in measured]),
        "agentOnEventCpu": percentiles([r["onEventMs"] for r in measured]),
        "agentQueue": percentiles([r["queueMs"] for r in measured]),
        "agentPaintAfter": percentiles([r["paintAfterMs"] for r in measured]),
        "agentPopLogged": percentiles([float(r["loggedLatencyMs"]) for r in measured
                                       if r["loggedLatencyMs"] is not None]),
        "warmupPopMs": [r["popMs"] for r in rows if r["warmup"]],
        "samples": rows,
    }
    out["gapP50Ms"] = out["agentPop"]["p50"] - out["floor"]["p50"]
    out["targets"] = {
        "p50 within 5 ms of the floor": out["gapP50Ms"] <= 5.0,
        "p99 under 30 ms": out["agentPop"]["p99"] < 30.0,
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 calls instead of 200")
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument("--display", choices=["offscreen", "xvfb"], default="offscreen",
                        help="Qt platform of the agent: offscreen (default) or xcb on a "
                             "private Xvfb display with trayer")
    args = parser.parse_args()
    desktop = Desktop() if args.display == "xvfb" else None
    env = child_env(QT_QPA_PLATFORM="xcb", DISPLAY=f":{desktop.display}") if desktop else None
    calls = args.calls or (30 if args.quick else 200)
    try:
        rows = asyncio.run(run_rows(calls, 5, (), env))
    finally:
        if desktop is not None:
            desktop.stop()
    out = summarize(rows)
    out["display"] = args.display
    report(out)
    write_result("latency" if args.display == "offscreen" else "latency-xvfb", out,
                 quick=args.quick)
    return 0


def report(out: dict[str, Any]) -> None:
    print(f"floor (bare websockets client): {fmt(out['floor'])}")
    print(f"agent notification.received:    {fmt(out['agentReceived'])}")
    print(f"agent pop.shown (first paint):  {fmt(out['agentPop'])}")
    print(f"  received -> on_event starts:  {fmt(out['agentQueue'])}")
    print(f"  PopStack.on_event:            {fmt(out['agentOnEventCpu'])}")
    print(f"  on_event ends -> first paint: {fmt(out['agentPaintAfter'])}")
    print(f"warm-up pops: {', '.join(f'{v:.1f}' for v in out['warmupPopMs'])} ms")
    print(f"p50 gap to the floor: {out['gapP50Ms']:.2f} ms; targets: {out['targets']}")


if __name__ == "__main__":
    sys.exit(main())
