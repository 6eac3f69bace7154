"""The agent for benchmarks: the real `Agent` (pops, stream, worker) in its own process.

    python benchmarks/agent_harness.py --server URL [--negotiator JAS] [--tray] [--tray-first]
                                       [--count-history] [--as-shipped]

Builds `tapi_agent.app.Agent` as `tests/app/test_end_to_end.py` does, with a token minted by the
backend's `POST /_mock/tokens` instead of a browser sign-in (so no keyring, no browser), and the
product's own logging set-up (`tapi_agent.logs.setup_logging`, file log included). Every
structured event goes to stdout as one JSON line with `t`, the epoch seconds of the log record
(full resolution; the product's `ts` has milliseconds). Harness lines:
- `harness.tray_visible` (with `--tray`): the tray icon is shown and docked in the tray
  (`Tray.docked`: the tray has given it its place);
- `harness.history` (with `--count-history`): every entry the CallBook adds to its history
  (the book keeps 50; the driver counts them all);
- `harness.phase`: start-up milestones (qapplication, [tray_shown,] imported, agent_built,
  agent_started)
  with milliseconds since the harness module began to run;
- `harness.on_event`: GUI-thread milliseconds `PopStack.on_event` took for each delivery;
- `harness.timers`: answered to `timers` (and `timers-reset`, which clears them): how many
  asyncio timers each call site scheduled (`call_at`, as `sleep` and `wait_for` use);
- `harness.threads`: answered to `threads`: Python thread names by native thread id;
- `harness.rss`: answered to `rss` on stdin (after a full garbage collection), with the
  number of live QWidgets, top-level widgets, Python objects, cards and live calls, and the RSS
  after `malloc_trim(0)` (`rssTrimmedKb`).
`quit` on stdin, or EOF, shuts the agent down the way the app does (stream stopped, worker
joined) and exits.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

T_START = time.time()

# The installer's PyInstaller spec excludes these: httpx and what it runs on (the mock's and the
# tests' client; the agent speaks HTTP with h11), and click, rich and pygments, which libraries
# import only when they are installed, as they are in a dev venv.
SHIPPED_WITHOUT = ("httpx", "httpcore", "anyio", "click", "rich", "pygments")
if "--as-shipped" in sys.argv:
    for _name in SHIPPED_WITHOUT:
        sys.modules[_name] = None  # type: ignore[assignment]

# Lines go out from a writer thread: the GUI thread only formats and queues them, so the
# harness's reporting does not add a blocking pipe write to the latency it measures.
_out: queue.SimpleQueue[str | None] = queue.SimpleQueue()


def _writer() -> None:
    while (line := _out.get()) is not None:
        sys.stdout.write(line)
        if _out.empty():
            sys.stdout.flush()
    sys.stdout.flush()


_writer_thread = threading.Thread(target=_writer, name="harness-out", daemon=True)
_writer_thread.start()


def emit(event: str, t: float | None = None, **fields: Any) -> None:
    """One JSON line on stdout."""
    _out.put(json.dumps({"t": time.time() if t is None else t, "event": event, **fields},
                        default=str, separators=(",", ":")) + "\n")


def close_output() -> None:
    """Write what is queued and stop the writer."""
    _out.put(None)
    _writer_thread.join(5)


class StdoutEvents(logging.Handler):
    """Structured events (logger `tapi_agent.events`) as JSON lines with the record's time."""

    def emit(self, record: logging.LogRecord) -> None:
        ev = getattr(record, "event", None)
        if ev:
            emit(ev, record.created, **getattr(record, "fields", {}))


