"""Pure drawing functions: each takes an HxWx3 uint8 RGB image and returns a new HxWx3 uint8 RGB image.

Coordinates are (x, y) float pixels with the origin at the centre of the top-left pixel (the xrseg and OpenCV
convention); they are rounded to the nearest pixel before drawing, and shapes are drawn without anti-aliasing
(``cv2.LINE_8``) so every drawn pixel has exactly its colour. Text uses anti-aliasing for legibility.

:func:`render_overlay` draws a whole :class:`OverlayLayers` (mask, prompt points, fixation, gaze trail and
cursor, heads-up line) in that order onto one copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError

Colour = tuple[int, int, int]
"""An (r, g, b) colour, each 0-255."""

GAZE_RGB: Colour = (255, 230, 0)
"""The gaze cursor: a ring and its centre pixel."""
GAZE_EDGE_RGB: Colour = (0, 0, 0)
"""A ring just outside the cursor ring, for contrast on bright backgrounds."""
TRAIL_RGB: Colour = (255, 140, 0)
FIXATION_RGB: Colour = (0, 220, 255)
POSITIVE_RGB: Colour = (0, 255, 0)
NEGATIVE_RGB: Colour = (255, 0, 0)
POINT_EDGE_RGB: Colour = (255, 255, 255)
TEXT_RGB: Colour = (255, 255, 255)
PREVIEW_RGB: Colour = (230, 230, 230)
"""The hover preview: a light tint and outline, what a press now would select."""

MASK_PALETTE: tuple[Colour, ...] = (
    (255, 64, 160),
    (64, 160, 255),
    (255, 160, 32),
    (160, 96, 255),
    (32, 208, 160),
    (240, 64, 64),
    (200, 200, 40),
    (64, 224, 255),
)
"""Mask colours, cycled by selection id (see :func:`selection_colour`)."""

GAZE_RADIUS_PX = 8
PROMPT_RADIUS_PX = 4
HUD_HEIGHT_PX = 18
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.42


def selection_colour(selection_id: int) -> Colour:
    """The mask colour of a selection: ``MASK_PALETTE[(selection_id - 1) % len(MASK_PALETTE)]``."""
    return MASK_PALETTE[(int(selection_id) - 1) % len(MASK_PALETTE)]


def _checked_copy(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"image must be HxWx3 uint8 RGB, got {array.shape} {array.dtype}")
    return np.array(array, copy=True, order="C")


def _pixel(xy: Sequence[float] | npt.NDArray[np.floating]) -> tuple[int, int] | None:
    """Nearest integer pixel of an (x, y) point, or None when it is not finite."""
    x, y = float(xy[0]), float(xy[1])
    if not (math.isfinite(x) and math.isfinite(y)) or abs(x) > 1e6 or abs(y) > 1e6:
        return None
    return (round(x), round(y))


def _text(image: npt.NDArray[np.uint8], text: str, origin_xy: tuple[int, int], colour: Colour = TEXT_RGB) -> None:
    """Text with a dark box behind it, its top-left corner at ``origin_xy``, clamped into the image."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)
    x = min(max(origin_xy[0], 0), max(image.shape[1] - width - 2, 0))
    y = min(max(origin_xy[1], 0), max(image.shape[0] - height - baseline - 2, 0))
    box = image[y : y + height + baseline + 2, x : x + width + 2]
    box[...] = box // 3
    cv2.putText(image, text, (x + 1, y + height + 1), _FONT, _FONT_SCALE, colour, 1, cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------- in-place layers


def _draw_mask(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.bool_],
    colour: Colour,
    alpha: float,
    outline_px: int,
    label: str | None,
) -> None:
    if mask.shape != image.shape[:2]:
        raise InputError(f"mask must be {image.shape[:2]} to match the image, got {mask.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    inside = np.asarray(mask, dtype=bool)
    if not inside.any():
        return
    tint = np.asarray(colour, dtype=np.float32)
    blended = image[inside].astype(np.float32) * (1.0 - alpha) + tint * alpha
    image[inside] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if outline_px > 0:
        # The inner boundary: mask pixels within outline_px (4-connected steps) of a pixel outside the mask.
        # Pixels beyond the image border count as outside.
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        eroded = cv2.erode(
            inside.astype(np.uint8), cross, iterations=outline_px, borderType=cv2.BORDER_CONSTANT, borderValue=0
        )
        image[inside & (eroded == 0)] = colour
    if label:
        rows = np.flatnonzero(inside.any(axis=1))
        cols = np.flatnonzero(inside.any(axis=0))
        _, height = cv2.getTextSize(label, _FONT, _FONT_SCALE, 1)[0]
        _text(image, label, (int(cols[0]), int(rows[0]) - height - 6), colour)


def _draw_prompts(
    image: npt.NDArray[np.uint8],
    points_xy: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    radius_px: int,
) -> None:
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    kinds = np.asarray(labels).reshape(-1)
    if kinds.shape[0] != points.shape[0]:
        raise InputError(f"{points.shape[0]} prompt points but {kinds.shape[0]} labels")
    for xy, label in zip(points, kinds, strict=True):
        centre = _pixel(xy)
        if centre is None:
            continue
        colour = POSITIVE_RGB if int(label) == 1 else NEGATIVE_RGB
        cv2.circle(image, centre, radius_px + 1, POINT_EDGE_RGB, 1, cv2.LINE_8)
        cv2.circle(image, centre, radius_px, colour, -1, cv2.LINE_8)


def _draw_fixation(
    image: npt.NDArray[np.uint8], centre_xy: Sequence[float], radius_px: float, label: str | None
) -> None:
    centre = _pixel(centre_xy)
    if centre is None:
        return
    radius = max(round(radius_px), 2)
    cv2.circle(image, centre, radius, FIXATION_RGB, 1, cv2.LINE_8)
    if label:
        _text(image, label, (centre[0] + radius + 3, centre[1] - radius), FIXATION_RGB)


def _draw_gaze(
    image: npt.NDArray[np.uint8],
    gaze_xy: Sequence[float] | None,
    trail_xy: npt.NDArray[np.floating] | None,
    radius_px: int,
) -> None:
    if trail_xy is not None and len(trail_xy) > 1:
        # Non-finite points (samples that did not project) split the trail into separate polylines.
        run: list[tuple[int, int]] = []
        for xy in np.asarray(trail_xy, dtype=np.float64).reshape(-1, 2):
            pixel = _pixel(xy)
            if pixel is not None:
                run.append(pixel)
                continue
            if len(run) > 1:
                cv2.polylines(image, [np.array(run, dtype=np.int32)], False, TRAIL_RGB, 1, cv2.LINE_8)
            run = []
        if len(run) > 1:
            cv2.polylines(image, [np.array(run, dtype=np.int32)], False, TRAIL_RGB, 1, cv2.LINE_8)
    if gaze_xy is None:
        return
    centre = _pixel(gaze_xy)
    if centre is None:
        return
    cv2.circle(image, centre, radius_px + 1, GAZE_EDGE_RGB, 1, cv2.LINE_8)
    cv2.circle(image, centre, radius_px, GAZE_RGB, 1, cv2.LINE_8)
    x, y = centre
    if 0 <= x < image.shape[1] and 0 <= y < image.shape[0]:
        image[y, x] = GAZE_RGB


def hud_lines(text: str, width_px: int) -> list[str]:
    """``text`` split at " | " into lines that fit ``width_px`` (a part wider than that gets a line alone)."""
    lines: list[str] = []
    for part in text.split(" | "):
        candidate = f"{lines[-1]} | {part}" if lines else part
        if lines and cv2.getTextSize(candidate, _FONT, _FONT_SCALE, 1)[0][0] + 8 <= width_px:
            lines[-1] = candidate
        else:
            lines.append(part)
    return lines


def _draw_hud(image: npt.NDArray[np.uint8], text: str, height_px: int) -> None:
    lines = hud_lines(text, image.shape[1])[: max(1, image.shape[0] // 3 // height_px)]  # the top third at most
    band = image[: min(height_px * len(lines), image.shape[0])]
    band[...] = (band.astype(np.uint16) * 2 // 5).astype(np.uint8)
    for i, line in enumerate(lines):
        (_, text_h), _ = cv2.getTextSize(line, _FONT, _FONT_SCALE, 1)
        origin = (4, i * height_px + (height_px + text_h) // 2)
        cv2.putText(image, line, origin, _FONT, _FONT_SCALE, TEXT_RGB, 1, cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------- public functions


def draw_mask(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.bool_],
    colour: Colour,
    alpha: float = 0.4,
    outline_px: int = 2,
    label: str | None = None,
) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` (HxWx3 uint8 RGB) with ``mask`` (HxW bool) tinted and outlined in ``colour``.

    Inside the mask each pixel becomes ``rint((1 - alpha) * pixel + alpha * colour)``; then the mask pixels
    within ``outline_px`` 4-connected steps of a pixel outside the mask (or of the image border) are set to
    ``colour`` exactly. ``label`` (e.g. "#3 0.92") is written above the mask's top-left corner.
    """
    out = _checked_copy(image)
    _draw_mask(out, np.asarray(mask), colour, alpha, outline_px, label)
    return out


def draw_prompts(
    image: npt.NDArray[np.uint8],
    points_xy: npt.ArrayLike,
    labels: npt.ArrayLike,
    radius_px: int = PROMPT_RADIUS_PX,
) -> npt.NDArray[np.uint8]:
    """A copy with prompt points: Nx2 (x, y) pixels and N labels (1 positive: green, else negative: red).

    Each point is a filled disc of ``radius_px`` in its colour with a white ring one pixel outside it.
    """
    out = _checked_copy(image)
    _draw_prompts(out, np.asarray(points_xy, dtype=np.float64), np.asarray(labels), radius_px)
    return out


def draw_fixation(
    image: npt.NDArray[np.uint8], centre_xy: Sequence[float], radius_px: float, label: str | None = None
) -> npt.NDArray[np.uint8]:
    """A copy with a fixation: a one-pixel ring of ``radius_px`` (at least 2) around ``centre_xy`` (x, y)."""
    out = _checked_copy(image)
    _draw_fixation(out, centre_xy, radius_px, label)
    return out


def draw_gaze(
    image: npt.NDArray[np.uint8],
    gaze_xy: Sequence[float] | None,
    trail_xy: npt.ArrayLike | None = None,
    radius_px: int = GAZE_RADIUS_PX,
) -> npt.NDArray[np.uint8]:
    """A copy with the gaze cursor and its trail.

    ``gaze_xy`` (x, y) pixels or None: the centre pixel and a one-pixel ring of ``radius_px`` in ``GAZE_RGB``,
    with a ``GAZE_EDGE_RGB`` ring at ``radius_px + 1``. ``trail_xy``: Nx2 (x, y) pixels, oldest first, joined
    by one-pixel ``TRAIL_RGB`` lines; NaN rows break the trail. Points off the image are clipped.
    """
    out = _checked_copy(image)
    trail = None if trail_xy is None else np.asarray(trail_xy, dtype=np.float64).reshape(-1, 2)
    _draw_gaze(out, gaze_xy, trail, radius_px)
    return out


def draw_hud(image: npt.NDArray[np.uint8], text: str, height_px: int = HUD_HEIGHT_PX) -> npt.NDArray[np.uint8]:
    """A copy with a heads-up line in white text over a band darkened to ``pixel * 2 // 5``.

    The band is ``height_px`` rows per line; ``text`` wraps at " | " separators (see :func:`hud_lines`), and
    lines that would reach beyond the top third of the image are left out.
    """
    out = _checked_copy(image)
    _draw_hud(out, text, min(height_px, out.shape[0]))
    return out


@dataclass(frozen=True)
class FixationMark:
    """A fixation to draw: centre (x, y) pixels, ring radius in pixels, and a label (e.g. "320 ms")."""

    centre_xy: tuple[float, float]
    radius_px: float
    label: str | None = None


@dataclass(frozen=True)
class MaskMark:
    """A mask to draw: HxW bool, its colour and label; prompt points Nx2 float32 (x, y) and N int32 labels."""

    mask: npt.NDArray[np.bool_]
    colour: Colour
    label: str | None = None
    prompt_points_xy: npt.NDArray[np.float32] | None = None
    prompt_labels: npt.NDArray[np.int32] | None = None


@dataclass(frozen=True)
class OverlayLayers:
    """Everything drawn on one frame; any part may be absent. ``trail_xy`` is Nx2 float64 (x, y), oldest first."""

    gaze_xy: tuple[float, float] | None = None
    trail_xy: npt.NDArray[np.float64] | None = None
    fixation: FixationMark | None = None
    mask: MaskMark | None = None
    preview: MaskMark | None = None
    """The hover preview's mask, drawn lighter than a selection's."""
    hud: str | None = None


def render_overlay(image: npt.NDArray[np.uint8], layers: OverlayLayers) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` (HxWx3 uint8 RGB) with ``layers`` drawn: preview, mask, prompts, fixation, gaze,
    HUD."""
    out = _checked_copy(image)
    if layers.preview is not None:
        _draw_mask(out, layers.preview.mask, layers.preview.colour, 0.15, 1, layers.preview.label)
    if layers.mask is not None:
        mark = layers.mask
        _draw_mask(out, mark.mask, mark.colour, 0.4, 2, mark.label)
        if mark.prompt_points_xy is not None and mark.prompt_labels is not None:
            _draw_prompts(out, mark.prompt_points_xy, mark.prompt_labels, PROMPT_RADIUS_PX)
    if layers.fixation is not None:
        _draw_fixation(out, layers.fixation.centre_xy, layers.fixation.radius_px, layers.fixation.label)
    _draw_gaze(out, layers.gaze_xy, layers.trail_xy, GAZE_RADIUS_PX)
    if layers.hud:
        _draw_hud(out, layers.hud, min(HUD_HEIGHT_PX, out.shape[0]))
    return out
