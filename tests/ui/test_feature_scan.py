"""PySide6's feature hook must not keep the source of every module imported after Qt.

Each case runs in a fresh interpreter: the hook acts on modules imported *after* PySide6, and
this test process imported everything long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = r"""
import json, linecache, sys
sys.path.insert(0, sys.argv[1])
import PySide6
if sys.argv[2] == "fix":
    from tapi_agent.ui.feature_scan import skip_feature_source_scan
    assert skip_feature_source_scan()
    assert skip_feature_source_scan()  # a second call is harmless
import shibokensupport.feature as feature
import probe_plain, probe_qt
print(json.dumps({
    "cached": sorted(n for n in linecache.cache if "probe_" in n),
    "plain": feature.pyside_feature_dict.get("probe_plain"),
    "qt": feature.pyside_feature_dict.get("probe_qt"),
}))
"""


def _run(tmp_path: Path, mode: str) -> dict[str, object]:
    (tmp_path / "probe_plain.py").write_text("VALUE = 1\n" * 2000)
    (tmp_path / "probe_qt.py").write_text("from PySide6 import QtCore\nVALUE = 2\n")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), mode],
        capture_output=True, text=True, timeout=60, check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_without_the_fix_pyside_caches_every_module_source(tmp_path: Path) -> None:
    """The control: what PySide6 does on its own (if this fails, PySide6 changed and the
    workaround in tapi_agent/ui/feature_scan.py may be obsolete)."""
    result = _run(tmp_path, "plain")
    assert len(result["cached"]) == 2  # type: ignore[arg-type]
    assert (result["plain"], result["qt"]) == (-1, 0)


def test_with_the_fix_nothing_is_cached_and_the_answers_are_the_same(tmp_path: Path) -> None:
    result = _run(tmp_path, "fix")
    assert result["cached"] == []
    assert (result["plain"], result["qt"]) == (-1, 0)


def test_the_agent_installs_the_fix_when_it_creates_its_application() -> None:
    code = (
        "import linecache, os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from tapi_agent.app import _qt_app\n"
        "app = _qt_app()\n"
        "import tapi_agent.net.stream, httpx\n"
        "print(sorted(n for n in linecache.cache if 'httpx' in n or 'stream.py' in n))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_what_pyside_cached_while_it_loaded_is_dropped_with_the_fix() -> None:
    """PySide6 imports `enum` and reads shiboken6's `__init__.py` through the original check
    while it loads, before the fix can be installed: installing it drops those lines (~0.2 MiB
    an idle agent kept)."""
    code = (
        "import json, linecache\n"
        "import PySide6\n"
        "before = sorted(n for n, entry in linecache.cache.items() if len(entry) > 1)\n"
        "from tapi_agent.ui.feature_scan import skip_feature_source_scan\n"
        "assert skip_feature_source_scan()\n"
        "after = sorted(n for n, entry in linecache.cache.items() if len(entry) > 1)\n"
        "print(json.dumps([before, after]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(name.endswith("enum.py") for name in before)  # the control: PySide6 read it
    assert after == []


def test_the_fix_is_in_place_as_soon_as_any_ui_module_loads_qt(tmp_path: Path) -> None:
    """The agent loads Qt before its application exists: the log's Qt message handler
    (`tapi_agent.logs` imports `ui.qtlog`), then the autostart check. Modules imported after
    that must not be kept either (they were: typing, subprocess, os, pathlib, enum...)."""
    (tmp_path / "probe_plain.py").write_text("VALUE = 1\n" * 2000)
    code = (
        "import linecache, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from pathlib import Path\n"
        "from tapi_agent.logs import setup_logging\n"
        f"setup_logging(log_dir=Path({str(tmp_path / 'logs')!r}), level='INFO', json_path=None)\n"
        "assert 'PySide6' in sys.modules\n"
        "import tapi_agent.autostart, probe_plain\n"
        "print(sorted(n for n in linecache.cache if 'probe_' in n or 'autostart' in n"
        " or n.endswith('subprocess.py')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
