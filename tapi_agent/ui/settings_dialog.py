"""The settings dialog: edits the user's layer; keys locked by policy are greyed out and say so;
bad values come back from `save` as errors naming the file, the key and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tapi_agent.config import SETTINGS, ConfigError, Setting, Settings
from tapi_agent.ui import icons

LOCKED_TEXT = "set by your administrator"

# Tabs, in order, and the key prefixes they hold.
TABS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Calls", ("calls.",)),
    ("Pops", ("popup.", "missed.")),
    ("Connection", ("server.", "platform.", "stream.", "network.")),
    ("Sign-in", ("auth.",)),
    ("General", ("app.", "log.")),
)

_OVERRIDE_SOURCES = ("environment", "command line")


def _plain(label: QLabel) -> QLabel:
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def _lines_to_text(value: dict[str, str]) -> str:
    return "\n".join(f"{k} = {v}" for k, v in value.items())


def _text_to_lines(text: str) -> dict[str, str] | str:
    """`number = name` lines as a dict; the raw text when a line does not parse (save() says
    what is wrong)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        number, sep, name = line.partition("=")
        if not sep or not number.strip() or not name.strip():
            return text
        out[number.strip()] = name.strip()
    return out


class SettingsDialog(QDialog):
    """Edit the user's settings; `save(changes)` validates and writes, returning errors."""

    saved = Signal(dict)  # the changes that were written (key -> value, None = back to default)

    def __init__(self, settings: Settings,
                 save: Callable[[dict[str, Any]], list[ConfigError]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._save = save
        self._widgets: dict[str, QWidget] = {}
        self._initial: dict[str, Any] = {}
        self.setWindowTitle("TAPI Agent settings")
        self.setWindowIcon(icons.app_icon())
        self.setMinimumWidth(680)

        layout = QVBoxLayout(self)
        if settings.errors:
            load_errors = _plain(QLabel("Problems in the settings (the last good values are "
                                        "used):\n" + "\n".join(str(e) for e in settings.errors)))
            load_errors.setObjectName("loadErrors")
            load_errors.setWordWrap(True)
            load_errors.setStyleSheet("color: #b26a00;")
            layout.addWidget(load_errors)

        self.tabs = QTabWidget()
        for title, prefixes in TABS:
            page = QWidget()
            form = QFormLayout(page)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
            for setting in SETTINGS:
                if setting.key.startswith(prefixes):
                    label = _plain(QLabel(setting.description))
                    label.setWordWrap(True)
                    label.setMinimumWidth(240)
                    form.addRow(label, self._row(setting))
            self.tabs.addTab(page, title)
        layout.addWidget(self.tabs)

        self.errors_label = _plain(QLabel())
        self.errors_label.setObjectName("saveErrors")
        self.errors_label.setWordWrap(True)
        self.errors_label.setStyleSheet("color: #c62828;")
        self.errors_label.hide()
        layout.addWidget(self.errors_label)
        note = _plain(QLabel("Some changes take effect when TAPI Agent restarts."))
        note.setStyleSheet("color: palette(mid);")
        layout.addWidget(note)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.try_save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    # -- building ------------------------------------------------------------------------------

    def _row(self, setting: Setting) -> QWidget:
        key = setting.key
        value = self.settings.values[key]
        editor = self._editor(setting, value)
        editor.setObjectName(key)
        editor.setMinimumWidth(220)
        self._widgets[key] = editor
        self._initial[key] = self._read(setting, editor)
        tip = f"{key}: {setting.describe_allowed()}"
        source = self.settings.sources.get(key, "default")
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(editor, 1)
        if self.settings.is_locked(key):
            editor.setEnabled(False)
            lock = _plain(QLabel(LOCKED_TEXT))
            lock.setObjectName(f"locked:{key}")
            lock.setStyleSheet("color: palette(mid); font-style: italic;")
            box.addWidget(lock)
            tip += f"\nLocked by {source}"
        elif source in _OVERRIDE_SOURCES:
            # The user file is edited, but this run uses the override: say why nothing changes.
            hint = _plain(QLabel(f"overridden by the {source}"))
            hint.setObjectName(f"override:{key}")
            box.addWidget(hint)
        editor.setToolTip(tip)
        return row

    def _editor(self, setting: Setting, value: Any) -> QWidget:
        if setting.type is bool:
            check = QCheckBox()
            check.setChecked(bool(value))
            return check
        if setting.choices:
            combo = QComboBox()
            combo.addItems(list(setting.choices))
            combo.setCurrentText(str(value))
            return combo
        if setting.type is dict:
            edit = QPlainTextEdit(_lines_to_text(value))
            edit.setPlaceholderText("01234 567890 = Sales line")
            edit.setFixedHeight(80)
            return edit
        line = QLineEdit(_format(value))
        line.setPlaceholderText(setting.describe_allowed())
        return line

    # -- reading -------------------------------------------------------------------------------

    def widget(self, key: str) -> QWidget:
        """The editor of setting `key`."""
        return self._widgets[key]

    def _read(self, setting: Setting, editor: QWidget) -> Any:
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            return editor.currentText()
        if isinstance(editor, QPlainTextEdit):
            return _text_to_lines(editor.toPlainText())
        assert isinstance(editor, QLineEdit)
        text = editor.text().strip()
        if setting.type is int:
            try:
                return int(text)
            except ValueError:
                return text  # save() names the key and what is allowed
        if setting.type is float:
            try:
                return float(text)
            except ValueError:
                return text
        return text

    def changes(self) -> dict[str, Any]:
        """What the user changed (locked keys never appear)."""
        out: dict[str, Any] = {}
        for setting in SETTINGS:
            key = setting.key
            if self.settings.is_locked(key):
                continue
            value = self._read(setting, self._widgets[key])
            if value != self._initial[key]:
                out[key] = value
        return out

    # -- saving --------------------------------------------------------------------------------

    def try_save(self) -> bool:
        """Save the changes; on errors show them (file, key, allowed values) and stay open."""
        changes = self.changes()
        errors = self._save(changes) if changes else []
        for editor in self._widgets.values():
            editor.setStyleSheet("")
        if errors:
            self.errors_label.setText("Not saved:\n" + "\n".join(str(e) for e in errors))
            self.errors_label.show()
            for err in errors:
                bad = self._widgets.get(err.key)
                if bad is not None:
                    bad.setStyleSheet("border: 1px solid #c62828;")
            return False
        self.errors_label.hide()
        if changes:
            self.saved.emit(changes)
        self.accept()
        return True


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)
