"""Plays the part of Windows Installer that decides what the MSI writes to the registry.

Only what the package's own tables say: Property defaults, the command line, the execute
sequence's type-51 custom actions (set a property) and AppSearch over RegLocator, then the
Registry rows of the components whose condition holds. Conditions are parsed for the few forms
the package uses; anything else fails loudly rather than being guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tests.installer.conftest import MsiTables

HKLM = "2"
INSTALLFOLDER = "C:\\Program Files\\TapiAgent\\"
_TERM = re.compile(r'^(NOT\s+)?([A-Za-z_][A-Za-z0-9_.]*)(?:\s*(=|<>)\s*"([^"]*)")?$')

Registry = dict[tuple[str, str], str]  # (key, value name) under HKLM -> data


def condition_holds(condition: str, props: Mapping[str, str]) -> bool:
    """Evaluate `A`, `NOT A`, `A = "x"`, `A <> "x"` joined by AND."""
    if not condition.strip():
        return True
    for term in condition.split(" AND "):
        match = _TERM.match(term.strip())
        if not match:
            raise ValueError(f"condition form not understood: {term!r}")
        negate, name, op, literal = match.groups()
        value = props.get(name, "")
        if op == "=":
            result = value == literal
        elif op == "<>":
            result = value != literal
        else:
            result = bool(value)
        if bool(negate) == result:
            return False
    return True


def format_value(template: str, props: Mapping[str, str]) -> str:
    """MSI's [PROPERTY] substitution (unknown properties are empty)."""
    return re.sub(r"\[([A-Za-z_][A-Za-z0-9_.]*)\]", lambda m: props.get(m.group(1), ""), template)


class MsiRun:
    """One machine's HKLM and what installs and upgrades of the package do to it."""

    def __init__(self, tables: MsiTables) -> None:
        self.tables = tables
        self.registry: Registry = {}
        self.installed = False

    def properties(self, command_line: Mapping[str, str], *, ui: bool = False) -> dict[str, str]:
        """Property values after the execute sequence's actions up to registry writing.

        `ui`: a full install, whose UI sequence runs first and hands its secure public
        properties to the execute sequence; a silent one (/qn) runs the execute sequence only.
        """
        props = {r["Property"]: r["Value"] for r in self.tables("Property")}
        props.update(command_line)
        props["INSTALLFOLDER"] = INSTALLFOLDER
        if ui:
            client = self._sequence("InstallUISequence", dict(props))
            secure = props.get("SecureCustomProperties", "").split(";")
            props.update({k: v for k, v in client.items() if k in secure})
        return self._sequence("InstallExecuteSequence", props)

    def _sequence(self, table: str, props: dict[str, str]) -> dict[str, str]:
        actions = self.tables.column("CustomAction", "Action")
        steps = sorted(self.tables(table), key=lambda r: int(r["Sequence"]))
        for step in steps:
            if not condition_holds(step["Condition"], props):
                continue
            if step["Action"] == "AppSearch":
                self._app_search(props)
            elif step["Action"] in actions:
                action = actions[step["Action"]]
                if int(action["Type"]) & 0x3F != 51:
                    raise AssertionError(f"custom action {step['Action']} is not a set-property")
                props[action["Source"]] = format_value(action["Target"], props)
        return props

    def _app_search(self, props: dict[str, str]) -> None:
        locators = self.tables.column("RegLocator", "Signature_")
        for search in self.tables("AppSearch"):
            loc = locators[search["Signature_"]]
            assert loc["Root"] == HKLM
            found = self.registry.get((loc["Key"], loc["Name"]))
            if found is not None:
                props[search["Property"]] = found

    def install(self, command_line: Mapping[str, str] | None = None, *,
                ui: bool = False) -> dict[str, str]:
        """A first install, or a major upgrade: the old product's values go, the new ones come."""
        props = self.properties(command_line or {}, ui=ui)
        rows = self.tables("Registry")
        if self.installed:  # RemoveExistingProducts: the old version is uninstalled first
            self.uninstall()
        components = self.tables.column("Component", "Component")
        for row in rows:
            assert row["Root"] == HKLM
            if row["Name"] == "-":  # removes the key on uninstall; writes nothing
                continue
            if condition_holds(components[row["Component_"]]["Condition"], props):
                value = format_value(row["Value"], props)
                assert not value.startswith("#"), "only REG_SZ values are expected"
                self.registry[(row["Key"], row["Name"])] = value
        self.installed = True
        return props

    def uninstall(self) -> None:
        """Remove every value of the package's Registry table, and the keys of its "-" rows
        with all their values and subkeys."""
        for row in self.tables("Registry"):
            self.registry.pop((row["Key"], row["Name"]), None)
            if row["Name"] == "-":
                for key, name in list(self.registry):
                    if key == row["Key"] or key.startswith(row["Key"] + "\\"):
                        del self.registry[(key, name)]
        self.installed = False

    def values(self, key: str) -> dict[str, str]:
        """The values under HKLM\\`key`."""
        return {name: v for (k, name), v in self.registry.items() if k == key}
