"""Gaze rays to keyframe pixels (:func:`project_gaze`, :class:`GazeProjector`).

The eye is not at the camera: a gaze ray leaves the eye a few centimetres from the camera, so the pixel it lands
on depends on how far away the looked-at surface is (parallax). :func:`project_gaze` finds the 3D point the eye
looks at by marching the ray through the keyframe's depth image, falls back to the eye tracker's vergence depth,
then to a fixed distance, reports which one it used, and projects the point with the keyframe camera
(distortion included). Conventions as in :mod:`xrseg.geometry`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.geometry import in_image, invert_transform, project_points, transform_directions, transform_points
from xrseg.types import CameraModel, DepthSource, GazeRay, Transform, Vec3, as_transform


class GazeMiss(enum.Enum):
    """Why a gaze ray gave no pixel on the keyframe."""

    INVALID_RAY = "invalid_ray"
    """The ray has a NaN/infinite origin or direction, or a zero direction."""
    BEHIND_CAMERA = "behind_camera"
    """The looked-at point is behind the keyframe camera (z <= 0 in its frame)."""
    OFF_IMAGE = "off_image"
    """The looked-at point projects outside the keyframe image."""


@dataclass(frozen=True)
class GazeProjection:
    """Where a gaze ray lands on a keyframe.

    On a hit, ``pixel_xy`` is the (x, y) pixel, ``point_world_m`` the 3D point looked at (3 float64, world
    frame), ``range_m`` its distance from the ray origin along the ray and ``depth_source`` where that distance
    came from; ``miss`` is None. On a BEHIND_CAMERA or OFF_IMAGE miss the 3D point, range and depth source are
    still filled (the point is known, it is just not visible in this keyframe) and ``pixel_xy`` is None. On an
    INVALID_RAY miss everything but ``miss`` is None.
    """

    pixel_xy: tuple[float, float] | None
    point_world_m: Vec3 | None
    range_m: float | None
    depth_source: DepthSource | None
    miss: GazeMiss | None

    @property
    def hit(self) -> bool:
        return self.miss is None


MARCH_MIN_RANGE_M = 0.05
"""Where ray-marching starts along the gaze ray (closer surfaces are not plausible gaze targets)."""

MARCH_RELATIVE_STEP = 0.005
"""Ray-march samples are spaced geometrically: each 0.5 % farther than the last (5 mm at 1 m)."""

SURFACE_THICKNESS_M = 0.02
SURFACE_THICKNESS_RELATIVE = 0.03
"""A first sample behind the depth surface counts as a hit only when it is within max(2 cm, 3 % of range)
behind it; deeper means the ray passed behind an object that occludes it from the camera (but not from the
eye), and marching continues."""

_REFINE_DIVISIONS = 32
_REFINE_ROUNDS = 3
"""Crossing refinement: 3 rounds of 32-way subdivision shrink a 5 mm bracket below 0.2 micrometres."""


def _depth_lookup(
    camera: CameraModel, depth_m: npt.NDArray[np.float32], points_camera: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Signed distance z - depth(pixel) of Nx3 camera points (N float64) and N bool "depth known there".

    The depth is read at the nearest pixel (no interpolation across edges or holes). Positive: the point is
    behind the measured surface.
    """
    pixels, _ = project_points(camera, points_camera)
    known = in_image(camera, pixels)
    signed = np.full(points_camera.shape[0], np.nan, dtype=np.float64)
    if np.any(known):
        cols = np.clip(np.rint(pixels[known, 0]).astype(np.int64), 0, camera.width_px - 1)
        rows = np.clip(np.rint(pixels[known, 1]).astype(np.int64), 0, camera.height_px - 1)
        surface = depth_m[rows, cols].astype(np.float64)
        good = np.isfinite(surface) & (surface > 0)
        values = np.where(good, points_camera[known, 2] - surface, np.nan)
        signed[known] = values
        known[known] = good
    return signed, known


def _march_depth(
    camera: CameraModel,
    depth_m: npt.NDArray[np.float32],
    origin_c: npt.NDArray[np.float64],
    direction_c: npt.NDArray[np.float64],
    max_range_m: float,
) -> float | None:
    """Range (metres along the ray) where the camera-frame ray first enters the depth surface, or None."""
    (range_m,) = _march_depth_many(camera, depth_m, origin_c[None, :], direction_c[None, :], max_range_m)
    return None if math.isnan(range_m) else float(range_m)


