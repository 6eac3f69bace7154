"""A second `tapi-agent` hands over to the first one and exits 0; the first keeps running."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest


def _command() -> list[str]:
    script = Path(sys.executable).with_name("tapi-agent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tapi_agent"]


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    # A user of its own: the single-instance name is per user, so agents that other tests
    # start at the same time never answer ours. Files go to tmp, never to the real profile.
    user = f"tapi-test-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", USER=user, LOGNAME=user,
               HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_RUNTIME_DIR=str(tmp_path / "run"),
               BROWSER="true")
    (tmp_path / "run").mkdir(mode=0o700)
    for key in [k for k in env if k.startswith("TAPI_AGENT_")]:
        del env[key]
    return env


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _wait_event(lines: queue.Queue[str], proc: subprocess.Popen[str], event: str,
                timeout: float, contains: str = "", **fields: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (record.get("event") == event and contains in str(record.get("message", ""))
                and all(record.get(k) == v for k, v in fields.items())):
            return record
    raise AssertionError(f"no {event} {fields} within {timeout}s; exit={proc.poll()}; "
                         f"output:\n{''.join(seen[-30:])}")


@contextmanager
def running_agent(args: list[str], env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str],
                                                                         queue.Queue[str]]]:
    """The real `tapi-agent` with `args` and `--log-json -`: the process and its output lines
    (read by a thread, for `_wait_event`); terminated (killed after 10 s) on the way out."""
    proc = subprocess.Popen([*_command(), *args, "--log-json", "-"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def curl_sign_in_env(agent_env: dict[str, str], curl: str, redirect_port: int) -> dict[str, str]:
    """`agent_env` for a browser sign-in that curl plays (following the redirects), with a
    keyring that fails, so every start signs in afresh and nothing touches the user's store."""
    return dict(agent_env, BROWSER=f"{curl} -sS -L -o /dev/null %s",
                PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
                TAPI_AGENT_AUTH_REDIRECT_PORT=str(redirect_port))


@pytest.fixture
def first_agent(agent_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str],
                                                              queue.Queue[str]]]:
    with running_agent(["demo"], agent_env) as running:
        yield running


@pytest.mark.slow
def test_second_agent_exits_0_and_the_first_keeps_running(
    first_agent: tuple[subprocess.Popen[str], queue.Queue[str]], agent_env: dict[str, str]
) -> None:
    first, lines = first_agent
    _wait_event(lines, first, "connection.state", 60, state="connected")
    second = subprocess.run([*_command(), "demo", "--log-json", "-"], env=agent_env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    # The first one was asked to show itself, and is still running.
    _wait_event(lines, first, "log", 30, contains="asked us to show ourselves")
    assert first.poll() is None
    if sys.platform.startswith("linux"):  # the channel is not QtNetwork (2.6 MiB, issue 14)
        maps = Path(f"/proc/{first.pid}/maps").read_text()
        assert "libQt6Core" in maps  # the map is the agent's own
        assert "libQt6Network" not in maps and "QtNetwork" not in maps
    assert "connection.state" not in second.stdout  # the second never connected anywhere


@pytest.mark.slow
def test_a_squatter_on_the_old_shared_name_does_not_stop_the_agent(
    agent_env: dict[str, str], tmp_path: Path
) -> None:
    import hashlib
    import socket

    # Another local user creates the socket the agent used to use in the shared temp
    # directory, listening and never answering: the old agent "handed over" to it and exited.
    digest = hashlib.sha256(agent_env["USER"].encode("utf-8")).hexdigest()[:16]
    old_name = Path(os.environ.get("TMPDIR", "/tmp")) / f"tapi-agent-{digest}"
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(str(old_name))
    squatter.listen(8)
    squatter.setblocking(False)
    try:
        with running_agent(["demo"], agent_env) as (proc, lines):
            _wait_event(lines, proc, "connection.state", 60, state="connected")
            # the agent's own channel works, in the user's private runtime directory
            second = subprocess.run([*_command(), "demo", "--log-json", "-"], env=agent_env,
                                    capture_output=True, text=True, timeout=60, check=False)
            assert second.returncode == 0, second.stdout + second.stderr
            _wait_event(lines, proc, "log", 30, contains="asked us to show ourselves")
            assert (Path(agent_env["XDG_RUNTIME_DIR"]) / "TapiAgent" / "agent.sock").exists()
            with pytest.raises(BlockingIOError):
                squatter.accept()  # nobody ever talked to the squatter
    finally:
        squatter.close()
        old_name.unlink(missing_ok=True)