def malloc_trim() -> int | None:
    """RSS after glibc's malloc_trim(0): what is left once freed heap pages go back to the OS
    (tells a leak from memory the allocator merely keeps). None off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return rss_kb()


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


TIMERS: Counter[str] = Counter()


def count_asyncio_timers() -> None:
    """Count every asyncio timer (`loop.call_at`, under `sleep`, `wait_for`, `call_later`) by
    the first caller outside asyncio, so idle wake-ups can be told apart timer by timer."""
    import asyncio.base_events as base_events

    original = base_events.BaseEventLoop.call_at

    def call_at(self: Any, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        frame = sys._getframe(1)
        while frame is not None and f"{os.sep}asyncio{os.sep}" in frame.f_code.co_filename:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None:
            code = frame.f_code
            TIMERS[f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"] += 1
        return original(self, when, callback, *args, context=context)

    base_events.BaseEventLoop.call_at = call_at  # type: ignore[method-assign,assignment]


def since_start() -> float:
    return (time.time() - T_START) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--negotiator", default="JAS")
    parser.add_argument("--tray", action="store_true", help="build the tray (needs a display)")
    parser.add_argument("--tray-first", action="store_true",
                        help="start as `tapi-agent` does: show the tray, then import and "
                             "build the rest once the icon is docked")
    parser.add_argument("--pyside-source-scan", action="store_true",
                        help="leave PySide6's feature hook as it is (it keeps the source of "
                             "every module imported after Qt): the agent before 144c111")
    parser.add_argument("--count-history", action="store_true")
    parser.add_argument("--as-shipped", action="store_true",
                        help="hide the modules the installer leaves out (click, rich, ...)")
    parser.add_argument("--linger", default="0", help="calls.linger_s (seconds)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another setting, as on the command line layer")
    args = parser.parse_args()
    count_asyncio_timers()

    if not args.pyside_source_scan:
        from tapi_agent.ui.feature_scan import skip_feature_source_scan

        skip_feature_source_scan()  # as `tapi_agent.app._qt_app` does
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    emit("harness.phase", phase="qapplication", sinceStartMs=since_start(), rssKb=rss_kb())

    class Control(QObject):
        """Commands read on a plain thread, handled on the GUI thread (queued signal)."""

        command = Signal(str)

    control = Control()
    holder: dict[str, Any] = {}

    def handle(cmd: str) -> None:
        if cmd == "rss":
            gc.collect()
            agent = holder.get("agent")
            cards = list(agent.pops.pops) if agent is not None else []
            live = [v.key for v in agent.pops.book.live] if agent is not None else []
            rss = rss_kb()
            trimmed = malloc_trim()
            emit("harness.rss", rssKb=rss, rssTrimmedKb=trimmed,
                 widgets=len(QApplication.allWidgets()),
                 topLevel=len(QApplication.topLevelWidgets()), pyObjects=len(gc.get_objects()),
                 cards=len(cards), liveCalls=len(live), someCards=cards[:5], someLive=live[:5])
        elif cmd == "timers-reset":
            TIMERS.clear()
            emit("harness.timers", counts={})
        elif cmd == "timers":
            emit("harness.timers", counts=dict(TIMERS))
        elif cmd == "threads":
            emit("harness.threads",
                 names={str(t.native_id): t.name for t in threading.enumerate()})
        elif cmd == "quit":
            app.quit()

    control.command.connect(handle)

    def read_stdin() -> None:
        for line in sys.stdin:
            control.command.emit(line.strip())
        control.command.emit("quit")

    threading.Thread(target=read_stdin, name="harness-stdin", daemon=True).start()

    def tray_visible() -> None:
        emit("harness.tray_visible", startedAt=T_START, pid=os.getpid())

    def tray_check() -> None:
        tray = getattr(holder.get("agent"), "tray", None)
        if tray is not None and tray.docked:  # the product's own test (ui/tray.py)
            tray_visible()
        else:
            QTimer.singleShot(5, tray_check)

    if args.tray_first:
        # What `run_gui` does: the tray first (`app._early_tray`), the rest once the icon is
        # docked (`Tray.when_docked`), then `Agent(..., tray=tray)`.
        import tapi_agent.app as app_module

        early = app_module._early_tray()
        if early is None:
            raise SystemExit("no system tray on this display")
        holder["early_tray"] = early
        emit("harness.phase", phase="tray_shown", sinceStartMs=since_start(), rssKb=rss_kb())

        def docked() -> None:
            if early.docked:
                tray_visible()
            else:
                emit("harness.tray_not_docked", sinceStartMs=since_start())
            build(args, holder)

        early.when_docked(docked)
    else:
        build(args, holder)
        if args.tray:
            QTimer.singleShot(0, tray_check)
    code = app.exec()
    if "agent" in holder:
        holder["agent"].shutdown()
    emit("harness.exit", code=code)
    close_output()
    return code


def build(args: argparse.Namespace, holder: dict[str, Any]) -> None:
    """Import, build and start the Agent (with the harness's measuring hooks)."""
    from tapi_agent.app import Agent
    from tapi_agent.config import Paths, load_settings
    from tapi_agent.core.log import EVENTS_LOGGER
    from tapi_agent.logs import setup_logging
    from tapi_agent.net.http import HttpClient
    from tapi_agent.net.session import CallableTokenSource
    from tapi_agent.ui.popstack import PopStack

    emit("harness.phase", phase="imported", sinceStartMs=since_start(), rssKb=rss_kb())
    tmp = Path(tempfile.mkdtemp(prefix="tapi-agent-bench-"))
    paths = Paths(machine_config=tmp / "machine.toml", user_config=tmp / "user.toml",
                  data_dir=tmp / "data", log_dir=tmp / "logs")
    setup_logging(log_dir=paths.log_dir, level="INFO", json_path=None)
    logging.getLogger(EVENTS_LOGGER).addHandler(StdoutEvents())
    cli = {"server.url": args.server, "calls.linger_s": args.linger}
    cli.update(item.split("=", 1) for item in args.set)
    settings = load_settings(environ={}, cli=cli)
    neg = args.negotiator

    async def mint() -> tuple[str, float]:
        # The agent's own HTTP client, so the harness loads nothing the agent does not.
        http = HttpClient(proxy="none", timeout_s=10)
        try:
            r = await http.post(f"{args.server}/_mock/tokens", json={"negotiatorId": neg})
        finally:
            await http.aclose()
        if not r.is_success:
            raise RuntimeError(f"minting a token: HTTP {r.status_code}")
        body = r.json()
        return body["access_token"], time.time() + float(body["expires_in"])

    on_event = PopStack.on_event

    def timed_on_event(self: PopStack, event: Any) -> None:
        # GUI-thread time to handle one delivery (CallBook, cards built and placed), which
        # the wall-clock latency mixes with waiting for the CPU.
        t0 = time.perf_counter()
        on_event(self, event)
        emit("harness.on_event", callId=getattr(event, "call_id", None),
             subType=getattr(event, "sub_type", None),
             ms=(time.perf_counter() - t0) * 1000)

    PopStack.on_event = timed_on_event  # type: ignore[method-assign]
    extra: dict[str, Any] = {}
    if holder.get("early_tray") is not None:
        extra["tray"] = holder["early_tray"]
    agent = Agent(settings, paths, tokens=CallableTokenSource(mint), negotiator_id=neg,
                  with_tray=args.tray, **extra)
    holder["agent"] = agent

    if args.count_history:
        book = agent.pops.book

        class CountingHistory(deque):  # type: ignore[type-arg]
            """The book's bounded history, reporting every entry it is given."""

            def append(self, entry: Any) -> None:
                emit("harness.history", callId=entry.call_id,
                     outcome=getattr(entry, "outcome", None))
                super().append(entry)

        old = book._history
        book._history = CountingHistory(old, maxlen=old.maxlen)

    emit("harness.phase", phase="agent_built", sinceStartMs=since_start(), rssKb=rss_kb())
    agent.start()
    emit("harness.phase", phase="agent_started", sinceStartMs=since_start(), rssKb=rss_kb())


if __name__ == "__main__":
    sys.exit(main())
