"""Single instance per user: the first claims the name, a second launch hands over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tapi_agent.ui.single_instance import SingleInstance, default_name


@pytest.fixture
def name() -> Iterator[str]:
    from PySide6.QtNetwork import QLocalServer

    n = f"tapi-agent-test-{uuid.uuid4().hex[:12]}"
    yield n
    QLocalServer.removeServer(n)


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

    from PySide6.QtNetwork import QLocalServer

    # A crashed agent leaves its socket file: bound, nobody accepting. Simulate exactly that.
    probe = QLocalServer()
    assert probe.listen(name)
    path = probe.fullServerName()
    probe.close()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
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