def _march_depth_many(
    camera: CameraModel,
    depth_m: npt.NDArray[np.float32],
    origins_c: npt.NDArray[np.float64],
    directions_c: npt.NDArray[np.float64],
    max_range_m: float,
) -> npt.NDArray[np.float64]:
    """:func:`_march_depth` for R rays at once (Rx3 origins and directions); R ranges, NaN where none.

    All rays' march samples go through one depth lookup, and each refinement round through one more, so a
    fixation's dozen samples cost four lookups instead of four each.
    """
    rays = origins_c.shape[0]
    result = np.full(rays, np.nan, dtype=np.float64)
    if max_range_m <= MARCH_MIN_RANGE_M or rays == 0:
        return result
    count = math.ceil(math.log(max_range_m / MARCH_MIN_RANGE_M) / math.log1p(MARCH_RELATIVE_STEP)) + 1
    ranges = np.minimum(MARCH_MIN_RANGE_M * (1.0 + MARCH_RELATIVE_STEP) ** np.arange(count), max_range_m)
    points = origins_c[:, None, :] + ranges[None, :, None] * directions_c[:, None, :]
    signed_all, known_all = _depth_lookup(camera, depth_m, points.reshape(-1, 3))
    signed_all = signed_all.reshape(rays, count)
    known_all = known_all.reshape(rays, count)

    brackets = _first_crossings(ranges, signed_all, known_all)
    _refine_brackets(camera, depth_m, origins_c, directions_c, brackets)
    for ray, (lo, hi, f_lo, f_hi) in brackets.items():
        # Secant inside the final bracket (exact for a plane seen through one pixel's depth).
        result[ray] = lo + (hi - lo) * (-f_lo) / (f_hi - f_lo) if f_hi - f_lo > 1e-12 else hi
    return result


def _first_crossings(
    ranges: npt.NDArray[np.float64], signed_all: npt.NDArray[np.float64], known_all: npt.NDArray[np.bool_]
) -> dict[int, list[float]]:
    """Per ray (RxC signed distances behind the surface and known flags at the C march ``ranges``): the bracket
    [near range, far range, near signed, far signed] of its first surface crossing; rays without one are absent.
    """
    # The first crossing (a known sample in front, then, ignoring holes, a known sample behind the surface) that
    # is not deeper than the surface thickness; deeper ones passed behind an occluder.
    brackets: dict[int, list[float]] = {}
    for ray in range(signed_all.shape[0]):
        known_idx = np.flatnonzero(known_all[ray])
        if known_idx.size < 2:
            continue
        signed = signed_all[ray]
        behind = signed[known_idx] >= 0.0
        for c in np.flatnonzero(~behind[:-1] & behind[1:]):
            lo_i, hi_i = int(known_idx[c]), int(known_idx[c + 1])
            thickness = max(SURFACE_THICKNESS_M, SURFACE_THICKNESS_RELATIVE * float(ranges[hi_i]))
            if float(signed[hi_i]) > thickness:
                continue
            brackets[ray] = [float(ranges[lo_i]), float(ranges[hi_i]), float(signed[lo_i]), float(signed[hi_i])]
            break
    return brackets


