"""Start at login: the HKCU Run key on Windows, an XDG autostart `.desktop` entry elsewhere,
and the rules that make the `app.autostart` setting (and its `AutoStart` policy) hold both ways.

Where the MSI is installed, every user's sign-in runs the agent from the machine-wide Run entry
(`HKLM\\...\\Run\\TapiAgent`) with `--at-sign-in`, and the agent decides (`should_run`):
it goes on only when `app.autostart` is true, as resolved from every layer (policy, the user's
choice, the machine file, the MSI's AUTOSTART, the default: on). So a policy *Enabled* starts the
agent at every sign-in and a policy *Disabled* stops it at once, whatever the Run entries say.
The tray's "Start at login" saves the user's choice as `app.autostart` in the user's settings
file (greyed out when a policy or the machine file locks it).

Without the machine entry (a pip install), the per-user entry is the way: the tray's option
writes or removes it, and when the setting is locked the agent makes the entry match the
setting each time it starts (`reconcile`). Every entry written here carries `--at-sign-in` too.

The Windows side goes through `RunKey`, so tests use `MemoryRunKey` where there is no registry.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
MACHINE_RUN_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"  # HKLM, written by the MSI
RUN_VALUE = "TapiAgent"
AT_SIGN_IN = "--at-sign-in"  # the command line flag of every start-at-sign-in entry
DESKTOP_FILE = "tapi-agent.desktop"


class RunKey(Protocol):
    """The values of HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run."""

    def get(self, name: str) -> str | None:
        """The command line stored under `name`, or None."""
        ...

    def set(self, name: str, value: str) -> None:
        """Store a command line (REG_SZ)."""
        ...

    def delete(self, name: str) -> None:
        """Remove `name`; no error when it is not there."""
        ...


class WindowsRunKey:
    """The real HKCU Run key (Windows only)."""

    def get(self, name: str) -> str | None:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:  # type: ignore[attr-defined,unused-ignore]
                value, _kind = winreg.QueryValueEx(key, name)  # type: ignore[attr-defined,unused-ignore]
        except OSError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0,  # type: ignore[attr-defined,unused-ignore]
                                winreg.KEY_SET_VALUE) as key:  # type: ignore[attr-defined,unused-ignore]
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)  # type: ignore[attr-defined,unused-ignore]

    def delete(self, name: str) -> None:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0,  # type: ignore[attr-defined,unused-ignore]
                                winreg.KEY_SET_VALUE) as key:  # type: ignore[attr-defined,unused-ignore]
                winreg.DeleteValue(key, name)  # type: ignore[attr-defined,unused-ignore]
        except FileNotFoundError:
            pass


class MemoryRunKey:
    """An in-memory Run key for tests: value names are case-insensitive, as in the registry."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, str]] = {}

    def get(self, name: str) -> str | None:
        item = self.values.get(name.lower())
        return item[1] if item else None

    def set(self, name: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Run values are REG_SZ strings")
        self.values[name.lower()] = (name, value)

    def delete(self, name: str) -> None:
        self.values.pop(name.lower(), None)


class Autostart(Protocol):
    """One way of starting the agent at login."""

    def enable(self, command: Sequence[str]) -> None:
        """Start `command` at login from now on."""
        ...

    def disable(self) -> None:
        """Stop starting at login."""
        ...

    def enabled(self) -> bool:
        """Whether the agent starts at login."""
        ...


class RegistryAutostart:
    """Windows: the `TapiAgent` value of the per-user Run key."""

    def __init__(self, run_key: RunKey | None = None) -> None:
        self.run_key: RunKey = run_key or WindowsRunKey()

    def enable(self, command: Sequence[str]) -> None:
        # Windows splits the Run value like a command line: quote paths with spaces.
        self.run_key.set(RUN_VALUE, subprocess.list2cmdline(list(command)))

    def disable(self) -> None:
        self.run_key.delete(RUN_VALUE)

    def enabled(self) -> bool:
        return bool(self.run_key.get(RUN_VALUE))


def desktop_exec(command: Sequence[str]) -> str:
    """`command` as a desktop-entry `Exec=` value (quoting and escaping per the spec)."""
    out = []
    for arg in command:
        arg = arg.replace("%", "%%")  # field codes start with %
        if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
            out.append(arg)
            continue
        inner = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        out.append(f'"{inner}"')
    # The file format escapes a backslash again (a string value): `\\` in the file is `\`.
    return " ".join(out).replace("\\", "\\\\")


class XdgAutostart:
    """Linux desktops: `$XDG_CONFIG_HOME/autostart/tapi-agent.desktop`."""

    def __init__(self, config_home: Path | None = None) -> None:
        self.config_home = config_home

    @property
    def path(self) -> Path:
        """Where the entry lives."""
        base = self.config_home or Path(
            os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return Path(base) / "autostart" / DESKTOP_FILE

    def enable(self, command: Sequence[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join([
            "[Desktop Entry]",
            "Type=Application",
            "Name=TAPI Agent",
            "Comment=Screen pops for incoming calls",
            f"Exec={desktop_exec(command)}",
            "Icon=tapi-agent",
            "Terminal=false",
            "X-GNOME-Autostart-enabled=true",
            "",
        ])
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)

    def disable(self) -> None:
        self.path.unlink(missing_ok=True)

    def enabled(self) -> bool:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return False
        entries = dict(line.split("=", 1) for line in lines if "=" in line)
        # Desktops honour these two switches; an entry the user turned off there is "off".
        return (entries.get("Hidden", "false").strip().lower() != "true"
                and entries.get("X-GNOME-Autostart-enabled", "true").strip().lower() != "false")


def default_autostart() -> Autostart:
    """The Run key on Windows, the XDG entry elsewhere."""
    return RegistryAutostart() if sys.platform == "win32" else XdgAutostart()


def set_autostart(enabled: bool, *, command: list[str], backend: Autostart | None = None) -> None:
    """Start `command` at login (or stop doing so)."""
    target = backend or default_autostart()
    if enabled:
        target.enable(command)
    else:
        target.disable()


def autostart_enabled(*, backend: Autostart | None = None) -> bool:
    """Whether the agent starts at login."""
    return (backend or default_autostart()).enabled()


class _ValuesReader(Protocol):
    def read_values(self, key_path: str) -> dict[str, str | int]: ...


def machine_entry(registry: _ValuesReader | None) -> bool:
    """Whether the MSI's machine-wide Run entry starts the agent at every user's sign-in."""
    if registry is None:
        return False
    return any(name.lower() == RUN_VALUE.lower() for name in registry.read_values(MACHINE_RUN_KEY))


def should_run(at_sign_in: bool, autostart: bool) -> bool:
    """Whether this start of the agent goes on: every start does, except one from a sign-in
    entry (`--at-sign-in`) while `app.autostart` is off (by policy, the user or IT)."""
    return autostart or not at_sign_in


def sign_in_command(command: Sequence[str]) -> list[str]:
    """`command` as a start-at-sign-in entry runs it."""
    return [*command, AT_SIGN_IN]


def reconcile(autostart: bool, locked: bool, *, command: Sequence[str], machine: bool,
              backend: Autostart | None = None) -> bool:
    """Make the per-user entry agree with the rules above; return whether the agent starts at
    sign-in (what the tray's "Start at login" shows).

    - `machine` (the MSI's Run entry exists): it starts the agent for everyone and `autostart`
      decides, so a per-user entry would only start it twice: it is removed.
    - otherwise, a locked setting (policy or machine file) is enforced on the per-user entry;
      an unlocked one is the user's to change, and the entry is left as it is.
    """
    target = backend or default_autostart()
    if machine:
        if target.enabled():
            target.disable()
        return autostart
    if locked:
        if autostart:
            target.enable(sign_in_command(command))
        else:
            target.disable()
        return autostart
    return target.enabled()


def choose(enabled: bool, *, command: Sequence[str], machine: bool,
           backend: Autostart | None = None) -> None:
    """The user ticked or cleared "Start at login": with the machine entry, only the setting
    (saved by the caller as `app.autostart`) matters; without it, the per-user entry follows."""
    if machine:
        return
    target = backend or default_autostart()
    if enabled:
        target.enable(sign_in_command(command))
    else:
        target.disable()
