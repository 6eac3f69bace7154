"""Soak: 10,000 calls with random faults against one agent; every call accounted for once.

    .venv/bin/python benchmarks/bench_soak.py [--quick] [--calls N] [--rate CALLS_PER_S]

The mock backend and the agent harness (the real `Agent`, offscreen) run in their own
processes. Calls start at a steady `--rate` (open loop), each one a short script of POSTs with
50-250 ms between steps:
- 60 % incomingCall -> endedCall (missed),
- 20 % incomingCall -> answeredCall (by JAS) -> endedCall,
- 20 % hunt group (JAS, RPT): incomingCall -> answeredCall (by RPT) -> endedCall.
Faults, through `/_mock/faults` and the backend's restart:
- duplicates: 5 % of frames are sent twice, the whole run;
- reorder: frames shuffled in windows of 3 from 20 % to 35 % of the calls;
- drops: the agent's TCP connection cut without a close frame at 10, 30, 60, 80 and 90 %;
- one restart at 50 %: new calls pause, the agent catches up, the backend restarts (new epoch),
  and calls resume once the agent is connected again (a restart forgets undelivered events by
  design, so the soak restarts at a quiet moment, as a deployment would).
Quiet points (after the warm-up and before the restart) wait until the agent has taken in
(`notification.received`) every event posted so far, then the schedule starts again from that
moment: a pause never turns into a burst. (Waiting for the history instead took 30 s once
answered pops offered "Log call", and the open loop then started ~1,500 calls at once: a
backlog past the backend's 1,000-event retention, so a drop lost events by design.)
Accounting: the harness reports every entry the CallBook puts into its history
(`harness.history`); each call must appear there exactly once, and no call may pop twice
(`pop.shown`). A wait that times out names the events the agent never took in and the calls
missing from its history; `--trace DIR` keeps every agent event and the mock's journal (every
delivery with its seq and connection, resumes with `complete`, acks) to find out why.
RSS (after a full collection) is read after the warm-up (first 10 % of calls)
and at the end: growth under 5 MB is the target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    AgentProc,
    Backend,
    RawHttp,
    child_env,
    cpu_seconds,
    envelope,
    fmt,
    percentiles,
    write_result,
)

AGENT_SETTINGS = ("--set", "calls.answered_elsewhere_close_s=0", "--count-history")

# `--tracemalloc DIR`: the agent runs with tracemalloc on from the start (PYTHONTRACEMALLOC)
# and this sitecustomize (first on its PYTHONPATH) dumps a snapshot, after a full collection,
# on each SIGUSR1; the driver signals after each RSS reading and diffs warm-up against the end
# (what was allocated and is still alive, by line). A measuring hook: it slows the agent.
SNAPSHOT_HOOK = """
import gc, os, signal, tracemalloc
_n = [0]
def _snapshot(signum, frame):
    gc.collect()
    path = os.path.join(os.environ["BENCH_SNAPSHOT_DIR"], f"{_n[0]}.snap")
    tracemalloc.take_snapshot().dump(path + ".tmp")
    os.replace(path + ".tmp", path)
    _n[0] += 1
signal.signal(signal.SIGUSR1, _snapshot)
"""


def snapshot_env(directory: Path) -> dict[str, str]:
    """Agent environment for `--tracemalloc`: the hook above, tracing from the start."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.snap"):
        old.unlink()
    (directory / "sitecustomize.py").write_text(SNAPSHOT_HOOK)
    return {"PYTHONTRACEMALLOC": "8", "BENCH_SNAPSHOT_DIR": str(directory),
            "PYTHONPATH": str(directory)}


async def take_snapshot(agent: AgentProc, directory: Path | None, index: int) -> None:
    """With `--tracemalloc`: have the agent dump snapshot `index` and wait until it is written."""
    if directory is None:
        return
    os.kill(agent.pid, signal.SIGUSR1)
    path = directory / f"{index}.snap"
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"soak: no snapshot {path}")
        await asyncio.sleep(0.2)


