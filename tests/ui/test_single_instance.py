"""Single instance per user: the first claims the name, a second launch hands over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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


def test_default_name_is_per_user_and_stable() -> None:
    assert default_name() == default_name()
    assert default_name().startswith("tapi-agent-")
