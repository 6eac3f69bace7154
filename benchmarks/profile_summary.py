"""Summarise a py-spy raw (collapsed stacks) profile: where each thread spends its samples.

    .venv/bin/python benchmarks/profile_summary.py PROFILE.txt [--thread NAME] [--top N]

Record one with any benchmark, e.g. `BENCH_PYSPY=/tmp/agent.txt .venv/bin/python
benchmarks/bench_latency.py --no-patch` (the agent) or `BENCH_PYSPY_BACKEND=/tmp/backend.txt
... bench_throughput.py` (the backend). Prints, per thread, the functions with the most samples
including callees ("total") and excluding them ("self"), as `function (file:line)`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py:12)`."""
    if " (" not in frame:
        return frame
    func, where = frame.split(" (", 1)
    return f"{func.split(' ')[-1]} ({where.rsplit('/', 1)[-1]}"


def summarise(path: Path, thread: str, top: int) -> str:
    threads: Counter[str] = Counter()
    total: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1] if ": " in frames[0] else frames[0]
        if thread and thread not in name:
            continue
        threads[name] += n
        seen = set()
        for f in frames[1:]:
            key = frame_name(f)
            if key not in seen:
                seen.add(key)
                total.setdefault(name, Counter())[key] += n
        own.setdefault(name, Counter())[frame_name(frames[-1])] += n
    out = []
    for name, samples in threads.most_common():
        out.append(f"## thread {name}: {samples} samples")
        out.append("total  self   function")
        keys = [k for k, _ in total[name].most_common(top)]
        for k in keys:
            share, self_share = total[name][k] / samples, own[name][k] / samples
            out.append(f"{100 * share:5.1f}% {100 * self_share:5.1f}%  {k}")
        out.append("self-time leaders:")
        for k, v in own[name].most_common(top // 2):
            out.append(f"       {100 * v / samples:5.1f}%  {k}")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--thread", default="", help="only threads whose name contains this")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarise(args.profile, args.thread, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
