"""Backend throughput: notifications accepted and delivered per second to one negotiator, 30 s.

    .venv/bin/python benchmarks/bench_throughput.py [--quick]

The mock backend runs in its own process. This driver keeps `--concurrency` POSTs in flight
(keep-alive connections, a minimal HTTP/1.1 client so the load generator stays cheaper than
the server) for `--seconds`, every one an incomingCall for JAS, and holds
one bare websockets client connected as JAS that acknowledges every frame as the agent does.
It reports the accepted (202) and delivered rates over the window, per-second minimum and
maximum, the delivery latency (receipt - `sentAt`) and how busy the backend and the driver
were (CPU % from /proc, 100 % = one core), which says who the bottleneck was. (The first run
also ran with proposed backend changes patched in; they are in the product now:
`results/before/throughput.json`.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Backend,
    RawHttp,
    cpu_seconds,
    envelope,
    fmt,
    parse_iso,
    percentiles,
    write_result,
)


async def run(seconds: float, concurrency: int) -> dict[str, Any]:
    backend = Backend.start()
    accepted_at: list[float] = []
    delivered_at: list[float] = []
    latency_ms: list[float] = []
    errors: Counter[str] = Counter()
    try:
        async with httpx.AsyncClient(
            base_url=backend.base_url, timeout=30,
            headers={"Authorization": f"Bearer {backend.provider_token}"},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        ) as http:
            r = await http.post("/_mock/tokens", json={"negotiatorId": "JAS"})
            r.raise_for_status()
            token = r.json()["access_token"]
            async with connect(backend.ws_url, ping_interval=None, max_queue=None,
                               additional_headers={"Authorization": f"Bearer {token}"}) as ws:

                async def receive() -> None:
                    async for raw in ws:
                        now = time.time()
                        frame = json.loads(raw)
                        if frame.get("type") != "notification":
                            continue
                        delivered_at.append(now)
                        latency_ms.append((now - parse_iso(frame["sentAt"])) * 1000)
                        await ws.send(json.dumps({"type": "ack", "seq": frame["seq"]}))

                receiver = asyncio.create_task(receive())
                stop_at = time.monotonic() + seconds
                counter = iter(range(10**9))

                async def sender() -> None:
                    client = RawHttp(backend.base_url, backend.provider_token)
                    try:
                        while time.monotonic() < stop_at:
                            n = next(counter)
                            body = envelope("incomingCall", f"tp-{n}", ["JAS"])
                            try:
                                status, _ = await client.post_json("/notifications", body)
                            except (OSError, asyncio.IncompleteReadError) as exc:
                                errors[type(exc).__name__] += 1
                                await client.close()
                                continue
                            if status == 202:
                                accepted_at.append(time.time())
                            else:
                                errors[str(status)] += 1
                    finally:
                        await client.close()

                cpu0 = (cpu_seconds(backend.pid), cpu_seconds(os.getpid()))
                t0 = time.time()
                await asyncio.gather(*(sender() for _ in range(concurrency)))
                t1 = time.time()
                cpu1 = (cpu_seconds(backend.pid), cpu_seconds(os.getpid()))
                # Let the stream catch up, then count what arrived.
                drain_deadline = time.monotonic() + 15
                while len(delivered_at) < len(accepted_at) and time.monotonic() < drain_deadline:
                    await asyncio.sleep(0.05)
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
    finally:
        backend.stop()

    window = t1 - t0
    in_window = [t for t in delivered_at if t <= t1]
    per_second = Counter(int(t - t0) for t in accepted_at if t < t0 + int(window))
    rates = [per_second.get(s, 0) for s in range(int(window))]
    return {
        "seconds": window, "concurrency": concurrency,
        "accepted": len(accepted_at), "delivered": len(delivered_at),
        "acceptedPerS": len(accepted_at) / window,
        "deliveredPerS": len(in_window) / window,
        "acceptedPerSecondMin": min(rates, default=0),
        "acceptedPerSecondMax": max(rates, default=0),
        "acceptedPerSecondSeries": rates,
        "lost": len(accepted_at) - len(delivered_at),
        "deliveryLatency": percentiles(latency_ms),
        "backendCpuPercent": 100 * (cpu1[0] - cpu0[0]) / window,
        "driverCpuPercent": 100 * (cpu1[1] - cpu0[1]) / window,
        "errors": dict(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s instead of 30 s")
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    out = asyncio.run(run(seconds, args.concurrency))
    report(out)
    write_result("throughput", out, quick=args.quick)
    return 0


def report(out: dict[str, Any]) -> None:
    print(f"accepted {out['accepted']} in {out['seconds']:.1f} s = {out['acceptedPerS']:.0f}/s "
          f"(per second {out['acceptedPerSecondMin']}..{out['acceptedPerSecondMax']})")
    print(f"delivered {out['delivered']} ({out['deliveredPerS']:.0f}/s in the window), "
          f"lost {out['lost']}, errors {out['errors']}")
    print(f"delivery latency under load: {fmt(out['deliveryLatency'])}")
    print(f"CPU: backend {out['backendCpuPercent']:.0f} %, driver {out['driverCpuPercent']:.0f} %"
          " (100 % = one core)")


if __name__ == "__main__":
    sys.exit(main())
