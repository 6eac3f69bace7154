"""Installer fixtures: the installer scripts as modules, one PyInstaller bundle and one MSI per
test session (building them takes most of this directory's time)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"
DOCS = ROOT / "docs" / "IT-DEPLOYMENT.md"


def load_script(name: str) -> ModuleType:
    """Import installer/<name>.py (a script, not a package) under a name of its own."""
    module_name = f"tapi_installer_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, INSTALLER / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_script() -> ModuleType:
    """installer/build.py."""
    return load_script("build")


@pytest.fixture(scope="session")
def frozen_bundle(tmp_path_factory: pytest.TempPathFactory,
                  build_script: ModuleType) -> Iterator[Path]:
    """The Linux onedir bundle, built once from installer/tapi-agent.spec."""
    out = tmp_path_factory.mktemp("pyinstaller")
    try:
        yield build_script.build_bundle(out / "dist", out / "work")
    finally:
        shutil.rmtree(out, ignore_errors=True)  # ~200 MB; pytest keeps its last tmp dirs


@pytest.fixture(scope="session")
def msi(tmp_path_factory: pytest.TempPathFactory, build_script: ModuleType,
        frozen_bundle: Path) -> Iterator[Path]:
    """The MSI built by wixl around the frozen bundle (the stand-in payload)."""
    for tool in ("wixl", "msibuild", "msiinfo"):
        require_tool(tool, "the MSI is built with msitools")
    out = tmp_path_factory.mktemp("msi")
    version = load_script("versioninfo").package_version()
    try:
        yield build_script.build_msi(frozen_bundle, out, out / "work", version,
                                     TEST_ARP(build_script))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def TEST_ARP(build_script: ModuleType) -> object:
    """The Add/Remove Programs details test builds carry (a clone may have no git remote)."""
    return build_script.ArpInfo(help_url="https://example.org/tapi-agent/help",
                                about_url="https://example.org/tapi-agent",
                                contact="IT service desk")


class MsiTables:
    """Reads tables of one MSI with `msiinfo export`, as rows of column name -> text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[str, list[dict[str, str]]] = {}

    def __call__(self, table: str) -> list[dict[str, str]]:
        if table not in self._cache:
            text = subprocess.run(["msiinfo", "export", str(self.path), table], check=True,
                                  capture_output=True, text=True).stdout
            lines = text.splitlines()
            columns = lines[0].split("\t")
            self._cache[table] = [dict(zip(columns, line.split("\t"), strict=False))
                                  for line in lines[3:] if line]
        return self._cache[table]

    def column(self, table: str, key: str) -> dict[str, dict[str, str]]:
        """Rows of `table` by the value of their `key` column."""
        return {row[key]: row for row in self(table)}


@pytest.fixture(scope="session")
def msi_tables(msi: Path) -> Iterator[MsiTables]:
    """Table reader for the session's MSI."""
    yield MsiTables(msi)
