"""Version numbers for the frozen app and the MSI, all derived from `tapi_agent.__version__`.

The spec and the build script import this file by path (it is not part of the package), so it
uses the standard library only and reads the version from the source instead of importing Qt.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_NAME = "TAPI Agent"
COMPANY_NAME = "TAPI Agent team"
DESCRIPTION = "TAPI Agent: screen pops for Reapit's Notifications API"
BUILD_VERSION_ENV = "TAPI_AGENT_BUILD_VERSION"


def package_version(root: Path = ROOT) -> str:
    """`__version__` of `tapi_agent`, read from its source (no import, so no side effects)."""
    text = (root / "tapi_agent" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if not match:
        raise ValueError("tapi_agent/__init__.py has no __version__")
    return match.group(1)


def numeric_version(version: str, parts: int = 4) -> tuple[int, ...]:
    """`0.1.0` -> (0, 1, 0, 0); a pre-release or local suffix is dropped (`1.2.0rc1` -> 1.2.0)."""
    match = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        raise ValueError(f"{version!r} does not start with a number")
    numbers = [int(g) for g in match.groups() if g is not None]
    numbers += [0] * (parts - len(numbers))
    return tuple(numbers[:parts])


def msi_version(version: str) -> str:
    """ProductVersion for Windows Installer: major.minor.build[.revision], each within MSI's
    limits. Windows Installer compares the first three fields only; the fourth (the commit count
    of an untagged build) tells builds apart, and the package allows same-version upgrades so a
    rebuild replaces the installed one instead of sitting beside it."""
    match = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        raise ValueError(f"{version!r} does not start with a number")
    major, minor, build, revision = (int(g) if g is not None else None for g in match.groups())
    major, minor, build = major or 0, minor or 0, build or 0
    if major > 255 or minor > 255 or build > 65535 or (revision or 0) > 65535:
        raise ValueError(f"{version!r} does not fit an MSI ProductVersion (255.255.65535.65535)")
    return f"{major}.{minor}.{build}" + (f".{revision}" if revision is not None else "")


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def build_version(root: Path = ROOT, environ: Mapping[str, str] | None = None) -> str:
    """The version this build carries, unique for every build of the source:

    - `TAPI_AGENT_BUILD_VERSION` when set (build.py --version sets it for PyInstaller);
    - a release tag `vX.Y.Z` on the checked-out commit: `X.Y.Z`, which must be `__version__`;
    - otherwise `__version__` plus the commit count as a fourth field (`0.1.0.812`).

    Raises ValueError when it cannot tell builds apart (no git history, a shallow clone) or the
    tag and `__version__` disagree: a build must never reuse another build's version.
    """
    env = os.environ if environ is None else environ
    if env.get(BUILD_VERSION_ENV):
        version = env[BUILD_VERSION_ENV].strip()
        msi_version(version)  # fits, or says why not
        return version
    package = package_version(root)
    tags = (_git(root, "tag", "--points-at", "HEAD") or "").split()
    releases = sorted(t[1:] for t in tags if re.fullmatch(r"v\d+\.\d+\.\d+", t))
    if releases:
        if package not in releases:
            raise ValueError(f"the release tag v{releases[-1]} does not match "
                             f"tapi_agent.__version__ {package}: bump __version__ first")
        return package
    if _git(root, "rev-parse", "--is-shallow-repository") != "false":
        raise ValueError("cannot number this build: no complete git history here (a shallow "
                         "clone counts wrong: fetch the whole history), and "
                         f"{BUILD_VERSION_ENV} is not set")
    count = _git(root, "rev-list", "--count", "HEAD")
    if not count or not count.isdigit():
        raise ValueError("cannot count the commits of this checkout")
    return f"{'.'.join(str(n) for n in numeric_version(package, 3))}.{count}"


def version_file_text(version: str, exe_name: str) -> str:
    """A PyInstaller version file (the VERSIONINFO resource of a Windows executable).

    Text rather than PyInstaller's objects: those import `pefile`, which exists on Windows only,
    and PyInstaller reads this format on Windows with the same classes.
    """
    nums = numeric_version(version)
    dotted = ".".join(str(n) for n in nums)
    strings = {
        "CompanyName": COMPANY_NAME,
        "FileDescription": DESCRIPTION,
        "FileVersion": dotted,
        "InternalName": exe_name,
        "OriginalFilename": exe_name + ".exe",
        "ProductName": PRODUCT_NAME,
        "ProductVersion": version,
    }
    structs = ",\n".join(f"          StringStruct({k!r}, {v!r})" for k, v in strings.items())
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={nums!r}, prodvers={nums!r}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([
      StringTable('040904B0', [
{structs}
      ])
    ]),
    VarFileInfo([VarStruct('Translation', [0x0409, 1200])])
  ]
)
"""
