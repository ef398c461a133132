"""What the person meant: candidate objects within the eye tracker's error cone, and how they are scored.

An eye tracker is off by its accuracy (typically 0.5-3 deg, constant over seconds), so the gaze pixel can land
on the table beside a small object, on the wall behind a far one, or on a neighbour. What the person looked at
lies, with high probability, within a cone of a few times that accuracy around the measured gaze. Three facts
pick it out:

- **Supports are not targets.** The large planes of the keyframe (table, floor, walls), found by RANSAC on its
  depth (:func:`support_planes`), are where objects stand, rarely what a person selects. A candidate mask that
  lies mostly on them, or covers most of the image, is not a target.
- **Objects stand out in depth.** The pixels off those planes, cut at depth edges, split into connected
  *proposals* (:func:`object_proposals`); each proposal inside the cone gets a prompt at its pixel nearest the
  gaze.
- **Nearer the gaze is likelier.** A candidate mask scores ``-0.5 * (d / sigma)^2 + log(sam_score)``, ``d`` the
  angle from the gaze to its nearest pixel (0 when the gaze is on it) and ``sigma`` the tracker's accuracy.

Without depth there are no planes and no proposals: the gaze prompt's mask stands (SAM's rule), limited only
by the area check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.lift.rays import ray_grid
from xrseg.select.maskchoice import depth_edges
from xrseg.types import CameraModel

__all__ = [
    "CandidateOptions",
    "CandidateScore",
    "KeyframeScene",
    "analyse_keyframe",
    "object_proposals",
    "score_mask",
    "support_planes",
]


@dataclass(frozen=True)
class CandidateOptions:
    """Thresholds of the candidate search (angles in degrees, distances in metres, shares in [0, 1])."""

    accuracy_deg: float = 2.0
    """The eye tracker's accuracy: sigma of the distance prior, and the cone is ``cone_sigmas`` of it."""
    cone_sigmas: float = 2.5
    max_proposals: int = 4
    """At most this many proposals (nearest to the gaze first) are prompted."""
    max_area_share: float = 0.25
    """A mask covering more of the image than this is never a target (nor grown into)."""
    max_support_share: float = 0.5
    """A mask lying more than this on the support planes is the support, not a target."""
    plane_distance_m: float = 0.012
    plane_relative_distance: float = 0.006
    """A pixel lies on a plane within max(plane_distance_m, plane_relative_distance * its depth)."""
    min_region_share: float = 0.015
    """Only connected regions of a plane covering at least this share of the image can be supports."""
    min_support_extent_m: float = 0.5
    """A horizontal plane region at least this wide is a support (a table, the floor); box tops are smaller."""
    min_wall_extent_m: float = 1.2
    """Any plane region at least this wide is a support (a wall); a monitor or a box face is smaller."""
    horizontal_tolerance_deg: float = 20.0
    max_planes: int = 6
    plane_stride_px: int = 6
    """Planes are fitted on every ``plane_stride_px``-th pixel in x and y."""
    min_proposal_px: int = 12
    floor_contact_m: float = 0.06
    furniture_height_m: float = 0.45
    carried_tolerance_m: float = 0.03
    """Furniture (:func:`is_furniture`): resting on the floor within ``floor_contact_m``, carrying something whose
    points reach at least ``carried_tolerance_m`` below its top."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.accuracy_deg) and 0 < self.accuracy_deg <= 20):
            raise InputError(f"gaze accuracy must be in (0, 20] degrees, got {self.accuracy_deg}")


@dataclass(frozen=True)
class KeyframeScene:
    """Per-keyframe analysis, computed once: ``support`` HxW bool (on a support plane), ``proposals`` HxW int32
    connected-object labels (0: none), ``edges`` HxW bool depth edges; None fields where there is no depth."""

    support: npt.NDArray[np.bool_] | None
    proposals: npt.NDArray[np.int32] | None
    edges: npt.NDArray[np.bool_] | None
    points_m: npt.NDArray[np.float32] | None = None
    """HxWx3 float32 camera-frame point of each pixel (NaN without depth)."""
    up_camera: npt.NDArray[np.float64] | None = None
    """The world's up direction in camera coordinates, when the keyframe's pose is known."""
    floor_height_m: float | None = None
    """Height of the lowest horizontal support (the floor, or the table when no floor is seen)."""


@dataclass(frozen=True)
class CandidateScore:
    """How well a mask fits the gaze: ``distance_deg`` from the gaze to its nearest pixel, its shares of the
    image and of the supports, ``score`` (higher is better) and whether it may be a target at all."""

    distance_deg: float
    area_share: float
    support_share: float
    score: float
    plausible: bool


def _points_camera(depth_m: npt.NDArray[np.float32], camera: CameraModel) -> npt.NDArray[np.float32]:
    """HxWx3 float32 camera-frame points of every pixel (NaN where depth is 0 or non-finite)."""
    depth = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, np.nan).astype(np.float32)
    grid = ray_grid(camera)
    return np.dstack([grid[..., 0] * depth, grid[..., 1] * depth, depth])


def _region_extent_m(points: npt.NDArray[np.float32]) -> float:
    """Extent (metres) of Nx3 points along their principal axis: the 5th to 95th percentile."""
    sample = points[:: max(1, len(points) // 4000)].astype(np.float64)
    centred = sample - sample.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    along = centred @ axis
    return float(np.percentile(along, 95) - np.percentile(along, 5))


def _is_support(
    normal: npt.NDArray[np.float64],
    extent_m: float,
    up_camera: npt.NDArray[np.float64] | None,
    options: CandidateOptions,
) -> bool:
    """A horizontal plane (table, floor) this wide, or any plane as wide as a wall."""
    if up_camera is None:
        return extent_m >= options.min_support_extent_m
    horizontal = _is_horizontal(normal, up_camera, options)
    return extent_m >= (options.min_support_extent_m if horizontal else options.min_wall_extent_m)


def _is_horizontal(
    normal: npt.NDArray[np.float64], up: npt.NDArray[np.float64], options: CandidateOptions
) -> bool:
    return abs(float(normal @ up)) >= math.cos(math.radians(options.horizontal_tolerance_deg))


def _dot3(columns: list[npt.NDArray[np.float64]], vector: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """N float64: the x, y, z ``columns`` (3 arrays of N float64) dotted with 3 floats, summed in x, y, z order."""
    return columns[0] * vector[0] + columns[1] * vector[1] + columns[2] * vector[2]


def _big_regions(mask: npt.NDArray[np.bool_], min_px: float) -> npt.NDArray[np.bool_] | None:
    """HxW bool: the 8-connected regions of HxW bool ``mask`` with at least ``min_px`` pixels; None if none."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_px) + 1
    if big.size == 0:
        return None
    is_big = np.zeros(len(stats), dtype=bool)
    is_big[big] = True
    region: npt.NDArray[np.bool_] = is_big[labels]
    return region