def _refine_brackets(
    camera: CameraModel,
    depth_m: npt.NDArray[np.float32],
    origins_c: npt.NDArray[np.float64],
    directions_c: npt.NDArray[np.float64],
    brackets: dict[int, list[float]],
) -> None:
    """Narrow every ray's bracket in place, :data:`_REFINE_ROUNDS` rounds of one depth lookup each."""
    active = list(brackets)
    for _ in range(_REFINE_ROUNDS):
        if not active:
            break
        # A 32-way bisection of every open bracket in one vectorised lookup: the first known sample behind the
        # surface becomes the new far end, the last known sample in front of it the new near end.
        inner = np.stack(
            [np.linspace(brackets[r][0], brackets[r][1], _REFINE_DIVISIONS + 1)[1:-1] for r in active]
        )
        samples = origins_c[active][:, None, :] + inner[:, :, None] * directions_c[active][:, None, :]
        f_all, k_all = _depth_lookup(camera, depth_m, samples.reshape(-1, 3))
        f_all = f_all.reshape(len(active), -1)
        k_all = k_all.reshape(len(active), -1)
        still_open = []
        for row, ray in enumerate(active):
            lo, hi, f_lo, f_hi = brackets[ray]
            f_inner, k_inner = f_all[row], k_all[row]
            behind_inner = np.flatnonzero(k_inner & (f_inner >= 0.0))
            stop = int(behind_inner[0]) if behind_inner.size else inner.shape[1]
            if behind_inner.size:
                hi, f_hi = float(inner[row, stop]), float(f_inner[stop])
            front_inner = np.flatnonzero(k_inner[:stop] & (f_inner[:stop] < 0.0))
            if front_inner.size:
                lo, f_lo = float(inner[row, front_inner[-1]]), float(f_inner[front_inner[-1]])
            brackets[ray] = [lo, hi, f_lo, f_hi]
            if behind_inner.size or front_inner.size:
                still_open.append(ray)  # all holes: settle this one with the secant
        active = still_open


def _check_rigid(value: npt.ArrayLike, name: str) -> Transform:
    """Fast validity check for a per-sample transform; defers to :func:`as_transform` for the error message."""
    matrix = np.asarray(value, dtype=np.float64)
    if (
        matrix.shape == (4, 4)
        and bool(np.isfinite(matrix).all())
        and float(np.abs(matrix[3] - (0.0, 0.0, 0.0, 1.0)).max()) <= 1e-9
        and float(np.abs(matrix[:3, :3] @ matrix[:3, :3].T - np.eye(3)).max()) <= 1e-4
    ):
        return matrix
    return as_transform(value, name)


class GazeProjector:
    """Projects gaze rays into one keyframe; validates the keyframe once, for many rays (a fixation's samples).

    ``world_from_camera``: 4x4 float64 pose of the keyframe's camera; ``camera``: its model; ``depth_m``: its
    HxW float32 depth in metres along camera +z (0 or NaN = no measurement) or None. See :func:`project_gaze`
    for the method. Raises :class:`InputError` for a malformed pose, a depth image of the wrong size, or a
    non-positive ``fallback_depth_m`` / ``max_range_m``.
    """

    def __init__(
        self,
        world_from_camera: npt.ArrayLike,
        camera: CameraModel,
        depth_m: npt.NDArray[np.float32] | None = None,
        fallback_depth_m: float = 1.0,
        max_range_m: float = 10.0,
    ) -> None:
        if not (math.isfinite(fallback_depth_m) and fallback_depth_m > 0):
            raise InputError(f"fallback_depth_m must be finite and positive, got {fallback_depth_m}")
        if not (math.isfinite(max_range_m) and max_range_m > 0):
            raise InputError(f"max_range_m must be finite and positive, got {max_range_m}")
        self.world_from_camera = as_transform(world_from_camera, "world_from_camera")
        self.camera_from_world = invert_transform(self.world_from_camera)
        self.camera = camera
        self.depth_m: npt.NDArray[np.float32] | None = None
        if depth_m is not None:
            depth = np.asarray(depth_m)
            if depth.shape != (camera.height_px, camera.width_px):
                raise InputError(
                    f"depth_m must be {camera.height_px}x{camera.width_px} to match the camera, got {depth.shape}"
                )
            self.depth_m = depth
        self.fallback_depth_m = float(fallback_depth_m)
        self.max_range_m = float(max_range_m)

    def project(
        self, ray: GazeRay, world_from_head: npt.ArrayLike, vergence_depth_m: float | None = None
    ) -> GazeProjection:
        """Project one head-frame ray given the 4x4 head pose at the ray's time. Never raises for bad gaze."""
        return self.project_many([ray], [world_from_head], [vergence_depth_m])[0]

    def project_many(
        self,
        rays: Sequence[GazeRay],
        world_from_heads: Sequence[npt.ArrayLike],
        vergence_depths_m: Sequence[float | None],
    ) -> list[GazeProjection]:
        """Project many head-frame rays, each with the 4x4 head pose at its own time (one result per ray).

        The same results as :meth:`project` ray by ray, with the depth march done for all rays at once.
        """
        if not len(rays) == len(world_from_heads) == len(vergence_depths_m):
            raise InputError("rays, world_from_heads and vergence_depths_m must have the same length")
        results: list[GazeProjection | None] = [None] * len(rays)
        valid: list[int] = []
        origins, directions = [], []
        for i, (ray, world_from_head) in enumerate(zip(rays, world_from_heads, strict=True)):
            world_from_head_t = _check_rigid(world_from_head, "world_from_head")
            if not ray.is_finite or not abs(float(np.linalg.norm(ray.direction)) - 1.0) < 1e-6:
                results[i] = GazeProjection(None, None, None, None, GazeMiss.INVALID_RAY)
                continue
            camera_from_head = self.camera_from_world @ world_from_head_t
            origins.append(transform_points(camera_from_head, ray.origin_m)[0])
            directions.append(transform_directions(camera_from_head, ray.direction)[0])
            valid.append(i)
        if not valid:
            return [r for r in results if r is not None]
        origins_c, directions_c = np.array(origins), np.array(directions)
        marched = np.full(len(valid), np.nan)
        if self.depth_m is not None:
            marched = _march_depth_many(self.camera, self.depth_m, origins_c, directions_c, self.max_range_m)
        ranges = np.empty(len(valid))
        sources: list[DepthSource] = []
        for row, i in enumerate(valid):
            vergence = vergence_depths_m[i]
            if not math.isnan(marched[row]):
                ranges[row], source = marched[row], DepthSource.DEPTH_IMAGE
            elif vergence is not None and math.isfinite(vergence) and vergence > 0:
                ranges[row], source = float(vergence), DepthSource.VERGENCE
            else:
                ranges[row], source = self.fallback_depth_m, DepthSource.FIXED
            sources.append(source)
        points_c = origins_c + ranges[:, None] * directions_c
        points_world = transform_points(self.world_from_camera, points_c)
        pixels, in_front = project_points(self.camera, points_c)
        on_image = in_image(self.camera, pixels)
        for row, i in enumerate(valid):
            point_world, range_m, source = points_world[row], float(ranges[row]), sources[row]
            if not in_front[row]:
                results[i] = GazeProjection(None, point_world, range_m, source, GazeMiss.BEHIND_CAMERA)
            elif not on_image[row]:
                results[i] = GazeProjection(None, point_world, range_m, source, GazeMiss.OFF_IMAGE)
            else:
                pixel = (float(pixels[row, 0]), float(pixels[row, 1]))
                results[i] = GazeProjection(pixel, point_world, range_m, source, None)
        return [r for r in results if r is not None]


