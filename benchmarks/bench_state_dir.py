"""What `tapi-agent-mock serve --state-dir` costs: POST /notifications with and without it, and
how long a restart on a full state directory takes to load. Run by hand:

    .venv/bin/python benchmarks/bench_state_dir.py [--posts 2000]

Prints one JSON object; BENCHMARKS.md ("mock --state-dir") quotes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tapi_agent.mock.server import MockServer


def _envelope(i: int, sub_type: str = "incomingCall") -> dict[str, object]:
    return {"type": "telephony", "subType": sub_type, "products": ["AgencyCloud"],
            "targets": {"negotiatorId": ["JAS", "RPT"]},
            "payload": {"id": f"bench-{i}", "created": "2026-01-01T10:00:00Z",
                        "callerId": "07123 456789", "destinationId": "01865 000100"}}


def _posts(server: MockServer, count: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {server.provider_token()}"}
    times: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for i in range(50):  # warm-up
            http.post("/notifications", json=_envelope(-i), headers=headers)
        start = time.perf_counter()
        for i in range(count):
            sub_type = "missedCall" if i % 10 == 0 else "incomingCall"
            t0 = time.perf_counter()
            r = http.post("/notifications", json=_envelope(i, sub_type), headers=headers)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 202, r.text
        total = time.perf_counter() - start
    times.sort()
    return {"p50_ms": round(statistics.median(times) * 1000, 2),
            "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 2),
            "per_s": round(count / total)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    args = parser.parse_args()
    out: dict[str, object] = {"posts": args.posts, "recipients": 2,
                              "note": "1 in 10 is a missedCall (deferred); none acknowledged"}
    with MockServer() as server:
        out["memory"] = _posts(server, args.posts)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        with MockServer(state_dir=state) as server:
            out["state_dir"] = _posts(server, args.posts)
        t0 = time.perf_counter()
        server = MockServer(state_dir=state)
        out["restart_load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        out["kept_events"] = sum(len(c.retained) for c in server.state.hub.channels.values())
        out["kept_deferred"] = sum(len(v) for v in server.state.deferred.values())
        server.stop()
        out["db_bytes"] = sum(p.stat().st_size for p in state.iterdir())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
