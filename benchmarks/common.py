"""Shared pieces of the benchmarks: child processes, envelopes, /proc readings, result files.

Benchmarks are run by hand (`.venv/bin/python benchmarks/bench_<name>.py [--quick]`), never by
pytest. Every figure is written to `benchmarks/results/<name>.json`; `benchmarks/report.py` turns
them into BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- figures


def percentiles(values: list[float]) -> dict[str, float]:
    """n, min, p50, p95, p99, max and mean of `values` (nearest-rank percentiles)."""
    if not values:
        return {"n": 0}
    data = sorted(values)

    def rank(p: float) -> float:
        k = max(0, min(len(data) - 1, round(p / 100 * len(data) + 0.5) - 1))
        return data[k]

    return {
        "n": len(data), "min": data[0], "p50": rank(50), "p95": rank(95), "p99": rank(99),
        "max": data[-1], "mean": statistics.fmean(data),
    }


def fmt(stats: dict[str, float], unit: str = "ms") -> str:
    """One readable line of percentiles."""
    if not stats.get("n"):
        return "no samples"
    return (f"p50 {stats['p50']:.2f} {unit}, p95 {stats['p95']:.2f} {unit}, "
            f"p99 {stats['p99']:.2f} {unit}, max {stats['max']:.2f} {unit} (n={stats['n']})")


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "?"


def machine_info() -> dict[str, Any]:
    """The machine the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(), "cpu": model, "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "pyside6": _version("PySide6-Essentials"), "websockets": _version("websockets"),
        "uvicorn": _version("uvicorn"), "fastapi": _version("fastapi"),
        "loadavg_at_start": os.getloadavg()[0],
    }


def _commit() -> str:
    """The product's commit, with `+changes` when tapi_agent/ has uncommitted edits."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tapi_agent"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def write_result(name: str, data: dict[str, Any], *, quick: bool) -> Path:
    """Write `benchmarks/results/<name>[-quick].json` with the machine, the time and the
    command line that produced it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'-quick' if quick else ''}.json"
    doc = {
        "benchmark": name, "quick": quick,
        "measuredAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": ".venv/bin/python " + " ".join(
            [str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]]),
        "machine": machine_info(), "commit": _commit(), **data,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def raise_nofile(want: int = 8192) -> None:
    """Raise the soft open-file limit (1,000 sockets each side need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, want), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 UTC time (`...Z`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------- /proc readings


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_wakeups(pid: int) -> dict[str, int]:
    """Context switches per thread (`name/tid`): each wake-up of an idle thread is one."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = (task / "comm").read_text().strip()
            total = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
            out[f"{name}/{task.name}"] = total
    return out


# ---------------------------------------------------------------------------- envelopes


def envelope(
    sub_type: str,
    call_id: str,
    to: list[str],
    *,
    hunt_group: bool = False,
    answered_by: str | None = None,
    caller: str = "07123 456789",
) -> dict[str, Any]:
    """A telephony envelope as a provider would POST it."""
    payload: dict[str, Any] = {
        "id": call_id,
        "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "callerId": caller, "destinationId": "01865 000100", "huntGroup": hunt_group,
    }
    if answered_by is not None:
        payload["answeredById"] = answered_by
    return {"type": "telephony", "subType": sub_type, "products": ["AgencyCloud"],
            "targets": {"negotiatorId": to}, "payload": payload}


# ---------------------------------------------------------------------------- load generator


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client: one write per request, Content-Length bodies.

    The load generator must cost less than the server it loads; httpx spends ~1 ms of CPU per
    request here, this a fraction of it.
    """

    def __init__(self, base_url: str, token: str) -> None:
        host, port = base_url.split("://", 1)[1].rsplit(":", 1)
        self.host, self.port, self.token = host, int(port), token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, body: Any) -> tuple[int, bytes]:
        """POST `body` as JSON; (status, response body)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        self._writer.write(head + data)
        raw_head = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        payload = await self._reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None


# ---------------------------------------------------------------------------- X display


