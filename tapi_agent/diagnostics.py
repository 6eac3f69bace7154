"""Export diagnostics: one zip with the logs, the settings (no secrets) and a diagnose report.

What support asks for first, collected by the "Export diagnostics..." tray action. Nothing in it
carries a secret: tokens live only in the credential store, and everything written here (setting
values, errors, the diagnose report, every log line, logs of older versions included) goes
through `core.redact`, which masks a proxy password, any URL's user:password@ and tokens.
"""

from __future__ import annotations

import json
import platform
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tapi_agent import __version__
from tapi_agent.config import Paths, Settings
from tapi_agent.core.redact import redact_text, redact_value

MAX_LOG_BYTES = 60 * 1024 * 1024


def about_text() -> str:
    """Version and platform facts, one per line."""
    try:
        from PySide6 import __version__ as qt_version
    except ImportError:  # pragma: no cover
        qt_version = "not installed"
    return "\n".join([
        f"tapi-agent {__version__}",
        f"python {sys.version.split()[0]} ({sys.executable})",
        f"platform {platform.platform()}",
        f"PySide6 {qt_version}",
        f"frozen {bool(getattr(sys, 'frozen', False))}",
        f"exported {datetime.now(UTC).isoformat(timespec='seconds')}",
    ]) + "\n"


def settings_report(settings: Settings) -> dict[str, Any]:
    """Every setting with its value, the layer it came from and whether it is locked."""
    return {
        "settings": {
            key: {"value": redact_value(value), "source": settings.sources.get(key, "default"),
                  "locked": settings.is_locked(key)}
            for key, value in settings.values.items()
        },
        "errors": [redact_text(str(e)) for e in settings.errors],
    }


async def export_diagnostics(
    target: Path, *, settings: Settings, paths: Paths, server_url: str, tokens: Any
) -> Path:
    """Write the diagnostics zip to `target` and return its path."""
    from tapi_agent.net.diagnose import diagnose

    report = await diagnose(server_url, tokens=tokens, product=settings["stream.product"],
                            proxy=settings["network.proxy"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("about.txt", about_text())
        zf.writestr("settings.json", json.dumps(settings_report(settings), indent=2,
                                                default=str))
        zf.writestr("diagnose.txt", redact_text(report.render()))
        budget = MAX_LOG_BYTES
        if paths.log_dir.is_dir():
            for log_file in sorted(paths.log_dir.iterdir()):
                if log_file.is_file() and log_file.stat().st_size <= budget:
                    budget -= log_file.stat().st_size
                    text = log_file.read_text(encoding="utf-8", errors="replace")
                    zf.writestr(f"logs/{log_file.name}", redact_text(text))
    return target
