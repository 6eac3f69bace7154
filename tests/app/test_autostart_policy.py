"""`app.autostart` holds both ways: a sign-in start goes on only when the setting is on, the
per-user entry follows a locked setting, and the MSI's machine entry makes it the only one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapi_agent import app, autostart
from tapi_agent.autostart import (
    AT_SIGN_IN,
    MACHINE_RUN_KEY,
    RUN_VALUE,
    MemoryRunKey,
    RegistryAutostart,
)
from tapi_agent.config import POLICY_KEY, MemoryRegistry

EXE = [r"C:\Program Files\TapiAgent\tapi-agent.exe"]


class _Started(Exception):
    """Raised where the agent would create its QApplication: the start went on."""


@pytest.fixture
def start_agent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run `tapi-agent [args]` up to the point where Qt would start, with a given registry,
    user file and environment; True when it went on, False when it stopped (exit code 0)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TAPI_AGENT_APP_AUTOSTART", raising=False)

    def qt_app() -> None:
        raise _Started

    monkeypatch.setattr(app, "_qt_app", qt_app)

    def run(args: list[str], *, registry: MemoryRegistry | None = None,
            user_toml: str = "") -> bool:
        monkeypatch.setattr(app, "default_registry", lambda: registry)
        user = tmp_path / "user.toml"
        user.write_text(user_toml, encoding="utf-8")
        try:
            code = app.main([*args, "--config", str(user)])
        except _Started:
            return True
        assert code == 0
        return False

    return run


def test_a_sign_in_start_goes_on_only_when_autostart_is_on() -> None:
    assert autostart.should_run(at_sign_in=True, autostart=True)
    assert not autostart.should_run(at_sign_in=True, autostart=False)
    # Started by hand (Start menu, a restart after an upgrade): always.
    assert autostart.should_run(at_sign_in=False, autostart=False)


@pytest.mark.parametrize(("policy", "user_choice", "goes_on"), [
    (1, "false", True),    # Enabled: starts at sign-in although the user turned it off
    (0, "true", False),    # Disabled: does not, whatever the user and the Run entries say
    (None, "false", False),  # not configured: the user's choice
    (None, "true", True),
])
def test_the_autostart_policy_is_enforced_both_ways_at_sign_in(
    start_agent, policy: int | None, user_choice: str, goes_on: bool,
) -> None:
    registry = MemoryRegistry({POLICY_KEY: {"AutoStart": policy}} if policy is not None else {})
    went_on = start_agent([AT_SIGN_IN], registry=registry,
                          user_toml=f"[app]\nautostart = {user_choice}\n")
    assert went_on is goes_on


def test_msi_autostart_0_is_a_machine_default_the_user_may_change(start_agent) -> None:
    registry = MemoryRegistry({r"SOFTWARE\TapiAgent": {"AutoStart": "0"}})
    assert start_agent([AT_SIGN_IN], registry=registry) is False
    assert start_agent([AT_SIGN_IN], registry=registry,
                       user_toml="[app]\nautostart = true\n") is True
    assert start_agent([], registry=registry) is True  # by hand, always


def test_machine_entry_is_seen_in_the_msi_run_key() -> None:
    assert not autostart.machine_entry(None)
    assert not autostart.machine_entry(MemoryRegistry())
    registry = MemoryRegistry({MACHINE_RUN_KEY: {"tapiagent": f'"{EXE[0]}" {AT_SIGN_IN}'}})
    assert autostart.machine_entry(registry)


def test_with_the_machine_entry_a_per_user_entry_is_removed_and_the_setting_shown() -> None:
    key = MemoryRunKey()
    backend = RegistryAutostart(key)
    backend.enable(EXE)  # left over from before the MSI
    assert autostart.reconcile(False, False, command=EXE, machine=True, backend=backend) is False
    assert key.get(RUN_VALUE) is None
    assert autostart.reconcile(True, False, command=EXE, machine=True, backend=backend) is True
    assert key.get(RUN_VALUE) is None  # the machine entry starts it: never twice
    autostart.choose(True, command=EXE, machine=True, backend=backend)
    assert key.get(RUN_VALUE) is None


@pytest.mark.parametrize("on", [True, False])
def test_without_the_machine_entry_a_locked_setting_is_enforced_on_the_user_entry(
    on: bool,
) -> None:
    key = MemoryRunKey()
    backend = RegistryAutostart(key)
    if not on:
        backend.enable(EXE)
    assert autostart.reconcile(on, True, command=EXE, machine=False, backend=backend) is on
    expected = f'"{EXE[0]}" {AT_SIGN_IN}' if on else None
    assert key.get(RUN_VALUE) == expected


def test_without_the_machine_entry_an_unlocked_setting_leaves_the_user_entry_alone() -> None:
    key = MemoryRunKey()
    backend = RegistryAutostart(key)
    assert autostart.reconcile(True, False, command=EXE, machine=False, backend=backend) is False
    assert key.get(RUN_VALUE) is None
    autostart.choose(True, command=EXE, machine=False, backend=backend)
    assert key.get(RUN_VALUE) == f'"{EXE[0]}" {AT_SIGN_IN}'
    assert autostart.reconcile(False, False, command=EXE, machine=False, backend=backend)
    autostart.choose(False, command=EXE, machine=False, backend=backend)
    assert key.get(RUN_VALUE) is None
