"""Depth-aware choice among Segment Anything's candidate masks, and the look-through correction.

A point prompt is ambiguous: SAM answers with three masks (typically a part, an object, and a larger group) and a
predicted IoU for each. Its own rule (:func:`xrseg.sam.engine.choose_best`) picks the stable mask with the highest
predicted IoU; from gaze that goes wrong in three recurring ways, and a depth image tells each one apart:

- **group**: the chosen mask spans two objects, one in front of the other (a cylinder and the torus leaning on
  it). Inside the mask there is a depth step between them.
- **part**: the chosen mask is a texture patch of the object (one checker square of a ball). Nothing in depth
  separates the patch from the rest of the ball.
- **look-through**: the gaze passes through a hole (a torus, a mug handle, a chair back) and SAM segments what
  is behind it. The chosen mask is then surrounded by nearer surfaces.

The rule keeps SAM's choice unless depth contradicts it. Let *S* be the *depth surface* under the gaze: the
connected region of the plausible candidates' union (masks scoring within ``margin`` of the best) that holds the
most positive prompt points, with depth edges (relative jumps over ``edge_jump`` between neighbouring pixels, and
pixels without depth) cut out. Then

1. if more than ``max_outside`` of SAM's mask lies off *S* (a group), take the plausible candidate with the
   highest IoU with *S*;
2. else if SAM's mask covers less than ``part_iou`` of *S*, at least ``part_outline`` of its outline runs
   through the middle of *S* (a part: a texture patch is surrounded by the same surface), and a plausible
   candidate matches *S* with IoU >= ``whole_iou``, take the best such candidate;
3. else keep SAM's choice.

Rule 2 makes whole objects the default (what lifting and mesh export want); LARGER/SMALLER events still step
through the candidates by area. Objects resting on a support are not separated from it by depth (the contact is
continuous), so *S* then holds the support too: a ball on a stand covers a small share of *S*, but most of its
outline is an occluding contour, not the middle of a surface, which is what the outline test in rule 2 is for.
Otherwise the rule only moves *away* from a SAM mask that depth contradicts.

Look-through (:func:`look_through_point`): when more than ``enclosed_share`` of the chosen mask's boundary has a
nearer surface just outside it, the user was almost certainly looking at that nearer surface with a few tenths
of a degree of tracker error, not at the background through its hole; the pipeline prompts again at the nearest
pixel of the enclosing surface and applies the same choice.

All of it needs depth; without it (``depth_m`` None or empty) SAM's choice stands. Its cost per selection is
``mask_choice_ms`` in ``xrseg bench`` (docs/benchmarks.md): two depth-edge passes, one connected-components pass,
and box filters over the chosen mask's bounding box.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.masks import mask_iou
from xrseg.sam.records import MaskPrediction


class ChoiceReason(enum.Enum):
    """Why a candidate mask was chosen."""

    SAM = "sam"
    """SAM's own ambiguity rule (also whenever there is no usable depth)."""
    DEPTH_GROUP = "depth_group"
    """SAM's mask spanned a depth step: the candidate matching the surface under the gaze was taken."""
    DEPTH_WHOLE = "depth_whole"
    """SAM's mask was a part of the surface under the gaze: the candidate covering the whole of it was taken."""
    GAZE_CONE = "gaze_cone"
    """The mask under the gaze was no plausible target (a support plane, most of the image, or off the gaze):
    the best candidate within the tracker's error cone was taken (:mod:`xrseg.select.candidates`)."""


@dataclass(frozen=True)
class MaskChoice:
    """The chosen candidate ``index`` into :attr:`MaskPrediction.masks` and why."""

    index: int
    reason: ChoiceReason


@dataclass(frozen=True)
class ChoiceOptions:
    """Thresholds of the depth-aware choice (shares and IoUs in [0, 1]); see the module docstring."""

    edge_jump: float = 0.04
    """A depth edge: neighbouring depths differ by more than this share of the nearer one."""
    margin: float = 0.15
    """Candidates whose predicted IoU is within this of the best are plausible."""
    max_outside: float = 0.15
    part_iou: float = 0.5
    part_outline: float = 0.5
    """A part: at least this share of the pixels just outside the mask lie on the surface under the gaze."""
    whole_iou: float = 0.8
    max_whole_area_share: float = 0.25
    """Rule 2 never grows a mask into a candidate covering more of the image than this (a ball on a table is
    depth-continuous with the table: its "whole surface" can be table and wall)."""
    enclosed_share: float = 0.6
    """Look-through: this share of the mask's boundary has a nearer surface just outside."""
    look_through_gap_px: int = 1
    """The new prompt of a look-through goes this far or more outside the mask (clear of its blurred rim)."""


