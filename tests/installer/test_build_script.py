"""The build script's pure parts: versions, the generated file list, what wixl cannot author."""

from __future__ import annotations

import re
import subprocess
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
    assert versioninfo.msi_version("2.3.4.5") == "2.3.4.5"  # the commit count of a dev build
    assert versioninfo.msi_version("1.2.0rc1") == "1.2.0"
    with pytest.raises(ValueError, match="MSI ProductVersion"):
        versioninfo.msi_version("256.0.0")
    with pytest.raises(ValueError, match="MSI ProductVersion"):
        versioninfo.msi_version("0.1.0.70000")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
                    *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git repository with tapi_agent/__init__.py at version 0.3.0 and two commits."""
    repo = tmp_path / "repo"
    (repo / "tapi_agent").mkdir(parents=True)
    (repo / "tapi_agent" / "__init__.py").write_text('__version__ = "0.3.0"\n')
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    return repo


def test_every_build_has_its_own_version(versioninfo: ModuleType, checkout: Path) -> None:
    # Untagged: the commit count tells builds apart (Windows Installer ignores the fourth
    # field, so the package allows same-version upgrades: never two entries).
    assert versioninfo.build_version(checkout, environ={}) == "0.3.0.2"
    _git(checkout, "commit", "-q", "--allow-empty", "-m", "three")
    assert versioninfo.build_version(checkout, environ={}) == "0.3.0.3"
    # A release tag on the commit: its version, which must be the package's.
    _git(checkout, "tag", "v0.3.0")
    assert versioninfo.build_version(checkout, environ={}) == "0.3.0"
    _git(checkout, "tag", "-d", "v0.3.0")
    _git(checkout, "tag", "v0.4.0")
    with pytest.raises(ValueError, match="does not match"):
        versioninfo.build_version(checkout, environ={})
    # An explicit one wins (build.py --version), and must fit an MSI.
    env = {versioninfo.BUILD_VERSION_ENV: "0.3.1"}
    assert versioninfo.build_version(checkout, environ=env) == "0.3.1"


def test_a_checkout_without_history_cannot_number_its_build(versioninfo: ModuleType,
                                                            tmp_path: Path) -> None:
    (tmp_path / "tapi_agent").mkdir()
    (tmp_path / "tapi_agent" / "__init__.py").write_text('__version__ = "0.3.0"\n')
    with pytest.raises(ValueError, match="git history"):
        versioninfo.build_version(tmp_path, environ={})


def test_only_the_windows_build_is_named_as_the_real_package() -> None:
    build = load_script("build")
    assert build.msi_file_name("0.1.0.7", "wix") == "TapiAgent-0.1.0.7-x64.msi"
    assert build.msi_file_name("0.1.0.7", "wixl") == "TapiAgent-0.1.0.7-x64-LINUX-TEST.msi"
    assert build.TEST_PRODUCT_NAME == "TAPI Agent (Linux test build)"
    assert build._web_url("git@github.com:acme/tapi-agent.git") == \
        "https://github.com/acme/tapi-agent"
    assert build._web_url("https://github.com/acme/tapi-agent") == \
        "https://github.com/acme/tapi-agent"
    assert build._web_url("/srv/git/tapi-agent") == ""


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
        "SettingClientId": ("CLIENT_ID", True),
        "SettingRedirectPort": ("REDIRECT_PORT", True),
        "SettingAutoStart": ("AUTOSTART", True),
    }
    assert build.same_version_upgrades()
    assert build.force_deleted_keys() == [("StartMenuShortcut", r"SOFTWARE\TapiAgent")]
    assert build.secure_properties() == ["SERVER_URL", "CLIENT_ID", "REDIRECT_PORT",
                                         "AUTOSTART"]
