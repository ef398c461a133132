"""Follow a selected object into later frames by projecting its 3D points and re-prompting the decoder.

For each new frame, :class:`ObjectFollower` projects the object's world points into the frame (lens distortion
included, :func:`xrseg.geometry.project_points`), keeps the ones the frame's depth confirms as visible (not
occluded, not moved), rasterises them into a silhouette, builds a prompt (a few positive points deep inside the
silhouette plus the visible points' bounding box), asks the decoder for a mask and checks that mask against the
silhouette. When anything does not add up it stops with a reason instead of drifting onto another object.

An object the image border cut on the frame it was selected on (:class:`BorderCut`) is known only up to that
border, and its silhouette and box cover just that part. Once the cut comes into view, the follower also asks the
decoder without the box and keeps that larger mask when it covers the silhouette and what it adds lies where the
selection's frame could not see: beyond the cut edge of that frame's image (lifted with this frame's depth).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.geometry import in_image, invert_transform, project_points, transform_points, unproject_pixels
from xrseg.lift.bordercut import BorderCut
from xrseg.masks import mask_iou
from xrseg.types import CameraModel, as_transform

logger = logging.getLogger(__name__)

__all__ = ["BorderCut", "Decoder", "FollowParams", "FollowResult", "ObjectFollower"]

Decoder = Callable[
    [npt.NDArray[np.float32], npt.NDArray[np.int32], "npt.NDArray[np.float32] | None"], npt.NDArray[np.bool_]
]
"""``decode(points_xy Nx2 float32 (x, y) pixels, labels N int32 (1 = object), box_xyxy 4 float32 | None)``
returning the HxW bool mask for the current frame (a closure over the frame's image embedding)."""


@dataclass(frozen=True)
class FollowParams:
    """Tuning of :class:`ObjectFollower`.

    ``n_positive_points`` prompt points; ``min_visible_points`` below which the object counts as gone;
    a projected point is visible when the frame's depth at its pixel is within
    ``max(visibility_tolerance_m, visibility_relative * depth)`` of the point's own depth;
    the silhouette is closed with radius ``close_px`` (fills gaps between projected points) and, for the
    agreement test, dilated by ``silhouette_dilate_px``; the new mask must reach ``min_iou`` against that
    dilated silhouette and contain ``min_coverage`` of the visible projected points; ``box_margin_px`` pads
    the prompt box; ``max_points`` caps the points projected per frame (a deterministic stride beyond it).

    For an object the border cut (:class:`BorderCut`): the box-free mask is tried when at least
    ``min_cut_points`` of the cut's points project at least ``cut_inset_px`` inside the image; it is kept when it
    covers ``min_coverage`` of the visible points, is at most ``max_growth`` times the dilated silhouette's area,
    and ``min_beyond_cut`` of what it adds outside the dilated silhouette (pixels with depth) lies beyond the cut.
    """

    n_positive_points: int = 3
    min_visible_points: int = 20
    visibility_tolerance_m: float = 0.02
    visibility_relative: float = 0.03
    close_px: int = 3
    silhouette_dilate_px: int = 4
    min_iou: float = 0.5
    min_coverage: float = 0.6
    box_margin_px: float = 4.0
    max_points: int = 60_000
    min_cut_points: int = 5
    cut_inset_px: float = 8.0
    max_growth: float = 3.0
    min_beyond_cut: float = 0.75

    def __post_init__(self) -> None:
        if self.n_positive_points < 1 or self.min_visible_points < 1 or self.max_points < 1:
            raise InputError("n_positive_points, min_visible_points and max_points must be >= 1")
        if self.close_px < 0 or self.silhouette_dilate_px < 0 or self.box_margin_px < 0:
            raise InputError("close_px, silhouette_dilate_px and box_margin_px must be >= 0")
        if not (0.0 <= self.min_iou <= 1.0 and 0.0 <= self.min_coverage <= 1.0):
            raise InputError("min_iou and min_coverage must be in [0, 1]")
        if not (self.visibility_tolerance_m > 0 and self.visibility_relative >= 0):
            raise InputError("visibility_tolerance_m must be positive and visibility_relative >= 0")
        if self.min_cut_points < 1 or self.cut_inset_px < 0 or self.max_growth < 1.0:
            raise InputError("min_cut_points must be >= 1, cut_inset_px >= 0 and max_growth >= 1")
        if not 0.0 <= self.min_beyond_cut <= 1.0:
            raise InputError("min_beyond_cut must be in [0, 1]")


@dataclass(frozen=True)
class FollowResult:
    """The outcome of following the object into one frame.

    ``mask`` HxW bool when followed, None when stopped; ``stopped_reason`` None when followed, else a
    sentence ("object left the view", "mask disagrees with projection (IoU 0.21 < 0.5)", "no depth", ...).
    ``agreement_iou`` IoU of the decoder's mask with the dilated silhouette of the projected points and
    ``coverage`` the share of visible projected points inside that mask (both NaN when no mask was decoded).
    ``prompt_points_xy`` Nx2 float32, ``prompt_labels`` N int32 and ``box_xyxy`` (4 float32 or None) are the
    prompt sent to the decoder (empty when none was sent); ``visible_points`` how many projected points the
    frame's depth confirmed; ``silhouette`` HxW bool (closed, not dilated) or None when not computed;
    ``grown`` True when the mask is the box-free one kept for an object the border cut (the prompt then had no
    box: ``box_xyxy`` is None).
    """

    mask: npt.NDArray[np.bool_] | None
    agreement_iou: float
    coverage: float
    stopped_reason: str | None
    prompt_points_xy: npt.NDArray[np.float32]
    prompt_labels: npt.NDArray[np.int32]
    box_xyxy: npt.NDArray[np.float32] | None
    visible_points: int
    silhouette: npt.NDArray[np.bool_] | None = None
    grown: bool = False

    @property
    def followed(self) -> bool:
        return self.stopped_reason is None


def _stopped(reason: str, visible: int = 0, silhouette: npt.NDArray[np.bool_] | None = None) -> FollowResult:
    logger.info("follow stopped: %s", reason)
    return FollowResult(
        None,
        math.nan,
        math.nan,
        reason,
        np.zeros((0, 2), dtype=np.float32),
        np.zeros(0, dtype=np.int32),
        None,
        visible,
        silhouette,
    )


def _disk(radius: int) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)), np.uint8)


