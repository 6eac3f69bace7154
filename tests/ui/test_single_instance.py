"""Single instance per user: the first claims the name, a second launch hands over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tapi_agent.ui.single_instance import SingleInstance, address, default_name


@pytest.fixture
def name() -> Iterator[str]:
    n = f"tapi-agent-test-{uuid.uuid4().hex[:12]}"
    yield n
    for leftover in (address(n), address(n) + ".lock"):
        Path(leftover).unlink(missing_ok=True)


def test_second_instance_with_same_name_hands_over_and_first_is_activated(
    qtbot: QtBot, name: str
) -> None:
    first = SingleInstance(name)
    assert first.try_acquire() is True
    assert first.listening
    second = SingleInstance(name)
    with qtbot.waitSignal(first.activated, timeout=5000):
        assert second.try_acquire() is False
    assert not second.listening
    first.release()


def test_each_later_launch_activates_the_first_again(qtbot: QtBot, name: str) -> None:
    first = SingleInstance(name)
    assert first.try_acquire()
    for _ in range(2):
        with qtbot.waitSignal(first.activated, timeout=5000):
            assert SingleInstance(name).try_acquire() is False
    first.release()


def test_a_released_name_can_be_claimed_again(qtbot: QtBot, name: str) -> None:
    first = SingleInstance(name)
    assert first.try_acquire()
    first.release()
    again = SingleInstance(name)
    assert again.try_acquire() is True
    again.release()


def test_stale_socket_left_by_a_crashed_agent_is_removed(qtbot: QtBot, name: str) -> None:
    import socket

    # A crashed agent leaves its socket file: bound, nobody accepting. Simulate exactly that.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(address(name))
    stale.close()  # the file stays, but connecting to it is refused
    inst = SingleInstance(name)
    assert inst.try_acquire() is True
    assert inst.listening
    inst.release()


def test_default_name_is_a_socket_in_the_private_runtime_dir(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    assert default_name(run) == str(run / "agent.sock") == default_name(run)
    with pytest.raises(ValueError, match="private runtime directory"):
        default_name()  # never the old predictable name in the shared temp directory


def test_private_runtime_dir_passes_over_what_another_user_could_have_planted(
    tmp_path, monkeypatch
) -> None:
    import os

    from tapi_agent.config import private_runtime_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    assert private_runtime_dir(environ={"XDG_RUNTIME_DIR": str(xdg)},
                              temp_root=tmp_path) == xdg / "TapiAgent"
    # an XDG_RUNTIME_DIR others can write to is not used
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    got = private_runtime_dir(environ={"XDG_RUNTIME_DIR": str(open_dir)}, temp_root=tmp_path)
    assert got == tmp_path / f"tapi-agent-{os.getuid()}"
    assert got.stat().st_mode & 0o777 == 0o700
    # the per-user temp directory squatted (made first, left open, or a symlink): passed over
    squatted = tmp_path / "t2" / f"tapi-agent-{os.getuid()}"
    squatted.mkdir(parents=True)
    squatted.chmod(0o777)
    got = private_runtime_dir(environ={}, temp_root=tmp_path / "t2")
    assert got == tmp_path / "cache" / "TapiAgent" / "run"
    assert got.stat().st_mode & 0o777 == 0o700
    (tmp_path / "t3").mkdir()
    (tmp_path / "t3" / f"tapi-agent-{os.getuid()}").symlink_to(xdg)
    assert private_runtime_dir(environ={}, temp_root=tmp_path / "t3") == got
    if os.geteuid() == 0:  # as root (CI) a directory really owned by another user
        other = tmp_path / "t4" / f"tapi-agent-{os.getuid()}"
        other.mkdir(parents=True, mode=0o700)
        os.chown(other, 65534, 65534)
        assert private_runtime_dir(environ={}, temp_root=tmp_path / "t4") == got


def test_windows_pipe_name_cannot_be_guessed_from_the_user_name(tmp_path: Path) -> None:
    """On Windows pipe names are global: the name carries a random part kept in the user's
    private directory, so another user of a shared host cannot create the pipe first."""
    import hashlib
    import stat

    from tapi_agent.ui.single_instance import PIPE_ID_FILE, pipe_name

    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    name = pipe_name(mine)
    assert name == pipe_name(mine)  # kept: every launch of this user finds the same pipe
    assert name != pipe_name(theirs)  # another profile, another name
    assert name.startswith("tapi-agent-") and len(name) == len("tapi-agent-") + 32
    guessable = hashlib.sha256(b"jane").hexdigest()[:16]
    assert guessable not in name
    assert stat.S_IMODE((mine / PIPE_ID_FILE).stat().st_mode) == 0o600
    (mine / PIPE_ID_FILE).write_text("not-a-token")  # damaged: replaced, never used as is
    repaired = pipe_name(mine)
    assert repaired != "tapi-agent-not-a-token" and repaired == pipe_name(mine)


def test_a_client_that_says_nothing_does_not_hold_up_a_second_launch(
    qtbot: QtBot, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multiprocessing.connection import Client

    from tapi_agent.ui import single_instance

    # The silent client would be dropped only after an hour: SHOW must get through meanwhile.
    monkeypatch.setattr(single_instance, "CLIENT_TIMEOUT_S", 3600.0)
    first = SingleInstance(name)
    assert first.try_acquire()
    silent = Client(address(name), "AF_UNIX")
    try:
        with qtbot.waitSignal(first.activated, timeout=5000):
            assert single_instance.tell(name, single_instance.SHOW) is True
        assert not silent.poll(0)  # still connected, still unread: nobody waited it out
    finally:
        first.release()  # promptly, with the silent client's reader still waiting
        silent.close()
    assert not Path(address(name)).exists()


def test_a_silent_client_is_dropped_after_the_timeout_and_logged(
    qtbot: QtBot, name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from multiprocessing.connection import Client

    from tapi_agent.ui import single_instance

    monkeypatch.setattr(single_instance, "CLIENT_TIMEOUT_S", 0.05)
    first = SingleInstance(name)
    assert first.try_acquire()
    silent = Client(address(name), "AF_UNIX")
    try:
        assert silent.poll(10)  # the server hung up on it
        with pytest.raises(EOFError):
            silent.recv_bytes()
        qtbot.waitUntil(lambda: "a client sent nothing" in caplog.text, timeout=5000)
    finally:
        silent.close()
        first.release()


def test_an_oversize_message_is_dropped_and_logged_and_the_channel_keeps_working(
    qtbot: QtBot, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from multiprocessing.connection import Client

    from tapi_agent.ui.single_instance import MAX_MESSAGE, SHOW, tell

    first = SingleInstance(name)
    assert first.try_acquire()
    shown: list[bool] = []
    first.activated.connect(lambda: shown.append(True))
    with Client(address(name), "AF_UNIX") as big:
        big.send_bytes(SHOW + b"x" * MAX_MESSAGE)  # starts like SHOW, but too long
    qtbot.waitUntil(lambda: "dropped a message" in caplog.text, timeout=5000)
    assert shown == []
    with qtbot.waitSignal(first.activated, timeout=5000):
        assert tell(name, SHOW)
    assert shown == [True]
    first.release()


def test_release_stops_the_listener_and_removes_the_socket(qtbot: QtBot, name: str) -> None:
    from tapi_agent.ui.single_instance import PING, tell

    inst = SingleInstance(name)
    assert inst.try_acquire()
    thread = inst._thread
    assert thread is not None and thread.is_alive()
    assert tell(name, PING)
    inst.release()
    assert not thread.is_alive()  # release waited for it
    assert not inst.listening
    assert not Path(address(name)).exists()
    assert tell(name, PING) is False


_RACER = """
import sys
from tapi_agent.ui.single_instance import SingleInstance
inst = SingleInstance(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # everybody goes at once
print("listening" if inst.try_acquire() and inst.listening else "handed over", flush=True)
sys.stdin.read()  # the winner keeps the name until the test is done
inst.release()
"""


def test_of_launches_at_the_same_moment_exactly_one_listens(name: str) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, name], env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
              for _ in range(4)]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes = sorted(racer.stdout.readline().strip() for racer in racers
                          if racer.stdout is not None)
        assert outcomes == ["handed over"] * 3 + ["listening"]
    finally:
        for racer in racers:
            racer.communicate(timeout=30)  # closes stdin: the winner releases and exits
    assert all(racer.returncode == 0 for racer in racers)
    assert not Path(address(name)).exists()


_EXITS = """
import sys
from multiprocessing.connection import Client
from PySide6.QtCore import QCoreApplication, QTimer
from tapi_agent.ui.single_instance import SHOW, SingleInstance, address, tell
app = QCoreApplication([])
inst = SingleInstance(sys.argv[1])
assert inst.try_acquire()
inst.activated.connect(app.quit)
QTimer.singleShot(0, lambda: tell(sys.argv[1], SHOW))
QTimer.singleShot(30000, lambda: app.exit(3))
code = app.exec()
silent = Client(address(sys.argv[1]), "AF_UNIX")  # a reader thread waits on it at exit
if sys.argv[2] == "release":
    inst.release()
print("exiting", flush=True)
sys.exit(code)
"""


@pytest.mark.parametrize("how", ["release", "no-release"])
def test_the_process_exits_cleanly_with_the_listener_running(name: str, how: str) -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _EXITS, name, how], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "exiting\n"
    assert out.stderr == ""  # no "QObject ... destroyed ... thread" warning, no traceback
    assert not Path(address(name)).exists()  # removed at exit even without release()
