"""The tray on a real X server with a real system tray (Xvfb + trayer).

The test process renders offscreen, so the tray runs in a subprocess on the Xvfb display
(tests/ui/tray_probe.py), is right-clicked with xdotool, and reports what happened as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import require_tool
from tests.ui.xtray import x_display_with_tray

PROBE = Path(__file__).with_name("tray_probe.py")


@pytest.fixture(scope="module")
def tray_report() -> Iterator[dict[str, Any]]:
    for tool in ("Xvfb", "trayer", "xdotool"):
        require_tool(tool, "the tray tests run on a real X server with a system tray")
    with x_display_with_tray() as display:
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
        done = subprocess.run([sys.executable, str(PROBE)], env=env, capture_output=True,
                              text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    yield json.loads(done.stdout.strip().splitlines()[-1])


def test_system_tray_is_available_under_trayer(tray_report: dict[str, Any]) -> None:
    assert tray_report["available"] is True
    assert tray_report["tray_available_property"] is True


def test_tray_icon_is_visible_and_embedded_in_the_panel(tray_report: dict[str, Any]) -> None:
    assert tray_report["visible"] is True
    x, _y, w, h = tray_report["geometry"]
    assert x > 0 and w > 0 and h > 0  # reparented into trayer's panel at the top right


def test_when_docked_calls_back_once_the_tray_has_embedded_the_icon(
    tray_report: dict[str, Any]
) -> None:
    call = tray_report["when_docked"]
    assert call["docked"] is True  # called because it docked, not because the limit passed
    x, _y, w, h = call["geometry"]
    assert x > 0 and w > 0 and h > 0  # already in trayer's panel at the top right


def test_tooltip_names_the_negotiator_state_and_missed_calls(
    tray_report: dict[str, Any]
) -> None:
    assert tray_report["tooltip"] == (
        "TAPI Agent\nConnected as Jane Smith (JAS)\n2 missed calls")


def test_right_click_on_the_icon_opens_the_menu(tray_report: dict[str, Any]) -> None:
    assert tray_report["menu_opened_by_click"] is True


def test_every_menu_action_emits_its_signal(tray_report: dict[str, Any]) -> None:
    emitted = tray_report["emitted"]
    assert emitted == {
        "sign_out_requested": [],
        "do_not_disturb_toggled": [True],
        "settings_requested": [],
        "open_log_folder_requested": [],
        "export_diagnostics_requested": [],
        "autostart_toggled": [False],  # it was on: the click turns it off
        "reconnect_requested": [],
        "missed_seen_requested": [],
        "history_copy_requested": ["07700 900123"],
        "history_open_requested": ["agencycloud://contacts/RPT20000001"],
        "history_log_retry_requested": ["call-h1"],
        "quit_requested": [],
        "sign_in_requested": [],
    }
    assert tray_report["icon_after_sign_out"] == "signed_out"
