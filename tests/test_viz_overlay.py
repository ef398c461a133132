"""Pure overlay drawing: exact pixels at the gaze point, the trail, mask edges, prompts, fixation and HUD."""

from __future__ import annotations

import numpy as np
import pytest

from xrseg.errors import InputError
from xrseg.sinks.viz.overlay import (
    FIXATION_RGB,
    GAZE_EDGE_RGB,
    GAZE_RADIUS_PX,
    GAZE_RGB,
    MASK_PALETTE,
    NEGATIVE_RGB,
    POINT_EDGE_RGB,
    POSITIVE_RGB,
    TRAIL_RGB,
    MaskMark,
    OverlayLayers,
    draw_fixation,
    draw_gaze,
    draw_hud,
    draw_mask,
    draw_prompts,
    hud_lines,
    render_overlay,
    selection_colour,
)

GREY = 100


def grey(height: int = 40, width: int = 60) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def px(image: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[y, x])


def test_gaze_cursor_pixels_and_input_untouched() -> None:
    image = grey()
    out = draw_gaze(image, (20.4, 15.6))  # nearest pixel (20, 16)
    assert px(out, 20, 16) == GAZE_RGB
    assert px(out, 20 + GAZE_RADIUS_PX, 16) == GAZE_RGB  # the ring
    assert px(out, 20, 16 - GAZE_RADIUS_PX) == GAZE_RGB
    assert px(out, 20 + GAZE_RADIUS_PX + 1, 16) == GAZE_EDGE_RGB  # the contrast ring just outside
    assert px(out, 23, 16) == (GREY,) * 3  # between the centre and the ring
    assert np.all(image == GREY), "drawing must not modify its input"


def test_gaze_none_or_nan_draws_nothing_and_off_image_is_clipped() -> None:
    assert np.all(draw_gaze(grey(), None) == GREY)
    assert np.all(draw_gaze(grey(), (float("nan"), 3.0)) == GREY)
    out = draw_gaze(grey(), (-3.0, 10.0))  # centre off the left edge: only the right of the ring shows
    assert px(out, -3 + GAZE_RADIUS_PX, 10) == GAZE_RGB


def test_trail_is_a_line_broken_by_nan() -> None:
    trail = np.array([[5.0, 30.0], [15.0, 30.0], [np.nan, np.nan], [25.0, 30.0], [35.0, 30.0]])
    out = draw_gaze(grey(), None, trail)
    assert px(out, 10, 30) == TRAIL_RGB
    assert px(out, 30, 30) == TRAIL_RGB
    assert px(out, 20, 30) == (GREY,) * 3  # the NaN breaks the trail between 15 and 25
    assert px(out, 10, 31) == (GREY,) * 3


def test_mask_fill_and_outline_exact() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:20, 20:40] = True
    out = draw_mask(grey(), mask, (255, 0, 0), alpha=0.4, outline_px=2)
    # Inside: rint(0.6 * 100 + 0.4 * 255) = 162, rint(0.6 * 100) = 60.
    assert px(out, 30, 15) == (162, 60, 60)
    assert px(out, 22, 12) == (162, 60, 60)  # 3 steps from the edge: inside the outline
    for x, y in [(20, 10), (39, 19), (21, 11), (30, 10), (30, 11), (38, 15)]:
        assert px(out, x, y) == (255, 0, 0), (x, y)  # within 2 steps of the edge
    for x, y in [(19, 10), (40, 15), (30, 9), (30, 20)]:
        assert px(out, x, y) == (GREY,) * 3, (x, y)  # outside untouched


def test_mask_at_the_image_border_is_outlined_there() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[:, :10] = True
    out = draw_mask(grey(), mask, (0, 0, 255), alpha=0.5, outline_px=1)
    assert px(out, 0, 20) == (0, 0, 255)
    assert px(out, 5, 0) == (0, 0, 255)
    assert px(out, 9, 20) == (0, 0, 255)
    assert px(out, 5, 20) == (50, 50, 178)  # 0.5 * 100 + 0.5 * 255 = 177.5, rounded half to even