def _usable_depth(depth_m: npt.NDArray[np.float32] | None, shape: tuple[int, ...]) -> bool:
    return depth_m is not None and depth_m.shape == shape and bool(np.any(depth_m > 0))


def depth_edges(depth_m: npt.NDArray[np.float32], edge_jump: float = 0.04) -> npt.NDArray[np.bool_]:
    """HxW bool: pixels on either side of a relative depth jump over ``edge_jump``, and pixels without depth.

    ``depth_m`` HxW float32 metres, 0 (or non-finite) where there is none.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    safe = np.where(valid, depth, np.float32(np.nan))
    edges = ~valid
    with np.errstate(invalid="ignore"):
        jump_x = np.abs(np.diff(safe, axis=1)) / np.fmin(safe[:, :-1], safe[:, 1:])
        jump_y = np.abs(np.diff(safe, axis=0)) / np.fmin(safe[:-1], safe[1:])
    step_x = ~(jump_x <= edge_jump)  # NaN (a pixel without depth) counts as a step
    step_y = ~(jump_y <= edge_jump)
    edges[:, :-1] |= step_x
    edges[:, 1:] |= step_x
    edges[:-1] |= step_y
    edges[1:] |= step_y
    result: npt.NDArray[np.bool_] = edges
    return result


def gaze_surface(
    candidates: npt.NDArray[np.bool_],
    edges: npt.NDArray[np.bool_],
    points_xy: npt.NDArray[np.floating],
) -> npt.NDArray[np.bool_] | None:
    """HxW bool: the edge-free connected region of the candidates' union holding the most of ``points_xy``.

    ``candidates`` KxHxW bool; ``edges`` HxW bool from :func:`depth_edges`; ``points_xy`` Nx2 (x, y) pixels
    (the positive prompt points). None when no point lands on an edge-free pixel of the union.
    """
    union = np.any(candidates, axis=0) & ~edges
    _, labels = cv2.connectedComponents(union.astype(np.uint8), connectivity=4)
    height, width = union.shape
    xy = np.rint(np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    hit = labels[xy[inside, 1], xy[inside, 0]]
    hit = hit[hit > 0]
    if hit.size == 0:
        return None
    surface: npt.NDArray[np.bool_] = labels == int(np.bincount(hit).argmax())
    return surface


def outline_share(mask: npt.NDArray[np.bool_], surface: npt.NDArray[np.bool_]) -> float:
    """Share of the pixels just outside ``mask`` (its 8-connected outer ring) that lie on ``surface``.

    ``mask`` and ``surface`` HxW bool. Near 1 for a patch in the middle of a surface; small for an object whose
    outline is mostly occluding contour (and depth edges, which are never on a surface from
    :func:`gaze_surface`).
    """
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
    return int(np.count_nonzero(ring & surface)) / max(int(np.count_nonzero(ring)), 1)


def choose_mask(
    prediction: MaskPrediction,
    depth_m: npt.NDArray[np.float32] | None,
    points_xy: npt.ArrayLike,
    labels: npt.ArrayLike,
    options: ChoiceOptions = ChoiceOptions(),
) -> MaskChoice:
    """Choose among ``prediction``'s candidates (see the module docstring for the rule).

    ``depth_m`` the keyframe's HxW float32 depth in metres (0 = none) or None; ``points_xy`` Nx2 float (x, y)
    pixels and ``labels`` N ints of the prompt that made ``prediction`` (1 = positive).
    """
    sam = MaskChoice(prediction.best, ChoiceReason.SAM)
    masks = prediction.masks
    if len(masks) < 2 or depth_m is None or not _usable_depth(depth_m, masks.shape[1:]):
        return sam
    scores = np.asarray(prediction.scores, dtype=np.float64)
    plausible = [i for i in range(len(masks)) if scores[i] >= scores.max() - options.margin]
    positives = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)[np.asarray(labels).reshape(-1) == 1]
    edges = depth_edges(depth_m, options.edge_jump)
    surface = gaze_surface(masks[plausible], edges, positives)
    if surface is None:
        return sam
    ious = {i: mask_iou(masks[i] & ~edges, surface) for i in plausible}
    best_core = masks[prediction.best] & ~edges
    outside = int(np.count_nonzero(best_core & ~surface)) / max(int(np.count_nonzero(best_core)), 1)
    if outside > options.max_outside:
        chosen = max(plausible, key=lambda i: ious[i])
        return MaskChoice(chosen, ChoiceReason.DEPTH_GROUP) if chosen != prediction.best else sam
    if ious.get(prediction.best, 0.0) < options.part_iou and (
        outline_share(masks[prediction.best], surface) >= options.part_outline
    ):
        wholes = [
            i
            for i in plausible
            if ious[i] >= options.whole_iou and masks[i].mean() <= options.max_whole_area_share
        ]
        if wholes:
            return MaskChoice(max(wholes, key=lambda i: ious[i]), ChoiceReason.DEPTH_WHOLE)
    return sam


def _around(mask: npt.NDArray[np.bool_], margin_px: int) -> tuple[slice, slice]:
    """Row and column slices of ``mask``'s bounding box grown by ``margin_px`` (clipped to the image)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(int(rows[0]) - margin_px, 0), min(int(rows[-1]) + margin_px + 1, height)),
        slice(max(int(cols[0]) - margin_px, 0), min(int(cols[-1]) + margin_px + 1, width)),
    )


