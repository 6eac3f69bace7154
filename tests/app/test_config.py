"""Settings layers, locking by policy, and errors that name the file, key and allowed values."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapi_agent.config import (
    BY_KEY,
    MACHINE_KEY,
    POLICY_KEY,
    SETTINGS,
    MemoryRegistry,
    load_settings,
    read_toml,
    save_user_settings,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_configured(tmp_path):
    s = load_settings(machine_file=tmp_path / "none.toml", user_file=tmp_path / "no.toml",
                      environ={})
    assert s.values == {x.key: x.default for x in SETTINGS}
    assert s.errors == [] and s.locked == set()


def test_later_layers_win(tmp_path):
    machine = write(tmp_path / "m.toml", '[calls]\nregion = "FR"\nlinger_s = 8\n')
    user = write(tmp_path / "u.toml", '[calls]\nregion = "DE"\n')
    reg = MemoryRegistry({MACHINE_KEY: {"ServerUrl": "https://machine.example.com"}})
    s = load_settings(machine_file=machine, user_file=user, registry=reg,
                      environ={"TAPI_AGENT_CALLS_LINGER_S": "9"},
                      cli={"server.url": "http://127.0.0.1:9999"})
    assert s["calls.region"] == "DE" and s.sources["calls.region"] == str(user)
    assert s["calls.linger_s"] == 9.0 and s.sources["calls.linger_s"] == "environment"
    assert s["server.url"] == "http://127.0.0.1:9999"


def test_policy_values_are_locked_against_every_later_layer(tmp_path):
    user = write(tmp_path / "u.toml", '[server]\nurl = "http://127.0.0.1:1"\n')
    reg = MemoryRegistry({POLICY_KEY: {"serverurl": "https://policy.example.com",
                                       "MaxStackedPops": 5}})
    s = load_settings(user_file=user, registry=reg,
                      environ={"TAPI_AGENT_SERVER_URL": "http://127.0.0.1:2"})
    assert s["server.url"] == "https://policy.example.com"
    assert s["popup.max_stacked"] == 5
    assert s.is_locked("server.url") and s.is_locked("popup.max_stacked")
    assert any(e.key == "server.url" and "locked by your administrator" in e.message
               for e in s.errors)


def test_machine_file_can_lock_its_keys(tmp_path):
    machine = write(tmp_path / "m.toml", 'locked = ["calls.open_record"]\n'
                    '[calls]\nopen_record = "answer"\n')
    user = write(tmp_path / "u.toml", '[calls]\nopen_record = "ring"\n')
    s = load_settings(machine_file=machine, user_file=user, environ={})
    assert s["calls.open_record"] == "answer" and s.is_locked("calls.open_record")


def test_bad_value_names_file_key_and_allowed_values_and_keeps_last_good(tmp_path):
    machine = write(tmp_path / "m.toml", '[calls]\nopen_record = "ring"\n')
    user = write(tmp_path / "u.toml", '[calls]\nopen_record = "sometimes"\n'
                 "ring_timeout_s = 2\n")
    s = load_settings(machine_file=machine, user_file=user, environ={})
    assert s["calls.open_record"] == "ring"  # the machine value survives the bad user value
    assert s["calls.ring_timeout_s"] == 60.0
    messages = {e.key: str(e) for e in s.errors}
    assert messages["calls.open_record"] == (
        f"{user}: calls.open_record: 'sometimes' is not allowed; expected one of: off, ring, "
        "answer")
    assert "a number from 5 to 600" in messages["calls.ring_timeout_s"]


def test_unknown_key_and_broken_toml_are_errors_not_crashes(tmp_path):
    user = write(tmp_path / "u.toml", "[calls]\nringtone = 'bell'\n")
    s = load_settings(user_file=user, environ={})
    assert [e.key for e in s.errors] == ["calls.ringtone"]
    broken = write(tmp_path / "b.toml", "[calls\n")
    s = load_settings(user_file=broken, environ={})
    assert s.errors and "cannot be read as TOML" in s.errors[0].message


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [("app.autostart", "0", False), ("app.autostart", "yes", True),
     ("popup.max_stacked", "4", 4), ("calls.open_record", "RING", "ring"),
     ("calls.timezone", "Europe/Paris", "Europe/Paris")],
)
def test_environment_values_are_parsed_from_text(key, text, expected):
    s = load_settings(environ={BY_KEY[key].env_var: text})
    assert s[key] == expected and not s.errors


def test_bad_environment_value_is_reported():
    s = load_settings(environ={"TAPI_AGENT_CALLS_TIMEZONE": "Mars/Olympus"})
    assert s["calls.timezone"] == "Europe/London"
    assert s.errors[0].source == "environment"


def test_registry_emulation_follows_windows_rules():
    reg = MemoryRegistry()
    with pytest.raises(ValueError):
        reg.set_value(POLICY_KEY, "RedirectPort", 2**32)
    with pytest.raises(TypeError):
        reg.set_value(POLICY_KEY, "AutoStart", True)  # type: ignore[arg-type]
    reg.set_value(POLICY_KEY, "AUTOSTART", 0)
    assert load_settings(registry=reg, environ={})["app.autostart"] is False


def test_saving_user_settings_round_trips_and_refuses_bad_values(tmp_path):
    user = tmp_path / "cfg" / "config.toml"
    assert save_user_settings(user, {"popup.corner": "top-left",
                                     "calls.lines": {"01234 567890": "Sales line"}}) == []
    assert read_toml(user)[0] == {"popup.corner": "top-left",
                                  "calls.lines": {"01234 567890": "Sales line"}}
    errors = save_user_settings(user, {"popup.corner": "middle"})
    assert [e.key for e in errors] == ["popup.corner"]
    assert load_settings(user_file=user, environ={})["popup.corner"] == "top-left"
    assert save_user_settings(user, {"popup.corner": None}) == []
    assert load_settings(user_file=user, environ={})["popup.corner"] == "bottom-right"


# -- saving: any text a user can type survives, and a failed save loses nothing ------------

NASTY_LINES = {
    "01234 567890": "Sales\x01line",  # a control character pasted into a line name
    "tab\tkey": "bell\x07 del\x7f nul\x00 esc\x1b",
    'quote " and \\ backslash': "new\nline and CR\r and \u2028 separator",
    "[not a table]": "= not an assignment",
    "😀 astral": "ünïcödé",
}


def test_control_characters_in_a_value_are_saved_as_valid_toml(tmp_path):
    user = tmp_path / "config.toml"
    assert save_user_settings(user, {"calls.lines": NASTY_LINES,
                                     "popup.corner": "top-left"}) == []
    values, errors = read_toml(user)
    assert errors == []
    assert values == {"calls.lines": NASTY_LINES, "popup.corner": "top-left"}
    # the next start keeps every user setting (the old writer's file fell back to defaults)
    s = load_settings(user_file=user, environ={})
    assert s.errors == []
    assert s["calls.lines"] == NASTY_LINES and s["popup.corner"] == "top-left"


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4))
@settings(max_examples=60, deadline=None)
def test_any_line_names_round_trip(lines):
    with tempfile.TemporaryDirectory() as tmp:
        user = Path(tmp) / "config.toml"
        assert save_user_settings(user, {"calls.lines": lines, "app.autostart": False}) == []
        assert read_toml(user) == ({"calls.lines": lines, "app.autostart": False}, [])


def test_a_failed_save_keeps_the_old_file_and_says_why(tmp_path, monkeypatch):
    user = write(tmp_path / "config.toml", '[popup]\ncorner = "top-left"\n')
    before = user.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    errors = save_user_settings(user, {"popup.corner": "bottom-left"})
    assert [(e.key, "No space left" in e.message) for e in errors] == [("(file)", True)]
    assert user.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temp left


CRASH_MID_SAVE = """
import os, sys
from pathlib import Path
from tapi_agent.config import save_user_settings

def crash(fd):  # the new text is written but not yet in place: the process dies here
    os._exit(3)

os.fsync = crash
save_user_settings(Path(sys.argv[1]), {"popup.corner": "bottom-left",
                                       "calls.lines": {"1": "x" * 100000}})
"""


def test_a_crash_mid_save_keeps_the_old_file(tmp_path):
    user = write(tmp_path / "config.toml", '[popup]\ncorner = "top-left"\n')
    before = user.read_bytes()
    result = subprocess.run([sys.executable, "-c", CRASH_MID_SAVE, str(user)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    assert user.read_bytes() == before
    assert load_settings(user_file=user, environ={})["popup.corner"] == "top-left"
