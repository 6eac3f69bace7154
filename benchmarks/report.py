"""Turn `benchmarks/results/*.json` into BENCHMARKS.md tables and the latency plot.

    .venv/bin/python benchmarks/report.py [--quick]

Reads the full-run results (or, with `--quick`, the `*-quick.json` smoke runs), fills the
`{{placeholders}}` of `benchmarks/BENCHMARKS.template.md` (the prose lives there) and writes
`BENCHMARKS.md` at the repository root, plus `docs/benchmarks/latency.png` (matplotlib, a
benchmark-only tool: `.venv/bin/pip install matplotlib`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, RESULTS, ROOT

TEMPLATE = BENCH_DIR / "BENCHMARKS.template.md"
OUTPUT = ROOT / "BENCHMARKS.md"
PLOTS = ROOT / "docs" / "benchmarks"


def load(name: str, quick: bool) -> dict[str, Any] | None:
    for candidate in ([f"{name}-quick"] if quick else [name, f"{name}-quick"]):
        path = RESULTS / f"{candidate}.json"
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data
    return None


def load_before(name: str, run: str = "before") -> dict[str, Any] | None:
    """The same benchmark in an earlier run: `before` (the first), `run2` (the second)."""
    path = RESULTS / run / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def ms(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f} ms"


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def yes(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def stats_row(label: str, s: dict[str, Any]) -> list[str]:
    return [label, ms(s.get("p50")), ms(s.get("p95")), ms(s.get("p99")), ms(s.get("max")),
            str(s.get("n", 0))]


# ---------------------------------------------------------------------------- sections


def machine(r: dict[str, Any]) -> str:
    m = r["machine"]
    return table(["", ""], [
        ["CPUs (`nproc`)", str(m["nproc"])], ["CPU model (`lscpu`)", m["cpu"]],
        ["RAM", f"{m['ram_gb']} GB"], ["Kernel", m["kernel"]], ["Python", m["python"]],
        ["PySide6", m["pyside6"]], ["websockets", m["websockets"]],
        ["uvicorn / FastAPI", f"{m['uvicorn']} / {m['fastapi']}"],
    ])


def latency(r: dict[str, Any]) -> str:
    rows = [stats_row("floor: bare `websockets` client receives the frame", r["floor"]),
            stats_row("agent: `notification.received` (stream client)", r["agentReceived"]),
            stats_row("agent: `pop.shown` (first paint)", r["agentPop"]),
            stats_row("  step: received → GUI thread starts on it (queued signal)",
                      r["agentQueue"]),
            stats_row("  step: GUI-thread time in `PopStack.on_event`", r["agentOnEventCpu"]),
            stats_row("  step: `on_event` done → first paint", r["agentPaintAfter"])]
    p = r.get("patched")
    if p:
        rows.append(stats_row("proposed pop changes: agent `pop.shown`", p["agentPop"]))
        rows.append(stats_row("  step: GUI-thread time in `PopStack.on_event`",
                              p["agentOnEventCpu"]))
        rows.append(stats_row("  floor in those turns", p["floor"]))
    text = table(["from the backend's accept (`sentAt`) to", "p50", "p95", "p99", "max", "n"],
                 rows)
    t = r["targets"]
    text += (f"\n\n{r['calls']} calls (plus {r['warmup']} warm-up calls, whose pops took "
             f"{', '.join(f'{v:.0f}' for v in r['warmupPopMs'])} ms). "
             f"p50 gap to the floor: **{r['gapP50Ms']:.1f} ms** (target ≤ 5 ms: "
             f"{yes(t['p50 within 5 ms of the floor'])}); p99 **{r['agentPop']['p99']:.1f} ms** "
             f"(target < 30 ms: {yes(t['p99 under 30 ms'])}).")
    if p:
        text += (f" With the proposed change: gap {p['gapP50Ms']:.1f} ms, p99 "
                 f"{p['agentPop']['p99']:.1f} ms.")
    return text


def fanout(r: dict[str, Any]) -> str:
    variants = [(k, ratio, label) for k, ratio, label in (
        ("mock+patch", "ratio_p50_patched", "+ deliver change"),
        ("mock+patch+nodeflate", "ratio_p50_nodeflate", "+ no deflate"))
        if any(k in row for row in r["sizes"].values())]
    rows = []
    for n, row in r["sizes"].items():
        f, m = row["floor"]["last"], row["mock"]["last"]
        cells = [f"{int(n):,}", ms(f["p50"]), ms(f["p95"]), ms(m["p50"]), ms(m["p95"]),
                 f"{row['ratio_p50']:.2f}x"]
        for key, ratio, _label in variants:
            cells += [ms(row[key]["last"]["p50"]), f"{row[ratio]:.2f}x"] if key in row \
                else ["–", "–"]
        cells.append(ms(row["mock"]["post202"]["p50"]))
        fa, ma = row["floor"]["acceptedToLast"]["p50"], row["mock"]["acceptedToLast"]["p50"]
        cells.append(f"{ms(fa)} / {ms(ma)} ({ma / fa:.2f}x)")
        rows.append(cells)
    head = ["clients", "floor p50", "floor p95", "mock p50", "mock p95", "mock/floor"]
    for _key, _ratio, label in variants:
        head += [f"{label} p50", "/floor"]
    head += ["POST → 202 p50", "accepted → last p50, floor / mock"]
    return table(head, rows) + (
        f"\n\nTime from the provider's request to the moment the last client has the frame, "
        f"{r['rounds']} rounds per size after one warm-up round. Target: within 2x of the floor.")


def throughput(r: dict[str, Any]) -> str:
    def row(label: str, x: dict[str, Any]) -> list[str]:
        return [label, f"{x['acceptedPerS']:.0f}/s", f"{x['deliveredPerS']:.0f}/s",
                f"{x['acceptedPerSecondMin']}–{x['acceptedPerSecondMax']}",
                ms(x["deliveryLatency"]["p50"]), ms(x["deliveryLatency"]["p99"]),
                f"{x['backendCpuPercent']:.0f} %", str(x["lost"])]

    rows = [row("the backend now", r)]
    names = {"nodelay": "proposed: TCP_NODELAY on accepted sockets",
             "nodelay+sender": "proposed: TCP_NODELAY + sender drains its queue"}
    for label, x in (r.get("proposed") or {}).items():
        rows.append(row(names.get(label, label), x))
    return table(["", "accepted", "delivered (in window)", "accepted per second, min–max",
                  "delivery p50", "delivery p99", "backend CPU", "lost"], rows) + (
        f"\n\n{r['seconds']:.0f} s, {r['concurrency']} requests in flight, one negotiator "
        "connected (a bare client that acknowledges every frame).")


def footprint(r: dict[str, Any]) -> str:
    s, idle = r["startupMs"], r["idle"]
    labels: dict[str, str] = {}
    rows = [
        ["start-up to tray visible (p50)", ms(s["bare"]["p50"], 0), ms(s["agent"]["p50"], 0),
         f"{r['startupRatio']:.2f}x", "≤ 2x", yes(r["targets"]["start-up within 2x of bare"])],
    ]
    for kind, label in labels.items():
        if kind in s:
            ratio = s[kind]["p50"] / s["bare"]["p50"]
            rows.append([label, "", ms(s[kind]["p50"], 0), f"{ratio:.2f}x", "≤ 2x",
                         yes(ratio <= 2)])
    rows += [
        ["idle RSS", f"{idle['bare']['rssKbEnd'] / 1024:.1f} MiB",
         f"{idle['agent']['rssKbEnd'] / 1024:.1f} MiB", f"{r['rssRatio']:.2f}x", "≤ 1.5x",
         yes(r["targets"]["RSS within 1.5x of bare"])],
    ]
    if "agent-pyside-scan" in idle:
        scan = idle["agent-pyside-scan"]["rssKbEnd"]
        rows.append(["… agent with PySide6's feature hook as it was (before 144c111)", "",
                     f"{scan / 1024:.1f} MiB", f"{scan / idle['bare']['rssKbEnd']:.2f}x",
                     "≤ 1.5x", ""])
    if "stack-floor" in idle:
        floor = idle["stack-floor"]["rssKbEnd"]
        rows.append(["… the stack's floor: bare tray + DESIGN's libraries used once, no agent "
                     "code (`stack_floor.py`)", "", f"{floor / 1024:.1f} MiB",
                     f"{floor / idle['bare']['rssKbEnd']:.2f}x", "≤ 1.5x", ""])
    if "agent-arena2" in idle:
        rows.append(["… agent with `MALLOC_ARENA_MAX=2`", "",
                     f"{idle['agent-arena2']['rssKbEnd'] / 1024:.1f} MiB",
                     f"{idle['agent-arena2']['rssKbEnd'] / idle['bare']['rssKbEnd']:.2f}x",
                     "≤ 1.5x", ""])
    if "tapi-agent" in idle:
        sh = idle["tapi-agent"]
        rows.append(["idle RSS, the real `tapi-agent` command (signed in, dev venv)", "",
                     f"{sh['rssKbEnd'] / 1024:.1f} MiB", f"{r['shippedRssRatio']:.2f}x",
                     "≤ 1.5x", yes(r["shippedRssRatio"] <= 1.5)])
        rows.append([f"idle CPU over {r['idleSeconds']:.0f} s, the real `tapi-agent`", "",
                     f"{sh['cpuPercent']:.3f} %", "", "< 0.5 %", yes(sh["cpuPercent"] < 0.5)])
    rows.append([f"idle CPU over {r['idleSeconds']:.0f} s", f"{idle['bare']['cpuPercent']:.3f} %",
                 f"{idle['agent']['cpuPercent']:.3f} %", "", "< 0.5 %",
                 yes(r["targets"]["idle CPU under 0.5 %"])])
    if "agent-ticks5" in idle:
        rows.append(["… proposed then: watchers on a 5 s tick", "",
                     f"{idle['agent-ticks5']['cpuPercent']:.3f} %, wakes "
                     f"{idle['agent-ticks5']['maxThreadWakeupsPerS']:.2f}/s", "", "< 0.5 %", ""])
    rows += [
        ["fastest timer (asyncio, by call site)", "–",
         f"{r.get('maxTimerPerS', 0):.2f}/s", "", "≤ 1/s",
         yes(r["targets"]["no timer firing more than once a second"])],
        ["busiest thread's wake-ups", f"{idle['bare']['maxThreadWakeupsPerS']:.2f}/s",
         f"{idle['agent']['maxThreadWakeupsPerS']:.2f}/s", "", "", ""],
    ]
    text = table(["", "bare PySide6 tray", "agent", "ratio", "target", ""], rows)
    for kind, ph in r.get("phasesMs", {}).items():
        if ph:
            text += f"\n\n`{kind}` start-up milestones (p50, ms after spawn): " + ", ".join(
                f"{k} {v['p50']:.0f}" for k, v in ph.items())
    if r.get("agentTimersPerS"):
        text += "\n\nAgent asyncio timers per second while idle, by the code that set them: " + \
            ", ".join(f"`{k}` {v:.2f}" for k, v in r["agentTimersPerS"].items()) + "."
    threads = idle["agent"]["wakeupsPerS"]
    text += "\n\nAgent wake-ups per second by thread (`name/tid`): " + ", ".join(
        f"`{k}` {v:.2f}" for k, v in threads.items()) + "."
    return text


def recovery(r: dict[str, Any]) -> str:
    rs, d = r["restart"], r["drop"]
    rows = [
        stats_row("restart: command → agent connected", rs["agentMs"]),
        stats_row("restart: command → floor connected", rs["floorMs"]),
        stats_row("restart: backend down (command → listening again)", rs["downMs"]),
        stats_row("restart: listening again → agent connected", rs["agentAfterUpMs"]),
        stats_row("restart: listening again → floor connected", rs["floorAfterUpMs"]),
    ]
    if d:
        rows += [stats_row("drop (TCP cut, no close frame) → agent connected", d["agentMs"]),
                 stats_row("drop → floor connected", d["floorMs"])]
    p = r.get("proposed")
    if p:
        pr = p["restart"]
        rows += [stats_row("proposed: restart → agent connected", pr["agentMs"]),
                 stats_row("proposed: backend down", pr["downMs"]),
                 stats_row("proposed: listening again → agent connected",
                           pr["agentAfterUpMs"])]
    return table(["", "p50", "p95", "p99", "max", "n"], rows)


def soak(r: dict[str, Any], arena: dict[str, Any] | None) -> str:
    t = r["targets"]
    rows = [
        ["calls / POSTs / duration",
         f"{r['calls']:,} / {r['posts']:,} / {r['durationS']:.0f} s", "< 5 min",
         yes(t["under 5 minutes"])],
        ["history entries per call", json.dumps(r["historyEntriesPerCall"]), "all exactly 1",
         yes(t["every call in the history exactly once"])],
        ["pops shown per call", json.dumps(r["popsShownPerCall"]), "none twice",
         yes(t["no call popped twice"])],
        ["RSS after warm-up → end", f"{r['rssKbAfterWarmup'] / 1024:.1f} → "
         f"{r['rssKbEnd'] / 1024:.1f} MiB ({r['rssGrowthKb'] / 1024:+.1f} MiB)", "< +5 MB",
         yes(t["RSS growth under 5 MB after warm-up"])],
    ]
    if r.get("rssTrimmedKbEnd") is not None:
        rows.append(["… after `malloc_trim(0)`", f"{r['rssTrimmedKbAfterWarmup'] / 1024:.1f} → "
                     f"{r['rssTrimmedKbEnd'] / 1024:.1f} MiB "
                     f"({(r['rssTrimmedKbEnd'] - r['rssTrimmedKbAfterWarmup']) / 1024:+.1f} MiB)",
                     "", ""])
    if arena:
        at = arena["targets"]
        rows.append(["same soak, agent with `MALLOC_ARENA_MAX=2`",
                     f"{arena['rssKbAfterWarmup'] / 1024:.1f} → {arena['rssKbEnd'] / 1024:.1f} "
                     f"MiB ({arena['rssGrowthKb'] / 1024:+.1f} MiB); history "
                     f"{json.dumps(arena['historyEntriesPerCall'])}", "< +5 MB",
                     yes(at["RSS growth under 5 MB after warm-up"])])
    rows.append(["agent reconnects (1 start, drops, 1 restart)", str(r["agentConnects"]), "", ""])
    rows.append(["pop latency during the soak", f"p50 {r['popLatencyUnderSoak']['p50']:.0f} ms,"
                 f" p99 {r['popLatencyUnderSoak']['p99']:.0f} ms", "", ""])
    rows.append(["CPU while calls ran", f"agent {r['agentCpuPercent']:.0f} %, backend "
                 f"{r['backendCpuPercent']:.0f} %", "", ""])
    return table(["", "measured", "target", ""], rows)


def shipped(r: dict[str, Any], big: dict[str, Any] | None, fp: dict[str, Any] | None) -> str:
    """The real `tapi-agent` process (bench_shipped.py): soak, burst and idle, issue 14."""
    def mib(kb: float) -> str:
        return f"{kb / 1024:.1f} MiB"

    runs = [x for x in (r, big) if x is not None]
    rows: list[list[str]] = []
    for x in runs:
        s, b = x["soak"], x["burst"]
        rows.append([f"soak: {s['calls']:,} calls one after another", mib(s["rssKbWarm"]),
                     mib(s["rssKbEnd"]), f"{s['growthKb'] / 1024:+.1f} MiB", "within ±5 MiB",
                     yes(abs(s["growthKb"]) <= 5 * 1024)])
    out = [table(["shipped `tapi-agent`", "RSS after 100 calls (warm-up)", "RSS at the end",
                  "growth", "target", ""], rows)]
    rows = []
    for x in runs:
        b = x["burst"]
        g = b["groups"]
        rows.append([f"{b['calls']:,} ringing calls in bursts of 100",
                     f"{g[0]['cpuMsPerCall']:.1f} ms", f"{g[-1]['cpuMsPerCall']:.1f} ms",
                     f"{b['cpuRatioLastFirst']:.2f}x", f"{b['drainS']:.1f} s",
                     mib(b["rssKbRest"]), mib(b["rssKbPeak"]),
                     f"{mib(b['rssKbAfter'])} ({(b['rssKbAfter'] - b['rssKbRest']) / 1024:+.1f})",
                     yes(b["cpuRatioLastFirst"] <= 2.0
                         and b["rssKbAfter"] - b["rssKbRest"] <= 10 * 1024)])
    out.append(table(["burst", "agent CPU per call, first 100", "last 100", "last/first",
                      "posted and painted in", "RSS at rest", "peak", "60 s after it ended",
                      "targets (≤ 2x, ≤ +10 MiB)"], rows))
    rows = [[f"`tapi-agent` at rest, connected ({x['soak']['calls']:,}-call run)",
             mib(x["idle"]["bareRssKb"]), mib(x["idle"]["agentRssKb"]),
             f"{x['idleRatio']:.2f}x", "≤ 1.5x", yes(x["idleRatio"] <= 1.5)] for x in runs]
    if fp is not None and "tapi-agent" in fp.get("idle", {}):
        i = fp["idle"]
        rows.append([f"`tapi-agent`, footprint benchmark ({fp['idleSeconds']:.0f} s idle)",
                     mib(i["bare"]["rssKbEnd"]), mib(i["tapi-agent"]["rssKbEnd"]),
                     f"{fp['shippedRssRatio']:.2f}x", "≤ 1.5x", yes(fp["shippedRssRatio"] <= 1.5)])
        rows.append(["the harness agent (`--as-shipped`), same window",
                     mib(i["bare"]["rssKbEnd"]), mib(i["agent"]["rssKbEnd"]),
                     f"{fp['rssRatio']:.2f}x", "≤ 1.5x", yes(fp["rssRatio"] <= 1.5)])
        if "stack-floor" in i:
            rows.append(["the stack's floor (`stack_floor.py`: no agent code), same window",
                         mib(i["bare"]["rssKbEnd"]), mib(i["stack-floor"]["rssKbEnd"]),
                         f"{fp['stackFloorRssRatio']:.2f}x", "≤ 1.5x",
                         yes(fp["stackFloorRssRatio"] <= 1.5)])
    out.append(table(["idle", "bare PySide6 tray", "agent", "ratio", "target", ""], rows))
    return "\n\n".join(out)


RUN4 = ("footprint", "shipped", "shipped-10k")


def run4(results: dict[str, dict[str, Any] | None], key: str) -> str:
    """The latest run's time span (`measuredAt`) or commits (`commit`): the sixth now."""
    values = sorted({str(r[key]) for n in RUN4 if (r := results.get(n)) is not None})
    if key == "measuredAt" and values:
        return f"{values[0]} – {values[-1]}"
    return ", ".join(values)


