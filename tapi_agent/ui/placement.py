"""Where pops go: pure geometry over screen rectangles (logical pixels), no Qt objects.

The pops stack in a corner of the AVAILABLE geometry (the screen minus the taskbar) of the screen
that holds the tray, or of a configured screen, newest nearest the corner, then a "+N more" line.
"""

from __future__ import annotations

from dataclasses import dataclass

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
BASE_CARD_WIDTH = 360  # logical px at 96 DPI, like a Windows 11 notification


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle: top-left corner and size."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def contains(self, other: Rect) -> bool:
        """True when `other` lies entirely inside this rectangle."""
        return (
            other.x >= self.x and other.y >= self.y
            and other.right <= self.right and other.bottom <= self.bottom
        )

    def overlap(self, other: Rect) -> int:
        """Area shared with `other` (0 when apart)."""
        w = min(self.right, other.right) - max(self.x, other.x)
        h = min(self.bottom, other.bottom) - max(self.y, other.y)
        return w * h if w > 0 and h > 0 else 0


@dataclass(frozen=True)
class ScreenInfo:
    """One monitor: full and available geometry (logical px) and its scaling."""

    name: str
    geometry: Rect
    available: Rect
    device_pixel_ratio: float = 1.0
    logical_dpi: float = 96.0
    primary: bool = False


@dataclass(frozen=True)
class StackLayout:
    """Where each card goes (None = not shown, counted in `more`) and the "+N more" line."""

    cards: list[Rect | None]
    more: int
    more_rect: Rect | None


def choose_screen(screens: list[ScreenInfo], wanted: str = "tray", tray: Rect | None = None) -> int:
    """Index of the screen for pops: `tray` (the one holding the tray icon), `primary`, or a
    1-based screen number; falls back to the primary screen."""
    if not screens:
        raise ValueError("no screens")
    primary = next((i for i, s in enumerate(screens) if s.primary), 0)
    if wanted.isdigit():
        n = int(wanted) - 1
        return n if 0 <= n < len(screens) else primary
    if wanted == "tray" and tray is not None and tray.w > 0 and tray.h > 0:
        best = max(range(len(screens)), key=lambda i: screens[i].geometry.overlap(tray))
        if screens[best].geometry.overlap(tray) > 0:
            return best
    return primary


def card_scale(screen: ScreenInfo) -> float:
    """How much bigger than 96-DPI logical pixels the card must be on this screen.

    Qt already maps logical to device pixels with the device pixel ratio (Windows 150 % gives a
    ratio of 1.5 and 96 logical DPI); a platform that reports a high logical DPI with a ratio of
    1 (X11 with Xft.dpi) needs the card scaled by hand.
    """
    return max(1.0, screen.logical_dpi / 96.0)


def card_width(screen: ScreenInfo, margin: int = 12) -> int:
    """Card width on `screen`: ~360 px scaled, never wider than the available area."""
    want = round(BASE_CARD_WIDTH * card_scale(screen))
    return max(120, min(want, screen.available.w - 2 * margin))


def stack_layout(
    available: Rect,
    card_sizes: list[tuple[int, int]],
    *,
    corner: str = "bottom-right",
    max_stacked: int = 3,
    gap: int = 8,
    margin: int = 12,
    more_height: int = 28,
) -> StackLayout:
    """Place cards (newest first, as (width, height)) from `corner` of `available` outward.

    At most `max_stacked` cards show; cards that would not fit whole in the available area are
    not shown either. Hidden cards are counted in `more` and a "+N more" line goes after the
    last shown card.
    """
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {', '.join(CORNERS)}")
    bottom = corner.startswith("bottom")
    right = corner.endswith("right")
    n = len(card_sizes)
    out: list[Rect | None] = [None] * n
    # Cursor: the edge of the free area, moving away from the corner as cards are placed.
    cursor = available.bottom - margin if bottom else available.y + margin
    limit = available.y + margin if bottom else available.bottom - margin
    shown = 0
    for i, (w, h) in enumerate(card_sizes):
        if shown >= max_stacked:
            break
        # Keep room for the "+N more" line if cards remain after this one.
        reserve = more_height + gap if i < n - 1 and shown + 1 >= max_stacked else 0
        if bottom:
            top = cursor - h
            if top - reserve < limit:
                break
            new_cursor = top - gap
        else:
            top = cursor
            if top + h + reserve > limit:
                break
            new_cursor = top + h + gap
        x = available.right - margin - w if right else available.x + margin
        out[i] = Rect(x, top, w, h)
        cursor = new_cursor
        shown += 1
    more = n - shown
    more_rect = None
    if more:
        w = max((r.w for r in out if r), default=card_sizes[0][0])
        x = available.right - margin - w if right else available.x + margin
        y = cursor - more_height if bottom else cursor
        if (bottom and y < limit) or (not bottom and y + more_height > limit):
            y = limit if bottom else limit - more_height
        more_rect = Rect(x, y, w, more_height)
    return StackLayout(out, more, more_rect)
