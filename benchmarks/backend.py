"""The mock backend as a benchmark child process: prints its address, obeys stdin commands.

    python benchmarks/backend.py [--heartbeat-ms MS] [--negotiators N] [--retention-max N]
                                 [--journal-max N]

First stdout line: `{"baseUrl", "providerToken", "pid"}`. Commands on stdin, one per line, each
answered by one JSON line: `restart` (what `MockServer.restart()` does, same port, new epoch;
`{"t0", "tDown", "t1"}`: command, old server gone, new one listening),
`pid`. EOF or `quit` stops it. `--negotiators N` adds negotiators `B0001`..`BNNNN` to the seed
(fan-out to 1,000). (The first benchmark run also had `--patch NAME` options that applied a
proposed change to this process; they were removed once the product made those changes: see
`results/before/` and BENCHMARKS.md, "What changed".)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import raise_nofile


def bench_negotiator(i: int) -> str:
    """The id of the i-th (1-based) benchmark negotiator."""
    return f"B{i:04d}"


def write_seed(n: int, directory: Path) -> Path:
    """A seed file: the demo negotiators plus `n` benchmark ones."""
    from tapi_agent.mock.seed import NEGOTIATORS

    extra = [
        {"id": bench_negotiator(i), "name": f"Bench Negotiator {i}", "jobTitle": "Negotiator",
         "officeId": "OXF", "workPhone": "01865 000999", "mobilePhone": "07700 900999",
         "email": f"bench{i}@example.com", "active": True}
        for i in range(1, n + 1)
    ]
    path = directory / "seed.json"
    path.write_text(json.dumps({"negotiators": [*NEGOTIATORS, *extra]}), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat-ms", type=int, default=15000)
    parser.add_argument("--negotiators", type=int, default=0)
    parser.add_argument("--retention-max", type=int, default=1000)
    parser.add_argument("--journal-max", type=int, default=0,
                        help="keep this many /_mock/journal entries (default: the mock's 10,000)")
    args = parser.parse_args()
    raise_nofile(16384)
    if args.journal_max:
        import tapi_agent.mock.state

        tapi_agent.mock.state.JOURNAL_MAX = args.journal_max

    from tapi_agent.mock.server import CLOSE_RESTART, MockServer

    with tempfile.TemporaryDirectory(prefix="tapi-bench-") as tmp:
        seed = write_seed(args.negotiators, Path(tmp)) if args.negotiators else None
        server = MockServer(port=0, heartbeat_ms=args.heartbeat_ms,
                            retention_max=args.retention_max, seed=seed)
        server.start()
        print(json.dumps({"baseUrl": server.base_url, "providerToken": server.provider_token(),
                          "pid": __import__("os").getpid()}), flush=True)
        try:
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == "quit":
                    break
                if cmd == "restart":
                    # `MockServer.restart()` step by step, to time the moment nothing listens.
                    t0 = time.time()
                    server._shutdown(CLOSE_RESTART)
                    t_down = time.time()
                    server.state.hub.new_epoch()
                    server.start()
                    print(json.dumps({"t0": t0, "tDown": t_down, "t1": time.time()}),
                          flush=True)
                else:
                    print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