def shipped_before(r: dict[str, Any]) -> str:
    """The same shipped-process benchmark run on the code before issue 14 (4b31b13)."""
    s, b = r["soak"], r["burst"]
    g = b["groups"]
    rows = [
        ["soak: RSS after 100 calls → at the end", f"{s['rssKbWarm'] / 1024:.1f} → "
         f"{s['rssKbEnd'] / 1024:.1f} MiB ({s['growthKb'] / 1024:+.1f} MiB, "
         f"{s['growthKb'] / max(1, s['calls'] - 100):.0f} KiB a call)"],
        [f"burst of {b['calls']:,}: agent CPU per call, first → last 100",
         f"{g[0]['cpuMsPerCall']:.1f} → {g[-1]['cpuMsPerCall']:.1f} ms "
         f"({b['cpuRatioLastFirst']:.2f}x); posted and painted in {b['drainS']:.1f} s"],
        ["burst: RSS at rest → peak → 60 s after it ended",
         f"{b['rssKbRest'] / 1024:.1f} → {b['rssKbPeak'] / 1024:.1f} → "
         f"{b['rssKbAfter'] / 1024:.1f} MiB"],
        ["idle RSS (bare tray app)", f"{r['idle']['agentRssKb'] / 1024:.1f} MiB "
         f"({r['idle']['bareRssKb'] / 1024:.1f} MiB, {r['idleRatio']:.2f}x)"],
    ]
    return ("The same benchmark on the code before issue 14 (4b31b13, "
            f"{r['soak']['calls']:,} calls and a burst of {r['burst']['calls']:,}, measured "
            f"{r['measuredAt']}; `results/run3/shipped-before.json`):\n\n"
            + table(["before (4b31b13)", ""], rows))


