"""The test MSI installed, upgraded and removed by Wine's msiexec: a Windows Installer engine we
did not write, in a throwaway prefix booted once for this module.

The packages are built by installer/build.py (wixl, the same .wxs as the Windows package)
around a small stand-in bundle: these tests are about what the package does to a machine
(registry, Run entry, Add/Remove Programs, upgrades, uninstall), and a 200 MB payload would only
make every install slower. The real bundle's MSI is read in test_msi.py. The simulation in
msi_run.py stays as the fast unit test of the same logic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tapi_agent.config import MACHINE_KEY, POLICY_KEY, MemoryRegistry, load_settings
from tests.helpers import require_tool
from tests.installer.conftest import TEST_ARP
from tests.installer.wine import Wine

pytestmark = [pytest.mark.needs_tool("wine"), pytest.mark.timeout(300)]

HKLM_MACHINE = "HKLM\\" + MACHINE_KEY
HKLM_POLICY = "HKLM\\" + POLICY_KEY
HKLM_RUN = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
INSTALLED = "C:\\Program Files\\TapiAgent\\"
RUN_ENTRY = f'"{INSTALLED}tapi-agent.exe" --at-sign-in'
SHORTCUT = "C:\\ProgramData\\Microsoft\\Windows\\Start Menu\\Programs\\TAPI Agent.lnk"
MACHINE_FILE = "C:\\ProgramData\\TapiAgent\\TapiAgent\\config.toml"
PRODUCT = "TAPI Agent (Linux test build)"
IT_PROPERTIES = ("SERVER_URL=https://notifications.example.com", "CLIENT_ID=estate-agents-ltd",
                 "REDIRECT_PORT=50123", "AUTOSTART=0")


@dataclass(frozen=True)
class Packages:
    """Three builds: 0.1.0, the same version rebuilt (a new ProductCode), and 0.1.1."""

    v010: Path
    v010_rebuilt: Path
    v011: Path


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wine]:
    """A booted throwaway prefix (wineboot once: ~10 s), removed afterwards."""
    require_tool("wine", "installs the test MSI with Wine's msiexec (Debian: wine wine64)")
    require_tool("wineserver", "Wine's server (Debian: wine wine64)")
    wine = Wine.boot(tmp_path_factory.mktemp("wine") / "prefix")
    try:
        yield wine
    finally:
        wine.shutdown()


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, build_script: ModuleType) -> Packages:
    for tool in ("wixl", "msibuild", "msiinfo"):
        require_tool(tool, "the MSI is built with msitools")
    root = tmp_path_factory.mktemp("wine-msi")
    bundle = root / "tapi-agent"
    (bundle / "_internal").mkdir(parents=True)
    for name, data in (("tapi-agent", b"gui stand-in"), ("tapi-agent-cli", b"cli stand-in"),
                       ("_internal/library.so", b"library stand-in")):
        (bundle / name).write_bytes(data)

    def build(version: str, name: str) -> Path:
        return build_script.build_msi(bundle, root / name, root / name / "work", version,
                                      TEST_ARP(build_script))

    return Packages(build("0.1.0", "a"), build("0.1.0", "b"), build("0.1.1", "c"))


@pytest.fixture
def machine(wine: Wine, packages: Packages) -> Iterator[Wine]:
    """The prefix with no TAPI Agent installed before and after the test."""
    assert wine.products("TAPI Agent") == {}
    try:
        yield wine
    finally:
        for code in wine.products("TAPI Agent"):
            wine.msiexec("/x", code, "/qn")
        wine.reg_delete(HKLM_POLICY)
        wine.drive_c(MACHINE_FILE).unlink(missing_ok=True)


def _install(wine: Wine, msi: Path, *properties: str) -> int:
    return wine.msiexec("/i", wine.windows_path(msi), "/qn", *properties)


def _agent_settings(wine: Wine):  # type: ignore[no-untyped-def]
    """What the agent would resolve from the registry the install left."""
    values = wine.reg_values(HKLM_MACHINE) or {}
    return load_settings(registry=MemoryRegistry({MACHINE_KEY: values}), environ={})


def test_install_with_properties_writes_them_the_run_entry_and_the_arp_entry(
    machine: Wine, packages: Packages,
) -> None:
    assert _install(machine, packages.v010, *IT_PROPERTIES) == 0

    assert machine.reg_values(HKLM_MACHINE) == {
        "ServerUrl": "https://notifications.example.com", "ClientId": "estate-agents-ltd",
        "RedirectPort": "50123", "AutoStart": "0"}
    assert (machine.reg_values(HKLM_RUN) or {}).get("TapiAgent") == RUN_ENTRY
    settings = _agent_settings(machine)
    assert not settings.errors
    assert (settings["auth.client_id"], settings["auth.redirect_port"]) == ("estate-agents-ltd",
                                                                            50123)
    assert settings["app.autostart"] is False
    # Files, an all-users shortcut, and what Add/Remove Programs shows.
    assert machine.drive_c(INSTALLED + "tapi-agent.exe").read_bytes() == b"gui stand-in"
    assert machine.drive_c(INSTALLED + "tapi-agent-cli.exe").is_file()
    assert machine.drive_c(SHORTCUT).is_file()
    (entry,) = machine.products("TAPI Agent").values()
    assert entry["DisplayName"] == PRODUCT  # never mistaken for the Windows package
    assert entry["DisplayVersion"] == "0.1.0"
    assert entry["HelpLink"] == "https://example.org/tapi-agent/help"
    assert entry["URLInfoAbout"] == "https://example.org/tapi-agent"
    assert entry["Contact"] == "IT service desk"
    assert "Notifications API" in entry["Comments"]


def test_install_without_properties_writes_no_settings(machine: Wine,
                                                       packages: Packages) -> None:
    assert _install(machine, packages.v010) == 0

    values = machine.reg_values(HKLM_MACHINE)
    assert values == {}  # the key exists (its Installer subkey), with no value of its own
    assert (machine.reg_values(HKLM_RUN) or {}).get("TapiAgent") == RUN_ENTRY
    settings = _agent_settings(machine)
    assert {settings.sources[k] for k in ("server.url", "auth.client_id", "auth.redirect_port",
                                          "app.autostart")} == {"default"}


def test_upgrade_keeps_remembered_values_and_takes_new_ones(machine: Wine,
                                                            packages: Packages) -> None:
    assert _install(machine, packages.v010, *IT_PROPERTIES) == 0

    assert _install(machine, packages.v011, "CLIENT_ID=acme-lettings", "AUTOSTART=1") == 0

    (entry,) = machine.products("TAPI Agent").values()
    assert entry["DisplayVersion"] == "0.1.1"
    assert machine.reg_values(HKLM_MACHINE) == {
        "ServerUrl": "https://notifications.example.com", "ClientId": "acme-lettings",
        "RedirectPort": "50123", "AutoStart": "1"}
    assert machine.drive_c(SHORTCUT).is_file()


def test_a_rebuild_of_the_same_version_replaces_the_installed_one(
    machine: Wine, packages: Packages,
) -> None:
    assert _install(machine, packages.v010, "SERVER_URL=https://notifications.example.com") == 0
    (first,) = machine.products("TAPI Agent")

    assert _install(machine, packages.v010_rebuilt) == 0

    (second,) = machine.products("TAPI Agent")  # one entry, not two "TAPI Agent 0.1.0"
    assert second != first
    assert (machine.reg_values(HKLM_MACHINE) or {}).get("ServerUrl") == \
        "https://notifications.example.com"
    assert machine.drive_c(INSTALLED + "tapi-agent.exe").is_file()


def test_a_downgrade_is_refused_with_1603(machine: Wine, packages: Packages) -> None:
    assert _install(machine, packages.v011) == 0

    assert _install(machine, packages.v010) == 1603

    (entry,) = machine.products("TAPI Agent").values()
    assert entry["DisplayVersion"] == "0.1.1"


def test_uninstall_removes_files_and_keys_and_keeps_policy_and_machine_file(
    machine: Wine, packages: Packages,
) -> None:
    assert _install(machine, packages.v010, *IT_PROPERTIES) == 0
    machine.reg_add(HKLM_POLICY, "ServerUrl", "REG_SZ", "https://policy.example.com")
    machine_file = machine.drive_c(MACHINE_FILE)
    machine_file.parent.mkdir(parents=True, exist_ok=True)
    machine_file.write_text('[calls]\nregion = "IE"\n', encoding="utf-8")

    assert machine.msiexec("/x", machine.windows_path(packages.v010), "/qn") == 0

    assert machine.products("TAPI Agent") == {}
    assert machine.reg_values(HKLM_MACHINE) is None  # the key, its subkeys and values: gone
    assert "TapiAgent" not in (machine.reg_values(HKLM_RUN) or {})
    assert not machine.drive_c(INSTALLED).exists()
    assert not machine.drive_c(SHORTCUT).exists()
    assert machine.reg_values(HKLM_POLICY) == {"ServerUrl": "https://policy.example.com"}
    assert machine_file.read_text(encoding="utf-8") == '[calls]\nregion = "IE"\n'