def support_planes(
    points_m: npt.NDArray[np.float32],
    options: CandidateOptions = CandidateOptions(),
    up_camera: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.bool_], float | None]:
    """HxW bool: pixels on the keyframe's supports: tables, floors and walls; and the height along
    ``up_camera`` of the lowest horizontal one (None without ``up_camera`` or without a horizontal support).

    Planes are found by RANSAC (Open3D) on every ``plane_stride_px``-th pixel, largest first, at most
    ``max_planes``. Of each plane only its connected regions of at least ``min_region_share`` of the image
    count (scattered coplanar object pixels do not), and the plane is a support when they are horizontal
    (``up_camera``: the world's up direction in camera coordinates, 3 floats) and at least
    ``min_support_extent_m`` across, or at least ``min_wall_extent_m`` across in any orientation (without
    ``up_camera`` every plane is held to ``min_support_extent_m``). ``points_m``: HxWx3 float32 camera-frame
    points, NaN without depth (as :func:`analyse_keyframe` computes them once per keyframe).
    """
    import open3d as o3d

    up = None if up_camera is None else np.asarray(up_camera, dtype=np.float64)
    points = points_m
    shape = (points.shape[0], points.shape[1])
    floor: list[float] = []
    stride = options.plane_stride_px
    remaining = points[::stride, ::stride].reshape(-1, 3)
    remaining = remaining[np.all(np.isfinite(remaining), axis=1)].astype(np.float64)
    support = np.zeros(shape, dtype=bool)
    if len(remaining) < 100:
        return support, None
    flat = points.reshape(-1, 3)
    tolerance = np.maximum(options.plane_distance_m, options.plane_relative_distance * flat[:, 2])
    # float64 columns once: a float32 x float64 matrix product would cast every point again for each plane
    columns = [flat[:, axis].astype(np.float64) for axis in range(3)]
    min_region_px = options.min_region_share * shape[0] * shape[1]
    for _ in range(options.max_planes):
        if len(remaining) < 100:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(remaining))
        threshold = options.plane_distance_m + options.plane_relative_distance * float(np.median(remaining[:, 2]))
        o3d.utility.random.seed(7)  # deterministic replays
        # probability 1: all 200 iterations, no early stop. The early stop depends on which of Open3D's threads
        # gets which sample first, so with it the same keyframe now and then gave another plane.
        model, inliers = cloud.segment_plane(threshold, 3, 200, probability=1.0)
        keep = np.ones(len(remaining), dtype=bool)
        keep[np.asarray(inliers, dtype=np.int64)] = False
        remaining = remaining[keep]
        if len(inliers) * stride * stride < min_region_px:
            break
        normal, offset = np.asarray(model[:3], dtype=np.float64), float(model[3])
        with np.errstate(invalid="ignore"):
            on_plane = (np.abs(_dot3(columns, normal) + offset) <= tolerance).reshape(shape)
        region = _big_regions(on_plane, min_region_px)
        if region is None:
            continue
        if _is_support(normal, _region_extent_m(points[region]), up, options):
            support |= region
            if up is not None and _is_horizontal(normal, up, options):
                flat_region = region.reshape(-1)
                floor.append(float(np.nanmedian(_dot3([c[flat_region] for c in columns], up))))
    return support, (min(floor) if floor else None)