def test_mask_label_is_drawn_and_bad_masks_raise() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[25:35, 20:40] = True
    plain = draw_mask(grey(), mask, (255, 0, 0))
    labelled = draw_mask(grey(), mask, (255, 0, 0), label="#3 0.92")
    assert np.any(labelled[:25] != plain[:25]), "the label goes above the mask"
    with pytest.raises(InputError):
        draw_mask(grey(), np.zeros((10, 10), dtype=bool), (255, 0, 0))
    with pytest.raises(InputError):
        draw_mask(grey(), mask, (255, 0, 0), alpha=1.5)
    with pytest.raises(InputError):
        draw_mask(np.zeros((40, 60), dtype=np.float32), mask, (255, 0, 0))  # type: ignore[arg-type]
    assert np.all(draw_mask(grey(), np.zeros((40, 60), dtype=bool), (255, 0, 0)) == GREY)


def test_prompt_points_positive_green_negative_red() -> None:
    out = draw_prompts(grey(), [[10.0, 10.0], [40.2, 20.7]], [1, 0], radius_px=4)
    assert px(out, 10, 10) == POSITIVE_RGB
    assert px(out, 14, 10) == POSITIVE_RGB
    assert px(out, 15, 10) == POINT_EDGE_RGB
    assert px(out, 40, 21) == NEGATIVE_RGB
    assert px(out, 40, 26) == POINT_EDGE_RGB
    assert px(out, 25, 10) == (GREY,) * 3
    with pytest.raises(InputError):
        draw_prompts(grey(), [[10.0, 10.0]], [1, 0])


def test_fixation_ring() -> None:
    out = draw_fixation(grey(), (30.0, 20.0), 10.0)
    assert px(out, 40, 20) == FIXATION_RGB
    assert px(out, 30, 10) == FIXATION_RGB
    assert px(out, 30, 20) == (GREY,) * 3


def test_hud_band_and_wrapping() -> None:
    out = draw_hud(grey(40, 400), "enc 12 ms", height_px=18)
    assert px(out, 395, 1) == (40, 40, 40)  # 100 * 2 // 5, no text that far right
    assert px(out, 395, 18) == (GREY,) * 3  # below the band
    assert np.any(out[:18, :80] > 40), "the text is drawn"
    parts = ["replay tabletop-small", "gaze depth_image", "enc 1450 ms dec 12 ms", "dropped 0 fr 1 picks", "sel 2"]
    assert hud_lines(" | ".join(parts), 2000) == [" | ".join(parts)]
    narrow = hud_lines(" | ".join(parts), 200)
    assert len(narrow) > 1 and " | ".join(narrow) == " | ".join(parts)
    assert len(narrow) <= 5
    wrapped = draw_hud(grey(300, 200), " | ".join(parts), height_px=18)
    assert px(wrapped, 198, 18 * len(narrow) - 1) == (40, 40, 40)
    assert px(wrapped, 198, 18 * len(narrow)) == (GREY,) * 3
    short = draw_hud(grey(80, 200), " | ".join(parts), height_px=18)  # never more than the top third
    assert px(short, 198, 17) == (40, 40, 40)
    assert px(short, 198, 18) == (GREY,) * 3


def test_render_overlay_draws_gaze_over_the_mask() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 10:50] = True
    layers = OverlayLayers(
        gaze_xy=(30.0, 20.0),
        mask=MaskMark(mask, (255, 0, 0), None, np.array([[20.0, 20.0]], np.float32), np.array([0], np.int32)),
    )
    out = render_overlay(grey(), layers)
    assert px(out, 30, 20) == GAZE_RGB
    assert px(out, 20, 20) == NEGATIVE_RGB
    assert px(out, 45, 30) == (162, 60, 60)
    assert np.all(render_overlay(grey(), OverlayLayers()) == GREY)


def test_selection_colours_cycle() -> None:
    assert selection_colour(1) == MASK_PALETTE[0]
    assert selection_colour(len(MASK_PALETTE) + 1) == MASK_PALETTE[0]
    assert selection_colour(2) != selection_colour(1)
