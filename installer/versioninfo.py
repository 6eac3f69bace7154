"""Version numbers for the frozen app and the MSI, all derived from `tapi_agent.__version__`.

The spec and the build script import this file by path (it is not part of the package), so it
uses the standard library only and reads the version from the source instead of importing Qt.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_NAME = "TAPI Agent"
COMPANY_NAME = "TAPI Agent team"
DESCRIPTION = "TAPI Agent: screen pops for Reapit's Notifications API"


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
    """ProductVersion for Windows Installer: major.minor.build, each within MSI's limits."""
    major, minor, build = numeric_version(version, 3)
    if major > 255 or minor > 255 or build > 65535:
        raise ValueError(f"{version!r} does not fit an MSI ProductVersion (255.255.65535)")
    return f"{major}.{minor}.{build}"


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
