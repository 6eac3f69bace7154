"""Time to read one stream frame and one deferred envelope: the agent's msgspec models
(`tapi_agent/protocol/wire.py`) beside the backend's pydantic models, which the agent used
until issue 14.

    .venv/bin/python benchmarks/bench_frames.py [--quick]

Each parser reads the same text (or decoded JSON, for the envelope the API client reads from
`GET /notifications/deferred`) in a loop; the median over several rounds of the time per call
is kept. One process, after warm-up; the machine's other load shows as the spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import write_result

from tapi_agent.protocol import envelope, frames, wire

ENVELOPE: dict[str, Any] = {
    "type": "telephony", "subType": "incomingCall", "products": ["AgencyCloud"],
    "targets": {"negotiatorId": ["JAS", "RPT"]},
    "payload": {"id": "ax2uyio8p", "created": "2023-11-01T10:28:00",
                "callerId": "07123 456789", "destinationId": "01234 567890",
                "huntGroup": False},
}
FRAMES = {
    "notification": json.dumps({"type": "notification", "seq": 41,
                                "sentAt": "2026-11-30T09:00:00.000Z", "notification": ENVELOPE}),
    "welcome": json.dumps({"type": "welcome", "connectionId": "c1", "negotiatorId": "JAS",
                           "epoch": "e1", "heartbeatMs": 15000}),
    "heartbeat": '{"type":"heartbeat"}',
    "rejected (seq a string)": json.dumps({"type": "notification", "seq": "41",
                                           "sentAt": "2026-11-30T09:00:00.000Z",
                                           "notification": ENVELOPE}),
}


def per_call_us(fn: Any, number: int, rounds: int) -> dict[str, float]:
    fn()  # warm-up (first use builds the validators)
    times = [timeit.timeit(fn, number=number) / number * 1e6 for _ in range(rounds)]
    return {"medianUs": statistics.median(times), "minUs": min(times)}


def _quietly(parse: Any, raw: Any) -> Any:
    def run() -> None:
        try:  # noqa: SIM105 - cheaper than contextlib.suppress inside the timed loop
            parse(raw)
        except ValueError:
            pass
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    args = parser.parse_args()
    number, rounds = (2_000, 3) if args.quick else (20_000, 9)
    rows = []
    for name, raw in FRAMES.items():
        rows.append({"what": f"frame: {name}",
                     "msgspec": per_call_us(_quietly(wire.parse_server_frame, raw), number, rounds),
                     "pydantic": per_call_us(_quietly(frames.parse_server_frame, raw), number,
                                             rounds)})
    rows.append({"what": "envelope from decoded JSON (deferred)",
                 "msgspec": per_call_us(lambda: wire.read_envelope(ENVELOPE), number, rounds),
                 "pydantic": per_call_us(
                     lambda: envelope.validate_envelope(ENVELOPE, strict=False), number, rounds)})
    print(f"{'':42s} {'msgspec (agent)':>18s} {'pydantic (before)':>18s}   median per call")
    for row in rows:
        m, p = row["msgspec"]["medianUs"], row["pydantic"]["medianUs"]
        print(f"{row['what']:42s} {m:15.2f} us {p:15.2f} us   {p / m:5.1f}x")
    write_result("frames", {"number": number, "rounds": rounds, "rows": rows}, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