def imports(r: dict[str, Any]) -> str:
    rows = [[f"+ {s['step']}", f"{s['ms']:.0f} ms", f"{s['rssKb'] / 1024:.1f} MiB",
             f"{s.get('msScan', 0):.0f} ms", f"{s.get('rssKbScan', 0) / 1024:.1f} MiB"]
            for s in r["steps"]]
    total = [sum(s.get(k, 0) for s in r["steps"]) for k in ("ms", "rssKb", "msScan", "rssKbScan")]
    rows.append(["**total**", f"{total[0]:.0f} ms", f"{total[1] / 1024:.1f} MiB",
                 f"{total[2]:.0f} ms", f"{total[3] / 1024:.1f} MiB"])
    return table(["import (in this order, after the interpreter: "
                  f"{r['baseRssKb'] / 1024:.1f} MiB)", "time", "RSS",
                  "time, PySide6 hook as it was", "RSS, PySide6 hook as it was"], rows)


def popstack(r: dict[str, Any]) -> str:
    rows = []
    for x in r["rows"]:
        rows.append([str(x["live"]), "yes" if x["contactCacheHit"] else "no",
                     ms(x["incoming"]["p50"], 2),
                     ms(x["incoming"]["p95"], 2), ms(x["ended"]["p50"], 2)])
    return table(["other live calls", "contact cache hit", "incomingCall p50",
                  "incomingCall p95", "endedCall p50"], rows) + (
        f"\n\n{r['calls']} calls per row, each row a fresh process.")