def snapshot_growth(directory: Path, top: int = 25) -> list[str]:
    """Allocations alive at the end minus those at the warm-up reading, by line and by file."""
    import tracemalloc

    first = tracemalloc.Snapshot.load(str(directory / "0.snap"))
    last = max(directory.glob("*.snap"), key=lambda p: int(p.stem))
    end = tracemalloc.Snapshot.load(str(last))
    lines = []
    for key in ("filename", "lineno"):
        stats = end.compare_to(first, key)
        total = sum(s.size_diff for s in stats)
        lines.append(f"-- tracemalloc growth by {key}: {total / 1024:+.0f} KiB in all")
        lines += [str(s) for s in stats[:top]]
    stats = end.compare_to(first, "traceback")
    lines.append("-- largest growths with their tracebacks")
    for s in stats[:8]:
        lines.append(f"{s.size_diff / 1024:+.0f} KiB, {s.count_diff:+d} blocks")
        lines += ["    " + ln for ln in s.traceback.format()]
    return lines


class Pool:
    """Keep-alive HTTP connections shared by the call tasks (reconnect after a restart)."""

    def __init__(self, backend: Backend, size: int,
                 on_posted: Callable[[str, str], None] = lambda call_id, sub_type: None
                 ) -> None:
        self.on_posted = on_posted  # (callId, subType) of each event the backend accepted
        self.free: asyncio.Queue[RawHttp] = asyncio.Queue()
        for _ in range(size):
            self.free.put_nowait(RawHttp(backend.base_url, backend.provider_token))
        self.posted = 0
        self.errors: Counter[str] = Counter()

    async def post(self, body: dict[str, Any]) -> None:
        client = await self.free.get()
        try:
            for attempt in range(20):
                try:
                    status, text = await client.post_json("/notifications", body)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    self.errors[type(exc).__name__] += 1
                    await client.close()
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                if status != 202:
                    raise RuntimeError(f"POST refused: {status} {text[:200]!r}")
                self.posted += 1
                self.on_posted(body["payload"]["id"], body["subType"])
                return
            raise RuntimeError("POST kept failing")
        finally:
            self.free.put_nowait(client)


async def one_call(pool: Pool, call_id: str, rng: random.Random) -> None:
    kind = rng.random()

    async def gap() -> None:
        await asyncio.sleep(rng.uniform(0.05, 0.25))

    if kind < 0.6:
        await pool.post(envelope("incomingCall", call_id, ["JAS"]))
        await gap()
        await pool.post(envelope("endedCall", call_id, ["JAS"]))
    elif kind < 0.8:
        await pool.post(envelope("incomingCall", call_id, ["JAS"]))
        await gap()
        await pool.post(envelope("answeredCall", call_id, ["JAS"], answered_by="JAS"))
        await gap()
        await pool.post(envelope("endedCall", call_id, ["JAS"], answered_by="JAS"))
    else:
        group = ["JAS", "RPT"]
        await pool.post(envelope("incomingCall", call_id, group, hunt_group=True))
        await gap()
        await pool.post(envelope("answeredCall", call_id, group, hunt_group=True,
                                 answered_by="RPT"))
        await gap()
        await pool.post(envelope("endedCall", call_id, group, hunt_group=True,
                                 answered_by="RPT"))


