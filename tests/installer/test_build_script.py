"""The build script's pure parts: versions, the generated file list, what wixl cannot author."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from tests.installer.conftest import load_script

WIX = "{http://schemas.microsoft.com/wix/2006/wi}"


@pytest.fixture(scope="module")
def versioninfo() -> ModuleType:
    return load_script("versioninfo")


def test_versions_come_from_the_package(versioninfo: ModuleType) -> None:
    from tapi_agent import __version__

    assert versioninfo.package_version() == __version__
    assert versioninfo.numeric_version("0.1.0") == (0, 1, 0, 0)
    assert versioninfo.numeric_version("1.2.0rc1") == (1, 2, 0, 0)
    assert versioninfo.msi_version("2.3.4.5") == "2.3.4"
    with pytest.raises(ValueError, match="MSI ProductVersion"):
        versioninfo.msi_version("256.0.0")


def test_windows_version_resource_names_the_product_and_version(versioninfo: ModuleType) -> None:
    captured: dict[str, object] = {}

    def record(name: str) -> object:
        def make(*args: object, **kwargs: object) -> tuple[str, tuple[object, ...], dict]:
            captured.setdefault(name, (args, kwargs))
            return (name, args, kwargs)
        return make

    # PyInstaller evaluates the file with its own classes; record what they would receive.
    names = ["VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct",
             "VarFileInfo", "VarStruct"]
    text = versioninfo.version_file_text("0.1.0", "tapi-agent")
    eval(text, {n: record(n) for n in names})
    fixed = captured["FixedFileInfo"][1]  # type: ignore[index]
    assert fixed["filevers"] == (0, 1, 0, 0) and fixed["prodvers"] == (0, 1, 0, 0)
    assert "StringStruct('ProductVersion', '0.1.0')" in text
    assert "StringStruct('OriginalFilename', 'tapi-agent.exe')" in text
    assert "StringStruct('ProductName', 'TAPI Agent')" in text


def _fake_bundle(root: Path) -> Path:
    bundle = root / "tapi-agent"
    (bundle / "_internal" / "PySide6" / "Qt").mkdir(parents=True)
    (bundle / "tapi-agent").write_bytes(b"gui")
    (bundle / "tapi-agent-cli").write_bytes(b"cli")
    (bundle / "_internal" / "libpython3.11.so.1.0").write_bytes(b"lib")
    (bundle / "_internal" / "PySide6" / "Qt" / "qt.conf").write_bytes(b"conf")
    return bundle


def test_file_list_installs_every_file_with_windows_executable_names(tmp_path: Path) -> None:
    build = load_script("build")
    bundle = _fake_bundle(tmp_path)
    fragment = ET.fromstring(build.files_fragment(build.bundle_files(bundle)))

    files = {f.attrib["Id"]: f for f in fragment.iter(f"{WIX}File")}
    assert files["TapiAgentExe"].attrib["Name"] == "tapi-agent.exe"
    assert files["TapiAgentCliExe"].attrib["Name"] == "tapi-agent-cli.exe"
    assert len(files) == 4
    ids = [e.attrib["Id"] for e in fragment.iter() if "Id" in e.attrib]
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,71}", i) for i in ids)
    # Nested folders are nested Directory elements; every component is in the group.
    qt_dir = [d for d in fragment.iter(f"{WIX}Directory") if d.attrib["Name"] == "Qt"]
    assert len(qt_dir) == 1 and qt_dir[0].find(f"{WIX}Component/{WIX}File") is not None
    group = {r.attrib["Id"] for r in fragment.iter(f"{WIX}ComponentRef")}
    assert group == {c.attrib["Id"] for c in fragment.iter(f"{WIX}Component")}


def test_a_bundle_without_the_agent_executable_is_refused(tmp_path: Path) -> None:
    build = load_script("build")
    bundle = _fake_bundle(tmp_path)
    (bundle / "tapi-agent").unlink()
    with pytest.raises(build.BuildError, match="no tapi-agent executable"):
        build.bundle_files(bundle)


def test_conditions_and_secure_properties_wixl_cannot_author_are_read_from_the_wxs() -> None:
    build = load_script("build")
    assert build.component_conditions() == {
        "SettingServerUrl": ("SERVER_URL", True),
        "AutoStartRun": ('AUTOSTART = "1"', True),
    }
    assert build.secure_properties() == ["SERVER_URL", "CLIENT_ID", "REDIRECT_PORT",
                                         "AUTOSTART"]