def summary(results: dict[str, dict[str, Any] | None],
            before: dict[str, dict[str, Any] | None]) -> str:
    """One row per target: floor, the product now, the target, the verdict, the first run."""
    rows: list[list[str]] = []
    for name, where in (("latency", "offscreen Qt"), ("latency-xvfb", "real X server (Xvfb)")):
        lat, b = results.get(name), before.get(name)
        if lat:
            rows.append([f"Latency ({where}): POST accepted → pop painted, p50",
                         ms(lat["floor"]["p50"]), ms(lat["agentPop"]["p50"]) +
                         f" (gap {lat['gapP50Ms']:.1f} ms)", "within 5 ms of the floor",
                         yes(lat["targets"]["p50 within 5 ms of the floor"]),
                         f"gap {b['gapP50Ms']:.1f} ms" if b else ""])
            rows.append([f"Latency ({where}): p99", ms(lat["floor"]["p99"]),
                         ms(lat["agentPop"]["p99"]), "< 30 ms",
                         yes(lat["targets"]["p99 under 30 ms"]),
                         ms(b["agentPop"]["p99"]) if b else ""])
    fan, fb = results.get("fanout"), before.get("fanout")
    if fan:
        for n, row in fan["sizes"].items():
            was = (fb or {}).get("sizes", {}).get(n)
            rows.append([f"Fan-out to {int(n):,}: last one has it, p50",
                         ms(row["floor"]["last"]["p50"]), ms(row["mock"]["last"]["p50"]) +
                         f" ({row['ratio_p50']:.2f}x)", "within 2x",
                         yes(row["ratio_p50"] <= 2.0),
                         f"{ms(was['mock']['last']['p50'])} ({was['ratio_p50']:.2f}x)"
                         if was else ""])
    tp, tb = results.get("throughput"), before.get("throughput")
    if tp:
        rows.append(["Backend throughput, one negotiator, sustained", "–",
                     f"{tp['acceptedPerS']:.0f}/s accepted, {tp['deliveredPerS']:.0f}/s "
                     "delivered", "(measure)", "",
                     f"{tb['acceptedPerS']:.0f}/s, {tb['deliveredPerS']:.0f}/s" if tb else ""])
    fp, fpb = results.get("footprint"), before.get("footprint")
    if fp:
        idle, t = fp["idle"], fp["targets"]
        rows.append(["Start-up to tray visible, p50", ms(fp["startupMs"]["bare"]["p50"], 0),
                     ms(fp["startupMs"]["agent"]["p50"], 0) + f" ({fp['startupRatio']:.2f}x)",
                     "within 2x", yes(t["start-up within 2x of bare"]),
                     f"{ms(fpb['startupMs']['agent']['p50'], 0)} ({fpb['startupRatio']:.2f}x)"
                     if fpb else ""])
        rows.append(["Idle RSS", f"{idle['bare']['rssKbEnd'] / 1024:.1f} MiB",
                     f"{idle['agent']['rssKbEnd'] / 1024:.1f} MiB ({fp['rssRatio']:.2f}x)",
                     "within 1.5x", yes(t["RSS within 1.5x of bare"]),
                     f"{fpb['idle']['agent']['rssKbEnd'] / 1024:.1f} MiB "
                     f"({fpb['rssRatio']:.2f}x)" if fpb else ""])
        rows.append([f"Idle CPU ({fp['idleSeconds']:.0f} s)",
                     f"{idle['bare']['cpuPercent']:.2f} %", f"{idle['agent']['cpuPercent']:.2f} %",
                     "< 0.5 %", yes(t["idle CPU under 0.5 %"]),
                     f"{fpb['idle']['agent']['cpuPercent']:.2f} %" if fpb else ""])
        rows.append(["Idle: fastest timer / busiest thread's wake-ups",
                     f"– / {idle['bare']['maxThreadWakeupsPerS']:.2f}/s",
                     f"{fp.get('maxTimerPerS', 0):.2f}/s / "
                     f"{idle['agent']['maxThreadWakeupsPerS']:.2f}/s", "no timer > 1/s",
                     yes(t["no timer firing more than once a second"]),
                     f"– / {fpb['idle']['agent']['maxThreadWakeupsPerS']:.2f}/s" if fpb else ""])
    for key in ("shipped", "shipped-10k"):
        sh = results.get(key)
        if not sh:
            continue
        so, bu = sh["soak"], sh["burst"]
        rows.append([f"Shipped `tapi-agent`: RSS after {so['calls']:,} calls vs after 100", "",
                     f"{so['growthKb'] / 1024:+.1f} MiB", "within 5 MiB",
                     yes(abs(so["growthKb"]) <= 5 * 1024), ""])
        rows.append([f"Shipped `tapi-agent`: burst of {bu['calls']:,}, CPU/call last vs first 100",
                     "", f"{bu['cpuRatioLastFirst']:.2f}x", "within 2x",
                     yes(bu["cpuRatioLastFirst"] <= 2.0), ""])
        rows.append([f"Shipped `tapi-agent`: RSS {bu['afterS']:.0f} s after the burst vs rest",
                     "", f"{(bu['rssKbAfter'] - bu['rssKbRest']) / 1024:+.1f} MiB",
                     "within 10 MiB", yes(bu["rssKbAfter"] - bu["rssKbRest"] <= 10 * 1024), ""])
    if fp and "tapi-agent" in fp["idle"]:
        rows.append(["Idle RSS, the real `tapi-agent` command",
                     f"{fp['idle']['bare']['rssKbEnd'] / 1024:.1f} MiB",
                     f"{fp['idle']['tapi-agent']['rssKbEnd'] / 1024:.1f} MiB "
                     f"({fp['shippedRssRatio']:.2f}x)", "within 1.5x",
                     yes(fp["shippedRssRatio"] <= 1.5), ""])
    rec, rb = results.get("recovery"), before.get("recovery")
    if rec:
        rows.append(["Backend restart → agent connected, p50 / p95",
                     ms(rec["restart"]["floorMs"]["p50"], 0),
                     f"{ms(rec['restart']['agentMs']['p50'], 0)} / "
                     f"{ms(rec['restart']['agentMs']['p95'], 0)}", "(measure)", "",
                     f"{ms(rb['restart']['agentMs']['p50'], 0)} / "
                     f"{ms(rb['restart']['agentMs']['p95'], 0)}" if rb else ""])
        if rec.get("drop"):
            rows.append(["Dropped connection → agent connected, p50",
                         ms(rec["drop"]["floorMs"]["p50"], 0), ms(rec["drop"]["agentMs"]["p50"], 0),
                         "(measure)", "", ""])
    sk = results.get("soak")
    if sk:
        t = sk["targets"]
        rows.append([f"Soak ({sk['measuredAt'][:10]}): {sk['calls']:,} calls with faults, "
                     "each accounted for once", "",
                     json.dumps(sk["historyEntriesPerCall"]) + f" in {sk['durationS']:.0f} s",
                     "every call once, < 5 min",
                     yes(t["every call in the history exactly once"] and t["under 5 minutes"]
                         and t["no call popped twice"]), ""])
        rows.append([f"Soak ({sk['measuredAt'][:10]}): RSS growth after warm-up", "",
                     f"{sk['rssGrowthKb'] / 1024:+.1f} MiB", "< 5 MB",
                     yes(t["RSS growth under 5 MB after warm-up"]), ""])
    return table(["", "floor", "ours (product now)", "target", "", "first run (before)"], rows)


