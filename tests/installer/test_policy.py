"""The Group Policy templates match the settings the agent reads, and what they write is read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tapi_agent.config import (
    BY_KEY,
    MACHINE_KEY,
    POLICY_KEY,
    SETTINGS,
    MemoryRegistry,
    Setting,
    load_settings,
    policy_settings,
)
from tests.installer.conftest import INSTALLER, load_script

NS = {"p": "http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions"}
ADMX = INSTALLER / "policy" / "TapiAgent.admx"
ADML = INSTALLER / "policy" / "en-US" / "TapiAgent.adml"

# A valid, non-default value for each setting a policy can set as free text.
TEXT_SAMPLES = {
    "server.url": "https://notifications.example.com",
    "auth.issuer": "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_eQ7dreNzJ",
    "auth.authorize_url": "https://connect.reapit.cloud/authorize",
    "auth.token_url": "https://connect.reapit.cloud/token",
    "auth.userinfo_url": "https://connect.reapit.cloud/oauth2/userInfo",
    "auth.end_session_url": "https://connect.reapit.cloud/logout",
    "auth.jwks_url": "https://connect.example.com/.well-known/jwks.json",
    "auth.negotiator_claim": "custom:reapit:agencyCloudId",
    "auth.scope": "openid profile",
    "auth.redirect_ports": "52174, 52175",
    "platform.url": "https://platform.reapit.cloud",
    "auth.client_id": "estate-agents-ltd",
    "stream.product": "AgencyCloudTest",
    "calls.region": "IE",
    "calls.timezone": "Europe/Dublin",
    "popup.screen": "primary",
    "calls.record_link": "https://crm.example.com/contacts/{id}",
    "calls.journal_link": "agencycloud://contacts/{id}/journal?tab=notes",
    "calls.search_link": "https://crm.example.com/search?phone={number}",
    "network.proxy": "http://proxy.example.com:8080",
}


def _policies() -> dict[str, ET.Element]:
    root = ET.parse(ADMX).getroot()
    return {p.attrib["name"]: p for p in root.iterfind("p:policies/p:policy", NS)}


def _adml_strings() -> dict[str, str]:
    root = ET.parse(ADML).getroot()
    return {s.attrib["id"]: s.text or "" for s in root.iterfind(".//p:stringTable/p:string", NS)}


def _adml_presentations() -> dict[str, ET.Element]:
    root = ET.parse(ADML).getroot()
    return {p.attrib["id"]: p for p in root.iterfind(".//p:presentationTable/p:presentation", NS)}


def _element(policy: ET.Element) -> ET.Element | None:
    elements = policy.find("p:elements", NS)
    if elements is None:
        return None
    children = list(elements)
    assert len(children) == 1, f"{policy.attrib['name']} should set exactly one value"
    return children[0]


def test_every_admx_policy_is_a_setting_the_agent_reads_from_policy() -> None:
    readable = policy_settings()
    for name, policy in _policies().items():
        assert name in readable, f"ADMX policy {name} is not a setting the agent reads"
        assert policy.attrib["class"] == "Machine"
        assert policy.attrib["key"] == POLICY_KEY
        element = _element(policy)
        value_name = policy.get("valueName") if element is None else element.get("valueName")
        assert value_name == readable[name].policy


def test_every_setting_the_agent_reads_from_policy_has_an_admx_policy() -> None:
    missing = set(policy_settings()) - set(_policies())
    assert not missing, f"settings readable from policy without an ADMX policy: {missing}"


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.policy], ids=lambda s: s.key)
def test_admx_policy_has_the_registry_type_and_limits_of_its_setting(setting: Setting) -> None:
    policy = _policies()[str(setting.policy)]
    element = _element(policy)
    if setting.type is bool:
        assert element is None
        enabled = policy.find("p:enabledValue/p:decimal", NS)
        disabled = policy.find("p:disabledValue/p:decimal", NS)
        assert enabled is not None and enabled.attrib["value"] == "1"
        assert disabled is not None and disabled.attrib["value"] == "0"
        return
    assert element is not None
    if setting.choices:
        assert element.tag == f"{{{NS['p']}}}enum"
        values = [v.text for v in element.iterfind("p:item/p:value/p:string", NS)]
        assert values == list(setting.choices)
    elif setting.type in (int, float):
        assert element.tag == f"{{{NS['p']}}}decimal"
        assert setting.minimum is not None and setting.maximum is not None
        assert int(element.attrib["minValue"]) == setting.minimum
        assert int(element.attrib["maxValue"]) == setting.maximum
    else:
        assert element.tag == f"{{{NS['p']}}}text"


def test_adml_has_a_string_for_every_name_the_admx_uses() -> None:
    strings = _adml_strings()
    presentations = _adml_presentations()
    text = ADMX.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    used = set()
    for el in root.iter():
        for attr in ("displayName", "explainText"):
            value = el.get(attr, "")
            if value.startswith("$(string."):
                used.add(value[len("$(string."):-1])
    assert used, "the ADMX uses no strings"
    assert not used - set(strings), f"strings missing from the ADML: {used - set(strings)}"
    for name, policy in _policies().items():
        assert strings[name].strip(), f"{name} has an empty display name"
        assert BY_KEY[policy_settings()[name].key].description in strings[name + "_Explain"]
        if _element(policy) is not None:
            ref = policy.attrib["presentation"]
            assert ref == f"$(presentation.{name})"
            control = next(iter(presentations[name]))
            assert control.attrib["refId"] == name


def test_committed_templates_are_generated_from_the_current_settings() -> None:
    admx = load_script("admx")
    assert ADMX.read_text(encoding="utf-8") == admx.admx_text(), (
        "run: python installer/admx.py")
    assert ADML.read_text(encoding="utf-8") == admx.adml_text(), (
        "run: python installer/admx.py")


def _policy_value(setting: Setting, element: ET.Element | None) -> tuple[str | int, Any]:
    """What Group Policy writes for this policy (REG_SZ str / REG_DWORD int) and the value the
    agent should then use."""
    if setting.type is bool:
        flipped = not setting.default
        return int(flipped), flipped
    assert element is not None
    if setting.choices:
        last = [v.text for v in element.iterfind("p:item/p:value/p:string", NS)][-1]
        assert last
        return last, last
    if setting.type in (int, float):
        high = int(element.attrib["maxValue"])
        return high, setting.type(high)
    sample = TEXT_SAMPLES[setting.key]
    return sample, sample


def test_values_written_by_the_policies_are_read_and_locked(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    expected: dict[str, Any] = {}
    for name, policy in _policies().items():
        setting = policy_settings()[name]
        raw, value = _policy_value(setting, _element(policy))
        registry.set_value(POLICY_KEY, name, raw)
        expected[setting.key] = value
    user_file = tmp_path / "config.toml"
    user_file.write_text('[server]\nurl = "http://127.0.0.1:9999"\n', encoding="utf-8")

    settings = load_settings(registry=registry, user_file=user_file, environ={},
                             cli={"log.level": "DEBUG"})

    for key, value in expected.items():
        assert settings[key] == value, key
        assert settings.is_locked(key), key
        assert settings.sources[key] == "HKLM\\" + POLICY_KEY
    # The user's file and the command line lost to the policy, and were told so.
    locked_errors = {e.key for e in settings.errors if "locked" in e.message}
    assert locked_errors == {"server.url", "log.level"}
    assert len(settings.errors) == 2


def test_values_the_msi_writes_are_machine_defaults_a_user_may_change(tmp_path: Path) -> None:
    # As the MSI writes them: REG_SZ strings under HKLM\SOFTWARE\TapiAgent.
    registry = MemoryRegistry({MACHINE_KEY: {
        "ServerUrl": "https://notifications.example.com",
        "ClientId": "estate-agents-ltd",
        "RedirectPort": "50123",
    }})
    settings = load_settings(registry=registry, environ={})
    assert settings["server.url"] == "https://notifications.example.com"
    assert settings["auth.client_id"] == "estate-agents-ltd"
    assert settings["auth.redirect_port"] == 50123
    assert not settings.errors
    assert not settings.locked

    user_file = tmp_path / "config.toml"
    user_file.write_text("[auth]\nredirect_port = 50200\n", encoding="utf-8")
    settings = load_settings(registry=registry, user_file=user_file, environ={})
    assert settings["auth.redirect_port"] == 50200
    assert settings["server.url"] == "https://notifications.example.com"