def enclosed_share(
    mask: npt.NDArray[np.bool_], depth_m: npt.NDArray[np.float32], edge_jump: float = 0.04, window_px: int = 7
) -> float:
    """Share of ``mask``'s boundary pixels where the surface just outside is nearer than the mask just inside.

    ``mask`` HxW bool; ``depth_m`` HxW float32 metres (0 = none). Compares mean depths over a
    ``window_px``-square window on either side of each boundary pixel; nearer means by more than ``edge_jump``.
    """
    if not np.any(mask):
        return 0.0
    crop = _around(mask, window_px // 2 + 2)  # every pixel the filters read around the boundary
    mask, depth_m = mask[crop], depth_m[crop]
    depth = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0).astype(np.float32)
    valid = (depth > 0).astype(np.float32)
    mask_u8 = mask.astype(np.uint8)
    boundary = mask & ~cv2.erode(mask_u8, np.ones((3, 3), np.uint8)).astype(bool)
    count = int(np.count_nonzero(boundary))
    if count == 0:
        return 0.0
    size = (window_px, window_px)
    inside = mask_u8.astype(np.float32) * valid
    outside = (1 - mask_u8).astype(np.float32) * valid
    sum_in = cv2.boxFilter(depth * inside, -1, size, normalize=False)
    n_in = cv2.boxFilter(inside, -1, size, normalize=False)
    sum_out = cv2.boxFilter(depth * outside, -1, size, normalize=False)
    n_out = cv2.boxFilter(outside, -1, size, normalize=False)
    both = boundary & (n_in > 0) & (n_out > 0)
    mean_in = sum_in[both] / n_in[both]
    mean_out = sum_out[both] / n_out[both]
    nearer = (mean_in - mean_out) > edge_jump * mean_in
    return int(np.count_nonzero(nearer)) / count


def look_through_point(
    mask: npt.NDArray[np.bool_],
    depth_m: npt.NDArray[np.float32] | None,
    gaze_xy: tuple[float, float],
    options: ChoiceOptions = ChoiceOptions(),
) -> tuple[float, float] | None:
    """Where to prompt instead when ``mask`` is seen through a hole in a nearer surface, else None.

    ``mask`` HxW bool, the chosen mask; ``depth_m`` HxW float32 metres (0 = none) or None; ``gaze_xy`` the
    fixation's (x, y) pixel. Returns the (x, y) pixel of the enclosing surface nearest the gaze, between
    ``look_through_gap_px`` and that plus 3 pixels outside the mask and off depth edges; None when the mask is
    not enclosed (the usual case) or there is no usable depth.
    """
    if depth_m is None or not _usable_depth(depth_m, mask.shape) or not np.any(mask):
        return None
    if enclosed_share(mask, depth_m, options.edge_jump) <= options.enclosed_share:
        return None
    gap = options.look_through_gap_px
    rows, cols = _around(mask, gap + 5)  # the ring reaches gap + 3 pixels out; depth edges one more
    mask, depth_m = mask[rows, cols], depth_m[rows, cols]
    mask_u8 = mask.astype(np.uint8)
    near = cv2.dilate(mask_u8, np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)).astype(bool)
    ring = cv2.dilate(mask_u8, np.ones((2 * gap + 7, 2 * gap + 7), np.uint8)).astype(bool) & ~near
    ring &= ~depth_edges(depth_m, options.edge_jump)
    ys, xs = np.nonzero(ring)
    if xs.size == 0:
        return None
    xs, ys = xs + cols.start, ys + rows.start
    nearest = int(np.argmin((xs - gaze_xy[0]) ** 2 + (ys - gaze_xy[1]) ** 2))
    return float(xs[nearest]), float(ys[nearest])