class Ledger:
    """Counts per call id from the agent's event stream, as it arrives."""

    def __init__(self, events_out: Any = None) -> None:
        self.events_out = events_out  # `--events-out`: every agent event, one JSON line each
        self.history: Counter[str] = Counter()
        # Events (callId, subType) the agent took in (`notification.received`), and those the
        # backend accepted that the agent has not taken in yet.
        self.received: set[tuple[str, str]] = set()
        self.outstanding: set[tuple[str, str]] = set()
        self.shown: Counter[str] = Counter()
        self.pop_latency: list[float] = []
        self.connects = 0
        self.connected_at: list[float] = []
        self.resyncs = 0
        self.rss: list[int] = []
        self.rss_events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def follow(self, agent: AgentProc) -> None:
        while True:
            ev = await agent.events.get()
            name = ev["event"]
            if self.events_out is not None:
                self.events_out.write(json.dumps(ev, separators=(",", ":")) + "\n")
            if name == "harness.history":
                self.history[ev["callId"]] += 1
            elif name == "notification.received":
                pair = (ev["callId"], ev["subType"])
                self.received.add(pair)
                self.outstanding.discard(pair)
            elif name == "pop.shown":
                self.shown[ev["callId"]] += 1
                if ev.get("latencyMs") is not None:
                    self.pop_latency.append(float(ev["latencyMs"]))
            elif name == "connection.state" and ev.get("state") == "connected":
                self.connects += 1
                self.connected_at.append(float(ev["t"]))
            elif name == "harness.rss":
                self.rss.append(int(ev["rssKb"]))
                self.rss_events.append(ev)
            elif name == "harness.eof":
                return
            self.changed.set()

    def posted(self, call_id: str, sub_type: str) -> None:
        """The backend accepted this event: the agent has to take it in."""
        if (call_id, sub_type) not in self.received:
            self.outstanding.add((call_id, sub_type))
            self.changed.set()

    def missing(self, calls: int) -> str:
        """What the agent still lacks: events not taken in, calls not in the history."""
        events = sorted(self.outstanding)
        ids = [c for c in (f"soak-{i:05d}" for i in range(calls)) if not self.history[c]]
        return (f"{len(events)} events not received by the agent {events[:8]}; "
                f"{len(ids)} calls not in its history {ids[:8]}")

    async def wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"soak: timed out waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


def reading(ledger: Ledger) -> dict[str, Any]:
    """The last memory reading's counts (widgets, cards, live calls, Python objects)."""
    ev = ledger.rss_events[-1]
    return {k: ev.get(k) for k in ("rssTrimmedKb", "widgets", "cards", "liveCalls",
                                   "pyObjects", "someCards", "someLive")}


async def rss_now(agent: AgentProc, ledger: Ledger) -> int:
    before = len(ledger.rss)
    assert agent.proc.stdin is not None
    agent.proc.stdin.write(b"rss\n")
    await agent.proc.stdin.drain()
    await ledger.wait(lambda: len(ledger.rss) > before, 30, "rss")
    return ledger.rss[-1]