def free_display() -> int:
    """A display number nobody holds; random and high, as test suites run Xvfb at :90 up."""
    import random

    for _ in range(200):
        n = random.randint(300, 899)
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


class Desktop:
    """Xvfb and trayer on a private display."""

    def __init__(self) -> None:
        for tool in ("Xvfb", "trayer", "xdotool"):
            if not shutil.which(tool):
                raise SystemExit(f"{tool} is not installed (apt-get install xvfb trayer xdotool)")
        for attempt in range(3):
            try:
                self._start()
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def _start(self) -> None:
        self.display = free_display()
        self.env = {**os.environ, "DISPLAY": f":{self.display}"}
        self.xvfb = subprocess.Popen(
            ["Xvfb", f":{self.display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.trayer: subprocess.Popen[bytes] | None = None
        try:
            # The socket file appears before the server accepts: ask it something instead.
            self._wait(lambda: subprocess.run(
                ["xdotool", "getdisplaygeometry"], env=self.env,
                capture_output=True).returncode == 0, "Xvfb")
            self.trayer = subprocess.Popen(
                ["trayer", "--edge", "bottom", "--align", "right", "--widthtype", "request",
                 "--height", "32"], env=self.env, stdout=subprocess.DEVNULL)
            self._wait(lambda: subprocess.run(
                ["xdotool", "search", "--classname", "trayer"], env=self.env,
                capture_output=True).returncode == 0, "trayer")
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _wait(cond: Any, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        for p in (self.trayer, self.xvfb):
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---------------------------------------------------------------------------- credential store


class SecretService:
    """A private D-Bus session bus with gnome-keyring's Secret Service on it, unlocked: the
    working credential store a user has (Credential Manager on Windows), for the real
    `tapi-agent` command. Without one the agent falls back to memory and shows its "No
    credential store" notice at every start, which a user with a working store never sees (on
    X11, Qt draws that notice itself: a balloon widget with its fonts, ~4 MiB that stay).
    The agent reaches the store through a child process (`net/token_child.py`), so which
    store it is does not change the agent's own memory."""

    def __init__(self) -> None:
        import tempfile

        for tool in ("dbus-daemon", "gnome-keyring-daemon"):
            if not shutil.which(tool):
                raise SystemExit(f"{tool} is not installed (apt-get install dbus gnome-keyring)")
        self.home = Path(tempfile.mkdtemp(prefix="bench-keyring-"))
        self.bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1",
             f"--address=unix:path={self.home}/bus"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.bus.stdout is not None
        self.address = self.bus.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not start")
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address, "HOME": str(self.home),
               "XDG_DATA_HOME": str(self.home / "data"), "XDG_RUNTIME_DIR": str(self.home)}
        # --unlock reads the login keyring's password from stdin, then the daemon goes to the
        # background and lives as long as the bus.
        subprocess.run(["gnome-keyring-daemon", "--unlock", "--components=secrets"],
                       input="bench", env=env, text=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30, check=True)
        # Ready once it answers on the bus (it may still be registering its name).
        check = ("import keyring.backends.SecretService as s; "
                 "s.Keyring().get_password('TapiAgentBench', 'probe')")
        deadline = time.monotonic() + 20
        while subprocess.run([sys.executable, "-c", check], env=env, capture_output=True
                             ).returncode != 0:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Secret Service did not come up")
            time.sleep(0.1)

    def env(self) -> dict[str, str]:
        """What a process needs to use this store (keyring picks the Secret Service itself)."""
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def stop(self) -> None:
        if self.bus.poll() is None:
            self.bus.terminate()
            try:
                self.bus.wait(10)
            except subprocess.TimeoutExpired:
                self.bus.kill()
                self.bus.wait()
        shutil.rmtree(self.home, ignore_errors=True)


def compile_bytecode() -> None:
    """Compile the agent's modules as an install does (a wheel install compiles them, the
    frozen app ships bytecode): a source checkout run with PYTHONDONTWRITEBYTECODE (as this
    machine kind sets) would otherwise compile every module at every start, which costs the
    measured process ~1 MiB of RSS and start-up time no user pays."""
    import compileall

    compileall.compile_dir(str(ROOT / "tapi_agent"), quiet=1)


# ---------------------------------------------------------------------------- child processes


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child: unbuffered, offscreen Qt unless told otherwise, no user config."""
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Backend:
    """The mock backend in its own process (`benchmarks/backend.py`), so it has its own GIL.

    `BENCH_PYSPY_BACKEND=FILE` runs it under `py-spy record` (collapsed stacks in FILE)."""

    proc: subprocess.Popen[str]
    base_url: str
    provider_token: str
    pid: int

    @classmethod
    def start(cls, *args: str) -> Backend:
        cmd = [PYTHON, str(BENCH_DIR / "backend.py"), *args]
        profile = os.environ.get("BENCH_PYSPY_BACKEND")
        if profile:
            cmd = [str(Path(PYTHON).parent / "py-spy"), "record", "--threads", "--rate", "500",
                   "--format", "raw", "--output", profile, "--", *cmd]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and not line.startswith("{"):  # py-spy's banner comes first
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError("backend did not start (see stderr above)")
        info = json.loads(line)
        return cls(proc, info["baseUrl"], info["providerToken"], int(info["pid"]))

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/notifications/stream?product=AgencyCloud"

    def command(self, cmd: str) -> dict[str, Any]:
        """Send a command line (`restart`) and return the backend's JSON answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def backend(*args: str) -> Iterator[Backend]:
    """A running backend process for the duration of the block."""
    b = Backend.start(*args)
    try:
        yield b
    finally:
        b.stop()


@dataclass
class AgentProc:
    """The agent harness (`benchmarks/agent_harness.py`) as an asyncio child process.

    `BENCH_PYSPY=FILE` in the environment runs it under `py-spy record` (collapsed stacks in FILE).
    Its stdout is one JSON object per line: every structured log event with `t` (epoch seconds
    of the log record), plus the harness's own `harness.*` lines.
    """

    proc: asyncio.subprocess.Process
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    all_events: list[dict[str, Any]] = field(default_factory=list)
    keep: bool = True
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, server: str, *args: str, env: dict[str, str] | None = None,
                    keep: bool = True, script: str = "agent_harness.py") -> AgentProc:
        cmd = [PYTHON, str(BENCH_DIR / script)]
        if script == "agent_harness.py":
            cmd += ["--server", server, *args]
        profile = os.environ.get("BENCH_PYSPY")
        if profile:
            # Profile the agent: py-spy samples it (all threads) and writes when it exits.
            cmd = [str(Path(PYTHON).parent / "py-spy"), "record", "--threads", "--rate", "500",
                   "--format", "raw", "--output", profile, "--", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env or child_env(), cwd=ROOT, limit=1 << 20,
        )
        agent = cls(proc, keep=keep)
        agent._reader = asyncio.get_running_loop().create_task(agent._read())
        return agent

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self.events.put({"event": "harness.eof"})
                return
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if self.keep:
                self.all_events.append(ev)
            await self.events.put(ev)

    async def wait_for(self, event: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        """The next event named `event` whose fields equal `match` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event} {match} within {timeout}s")
            ev = await asyncio.wait_for(self.events.get(), remaining)
            if ev["event"] == "harness.eof":
                raise RuntimeError("agent harness exited")
            if ev["event"] == event and all(ev.get(k) == v for k, v in match.items()):
                return ev

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(Exception):
                self.proc.stdin.write(b"quit\n")
                await self.proc.stdin.drain()
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@contextlib.asynccontextmanager
async def agent(server: str, *args: str, **kw: Any) -> AsyncIterator[AgentProc]:
    """A running agent harness, connected, for the duration of the block."""
    a = await AgentProc.start(server, *args, **kw)
    try:
        await a.wait_for("connection.state", timeout=60, state="connected")
        yield a
    finally:
        await a.stop()


def have(tool: str) -> bool:
    """True when a system tool is on PATH."""
    return shutil.which(tool) is not None