def _farthest_points(candidates_xy: npt.NDArray[np.float64], first: int, count: int) -> list[int]:
    """Indices of up to ``count`` candidates chosen by farthest-point sampling from ``first`` (deterministic)."""
    chosen = [first]
    nearest = np.linalg.norm(candidates_xy - candidates_xy[first], axis=1)
    while len(chosen) < min(count, candidates_xy.shape[0]):
        index = int(np.argmax(nearest))
        if nearest[index] <= 0.0:
            break
        chosen.append(index)
        nearest = np.minimum(nearest, np.linalg.norm(candidates_xy - candidates_xy[index], axis=1))
    return chosen


class ObjectFollower:
    """Follows one object, given as Nx3 float64 world points (metres), e.g. ``lift_mask(...).points_world_m``;
    ``cut`` where the image border cut it on its selection's frame (:meth:`BorderCut.of`; None when it did not)."""

    def __init__(
        self, points_world_m: npt.ArrayLike, params: FollowParams | None = None, cut: BorderCut | None = None
    ) -> None:
        self.params = params or FollowParams()
        self.points_world_m = points_world_m  # validated by the setter
        self.cut = cut

    @property
    def points_world_m(self) -> npt.NDArray[np.float64]:
        """Nx3 float64 world points being followed (read-only)."""
        return self._points

    @points_world_m.setter
    def points_world_m(self, value: npt.ArrayLike) -> None:
        points = np.array(value, dtype=np.float64, copy=True)
        if points.ndim != 2 or points.shape[1] != 3:
            raise InputError(f"points_world_m must be Nx3, got shape {points.shape}")
        if points.shape[0] == 0:
            raise InputError("cannot follow an object without points")
        if not np.all(np.isfinite(points)):
            raise InputError("points_world_m has non-finite values")
        if points.shape[0] > self.params.max_points:
            stride = math.ceil(points.shape[0] / self.params.max_points)
            points = points[::stride]
        points.setflags(write=False)
        self._points = points

    def follow(
        self,
        depth_m: npt.NDArray[np.float32] | None,
        camera: CameraModel,
        world_from_camera: npt.ArrayLike,
        decode: Decoder,
    ) -> FollowResult:
        """Find the object in a new frame.

        ``depth_m`` HxW float32 metres along +z (0 = none) or None; ``camera`` the frame's camera model;
        ``world_from_camera`` 4x4 float64; ``decode`` the frame's decoder (see :data:`Decoder`). Returns a
        :class:`FollowResult`; the decoder is only called when the projection gives a usable prompt.
        """
        world_from_camera_t = as_transform(world_from_camera, "world_from_camera")
        visible = self._visible_pixels(depth_m, camera, world_from_camera_t)
        if isinstance(visible, FollowResult):
            return visible
        params = self.params
        shape = (camera.height_px, camera.width_px)
        silhouette_u8 = _silhouette(visible, shape, params.close_px)
        points_xy = _positive_points(silhouette_u8, visible, params.n_positive_points)
        labels = np.ones(points_xy.shape[0], dtype=np.int32)
        box: npt.NDArray[np.float32] | None = _prompt_box(visible, shape, params.box_margin_px)
        mask = _decoded(decode, points_xy, labels, box, shape)
        grown = False
        if self.cut is not None and self._cut_in_view(camera, world_from_camera_t):
            assert depth_m is not None  # _visible_pixels stops without depth
            wider = _decoded(decode, points_xy, labels, None, shape)
            if self._grows_past_cut(wider, silhouette_u8, visible, depth_m, camera, world_from_camera_t):
                mask, box, grown = wider, None, True
        if not mask.any():
            reason: str | None = "decoder returned an empty mask"
            iou, coverage = 0.0, 0.0
        else:
            iou, coverage = _agreement(mask, silhouette_u8, visible, params.silhouette_dilate_px)
            reason = None if grown else _disagreement(iou, coverage, params)
        if reason is not None:
            logger.info("follow stopped: %s", reason)
        return FollowResult(
            mask if reason is None else None,
            iou,
            coverage,
            reason,
            points_xy,
            labels,
            box,
            visible.count,
            silhouette_u8.astype(np.bool_),
            grown,
        )

    def _cut_in_view(self, camera: CameraModel, world_from_camera: npt.NDArray[np.float64]) -> bool:
        """Whether enough of the cut's rim projects well inside this frame (what lay past it may show now)."""
        assert self.cut is not None
        pixels, _ = project_points(
            camera, transform_points(invert_transform(world_from_camera), self.cut.rim_world_m)
        )
        inset = self.params.cut_inset_px
        with np.errstate(invalid="ignore"):
            inside = (
                (pixels[:, 0] >= inset)
                & (pixels[:, 0] <= camera.width_px - 1 - inset)
                & (pixels[:, 1] >= inset)
                & (pixels[:, 1] <= camera.height_px - 1 - inset)
            )
        return int(np.count_nonzero(inside)) >= self.params.min_cut_points

    def _grows_past_cut(
        self,
        mask: npt.NDArray[np.bool_],
        silhouette_u8: npt.NDArray[np.uint8],
        visible: _VisiblePixels,
        depth_m: npt.NDArray[np.float32],
        camera: CameraModel,
        world_from_camera: npt.NDArray[np.float64],
    ) -> bool:
        """Whether the box-free ``mask`` is the object grown past the cut (see :class:`FollowParams`)."""
        assert self.cut is not None
        params = self.params
        dilated = np.asarray(cv2.dilate(silhouette_u8, _disk(params.silhouette_dilate_px)), np.bool_)
        if float(np.mean(mask[visible.rows, visible.cols])) < params.min_coverage:
            return False
        if np.count_nonzero(mask) > params.max_growth * np.count_nonzero(dilated):
            return False
        rows, cols = np.nonzero(mask & ~dilated)
        depth = np.asarray(depth_m, dtype=np.float64)[rows, cols]
        with np.errstate(invalid="ignore"):
            has_depth = np.isfinite(depth) & (depth > 0)
        if not has_depth.any():
            return False
        pixels_xy = np.column_stack([cols[has_depth], rows[has_depth]]).astype(np.float64)
        points_world = transform_points(world_from_camera, unproject_pixels(camera, pixels_xy, depth[has_depth]))
        return float(np.mean(self.cut.beyond(camera, points_world))) >= params.min_beyond_cut

    def _visible_pixels(
        self,
        depth_m: npt.NDArray[np.float32] | None,
        camera: CameraModel,
        world_from_camera: npt.NDArray[np.float64],
    ) -> _VisiblePixels | FollowResult:
        """The pixels of the object's points that the frame's depth confirms, or the stop when too few are."""
        params = self.params
        shape = (camera.height_px, camera.width_px)
        points_camera = transform_points(invert_transform(world_from_camera), self._points)
        pixels, _ = project_points(camera, points_camera)
        on_image = in_image(camera, pixels)
        in_view = int(np.count_nonzero(on_image))
        if in_view < params.min_visible_points:
            return _stopped("object left the view")
        if depth_m is None:
            return _stopped("no depth")
        depth = np.asarray(depth_m)
        if depth.shape != shape:
            raise InputError(f"depth_m must be {shape[0]}x{shape[1]} to match the camera, got {depth.shape}")
        cols = np.clip(np.rint(pixels[on_image, 0]).astype(np.intp), 0, shape[1] - 1)
        rows = np.clip(np.rint(pixels[on_image, 1]).astype(np.intp), 0, shape[0] - 1)
        z = points_camera[on_image, 2]
        measured = depth[rows, cols].astype(np.float64)
        with np.errstate(invalid="ignore"):
            has_depth = np.isfinite(measured) & (measured > 0)
        if int(np.count_nonzero(has_depth)) < params.min_visible_points:
            return _stopped("no depth")
        tolerance = np.maximum(params.visibility_tolerance_m, params.visibility_relative * measured)
        visible = has_depth & (np.abs(z - measured) <= tolerance)
        visible_count = int(np.count_nonzero(visible))
        if visible_count < params.min_visible_points:
            return _stopped(
                f"object is occluded or moved ({visible_count} of {in_view} projected points match the depth)",
                visible_count,
            )
        return _VisiblePixels(rows[visible], cols[visible])


