"""Icons from `resources/`: the tray icon per state, the missed-call badge, the app icon."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPainter, QPen, QPixmap

TRAY_STATES = ("connected", "connecting", "offline", "signed_out", "dnd", "failed")
TRAY_SIZES = (16, 32, 64)

# Connection states (core.connection.ConnState values) -> the icon that shows them.
_STATE_ICON = {
    "connected": "connected",
    "connecting": "connecting",
    "disconnected": "offline",
    "suspended": "offline",
    "signed_out": "signed_out",
    "failed": "failed",
}


def resources_dir() -> Path:
    """Where the icons are: inside the installed package, or the repo's `resources/`."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "resources", here.parent / "resources"):
        if (candidate / "tray").is_dir():
            return candidate
    raise FileNotFoundError(f"icon resources not found next to {here}")


def icon_name_for(state: str, *, do_not_disturb: bool = False) -> str:
    """The tray icon name for a connection state; do-not-disturb wins while connected."""
    name = _STATE_ICON.get(str(state), "offline")
    if do_not_disturb and name == "connected":
        return "dnd"
    return name


@cache
def _pixmap(name: str, size: int) -> QPixmap:
    path = resources_dir() / "tray" / f"{name}-{size}.png"
    pix = QPixmap(str(path))
    if pix.isNull():
        raise FileNotFoundError(f"tray icon missing or unreadable: {path}")
    return pix


def _badge(pix: QPixmap, count: int) -> QPixmap:
    """`pix` with a red count badge in the top-right corner (9+ above nine)."""
    out = QPixmap(pix)
    s = float(out.width())
    text = str(count) if count < 10 else "9+"
    p = QPainter(out)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    d = s * (0.62 if len(text) == 1 else 0.72)
    rect = QRectF(s - d, 0, d, s * 0.62)
    p.setPen(QPen(QColor("#ffffff"), max(1.0, s * 0.05)))
    p.setBrush(QBrush(QColor("#e53935")))
    p.drawRoundedRect(rect, rect.height() / 2, rect.height() / 2)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(max(7, int(s * 0.46)))
    p.setFont(font)
    p.setPen(QColor("#ffffff"))
    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    p.end()
    return out


def tray_icon(name: str, missed: int = 0) -> QIcon:
    """The tray icon `name` (one of TRAY_STATES) at every size, with a badge when `missed`."""
    if name not in TRAY_STATES:
        raise ValueError(f"unknown tray icon {name!r}; known: {', '.join(TRAY_STATES)}")
    icon = QIcon()
    for size in TRAY_SIZES:
        pix = _pixmap(name, size)
        icon.addPixmap(_badge(pix, missed) if missed > 0 else pix)
    return icon


def app_icon() -> QIcon:
    """The application icon (window title bars, About)."""
    return QIcon(str(resources_dir() / "app-icon.png"))
