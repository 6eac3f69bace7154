"""The MSI that wixl builds around the frozen bundle holds what docs/IT-DEPLOYMENT.md promises.

Read with `msiinfo export`: Property, Registry, Upgrade, Shortcut, File and the tables behind the
remembered properties (AppSearch, RegLocator, CustomAction, the sequences) and the conditions.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tapi_agent import __version__
from tapi_agent.config import MACHINE_KEY, policy_settings
from tests.installer.conftest import MsiTables, load_script
from tests.installer.guide import commands, table, upgrade_code

pytestmark = pytest.mark.timeout(360)  # the first test here may build the bundle and the MSI

HKLM = "2"  # Registry.Root / RegLocator.Root
RUN_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
MSIDB_TRANSITIVE = 0x40
MSIDB_PERMANENT = 0x10
LOCATOR_RAW_64BIT = 2 | 16  # msidbLocatorTypeRawValue | msidbLocatorType64bit
VERSION_MIN_INCLUSIVE = 0x100
VERSION_MAX_INCLUSIVE = 0x200


def _documented_properties() -> list[dict[str, str]]:
    return [row for row in table("Property") if row["Written to"]]


def _default(row: dict[str, str]) -> str | None:
    return None if row["Default"] == "*(none)*" else row["Default"]


def _registry_row(msi_tables: MsiTables, written_to: str) -> dict[str, str]:
    key, _, name = written_to.removeprefix("HKLM\\").rpartition("\\")
    rows = [r for r in msi_tables("Registry")
            if r["Root"] == HKLM and r["Key"] == key and r["Name"] == name]
    assert len(rows) == 1, f"no single Registry row writes {written_to}"
    return rows[0]


def _component(msi_tables: MsiTables, name: str) -> dict[str, str]:
    return msi_tables.column("Component", "Component")[name]


def test_msi_installs_per_machine_for_64_bit_windows(msi: Path, msi_tables: MsiTables) -> None:
    props = msi_tables.column("Property", "Property")
    assert props["ALLUSERS"]["Value"] == "1"
    summary = subprocess.run(["msiinfo", "suminfo", str(msi)], capture_output=True, text=True,
                             check=True).stdout
    assert "Template: x64;1033" in summary
    dirs = msi_tables.column("Directory", "Directory")
    assert dirs["INSTALLFOLDER"]["Directory_Parent"] == "ProgramFiles64Folder"
    assert dirs["INSTALLFOLDER"]["DefaultDir"] == "TapiAgent"
    assert props["ProductVersion"]["Value"] == load_script("versioninfo").msi_version(__version__)


def test_msi_properties_have_the_documented_defaults_and_pass_to_the_install(
    msi_tables: MsiTables,
) -> None:
    props = msi_tables.column("Property", "Property")
    secure = props["SecureCustomProperties"]["Value"].split(";")
    documented = _documented_properties()
    assert {r["Property"] for r in documented} == {
        "SERVER_URL", "CLIENT_ID", "REDIRECT_PORT", "AUTOSTART"}
    for row in documented:
        name = row["Property"]
        default = _default(row)
        if default is None:
            assert name not in props, f"{name} should have no default"
        else:
            assert props[name]["Value"] == default
        # Public properties reach the elevated part of a non-silent install only when secure.
        assert name in secure


def test_guide_shows_silent_install_and_uninstall_with_every_property() -> None:
    installs = commands("msiexec /i")
    assert installs
    for command in installs:
        assert "/qn" in command and "/l*v" in command
        for row in _documented_properties():
            assert f" {row['Property']}=" in command, (row["Property"], command)
    assert any("AUTOSTART=0" in c for c in installs)
    assert commands("msiexec /x")


def test_settings_go_to_the_machine_key_under_the_names_the_agent_reads(
    msi_tables: MsiTables,
) -> None:
    readable = {name.lower(): s for name, s in policy_settings().items()}
    settings_rows = [r for r in _documented_properties()
                     if r["Written to"].startswith("HKLM\\" + MACHINE_KEY + "\\")]
    assert len(settings_rows) == 4
    for row in settings_rows:
        reg = _registry_row(msi_tables, row["Written to"])
        assert reg["Key"] == MACHINE_KEY
        assert reg["Name"].lower() in readable, f"the agent does not read {reg['Name']}"
        # Plain "[PROP]": a REG_SZ the agent parses (a "#" prefix would make a REG_DWORD).
        assert reg["Value"] == f"[{row['Property']}]"
        # Written only when IT gave the property; a repair re-evaluates that (transitive).
        component = _component(msi_tables, reg["Component_"])
        assert component["Condition"] == row["Property"]
        assert int(component["Attributes"]) & MSIDB_TRANSITIVE


def test_every_sign_in_runs_the_agent_which_decides_by_its_autostart_setting(
    msi_tables: MsiTables,
) -> None:
    run = _registry_row(msi_tables, "HKLM\\" + RUN_KEY + "\\TapiAgent")
    assert run["Value"] == '"[INSTALLFOLDER]tapi-agent.exe" --at-sign-in'
    assert _component(msi_tables, run["Component_"])["Condition"] == ""  # always written


def test_properties_are_remembered_where_they_were_written(msi_tables: MsiTables) -> None:
    searches = msi_tables.column("AppSearch", "Property")
    locators = msi_tables.column("RegLocator", "Signature_")
    registry = msi_tables("Registry")
    actions = msi_tables.column("CustomAction", "Action")
    for name in ("SERVER_URL", "CLIENT_ID", "REDIRECT_PORT", "AUTOSTART"):
        locator = locators[searches[name]["Signature_"]]
        assert locator["Root"] == HKLM
        assert int(locator["Type"]) == LOCATOR_RAW_64BIT
        written = [r for r in registry if r["Key"] == locator["Key"]
                   and r["Name"] == locator["Name"] and r["Value"] == f"[{name}]"]
        assert written, f"{name} is searched at {locator['Key']}\\{locator['Name']} but not "
        # The command line wins over the remembered value: saved before AppSearch, put back after.
        save = [a for a, r in actions.items() if r["Source"] == f"CMDLINE_{name}"
                and r["Target"] == f"[{name}]"]
        restore = [a for a, r in actions.items() if r["Source"] == name
                   and r["Target"] == f"[CMDLINE_{name}]"]
        assert len(save) == 1 and len(restore) == 1
        for sequence in ("InstallExecuteSequence", "InstallUISequence"):
            steps = msi_tables.column(sequence, "Action")
            app_search = int(steps["AppSearch"]["Sequence"])
            assert int(steps[save[0]]["Sequence"]) < app_search, sequence
            assert int(steps[restore[0]]["Sequence"]) > app_search, sequence
            assert f"CMDLINE_{name}" in steps[restore[0]]["Condition"]


def test_upgrade_code_is_the_documented_one_and_upgrades_replace_older_versions(
    msi_tables: MsiTables,
) -> None:
    props = msi_tables.column("Property", "Property")
    code = upgrade_code()
    assert props["UpgradeCode"]["Value"] == code
    version = props["ProductVersion"]["Value"]
    rows = msi_tables("Upgrade")
    assert all(r["UpgradeCode"] == code for r in rows)
    older = [r for r in rows if r["VersionMax"] == version and not r["VersionMin"]]
    newer = [r for r in rows if r["VersionMin"] == version and not r["VersionMax"]]
    assert len(older) == 1 and len(newer) == 1
    # A rebuild of the same version (a new ProductCode) replaces the installed one; the same
    # version is no downgrade.
    assert int(older[0]["Attributes"]) & VERSION_MAX_INCLUSIVE
    assert not int(newer[0]["Attributes"]) & VERSION_MIN_INCLUSIVE
    assert older[0]["ActionProperty"] in props["SecureCustomProperties"]["Value"].split(";")
    assert "RemoveExistingProducts" in msi_tables.column("InstallExecuteSequence", "Action")
    conditions = {r["Condition"] for r in msi_tables("LaunchCondition")}
    assert f"NOT {newer[0]['ActionProperty']}" in conditions  # no downgrades


def test_start_menu_shortcut_starts_the_agent_for_all_users(msi_tables: MsiTables) -> None:
    (shortcut,) = msi_tables("Shortcut")
    dirs = msi_tables.column("Directory", "Directory")
    path, node = [], shortcut["Directory_"]
    while dirs[node]["Directory_Parent"] not in ("", "TARGETDIR"):
        path.insert(0, dirs[node]["DefaultDir"].split("|")[-1])
        node = dirs[node]["Directory_Parent"]
    assert [node, *path] == ["CommonAppDataFolder", "Microsoft", "Windows", "Start Menu",
                             "Programs"]
    assert shortcut["Name"].split("|")[-1] == "TAPI Agent"
    assert shortcut["Target"] == "[INSTALLFOLDER]tapi-agent.exe"
    assert shortcut["WkDir"] == "INSTALLFOLDER"


def test_every_file_of_the_bundle_is_in_the_msi(msi_tables: MsiTables,
                                                 frozen_bundle: Path) -> None:
    files = msi_tables.column("File", "File")
    on_disk = [p for p in frozen_bundle.rglob("*") if p.is_file()]
    assert len(files) == len(on_disk)
    components = msi_tables.column("Component", "Component")
    for file_id, exe in (("TapiAgentExe", "tapi-agent"), ("TapiAgentCliExe", "tapi-agent-cli")):
        row = files[file_id]
        assert row["FileName"].split("|")[-1] == exe + ".exe"
        assert int(row["FileSize"]) == (frozen_bundle / exe).stat().st_size
        assert components[row["Component_"]]["Directory_"] == "INSTALLFOLDER"


def test_uninstall_removes_everything_the_install_wrote(msi_tables: MsiTables) -> None:
    for component in msi_tables("Component"):
        assert not int(component["Attributes"]) & MSIDB_PERMANENT, component["Component"]
    for row in msi_tables("Registry"):
        # "+" keeps a key after uninstall, "*" creates one that outlives its values.
        assert row["Name"] not in ("+", "*"), row
        assert row["Key"].startswith(("SOFTWARE\\TapiAgent", RUN_KEY)), row
    # "-": the package's own key goes whole on uninstall (never the policy key).
    removed = [r["Key"] for r in msi_tables("Registry") if r["Name"] == "-"]
    assert removed == [MACHINE_KEY]


def test_test_build_says_it_is_one_and_add_remove_programs_has_links(
    msi: Path, msi_tables: MsiTables,
) -> None:
    props = msi_tables.column("Property", "Property")
    assert msi.name.endswith("-x64-LINUX-TEST.msi")
    assert props["ProductName"]["Value"] == "TAPI Agent (Linux test build)"
    for name in ("ARPHELPLINK", "ARPURLINFOABOUT"):
        assert props[name]["Value"].startswith("https://"), name
    assert props["ARPCONTACT"]["Value"] and props["ARPCOMMENTS"]["Value"]
    # Restart Manager closes agents still running during an upgrade, by force if need be.
    assert props["MSIRMSHUTDOWN"]["Value"] == "1"
