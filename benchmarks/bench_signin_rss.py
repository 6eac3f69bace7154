"""The real `tapi-agent` process's memory after an interactive sign-in (issue 14).

    .venv/bin/python benchmarks/bench_signin_rss.py [--quick] [--python-path DIR --label NAME]

Per round: a `tapi-agent` (offscreen Qt, its own user, no keyring) signs in through `curl` as
the system browser against the mock with an issuer path (auto-approving JAS), connects, and
after 3 s of rest its RSS (`/proc/PID/status` VmRSS, median of 6 samples 0.5 s apart) is read,
with whether cryptography's extension is mapped into it (`/proc/PID/maps`). Linux only.
`--python-path` runs the agent from another source tree (e.g. a `git archive` of an older
commit, with `resources/` linked in) to compare before and after; `--label` names the result
(`results/signin_rss-NAME.json`).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

from tapi_agent.mock.server import MockServer
from tests.app.test_agent_process import free_port
from tests.app.test_single_instance_process import _command, _pump, _wait_event

POOL = "/eu-west-2_demo"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _round(mock: MockServer, python_path: str | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tapi-signin-rss-"))
    user = f"tapi-bench-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPI_AGENT_")}
    env.update(QT_QPA_PLATFORM="offscreen", USER=user, LOGNAME=user, HOME=str(tmp / "home"),
               XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
               XDG_STATE_HOME=str(tmp / "state"), XDG_CACHE_HOME=str(tmp / "cache"),
               XDG_RUNTIME_DIR=str(tmp / "run"),
               BROWSER=f"{shutil.which('curl')} -sS -L -o /dev/null %s",
               TAPI_AGENT_AUTH_ISSUER=mock.base_url + POOL,
               TAPI_AGENT_AUTH_REDIRECT_PORT=str(free_port()),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    if python_path:
        env["PYTHONPATH"] = python_path
    (tmp / "run").mkdir(mode=0o700)
    proc = subprocess.Popen([*_command(), "--server", mock.base_url, "--log-json", "-"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    try:
        started = time.perf_counter()
        _wait_event(lines, proc, "auth.state", 60, state="signed_in")
        signed_in_s = time.perf_counter() - started
        _wait_event(lines, proc, "connection.state", 60, state="connected")
        time.sleep(3)  # a benchmark: let the start-up settle
        samples = []
        for _ in range(6):
            samples.append(_rss_mib(proc.pid))
            time.sleep(0.5)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        return {"rssMiB": statistics.median(samples), "startToSignedInS": signed_in_s,
                "cryptographyMapped": "cryptography" in maps}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--python-path", metavar="DIR",
                        help="PYTHONPATH for the agent (another source tree)")
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    args = parser.parse_args()
    n = 3 if args.quick else 7
    with MockServer(issuer_path=POOL, auto_approve="JAS", heartbeat_ms=2000) as mock:
        rounds = [_round(mock, args.python_path) for _ in range(n)]
    rss = [r["rssMiB"] for r in rounds]
    result = {"pythonPath": args.python_path, "rounds": rounds,
              "rssMiBMedian": statistics.median(rss),
              "cryptographyMapped": any(r["cryptographyMapped"] for r in rounds)}
    print(f"agent RSS after sign-in: median {statistics.median(rss):.1f} MiB "
          f"(min {min(rss):.1f}, max {max(rss):.1f}, n={n}); cryptography mapped: "
          f"{result['cryptographyMapped']}")
    name = "signin_rss" + (f"-{args.label}" if args.label else "")
    print(f"wrote {write_result(name, result, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