def project_gaze(
    ray: GazeRay,
    world_from_head: npt.ArrayLike,
    world_from_camera: npt.ArrayLike,
    camera: CameraModel,
    depth_m: npt.NDArray[np.float32] | None = None,
    vergence_depth_m: float | None = None,
    fallback_depth_m: float = 1.0,
    max_range_m: float = 10.0,
) -> GazeProjection:
    """Project a head-frame gaze ray into a keyframe, resolving eye-camera parallax.

    ``ray`` is in the head frame (OpenXR axes) at time t; ``world_from_head`` the 4x4 head pose at t;
    ``world_from_camera`` the 4x4 pose of the keyframe's camera (taken at the keyframe's time, which may differ
    from t); ``camera`` the keyframe's camera model; ``depth_m`` the keyframe's HxW float32 depth in metres
    along camera +z (0 or NaN = no measurement) or None.

    The distance along the ray comes from, in order: marching the ray through ``depth_m`` (the first surface it
    enters, tolerating holes), the tracker's ``vergence_depth_m`` (distance along the ray; ignored unless finite
    and positive), then ``fallback_depth_m``. The resulting 3D point is projected with the camera model
    (distortion included). A NaN or zero ray gives an INVALID_RAY miss; a point behind the camera or off the
    image gives a BEHIND_CAMERA / OFF_IMAGE miss; nothing here raises for bad gaze data. Malformed transforms,
    a depth image of the wrong size or a non-positive fallback depth raise :class:`InputError`. For many rays
    into one keyframe use :class:`GazeProjector`, which validates the keyframe once.
    """
    projector = GazeProjector(world_from_camera, camera, depth_m, fallback_depth_m, max_range_m)
    return projector.project(ray, world_from_head, vergence_depth_m)
