"""A throwaway Wine prefix: a Windows Installer engine nobody here wrote (Wine's msiexec), and
`reg query` to read what it did to the registry."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

UNINSTALL_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
_VALUE = re.compile(r"^    (.*?)    (REG_[A-Z_]+)(?:    (.*))?$")
_EXIT = re.compile(r"^exit=(-?\d+)\s*$", re.MULTILINE)
TIMEOUT_S = 120  # one wine command; a hung one fails the test instead of the session


def wine_env(prefix: Path) -> dict[str, str]:
    """Headless (no display: msiexec /qn needs none), quiet, and no Mono/Gecko install
    prompts (mscoree and mshtml disabled): nothing here needs them."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(WINEPREFIX=str(prefix), WINEDEBUG="-all", WINEARCH="win64",
               WINEDLLOVERRIDES="mscoree,mshtml=")
    return env


@dataclass
class Wine:
    """One booted prefix."""

    prefix: Path
    env: dict[str, str]

    @classmethod
    def boot(cls, prefix: Path) -> Wine:
        """`wineboot -i` a new prefix and keep its wineserver running until `shutdown`."""
        env = wine_env(prefix)
        wine = cls(prefix, env)
        wine.run(["wineboot", "-i"])
        subprocess.Popen(["wineserver", "-p"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL).wait(timeout=TIMEOUT_S)
        return wine

    def shutdown(self) -> None:
        """Stop the prefix's processes and remove it (~700 MB)."""
        subprocess.run(["wineserver", "-k"], env=self.env, check=False, timeout=TIMEOUT_S,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """`wine ARGS` in this prefix. Output goes through files, not pipes: Wine's helper
        processes (services, the server) outlive the command and would hold a pipe open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            result = subprocess.run(["wine", *args], env=self.env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, check=False, timeout=TIMEOUT_S)
            out.seek(0)
            err.seek(0)
            done = subprocess.CompletedProcess(
                result.args, result.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"))
        if check:
            done.check_returncode()
        return done

    def windows_path(self, path: Path) -> str:
        """A Linux path as Windows programs in the prefix see it (drive Z:)."""
        return "Z:" + str(path.resolve()).replace("/", "\\")

    def msiexec(self, *args: str) -> int:
        """Run msiexec and return its full Windows exit code (1603, 3010...): a Unix exit
        status keeps only the low 8 bits, so cmd reports ERRORLEVEL instead."""
        line = " ".join(["msiexec", *args]) + " & call echo exit=%^ERRORLEVEL%"
        result = self.run(["cmd", "/c", line], check=False)
        match = _EXIT.search(result.stdout)
        assert match, f"no exit code from {line!r}: {result.stdout!r} {result.stderr!r}"
        return int(match.group(1))

    def reg_values(self, key: str) -> dict[str, str] | None:
        """The values of `key` (name -> data as `reg query` prints it); None when the key does
        not exist."""
        result = self.run(["reg", "query", key], check=False)
        if result.returncode != 0:
            return None
        values: dict[str, str] = {}
        for line in result.stdout.splitlines():
            match = _VALUE.match(line)
            if match:
                values[match.group(1)] = match.group(3) or ""
        return values

    def reg_add(self, key: str, name: str, kind: str, data: str) -> None:
        """`reg add KEY /v NAME /t KIND /d DATA /f`."""
        self.run(["reg", "add", key, "/v", name, "/t", kind, "/d", data, "/f"])

    def reg_delete(self, key: str) -> None:
        """`reg delete KEY /f` (no error when it is not there)."""
        self.run(["reg", "delete", key, "/f"], check=False)

    def products(self, name_prefix: str) -> dict[str, dict[str, str]]:
        """Add/Remove Programs entries whose DisplayName starts with `name_prefix`, by their
        key (the ProductCode for an MSI)."""
        result = self.run(["reg", "query", UNINSTALL_KEY, "/s"])
        out: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in result.stdout.splitlines():
            if line.startswith("HKEY_"):
                current = out.setdefault(line.rsplit("\\", 1)[-1], {})
                continue
            match = _VALUE.match(line)
            if match and current is not None:
                current[match.group(1)] = match.group(3) or ""
        return {k: v for k, v in out.items()
                if v.get("DisplayName", "").startswith(name_prefix)}

    def drive_c(self, windows_path: str) -> Path:
        """`C:\\...` as a Linux path inside the prefix."""
        rel = windows_path.removeprefix("C:\\").replace("\\", "/")
        return self.prefix / "drive_c" / rel