def object_proposals(
    support: npt.NDArray[np.bool_], edges: npt.NDArray[np.bool_], min_px: int = 12
) -> npt.NDArray[np.int32]:
    """HxW int32 labels of connected regions off the supports and off depth edges (0: none); regions smaller
    than ``min_px`` pixels are dropped."""
    free = (~support & ~edges).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(free, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_px)
    result: npt.NDArray[np.int32] = labels.astype(np.int32)
    result[np.isin(result, small) | (free == 0)] = 0
    return result


def analyse_keyframe(
    depth_m: npt.NDArray[np.float32] | None,
    camera: CameraModel,
    edge_jump: float,
    options: CandidateOptions = CandidateOptions(),
    up_camera: npt.ArrayLike | None = None,
) -> KeyframeScene:
    """The per-keyframe part of the search (supports, proposals, edges); all None without usable depth.
    ``up_camera``: the world's up direction in camera coordinates (3 floats) when the camera pose is known."""
    if depth_m is None or depth_m.shape != (camera.height_px, camera.width_px) or not np.any(depth_m > 0):
        return KeyframeScene(None, None, None)
    edges = depth_edges(depth_m, edge_jump)
    points = _points_camera(depth_m, camera)
    support, floor_height_m = support_planes(points, options, up_camera)
    proposals = object_proposals(support, edges, options.min_proposal_px)
    up = None if up_camera is None else np.asarray(up_camera, dtype=np.float64)
    return KeyframeScene(support, proposals, edges, points, up, floor_height_m)


def is_furniture(mask: npt.NDArray[np.bool_], scene: KeyframeScene, options: CandidateOptions) -> bool:
    """Whether HxW bool ``mask`` is furniture carrying something: a stand, a shelf, a chair with a cup on it. It
    stands on the floor (its lowest points within ``floor_contact_m`` of it) or is at least ``furniture_height_m``
    tall where it is seen (its foot may be hidden), and pixels just outside it, joined to it
    without a depth edge and off the supports, lie at or above its top and over its footprint (an object resting
    on it, not a neighbour beside it)."""
    points, up, floor = scene.points_m, scene.up_camera, scene.floor_height_m
    if points is None or up is None or floor is None or scene.edges is None or scene.support is None:
        return False
    inside = points[mask]
    inside = inside[np.all(np.isfinite(inside), axis=1)]
    if len(inside) < options.min_proposal_px:
        return False
    heights = inside @ up
    bottom, top = np.percentile(heights, [5, 95])
    if bottom - floor > options.floor_contact_m and top - bottom < options.furniture_height_m:
        return False
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~mask
    ring &= ~scene.edges & ~scene.support
    outside = points[ring]
    outside = outside[np.all(np.isfinite(outside), axis=1)]
    outside = outside[outside @ up >= top - options.carried_tolerance_m]
    if len(outside) < options.min_proposal_px:
        return False
    axis_u = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    axis_u /= np.linalg.norm(axis_u)
    axis_v = np.cross(up, axis_u)
    foot = inside @ np.column_stack([axis_u, axis_v])
    lo, hi = np.percentile(foot, 5, axis=0), np.percentile(foot, 95, axis=0)
    over = outside @ np.column_stack([axis_u, axis_v])
    on_top = np.all((over >= lo) & (over <= hi), axis=1)
    return int(np.count_nonzero(on_top)) >= options.min_proposal_px


