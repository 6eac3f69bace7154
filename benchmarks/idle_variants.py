"""Idle RSS of the real `tapi-agent` in variants, side by side with the bare tray app: the A/B
pairs of BENCHMARKS.md section 4 (seventh run).

    .venv/bin/python benchmarks/idle_variants.py [NAME:KEY=VALUE,KEY=VALUE ...]

One private Xvfb display with `trayer`, one `tapi-agent-mock serve --auto-approve JAS`, the
bare tray app (`bare_tray.py`) and one real `tapi-agent` per variant, each signed in through the
browser flow with its own profile (`bench_shipped.agent_env`), all at the same time. After
`--settle` seconds (default 15) it prints each one's RSS and its ratio to the bare app; with
`--calls N`, each agent then takes N calls one after another (incomingCall, its pop painted,
endedCall; callers as in `bench_shipped.py`), and 30 s after the last pop closed it prints
them again: the agent at rest after calls. The
first variant, `base`, is the command as it is; each argument adds one with those environment
variables (e.g. `arena1:MALLOC_ARENA_MAX=1`). `FAILKR=1` in a variant gives it keyring's failing
backend instead of the Secret Service the others share (`common.SecretService`). `--smaps`
adds each process's resident memory by mapping kind. Nothing is written to `results/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shipped import VENV_BIN, Shipped, agent_env, caller, free_port, provider_token
from common import (
    AgentProc,
    Desktop,
    RawHttp,
    SecretService,
    child_env,
    compile_bytecode,
    envelope,
    rss_kb,
)


def by_mapping(pid: int) -> dict[str, float]:
    """Resident MiB of `pid` by kind of mapping (Qt and PySide6, other libraries, heap, anon)."""
    out: dict[str, int] = {}
    kind = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else "[anon]"
                kind = ("Qt/PySide6" if any(s in name for s in ("libQt", "PySide", "shiboken"))
                        else "other .so" if ".so" in name else name if name.startswith("[")
                        else "files")
            elif parts[0] == "Rss:":
                out[kind] = out.get(kind, 0) + int(parts[1])
    return {k: round(v / 1024, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


async def take_calls(agent: Shipped, poster: RawHttp, n: int, tag: str) -> None:
    """`n` calls one after another; returns once every pop has closed."""
    ids = [f"{tag}-{i:04d}" for i in range(n)]
    for i, call_id in enumerate(ids):
        shown = agent.expect(lambda e, c=call_id: e.get("event") == "pop.shown"
                             and e.get("callId") == c, 30, f"pop.shown {call_id}")
        for sub in ("incomingCall", "endedCall"):
            status, body = await poster.post_json(
                "/notifications", envelope(sub, call_id, ["JAS"], caller=caller(i)))
            if status != 202:
                raise RuntimeError(f"POST {sub} {call_id}: {status} {body[:200]!r}")
            if sub == "incomingCall":
                await shown
    await agent.until(lambda: all(c in agent.closed for c in ids), 120, "every pop to close")


async def run(variants: list[tuple[str, dict[str, str]]], settle_s: float, smaps: bool,
              calls: int) -> None:
    compile_bytecode()
    desktop = Desktop()
    store = SecretService()
    port = free_port()
    mock = subprocess.Popen(
        [str(VENV_BIN / "tapi-agent-mock"), "serve", "--port", str(port), "--auto-approve",
         "JAS"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    agents: dict[str, Shipped] = {}
    bare: AgentProc | None = None
    poster: RawHttp | None = None
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                poster = RawHttp(base, await provider_token(base))
                break
            await asyncio.sleep(0.1)
        assert poster is not None, "the mock did not start"
        env = child_env(QT_QPA_PLATFORM="xcb", DISPLAY=f":{desktop.display}")
        bare = await AgentProc.start(base, "--tray", env=env, script="bare_tray.py")
        await bare.wait_for("harness.tray_visible", timeout=60)
        for name, extra in variants:
            profile = Path(tempfile.mkdtemp(prefix="idle-variant-"))
            failing = extra.pop("FAILKR", "") == "1"
            agent_vars = {**agent_env(profile, desktop.display, None if failing else store),
                          **extra}
            agents[name] = await Shipped.start(base, agent_vars)
            await agents[name].expect(lambda e: e.get("event") == "connection.state"
                                      and e.get("state") == "connected", 60, "connected")
        await asyncio.sleep(settle_s)
        report(bare.pid, agents, smaps, "idle")
        if calls:
            for name, agent in agents.items():
                await take_calls(agent, poster, calls, name)
            await asyncio.sleep(30)
            report(bare.pid, agents, smaps, f"after {calls} calls")
    finally:
        if poster is not None:
            await poster.close()
        for agent in agents.values():
            await agent.stop()
        if bare is not None:
            await bare.stop()
        mock.terminate()
        mock.wait(10)
        store.stop()
        desktop.stop()


def report(bare: int, agents: dict[str, Shipped], smaps: bool, when: str) -> None:
    floor = rss_kb(bare)
    print(f"-- {when}")
    print(f"{'bare':12s} {floor / 1024:6.1f} MiB" + (f"  {by_mapping(bare)}" if smaps else ""))
    for name, agent in agents.items():
        rss = rss_kb(agent.pid)
        print(f"{name:12s} {rss / 1024:6.1f} MiB  {rss / floor:.3f}x"
              + (f"  {by_mapping(agent.pid)}" if smaps else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="NAME:KEY=VALUE,...")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds before reading")
    parser.add_argument("--smaps", action="store_true", help="RSS by kind of mapping")
    parser.add_argument("--calls", type=int, default=0,
                        help="then N calls each, and the readings again 30 s after")
    args = parser.parse_args()
    variants: list[tuple[str, dict[str, str]]] = [("base", {})]
    for item in args.variants:
        name, _, pairs = item.partition(":")
        variants.append((name, dict(p.split("=", 1) for p in pairs.split(",") if p)))
    asyncio.run(run(variants, args.settle, args.smaps, args.calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
