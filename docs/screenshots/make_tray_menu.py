"""Take docs/screenshots/tray-menu.png: the real tray menu under Xvfb + trayer.

Run from the repo root: `.venv/bin/python docs/screenshots/make_tray_menu.py`. Needs Xvfb,
trayer, xdotool and ImageMagick (import, convert). The same probe runs in the tray tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.ui.xtray import x_display_with_tray  # noqa: E402

OUT = ROOT / "docs" / "screenshots" / "tray-menu.png"
DESKTOP = "#2d5f8b"  # Xvfb's root window is black: paint a desktop colour behind the menu


def main() -> int:
    """Run the probe with --screenshot, then give the picture a desktop background."""
    with x_display_with_tray() as display:
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
        env.pop("QT_SCALE_FACTOR", None)
        done = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "ui" / "tray_probe.py"), "--screenshot",
             str(OUT)], env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return 1
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if "screenshot" not in report:
        sys.stderr.write(f"the menu did not open: {report}\n")
        return 1
    # Flood-fill the black root from the left corners only: the text inside the menus stays.
    subprocess.run(["convert", str(OUT), "-fill", DESKTOP, "-fuzz", "2%",
                    "-draw", "color 0,0 floodfill",
                    "-draw", f"color 0,{_height(OUT) - 1} floodfill", str(OUT)],
                   check=True, timeout=30)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def _height(path: Path) -> int:
    out = subprocess.run(["identify", "-format", "%h", str(path)], capture_output=True,
                         text=True, check=True, timeout=30)
    return int(out.stdout.strip())


if __name__ == "__main__":
    raise SystemExit(main())