@dataclass(frozen=True)
class _VisiblePixels:
    """The pixels of the object's visible points: ``rows`` and ``cols`` N intp each (duplicates kept)."""

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


def _decoded(
    decode: Decoder,
    points_xy: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    box: npt.NDArray[np.float32] | None,
    shape: tuple[int, int],
) -> npt.NDArray[np.bool_]:
    """The decoder's HxW bool mask for the prompt (raises :class:`InputError` for a mask of another shape)."""
    mask = np.asarray(decode(points_xy, labels, box))
    if mask.shape != shape:
        raise InputError(f"decoder returned a mask of shape {mask.shape}, expected {shape}")
    return mask.astype(np.bool_, copy=False)


def _silhouette(visible: _VisiblePixels, shape: tuple[int, int], close_px: int) -> npt.NDArray[np.uint8]:
    """HxW uint8 (0/1) raster of the visible points, closed with radius ``close_px``."""
    silhouette_u8 = np.zeros(shape, dtype=np.uint8)
    silhouette_u8[visible.rows, visible.cols] = 1
    if close_px > 0:
        silhouette_u8 = np.asarray(cv2.morphologyEx(silhouette_u8, cv2.MORPH_CLOSE, _disk(close_px)), np.uint8)
    return silhouette_u8


def _positive_points(
    silhouette_u8: npt.NDArray[np.uint8], visible: _VisiblePixels, count: int
) -> npt.NDArray[np.float32]:
    """Up to ``count`` Nx2 float32 (x, y) pixels deep inside the silhouette (distance transform), spread by
    farthest-point sampling."""
    rows, cols = visible.rows, visible.cols
    inside = cv2.distanceTransform(silhouette_u8, cv2.DIST_L2, 5)[rows, cols]
    candidates = np.flatnonzero(inside >= 0.5 * float(inside.max()))
    candidate_xy = np.column_stack([cols[candidates], rows[candidates]]).astype(np.float64)
    first = int(np.argmax(inside[candidates]))
    chosen = candidates[_farthest_points(candidate_xy, first, count)]
    return np.column_stack([cols[chosen], rows[chosen]]).astype(np.float32)


