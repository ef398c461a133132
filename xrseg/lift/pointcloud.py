"""Lift a 2D object mask to a 3D point cloud in the world frame.

``lift_mask`` keeps the masked pixels that have valid depth and survive the flying-pixel tests of
:mod:`xrseg.lift.borders`, turns them into camera-frame points with the camera's cached ray grid (lens
distortion removed, see :mod:`xrseg.lift.rays`), maps them to the world and optionally removes outliers with
Open3D. Nothing here raises for an unlucky mask: an empty result carries a ``reason``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError
from xrseg.lift.borders import BorderFilter, reliable_pixels_in_box
from xrseg.lift.rays import ray_grid
from xrseg.types import CameraModel, as_transform

logger = logging.getLogger(__name__)

__all__ = [
    "LiftResult",
    "OutlierRemoval",
    "check_frame",
    "check_rgb",
    "lift_mask",
    "remove_outliers",
    "to_point_cloud",
]


@dataclass(frozen=True)
class OutlierRemoval:
    """Open3D outlier removal applied after lifting.

    ``method="statistical"``: drop points whose mean distance to their ``nb_neighbors`` nearest neighbours is
    more than ``std_ratio`` standard deviations above the average. ``method="radius"``: drop points with fewer
    than ``min_neighbors`` other points within ``radius_m``.
    """

    method: Literal["statistical", "radius"] = "statistical"
    nb_neighbors: int = 20
    std_ratio: float = 2.0
    radius_m: float = 0.01
    min_neighbors: int = 6

    def __post_init__(self) -> None:
        if self.method not in ("statistical", "radius"):
            raise InputError(f"outlier removal method must be 'statistical' or 'radius', got {self.method!r}")
        if self.nb_neighbors < 1 or self.min_neighbors < 1:
            raise InputError("nb_neighbors and min_neighbors must be >= 1")
        if not (self.std_ratio > 0 and self.radius_m > 0):
            raise InputError("std_ratio and radius_m must be positive")


def _frozen(array: npt.NDArray) -> npt.NDArray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class LiftResult:
    """Points of one lifted mask.

    ``points_world_m`` Nx3 float64 world-frame points (metres); ``colors`` Nx3 float32 RGB in [0, 1];
    ``pixels_xy`` Nx2 int32 (x, y) source pixel of each point. ``reason`` says why the result is empty
    (None when it has points). Arrays are read-only.
    """

    points_world_m: npt.NDArray[np.float64]
    colors: npt.NDArray[np.float32]
    pixels_xy: npt.NDArray[np.int32] = field(default_factory=lambda: _frozen(np.zeros((0, 2), dtype=np.int32)))
    reason: str | None = None

    @classmethod
    def empty(cls, reason: str) -> LiftResult:
        return cls(
            _frozen(np.zeros((0, 3), dtype=np.float64)), _frozen(np.zeros((0, 3), dtype=np.float32)), reason=reason
        )

    @property
    def count(self) -> int:
        return int(self.points_world_m.shape[0])

    @property
    def is_empty(self) -> bool:
        return self.count == 0


def check_frame(
    camera: CameraModel, mask: npt.ArrayLike, depth_m: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Validate a mask and a depth image against the camera; returns (HxW bool, HxW float32 metres).

    Raises :class:`InputError` naming the offending array.
    """
    shape = (camera.height_px, camera.width_px)
    mask_a = np.asarray(mask)
    if mask_a.shape != shape:
        raise InputError(f"mask must be {shape[0]}x{shape[1]} to match the camera, got {mask_a.shape}")
    if mask_a.dtype != np.bool_:
        mask_a = mask_a != 0
    depth_a = np.asarray(depth_m)
    if depth_a.shape != shape:
        raise InputError(f"depth_m must be {shape[0]}x{shape[1]} to match the camera, got {depth_a.shape}")
    if not np.issubdtype(depth_a.dtype, np.floating):
        raise InputError(f"depth_m must be float metres, got dtype {depth_a.dtype}")
    return mask_a, depth_a.astype(np.float32, copy=False)


