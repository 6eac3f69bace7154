"""GUI-thread cost of one incoming call, isolated: `PopStack.on_event` in one process.

    .venv/bin/python benchmarks/bench_popstack.py [--quick]

No sockets and no other threads: a PopStack (offscreen Qt) gets incomingCall/endedCall events
directly, with 0, 3 and 10 other calls live, and with the app's contact-cache hit (the stack
asks for contacts, the app answers at once from its cache, as `Agent._lookup_contacts` does).
Each variant runs in a fresh process. Less noisy than the end-to-end latency: it explains it.
(The first run also measured a proposed PopCard change patched in; it is in the product now:
`results/before/popstack.json`.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, child_env, fmt, percentiles, write_result

CHILD = r"""
import json, sys, time
from datetime import datetime, UTC
sys.path.insert(0, "benchmarks")
from PySide6.QtWidgets import QApplication
app = QApplication([])
live, calls = int(sys.argv[1]), int(sys.argv[3])
contacts_hit = sys.argv[2] == "1"
from tapi_agent.core.calls import CallEvent, CallSettings
from tapi_agent.core.directory import Contact
from tapi_agent.ui.popstack import PopStack

def ev(sub, cid):
    return CallEvent(sub_type=sub, call_id=cid, caller="07123 456789",
                     destination="01865 000100", hunt_group=False, answered_by=None,
                     created=datetime.now(UTC), sent_at=time.time())

stack = PopStack("JAS", call_settings=CallSettings(linger_s=0))
if contacts_hit:
    found = [Contact(id="OXF20000001", name="Mrs Emma Thompson")]
    stack.lookup_requested.connect(lambda key, number: stack.set_contacts(key, found))
for j in range(live):
    stack.on_event(ev("incomingCall", f"bg{j}"))
    app.processEvents()
incoming, ended = [], []
for i in range(calls + 20):
    t = time.perf_counter(); stack.on_event(ev("incomingCall", f"c{i}"))
    a = time.perf_counter() - t
    app.processEvents()
    t = time.perf_counter(); stack.on_event(ev("endedCall", f"c{i}"))
    b = time.perf_counter() - t
    app.processEvents()
    if i >= 20:
        incoming.append(a * 1000); ended.append(b * 1000)
print(json.dumps({"incoming": incoming, "ended": ended}))
"""


def run(live: int, contacts_hit: bool, calls: int) -> dict[str, Any]:
    r = subprocess.run(
        [PYTHON, "-c", CHILD, str(live), "1" if contacts_hit else "0", str(calls)],
        capture_output=True, text=True, env=child_env(), cwd=ROOT, check=True)
    data = json.loads(r.stdout.strip().splitlines()[-1])
    return {"incoming": percentiles(data["incoming"]), "ended": percentiles(data["ended"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 calls per variant, not 300")
    args = parser.parse_args()
    calls = 50 if args.quick else 300
    rows: list[dict[str, Any]] = []
    for live in (0, 3, 10):
        for hit in (False, True):
            res = run(live, hit, calls)
            rows.append({"live": live, "contactCacheHit": hit, "patched": False, **res})
            print(f"live {live:2d}, contact cache hit {hit!s:5s}: incoming "
                  f"{fmt(res['incoming'])}; ended p50 {res['ended']['p50']:.2f} ms")
    write_result("popstack", {"calls": calls, "rows": rows}, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
