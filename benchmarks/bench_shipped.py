"""The shipped process: the real `tapi-agent` command, as a user runs it, through a day of calls.

    .venv/bin/python benchmarks/bench_shipped.py [--quick] [--calls N] [--burst N]

Everything is the real thing (issue 14): the `tapi-agent` console script with its tray under a
private Xvfb display with `trayer` (Qt's xcb platform), signed in through the browser flow
(`curl` plays the browser, as in tests/app/test_agent_process.py) against
`tapi-agent-mock serve --auto-approve JAS` on a free port, default settings (5 s linger, 60 s
ring timeout, 3 stacked pops), its own profile directories, its session kept in a real Secret
Service (gnome-keyring on a private D-Bus session bus: `common.SecretService`; before the
seventh run, keyring's failing backend, which made the agent show "No credential store"), its
modules compiled to bytecode as an install has them (`common.compile_bytecode`). The provider
posts with a `client_credentials` token. The agent's `--log-json -` lines are read from its stdout.

- idle: the agent connected and at rest beside `bare_tray.py` (the bare PySide6 tray app) on the
  same display; RSS of both after 30 s.
- soak: `--calls` calls one after another (default 1,000): incomingCall, wait for `pop.shown`,
  endedCall; the pop lingers and closes by itself. Callers come from a pool of 50 numbers (one
  in five a known contact). RSS is read 30 s after the last pop closed, after the first 100
  calls (the warm-up) and at the end; agent CPU seconds per 100 calls along the way.
- burst: `--burst` ringing calls (default 1,000) posted in bursts of 100 (10 connections of 10
  POSTs each), each burst waited on until the GUI has painted its newest call; per-call cost is
  the agent's CPU time per burst / 100 (robust to the machine's load, unlike wall time, which is
  recorded beside it). Then every call ends; RSS is read 60 s after the last endedCall and
  compared with the resting level (the soak's end reading).

`--agent-env KEY=VALUE` sets the agent's environment (e.g. MALLOC_ARENA_MAX=2);
`BENCH_SMAPS_DIR=DIR` (a measuring hook) copies the agent's /proc/PID/smaps at rest and with
the burst ringing, to see which mappings grew.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    PYTHON,
    ROOT,
    Desktop,
    RawHttp,
    SecretService,
    compile_bytecode,
    cpu_seconds,
    envelope,
    rss_kb,
    write_result,
)

VENV_BIN = Path(PYTHON).parent
CONTACT = "07123 456789"  # Emma Thompson in the mock's seed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def caller(i: int) -> str:
    return CONTACT if i % 5 == 0 else f"07700 900{i % 50:03d}"


class Shipped:
    """The real `tapi-agent` process and its JSON log lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.counts: dict[str, int] = {}
        self.shown: set[str] = set()
        self.closed: set[str] = set()
        self.waiters: list[tuple[Any, asyncio.Future[dict[str, Any]]]] = []
        self.rejected: list[str] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, server: str, env: dict[str, str]) -> Shipped:
        proc = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "tapi-agent"), "--server", server, "--log-json", "-",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, limit=1 << 20)
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            name = ev.get("event", "")
            self.counts[name] = self.counts.get(name, 0) + 1
            if name == "pop.shown":
                self.shown.add(ev["callId"])
            elif name == "pop.closed":
                self.closed.add(ev["callId"])
            elif name == "notification.rejected":
                self.rejected.append(ev.get("reason", ""))
            for match, fut in list(self.waiters):
                if not fut.done() and match(ev):
                    fut.set_result(ev)
                    self.waiters.remove((match, fut))

    def expect(self, match: Any, timeout: float, what: str) -> asyncio.Task[dict[str, Any]]:
        """Start waiting now (before the POST that causes it) for an event matching `match`."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.append((match, fut))

        async def wait() -> dict[str, Any]:
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise RuntimeError(f"the agent did not log {what} within {timeout} s") from None

        return asyncio.ensure_future(wait())

    async def until(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


def agent_env(profile: Path, display: int, store: SecretService | None) -> dict[str, str]:
    """A user of its own (profile, single-instance name), signing in with curl as browser,
    keeping the session in `store` (None: keyring's failing backend, so the agent keeps it in
    memory and says "No credential store", as the runs before the seventh did)."""
    user = f"bench{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPI_AGENT_")}
    env.update(
        DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb", USER=user, LOGNAME=user,
        HOME=str(profile / "home"), XDG_CONFIG_HOME=str(profile / "config"),
        XDG_DATA_HOME=str(profile / "data"), XDG_STATE_HOME=str(profile / "state"),
        XDG_CACHE_HOME=str(profile / "cache"), XDG_RUNTIME_DIR=str(profile / "run"),
        BROWSER="curl -sS -L -o /dev/null %s",
        TAPI_AGENT_AUTH_REDIRECT_PORT=str(free_port()), PYTHONUNBUFFERED="1")
    env.pop("PYTHON_KEYRING_BACKEND", None)
    if store is None:
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    else:
        env.update(store.env())
    (profile / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


async def provider_token(base: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                            auth=("demo-provider", "demo-secret"))
        r.raise_for_status()
        return str(r.json()["access_token"])


async def settle_cpu(pid: int, quiet_s: float = 0.3, limit_s: float = 30.0) -> None:
    """Wait until the process has used no CPU for `quiet_s` (its queued work is done)."""
    deadline = time.monotonic() + limit_s
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now


async def run(calls: int, burst: int, idle_s: float, rest_s: float,
              after_burst_s: float, extra_env: dict[str, str]) -> dict[str, Any]:
    compile_bytecode()
    desktop = Desktop()
    store = SecretService()
    profile = Path(tempfile.mkdtemp(prefix="bench-shipped-"))
    port = free_port()
    mock = subprocess.Popen(
        [str(VENV_BIN / "tapi-agent-mock"), "serve", "--port", str(port),
         "--auto-approve", "JAS"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    bare: asyncio.subprocess.Process | None = None
    agent: Shipped | None = None
    timeline: list[dict[str, Any]] = []
    t_start = time.monotonic()

    def mark(what: str, **fields: Any) -> None:
        timeline.append({"atS": round(time.monotonic() - t_start, 1), "what": what, **fields})
        print(f"[{timeline[-1]['atS']:7.1f} s] {what} {fields if fields else ''}", flush=True)

    try:
        token = None
        for _ in range(100):
            with contextlib.suppress(Exception):
                token = await provider_token(base)
                break
            await asyncio.sleep(0.1)
        assert token is not None, "the mock did not start"
        posters = [RawHttp(base, token) for _ in range(10)]
        agent = await Shipped.start(base, {**agent_env(profile, desktop.display, store),
                                             **extra_env})
        await agent.expect(lambda e: e.get("event") == "connection.state"
                           and e.get("state") == "connected", 60, "connected")
        bare = await asyncio.create_subprocess_exec(
            PYTHON, str(BENCH_DIR / "bare_tray.py"), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "DISPLAY": f":{desktop.display}", "QT_QPA_PLATFORM": "xcb"})
        await asyncio.sleep(idle_s)
        idle = {"agentRssKb": rss_kb(agent.pid), "bareRssKb": rss_kb(bare.pid)}
        mark("idle", **idle)

        async def post(i: int, sub: str, call_id: str, who: str) -> None:
            poster = posters[i % len(posters)]
            body_in = envelope(sub, call_id, ["JAS"], caller=who)
            try:
                status, body = await poster.post_json("/notifications", body_in)
            except (asyncio.IncompleteReadError, ConnectionError):
                await poster.close()  # the server closed an idle keep-alive connection
                status, body = await poster.post_json("/notifications", body_in)
            if status != 202:
                raise RuntimeError(f"POST {sub} {call_id}: {status} {body[:200]!r}")

        async def rest_reading(ids: list[str], wait_s: float) -> int:
            await agent.until(lambda: all(c in agent.closed for c in ids), 120,
                              "every pop to close")
            await asyncio.sleep(wait_s)
            return rss_kb(agent.pid)

        # -- soak: calls one after another ------------------------------------------------
        soak_ids = [f"soak-{i:05d}" for i in range(calls)]
        cpu_per_100: list[float] = []
        rss_curve: list[dict[str, int]] = []
        warm_rss = 0
        cpu0 = cpu_seconds(agent.pid)
        t0 = time.monotonic()
        for i, cid in enumerate(soak_ids):
            shown = agent.expect(lambda e, c=cid: e.get("event") == "pop.shown"
                               and e.get("callId") == c, 30, f"pop.shown {cid}")
            await post(i, "incomingCall", cid, caller(i))
            await shown
            await post(i, "endedCall", cid, caller(i))
            if (i + 1) % 100 == 0:
                cpu1 = cpu_seconds(agent.pid)
                cpu_per_100.append(round(cpu1 - cpu0, 3))
                rss_curve.append({"calls": i + 1, "rssKb": rss_kb(agent.pid)})
                if i + 1 == 100:
                    warm_rss = await rest_reading(soak_ids[:100], rest_s)
                    mark("warm-up: 100 calls, every pop closed", rssKb=warm_rss,
                         waitS=rest_s)
                if (i + 1) % 1000 == 0:
                    mark("calls", n=i + 1, rssKb=rss_curve[-1]["rssKb"])
                cpu0 = cpu_seconds(agent.pid)
        soak_s = time.monotonic() - t0
        end_rss = await rest_reading(soak_ids, rest_s)
        mark(f"soak: {calls} calls, every pop closed", rssKb=end_rss, waitS=rest_s)
        soak = {
            "calls": calls, "durationS": round(soak_s, 1), "rssKbWarm": warm_rss,
            "rssKbEnd": end_rss, "growthKb": end_rss - warm_rss,
            "cpuSecondsPer100Calls": cpu_per_100, "rssCurve": rss_curve,
            "popsShown": sum(c in agent.shown for c in soak_ids),
            "popsClosed": sum(c in agent.closed for c in soak_ids),
        }

        # -- burst: ringing calls in bursts of 100 --------------------------------------------
        rest = end_rss
        smaps_dir = os.environ.get("BENCH_SMAPS_DIR")  # a measuring hook: /proc smaps copies
        if smaps_dir:
            Path(smaps_dir, "rest.smaps").write_text(Path(f"/proc/{agent.pid}/smaps").read_text())
        burst_ids = [f"burst-{i:05d}" for i in range(burst)]
        groups: list[dict[str, Any]] = []
        peak = 0
        t_burst = time.monotonic()
        for g in range(0, burst, 100):
            ids = burst_ids[g:g + 100]
            last = ids[-1]
            painted = agent.expect(lambda e, c=last: e.get("event") == "pop.shown"
                                 and e.get("callId") == c, 120, f"pop.shown {last}")
            c0, w0 = cpu_seconds(agent.pid), time.monotonic()
            for k in range(0, len(ids), 10):  # ten connections, ten POSTs each, in order
                await asyncio.gather(*(post(j, "incomingCall", ids[k + j], caller(g + k + j))
                                       for j in range(min(10, len(ids) - k))))
            await painted
            await settle_cpu(agent.pid)
            c1, w1 = cpu_seconds(agent.pid), time.monotonic()
            peak = max(peak, rss_kb(agent.pid))
            groups.append({"calls": g + len(ids), "cpuMsPerCall": round((c1 - c0) * 10, 3),
                           "wallMsPerCall": round((w1 - w0) * 10, 3)})
        drain_s = time.monotonic() - t_burst
        ringing_rss = rss_kb(agent.pid)
        if smaps_dir:
            Path(smaps_dir, "ringing.smaps").write_text(
                Path(f"/proc/{agent.pid}/smaps").read_text())
        mark(f"burst: {burst} ringing", rssKb=ringing_rss, drainS=round(drain_s, 1))
        for g in range(0, burst, 10):
            await asyncio.gather(*(post(j, "endedCall", burst_ids[g + j], caller(g + j))
                                   for j in range(min(10, burst - g))))
        t_end = time.monotonic()
        await agent.until(lambda: all(c in agent.closed for c in burst_ids), 300,
                          "every burst pop to close")
        await asyncio.sleep(max(0.0, after_burst_s - (time.monotonic() - t_end)))
        after = rss_kb(agent.pid)
        mark(f"{after_burst_s:.0f} s after the burst ended", rssKb=after)
        first = groups[0]["cpuMsPerCall"]
        last_g = groups[-1]["cpuMsPerCall"]
        bursts = {
            "calls": burst, "groups": groups, "drainS": round(drain_s, 1),
            "rssKbRest": rest, "rssKbPeak": peak, "rssKbRinging": ringing_rss,
            "rssKbAfter": after, "afterS": after_burst_s,
            "cpuRatioLastFirst": round(last_g / first, 2) if first else None,
            "popsShown": sum(c in agent.shown for c in burst_ids),
            "popsClosed": sum(c in agent.closed for c in burst_ids),
        }
        for p in posters:
            await p.close()
        rejected = list(agent.rejected)
    finally:
        if agent is not None:
            await agent.stop()
        if bare is not None and bare.returncode is None:
            assert bare.stdin is not None
            bare.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bare.wait(), 10)
            if bare.returncode is None:
                bare.kill()
                await bare.wait()
        mock.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            mock.wait(10)
        if mock.poll() is None:
            mock.kill()
        desktop.stop()
        store.stop()

    out: dict[str, Any] = {
        "loadAverageAtStart": os.getloadavg()[0], "idle": idle, "soak": soak, "burst": bursts,
        "rejected": rejected[:20], "timeline": timeline,
        "idleRatio": round(idle["agentRssKb"] / idle["bareRssKb"], 2),
    }
    out["targets"] = {
        f"RSS after {calls} calls within 5 MiB of the warm-up": abs(soak["growthKb"]) <= 5 * 1024,
        "burst: per-call CPU, last 100 within 2x of the first 100":
            bursts["cpuRatioLastFirst"] is not None and bursts["cpuRatioLastFirst"] <= 2.0,
        f"burst: RSS within 10 MiB of rest {after_burst_s:.0f} s after":
            bursts["rssKbAfter"] - rest <= 10 * 1024,
        "idle RSS within 1.5x of the bare tray app": out["idleRatio"] <= 1.5,
        "every pop shown once and closed": (soak["popsShown"] == soak["popsClosed"] == calls
                                            and bursts["popsClosed"] == burst),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 calls, a burst of 200, short waits (a smoke run)")
    parser.add_argument("--calls", type=int, default=0, help="soak calls (default 1,000)")
    parser.add_argument("--burst", type=int, default=0, help="ringing calls (default 1,000)")
    parser.add_argument("--name", default="shipped", help="result file name (default shipped)")
    parser.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the agent (e.g. MALLOC_ARENA_MAX=2)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.agent_env)
    load = os.getloadavg()[0]
    calls = args.calls or (200 if args.quick else 1000)
    burst = args.burst or (200 if args.quick else 1000)
    if args.quick:
        out = asyncio.run(run(calls, burst, 5.0, 5.0, 10.0, extra))
    else:
        out = asyncio.run(run(calls, burst, 30.0, 30.0, 60.0, extra))
    out["agentEnv"] = extra
    out["loadAverageAtStart"] = load
    s, b = out["soak"], out["burst"]
    print(f"idle: agent {out['idle']['agentRssKb'] / 1024:.1f} MiB, bare tray "
          f"{out['idle']['bareRssKb'] / 1024:.1f} MiB ({out['idleRatio']:.2f}x)")
    print(f"soak: {s['calls']} calls in {s['durationS']} s; RSS after 100 "
          f"{s['rssKbWarm'] / 1024:.1f} MiB, at the end {s['rssKbEnd'] / 1024:.1f} MiB "
          f"({s['growthKb'] / 1024:+.1f} MiB)")
    print(f"burst: {b['calls']} ringing in {b['drainS']} s; CPU per call first "
          f"{b['groups'][0]['cpuMsPerCall']} ms, last {b['groups'][-1]['cpuMsPerCall']} ms; "
          f"RSS rest {b['rssKbRest'] / 1024:.1f}, peak {b['rssKbPeak'] / 1024:.1f}, "
          f"{b['afterS']:.0f} s after {b['rssKbAfter'] / 1024:.1f} MiB")
    print(f"targets: {out['targets']}")
    write_result(args.name, out, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
