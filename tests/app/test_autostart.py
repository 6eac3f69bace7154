"""Start at login: the HKCU Run value on Windows (an in-memory registry here), XDG elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapi_agent.autostart import (
    RUN_VALUE,
    MemoryRunKey,
    RegistryAutostart,
    XdgAutostart,
    autostart_enabled,
    default_autostart,
    desktop_exec,
    set_autostart,
)

EXE = r"C:\Program Files\TAPI Agent\tapi-agent.exe"


def test_windows_start_at_login_writes_the_quoted_command_to_the_run_key() -> None:
    key = MemoryRunKey()
    backend = RegistryAutostart(key)
    assert autostart_enabled(backend=backend) is False
    set_autostart(True, command=[EXE], backend=backend)
    assert key.get(RUN_VALUE) == f'"{EXE}"'
    assert key.get("tapiagent") == f'"{EXE}"'  # registry names are case-insensitive
    assert autostart_enabled(backend=backend) is True


def test_windows_turning_it_off_removes_the_run_value_and_is_idempotent() -> None:
    key = MemoryRunKey()
    backend = RegistryAutostart(key)
    set_autostart(True, command=[EXE, "--log-level", "DEBUG"], backend=backend)
    assert key.get(RUN_VALUE) == f'"{EXE}" --log-level DEBUG'
    set_autostart(False, command=[EXE], backend=backend)
    set_autostart(False, command=[EXE], backend=backend)
    assert key.get(RUN_VALUE) is None
    assert autostart_enabled(backend=backend) is False


def test_xdg_entry_is_written_under_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    backend = XdgAutostart()
    set_autostart(True, command=["/opt/tapi agent/bin/tapi-agent"], backend=backend)
    entry = tmp_path / "autostart" / "tapi-agent.desktop"
    assert backend.path == entry
    text = entry.read_text(encoding="utf-8")
    assert text.startswith("[Desktop Entry]\n")
    assert "Type=Application" in text
    assert 'Exec="/opt/tapi agent/bin/tapi-agent"' in text
    assert autostart_enabled(backend=backend) is True
    set_autostart(False, command=[], backend=backend)
    assert not entry.exists()
    assert autostart_enabled(backend=backend) is False


def test_xdg_entry_turned_off_in_the_desktop_settings_counts_as_off(tmp_path: Path) -> None:
    backend = XdgAutostart(tmp_path)
    backend.enable(["tapi-agent"])
    text = backend.path.read_text(encoding="utf-8")
    backend.path.write_text(text.replace("X-GNOME-Autostart-enabled=true",
                                         "X-GNOME-Autostart-enabled=false"), encoding="utf-8")
    assert backend.enabled() is False
    backend.path.write_text(text + "Hidden=true\n", encoding="utf-8")
    assert backend.enabled() is False


def test_desktop_exec_quotes_and_escapes_per_the_spec() -> None:
    plain = ["/usr/bin/python3", "-m", "tapi_agent"]
    assert desktop_exec(plain) == "/usr/bin/python3 -m tapi_agent"
    assert desktop_exec(["/x/a b", "100%"]) == '"/x/a b" 100%%'
    # `$` is escaped with a backslash inside quotes, and the backslash doubled for the file.
    assert desktop_exec(["/x/$HOME"]) == '"/x/\\\\$HOME"'


def test_default_backend_here_is_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    if sys.platform == "win32":
        pytest.skip("Linux and macOS use the XDG entry")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert isinstance(default_autostart(), XdgAutostart)
    set_autostart(True, command=["tapi-agent"])
    assert autostart_enabled() is True
    assert (tmp_path / "autostart" / "tapi-agent.desktop").exists()