def check_rgb(camera: CameraModel, rgb: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Validate an HxWx3 uint8 RGB image against the camera; raises :class:`InputError`."""
    rgb_a = np.asarray(rgb)
    if rgb_a.shape != (camera.height_px, camera.width_px, 3) or rgb_a.dtype != np.uint8:
        raise InputError(
            f"rgb must be {camera.height_px}x{camera.width_px}x3 uint8, got {rgb_a.shape} {rgb_a.dtype}"
        )
    return rgb_a


def lift_mask(
    mask: npt.ArrayLike,
    depth_m: npt.ArrayLike,
    rgb: npt.ArrayLike,
    camera: CameraModel,
    world_from_camera: npt.ArrayLike,
    border: BorderFilter | None = BorderFilter(),  # noqa: B008 (frozen, immutable default)
    outliers: OutlierRemoval | None = None,
) -> LiftResult:
    """Lift the masked pixels of one RGB-D frame to world-frame points.

    ``mask`` HxW bool (the object); ``depth_m`` HxW float32 metres along camera +z (0 or NaN = none); ``rgb``
    HxWx3 uint8 RGB; ``camera`` the frame's camera model (distortion is removed); ``world_from_camera`` 4x4
    float64. ``border`` rejects flying pixels at depth edges (None keeps every masked pixel with depth);
    ``outliers`` optionally runs Open3D outlier removal (off by default: it costs more than the lift itself).

    Returns a :class:`LiftResult`; when nothing survives, its ``reason`` says why. Malformed inputs raise
    :class:`InputError`.
    """
    mask_a, depth_a = check_frame(camera, mask, depth_m)
    rgb_a = check_rgb(camera, rgb)
    world_from_camera_t = as_transform(world_from_camera, "world_from_camera")
    (r0, c0), keep = reliable_pixels_in_box(mask_a, depth_a, border or BorderFilter(0, 0))
    if keep.size == 0:
        return LiftResult.empty("mask is empty")
    rows, cols = np.nonzero(keep)
    if rows.size == 0:
        box = (slice(r0, r0 + keep.shape[0]), slice(c0, c0 + keep.shape[1]))
        depth_box = depth_a[box]
        if not np.any(mask_a[box] & np.isfinite(depth_box) & (depth_box > 0)):
            return LiftResult.empty("mask has no pixels with valid depth")
        return LiftResult.empty("every masked pixel was rejected as a flying pixel at a depth edge")
    # np.take on flat indices is the fastest gather for multi-channel pixels (several times fancy indexing).
    rows += r0
    cols += c0
    flat = rows.astype(np.intp) * camera.width_px + cols
    z = np.take(depth_a.reshape(-1), flat).astype(np.float64)
    normalised = np.take(ray_grid(camera).reshape(-1, 2), flat, axis=0)
    points_camera = np.empty((z.size, 3), dtype=np.float64)
    points_camera[:, 0] = normalised[:, 0] * z
    points_camera[:, 1] = normalised[:, 1] * z
    points_camera[:, 2] = z
    points_world = points_camera @ world_from_camera_t[:3, :3].T
    points_world += world_from_camera_t[:3, 3]
    colors = np.take(rgb_a.reshape(-1, 3), flat, axis=0).astype(np.float32)
    colors *= np.float32(1.0 / 255.0)
    pixels = np.empty((rows.size, 2), dtype=np.int32)
    pixels[:, 0] = cols
    pixels[:, 1] = rows
    if outliers is not None:
        keep_idx = remove_outliers(points_world, outliers)
        points_world, colors, pixels = points_world[keep_idx], colors[keep_idx], pixels[keep_idx]
        if keep_idx.size == 0:
            return LiftResult.empty("outlier removal removed every point")
    return LiftResult(_frozen(points_world), _frozen(colors), _frozen(pixels))


def remove_outliers(points_m: npt.NDArray[np.float64], outliers: OutlierRemoval) -> npt.NDArray[np.int64]:
    """Indices (int64, ascending) of the Nx3 float64 points that Open3D's outlier removal keeps."""
    if points_m.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.array(points_m, dtype=np.float64)))
    if outliers.method == "statistical":
        _, kept = cloud.remove_statistical_outlier(
            nb_neighbors=outliers.nb_neighbors, std_ratio=outliers.std_ratio
        )
    else:
        _, kept = cloud.remove_radius_outlier(nb_points=outliers.min_neighbors, radius=outliers.radius_m)
    indices = np.asarray(kept, dtype=np.int64)
    logger.debug("outlier removal kept %d of %d points", indices.size, points_m.shape[0])
    return np.sort(indices)


def to_point_cloud(result: LiftResult) -> o3d.geometry.PointCloud:
    """An Open3D point cloud (points in metres, colours in [0, 1]) of a lift result; empty for an empty one."""
    cloud = o3d.geometry.PointCloud()
    if result.count:
        # Open3D refuses read-only arrays: hand it copies.
        cloud.points = o3d.utility.Vector3dVector(np.array(result.points_world_m, dtype=np.float64))
        cloud.colors = o3d.utility.Vector3dVector(result.colors.astype(np.float64))
    return cloud
