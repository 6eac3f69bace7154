"""What installs, upgrades and uninstalls of the MSI leave in HKLM, played from the MSI's own
tables (tests/installer/msi_run.py), and what the agent then reads from there."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tapi_agent import __version__
from tapi_agent.config import MACHINE_KEY, MemoryRegistry, load_settings
from tests.helpers import require_tool
from tests.installer.conftest import MsiTables
from tests.installer.msi_run import INSTALLFOLDER, MsiRun

pytestmark = pytest.mark.timeout(360)  # the first test here may build the bundle and the MSI

RUN_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
IT_PROPERTIES = {
    "SERVER_URL": "https://notifications.example.com",
    "CLIENT_ID": "estate-agents-ltd",
    "REDIRECT_PORT": "50123",
    "AUTOSTART": "0",
}


def _agent_reads(run: MsiRun) -> MemoryRegistry:
    return MemoryRegistry({MACHINE_KEY: run.values(MACHINE_KEY)})


def test_silent_install_writes_the_settings_the_agent_reads(msi_tables: MsiTables) -> None:
    run = MsiRun(msi_tables)
    run.install(IT_PROPERTIES)

    assert run.values(MACHINE_KEY) == {"ServerUrl": "https://notifications.example.com",
                                       "ClientId": "estate-agents-ltd", "RedirectPort": "50123",
                                       "AutoStart": "0"}
    assert run.values(RUN_KEY) == {"TapiAgent": f'"{INSTALLFOLDER}tapi-agent.exe" --at-sign-in'}
    settings = load_settings(registry=_agent_reads(run), environ={})
    assert not settings.errors
    assert settings["server.url"] == "https://notifications.example.com"
    assert settings["auth.client_id"] == "estate-agents-ltd"
    assert settings["auth.redirect_port"] == 50123
    assert settings["app.autostart"] is False
    assert settings.sources["server.url"] == "HKLM\\" + MACHINE_KEY


def test_install_without_properties_writes_no_settings(msi_tables: MsiTables) -> None:
    run = MsiRun(msi_tables)
    run.install()

    assert run.values(MACHINE_KEY) == {}
    assert run.values(RUN_KEY) == {"TapiAgent": f'"{INSTALLFOLDER}tapi-agent.exe" --at-sign-in'}
    settings = load_settings(registry=_agent_reads(run), environ={})
    assert not settings.errors
    assert {settings.sources[k] for k in ("server.url", "auth.client_id", "auth.redirect_port",
                                          "app.autostart")} == {"default"}


def test_upgrade_without_properties_keeps_the_remembered_ones(msi_tables: MsiTables) -> None:
    run = MsiRun(msi_tables)
    run.install(IT_PROPERTIES)
    first = dict(run.registry)

    props = run.install()  # msiexec /i TapiAgent.msi /qn, nothing else

    assert run.registry == first
    assert {k: props[k] for k in IT_PROPERTIES} == IT_PROPERTIES


@pytest.mark.parametrize("ui", [False, True], ids=["silent", "full-ui"])
def test_upgrade_with_a_new_property_replaces_only_that_one(msi_tables: MsiTables,
                                                            ui: bool) -> None:
    run = MsiRun(msi_tables)
    run.install(IT_PROPERTIES)

    run.install({"SERVER_URL": "https://calls.example.org", "AUTOSTART": "1"}, ui=ui)

    # AUTOSTART=1 replaces the remembered 0 (no property has a default that could hide it).
    assert run.values(MACHINE_KEY) == {"ServerUrl": "https://calls.example.org",
                                       "ClientId": "estate-agents-ltd", "RedirectPort": "50123",
                                       "AutoStart": "1"}


def test_uninstall_leaves_no_value_behind(msi_tables: MsiTables) -> None:
    run = MsiRun(msi_tables)
    run.install({"SERVER_URL": "https://notifications.example.com"})
    assert run.registry
    run.uninstall()
    assert run.registry == {}


def test_msi_payload_extracts_to_a_working_agent(msi: Path, tmp_path: Path) -> None:
    require_tool("msiextract", "extracts the files of the MSI")
    subprocess.run(["msiextract", "-C", str(tmp_path), str(msi)], check=True,
                   capture_output=True)
    folder = tmp_path / "TapiAgent"  # INSTALLFOLDER, under Program Files on Windows
    try:
        cli = folder / "tapi-agent-cli.exe"  # the Linux stand-in under its Windows name
        cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
        env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
        result = subprocess.run([str(cli), "--version"], capture_output=True, text=True,
                                timeout=60, env=env, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"tapi-agent {__version__}"
        assert (folder / "tapi-agent.exe").is_file()
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # ~200 MB
