"""Agent footprint: start-up to tray visible, idle RSS, idle CPU and wake-ups, beside a bare tray.

    .venv/bin/python benchmarks/bench_footprint.py [--quick]

Under a private Xvfb display with `trayer` as the system tray (Qt's xcb platform, a real
XEmbed tray). The agent is `agent_harness.py --tray --tray-first --as-shipped` (the real
`Agent` with its tray, started in `run_gui`'s order, connected to the mock backend in its own
process, default 15 s heartbeat, without the modules the installer excludes); the floor is
`bare_tray.py`, a PySide6 app with one icon and one menu. Both say `harness.tray_visible` once
their icon is shown *and docked* (`Tray.docked`: its geometry is empty, then at the screen's
origin, until the tray embeds it in its panel).
- start-up: process spawn to tray visible, several rounds, alternating which goes first;
- idle: both run side by side; after a settle period, CPU seconds, RSS and per-thread context
  switches over the idle window (60 s). A thread's context switches per second bound how often
  it wakes up; the agent harness also counts every asyncio timer by the code that set it, so a
  timer firing more than once a second shows up by name.
- idle, the shipped process: the real `tapi-agent` console script (issue 14) beside them, signed
  in through the browser flow against its own `tapi-agent-mock serve --auto-approve JAS`
  (`bench_shipped.Shipped`), its session kept in a real Secret Service (`common.SecretService`);
  its RSS, CPU and wake-ups over the same window.
- idle, the stack's floor: `stack_floor.py`, the bare tray plus DESIGN.md's stack (asyncio
  worker, TLS with the OS trust store, h11, websockets, phonenumbers, msgspec...; keyring
  runs in a child process since the seventh run) used once each and no agent code: the least
  an agent on this stack can idle at.
Every agent runs from bytecode compiled beforehand, as an install has it (`compile_bytecode`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shipped import VENV_BIN, Shipped, agent_env, free_port, provider_token
from common import (
    AgentProc,
    Backend,
    Desktop,
    SecretService,
    child_env,
    compile_bytecode,
    cpu_seconds,
    fmt,
    percentiles,
    rss_kb,
    thread_wakeups,
    write_result,
)

SETTLE_S = 5.0


class ShippedStack:
    """The real `tapi-agent` command and the auto-approving mock it signs in to."""

    def __init__(self, mock: subprocess.Popen[bytes], agent: Shipped) -> None:
        self.mock, self.agent = mock, agent

    @classmethod
    async def start(cls, display: int, store: SecretService) -> ShippedStack:
        port = free_port()
        mock = subprocess.Popen(
            [str(VENV_BIN / "tapi-agent-mock"), "serve", "--port", str(port),
             "--auto-approve", "JAS"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(Exception):
                await provider_token(base)
                break
            await asyncio.sleep(0.1)
        profile = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
        agent = await Shipped.start(base, agent_env(profile, display, store))
        await agent.expect(lambda e: e.get("event") == "connection.state"
                           and e.get("state") == "connected", 60, "connected")
        return cls(mock, agent)

    async def stop(self) -> None:
        await self.agent.stop()
        self.mock.terminate()
        self.mock.wait(10)


# kind -> (script, extra arguments). The agent runs `--as-shipped`: without the modules the
# installer leaves out (httpx, httpcore, anyio, click, rich, pygments). "agent" starts as
# `run_gui` does (tray first, the rest once the icon is docked).
# Idle only: "agent-pyside-scan" is the agent without the fix for PySide6's feature hook (which
# keeps the source of every module imported after Qt: `tapi_agent/ui/feature_scan.py`), to show
# what that fix is worth in the same run.
KINDS = {"bare": ("bare_tray.py", ()),
         "agent": ("agent_harness.py", ("--as-shipped", "--tray-first"))}
IDLE_ONLY: dict[str, tuple[str, tuple[str, ...]]] = {
    "agent-pyside-scan": ("agent_harness.py",
                          ("--as-shipped", "--tray-first", "--pyside-source-scan")),
    # The bare tray plus DESIGN.md's stack used once, no agent code (`stack_floor.py`): the
    # least any agent on this stack can idle at.
    "stack-floor": ("stack_floor.py", ())}
NOT_AGENTS = ("bare", "stack-floor")  # no connection, no harness commands
async def command(proc: AgentProc, cmd: str, answer: str) -> dict[str, Any]:
    """Send a harness command and wait for its answer event."""
    assert proc.proc.stdin is not None
    proc.proc.stdin.write(cmd.encode() + b"\n")
    await proc.proc.stdin.drain()
    return await proc.wait_for(answer, timeout=10)


def thread_label(name: str, python_names: dict[str, str]) -> str:
    """`comm/tid` from /proc, with the Python thread name when the process told us."""
    tid = name.rpartition("/")[2]
    return f"{python_names[tid]}/{tid}" if tid in python_names else name


LAUNCH: dict[str, tuple[str, tuple[str, ...]]] = {**KINDS, **IDLE_ONLY}


async def launch(kind: str, server: str, env: dict[str, str]) -> tuple[AgentProc, float]:
    t0 = time.time()
    script, extra = LAUNCH[kind]
    env = {**env, "BENCH_SERVER": server}
    proc = await AgentProc.start(server, "--tray", *extra, env=env, script=script)
    ev = await proc.wait_for("harness.tray_visible", timeout=60)
    return proc, (ev["t"] - t0) * 1000


def out_max_timer(rates: dict[str, float]) -> float:
    return max(rates.values(), default=0.0)


def main_thread(idle: dict[str, Any]) -> str:
    return next((k for k in idle["wakeupsPerS"] if k.startswith("MainThread/")), "")


async def run(rounds: int, idle_s: float) -> dict[str, Any]:
    compile_bytecode()
    desktop = Desktop()
    store = SecretService()
    backend = Backend.start()
    env = child_env(QT_QPA_PLATFORM="xcb", DISPLAY=f":{desktop.display}")
    kinds = list(KINDS)
    startup: dict[str, list[float]] = {k: [] for k in kinds}
    agents = [k for k in kinds if k != "bare"]
    connected_ms: dict[str, list[float]] = {k: [] for k in agents}
    phases: dict[str, dict[str, list[float]]] = {k: {} for k in agents}
    try:
        for r in range(rounds + 1):
            order = list(kinds) if r % 2 else list(reversed(kinds))
            for kind in order:
                t0 = time.time()
                proc, ms = await launch(kind, backend.base_url, env)
                if kind != "bare":
                    ev = await proc.wait_for("connection.state", timeout=60, state="connected")
                    if r:
                        connected_ms[kind].append((ev["t"] - t0) * 1000)
                        for e in proc.all_events:
                            if e["event"] == "harness.phase":
                                phases[kind].setdefault(e["phase"], []).append(
                                    (e["t"] - t0) * 1000)
                await proc.stop()
                if r:  # round 0 warms the disk cache up
                    startup[kind].append(ms)

        procs: dict[str, AgentProc] = {}
        for kind in ("bare", "agent", *IDLE_ONLY):
            procs[kind], _ = await launch(kind, backend.base_url, env)
        shipped = await ShippedStack.start(desktop.display, store)
        # Idle only: the agent with glibc limited to two malloc arenas (see the soak).
        procs["agent-arena2"], _ = await launch(
            "agent", backend.base_url, {**env, "MALLOC_ARENA_MAX": "2"})
        for kind in [k for k in procs if k not in NOT_AGENTS]:
            await procs[kind].wait_for("connection.state", timeout=60, state="connected")
        await asyncio.sleep(SETTLE_S)  # let start-up work (names, missed-call poll) finish
        pids = {k: p.pid for k, p in procs.items()}
        pids["tapi-agent"] = shipped.agent.pid
        await command(procs["agent"], "timers-reset", "harness.timers")
        cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        wake0 = {k: thread_wakeups(pid) for k, pid in pids.items()}
        rss0 = {k: rss_kb(pid) for k, pid in pids.items()}
        t0 = time.monotonic()
        await asyncio.sleep(idle_s)
        span = time.monotonic() - t0
        cpu1 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        wake1 = {k: thread_wakeups(pid) for k, pid in pids.items()}
        rss1 = {k: rss_kb(pid) for k, pid in pids.items()}
        timers = (await command(procs["agent"], "timers", "harness.timers"))["counts"]
        # Python threads all show as "python" in /proc: ask the agents for their names.
        names: dict[str, dict[str, str]] = {}
        for k in [k for k in procs if k not in NOT_AGENTS]:
            names[k] = (await command(procs[k], "threads", "harness.threads"))["names"]
        idle: dict[str, Any] = {}
        for k in pids:
            per_thread = {
                thread_label(name, names.get(k, {})): round((wake1[k].get(name, 0) - n) / span, 3)
                for name, n in wake0[k].items()
            }
            idle[k] = {
                "rssKbStart": rss0[k], "rssKbEnd": rss1[k],
                "cpuPercent": 100 * (cpu1[k] - cpu0[k]) / span,
                "wakeupsPerS": per_thread,
                "maxThreadWakeupsPerS": max(per_thread.values(), default=0.0),
                "totalWakeupsPerS": round(sum(per_thread.values()), 3),
            }
        for p in procs.values():
            await p.stop()
        await shipped.stop()
    finally:
        backend.stop()
        desktop.stop()
        store.stop()

    timer_rates = {site: round(n / span, 3) for site, n in
                   sorted(timers.items(), key=lambda kv: -kv[1])}
    out: dict[str, Any] = {
        "rounds": rounds, "idleSeconds": idle_s,
        "agentTimersPerS": timer_rates,
        "maxTimerPerS": max(timer_rates.values(), default=0.0),
        "startupMs": {k: percentiles(v) for k, v in startup.items()},
        "connectedMs": {k: percentiles(v) for k, v in connected_ms.items()},
        "phasesMs": {kind: {k: percentiles(v) for k, v in ph.items()}
                     for kind, ph in phases.items()},
        "idle": idle,
    }
    bare, ag = out["startupMs"]["bare"], out["startupMs"]["agent"]
    out["startupRatio"] = ag["p50"] / bare["p50"]
    out["rssRatio"] = idle["agent"]["rssKbEnd"] / idle["bare"]["rssKbEnd"]
    out["shippedRssRatio"] = idle["tapi-agent"]["rssKbEnd"] / idle["bare"]["rssKbEnd"]
    out["stackFloorRssRatio"] = idle["stack-floor"]["rssKbEnd"] / idle["bare"]["rssKbEnd"]
    out["targets"] = {
        "start-up within 2x of bare": out["startupRatio"] <= 2.0,
        "RSS within 1.5x of bare": out["rssRatio"] <= 1.5,
        "shipped tapi-agent RSS within 1.5x of bare": out["shippedRssRatio"] <= 1.5,
        "idle CPU under 0.5 %": idle["agent"]["cpuPercent"] < 0.5,
        # Counted per asyncio timer site (harness `timers`); the GUI thread's Qt timers show
        # as its wake-ups, which must stay at or under 1/s as well.
        "no timer firing more than once a second": (
            out_max_timer(timer_rates) <= 1.05
            and idle["agent"]["wakeupsPerS"].get(main_thread(idle["agent"]), 0.0) <= 1.05),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 start-ups, 10 s idle")
    args = parser.parse_args()
    out = asyncio.run(run(2 if args.quick else 5, 10.0 if args.quick else 60.0))
    out["agentStartsTrayFirst"] = True
    for k in out["idle"]:
        i = out["idle"][k]
        if k in out["startupMs"]:
            print(f"{k:5s} start-up to tray visible: {fmt(out['startupMs'][k])}")
        print(f"{k:5s} idle: RSS {i['rssKbEnd'] / 1024:.1f} MiB, CPU {i['cpuPercent']:.3f} %, "
              f"wake-ups {i['totalWakeupsPerS']:.2f}/s (busiest thread "
              f"{i['maxThreadWakeupsPerS']:.2f}/s)")
        print(f"      per thread: {i['wakeupsPerS']}")
    for kind, st in out["startupMs"].items():
        print(f"{kind} start-up to tray visible: {fmt(st)}")
    for kind in out["connectedMs"]:
        print(f"{kind} connected after spawn: {fmt(out['connectedMs'][kind])}")
        for phase, st in out["phasesMs"][kind].items():
            print(f"  {kind} phase {phase:14s} at p50 {st['p50']:.0f} ms after spawn")
    print(f"agent asyncio timers per second over the idle window: {out['agentTimersPerS']}")
    print(f"ratios: start-up {out['startupRatio']:.2f}x, RSS {out['rssRatio']:.2f}x "
          f"(shipped tapi-agent {out['shippedRssRatio']:.2f}x); "
          f"targets: {out['targets']}")
    write_result("footprint", out, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
