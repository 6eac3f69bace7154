"""The settings dialog edits the user's TOML file; policy-locked keys are greyed out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit
from pytestqt.qtbot import QtBot

from tapi_agent.config import MemoryRegistry, Settings, load_settings, save_user_settings
from tapi_agent.ui.settings_dialog import LOCKED_TEXT, SettingsDialog

# The offscreen platform warns that it cannot propagate size hints when a window is shown.
pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    machine = tmp_path / "machine.toml"
    machine.write_text('locked = ["server.url"]\n[server]\nurl = "https://notify.example.com"\n',
                       encoding="utf-8")
    return machine, tmp_path / "user" / "config.toml"


def _load(files: tuple[Path, Path], **kw: Any) -> Settings:
    machine, user = files
    return load_settings(machine_file=machine, user_file=user, environ={}, **kw)


def _dialog(qtbot: QtBot, settings: Settings, user: Path) -> SettingsDialog:
    dialog = SettingsDialog(settings, lambda changes: save_user_settings(user, changes))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_keys_locked_by_policy_are_greyed_out_and_say_who_set_them(
    qtbot: QtBot, files: tuple[Path, Path]
) -> None:
    registry = MemoryRegistry({r"SOFTWARE\Policies\TapiAgent": {"PopupCorner": "top-left"}})
    settings = _load(files, registry=registry)
    dialog = _dialog(qtbot, settings, files[1])
    for key in ("server.url", "popup.corner"):
        assert not dialog.widget(key).isEnabled()
        label = dialog.findChild(QLabel, f"locked:{key}")
        assert label is not None and label.text() == LOCKED_TEXT
    corner = dialog.widget("popup.corner")
    assert isinstance(corner, QComboBox) and corner.currentText() == "top-left"
    assert dialog.widget("calls.linger_s").isEnabled()
    assert dialog.findChild(QLabel, "locked:calls.linger_s") is None


def test_locked_keys_are_never_written_even_if_the_widget_is_changed(
    qtbot: QtBot, files: tuple[Path, Path]
) -> None:
    dialog = _dialog(qtbot, _load(files), files[1])
    url = dialog.widget("server.url")
    assert isinstance(url, QLineEdit)
    url.setText("http://127.0.0.1:9999")  # a disabled widget cannot be typed in; be thorough
    assert "server.url" not in dialog.changes()


def test_saving_writes_only_the_changed_keys_to_the_user_toml(
    qtbot: QtBot, files: tuple[Path, Path]
) -> None:
    user = files[1]
    dialog = _dialog(qtbot, _load(files), user)
    linger = dialog.widget("calls.linger_s")
    corner = dialog.widget("popup.corner")
    dnd = dialog.widget("app.do_not_disturb")
    lines = dialog.widget("calls.lines")
    assert isinstance(linger, QLineEdit) and isinstance(corner, QComboBox)
    assert isinstance(dnd, QCheckBox) and isinstance(lines, QPlainTextEdit)
    linger.setText("8")
    corner.setCurrentText("top-left")
    dnd.setChecked(True)
    lines.setPlainText("01234 567890 = Sales line\n")
    with qtbot.waitSignal(dialog.saved, timeout=2000) as saved:
        assert dialog.try_save() is True
    assert saved.args[0] == {"calls.linger_s": 8.0, "popup.corner": "top-left",
                             "app.do_not_disturb": True,
                             "calls.lines": {"01234 567890": "Sales line"}}
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    text = user.read_text(encoding="utf-8")
    assert "ring_timeout_s" not in text  # unchanged keys stay at their lower layer
    again = _load(files)
    assert again["calls.linger_s"] == 8.0
    assert again["popup.corner"] == "top-left"
    assert again["app.do_not_disturb"] is True
    assert again["calls.lines"] == {"01234 567890": "Sales line"}
    assert again.sources["calls.linger_s"] == str(user)
    assert not again.errors


def test_a_bad_value_shows_the_file_the_key_and_what_is_allowed(
    qtbot: QtBot, files: tuple[Path, Path]
) -> None:
    user = files[1]
    dialog = _dialog(qtbot, _load(files), user)
    poll = dialog.widget("missed.poll_interval_s")
    assert isinstance(poll, QLineEdit)
    poll.setText("5")
    assert dialog.try_save() is False
    assert dialog.errors_label.isVisible()
    text = dialog.errors_label.text()
    assert str(user) in text
    assert "missed.poll_interval_s" in text
    assert "a whole number from 15 to 3600" in text
    assert dialog.isVisible()  # stays open so the user can fix it
    assert not user.exists()  # nothing written while anything is wrong


def test_text_where_a_number_belongs_is_reported_not_crashed_on(
    qtbot: QtBot, files: tuple[Path, Path]
) -> None:
    dialog = _dialog(qtbot, _load(files), files[1])
    ring = dialog.widget("calls.ring_timeout_s")
    assert isinstance(ring, QLineEdit)
    ring.setText("a minute")
    assert dialog.try_save() is False
    assert "calls.ring_timeout_s" in dialog.errors_label.text()
    assert "'a minute' is not allowed" in dialog.errors_label.text()


def test_errors_found_when_loading_are_shown_at_the_top(
    qtbot: QtBot, files: tuple[Path, Path]
) -> None:
    user = files[1]
    user.parent.mkdir(parents=True)
    user.write_text('[popup]\ncorner = "middle"\n', encoding="utf-8")
    dialog = _dialog(qtbot, _load(files), user)
    label = dialog.findChild(QLabel, "loadErrors")
    assert label is not None
    assert "popup.corner" in label.text() and "bottom-right" in label.text()
    assert str(user) in label.text()


def test_cancel_writes_nothing(qtbot: QtBot, files: tuple[Path, Path]) -> None:
    user = files[1]
    dialog = _dialog(qtbot, _load(files), user)
    linger = dialog.widget("calls.linger_s")
    assert isinstance(linger, QLineEdit)
    linger.setText("9")
    dialog.reject()
    assert not user.exists()


def test_every_setting_is_on_a_tab() -> None:
    """A new setting without a tab broke saving (KeyError in changes())."""
    from tapi_agent.config import SETTINGS
    from tapi_agent.ui.settings_dialog import TABS

    prefixes = tuple(p for _, group in TABS for p in group)
    assert [s.key for s in SETTINGS if not s.key.startswith(prefixes)] == []
