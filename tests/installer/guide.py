"""Reads the promises of docs/IT-DEPLOYMENT.md: its tables and its command lines."""

from __future__ import annotations

import re

from tests.installer.conftest import DOCS


def guide_text() -> str:
    """The deployment guide."""
    return DOCS.read_text(encoding="utf-8")


def _cells(line: str) -> list[str]:
    return [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]


def table(first_header: str) -> list[dict[str, str]]:
    """The markdown table whose first column is headed `first_header`, as rows by header."""
    lines = guide_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and _cells(line)[0] == first_header:
            headers = _cells(line)
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(headers, _cells(row), strict=True)))
            return rows
    raise AssertionError(f"docs/IT-DEPLOYMENT.md has no table headed {first_header!r}")


def commands(prefix: str) -> list[str]:
    """Every line of the guide's code blocks that starts with `prefix`."""
    return [line.strip() for line in guide_text().splitlines()
            if line.strip().startswith(prefix)]


def upgrade_code() -> str:
    """The UpgradeCode the guide promises."""
    match = re.search(r"UpgradeCode \| `(\{[0-9A-F-]{36}\})`", guide_text())
    assert match, "the guide names no UpgradeCode"
    return match.group(1)