def pixels_per_degree(camera: CameraModel) -> float:
    """Approximate pixels per degree at the image centre (from the focal lengths)."""
    return math.radians(1.0) * 0.5 * (camera.fx_px + camera.fy_px)


def proposal_points(
    scene: KeyframeScene, gaze_xy: tuple[float, float], camera: CameraModel, options: CandidateOptions
) -> list[tuple[float, float]]:
    """(x, y) prompt pixels, nearest first: for each proposal within the cone, its pixel nearest the gaze
    (after a 1-pixel erosion where the proposal survives it, to stay clear of its rim)."""
    if scene.proposals is None:
        return []
    radius_px = options.cone_sigmas * options.accuracy_deg * pixels_per_degree(camera)
    height, width = scene.proposals.shape
    gx, gy = gaze_xy
    x0, x1 = max(int(gx - radius_px), 0), min(int(gx + radius_px) + 1, width)
    y0, y1 = max(int(gy - radius_px), 0), min(int(gy + radius_px) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return []
    crop = scene.proposals[y0:y1, x0:x1]
    found: list[tuple[float, float, float]] = []
    for label in np.unique(crop[crop > 0]).tolist():
        region = (crop == label).astype(np.uint8)
        inner = cv2.erode(region, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(inner if inner.any() else region)
        distance = np.hypot(xs + x0 - gx, ys + y0 - gy)
        nearest = int(np.argmin(distance))
        if distance[nearest] <= radius_px:
            found.append((float(distance[nearest]), float(xs[nearest] + x0), float(ys[nearest] + y0)))
    found.sort()
    return [(x, y) for _, x, y in found[: options.max_proposals]]


def _within_outline(mask: npt.NDArray[np.bool_], gaze_xy: tuple[float, float]) -> bool:
    """Whether the (x, y) pixel lies on HxW bool ``mask`` or in one of its holes (a torus's, a handle's: the
    gaze through a hole is on the object, :func:`xrseg.select.maskchoice.look_through_point`)."""
    gx, gy = round(gaze_xy[0]), round(gaze_xy[1])
    height, width = mask.shape
    if not (0 <= gx < width and 0 <= gy < height):
        return False
    if mask[gy, gx]:
        return True
    ys, xs = np.nonzero(mask)
    if not (xs.min() < gx < xs.max() and ys.min() < gy < ys.max()):
        return False
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    point = (float(gx - xs.min()), float(gy - ys.min()))
    return any(cv2.pointPolygonTest(c, point, False) >= 0 for c in contours)


def score_mask(
    mask: npt.NDArray[np.bool_],
    sam_score: float,
    gaze_xy: tuple[float, float],
    scene: KeyframeScene,
    camera: CameraModel,
    options: CandidateOptions,
) -> CandidateScore:
    """Score one HxW bool candidate mask for the gaze pixel (see the module docstring)."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return CandidateScore(math.inf, 0.0, 0.0, -math.inf, False)
    area_share = area / mask.size
    support_share = 0.0 if scene.support is None else int(np.count_nonzero(mask & scene.support)) / area
    if _within_outline(mask, gaze_xy):
        distance_px = 0.0
    else:
        ys, xs = np.nonzero(mask)
        distance_px = float(np.min(np.hypot(xs - gaze_xy[0], ys - gaze_xy[1])))
    distance_deg = distance_px / pixels_per_degree(camera)
    plausible = (
        area_share <= options.max_area_share
        and support_share <= options.max_support_share
        and not is_furniture(mask, scene, options)
    )
    score = -0.5 * (distance_deg / options.accuracy_deg) ** 2 + math.log(max(sam_score, 0.05))
    return CandidateScore(distance_deg, area_share, support_share, score, plausible)