def _prompt_box(visible: _VisiblePixels, shape: tuple[int, int], margin_px: float) -> npt.NDArray[np.float32]:
    """The visible points' bounding box padded by ``margin_px``, in the image: 4 float32 (x0, y0, x1, y1)."""
    rows, cols = visible.rows, visible.cols
    return np.array(
        [
            max(float(cols.min()) - margin_px, 0.0),
            max(float(rows.min()) - margin_px, 0.0),
            min(float(cols.max()) + margin_px, shape[1] - 1.0),
            min(float(rows.max()) + margin_px, shape[0] - 1.0),
        ],
        dtype=np.float32,
    )


def _agreement(
    mask: npt.NDArray[np.bool_], silhouette_u8: npt.NDArray[np.uint8], visible: _VisiblePixels, dilate_px: int
) -> tuple[float, float]:
    """(IoU of ``mask`` with the silhouette dilated by ``dilate_px``, share of the visible points in ``mask``)."""
    dilated = silhouette_u8
    if dilate_px > 0:
        dilated = np.asarray(cv2.dilate(silhouette_u8, _disk(dilate_px)), np.uint8)
    iou = mask_iou(mask, dilated.astype(np.bool_))
    coverage = float(np.mean(mask[visible.rows, visible.cols]))
    return iou, coverage


def _disagreement(iou: float, coverage: float, params: FollowParams) -> str | None:
    """Why the decoded mask is not the followed object, or None when it agrees with the projection."""
    if iou < params.min_iou:
        return f"mask disagrees with projection (IoU {iou:.2f} < {params.min_iou:g})"
    if coverage < params.min_coverage:
        return f"mask covers only {coverage:.0%} of the projected points (< {params.min_coverage:.0%})"
    return None
