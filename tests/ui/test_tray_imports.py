"""The tray module stays light: it can show before the rest of the agent (pydantic) loads."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_tray_does_not_load_pydantic_or_the_protocol() -> None:
    probe = (
        "import sys, tapi_agent.ui.tray, tapi_agent.ui.missed_view\n"
        "print(sorted(m for m in ('pydantic', 'tapi_agent.protocol', 'tapi_agent.core.missed',"
        " 'tapi_agent.core.calls') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
