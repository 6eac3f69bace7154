"""Draw the tray icons (one per connection state, 16/32/64 px) and the app icon (PNG + ICO).

Run from the repo root: `QT_QPA_PLATFORM=offscreen python resources/make_icons.py`. The outputs
are committed; `tapi_agent/ui/icons.py` loads them. Drawn with QPainter so there is no image
dependency and the shapes stay crisp at 16 px.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QImage, QPainter, QPen

HERE = Path(__file__).resolve().parent
TRAY_DIR = HERE / "tray"
SIZES = (16, 32, 64)

# state -> (disc colour, overlay mark). Colours follow the pop strip: blue/green/grey/red.
STATES: dict[str, tuple[str, str]] = {
    "connected": ("#1f8a3b", ""),
    "connecting": ("#d18b00", "dots"),
    "offline": ("#6b7280", "slash"),
    "signed_out": ("#9ca3af", "hollow"),
    "dnd": ("#c62828", "bar"),
    "failed": ("#b71c1c", "bang"),
}


def _handset(p: QPainter, s: float, colour: QColor) -> None:
    """A phone handset: a thick arc with round caps and two blobs for ear and mouth pieces."""
    pen = QPen(colour, s * 0.13, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    arc = QRectF(s * 0.24, s * 0.26, s * 0.52, s * 0.52)
    p.drawArc(arc, 30 * 16, 120 * 16)  # Qt angles are 1/16 degree
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(colour))
    r = s * 0.1
    for cx in (0.27, 0.73):
        p.drawEllipse(QPointF(s * cx, s * 0.42), r, r * 0.85)


def draw_state(state: str, size: int) -> QImage:
    """The tray icon for `state` at `size` px, transparent background."""
    colour, mark = STATES[state]
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    disc = QRectF(s * 0.04, s * 0.04, s * 0.92, s * 0.92)
    white = QColor("#ffffff")
    if mark == "hollow":
        # Signed out: an outlined disc, the handset in the outline colour: "not in use".
        p.setPen(QPen(QColor(colour), max(1.0, s * 0.08)))
        p.setBrush(QBrush(QColor("#ffffff")))
        p.drawEllipse(disc.adjusted(s * 0.03, s * 0.03, -s * 0.03, -s * 0.03))
        _handset(p, s, QColor(colour))
    else:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QBrush(QColor(colour)))
        p.drawEllipse(disc)
        _handset(p, s, white)
    if mark == "dots":
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QBrush(white))
        for cx in (0.36, 0.5, 0.64):
            p.drawEllipse(QPointF(s * cx, s * 0.7), s * 0.055, s * 0.055)
    elif mark == "slash":
        p.setPen(QPen(white, s * 0.1, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(s * 0.25, s * 0.78), QPointF(s * 0.75, s * 0.22))
    elif mark == "bar":
        p.setPen(QPen(white, s * 0.13, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(s * 0.32, s * 0.7), QPointF(s * 0.68, s * 0.7))
    elif mark == "bang":
        p.setPen(QPen(white, s * 0.11, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(s * 0.5, s * 0.58), QPointF(s * 0.5, s * 0.66))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QBrush(white))
        p.drawEllipse(QPointF(s * 0.5, s * 0.79), s * 0.055, s * 0.055)
    p.end()
    return img


def draw_app(size: int) -> QImage:
    """The app icon: a blue rounded square with the handset (the 'ringing' colour)."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(QColor("#1565c0")))
    p.drawRoundedRect(QRectF(s * 0.04, s * 0.04, s * 0.92, s * 0.92), s * 0.2, s * 0.2)
    _handset(p, s, QColor("#ffffff"))
    p.setPen(QPen(QColor("#ffffff"), s * 0.05, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    for i, r in enumerate((0.1, 0.17)):
        p.drawArc(QRectF(s * (0.5 - r), s * (0.66 - r), s * 2 * r, s * 2 * r),
                  (60 - i * 5) * 16, (60 + i * 10) * 16)
    p.end()
    return img


def _png_bytes(img: QImage) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    buf.close()
    return bytes(data.data())


def write_ico(path: Path, images: list[QImage]) -> None:
    """An ICO with PNG-compressed entries (Windows Vista and later read them)."""
    pngs = [_png_bytes(img) for img in images]
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = 6 + 16 * len(pngs)
    entries = b""
    for img, data in zip(images, pngs, strict=True):
        w = img.width() if img.width() < 256 else 0  # 0 means 256 in the ICO directory
        h = img.height() if img.height() < 256 else 0
        entries += struct.pack("<BBBBHHII", w, h, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    path.write_bytes(header + entries + b"".join(pngs))


def main() -> int:
    """Write every icon under resources/."""
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    TRAY_DIR.mkdir(parents=True, exist_ok=True)
    for state in STATES:
        for size in SIZES:
            draw_state(state, size).save(str(TRAY_DIR / f"{state}-{size}.png"), "PNG")
    app_sizes = (16, 24, 32, 48, 64, 128, 256)
    app_images = [draw_app(n) for n in app_sizes]
    app_images[-1].save(str(HERE / "app-icon.png"), "PNG")
    write_ico(HERE / "app-icon.ico", app_images)
    print(f"wrote {len(STATES) * len(SIZES)} tray icons and the app icon under {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
