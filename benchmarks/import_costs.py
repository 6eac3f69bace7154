"""What each dependency adds to the agent's start-up time and resident memory.

    .venv/bin/python benchmarks/import_costs.py [--quick]

Imports the agent's dependencies one after another in a fresh process (after a QApplication,
as the agent does) and notes the wall time and the RSS growth of each step; the same sequence
runs several times and the medians are kept. Explains the start-up and RSS gaps that
`bench_footprint.py` measures. Both series hide `click`, as the installer does (httpx then skips
importing its command-line tool: click, rich, pygments). The first is the agent as it starts
(`tapi_agent.app._qt_app` stops PySide6's feature hook from keeping the source of every module
imported after Qt: `tapi_agent/ui/feature_scan.py`); the second leaves the hook as it is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, child_env, write_result

STEPS = [
    ("PySide6 QtWidgets + QApplication",
     "if MODE == 'shipped':\n"
     "    from tapi_agent.ui.feature_scan import skip_feature_source_scan\n"
     "    skip_feature_source_scan()\n"
     "from PySide6.QtWidgets import QApplication; _app = QApplication([])"),
    ("asyncio", "import asyncio"),
    # The agent reads frames and envelopes with msgspec (issue 14); until then these two steps
    # were pydantic (4.4 MiB) and the pydantic models of tapi_agent.protocol (6.6 MiB).
    ("msgspec", "import msgspec"),
    ("tapi_agent.protocol.wire (models)", "import tapi_agent.protocol.wire"),
    ("websockets client", "import websockets.asyncio.client"),
    ("httpx", "import httpx"),
    ("truststore + ssl", "import truststore, ssl"),
    ("phonenumbers", "import phonenumbers; phonenumbers.parse('07123 456789', 'GB')"),
    ("keyring", "import keyring"),
    ("tapi_agent.ui (tray, popstack, popup)",
     "import tapi_agent.ui.tray, tapi_agent.ui.popstack, tapi_agent.ui.popup"),
    ("tapi_agent.net (stream, api)", "import tapi_agent.net.stream, tapi_agent.net.api"),
    ("tapi_agent.app", "import tapi_agent.app"),
]

CHILD = """
import json, sys, time
sys.modules["click"] = None  # as the installer ships it: httpx skips its CLI
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
out = []
base = rss()
for name, code in json.loads(sys.argv[1]):
    t = time.perf_counter(); r = rss()
    exec(code, {"MODE": sys.argv[2]})
    out.append([name, (time.perf_counter() - t) * 1000, rss() - r])
print(json.dumps({"baseRssKb": base, "steps": out}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 7")
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    samples: dict[str, list[dict[str, Any]]] = {"shipped": [], "scan": []}
    for _ in range(runs):
        for mode in samples:
            r = subprocess.run([PYTHON, "-c", CHILD, json.dumps(STEPS), mode],
                               capture_output=True, text=True, env=child_env(), cwd=ROOT,
                               check=True)
            samples[mode].append(json.loads(r.stdout.strip().splitlines()[-1]))
    steps = []
    for i, (name, _code) in enumerate(STEPS):
        steps.append({
            "step": name,
            "ms": statistics.median(s["steps"][i][1] for s in samples["shipped"]),
            "rssKb": statistics.median(s["steps"][i][2] for s in samples["shipped"]),
            "msScan": statistics.median(s["steps"][i][1] for s in samples["scan"]),
            "rssKbScan": statistics.median(s["steps"][i][2] for s in samples["scan"]),
        })
    base = statistics.median(s["baseRssKb"] for s in samples["shipped"])
    print(f"interpreter alone: RSS {base / 1024:.1f} MiB   (second pair: PySide6's feature "
          "hook left keeping every module's source)")
    for st in steps:
        print(f"+ {st['step']:42s} {st['ms']:7.1f} ms  {st['rssKb'] / 1024:6.1f} MiB   "
              f"{st['msScan']:7.1f} ms  {st['rssKbScan'] / 1024:6.1f} MiB")
    write_result("import_costs", {"runs": runs, "baseRssKb": base, "steps": steps},
                 quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