def before_after(before: dict[str, dict[str, Any] | None],
                 run2: dict[str, dict[str, Any] | None],
                 after: dict[str, dict[str, Any] | None]) -> str:
    """The first run, the second (after the first round of changes), and the product now."""
    def get(d: dict[str, Any] | None, *path: str) -> Any:
        for key in path:
            if not isinstance(d, dict) or key not in d:
                return None
            d = d[key]
        return d

    def cell(v: Any, unit: str = "ms", digits: int = 1) -> str:
        return "–" if v is None else f"{v:,.{digits}f} {unit}".strip()

    def mib(v: Any) -> str:
        return "–" if v is None else f"{v / 1024:.1f} MiB"

    rows: list[list[str]] = []

    def add(label: str, target: str, *path: str, unit: str = "ms", digits: int = 1,
            name: str = "") -> None:
        rows.append([label] + [cell(get(r.get(name), *path), unit, digits)
                               for r in (before, run2, after)] + [target])

    for name, label in (("latency", "offscreen"), ("latency-xvfb", "X server")):
        add(f"Latency ({label}): pop p50 − floor p50", "≤ 5 ms", "gapP50Ms", name=name)
        add(f"Latency ({label}): pop p99", "< 30 ms", "agentPop", "p99", name=name)
        add(f"Latency ({label}): `PopStack.on_event` p50", "", "agentOnEventCpu", "p50",
            name=name)
    for n in ("10", "100", "1000"):
        fl = get(after.get("fanout"), "sizes", n, "floor", "last", "p50")
        add(f"Fan-out to {int(n):,}: last has it, p50 (floor now {cell(fl)})", "≤ 2x floor",
            "sizes", n, "mock", "last", "p50", name="fanout")
    rows.append(["Throughput: accepted / delivered per s"] + [
        f"{cell(get(r.get('throughput'), 'acceptedPerS'), '', 0)} / "
        f"{cell(get(r.get('throughput'), 'deliveredPerS'), '', 0)}"
        for r in (before, run2, after)] + [""])
    add("Start-up to tray visible, p50", "≤ 2x bare", "startupMs", "agent", "p50", digits=0,
        name="footprint")
    add("… the bare tray app, p50", "", "startupMs", "bare", "p50", digits=0, name="footprint")
    rows.append(["Idle RSS (bare tray app: "
                 f"{mib(get(after.get('footprint'), 'idle', 'bare', 'rssKbEnd'))})"] +
                [mib(get(r.get("footprint"), "idle", "agent", "rssKbEnd"))
                 for r in (before, run2, after)] + ["≤ 1.5x bare"])
    add("Idle CPU", "< 0.5 %", "idle", "agent", "cpuPercent", unit="%", digits=3,
        name="footprint")
    add("Idle wake-ups, worker thread", "", "idle", "agent", "maxThreadWakeupsPerS",
        unit="/s", digits=2, name="footprint")
    for p in ("p50", "p95"):
        add(f"Restart → agent connected, {p}", "", "restart", "agentMs", p, name="recovery")
    rows.append(["Soak: RSS growth after warm-up"] + [
        "–" if get(r.get("soak"), "rssGrowthKb") is None
        else f"{get(r.get('soak'), 'rssGrowthKb') / 1024:+.1f} MiB"
        for r in (before, run2, after)] + ["< 5 MB"])
    return table(["", "first run (0080e2e)", "second run (11b68ef)", "now", "target"], rows)


