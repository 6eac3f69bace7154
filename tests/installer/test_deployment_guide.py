"""docs/IT-DEPLOYMENT.md tells IT the truth: policies, where logs and the machine file live."""

from __future__ import annotations

import pytest
from platformdirs.windows import Windows

from tapi_agent.config import APP_AUTHOR, APP_NAME, POLICY_KEY, policy_settings
from tapi_agent.logs import LOG_FILE_NAME
from tests.installer.guide import guide_text, table

LOCAL = r"C:\Users\someone\AppData\Local"
PROGRAMDATA = r"C:\ProgramData"


@pytest.fixture
def windows_dirs(monkeypatch: pytest.MonkeyPatch) -> Windows:
    """platformdirs' Windows rules, with the known folders pinned (they need Windows APIs)."""
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", LOCAL)
    monkeypatch.setenv("WIN_PD_OVERRIDE_COMMON_APPDATA", PROGRAMDATA)
    return Windows(APP_NAME, APP_AUTHOR)


def _windows_path(path: str) -> str:
    return path.replace("/", "\\")


def test_guide_lists_every_policy_the_agent_reads_with_its_registry_type() -> None:
    rows = {r["Policy value"]: r for r in table("Policy value")}
    readable = policy_settings()
    assert set(rows) == set(readable)
    for name, setting in readable.items():
        assert rows[name]["Setting"] == setting.key
        numeric = setting.type in (int, float, bool)
        assert rows[name]["Registry type"] == ("REG_DWORD" if numeric else "REG_SZ"), name
    assert f"HKLM\\{POLICY_KEY}" in guide_text()


def test_guide_names_the_log_folder_the_agent_uses_on_windows(windows_dirs: Windows) -> None:
    log_dir = _windows_path(windows_dirs.user_log_dir).replace(LOCAL, "%LOCALAPPDATA%")
    assert log_dir == r"%LOCALAPPDATA%\TapiAgent\TapiAgent\Logs"
    assert f"{log_dir}\\{LOG_FILE_NAME}" in guide_text()


def test_guide_names_the_machine_and_user_settings_files(windows_dirs: Windows) -> None:
    machine = _windows_path(windows_dirs.site_config_dir) + "\\config.toml"
    user = _windows_path(windows_dirs.user_config_dir).replace(LOCAL, "%LOCALAPPDATA%")
    assert machine in guide_text()
    assert user + "\\config.toml" in guide_text()
