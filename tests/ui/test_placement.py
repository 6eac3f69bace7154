"""Pop placement over given screen geometries: corners, monitors, scaling, taskbar position."""

from __future__ import annotations

import pytest

from tapi_agent.ui.placement import (
    Rect,
    ScreenInfo,
    card_width,
    choose_screen,
    stack_layout,
)

# Two 1920x1080 monitors side by side; the taskbar (40 px) at the bottom of each.
LEFT = ScreenInfo("L", Rect(0, 0, 1920, 1080), Rect(0, 0, 1920, 1040), primary=True)
RIGHT = ScreenInfo("R", Rect(1920, 0, 1920, 1080), Rect(1920, 0, 1920, 1040))
CARD = (360, 120)


def test_pops_go_to_the_monitor_that_holds_the_tray() -> None:
    tray = Rect(3700, 1045, 24, 24)  # the tray is on the right-hand monitor
    i = choose_screen([LEFT, RIGHT], "tray", tray)
    assert i == 1
    layout = stack_layout(RIGHT.available, [CARD])
    assert layout.cards == [Rect(3840 - 12 - 360, 1040 - 12 - 120, 360, 120)]
    assert RIGHT.available.contains(layout.cards[0])  # type: ignore[arg-type]


def test_unknown_tray_falls_back_to_the_primary_screen() -> None:
    screens = [RIGHT, LEFT]
    assert choose_screen(screens, "tray", None) == 1
    assert choose_screen(screens, "tray", Rect(-5000, -5000, 10, 10)) == 1
    assert choose_screen(screens, "primary", Rect(3700, 1045, 24, 24)) == 1


def test_a_configured_screen_number_wins_and_a_missing_one_falls_back() -> None:
    assert choose_screen([LEFT, RIGHT], "2", Rect(10, 1045, 24, 24)) == 1
    assert choose_screen([LEFT, RIGHT], "7") == 0


def test_stack_newest_nearest_the_corner_with_a_gap() -> None:
    layout = stack_layout(LEFT.available, [CARD, CARD], gap=8, margin=12)
    first, second = layout.cards
    assert first is not None and second is not None
    assert first.bottom == 1040 - 12
    assert second.bottom == first.y - 8
    assert layout.more == 0 and layout.more_rect is None


def test_beyond_max_stacked_a_more_line_counts_the_rest() -> None:
    layout = stack_layout(LEFT.available, [CARD] * 5, max_stacked=3, more_height=28, gap=8)
    shown = [r for r in layout.cards if r]
    assert len(shown) == 3 and layout.cards[3:] == [None, None]
    assert layout.more == 2
    assert layout.more_rect is not None
    assert layout.more_rect.bottom <= shown[-1].y  # above the topmost card, not over it
    assert LEFT.available.contains(layout.more_rect)


def test_taskbar_at_the_top_stacks_below_it_in_a_top_corner() -> None:
    screen = ScreenInfo("T", Rect(0, 0, 1920, 1080), Rect(0, 48, 1920, 1032))
    layout = stack_layout(screen.available, [CARD, CARD], corner="top-right")
    first, second = layout.cards
    assert first == Rect(1920 - 12 - 360, 48 + 12, 360, 120)
    assert second is not None and second.y == first.bottom + 8


def test_taskbar_at_the_top_with_bottom_corner_uses_the_screen_bottom() -> None:
    screen = ScreenInfo("T", Rect(0, 0, 1920, 1080), Rect(0, 48, 1920, 1032))
    (card,) = stack_layout(screen.available, [CARD]).cards
    assert card is not None and card.bottom == 1080 - 12


def test_taskbar_at_the_left_keeps_left_corners_clear_of_it() -> None:
    screen = ScreenInfo("L", Rect(0, 0, 1920, 1080), Rect(62, 0, 1858, 1080))
    (card,) = stack_layout(screen.available, [CARD], corner="bottom-left").cards
    assert card == Rect(62 + 12, 1080 - 12 - 120, 360, 120)


def test_150_percent_scaling_keeps_the_card_whole_on_the_screen() -> None:
    # A 4K monitor at 150 % is 2560x1440 logical pixels; Qt scales by the pixel ratio.
    screen = ScreenInfo("4K", Rect(1920, 0, 2560, 1440), Rect(1920, 0, 2560, 1392),
                        device_pixel_ratio=1.5, logical_dpi=96)
    w = card_width(screen)
    assert w == 360
    (card,) = stack_layout(screen.available, [(w, 130)]).cards
    assert card is not None and screen.available.contains(card)
    assert card.right == 1920 + 2560 - 12


def test_a_high_logical_dpi_without_pixel_ratio_scales_the_card() -> None:
    screen = ScreenInfo("X", Rect(0, 0, 2880, 1620), Rect(0, 0, 2880, 1580), logical_dpi=144)
    assert card_width(screen) == 540


def test_a_small_screen_never_clips_the_card() -> None:
    screen = ScreenInfo("S", Rect(0, 0, 320, 240), Rect(0, 0, 320, 240), logical_dpi=192)
    w = card_width(screen)
    assert w == 320 - 24
    layout = stack_layout(screen.available, [(w, 150), (w, 150)], max_stacked=3)
    assert layout.cards[0] is not None and screen.available.contains(layout.cards[0])
    assert layout.cards[1] is None and layout.more == 1  # no room: counted, not clipped


@pytest.mark.parametrize("corner", ["bottom-right", "bottom-left", "top-right", "top-left"])
def test_every_corner_keeps_all_cards_and_the_more_line_inside(corner: str) -> None:
    layout = stack_layout(RIGHT.available, [CARD] * 6, corner=corner, max_stacked=4)
    rects = [r for r in layout.cards if r]
    assert len(rects) == 4 and layout.more == 2
    assert layout.more_rect is not None
    for r in [*rects, layout.more_rect]:
        assert RIGHT.available.contains(r)
    for a in rects:
        assert all(a == b or a.overlap(b) == 0 for b in [*rects, layout.more_rect])