def commands(results: dict[str, dict[str, Any] | None]) -> str:
    rows = []
    for name, r in results.items():
        if r is not None:
            rows.append([name, f"`{r['command']}`", r["measuredAt"],
                         f"{r['machine']['loadavg_at_start']:.2f}"])
    return table(["benchmark", "command", "measured at", "load average at start"], rows)


# ---------------------------------------------------------------------------- plot


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in r["samples"] if not s["warmup"]]
    series = [("floor: bare websockets client", [s["floorMs"] for s in rows], "#767676"),
              ("agent: notification.received", [s["receivedMs"] for s in rows], "#0067C0"),
              ("agent: pop.shown (first paint)", [s["popMs"] for s in rows], "#C42B1C")]
    if r.get("patched"):
        prow = [s for s in r["patched"]["samples"] if not s["warmup"]]
        series.append(("agent: pop.shown, proposed changes", [s["popMs"] for s in prow],
                       "#107C10"))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
    for label, values, colour in series:
        data = sorted(values)
        ys = [(i + 1) / len(data) for i in range(len(data))]
        ax1.step(data, ys, where="post", label=label, color=colour)
        ax2.hist(values, bins=60, range=(0.0, 30.0), histtype="step", color=colour, label=label)
    ax1.axvline(30, color="#000000", linestyle=":", linewidth=1)
    ax1.text(29, 0.5, "p99 target 30 ms", fontsize=8, rotation=90, ha="right")
    ax1.set_xscale("log")
    ax1.set_xlabel("milliseconds after the backend accepted the POST (log scale)")
    ax1.set_ylabel("fraction of calls")
    ax1.set_title(f"End-to-end latency, {r['calls']} calls (cumulative)")
    ax1.grid(True, which="both", alpha=0.3)
    handles, labels = ax1.get_legend_handles_labels()
    ax2.set_xlabel("milliseconds (0–30, 0.5 ms bins)")
    ax2.set_ylabel("calls")
    ax2.set_title("Distribution")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="use the *-quick.json results")
    args = parser.parse_args()
    names = ["latency", "fanout", "throughput", "footprint", "recovery", "soak",
             "soak-arena2", "import_costs", "popstack", "latency-xvfb", "shipped", "shipped-10k"]
    results = {n: load(n, args.quick) for n in names}
    before = {n: load_before(n) for n in names}
    run2 = {n: load_before(n, "run2") for n in names}
    sections: dict[str, Callable[[], str]] = {
        "machine": lambda: machine(next(r for r in results.values() if r is not None)),
        "commands": lambda: commands(results),
        "run_commit": lambda: ", ".join(sorted({r.get("commit", "?") for r in results.values()
                                                if r is not None})),
        "run_time": lambda: (min(r["measuredAt"] for r in results.values() if r is not None)
                             + " – " + max(r["measuredAt"] for r in results.values()
                                            if r is not None)),
        "summary": lambda: summary(results, before),
        "before_after": lambda: before_after(before, run2, results),
        "before_commands": lambda: commands(before),
        "latency": lambda: latency(results["latency"]),  # type: ignore[arg-type]
        "latency_xvfb": lambda: latency(results["latency-xvfb"]),  # type: ignore[arg-type]
        "fanout": lambda: fanout(results["fanout"]),  # type: ignore[arg-type]
        "throughput": lambda: throughput(results["throughput"]),  # type: ignore[arg-type]
        "footprint": lambda: footprint(results["footprint"]),  # type: ignore[arg-type]
        "recovery": lambda: recovery(results["recovery"]),  # type: ignore[arg-type]
        "soak": lambda: soak(results["soak"], results["soak-arena2"]),  # type: ignore[arg-type]
        "imports": lambda: imports(results["import_costs"]),  # type: ignore[arg-type]
        "popstack": lambda: popstack(results["popstack"]),  # type: ignore[arg-type]
        "shipped": lambda: shipped(results["shipped"], results["shipped-10k"],  # type: ignore[arg-type]
                                   results["footprint"]),
        "shipped_before": lambda: shipped_before(load_before("shipped-before", "run3")),  # type: ignore[arg-type]
        "run4_time": lambda: run4(results, "measuredAt"),
        "run4_commit": lambda: run4(results, "commit"),
    }

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        try:
            return sections[key]()
        except (TypeError, KeyError) as exc:
            return f"_not measured: no results for `{key}` ({exc!r})_"

    text = re.sub(r"\{\{(\w+)\}\}", fill, TEMPLATE.read_text(encoding="utf-8"))
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    if results["latency"] is not None:
        plot(results["latency"], PLOTS / "latency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