async def run(calls: int, rate: float, seed: int,
              agent_env: dict[str, str] | None = None,
              snapshots: Path | None = None, trace: Path | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    snapshot_count = 0
    # `--trace` keeps the mock's whole journal (about 8 entries per call), not its newest 10,000.
    backend = Backend.start(*(["--journal-max", str(max(10_000, calls * 12))] if trace else []))
    timeline: list[dict[str, Any]] = []
    t_start = time.monotonic()

    def mark(what: str, **fields: Any) -> None:
        timeline.append({"atS": round(time.monotonic() - t_start, 2), "what": what, **fields})
        print(f"[{timeline[-1]['atS']:7.2f} s] {what} {fields if fields else ''}", flush=True)

    stack = contextlib.ExitStack()
    try:
        env = dict(agent_env or {})
        if snapshots is not None:
            env.update(snapshot_env(snapshots))
        agent = await AgentProc.start(backend.base_url, *AGENT_SETTINGS, keep=False,
                                      env=child_env(**env))
        events_out = None
        if trace is not None:
            trace.mkdir(parents=True, exist_ok=True)
            events_out = stack.enter_context((trace / "agent-events.jsonl").open("w"))
        ledger = Ledger(events_out)
        follower = asyncio.create_task(ledger.follow(agent))
        await ledger.wait(lambda: ledger.connects >= 1, 60, "the agent to connect")
        cpu0 = cpu_seconds(agent.pid), cpu_seconds(backend.pid), time.monotonic()
        pool = Pool(backend, 32, ledger.posted)
        async with httpx.AsyncClient(base_url=backend.base_url, timeout=10) as http:

            async def fault(body: dict[str, Any]) -> None:
                r = await http.post("/_mock/faults", json={"negotiatorId": "JAS", **body})
                r.raise_for_status()
                mark(f"fault {body['kind']}", applied=r.json()["applied"])

            await fault({"kind": "duplicate", "probability": 0.05})
            at = {int(calls * f): f for f in (0.1, 0.2, 0.3, 0.35, 0.5, 0.6, 0.8, 0.9)}
            warm = max(1, calls // 10)
            tasks: set[asyncio.Task[None]] = set()
            rss_warm = 0
            next_at = time.monotonic()
            for i in range(calls):
                frac = at.get(i)
                if i == warm or frac == 0.5:
                    # Quiet point: every event posted so far taken in by the agent. (Not every
                    # call in its history yet: a call the negotiator answered whose caller
                    # matched a contact keeps its pop 30 s, offering "Log call", and enters
                    # the history when the pop closes.)
                    if tasks:
                        await asyncio.gather(*tasks)
                    try:
                        await ledger.wait(lambda: not ledger.outstanding, 120,
                                          f"the agent to take in every event of {i} calls")
                    except TimeoutError as exc:
                        raise TimeoutError(f"{exc}: {ledger.missing(i)}") from None
                    if i == warm:
                        rss_warm = await rss_now(agent, ledger)
                        await take_snapshot(agent, snapshots, snapshot_count)
                        snapshot_count += 1
                        mark("warm-up done", calls=i, rssKb=rss_warm, **reading(ledger))
                    else:
                        mark("quiet point", calls=i, rssKb=await rss_now(agent, ledger),
                             **reading(ledger))
                    # A pause is not load: the calls the schedule missed while waiting are
                    # not started all at once afterwards (that burst of ~1,500 calls is what
                    # lost events in the fourth run).
                    next_at = time.monotonic()
                if frac in (0.1, 0.3, 0.6, 0.8, 0.9):
                    await fault({"kind": "drop"})
                elif frac == 0.2:
                    await fault({"kind": "reorder", "window": 3})
                elif frac == 0.35:
                    r = await http.delete("/_mock/faults")
                    r.raise_for_status()
                    mark("reorder off")
                    await fault({"kind": "duplicate", "probability": 0.05})
                elif frac == 0.5:
                    answer = await asyncio.to_thread(backend.command, "restart")
                    mark("backend restarted", downMs=round((answer["t1"] - answer["t0"]) * 1000))
                    # A connection made while the old server shut down does not count: the
                    # new backend replays nothing to a client that has not seen its epoch.
                    await ledger.wait(
                        lambda a=answer: any(t > a["tDown"] for t in ledger.connected_at), 60,
                        "the agent to reconnect after the restart")
                    mark("agent reconnected")
                    next_at = time.monotonic()
                # Open loop: calls start on schedule whatever the agent is doing.
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += 1.0 / rate
                task = asyncio.create_task(one_call(pool, f"soak-{i:05d}", rng))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if (i + 1) % 1000 == 0:
                    mark("calls started", n=i + 1, accounted=len(ledger.history))
            if tasks:
                await asyncio.gather(*tasks)
            mark("all calls posted", posts=pool.posted)
            try:
                await ledger.wait(lambda: len(ledger.history) >= calls, 120,
                                  "the agent to account for every call")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}: {ledger.missing(calls)}") from None
            cpu1 = cpu_seconds(agent.pid), cpu_seconds(backend.pid), time.monotonic()
            rss_end = await rss_now(agent, ledger)
            mark("all calls accounted for", rssKb=rss_end, **reading(ledger))
            # Cards of finished calls close on timers and are deleted later (deleteLater):
            # read again until the widget count is back where it was after the warm-up.
            quiet_widgets = ledger.rss_events[0].get("widgets") or 1
            for _ in range(20):
                last = ledger.rss_events[-1]
                if last.get("cards", 0) == 0 and last.get("widgets", 0) <= quiet_widgets:
                    break
                await asyncio.sleep(0.5)
                rss_end = await rss_now(agent, ledger)
            mark("final reading", rssKb=rss_end, **reading(ledger))
            await take_snapshot(agent, snapshots, snapshot_count)
        await agent.stop()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    finally:
        if trace is not None:
            # The mock's journal (requests, deliveries with seq and connection, resumes, acks;
            # the newest 10,000 entries) beside the agent's events, to tell where a call went.
            with contextlib.suppress(Exception):
                r = httpx.get(backend.base_url + "/_mock/journal", timeout=30)
                (trace / "mock-journal.json").write_text(r.text)
            (trace / "timeline.json").write_text(json.dumps(timeline, indent=1))
        stack.close()
        backend.stop()

    ids = [f"soak-{i:05d}" for i in range(calls)]
    history_counts = Counter(ledger.history[c] for c in ids)
    shown_counts = Counter(ledger.shown[c] for c in ids)
    stray = sorted(set(ledger.history) - set(ids))
    out: dict[str, Any] = {
        "calls": calls, "ratePerS": rate, "seed": seed, "agentEnv": agent_env or {},
        "durationS": time.monotonic() - t_start,
        "posts": pool.posted, "postErrors": dict(pool.errors),
        "historyEntriesPerCall": {str(k): v for k, v in sorted(history_counts.items())},
        "popsShownPerCall": {str(k): v for k, v in sorted(shown_counts.items())},
        "strayHistoryIds": stray[:20],
        "agentConnects": ledger.connects,
        "agentCpuPercent": 100 * (cpu1[0] - cpu0[0]) / (cpu1[2] - cpu0[2]),
        "backendCpuPercent": 100 * (cpu1[1] - cpu0[1]) / (cpu1[2] - cpu0[2]),
        "popLatencyUnderSoak": percentiles(ledger.pop_latency),
        "rssKbAfterWarmup": rss_warm, "rssKbEnd": rss_end,
        "rssGrowthKb": rss_end - rss_warm,
        "rssTrimmedKbAfterWarmup": ledger.rss_events[0].get("rssTrimmedKb"),
        "rssTrimmedKbEnd": ledger.rss_events[-1].get("rssTrimmedKb"),
        "rssReadings": [{k: e.get(k) for k in ("rssKb", "rssTrimmedKb", "widgets", "topLevel",
                                               "pyObjects", "cards", "liveCalls")}
                        for e in ledger.rss_events],
        "timeline": timeline,
    }
    out["targets"] = {
        "every call in the history exactly once": history_counts == Counter({1: calls}),
        "no call popped twice": all(k <= 1 for k in shown_counts),
        "RSS growth under 5 MB after warm-up": out["rssGrowthKb"] < 5 * 1024,
        "under 5 minutes": out["durationS"] < 300,
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 calls instead of 10,000")
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument("--rate", type=float, default=50.0, help="calls started per second")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the agent (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--name", default="soak", help="result file name (default soak)")
    parser.add_argument("--tracemalloc", type=Path, default=None, metavar="DIR",
                        help="trace the agent's allocations (slower) and print what grew "
                             "between the warm-up and the end (snapshots kept in DIR)")
    parser.add_argument("--trace", type=Path, default=None, metavar="DIR",
                        help="write every agent event (agent-events.jsonl), the mock's journal "
                             "(mock-journal.json, its newest 10,000 entries) and the timeline "
                             "to DIR, also when the run fails")
    args = parser.parse_args()
    calls = args.calls or (1000 if args.quick else 10000)
    env = dict(item.split("=", 1) for item in args.agent_env)
    out = asyncio.run(run(calls, args.rate, args.seed, env, args.tracemalloc, args.trace))
    print(f"{out['calls']} calls, {out['posts']} POSTs in {out['durationS']:.0f} s; "
          f"agent connected {out['agentConnects']} times")
    print(f"history entries per call: {out['historyEntriesPerCall']}")
    print(f"pops shown per call:      {out['popsShownPerCall']}")
    print(f"pop latency under soak:   {fmt(out['popLatencyUnderSoak'])}")
    print(f"CPU while calls ran: agent {out['agentCpuPercent']:.0f} %, backend "
          f"{out['backendCpuPercent']:.0f} % (100 % = one core)")
    print(f"RSS after warm-up {out['rssKbAfterWarmup'] / 1024:.1f} MiB, at the end "
          f"{out['rssKbEnd'] / 1024:.1f} MiB: growth {out['rssGrowthKb'] / 1024:+.2f} MiB")
    if out["rssTrimmedKbEnd"] is not None:
        print(f"after malloc_trim(0): {out['rssTrimmedKbAfterWarmup'] / 1024:.1f} MiB -> "
              f"{out['rssTrimmedKbEnd'] / 1024:.1f} MiB")
    print(f"targets: {out['targets']}")
    if args.tracemalloc is not None:
        print("\n".join(snapshot_growth(args.tracemalloc)))
    write_result(args.name, out, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
